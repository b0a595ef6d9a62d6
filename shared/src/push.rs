//! Push notifications for members with no live connection, through SNS: to each of their
//! registered devices through the platform application of its platform (FCM, APNs), or,
//! in a deployment without mobile apps, to one topic with the user id as a message
//! attribute (subscribers filter on it).

use std::collections::HashMap;

use aws_sdk_sns::types::MessageAttributeValue;
use aws_smithy_types::error::display::DisplayErrorContext;
pub use crate::http::{DeviceView, Platform};
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::app::App;
use crate::error::ChatError;
use crate::model::{Message, UserId};
use crate::store::StoreError;
use crate::store::users::DeviceRecord;

/// Characters of a message's text a push shows; the rest stays on the server.
pub const PREVIEW_CHARS: usize = 100;

fn internal(detail: impl Into<String>) -> ChatError {
    ChatError::Internal(StoreError::Conflict(detail.into()))
}

/// The same token on the same platform is the same device: registering again is idempotent.
fn device_id(platform: Platform, token: &str) -> String {
    hex::encode(&Sha256::digest(format!("{}\n{token}", platform.as_str()).as_bytes())[..10])
}

/// Push devices one user can register.
pub const MAX_PUSH_DEVICES: usize = 20;

/// Registers (or re-enables) a device token for `user`.
pub async fn register(app: &App, user: &UserId, platform: Platform, token: &str) -> Result<DeviceView, ChatError> {
    let token = token.trim();
    if token.is_empty() || token.len() > 4096 {
        return Err(ChatError::InvalidRequest("token must be 1-4096 characters".into()));
    }
    let id = device_id(platform, token);
    let known = devices(app, user).await?;
    if known.len() >= MAX_PUSH_DEVICES && !known.iter().any(|d| d.device_id == id) {
        return Err(ChatError::Conflict(format!("at most {MAX_PUSH_DEVICES} push devices; remove one first")));
    }
    let endpoint_arn = match app.config.push.platform_applications.get(platform.as_str()) {
        Some(application) => Some(endpoint_for(app, application, token, user).await?),
        None => None,
    };
    let record = DeviceRecord { platform, endpoint_arn, enabled: true, created_at: app.now_ms() };
    app.users().put_device(user, &id, &record).await?;
    info!(%user, device = %id, platform = platform.as_str(), "device registered");
    Ok(DeviceView { device_id: id, platform, enabled: true, has_endpoint: record.endpoint_arn.is_some() })
}

/// Creates the SNS endpoint for a token, or finds and re-enables the one that exists.
async fn endpoint_for(app: &App, application: &str, token: &str, user: &UserId) -> Result<String, ChatError> {
    let created = app
        .sns
        .create_platform_endpoint()
        .platform_application_arn(application)
        .token(token)
        .custom_user_data(user.as_str())
        .send()
        .await;
    let arn = match created {
        Ok(out) => out.endpoint_arn().map(str::to_owned).ok_or_else(|| internal("SNS answered no endpoint ARN"))?,
        Err(err) => {
            // SNS refuses a second endpoint for a token whose attributes differ, and names
            // the existing one in the message: "Endpoint arn:... already exists with the same Token ...".
            let message = err.as_service_error().and_then(|e| e.meta().message()).unwrap_or_default().to_owned();
            match message.split_whitespace().find(|w| w.starts_with("arn:")) {
                Some(arn) => arn.to_owned(),
                None => return Err(internal(DisplayErrorContext(&err).to_string())),
            }
        }
    };
    app.sns
        .set_endpoint_attributes()
        .endpoint_arn(&arn)
        .attributes("Enabled", "true")
        .attributes("CustomUserData", user.as_str())
        .attributes("Token", token)
        .send()
        .await
        .map_err(|e| internal(DisplayErrorContext(&e).to_string()))?;
    Ok(arn)
}

pub async fn unregister(app: &App, user: &UserId, device: &str) -> Result<(), ChatError> {
    let removed = app
        .users()
        .remove_device(user, device)
        .await?
        .ok_or_else(|| ChatError::NotFound(format!("no device {device}")))?;
    if let Some(arn) = removed.endpoint_arn
        && let Err(err) = app.sns.delete_endpoint().endpoint_arn(&arn).send().await
    {
        warn!(%user, %device, error = %DisplayErrorContext(&err), "could not delete the SNS endpoint");
    }
    Ok(())
}

pub async fn devices(app: &App, user: &UserId) -> Result<Vec<DeviceView>, ChatError> {
    let mut devices: Vec<DeviceView> = app
        .users()
        .devices(std::slice::from_ref(user))
        .await?
        .remove(user)
        .unwrap_or_default()
        .into_iter()
        .map(|(id, d)| DeviceView {
            device_id: id,
            platform: d.platform,
            enabled: d.enabled,
            has_endpoint: d.endpoint_arn.is_some(),
        })
        .collect();
    devices.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    Ok(devices)
}

/// The key of a platform's payload in an SNS `MessageStructure=json` message.
fn sns_key(platform: Platform) -> &'static str {
    match platform {
        Platform::Fcm => "GCM",
        Platform::Apns => "APNS",
        Platform::ApnsSandbox => "APNS_SANDBOX",
    }
}

