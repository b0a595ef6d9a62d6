//! The local stack holds the code to AWS's own rules: every function's calls to its IAM
//! policy in template.yaml, and the limits of Lambda, API Gateway and DynamoDB.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use chat_domain::ids::MessageId;
use chat_domain::model::{ChannelId, ClientMsgId, ConnectionId, UserId};
use chat_domain::ports::PostOutcome;
use e2e::{Stack, StackOptions};
use local_gateway::Limits;
use local_gateway::invoke::{InProcess, Invoke, LambdaLimits};
use local_gateway::routes::Function;
use serde_json::json;

fn service_code<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(err: &E) -> Option<String> {
    err.code().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_outside_the_functions_policy_is_refused_as_aws_refuses_it() {
    let stack = Stack::start().await;
    let iam = stack.functions.iam.clone().expect("the local stack checks IAM");
    // DisconnectFunction may only update Presence items: reading a message is not granted.
    let disconnect = stack.functions.apps.get(Function::Disconnect);
    let err = disconnect
        .messages()
        .get(&ChannelId::parse("c").unwrap(), MessageId::from_u64(1))
        .await
        .expect_err("DisconnectFunction has no dynamodb:GetItem on MessagesTable");
    assert!(err.to_string().contains("AccessDeniedException"), "{err}");
    let denial = iam.denials().pop().expect("the refusal is recorded");
    assert_eq!(denial.function, "DisconnectFunction");
    assert_eq!(denial.need.action, "dynamodb:GetItem");
    assert!(denial.need.resource.ends_with(&format!("table/{}", stack.config.tables.messages)));

    // HistoryFunction may not post to a connection: the Management API checks
    // execute-api:ManageConnections.
    let _alice = stack.connect("alice").await;
    let alice_id = UserId::parse("alice").unwrap();
    let live = chat_domain::connections::live(&stack.app, &[alice_id]).await.unwrap();
    let connection = live[0].1.clone();
    let history = stack.functions.apps.get(Function::History);
    let outcome = history.poster().post(&connection, "{}").await;
    assert!(matches!(&outcome, PostOutcome::Failed(e) if e.contains("AccessDeniedException")), "{outcome:?}");
    assert_eq!(iam.denials().pop().unwrap().need.action, "execute-api:ManageConnections");

    // The function that is granted both gets through.
    let send = stack.functions.apps.get(Function::Send);
    assert_eq!(send.poster().post(&connection, "{}").await, PostOutcome::Delivered);
    let refused: Vec<String> = stack.take_denials().into_iter().map(|d| d.need.action).collect();
    assert_eq!(refused, ["dynamodb:GetItem", "execute-api:ManageConnections"], "nothing else was refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_functions_that_sign_or_check_tokens_hold_the_signing_key() {
    let stack = Stack::start().await;
    for function in Function::ALL {
        let holds = stack.functions.apps.get(function).tokens().is_ok();
        assert_eq!(holds, matches!(function, Function::Authorizer | Function::Auth), "{function:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_presence_with_repeated_ids_answers_each_user_once() {
    let stack = Stack::start().await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    let ask = json!({"action": "getPresence", "channelId": "dm", "userIds": ["bob", "bob", "alice", "bob"]});
    alice.send_json(&ask).await;
    let states = alice.recv().await;
    assert_eq!(states["type"], "presenceState", "{states}");
    let users: Vec<&str> = states["users"].as_array().unwrap().iter().map(|u| u["userId"].as_str().unwrap()).collect();
    assert_eq!(users.len(), 2, "{states}");
}

/// 50 messages near API Gateway's 128 KB, full of quotes (escaped twice on the way out):
/// one page of them would be ~12 MB, twice what Lambda may answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_of_messages_near_128_kb_still_pages_within_lambdas_6_mb() {
    let stack = Stack::start().await;
    stack.create_channel("big", &["alice", "bob"]).await;
    let channel = ChannelId::parse("big").unwrap();
    let alice = UserId::parse("alice").unwrap();
    let text = "\"".repeat(60_000);
    for n in 0..50 {
        let id = ClientMsgId::parse(format!("big-{n}")).unwrap();
        chat_domain::chat::send_message(
            &stack.app,
            &alice,
            &ConnectionId::new("seed"),
            &channel,
            chat_domain::chat::Draft::text(id, text.clone()),
        )
        .await
        .expect("a message under 128 KB on the wire is stored");
    }
    let mut seen = 0;
    let mut query = "limit=50".to_owned();
    loop {
        let (status, page) = stack.history("bob", "big", &query).await;
        assert_eq!(status, 200, "history answered {page}");
        let count = page["messages"].as_array().unwrap().len();
        assert!(count > 0 && count < 50, "a page of {count}: bounded by bytes, not only by count");
        seen += count;
        match page["nextBefore"].as_str() {
            Some(before) => query = format!("limit=50&before={before}"),
            None => break,
        }
    }
    assert_eq!(seen, 50, "every message is reachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_6_mb_and_a_function_past_its_timeout_fail_as_lambda_fails_them() {
    // The real functions, with Lambda's limits shrunk so that ordinary answers cross them.
    let tiny = Box::new(|functions: &local_gateway::local::LocalFunctions| {
        let limits = LambdaLimits { max_payload_bytes: 2_000, ..functions.limits.clone() };
        Arc::new(InProcess::with(functions.apps.clone(), limits)) as Arc<dyn Invoke>
    });
    let stack = Stack::start_with(StackOptions { invoker: Some(tiny), ..Default::default() }).await;
    let members: Vec<String> = (0..60).map(|n| format!("member{n}")).collect();
    let member_refs: Vec<&str> = std::iter::once("alice").chain(members.iter().map(String::as_str)).collect();
    stack.create_channel("crowd", &member_refs).await;
    let token = stack.token("alice");
    let (status, body) = stack.get("/channels/crowd", Some(&token)).await;
    assert_eq!((status, body), (500, json!({"message": "Internal Server Error"})), "an answer over the limit");

    let slow = Box::new(|functions: &local_gateway::local::LocalFunctions| {
        let mut limits = functions.limits.clone();
        limits.timeouts.insert(Function::Send, Duration::from_millis(1));
        Arc::new(InProcess::with(functions.apps.clone(), limits)) as Arc<dyn Invoke>
    });
    let stack = Stack::start_with(StackOptions { invoker: Some(slow), ..Default::default() }).await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    let mut alice = stack.connect("alice").await;
    alice.send_message("dm", "m1", "hello").await;
    let answer = alice.recv().await;
    assert_eq!(answer["message"], "Internal server error", "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_gateway_stops_waiting_for_a_function_at_its_integration_timeout() {
    let limits = Limits {
        websocket_integration_timeout: Duration::from_millis(1),
        http_integration_timeout: Duration::from_millis(1),
        ..Limits::default()
    };
    let stack = Stack::start_with(StackOptions { limits: Some(limits), ..Default::default() }).await;
    stack.create_channel("dm", &["alice", "bob"]).await;
    let (status, body) = stack.get("/channels", Some(&stack.token("alice"))).await;
    assert_eq!((status, body), (503, json!({"message": "Service Unavailable"})));
}

/// DynamoDB's request rules, as the local endpoint applies them (moto 5.2.5 does; these
/// tests keep it so if moto or the endpoint changes).
mod dynamodb {
    use super::*;

    fn key(n: usize) -> std::collections::HashMap<String, AttributeValue> {
        [("userId".to_owned(), AttributeValue::S(format!("u{n}")))].into()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batch_gets_refuse_duplicates_and_more_than_100_keys() {
        let stack = Stack::start().await;
        let table = stack.config.tables.presence.clone();
        for keys in [vec![key(1), key(1)], (0..101).map(key).collect()] {
            let request = KeysAndAttributes::builder().set_keys(Some(keys)).build().unwrap();
            let err = stack.dynamo.batch_get_item().request_items(&table, request).send().await.unwrap_err();
            assert_eq!(service_code(&err.into_service_error()).as_deref(), Some("ValidationException"));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transactions_refuse_two_operations_on_one_item_and_more_than_100() {
        let stack = Stack::start().await;
        let table = stack.config.tables.presence.clone();
        let put = |n: usize| {
            TransactWriteItem::builder()
                .put(Put::builder().table_name(&table).set_item(Some(key(n))).build().unwrap())
                .build()
        };
        for items in [vec![put(1), put(1)], (0..101).map(put).collect()] {
            let err = stack.dynamo.transact_write_items().set_transact_items(Some(items)).send().await.unwrap_err();
            assert_eq!(service_code(&err.into_service_error()).as_deref(), Some("ValidationException"));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_item_over_400_kb_is_refused_and_a_query_page_stops_near_1_mb() {
        let stack = Stack::start().await;
        let table = stack.config.tables.messages.clone();
        let item = |id: usize, bytes: usize| {
            [
                ("pk".to_owned(), AttributeValue::S("c#big".into())),
                ("id".to_owned(), AttributeValue::N(id.to_string())),
                ("text".to_owned(), AttributeValue::S("x".repeat(bytes))),
            ]
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>()
        };
        let err = stack.dynamo.put_item().table_name(&table).set_item(Some(item(0, 410_000))).send().await;
        assert_eq!(service_code(&err.unwrap_err().into_service_error()).as_deref(), Some("ValidationException"));
        for id in 1..=4 {
            stack.dynamo.put_item().table_name(&table).set_item(Some(item(id, 300_000))).send().await.unwrap();
        }
        let page = stack
            .dynamo
            .query()
            .table_name(&table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S("c#big".into()))
            .send()
            .await
            .unwrap();
        assert!(page.items().len() < 4, "1.2 MB of items do not come in one page");
        assert!(page.last_evaluated_key().is_some(), "the page says where to go on");
    }
}
