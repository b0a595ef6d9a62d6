//! Invitations and block lists, in the Channels table. Each user has one inbox item of
//! pending invitations (a map capped in size, read only when the user asks) and one
//! block-list item (a capped string set). Neither is read on connect, sync or the
//! channel list, so however many invitations someone is sent, those cost them nothing.

use std::sync::Arc;

use crate::lazy::LazyClient;
use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};

use chat_domain::PortError;
use chat_domain::http::Invitation;
use chat_domain::model::{ChannelId, ChannelKind, MemberRole, UserId};
use chat_domain::ports::{BlockStore, InvitationStore};

use super::{Item, StoreError, is_condition_failure, keys};

/// What the inbox map holds per channel (the channel id is the map key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    kind: ChannelKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    by: UserId,
    role: MemberRole,
    at: i64,
}

fn inbox_key(user: &UserId) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(keys::invitations_pk(user))),
        ("sk".to_owned(), AttributeValue::S(keys::INBOX_SK.into())),
    ])
}

fn blocks_key(user: &UserId) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(keys::blocks_pk(user))),
        ("sk".to_owned(), AttributeValue::S(keys::BLOCKS_SK.into())),
    ])
}

#[derive(Clone)]
pub struct Invitations {
    client: Arc<LazyClient<Client>>,
    table: String,
}

