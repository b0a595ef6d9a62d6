//! Reactions in the Messages table: one item per message that has any, in its bucket's
//! reactions partition (`keys::reactions_pk`), sort key the message id. Kept apart from
//! the message so a reaction writes units for the reactions, not for the message's text.
//!
//! Item: `emojis` (string set: the distinct emoji), one string set of user ids per emoji
//! (attribute `r:{emoji}`), and `channelId` + `changeSeq` + `changedAt`, which put it in the
//! `ChannelChanges` index beside edited and deleted messages.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use chat_domain::PortError;
use chat_domain::ids::{Bucket, MessageId};
use chat_domain::model::{ChannelId, Emoji, Message, UserId};
use chat_domain::ports::{Change, Changed, ReactionStore, ReactionWrite, Reactions as MessageReactions};

use super::{Item, StoreError, keys};
use crate::lazy::LazyClient;

/// A reaction writes only over an older change: a message's reactions move to greater
/// change positions only, however the concurrent writes land.
const NOT_LATER: &str = "(attribute_not_exists(changeSeq) OR changeSeq < :change)";

/// The attribute holding the users who reacted with one emoji.
const EMOJI_PREFIX: &str = "r:";

#[derive(Clone)]
pub struct Reactions {
    client: Arc<LazyClient<Client>>,
    table: String,
}

impl Reactions {
    pub fn new(client: Arc<LazyClient<Client>>, messages_table: impl Into<String>) -> Self {
        Self { client, table: messages_table.into() }
    }

    fn key(channel: &ChannelId, id: MessageId) -> Item {
        Item::from([
            ("pk".to_owned(), AttributeValue::S(keys::reactions_pk(channel, id.bucket()))),
            ("id".to_owned(), AttributeValue::N(id.as_u64().to_string())),
        ])
    }

    /// An UpdateItem of `message`'s reactions item that takes change position `change`.
    fn update(
        &self,
        message: &Message,
        emoji: &Emoji,
        user: &UserId,
        change: u64,
        now_ms: i64,
    ) -> UpdateItemFluentBuilder {
        self.client
            .get()
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&message.channel_id, message.message_id)))
            .expression_attribute_names("#users", format!("{EMOJI_PREFIX}{emoji}"))
            .expression_attribute_values(":user", AttributeValue::S(user.to_string()))
            .expression_attribute_values(":users", AttributeValue::Ss(vec![user.to_string()]))
            .expression_attribute_values(":change", AttributeValue::N(change.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }
}

pub(crate) fn is_reactions_item(item: &Item) -> bool {
    matches!(item.get("pk"), Some(AttributeValue::S(pk)) if pk.ends_with(keys::REACTIONS_PK_SUFFIX))
}

fn message_id(item: &Item) -> Result<MessageId, StoreError> {
    match item.get("id") {
        Some(AttributeValue::N(id)) => id.parse().map(MessageId::from_u64).map_err(|_| shape("id")),
        _ => Err(shape("id")),
    }
}

fn number(item: &Item, name: &'static str) -> u64 {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}

fn shape(what: &str) -> StoreError {
    StoreError::Contended(format!("a reactions item has no valid {what}"))
}

/// Who reacted with what, from an item (emoji attributes that are not valid emoji or user
/// ids are skipped: they cannot have been written by this code).
fn reactions_of(item: &Item) -> MessageReactions {
    let mut reactions = MessageReactions { change_seq: number(item, "changeSeq"), ..Default::default() };
    for (name, value) in item {
        let (Some(emoji), AttributeValue::Ss(users)) = (name.strip_prefix(EMOJI_PREFIX), value) else { continue };
        let Ok(emoji) = Emoji::parse(emoji) else { continue };
        let users: BTreeSet<UserId> = users.iter().filter_map(|u| UserId::parse(u.as_str()).ok()).collect();
        if !users.is_empty() {
            reactions.by_emoji.insert(emoji, users);
        }
    }
    reactions
}

/// A reactions item found in the `ChannelChanges` index, as a change.
pub(crate) fn change_from_item(item: Item) -> Result<Change, StoreError> {
    Ok(Change {
        change_seq: number(&item, "changeSeq"),
        changed_at: number(&item, "changedAt") as i64,
        what: Changed::Reactions { message_id: message_id(&item)?, reactions: reactions_of(&item) },
    })
}

fn refused_or_error(
    err: aws_sdk_dynamodb::error::SdkError<UpdateItemError, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> Result<Option<Item>, StoreError> {
    match err.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
            Ok(Some(refused.item().cloned().unwrap_or_default()))
        }
        _ => Err(StoreError::aws("UpdateItem", err)),
    }
}

