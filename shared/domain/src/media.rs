//! Files: upload grants (the file store enforces size and type itself), checks that a
//! message only names its sender's own uploads in its channel, and short-lived download
//! URLs for readers. Who may attach or download what is [`crate::access`]'s.

use std::time::Duration;

use tracing::warn;

use crate::access::{self, roster_for_member};
use crate::app::App;
use crate::error::ChatError;
pub use crate::http::UploadGrant;
use crate::model::{Attachment, ChannelId, MAX_ATTACHMENTS, Message, UserId};

/// How long an upload grant stays valid.
pub const UPLOAD_GRANT_TTL: Duration = Duration::from_secs(15 * 60);
const MAX_FILE_NAME_CHARS: usize = 200;

/// A file name made safe for a key: letters, digits, `.`, `-`, `_`; anything else `_`.
pub fn safe_file_name(name: &str) -> Result<String, ChatError> {
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

/// A signed upload for one file of exactly `size` bytes and `content_type`, for a member.
pub async fn grant_upload(
    app: &App,
    user: &UserId,
    channel: &ChannelId,
    file_name: &str,
    content_type: &str,
    size: u64,
) -> Result<UploadGrant, ChatError> {
    roster_for_member(app, user, channel).await?;
    let rules = &app.settings.uploads;
    if !rules.allowed_types.iter().any(|t| t == content_type) {
        return Err(ChatError::InvalidRequest(format!(
            "content type {content_type:?} is not allowed; allowed: {}",
            rules.allowed_types.join(", ")
        )));
    }
    if size == 0 {
        return Err(ChatError::InvalidRequest("size must be at least 1 byte".into()));
    }
    if size > rules.max_bytes {
        return Err(ChatError::TooLarge(format!("size {size} is over the limit of {} bytes", rules.max_bytes)));
    }
    let key = format!(
        "{}{}/{}",
        access::upload_prefix(channel, user),
        hex::encode(rand::random::<[u8; 8]>()),
        safe_file_name(file_name)?
    );
    let form = app.media().upload_form(&key, content_type, size, UPLOAD_GRANT_TTL).await?;
    Ok(UploadGrant { url: form.url, fields: form.fields, key, expires_at: form.expires_at_ms, max_bytes: size })
}

/// Checks the attachments a sender names: their own uploads into this channel, present
/// with the declared size and type. Reads only: [`keep_attachments`] marks them.
pub async fn check_attachments(
    app: &App,
    sender: &UserId,
    channel: &ChannelId,
    attachments: Vec<Attachment>,
) -> Result<Vec<Attachment>, ChatError> {
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(ChatError::InvalidRequest(format!("at most {MAX_ATTACHMENTS} attachments per message")));
    }
    let mut checked = Vec::with_capacity(attachments.len());
    for attachment in attachments {
        if !access::may_attach(&attachment.key, channel, sender) {
            return Err(ChatError::Forbidden(format!("{} is not your upload in this channel", attachment.key)));
        }
        let Some(stored) = app.media().head(&attachment.key).await? else {
            return Err(ChatError::NotFound(format!("nothing was uploaded to {}", attachment.key)));
        };
        if stored.size != attachment.size || stored.content_type != attachment.content_type {
            return Err(ChatError::InvalidRequest(format!(
                "{} is {} bytes of {}, not what the message says",
                attachment.key, stored.size, stored.content_type
            )));
        }
        checked.push(Attachment { url: None, file_name: safe_file_name(&attachment.file_name)?, ..attachment });
    }
    Ok(checked)
}

/// Keeps checked attachments: they are marked attached before the message is stored (a
/// send that then fails leaves a kept file, never a message without one).
pub async fn keep_attachments(app: &App, attachments: &[Attachment]) -> Result<(), ChatError> {
    let kept = attachments.iter().map(|attachment| app.media().mark_attached(&attachment.key));
    for result in futures::future::join_all(kept).await {
        result?;
    }
    Ok(())
}

/// Fills in download URLs (made locally: no request).
pub async fn with_download_urls(app: &App, mut message: Message) -> Message {
    for attachment in &mut message.attachments {
        match app.media().download_url(&attachment.key).await {
            Ok(url) => attachment.url = Some(url),
            Err(err) => warn!(key = %attachment.key, error = %err, "no download URL"),
        }
    }
    message
}

/// A download URL for one file of a channel, for a member.
pub async fn download_url(app: &App, user: &UserId, channel: &ChannelId, key: &str) -> Result<String, ChatError> {
    roster_for_member(app, user, channel).await?;
    if !access::is_channel_file(key, channel) {
        return Err(ChatError::NotFound(format!("no attachment {key} in channel {channel}")));
    }
    Ok(app.media().download_url(key).await?)
}

/// Deletes the files of a deleted message. Answers whether all are gone (a file that was
/// gone already counts).
pub async fn delete_files(app: &App, attachments: &[Attachment]) -> bool {
    let mut all_gone = true;
    for attachment in attachments {
        if let Err(err) = app.media().delete(&attachment.key).await {
            all_gone = false;
            warn!(key = %attachment.key, error = %err, "could not delete a file");
        }
    }
    all_gone
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
}
