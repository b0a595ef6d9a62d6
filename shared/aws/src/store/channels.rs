//! The Channels table: one partition per channel holding its meta item, one item per
//! member and the short-lived dedupe rows of recent sends.

use std::sync::Arc;

use crate::lazy::LazyClient;
use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, PutRequest, TransactWriteItem, Update, WriteRequest};
use serde::{Deserialize, Serialize};

use chat_domain::PortError;
use chat_domain::ids::{Bucket, MessageId};
use chat_domain::model::{ChannelId, ChannelKind, MemberRole, UserId};
use chat_domain::ports::{
    ChannelMeta, ChannelStore, CreateChannelError, JoinError, Member, Membership, MembershipChangeError, Roster, Seat,
};

use super::{StoreError, keys};

/// The condition of a Put that must not replace an item.
const IS_NEW: &str = "attribute_not_exists(pk)";

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
    /// The time of the newest claimed seq (`lastAt`): with the seq it makes the newest id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_at: Option<i64>,
    /// Written by the design before claims, whose ids did not follow from seq and time.
    #[serde(default, skip_serializing_if = "is_zero")]
    last_message_id: u64,
    #[serde(default, with = "serde_dynamo::number_set", skip_serializing_if = "Vec::is_empty")]
    buckets: Vec<i64>,
    #[serde(default)]
    member_count: u64,
    /// Direct channels: the two users, so a channel list can name the other one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pair: Vec<UserId>,
    /// Seqs of deleted messages someone may not have read yet (unread counts skip them).
    #[serde(default, with = "serde_dynamo::number_set", skip_serializing_if = "Vec::is_empty")]
    deleted_seqs: Vec<u64>,
    created_at: i64,
    /// Edits and deletions claimed so far (`changeSeq`), and when the newest was.
    #[serde(default)]
    change_seq: u64,
    #[serde(default)]
    last_change_at: i64,
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
    /// The member's read position: the seq and id of the newest message they have read.
    #[serde(default)]
    last_read_seq: u64,
    #[serde(default)]
    last_read_id: u64,
    /// No pushes for this channel.
    #[serde(default)]
    muted: bool,
}

