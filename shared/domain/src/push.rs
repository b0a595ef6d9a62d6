//! Push notifications for members with no live connection: to each of their registered
//! devices (or, in a deployment without mobile apps, to one topic with the user id as an
//! attribute). What a push says, who gets one, and when a device is dropped are here; how
//! it travels is the [`crate::ports::PushService`]'s.

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::app::App;
use crate::error::ChatError;
pub use crate::http::{DeviceView, Platform};
use crate::model::{Message, UserId};
use crate::ports::{DeviceRecord, Notification, Published, PushMode};

/// Characters of a message's text a push shows; the rest stays on the server.
pub const PREVIEW_CHARS: usize = 100;
/// Push devices one user can register.
pub const MAX_PUSH_DEVICES: usize = 20;
/// Publishes in flight at once: a send's ack waits for its pushes, so they go together
/// rather than one device after another.
const PUSH_CONCURRENCY: usize = 16;

/// The same token on the same platform is the same device: registering again is idempotent.
pub fn device_id(platform: Platform, token: &str) -> String {
    hex::encode(&Sha256::digest(format!("{}\n{token}", platform.as_str()).as_bytes())[..10])
}

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
    let endpoint_arn = app.push().endpoint_for(platform, token, user).await?;
    let record = DeviceRecord { platform, endpoint_arn, enabled: true, created_at: app.now_ms() };
    app.users().put_device(user, &id, &record).await?;
    info!(%user, device = %id, platform = platform.as_str(), "device registered");
    Ok(DeviceView { device_id: id, platform, enabled: true, has_endpoint: record.endpoint_arn.is_some() })
}

pub async fn unregister(app: &App, user: &UserId, device: &str) -> Result<(), ChatError> {
    let removed = app
        .users()
        .remove_device(user, device)
        .await?
        .ok_or_else(|| ChatError::NotFound(format!("no device {device}")))?;
    if let Some(endpoint) = removed.endpoint_arn
        && let Err(err) = app.push().delete_endpoint(&endpoint).await
    {
        warn!(%user, %device, error = %err, "could not delete the push endpoint");
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

/// What the push for `message` says: who wrote it (and where), and a preview of its text
/// (never the whole of a long one).
pub fn notification(message: &Message, channel_name: Option<&str>) -> Notification {
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
    Notification { title, body, channel_id: message.channel_id.clone(), message_id: message.message_id, call: None }
}

/// What one round of pushes did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushReport {
    pub published: usize,
    pub disabled: usize,
    pub failed: usize,
}

/// What one publish did.
enum Outcome {
    Sent,
    /// The endpoint is disabled (a dead token): this user's device.
    Disabled(UserId, String),
    Failed,
}

/// Pushes `message` to `users` (members with no live connection, not muted).
pub async fn notify(app: &App, users: &[UserId], message: &Message, channel_name: Option<&str>) -> PushReport {
    publish(app, users, &notification(message, channel_name)).await
}

/// What a push about a reaction says: who reacted with what, to which message.
pub fn reaction_notification(
    reactor: &UserId,
    emoji: &crate::model::Emoji,
    message: &Message,
    channel_name: Option<&str>,
) -> Notification {
    let about = notification(message, channel_name);
    let title = match channel_name {
        Some(name) => format!("{reactor} reacted {emoji} in {name}"),
        None => format!("{reactor} reacted {emoji}"),
    };
    Notification { title, ..about }
}

/// Pushes `notification` to each of `users`' enabled devices (or the topic).
pub async fn publish(app: &App, users: &[UserId], notification: &Notification) -> PushReport {
    let mut report = PushReport::default();
    let mode = app.push().mode();
    if users.is_empty() || mode == PushMode::Off {
        return report;
    }
    let mut publishes: Vec<futures::future::BoxFuture<'_, Outcome>> = Vec::new();
    if mode == PushMode::Topic {
        for user in users {
            publishes.push(Box::pin(async move {
                match app.push().publish_to_topic(user, notification).await {
                    Ok(()) => Outcome::Sent,
                    Err(err) => {
                        warn!(%user, error = %err, "topic publish failed");
                        Outcome::Failed
                    }
                }
            }));
        }
    } else {
        let devices = match app.users().devices(users).await {
            Ok(devices) => devices,
            Err(err) => {
                warn!(error = %err, "could not read devices; no pushes");
                return report;
            }
        };
        for (user, devices) in devices {
            for (device, record) in devices {
                let Some(endpoint) = record.endpoint_arn.clone().filter(|_| record.enabled) else { continue };
                let user = user.clone();
                publishes.push(Box::pin(async move {
                    match app.push().publish_to_device(&endpoint, record.platform, notification).await {
                        Ok(Published::Sent) => Outcome::Sent,
                        Ok(Published::EndpointDisabled) => Outcome::Disabled(user, device),
                        Err(err) => {
                            warn!(%user, %device, error = %err, "push failed");
                            Outcome::Failed
                        }
                    }
                }));
            }
        }
    }
    let outcomes: Vec<Outcome> = futures::stream::iter(publishes).buffer_unordered(PUSH_CONCURRENCY).collect().await;
    for outcome in outcomes {
        let metric = match outcome {
            Outcome::Sent => crate::metrics::PUSHES_SENT,
            Outcome::Disabled(..) => crate::metrics::PUSHES_DISABLED,
            Outcome::Failed => crate::metrics::PUSHES_FAILED,
        };
        crate::metrics::count(metric, 1);
        match outcome {
            Outcome::Sent => report.published += 1,
            Outcome::Failed => report.failed += 1,
            Outcome::Disabled(user, device) => {
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
