//! Files in S3: presigned POST uploads (size and content type enforced by S3 itself),
//! checks that a message only names its sender's own uploads in that channel, and
//! short-lived presigned download URLs for readers.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_s3::presigning::PresigningConfig;
use base64::Engine as _;
pub use crate::http::UploadGrant;
use serde_json::json;
use tracing::warn;

use crate::app::App;
use crate::error::ChatError;
use crate::model::{Attachment, ChannelId, MAX_ATTACHMENTS, Message, UserId};
use crate::store::StoreError;

/// How long an upload grant and a download URL stay valid.
pub const UPLOAD_GRANT_TTL: Duration = Duration::from_secs(15 * 60);
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(60 * 60);
const MAX_FILE_NAME_CHARS: usize = 200;

fn internal(detail: impl Into<String>) -> ChatError {
    ChatError::Internal(StoreError::Conflict(detail.into()))
}

/// Keys are `uploads/{channelId}/{userId}/{random}/{file name}`: the channel and uploader
/// are part of the key, which is what lets `send` check an attachment cheaply.
fn key_prefix(channel: &ChannelId, user: &UserId) -> String {
    format!("uploads/{channel}/{user}/")
}

fn safe_file_name(name: &str) -> Result<String, ChatError> {
    let cleaned: String = name
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .collect();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') || name.chars().count() > MAX_FILE_NAME_CHARS {
        return Err(ChatError::InvalidRequest(format!("fileName must be 1-{MAX_FILE_NAME_CHARS} characters")));
    }
    Ok(cleaned)
}

/// The tag every upload starts with; template.yaml's lifecycle rule expires objects that
/// still carry it a day later.
pub const UNATTACHED_TAGGING: &str =
    "<Tagging><TagSet><Tag><Key>attached</Key><Value>no</Value></Tag></TagSet></Tagging>";

/// A presigned POST for one file of exactly `size` bytes and `content_type`, for a member.
pub async fn grant_upload(
    app: &App,
    user: &UserId,
    channel: &ChannelId,
    file_name: &str,
    content_type: &str,
    size: u64,
) -> Result<UploadGrant, ChatError> {
    crate::membership::roster_for_member(app, user, channel).await?;
    let settings = &app.config.uploads;
    if !settings.allowed_types.iter().any(|t| t == content_type) {
        return Err(ChatError::InvalidRequest(format!(
            "content type {content_type:?} is not allowed; allowed: {}",
            settings.allowed_types.join(", ")
        )));
    }
    if size == 0 {
        return Err(ChatError::InvalidRequest("size must be at least 1 byte".into()));
    }
    if size > settings.max_bytes {
        return Err(ChatError::TooLarge(format!("size {size} is over the limit of {} bytes", settings.max_bytes)));
    }
    let key = format!(
        "{}{}/{}",
        key_prefix(channel, user),
        hex::encode(rand::random::<[u8; 8]>()),
        safe_file_name(file_name)?
    );
    let now = SystemTime::now();
    let expires_at = now + UPLOAD_GRANT_TTL;
    let credentials = app
        .credentials
        .as_ref()
        .ok_or_else(|| internal("no AWS credentials provider to sign uploads with"))?
        .provide_credentials()
        .await
        .map_err(|e| internal(format!("no AWS credentials to sign with: {e}")))?;
    let region = app.region.as_deref().unwrap_or("us-east-1");
    let amz_date = amz_date(now);
    let credential = format!("{}/{}/{region}/s3/aws4_request", credentials.access_key_id(), &amz_date[..8]);
    let mut conditions = vec![
        json!({"bucket": settings.bucket}),
        json!({"key": key}),
        json!({"Content-Type": content_type}),
        // Exactly the declared size: S3 refuses anything else.
        json!(["content-length-range", size, size]),
        json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}),
        json!({"x-amz-credential": credential}),
        json!({"x-amz-date": amz_date}),
        // Uploads start tagged as not attached: the bucket's lifecycle rule removes those
        // after a day unless a message attaches them (`check_attachments` retags).
        json!({"tagging": UNATTACHED_TAGGING}),
    ];
    if let Some(token) = credentials.session_token() {
        conditions.push(json!({"x-amz-security-token": token}));
    }
    let policy = json!({ "expiration": iso8601(expires_at), "conditions": conditions });
    let policy = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
    let signing_key = aws_sigv4::sign::v4::generate_signing_key(credentials.secret_access_key(), now, region, "s3");
    let signature = aws_sigv4::sign::v4::calculate_signature(signing_key, policy.as_bytes());

    let mut fields = BTreeMap::from([
        ("key".to_owned(), key.clone()),
        ("Content-Type".to_owned(), content_type.to_owned()),
        ("policy".to_owned(), policy),
        ("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
        ("x-amz-credential".to_owned(), credential),
        ("x-amz-date".to_owned(), amz_date),
        ("x-amz-signature".to_owned(), signature),
        ("tagging".to_owned(), UNATTACHED_TAGGING.to_owned()),
    ]);
    if let Some(token) = credentials.session_token() {
        fields.insert("x-amz-security-token".into(), token.to_owned());
    }
    Ok(UploadGrant {
        url: bucket_url(app, &key).await?,
        fields,
        key,
        expires_at: expires_at.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default(),
        max_bytes: size,
    })
}

/// The bucket's URL as the SDK addresses it (virtual-hosted in AWS, path-style against a
/// local endpoint): a presigned GET of the key, minus the key and the query.
async fn bucket_url(app: &App, key: &str) -> Result<String, ChatError> {
    let presigned = presigned_get(app, key).await?;
    let without_query = presigned.split('?').next().unwrap_or_default();
    let encoded_key: String = key.split('/').map(urlencode).collect::<Vec<_>>().join("/");
    without_query
        .strip_suffix(&encoded_key)
        .or_else(|| without_query.strip_suffix(key))
        .map(|base| base.trim_end_matches('/').to_owned() + "/")
        .ok_or_else(|| internal(format!("unexpected presigned URL shape: {without_query}")))
}

