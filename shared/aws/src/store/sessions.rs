//! Sessions in the Users table: one per signed-in device. A session is a family of
//! refresh tokens (each used once, then kept marked as used until it expires, so a second
//! use is recognised) and is live while its id is in the user's `sessions#{userId}` map.
//! Signing out removes ids from that map; the authorizer checks it.

use std::sync::Arc;

use crate::lazy::LazyClient;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde::{Deserialize, Serialize};

use chat_domain::PortError;
use chat_domain::model::UserId;
use chat_domain::ports::{Refresh, RefreshQuota, SessionRefreshes, SessionStore};

use super::{Item, StoreError, is_condition_failure, keys};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshItem {
    pk: String,
    user_id: UserId,
    /// The session (family) the token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    expires_at: i64,
    ttl: i64,
    /// Set when the token is used; a second use ends the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    used_at: Option<i64>,
    /// The session's refreshes in window `refreshWindow`, this token's own included
    /// (tokens from before the per-session limit have neither: a new window).
    #[serde(default)]
    refresh_window: i64,
    #[serde(default)]
    refreshes: u32,
}

#[derive(Clone)]
pub struct Sessions {
    client: Arc<LazyClient<Client>>,
    table: String,
}

fn key(pk: String) -> Item {
    Item::from([("pk".to_owned(), AttributeValue::S(pk))])
}

impl Sessions {
    pub fn new(client: Arc<LazyClient<Client>>, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

#[async_trait::async_trait]
impl SessionStore for Sessions {
    async fn start(&self, user: &UserId, sid: &str, now_ms: i64) -> Result<Vec<(i64, String)>, PortError> {
        let request = || {
            self.client
                .get()
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(keys::sessions_pk(user))))
                .return_values(ReturnValue::AllNew)
        };
        let value = AttributeValue::N(now_ms.to_string());
        let after = super::set_in_map(request, "sids", sid, value, "").await?.unwrap_or_default();
        let live: Vec<(i64, String)> = match after.get("sids") {
            Some(AttributeValue::M(map)) => map
                .iter()
                .map(|(id, at)| (at.as_n().ok().and_then(|n| n.parse().ok()).unwrap_or(0), id.clone()))
                .collect(),
            _ => Vec::new(),
        };
        Ok(live)
    }

    async fn is_live(&self, user: &UserId, sid: &str) -> Result<bool, PortError> {
        let out = self
            .client
            .get()
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::sessions_pk(user))))
            .projection_expression("sids.#sid")
            .expression_attribute_names("#sid", sid)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", e))?;
        Ok(matches!(out.item.as_ref().and_then(|i| i.get("sids")), Some(AttributeValue::M(m)) if m.contains_key(sid)))
    }

    async fn end(&self, user: &UserId, sid: Option<&str>) -> Result<(), PortError> {
        let mut request =
            self.client.get().update_item().table_name(&self.table).set_key(Some(key(keys::sessions_pk(user))));
        request = match sid {
            // A nested REMOVE needs the map: with none, nothing is live to end.
            Some(sid) => request
                .update_expression("REMOVE sids.#sid")
                .condition_expression("attribute_exists(sids)")
                .expression_attribute_names("#sid", sid),
            None => request.update_expression("REMOVE sids"),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Ok(()),
            Err(err) => Err(StoreError::aws("UpdateItem", err).into()),
        }
    }

    async fn put_refresh(
        &self,
        token_hash: &str,
        user: &UserId,
        sid: &str,
        expires_ms: i64,
        refreshes: SessionRefreshes,
    ) -> Result<(), PortError> {
        let item = RefreshItem {
            pk: keys::refresh_pk(token_hash),
            user_id: user.clone(),
            sid: Some(sid.to_owned()),
            expires_at: expires_ms,
            ttl: expires_ms / 1000 + 1,
            used_at: None,
            refresh_window: refreshes.window,
            refreshes: refreshes.count,
        };
        self.client
            .get()
            .put_item()
            .table_name(&self.table)
            .set_item(Some(super::to_item(&item)?))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem", e))?;
        Ok(())
    }

    async fn take_refresh(&self, token_hash: &str, now_ms: i64, quota: RefreshQuota) -> Result<Refresh, PortError> {
        // The session's count travels in its tokens: this one may be used while its window
        // is over or its count is below the limit.
        let result = self
            .client
            .get()
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::refresh_pk(token_hash))))
            .update_expression("SET usedAt = :now")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(usedAt) AND expiresAt > :now \
                 AND (attribute_not_exists(refreshWindow) OR refreshWindow <> :window OR refreshes < :limit)",
            )
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":window", AttributeValue::N(quota.window.to_string()))
            .expression_attribute_values(":limit", AttributeValue::N(quota.limit.to_string()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item: RefreshItem = super::from_item(out.attributes.unwrap_or_default())?;
                let before = if item.refresh_window == quota.window { item.refreshes } else { 0 };
                let refreshes = SessionRefreshes { window: quota.window, count: before + 1 };
                Ok(Refresh::Fresh { user: item.user_id, sid: item.sid, refreshes })
            }
            Err(err) if is_condition_failure(&err) => {
                let old = match err.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(e) => e.item,
                    _ => None,
                };
                let Some(old) = old.filter(|o| !o.is_empty()) else {
                    return Ok(Refresh::Invalid);
                };
                let item: RefreshItem = super::from_item(old)?;
                Ok(match item.used_at {
                    Some(_) if item.expires_at > now_ms => Refresh::Reused { user: item.user_id, sid: item.sid },
                    None if item.expires_at > now_ms => Refresh::OverQuota,
                    _ => Refresh::Invalid,
                })
            }
            Err(err) => Err(StoreError::aws("UpdateItem", err).into()),
        }
    }
}
