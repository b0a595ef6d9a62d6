//! Where the search index lives (port [`IndexFiles`]): each shard's bundles of files are S3
//! objects that never change (`search/{shard}/{bundle}` in the search bucket), and its manifest a
//! Channels item (`search#{shard}`) replaced only under a condition on the version it
//! replaces, so two indexers never publish over each other.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use chat_domain::PortError;
use chat_domain::ports::{IndexFile, IndexFiles, IndexManifest};
use serde::{Deserialize, Serialize};

use crate::lazy::LazyClient;
use crate::store::{StoreError, keys};

/// S3 deletes at most this many keys per request.
const DELETES_PER_REQUEST: usize = 1000;

#[derive(Debug, Serialize, Deserialize)]
struct ManifestItem {
    pk: String,
    sk: String,
    version: u64,
    meta: String,
    files: Vec<IndexFile>,
}

pub struct S3IndexFiles {
    s3: Arc<LazyClient<aws_sdk_s3::Client>>,
    bucket: String,
    dynamodb: Arc<LazyClient<aws_sdk_dynamodb::Client>>,
    channels_table: String,
}

impl S3IndexFiles {
    pub fn new(
        s3: Arc<LazyClient<aws_sdk_s3::Client>>,
        bucket: String,
        dynamodb: Arc<LazyClient<aws_sdk_dynamodb::Client>>,
        channels_table: String,
    ) -> Self {
        Self { s3, bucket, dynamodb, channels_table }
    }
}

fn s3_failed(what: &'static str, err: impl std::error::Error + Send + Sync + 'static) -> PortError {
    PortError::backend(what, err)
}

fn manifest_key(shard: u32) -> crate::store::Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(keys::search_manifest_pk(shard))),
        ("sk".to_owned(), AttributeValue::S(keys::SEARCH_MANIFEST_SK.to_owned())),
    ])
}

#[async_trait]
impl IndexFiles for S3IndexFiles {
    async fn manifests(&self, shards: &[u32]) -> Result<HashMap<u32, IndexManifest>, PortError> {
        if shards.is_empty() {
            return Ok(HashMap::new());
        }
        let keys = shards.iter().map(|s| manifest_key(*s)).collect();
        let items = crate::store::batch_get(self.dynamodb.get(), &self.channels_table, keys, None, true).await?;
        let mut manifests = HashMap::new();
        for item in items {
            let item: ManifestItem = crate::store::from_item(item)?;
            let shard = item.pk.strip_prefix("search#").and_then(|s| s.parse().ok());
            let shard = shard.ok_or_else(|| StoreError::Contended(format!("manifest item {}", item.pk)))?;
            manifests.insert(shard, IndexManifest { version: item.version, meta: item.meta, files: item.files });
        }
        Ok(manifests)
    }

    async fn publish(&self, shard: u32, previous: Option<u64>, next: &IndexManifest) -> Result<bool, PortError> {
        let item = ManifestItem {
            pk: keys::search_manifest_pk(shard),
            sk: keys::SEARCH_MANIFEST_SK.to_owned(),
            version: next.version,
            meta: next.meta.clone(),
            files: next.files.clone(),
        };
        let put = self
            .dynamodb
            .get()
            .put_item()
            .table_name(&self.channels_table)
            .set_item(Some(crate::store::to_item(item)?));
        let put = match previous {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(version) => put
                .condition_expression("version = :previous")
                .expression_attribute_values(":previous", AttributeValue::N(version.to_string())),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(err) => Err(StoreError::aws("PutItem", err).into()),
        }
    }

    async fn read(&self, shard: u32, file: &str) -> Result<Option<Vec<u8>>, PortError> {
        let got = self.s3.get().get_object().bucket(&self.bucket).key(keys::search_file_key(shard, file)).send().await;
        match got {
            Ok(out) => {
                let body = out.body.collect().await.map_err(|e| s3_failed("S3 GetObject body", e))?;
                Ok(Some(body.into_bytes().to_vec()))
            }
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(err) => Err(s3_failed("S3 GetObject", err)),
        }
    }

    async fn write(&self, shard: u32, file: &str, bytes: Vec<u8>) -> Result<(), PortError> {
        self.s3
            .get()
            .put_object()
            .bucket(&self.bucket)
            .key(keys::search_file_key(shard, file))
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| s3_failed("S3 PutObject", e))?;
        Ok(())
    }

    async fn remove(&self, shard: u32, files: &[String]) -> Result<(), PortError> {
        for chunk in files.chunks(DELETES_PER_REQUEST) {
            let objects = chunk
                .iter()
                .map(|file| ObjectIdentifier::builder().key(keys::search_file_key(shard, file)).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| s3_failed("S3 DeleteObjects", e))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| s3_failed("S3 DeleteObjects", e))?;
            self.s3
                .get()
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| s3_failed("S3 DeleteObjects", e))?;
        }
        Ok(())
    }
}