fn urlencode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn presigned_get(app: &App, key: &str) -> Result<String, ChatError> {
    let config = PresigningConfig::expires_in(DOWNLOAD_URL_TTL).map_err(|e| internal(e.to_string()))?;
    let request = app
        .s3
        .get_object()
        .bucket(&app.config.uploads.bucket)
        .key(key)
        .presigned(config)
        .await
        .map_err(|e| internal(format!("presigning failed: {e}")))?;
    Ok(request.uri().to_owned())
}

/// Checks the attachments a sender names: their own uploads into this channel, present in
/// S3 with the declared size and type.
pub async fn check_attachments(
    app: &App,
    sender: &UserId,
    channel: &ChannelId,
    attachments: Vec<Attachment>,
) -> Result<Vec<Attachment>, ChatError> {
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(ChatError::InvalidRequest(format!("at most {MAX_ATTACHMENTS} attachments per message")));
    }
    let prefix = key_prefix(channel, sender);
    let mut checked = Vec::with_capacity(attachments.len());
    for attachment in attachments {
        if !attachment.key.starts_with(&prefix) || attachment.key.contains("..") {
            return Err(ChatError::Forbidden(format!("{} is not your upload in this channel", attachment.key)));
        }
        let head = app.s3.head_object().bucket(&app.config.uploads.bucket).key(&attachment.key).send().await;
        let head = match head {
            Ok(head) => head,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {
                return Err(ChatError::NotFound(format!("nothing was uploaded to {}", attachment.key)));
            }
            Err(err) => {
                return Err(internal(aws_smithy_types::error::display::DisplayErrorContext(&err).to_string()));
            }
        };
        let size = head.content_length().unwrap_or_default() as u64;
        let content_type = head.content_type().unwrap_or_default().to_owned();
        if size != attachment.size || content_type != attachment.content_type {
            return Err(ChatError::InvalidRequest(format!(
                "{} is {size} bytes of {content_type}, not what the message says",
                attachment.key
            )));
        }
        checked.push(Attachment { url: None, file_name: safe_file_name(&attachment.file_name)?, ..attachment });
    }
    // Attached files are kept: the tag the lifecycle rule looks for goes before the message
    // is stored (a send that then fails leaves a kept file, never a message without one).
    let tags = aws_sdk_s3::types::Tagging::builder()
        .tag_set(
            aws_sdk_s3::types::Tag::builder()
                .key("attached")
                .value("yes")
                .build()
                .map_err(|e| internal(e.to_string()))?,
        )
        .build()
        .map_err(|e| internal(e.to_string()))?;
    let retags = checked.iter().map(|attachment| {
        app.s3.put_object_tagging().bucket(&app.config.uploads.bucket).key(&attachment.key).tagging(tags.clone()).send()
    });
    for result in futures::future::join_all(retags).await {
        result.map_err(|e| internal(aws_smithy_types::error::display::DisplayErrorContext(&e).to_string()))?;
    }
    Ok(checked)
}

/// Fills in download URLs (presigning is local: no request).
pub async fn with_download_urls(app: &App, mut message: Message) -> Message {
    for attachment in &mut message.attachments {
        match presigned_get(app, &attachment.key).await {
            Ok(url) => attachment.url = Some(url),
            Err(err) => warn!(key = %attachment.key, error = %err, "no download URL"),
        }
    }
    message
}

/// A download URL for one attachment of a channel, for a member.
pub async fn download_url(app: &App, user: &UserId, channel: &ChannelId, key: &str) -> Result<String, ChatError> {
    crate::membership::roster_for_member(app, user, channel).await?;
    if !key.starts_with(&format!("uploads/{channel}/")) || key.contains("..") {
        return Err(ChatError::NotFound(format!("no attachment {key} in channel {channel}")));
    }
    presigned_get(app, key).await
}

/// Deletes the files of a deleted message. Answers whether all are gone (a file that was
/// gone already counts).
pub async fn delete_files(app: &App, attachments: &[Attachment]) -> bool {
    let mut all_gone = true;
    for attachment in attachments {
        let result = app.s3.delete_object().bucket(&app.config.uploads.bucket).key(&attachment.key).send().await;
        // S3 answers 204 for a key that is gone already.
        if let Err(err) = result {
            all_gone = false;
            warn!(key = %attachment.key, error = %aws_smithy_types::error::display::DisplayErrorContext(&err), "could not delete a file");
        }
    }
    all_gone
}

fn civil(time: SystemTime) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from(time)
}

/// `2026-11-23T09:15:00Z`
fn iso8601(time: SystemTime) -> String {
    civil(time).fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_default()
}

/// `20261123T091500Z`
fn amz_date(time: SystemTime) -> String {
    let seconds = civil(time).secs();
    let iso = aws_smithy_types::DateTime::from_secs(seconds)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default();
    iso.replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_made_safe_for_keys() {
        assert_eq!(safe_file_name("holiday photo (1).JPG").unwrap(), "holiday_photo__1_.JPG");
        assert_eq!(safe_file_name("../../etc/passwd").unwrap(), ".._.._etc_passwd");
        assert!(safe_file_name("  ").is_err());
        assert!(safe_file_name("..").is_err());
    }

    #[test]
    fn amz_dates_have_the_sigv4_shape() {
        let time = UNIX_EPOCH + Duration::from_secs(1_795_422_900);
        assert_eq!(amz_date(time), "20261123T083500Z");
        assert_eq!(iso8601(time), "2026-11-23T08:35:00Z");
    }
}