#[async_trait::async_trait]
impl ReactionStore for Reactions {
    async fn of(
        &self,
        channel: &ChannelId,
        ids: &[MessageId],
    ) -> Result<HashMap<MessageId, MessageReactions>, PortError> {
        let keys = ids.iter().map(|id| Self::key(channel, *id)).collect();
        let items = super::batch_get(self.client.get(), &self.table, keys, None, false).await?;
        let mut found = HashMap::new();
        for item in items {
            found.insert(message_id(&item)?, reactions_of(&item));
        }
        Ok(found)
    }

    async fn in_range(
        &self,
        channel: &ChannelId,
        bucket: Bucket,
        (low, high): (MessageId, MessageId),
    ) -> Result<HashMap<MessageId, MessageReactions>, PortError> {
        let query = self
            .client
            .get()
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND id BETWEEN :low AND :high")
            .expression_attribute_values(":pk", AttributeValue::S(keys::reactions_pk(channel, bucket)))
            .expression_attribute_values(":low", AttributeValue::N(low.as_u64().to_string()))
            .expression_attribute_values(":high", AttributeValue::N(high.as_u64().to_string()));
        // At most one item per message of the range, and a page holds at most 100.
        let mut found = HashMap::new();
        for item in super::query_all(query, chat_domain::history::MAX_PAGE_SIZE + 1).await? {
            found.insert(message_id(&item)?, reactions_of(&item));
        }
        Ok(found)
    }

    async fn add(
        &self,
        message: &Message,
        user: &UserId,
        emoji: &Emoji,
        max_emoji: usize,
        change: u64,
        now_ms: i64,
    ) -> Result<ReactionWrite, PortError> {
        let result = self
            .update(message, emoji, user, change, now_ms)
            .update_expression(
                "SET channelId = :channel, changeSeq = :change, changedAt = :now ADD #users :users, emojis :emoji",
            )
            // Not there yet; an emoji the message has, or room for another; and no later
            // change written already.
            .condition_expression(format!(
                "(attribute_not_exists(#users) OR NOT contains(#users, :user)) AND \
                 (attribute_exists(#users) OR attribute_not_exists(emojis) OR size(emojis) < :max) AND {NOT_LATER}"
            ))
            .expression_attribute_values(":channel", AttributeValue::S(message.channel_id.to_string()))
            .expression_attribute_values(":emoji", AttributeValue::Ss(vec![emoji.to_string()]))
            .expression_attribute_values(":max", AttributeValue::N(max_emoji.to_string()))
            .send()
            .await;
        match result {
            Ok(out) => Ok(ReactionWrite::Changed(reactions_of(&out.attributes.unwrap_or_default()))),
            Err(err) => {
                let before = refused_or_error(err)?.unwrap_or_default();
                if number(&before, "changeSeq") >= change {
                    return Ok(ReactionWrite::Outdated);
                }
                let reactions = reactions_of(&before);
                Ok(if reactions.has(emoji, user) {
                    ReactionWrite::Unchanged(reactions)
                } else {
                    ReactionWrite::TooManyEmoji
                })
            }
        }
    }

    async fn remove(
        &self,
        message: &Message,
        user: &UserId,
        emoji: &Emoji,
        change: u64,
        now_ms: i64,
    ) -> Result<ReactionWrite, PortError> {
        let result = self
            .update(message, emoji, user, change, now_ms)
            .update_expression("SET changeSeq = :change, changedAt = :now DELETE #users :users")
            .condition_expression(format!("contains(#users, :user) AND {NOT_LATER}"))
            .send()
            .await;
        let after = match result {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(err) => {
                let before = refused_or_error(err)?.unwrap_or_default();
                if number(&before, "changeSeq") >= change {
                    return Ok(ReactionWrite::Outdated);
                }
                return Ok(ReactionWrite::Unchanged(reactions_of(&before)));
            }
        };
        if !after.contains_key(&format!("{EMOJI_PREFIX}{emoji}")) {
            // The last one with this emoji went (DynamoDB drops an emptied set): the emoji
            // no longer counts against the message's distinct ones, unless someone added
            // it again in between.
            let forgotten = self
                .client
                .get()
                .update_item()
                .table_name(&self.table)
                .set_key(Some(Self::key(&message.channel_id, message.message_id)))
                .update_expression("DELETE emojis :emoji")
                .condition_expression("attribute_not_exists(#users)")
                .expression_attribute_names("#users", format!("{EMOJI_PREFIX}{emoji}"))
                .expression_attribute_values(":emoji", AttributeValue::Ss(vec![emoji.to_string()]))
                .send()
                .await;
            if let Err(err) = forgotten {
                refused_or_error(err)?;
            }
        }
        Ok(ReactionWrite::Changed(reactions_of(&after)))
    }
}