/// Title, body and data of the push for `message` (no full text of long messages).
fn payload(message: &Message, channel_name: Option<&str>) -> (String, String) {
    let title = match channel_name {
        Some(name) => format!("{} in {name}", message.author_id),
        None => message.author_id.to_string(),
    };
    let mut body: String = message.text.chars().take(PREVIEW_CHARS).collect();
    if message.text.chars().count() > PREVIEW_CHARS {
        body.push('…');
    }
    if body.trim().is_empty() && !message.attachments.is_empty() {
        body = format!("sent {} file(s)", message.attachments.len());
    }
    (title, body)
}

/// What one round of pushes did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushReport {
    pub published: usize,
    pub disabled: usize,
    pub failed: usize,
}

/// Publishes in flight at once: a send's ack waits for its pushes, so they go together
/// rather than one device after another.
const PUSH_CONCURRENCY: usize = 16;

/// What one publish did.
enum Published {
    Ok,
    /// The endpoint is disabled (a dead token): this user's device.
    Disabled(UserId, String),
    Failed,
}

/// Pushes `message` to `users` (members with no live connection, not muted).
pub async fn notify(app: &App, users: &[UserId], message: &Message, channel_name: Option<&str>) -> PushReport {
    use futures::StreamExt;
    let mut report = PushReport::default();
    if users.is_empty() {
        return report;
    }
    let (title, body) = payload(message, channel_name);
    let data = json!({ "channelId": message.channel_id, "messageId": message.message_id });
    let mut publishes: Vec<futures::future::BoxFuture<'_, Published>> = Vec::new();
    if app.config.push.platform_applications.is_empty() {
        let Some(topic) = app.config.push.topic_arn.clone() else { return report };
        let text = json!({ "title": title, "body": body, "data": data }).to_string();
        for user in users {
            let (topic, text) = (topic.clone(), text.clone());
            publishes.push(Box::pin(async move {
                let attribute =
                    match MessageAttributeValue::builder().data_type("String").string_value(user.as_str()).build() {
                        Ok(attribute) => attribute,
                        Err(err) => {
                            warn!(error = %err, "bad message attribute");
                            return Published::Failed;
                        }
                    };
                let published = app
                    .sns
                    .publish()
                    .topic_arn(topic)
                    .message(text)
                    .message_attributes("userId", attribute)
                    .send()
                    .await;
                match published {
                    Ok(_) => Published::Ok,
                    Err(err) => {
                        warn!(%user, error = %DisplayErrorContext(&err), "topic publish failed");
                        Published::Failed
                    }
                }
            }));
        }
    } else {
        let devices: HashMap<UserId, Vec<(String, DeviceRecord)>> = match app.users().devices(users).await {
            Ok(devices) => devices,
            Err(err) => {
                warn!(error = %err, "could not read devices; no pushes");
                return report;
            }
        };
        for (user, devices) in devices {
            for (device, record) in devices {
                let Some(endpoint) = record.endpoint_arn.clone().filter(|_| record.enabled) else { continue };
                let platform_payload = match record.platform {
                    Platform::Fcm => json!({ "notification": { "title": title, "body": body }, "data": data }),
                    Platform::Apns | Platform::ApnsSandbox => json!({
                        "aps": { "alert": { "title": title, "body": body }, "sound": "default" },
                        "channelId": message.channel_id,
                        "messageId": message.message_id,
                    }),
                };
                let structured = json!({
                    "default": format!("{title}: {body}"),
                    sns_key(record.platform): platform_payload.to_string(),
                })
                .to_string();
                let user = user.clone();
                publishes.push(Box::pin(async move {
                    let published = app
                        .sns
                        .publish()
                        .target_arn(endpoint)
                        .message_structure("json")
                        .message(structured)
                        .send()
                        .await;
                    match published {
                        Ok(_) => Published::Ok,
                        Err(err) if err.as_service_error().is_some_and(|e| e.is_endpoint_disabled_exception()) => {
                            Published::Disabled(user, device)
                        }
                        Err(err) => {
                            warn!(%user, %device, error = %DisplayErrorContext(&err), "push failed");
                            Published::Failed
                        }
                    }
                }));
            }
        }
    }
    let outcomes: Vec<Published> = futures::stream::iter(publishes).buffer_unordered(PUSH_CONCURRENCY).collect().await;
    for outcome in outcomes {
        match outcome {
            Published::Ok => report.published += 1,
            Published::Failed => report.failed += 1,
            Published::Disabled(user, device) => {
                // The token is dead (app uninstalled): stop trying until it registers again.
                report.disabled += 1;
                if let Err(err) = app.users().disable_device(&user, &device).await {
                    warn!(%user, %device, error = %err, "could not mark a device disabled");
                }
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_token_is_the_same_device() {
        assert_eq!(device_id(Platform::Fcm, "abc"), device_id(Platform::Fcm, "abc"));
        assert_ne!(device_id(Platform::Fcm, "abc"), device_id(Platform::Apns, "abc"));
    }
}
