//! Files in S3: the domain's [`MediaStore`] port. Uploads are presigned POSTs whose policy
//! makes S3 itself enforce the key, the exact size and the content type (the SDK has no
//! presigned POST: the policy is signed here with SigV4); downloads are presigned GETs.

use std::sync::Arc;

use crate::lazy::LazyClient;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::presigning::PresigningConfig;
use base64::Engine as _;
use chat_domain::PortError;
use chat_domain::ports::{MediaStore, StoredObject, UploadForm};
use serde_json::json;

/// How long a download URL stays valid.
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(60 * 60);

/// The tag every upload starts with; template.yaml's lifecycle rule expires objects that
/// still carry it a day later. Attaching a file to a message retags it `attached=yes`.
pub const UNATTACHED_TAGGING: &str =
    "<Tagging><TagSet><Tag><Key>attached</Key><Value>no</Value></Tag></TagSet></Tagging>";

fn failed(what: &'static str, err: impl std::error::Error + Send + Sync + 'static) -> PortError {
    PortError::backend(what, err)
}

/// The uploads bucket, with what signing its POST policies takes.
#[derive(Clone)]
pub struct S3Files {
    client: Arc<LazyClient<aws_sdk_s3::Client>>,
    bucket: String,
    /// For signing presigned POST uploads.
    credentials: Option<SharedCredentialsProvider>,
    region: Option<String>,
}

impl S3Files {
    pub fn new(
        client: Arc<LazyClient<aws_sdk_s3::Client>>,
        bucket: String,
        credentials: Option<SharedCredentialsProvider>,
        region: Option<String>,
    ) -> Self {
        Self { client, bucket, credentials, region }
    }

    async fn presigned_get(&self, key: &str) -> Result<String, PortError> {
        let config = PresigningConfig::expires_in(DOWNLOAD_URL_TTL).map_err(|e| failed("S3 presigning", e))?;
        let request = self
            .client
            .get()
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| failed("S3 presigning", e))?;
        Ok(request.uri().to_owned())
    }

    /// The bucket's URL as the SDK addresses it (virtual-hosted in AWS, path-style against
    /// a local endpoint): a presigned GET of the key, minus the key and the query.
    async fn bucket_url(&self, key: &str) -> Result<String, PortError> {
        let presigned = self.presigned_get(key).await?;
        let without_query = presigned.split('?').next().unwrap_or_default();
        let encoded_key: String = key.split('/').map(urlencode).collect::<Vec<_>>().join("/");
        without_query
            .strip_suffix(&encoded_key)
            .or_else(|| without_query.strip_suffix(key))
            .map(|base| base.trim_end_matches('/').to_owned() + "/")
            .ok_or_else(|| PortError::Contended(format!("unexpected presigned URL shape: {without_query}")))
    }
}

#[async_trait]
impl MediaStore for S3Files {
    async fn upload_form(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        valid_for: Duration,
    ) -> Result<UploadForm, PortError> {
        let now = SystemTime::now();
        let expires_at = now + valid_for;
        let credentials = self
            .credentials
            .as_ref()
            .ok_or(PortError::Unconfigured("AWS credentials to sign uploads with"))?
            .provide_credentials()
            .await
            .map_err(|e| failed("loading AWS credentials", e))?;
        let region = self.region.as_deref().unwrap_or("us-east-1");
        let amz_date = amz_date(now);
        let credential = format!("{}/{}/{region}/s3/aws4_request", credentials.access_key_id(), &amz_date[..8]);
        let mut conditions = vec![
            json!({"bucket": self.bucket}),
            json!({"key": key}),
            json!({"Content-Type": content_type}),
            // Exactly the declared size: S3 refuses anything else.
            json!(["content-length-range", size, size]),
            json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}),
            json!({"x-amz-credential": credential}),
            json!({"x-amz-date": amz_date}),
            // Uploads start tagged as not attached: the bucket's lifecycle rule removes
            // those after a day unless a message attaches them.
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
            ("key".to_owned(), key.to_owned()),
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
        Ok(UploadForm {
            url: self.bucket_url(key).await?,
            fields,
            expires_at_ms: expires_at.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default(),
        })
    }

    async fn download_url(&self, key: &str) -> Result<String, PortError> {
        self.presigned_get(key).await
    }

    async fn head(&self, key: &str) -> Result<Option<StoredObject>, PortError> {
        match self.client.get().head_object().bucket(&self.bucket).key(key).send().await {
            Ok(head) => Ok(Some(StoredObject {
                size: head.content_length().unwrap_or_default() as u64,
                content_type: head.content_type().unwrap_or_default().to_owned(),
            })),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(err) => Err(failed("S3 HeadObject", err)),
        }
    }

    async fn mark_attached(&self, key: &str) -> Result<(), PortError> {
        let tag =
            aws_sdk_s3::types::Tag::builder().key("attached").value("yes").build().map_err(|e| failed("S3 tag", e))?;
        let tags = aws_sdk_s3::types::Tagging::builder().tag_set(tag).build().map_err(|e| failed("S3 tagging", e))?;
        self.client
            .get()
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .tagging(tags)
            .send()
            .await
            .map_err(|e| failed("S3 PutObjectTagging", e))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        // S3 answers 204 for a key that is gone already.
        self.client
            .get()
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| failed("S3 DeleteObject", e))?;
        Ok(())
    }
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
    fn amz_dates_have_the_sigv4_shape() {
        let time = UNIX_EPOCH + Duration::from_secs(1_795_422_900);
        assert_eq!(amz_date(time), "20261123T083500Z");
        assert_eq!(iso8601(time), "2026-11-23T08:35:00Z");
    }
}
