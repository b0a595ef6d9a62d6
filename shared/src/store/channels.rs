//! The Channels table: one partition per channel holding its meta item, one item per
//! member and the short-lived dedupe rows of recent sends.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use serde::{Deserialize, Serialize};

use super::{StoreError, keys};
use crate::ids::{Bucket, MessageId};
use crate::model::{ChannelId, ChannelKind, MemberRole, UserId};

/// The channel's own item: what kind it is, its message counter and the buckets that
/// hold messages (so history never asks an empty bucket).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaItem {
    pk: String,
    sk: String,
    kind: ChannelKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    seq: u64,
    last_message_id: u64,
    #[serde(
        default,
        with = "serde_dynamo::number_set",
        skip_serializing_if = "Vec::is_empty"
    )]
    buckets: Vec<i64>,
    created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberItem {
    pk: String,
    sk: String,
    /// Also the partition key of the `UserChannels` index ("which channels am I in").
    user_id: UserId,
    role: MemberRole,
    joined_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelMeta {
    pub id: ChannelId,
    pub kind: ChannelKind,
    pub name: Option<String>,
    /// Number of messages so far; the next message gets `seq + 1`.
    pub seq: u64,
    pub last_message_id: MessageId,
    /// Buckets holding at least one message, ascending.
    pub buckets: Vec<Bucket>,
}

impl ChannelMeta {
    /// Reads a raw meta item (for example one DynamoDB returned with a failed condition).
    pub fn from_item(
        item: std::collections::HashMap<String, AttributeValue>,
    ) -> Result<Self, StoreError> {
        ChannelMeta::try_from(serde_dynamo::from_item::<_, MetaItem>(item)?)
    }
}

impl TryFrom<MetaItem> for ChannelMeta {
    type Error = StoreError;
    fn try_from(item: MetaItem) -> Result<Self, StoreError> {
        let mut buckets: Vec<Bucket> = item.buckets.into_iter().map(Bucket).collect();
        buckets.sort();
        Ok(ChannelMeta {
            id: ChannelId::parse(item.pk).map_err(|e| StoreError::Conflict(e.to_string()))?,
            kind: item.kind,
            name: item.name,
            seq: item.seq,
            last_message_id: MessageId::from_u64(item.last_message_id),
            buckets,
        })
    }
}

/// A channel's meta item and its members, as read for a send.
#[derive(Debug, Clone)]
pub struct Roster {
    pub meta: ChannelMeta,
    pub members: Vec<(UserId, MemberRole)>,
}

impl Roster {
    pub fn is_member(&self, user: &UserId) -> bool {
        self.members.iter().any(|(member, _)| member == user)
    }

    pub fn member_ids(&self) -> Vec<UserId> {
        self.members.iter().map(|(id, _)| id.clone()).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateChannelError {
    #[error("channel already exists")]
    AlreadyExists,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Channels<'a> {
    client: &'a Client,
    table: &'a str,
}

impl<'a> Channels<'a> {
    pub fn new(client: &'a Client, table: &'a str) -> Self {
        Self { client, table }
    }

    /// Creates a channel with its members. The meta item is written first and only once
    /// (conditional), then members in batches of 25.
    pub async fn create(
        &self,
        id: &ChannelId,
        kind: ChannelKind,
        name: Option<&str>,
        members: &[(UserId, MemberRole)],
        now_ms: i64,
    ) -> Result<(), CreateChannelError> {
        let meta = MetaItem {
            pk: id.to_string(),
            sk: keys::CHANNEL_META_SK.into(),
            kind,
            name: name.map(str::to_owned),
            seq: 0,
            last_message_id: 0,
            buckets: Vec::new(),
            created_at: now_ms,
        };
        let put = self
            .client
            .put_item()
            .table_name(self.table)
            .set_item(Some(
                serde_dynamo::to_item(&meta).map_err(StoreError::from)?,
            ))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        if let Err(err) = put {
            if err
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception())
            {
                return Err(CreateChannelError::AlreadyExists);
            }
            return Err(StoreError::aws("PutItem", &err).into());
        }

        for chunk in members.chunks(25) {
            let mut requests = Vec::with_capacity(chunk.len());
            for (user, role) in chunk {
                let item = MemberItem {
                    pk: id.to_string(),
                    sk: keys::member_sk(user),
                    user_id: user.clone(),
                    role: *role,
                    joined_at: now_ms,
                };
                let put = PutRequest::builder()
                    .set_item(Some(
                        serde_dynamo::to_item(&item).map_err(StoreError::from)?,
                    ))
                    .build()
                    .map_err(|e| StoreError::Conflict(e.to_string()))?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            self.batch_write(requests).await?;
        }
        Ok(())
    }

    async fn batch_write(&self, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for attempt in 0..8u32 {
            let out = self
                .client
                .batch_write_item()
                .request_items(self.table, requests)
                .send()
                .await
                .map_err(|e| StoreError::aws("BatchWriteItem", &e))?;
            requests = out
                .unprocessed_items
                .and_then(|mut left| left.remove(self.table))
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
        }
        Err(StoreError::Conflict(
            "BatchWriteItem kept returning unprocessed items".into(),
        ))
    }

    /// The meta item and all members in one Query (consistent read). `None` when the
    /// channel does not exist.
    pub async fn roster(&self, id: &ChannelId) -> Result<Option<Roster>, StoreError> {
        let (low, high) = keys::ROSTER_SK_RANGE;
        let mut pages = self
            .client
            .query()
            .table_name(self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
            .expression_attribute_values(":pk", AttributeValue::S(id.to_string()))
            .expression_attribute_values(":low", AttributeValue::S(low.into()))
            .expression_attribute_values(":high", AttributeValue::S(high.into()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();

        let mut meta = None;
        let mut members = Vec::new();
        while let Some(item) = pages
            .try_next()
            .await
            .map_err(|e| StoreError::aws("Query", &e))?
        {
            match item.get("sk") {
                Some(AttributeValue::S(sk)) if sk == keys::CHANNEL_META_SK => {
                    meta = Some(ChannelMeta::try_from(serde_dynamo::from_item::<
                        _,
                        MetaItem,
                    >(item)?)?);
                }
                _ => {
                    let member: MemberItem = serde_dynamo::from_item(item)?;
                    members.push((member.user_id, member.role));
                }
            }
        }
        Ok(meta.map(|meta| Roster { meta, members }))
    }

    /// The meta item and whether `user` is a member, in one BatchGetItem.
    pub async fn meta_for_member(
        &self,
        id: &ChannelId,
        user: &UserId,
    ) -> Result<(Option<ChannelMeta>, bool), StoreError> {
        let key = |sk: String| {
            HashMap::from([
                ("pk".to_owned(), AttributeValue::S(id.to_string())),
                ("sk".to_owned(), AttributeValue::S(sk)),
            ])
        };
        let keys_and_attributes = KeysAndAttributes::builder()
            .keys(key(keys::CHANNEL_META_SK.into()))
            .keys(key(keys::member_sk(user)))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Conflict(e.to_string()))?;
        let mut request = HashMap::from([(self.table.to_owned(), keys_and_attributes)]);
        let mut meta = None;
        let mut is_member = false;
        for attempt in 0..8u32 {
            let out = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(|e| StoreError::aws("BatchGetItem", &e))?;
            for item in out
                .responses
                .and_then(|mut r| r.remove(self.table))
                .unwrap_or_default()
            {
                match item.get("sk") {
                    Some(AttributeValue::S(sk)) if sk == keys::CHANNEL_META_SK => {
                        meta = Some(ChannelMeta::try_from(serde_dynamo::from_item::<
                            _,
                            MetaItem,
                        >(item)?)?);
                    }
                    _ => is_member = true,
                }
            }
            request = out.unprocessed_keys.unwrap_or_default();
            if request.is_empty() {
                return Ok((meta, is_member));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
        }
        Err(StoreError::Conflict(
            "BatchGetItem kept returning unprocessed keys".into(),
        ))
    }

    /// The meta item alone (consistent read): used to retry a send after a concurrent one.
    pub async fn meta(&self, id: &ChannelId) -> Result<Option<ChannelMeta>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table)
            .key("pk", AttributeValue::S(id.to_string()))
            .key("sk", AttributeValue::S(keys::CHANNEL_META_SK.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", &e))?;
        match out.item {
            Some(item) => Ok(Some(ChannelMeta::try_from(serde_dynamo::from_item::<
                _,
                MetaItem,
            >(item)?)?)),
            None => Ok(None),
        }
    }
}