impl Invitations {
    pub fn new(client: Arc<LazyClient<Client>>, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

/// The transaction step that takes an invitation when the invitee joins: it fails the
/// transaction when the invitation is not there (declined or taken meanwhile).
pub(super) fn take_invitation_step(
    table: &str,
    user: &UserId,
    channel: &ChannelId,
) -> Result<TransactWriteItem, StoreError> {
    {
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(inbox_key(user)))
            .update_expression("REMOVE #inv.#ch")
            .condition_expression("attribute_exists(#inv.#ch)")
            .expression_attribute_names("#inv", "invitations")
            .expression_attribute_names("#ch", channel.as_str())
            .build()
            .map_err(StoreError::build)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

#[derive(Clone)]
pub struct Blocks {
    client: Arc<LazyClient<Client>>,
    table: String,
}

impl Blocks {
    pub fn new(client: Arc<LazyClient<Client>>, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    async fn lists(&self, users: &[UserId]) -> Result<HashMap<UserId, std::collections::BTreeSet<UserId>>, StoreError> {
        let mut distinct: Vec<&UserId> = users.iter().collect();
        distinct.sort();
        distinct.dedup();
        let keys = distinct.iter().map(|u| blocks_key(u)).collect();
        let mut lists = HashMap::new();
        for item in super::batch_get(self.client.get(), &self.table, keys, None, false).await? {
            let Some(AttributeValue::S(pk)) = item.get("pk") else { continue };
            let Some(owner) = pk.strip_prefix(keys::BLOCKS_PK_PREFIX).and_then(|u| UserId::parse(u).ok()) else {
                continue;
            };
            let blocked = match item.get("users") {
                Some(AttributeValue::Ss(set)) => set.iter().filter_map(|u| UserId::parse(u.clone()).ok()).collect(),
                _ => Default::default(),
            };
            lists.insert(owner, blocked);
        }
        Ok(lists)
    }
}

#[async_trait::async_trait]
impl InvitationStore for Invitations {
    async fn offer(&self, invitee: &UserId, invitation: &Invitation, cap: usize) -> Result<bool, PortError> {
        let entry = Entry {
            kind: invitation.kind,
            name: invitation.name.clone(),
            by: invitation.invited_by.clone(),
            role: invitation.role,
            at: invitation.invited_at,
        };
        let value: AttributeValue = super::to_value(entry)?;
        let channel = invitation.channel_id.as_str();
        for _ in 0..3 {
            // Into an existing inbox with room (or already holding this channel)...
            let nested = self
                .client
                .get()
                .update_item()
                .table_name(&self.table)
                .set_key(Some(inbox_key(invitee)))
                .update_expression("SET #inv.#ch = :entry")
                .condition_expression("attribute_exists(#inv) AND (size(#inv) < :cap OR attribute_exists(#inv.#ch))")
                .expression_attribute_names("#inv", "invitations")
                .expression_attribute_names("#ch", channel)
                .expression_attribute_values(":entry", value.clone())
                .expression_attribute_values(":cap", AttributeValue::N(cap.to_string()))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            match nested {
                Ok(_) => return Ok(true),
                Err(err) if !is_condition_failure(&err) => return Err(StoreError::aws("UpdateItem", err).into()),
                Err(err) => {
                    let had_inbox = err
                        .as_service_error()
                        .and_then(|e| match e {
                            aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => {
                                c.item().map(|item| item.contains_key("invitations"))
                            }
                            _ => None,
                        })
                        .unwrap_or(false);
                    if had_inbox {
                        return Ok(false); // full
                    }
                }
            }
            // ...or a new inbox holding just this one.
            let created = self
                .client
                .get()
                .update_item()
                .table_name(&self.table)
                .set_key(Some(inbox_key(invitee)))
                .update_expression("SET #inv = :inbox")
                .condition_expression("attribute_not_exists(#inv)")
                .expression_attribute_names("#inv", "invitations")
                .expression_attribute_values(
                    ":inbox",
                    AttributeValue::M(HashMap::from([(channel.to_owned(), value.clone())])),
                )
                .send()
                .await;
            match created {
                Ok(_) => return Ok(true),
                Err(err) if !is_condition_failure(&err) => return Err(StoreError::aws("UpdateItem", err).into()),
                Err(_) => {} // created meanwhile: the nested SET works on the next round
            }
        }
        Err(PortError::Contended("the invitation inbox kept changing".into()))
    }

    async fn pending(&self, user: &UserId) -> Result<Vec<Invitation>, PortError> {
        let out = self
            .client
            .get()
            .get_item()
            .table_name(&self.table)
            .set_key(Some(inbox_key(user)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", e))?;
        let mut invitations = Vec::new();
        if let Some(AttributeValue::M(map)) = out.item.as_ref().and_then(|item| item.get("invitations")) {
            for (channel, value) in map {
                let entry: Entry = super::from_value(value.clone())?;
                invitations.push(Invitation {
                    channel_id: ChannelId::parse(channel.clone()).map_err(|e| StoreError::Contended(e.to_string()))?,
                    kind: entry.kind,
                    name: entry.name,
                    invited_by: entry.by,
                    role: entry.role,
                    invited_at: entry.at,
                });
            }
        }
        invitations.sort_by(|a, b| a.invited_at.cmp(&b.invited_at).then(a.channel_id.cmp(&b.channel_id)));
        Ok(invitations)
    }

    async fn withdraw(&self, user: &UserId, channels: &[ChannelId]) -> Result<(), PortError> {
        if channels.is_empty() {
            return Ok(());
        }
        let mut request = self.client.get().update_item().table_name(&self.table).set_key(Some(inbox_key(user)));
        let mut paths = Vec::with_capacity(channels.len());
        for (i, channel) in channels.iter().enumerate() {
            request = request.expression_attribute_names(format!("#c{i}"), channel.as_str());
            paths.push(format!("#inv.#c{i}"));
        }
        request
            .update_expression(format!("REMOVE {}", paths.join(", ")))
            .condition_expression("attribute_exists(#inv)")
            .expression_attribute_names("#inv", "invitations")
            .send()
            .await
            .map(|_| ())
            .or_else(
                |err| if is_condition_failure(&err) { Ok(()) } else { Err(StoreError::aws("UpdateItem", err).into()) },
            )
    }
}

#[async_trait::async_trait]
impl BlockStore for Blocks {
    async fn block(&self, user: &UserId, target: &UserId, cap: usize) -> Result<bool, PortError> {
        let result = self
            .client
            .get()
            .update_item()
            .table_name(&self.table)
            .set_key(Some(blocks_key(user)))
            .update_expression("ADD #users :one")
            .condition_expression("attribute_not_exists(#users) OR size(#users) < :cap OR contains(#users, :target)")
            .expression_attribute_names("#users", "users")
            .expression_attribute_values(":one", AttributeValue::Ss(vec![target.to_string()]))
            .expression_attribute_values(":target", AttributeValue::S(target.to_string()))
            .expression_attribute_values(":cap", AttributeValue::N(cap.to_string()))
            .return_values(ReturnValue::None)
            .send()
            .await;
        Ok(super::updated(result)?)
    }

    async fn unblock(&self, user: &UserId, target: &UserId) -> Result<(), PortError> {
        self.client
            .get()
            .update_item()
            .table_name(&self.table)
            .set_key(Some(blocks_key(user)))
            .update_expression("DELETE #users :one")
            .expression_attribute_names("#users", "users")
            .expression_attribute_values(":one", AttributeValue::Ss(vec![target.to_string()]))
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem", e))?;
        Ok(())
    }

    async fn of(&self, user: &UserId) -> Result<Vec<UserId>, PortError> {
        Ok(self.lists(std::slice::from_ref(user)).await?.remove(user).unwrap_or_default().into_iter().collect())
    }

    async fn blocking(&self, users: &[UserId], actor: &UserId) -> Result<HashSet<UserId>, PortError> {
        Ok(self
            .lists(users)
            .await?
            .into_iter()
            .filter(|(_, blocked)| blocked.contains(actor))
            .map(|(user, _)| user)
            .collect())
    }
}