impl MemberItem {
    fn new(channel: &ChannelId, user: &UserId, role: MemberRole, now_ms: i64) -> Self {
        Self {
            pk: channel.to_string(),
            sk: keys::member_sk(user),
            user_id: user.clone(),
            role,
            joined_at: now_ms,
            last_read_seq: 0,
            last_read_id: 0,
            muted: false,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Reads a raw meta item (for example one DynamoDB returned with a failed condition).
pub fn meta_from_item(item: HashMap<String, AttributeValue>) -> Result<ChannelMeta, StoreError> {
    meta_of(super::from_item::<MetaItem>(item)?)
}

fn meta_of(item: MetaItem) -> Result<ChannelMeta, StoreError> {
    {
        let mut buckets: Vec<Bucket> = item.buckets.into_iter().map(Bucket).collect();
        buckets.sort();
        Ok(ChannelMeta {
            id: ChannelId::parse(item.pk).map_err(|e| StoreError::Contended(e.to_string()))?,
            kind: item.kind,
            name: item.name,
            seq: item.seq,
            last_message_id: match item.last_at {
                Some(at) => MessageId::claimed(at, item.seq),
                None => MessageId::from_u64(item.last_message_id),
            },
            buckets,
            member_count: item.member_count,
            pair: item.pair,
            deleted_seqs: item.deleted_seqs,
            created_at: item.created_at,
            change_seq: item.change_seq,
            last_change_at: item.last_change_at,
        })
    }
}

/// The Channels table: [`ChannelStore`].
#[derive(Clone)]
pub struct Channels {
    client: Arc<LazyClient<Client>>,
    table: String,
}

impl Channels {
    pub fn new(client: Arc<LazyClient<Client>>, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    fn new_meta(id: &ChannelId, kind: ChannelKind, name: Option<&str>, members: u64, now_ms: i64) -> MetaItem {
        MetaItem {
            pk: id.to_string(),
            sk: keys::CHANNEL_META_SK.into(),
            kind,
            name: name.map(str::to_owned),
            seq: 0,
            last_at: None,
            last_message_id: 0,
            buckets: Vec::new(),
            member_count: members,
            pair: Vec::new(),
            deleted_seqs: Vec::new(),
            created_at: now_ms,
            change_seq: 0,
            last_change_at: 0,
        }
    }

    /// A direct channel and its two members in one transaction. `Ok(false)` when it exists.
    async fn create_direct(
        &self,
        id: &ChannelId,
        members: &[(UserId, MemberRole)],
        now_ms: i64,
    ) -> Result<bool, CreateChannelError> {
        let mut meta = Self::new_meta(id, ChannelKind::Direct, None, members.len() as u64, now_ms);
        meta.pair = members.iter().map(|(u, _)| u.clone()).collect();
        let mut request = self.client.get().transact_write_items().transact_items(self.put(&meta, Some(IS_NEW))?);
        for (user, role) in members {
            request = request.transact_items(self.put(&MemberItem::new(id, user, *role, now_ms), None)?);
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(err) if cancelled_by_condition(&err, 0) => Ok(false),
            Err(err) => Err(StoreError::aws("TransactWriteItems", err).into()),
        }
    }

    /// A transaction's step moving a channel's member count by `delta`, on `condition`
    /// (with its `values`).
    fn member_count_step<const N: usize>(
        &self,
        id: &ChannelId,
        delta: i64,
        condition: &str,
        values: [(&str, AttributeValue); N],
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(id.to_string()))
            .key("sk", AttributeValue::S(keys::CHANNEL_META_SK.into()))
            .update_expression("ADD memberCount :delta")
            .condition_expression(condition)
            .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()));
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        Ok(TransactWriteItem::builder().update(update.build().map_err(StoreError::build)?).build())
    }

    /// A transaction's Put of `item` into this table, on `condition` when given.
    fn put(&self, item: &impl Serialize, condition: Option<&str>) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(super::to_item(item)?))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(StoreError::build)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    async fn batch_write(&self, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for attempt in 0..8u32 {
            let out = self
                .client
                .get()
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| StoreError::aws("BatchWriteItem", e))?;
            requests = out.unprocessed_items.and_then(|mut left| left.remove(&self.table)).unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
        }
        Err(StoreError::Contended("BatchWriteItem kept returning unprocessed items".into()))
    }

    async fn batch_get(
        &self,
        keys: Vec<(ChannelId, String)>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let keys = keys
            .into_iter()
            .map(|(pk, sk)| {
                HashMap::from([
                    ("pk".to_owned(), AttributeValue::S(pk.to_string())),
                    ("sk".to_owned(), AttributeValue::S(sk)),
                ])
            })
            .collect();
        super::batch_get(self.client.get(), &self.table, keys, None, true).await
    }

    /// The Query of `user`'s member items in the sparse `UserChannels` index.
    fn user_channels(&self, user: &UserId) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .get()
            .query()
            .table_name(&self.table)
            .index_name(keys::USER_CHANNELS_INDEX)
            .key_condition_expression("userId = :user")
            .expression_attribute_values(":user", AttributeValue::S(user.to_string()))
    }
}

fn is_cancelled<R>(err: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, R>) -> bool {
    matches!(err.as_service_error(), Some(TransactWriteItemsError::TransactionCanceledException(_)))
}

/// Whether a transaction was cancelled because the condition of action `index` failed.
fn cancelled_by_condition<R>(
    err: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, R>,
    index: usize,
) -> bool {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
            .cancellation_reasons()
            .get(index)
            .and_then(|r| r.code())
            .is_some_and(|code| code == "ConditionalCheckFailed"),
        _ => false,
    }
}

