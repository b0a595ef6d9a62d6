//! The fan-out of the common sample apps, as a baseline: every connection in one table
//! (`connectionId` → `userId`), written on `$connect`, deleted on `$disconnect`, and
//! scanned on every send to find the channel members' connections. Everything else in the
//! send path is ours, step for step (rate limit, roster, append, ack), so the difference
//! in a benchmark is the fan-out lookup alone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use chat_aws::apigw;
use chat_domain::ids::MessageId;
use chat_domain::model::{ChannelId, ClientMsgId, ConnectionId, Message, MessageText, UserId};
use chat_domain::ordering::Appended;
use chat_domain::ports::PostOutcome;
use chat_domain::protocol::{ClientFrame, ServerFrame};
use chat_domain::{App, ChatError};
use futures::StreamExt;
use local_gateway::invoke::{InProcess, Invoke, InvokeError, InvokeFuture};
use local_gateway::routes::Function;
use serde_json::{Value, json};

/// Same as ours: posts in flight per send.
const FAN_OUT_CONCURRENCY: usize = 32;

pub struct ScanFanOut {
    app: Arc<App>,
    dynamo: aws_sdk_dynamodb::Client,
    ours: InProcess,
    table: String,
}

impl ScanFanOut {
    pub fn new(app: Arc<App>, dynamo: aws_sdk_dynamodb::Client, table: &str) -> Self {
        Self { ours: InProcess::new(app.clone()), app, dynamo, table: table.to_owned() }
    }

    /// The connections table of a world: beside its other tables, with their prefix.
    pub fn table_name(config: &chat_aws::config::Config) -> String {
        let presence = &config.tables.presence;
        format!(
            "{}BaselineConnections",
            presence.strip_suffix(local_gateway::local::PRESENCE_TABLE).unwrap_or(presence)
        )
    }

    /// Creates the connections table.
    pub async fn create_table(dynamo: &aws_sdk_dynamodb::Client, table: &str) {
        dynamo
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(
                KeySchemaElement::builder().attribute_name("connectionId").key_type(KeyType::Hash).build().unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("connectionId")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("baseline table is created");
    }

    pub fn item(connection: &str, user: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("connectionId".to_owned(), AttributeValue::S(connection.to_owned())),
            ("userId".to_owned(), AttributeValue::S(user.to_owned())),
        ])
    }

    async fn connect(&self, event: Value) -> Result<Value, InvokeError> {
        let (user, connection) = caller(event)?;
        self.dynamo
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::item(connection.as_str(), user.as_str())))
            .send()
            .await
            .map_err(|e| failed(&e))?;
        Ok(json!({"statusCode": 200}))
    }

    async fn disconnect(&self, event: Value) -> Result<Value, InvokeError> {
        let (_, connection) = caller(event)?;
        self.forget(&connection).await;
        Ok(json!({"statusCode": 200}))
    }

    async fn forget(&self, connection: &ConnectionId) {
        let _ = self
            .dynamo
            .delete_item()
            .table_name(&self.table)
            .key("connectionId", AttributeValue::S(connection.to_string()))
            .send()
            .await;
    }

    async fn send(&self, event: Value) -> Result<Value, InvokeError> {
        let body = event["body"].as_str().unwrap_or_default().to_owned();
        let frame = match ClientFrame::parse(&body) {
            Ok(ClientFrame::SendMessage { channel_id, client_msg_id, text, .. }) => {
                let (user, connection) = caller(event)?;
                match self.send_message(&user, &connection, &channel_id, &client_msg_id, text).await {
                    Ok(message) => ServerFrame::Ack { client_msg_id, message },
                    Err(err) => ServerFrame::Error(err.body().about_frame(&body)),
                }
            }
            // Every other action is ours.
            _ => return self.ours.invoke(Function::Send, event).await,
        };
        Ok(json!({"statusCode": 200, "body": frame.to_json()}))
    }

    /// `chat::send_message`, with the fan-out lookup replaced by a Scan.
    async fn send_message(
        &self,
        sender: &UserId,
        origin: &ConnectionId,
        channel_id: &ChannelId,
        client_msg_id: &ClientMsgId,
        text: String,
    ) -> Result<Message, ChatError> {
        let app = &*self.app;
        let text = MessageText::parse(text)?;
        chat_domain::limits::check(app, chat_domain::limits::Action::Send, sender.as_str()).await?;
        let roster = chat_domain::access::roster_for_member(app, sender, channel_id).await?;
        // Through serde, so fields added to messages later (with defaults) need no change here.
        let message: Message = serde_json::from_value(json!({
            "channelId": channel_id,
            "messageId": MessageId::ZERO,
            "seq": 0,
            "authorId": sender,
            "text": text.as_str(),
            "clientMsgId": client_msg_id,
            "createdAt": 0,
        }))
        .map_err(|e| ChatError::InvalidRequest(format!("baseline message: {e}")))?;
        // The same append as ours (chat::append_next); only the fan-out differs.
        match chat_domain::ordering::append_next(app, message, roster.meta.clone()).await? {
            Appended::Stored(message) => {
                let frame = ServerFrame::Message { message: (*message).clone() }.to_json();
                self.fan_out(&roster.member_ids(), origin, &frame).await;
                Ok(*message)
            }
            Appended::Duplicate(id) => Err(ChatError::InvalidRequest(format!("baseline does not retry sends ({id})"))),
        }
    }

    /// Scan the whole table (every page), keep the members' connections, post to each.
    async fn fan_out(&self, members: &[UserId], skip: &ConnectionId, frame: &str) {
        let members: HashSet<&str> = members.iter().map(UserId::as_str).collect();
        let mut targets = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .dynamo
                .scan()
                .table_name(&self.table)
                .projection_expression("connectionId, userId")
                .set_exclusive_start_key(start)
                .send()
                .await;
            let Ok(page) = page else { return };
            for item in page.items.unwrap_or_default() {
                if let (Some(AttributeValue::S(connection)), Some(AttributeValue::S(user))) =
                    (item.get("connectionId"), item.get("userId"))
                    && members.contains(user.as_str())
                    && connection != skip.as_str()
                {
                    targets.push(ConnectionId::new(connection.clone()));
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let gone: Vec<ConnectionId> = futures::stream::iter(targets)
            .map(|connection| async move {
                let outcome = self.app.poster().post(&connection, frame).await;
                (connection, outcome)
            })
            .buffer_unordered(FAN_OUT_CONCURRENCY)
            .filter_map(|(connection, outcome)| async move { (outcome == PostOutcome::Gone).then_some(connection) })
            .collect()
            .await;
        for connection in gone {
            self.forget(&connection).await;
        }
    }
}

fn caller(event: Value) -> Result<(UserId, ConnectionId), InvokeError> {
    let event: ApiGatewayWebsocketProxyRequest =
        serde_json::from_value(event).map_err(|e| InvokeError::BadEvent(e.to_string()))?;
    apigw::ws_caller(&event).map_err(|e| InvokeError::BadEvent(e.to_string()))
}

fn failed(err: &dyn std::fmt::Debug) -> InvokeError {
    InvokeError::Failed { error_type: "Baseline".into(), message: format!("{err:?}") }
}

impl Invoke for ScanFanOut {
    fn invoke(&self, function: Function, event: Value) -> InvokeFuture<'_> {
        Box::pin(async move {
            match function {
                Function::Connect => self.connect(event).await,
                Function::Disconnect => self.disconnect(event).await,
                Function::Send => self.send(event).await,
                other => self.ours.invoke(other, event).await,
            }
        })
    }
}
