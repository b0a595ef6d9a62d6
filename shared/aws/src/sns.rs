//! Push through SNS: the domain's [`PushService`] port. With platform applications
//! configured (FCM, APNs), each device has its own platform endpoint; without, every push
//! goes to one topic with the user id as a message attribute (subscribers filter on it).

use std::sync::Arc;

use crate::lazy::LazyClient;
use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use chat_domain::PortError;
use chat_domain::http::Platform;
use chat_domain::model::UserId;
use chat_domain::ports::{Notification, Published, PushMode, PushService};
use serde_json::json;

use crate::config::PushSettings;

/// The key of a platform's payload in an SNS `MessageStructure=json` message.
fn sns_key(platform: Platform) -> &'static str {
    match platform {
        Platform::Fcm => "GCM",
        Platform::Apns => "APNS",
        Platform::ApnsSandbox => "APNS_SANDBOX",
    }
}

/// The platform's own payload for `notification`.
/// An incoming call travels at high priority, with the call (the app rings with it).
fn platform_payload(platform: Platform, n: &Notification) -> serde_json::Value {
    let mut data = json!({ "channelId": n.channel_id, "messageId": n.message_id });
    if let Some(call) = &n.call {
        data["type"] = json!("call");
        // FCM data values are strings.
        data["call"] = json!(serde_json::to_string(call).expect("calls serialise"));
    }
    match platform {
        Platform::Fcm if n.call.is_some() => json!({ "priority": "high", "time_to_live": 30, "data": data }),
        Platform::Fcm => json!({ "notification": { "title": n.title, "body": n.body }, "data": data }),
        Platform::Apns | Platform::ApnsSandbox => {
            let sound = if n.call.is_some() { "ringtone.caf" } else { "default" };
            let mut payload = json!({
                "aps": { "alert": { "title": n.title, "body": n.body }, "sound": sound },
                "channelId": n.channel_id,
                "messageId": n.message_id,
            });
            if let Some(call) = &n.call {
                payload["aps"]["interruption-level"] = json!("time-sensitive");
                payload["call"] = json!(call);
            }
            payload
        }
    }
}

#[derive(Clone)]
pub struct SnsPush {
    client: Arc<LazyClient<aws_sdk_sns::Client>>,
    settings: PushSettings,
}

impl SnsPush {
    pub fn new(client: Arc<LazyClient<aws_sdk_sns::Client>>, settings: PushSettings) -> Self {
        Self { client, settings }
    }

    fn application(&self, platform: Platform) -> Option<&String> {
        let applications: &BTreeMap<String, String> = &self.settings.platform_applications;
        applications.get(platform.as_str())
    }
}

#[async_trait]
impl PushService for SnsPush {
    fn mode(&self) -> PushMode {
        if !self.settings.platform_applications.is_empty() {
            PushMode::Devices
        } else if self.settings.topic_arn.is_some() {
            PushMode::Topic
        } else {
            PushMode::Off
        }
    }

    /// Creates the endpoint for a token, or finds and re-enables the one that exists.
    async fn endpoint_for(&self, platform: Platform, token: &str, user: &UserId) -> Result<Option<String>, PortError> {
        let Some(application) = self.application(platform) else { return Ok(None) };
        let created = self
            .client
            .get()
            .create_platform_endpoint()
            .platform_application_arn(application)
            .token(token)
            .custom_user_data(user.as_str())
            .send()
            .await;
        let arn = match created {
            Ok(out) => out
                .endpoint_arn()
                .map(str::to_owned)
                .ok_or_else(|| PortError::Contended("SNS answered no endpoint ARN".into()))?,
            Err(err) => {
                // SNS refuses a second endpoint for a token whose attributes differ, and
                // names the existing one: "Endpoint arn:... already exists with the same Token".
                let message = err.as_service_error().and_then(|e| e.meta().message()).unwrap_or_default().to_owned();
                match message.split_whitespace().find(|w| w.starts_with("arn:")) {
                    Some(arn) => arn.to_owned(),
                    None => return Err(PortError::backend("SNS CreatePlatformEndpoint", err)),
                }
            }
        };
        self.client
            .get()
            .set_endpoint_attributes()
            .endpoint_arn(&arn)
            .attributes("Enabled", "true")
            .attributes("CustomUserData", user.as_str())
            .attributes("Token", token)
            .send()
            .await
            .map_err(|e| PortError::backend("SNS SetEndpointAttributes", e))?;
        Ok(Some(arn))
    }

    async fn delete_endpoint(&self, endpoint: &str) -> Result<(), PortError> {
        self.client
            .get()
            .delete_endpoint()
            .endpoint_arn(endpoint)
            .send()
            .await
            .map_err(|e| PortError::backend("SNS DeleteEndpoint", e))?;
        Ok(())
    }

    async fn publish_to_topic(&self, user: &UserId, n: &Notification) -> Result<(), PortError> {
        let topic = self.settings.topic_arn.as_deref().ok_or(PortError::Unconfigured("PUSH_TOPIC_ARN"))?;
        let mut data = json!({ "channelId": n.channel_id, "messageId": n.message_id });
        if let Some(call) = &n.call {
            data["call"] = json!(call);
        }
        let text = json!({ "title": n.title, "body": n.body, "data": data }).to_string();
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(user.as_str())
            .build()
            .map_err(|e| PortError::backend("SNS message attribute", e))?;
        self.client
            .get()
            .publish()
            .topic_arn(topic)
            .message(text)
            .message_attributes("userId", attribute)
            .send()
            .await
            .map_err(|e| PortError::backend("SNS Publish", e))?;
        Ok(())
    }

    async fn publish_to_device(
        &self,
        endpoint: &str,
        platform: Platform,
        n: &Notification,
    ) -> Result<Published, PortError> {
        let structured = json!({
            "default": format!("{}: {}", n.title, n.body),
            sns_key(platform): platform_payload(platform, n).to_string(),
        })
        .to_string();
        let published =
            self.client.get().publish().target_arn(endpoint).message_structure("json").message(structured).send().await;
        match published {
            Ok(_) => Ok(Published::Sent),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_endpoint_disabled_exception()) => {
                Ok(Published::EndpointDisabled)
            }
            Err(err) => Err(PortError::backend("SNS Publish", err)),
        }
    }
}