/// The port, over the table's own calls above.
#[async_trait::async_trait]
impl ChannelStore for Channels {
    async fn create(
        &self,
        id: &ChannelId,
        kind: ChannelKind,
        name: Option<&str>,
        members: &[(UserId, MemberRole)],
        now_ms: i64,
    ) -> Result<(), CreateChannelError> {
        if kind == ChannelKind::Direct {
            return self
                .create_direct(id, members, now_ms)
                .await
                .and_then(|created| if created { Ok(()) } else { Err(CreateChannelError::AlreadyExists) });
        }
        for chunk in members.chunks(25) {
            let mut requests = Vec::with_capacity(chunk.len());
            for (user, role) in chunk {
                let item = MemberItem::new(id, user, *role, now_ms);
                let put =
                    PutRequest::builder().set_item(Some(super::to_item(&item)?)).build().map_err(StoreError::build)?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            self.batch_write(requests).await?;
        }
        let meta = Self::new_meta(id, kind, name, members.len() as u64, now_ms);
        let put = self
            .client
            .get()
            .put_item()
            .table_name(&self.table)
            .set_item(Some(super::to_item(&meta)?))
            .condition_expression(IS_NEW)
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(CreateChannelError::AlreadyExists)
            }
            Err(err) => Err(StoreError::aws("PutItem", err).into()),
        }
    }

    async fn open_direct(
        &self,
        id: &ChannelId,
        pair: [&UserId; 2],
        opener: &UserId,
        now_ms: i64,
    ) -> Result<bool, PortError> {
        let mut meta = Self::new_meta(id, ChannelKind::Direct, None, 1, now_ms);
        meta.pair = pair.iter().map(|u| (*u).clone()).collect();
        let request = self
            .client
            .get()
            .transact_write_items()
            .transact_items(self.put(&meta, Some(IS_NEW))?)
            .transact_items(self.put(&MemberItem::new(id, opener, MemberRole::Member, now_ms), None)?);
        match request.send().await {
            Ok(_) => Ok(true),
            Err(err) if cancelled_by_condition(&err, 0) => Ok(false),
            Err(err) => Err(StoreError::aws("TransactWriteItems", err).into()),
        }
    }

    async fn join(
        &self,
        id: &ChannelId,
        user: &UserId,
        seat: Seat,
        taking_invitation: bool,
        now_ms: i64,
    ) -> Result<(), JoinError> {
        let Seat { role, kind, max_members } = seat;
        let kind_name = match kind {
            ChannelKind::Group => "group",
            ChannelKind::Direct => "direct",
        };
        let meta_update = self.member_count_step(
            id,
            1,
            "attribute_exists(pk) AND kind = :kind AND memberCount < :max",
            [(":kind", AttributeValue::S(kind_name.into())), (":max", AttributeValue::N(max_members.to_string()))],
        )?;
        let mut request = self
            .client
            .get()
            .transact_write_items()
            .transact_items(meta_update)
            .transact_items(self.put(&MemberItem::new(id, user, role, now_ms), Some(IS_NEW))?);
        if taking_invitation {
            request = request.transact_items(super::consent::take_invitation_step(&self.table, user, id)?);
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err) if cancelled_by_condition(&err, 0) => Err(JoinError::Full),
            Err(err) if cancelled_by_condition(&err, 1) => Err(JoinError::AlreadyMember),
            Err(err) if cancelled_by_condition(&err, 2) => Err(JoinError::NotInvited),
            Err(err) if is_cancelled(&err) => Err(JoinError::Raced),
            Err(err) => Err(StoreError::aws("TransactWriteItems", err).into()),
        }
    }

    async fn remove_member(
        &self,
        id: &ChannelId,
        user: &UserId,
        new_owner: Option<&UserId>,
    ) -> Result<(), MembershipChangeError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(id.to_string()))
            .key("sk", AttributeValue::S(keys::member_sk(user)))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(StoreError::build)?;
        let meta_update = self.member_count_step(id, -1, "attribute_exists(pk)", [])?;
        let mut request = self
            .client
            .get()
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(meta_update);
        if let Some(owner) = new_owner {
            let promote = Update::builder()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(id.to_string()))
                .key("sk", AttributeValue::S(keys::member_sk(owner)))
                .update_expression("SET #role = :owner")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#role", "role")
                .expression_attribute_values(":owner", AttributeValue::S("owner".into()))
                .build()
                .map_err(StoreError::build)?;
            request = request.transact_items(TransactWriteItem::builder().update(promote).build());
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err) if is_cancelled(&err) => Err(MembershipChangeError::Raced),
            Err(err) => Err(StoreError::aws("TransactWriteItems", err).into()),
        }
    }

    async fn roster(&self, id: &ChannelId) -> Result<Option<Roster>, PortError> {
        let (low, high) = keys::ROSTER_SK_RANGE;
        let mut pages = self
            .client
            .get()
            .query()
            .table_name(&self.table)
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
        while let Some(item) = pages.try_next().await.map_err(|e| StoreError::aws("Query", e))? {
            match item.get("sk") {
                Some(AttributeValue::S(sk)) if sk == keys::CHANNEL_META_SK => {
                    meta = Some(meta_from_item(item)?);
                }
                _ => {
                    let member: MemberItem = super::from_item(item)?;
                    members.push(Member {
                        user_id: member.user_id,
                        role: member.role,
                        joined_at: member.joined_at,
                        last_read_seq: member.last_read_seq,
                        muted: member.muted,
                    });
                }
            }
        }
        Ok(meta.map(|meta| Roster { meta, members }))
    }

    async fn meta_for_member(&self, id: &ChannelId, user: &UserId) -> Result<(Option<ChannelMeta>, bool), PortError> {
        let items = self
            .batch_get(vec![(id.clone(), keys::CHANNEL_META_SK.into()), (id.clone(), keys::member_sk(user))])
            .await?;
        let mut meta = None;
        let mut is_member = false;
        for item in items {
            match item.get("sk") {
                Some(AttributeValue::S(sk)) if sk == keys::CHANNEL_META_SK => meta = Some(meta_from_item(item)?),
                _ => is_member = true,
            }
        }
        Ok((meta, is_member))
    }

    async fn metas(&self, ids: &[ChannelId]) -> Result<Vec<ChannelMeta>, PortError> {
        let keys = ids.iter().map(|id| (id.clone(), keys::CHANNEL_META_SK.to_owned())).collect();
        Ok(self.batch_get(keys).await?.into_iter().map(meta_from_item).collect::<Result<_, _>>()?)
    }

    async fn meta(&self, id: &ChannelId) -> Result<Option<ChannelMeta>, PortError> {
        let out = self
            .client
            .get()
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(id.to_string()))
            .key("sk", AttributeValue::S(keys::CHANNEL_META_SK.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", e))?;
        Ok(out.item.map(meta_from_item).transpose()?)
    }

    async fn advance_read(
        &self,
        id: &ChannelId,
        user: &UserId,
        seq: u64,
        message: MessageId,
    ) -> Result<bool, PortError> {
        let result = self
            .client
            .get()
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(id.to_string()))
            .key("sk", AttributeValue::S(keys::member_sk(user)))
            .update_expression("SET lastReadSeq = :seq, lastReadId = :id")
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(lastReadSeq) OR lastReadSeq < :seq)")
            .expression_attribute_values(":seq", AttributeValue::N(seq.to_string()))
            .expression_attribute_values(":id", AttributeValue::N(message.as_u64().to_string()))
            .send()
            .await;
        Ok(super::updated(result)?)
    }

    async fn set_muted(&self, id: &ChannelId, user: &UserId, muted: bool) -> Result<(), PortError> {
        self.client
            .get()
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(id.to_string()))
            .key("sk", AttributeValue::S(keys::member_sk(user)))
            .update_expression("SET muted = :muted")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":muted", AttributeValue::Bool(muted))
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", e))?;
        Ok(())
    }

    async fn prune_deleted_seqs(&self, id: &ChannelId, seqs: &[u64]) -> Result<(), PortError> {
        if seqs.is_empty() {
            return Ok(());
        }
        self.client
            .get()
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(id.to_string()))
            .key("sk", AttributeValue::S(keys::CHANNEL_META_SK.into()))
            .update_expression("DELETE deletedSeqs :seqs")
            .expression_attribute_values(":seqs", AttributeValue::Ns(seqs.iter().map(u64::to_string).collect()))
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", e))?;
        Ok(())
    }

    async fn membership_count(&self, user: &UserId) -> Result<usize, PortError> {
        let mut pages = self.user_channels(user).select(aws_sdk_dynamodb::types::Select::Count).into_paginator().send();
        let mut count = 0;
        while let Some(page) = pages.try_next().await.map_err(|e| StoreError::aws("Query", e))? {
            count += page.count().max(0) as usize;
        }
        Ok(count)
    }

    async fn memberships(&self, user: &UserId) -> Result<Vec<Membership>, PortError> {
        let mut pages = self.user_channels(user).into_paginator().items().send();
        let mut memberships = Vec::new();
        while let Some(item) = pages.try_next().await.map_err(|e| StoreError::aws("Query", e))? {
            let member: MemberItem = super::from_item(item)?;
            memberships.push(Membership {
                channel_id: ChannelId::parse(member.pk).map_err(|e| StoreError::Contended(e.to_string()))?,
                role: member.role,
                joined_at: member.joined_at,
                last_read_seq: member.last_read_seq,
                last_read_id: MessageId::from_u64(member.last_read_id),
                muted: member.muted,
            });
        }
        Ok(memberships)
    }

    async fn direct_contacts(&self, me: &UserId, pairs: &[(UserId, ChannelId)]) -> Result<HashSet<UserId>, PortError> {
        let key = |channel: &ChannelId, user: &UserId| -> super::Item {
            HashMap::from([
                ("pk".to_owned(), AttributeValue::S(channel.to_string())),
                ("sk".to_owned(), AttributeValue::S(keys::member_sk(user))),
            ])
        };
        let pairs: Vec<&(UserId, ChannelId)> = pairs.iter().filter(|(user, _)| user != me).collect();
        let keys = pairs.iter().flat_map(|(user, channel)| [key(channel, me), key(channel, user)]).collect();
        let mut members: HashMap<String, usize> = HashMap::new();
        for item in super::batch_get(self.client.get(), &self.table, keys, Some("pk"), false).await? {
            if let Some(AttributeValue::S(pk)) = item.get("pk") {
                *members.entry(pk.clone()).or_default() += 1;
            }
        }
        Ok(pairs
            .into_iter()
            .filter(|(_, channel)| members.get(channel.as_str()) == Some(&2))
            .map(|(user, _)| user.clone())
            .collect())
    }
}
