//! The Users table: accounts (`user#{userId}`) and push devices (`devices#{userId}`);
//! sessions and refresh tokens are in `sessions.rs`.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};

use chat_domain::PortError;
use chat_domain::model::UserId;
use chat_domain::ports::{DeviceRecord, UserRecord, UserStore};

use super::{StoreError, is_condition_failure, keys};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserItem {
    pk: String,
    #[serde(flatten)]
    record: UserRecord,
}

#[derive(Clone)]
pub struct Users {
    client: Client,
    table: String,
}

impl Users {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// Creates the account; `Ok(false)` when the user id is taken.
    pub async fn create(&self, record: &UserRecord) -> Result<bool, StoreError> {
        let item = UserItem { pk: keys::user_pk(&record.user_id), record: record.clone() };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(&item)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(err) => Err(StoreError::aws("PutItem", err)),
        }
    }

    pub async fn get(&self, user: &UserId) -> Result<Option<UserRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(keys::user_pk(user)))
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", e))?;
        Ok(out.item.map(serde_dynamo::from_item::<_, UserItem>).transpose()?.map(|i| i.record))
    }

    /// Which of `users` have accounts (one BatchGetItem per 100).
    pub async fn existing(&self, users: &[UserId]) -> Result<HashSet<UserId>, StoreError> {
        let keys = users
            .iter()
            .map(|user| HashMap::from([("pk".to_owned(), AttributeValue::S(keys::user_pk(user)))]))
            .collect();
        let items = super::batch_get(&self.client, &self.table, keys, Some("userId"), false).await?;
        Ok(items
            .iter()
            .filter_map(|item| match item.get("userId") {
                Some(AttributeValue::S(id)) => UserId::parse(id.as_str()).ok(),
                _ => None,
            })
            .collect())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DevicesItem {
    user_id: UserId,
    #[serde(default)]
    devices: HashMap<String, DeviceRecord>,
}

impl Users {
    /// Adds or replaces one device (one item per user; the map is created on first use).
    pub async fn put_device(&self, user: &UserId, id: &str, device: &DeviceRecord) -> Result<(), StoreError> {
        let value: AttributeValue = serde_dynamo::to_attribute_value(device)?;
        let request = || {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(keys::devices_pk(user)))
                .expression_attribute_values(":user", AttributeValue::S(user.to_string()))
        };
        super::set_in_map(request, "devices", id, value, ", userId = :user").await?;
        Ok(())
    }

    /// Removes one device; answers it when it existed.
    pub async fn remove_device(&self, user: &UserId, id: &str) -> Result<Option<DeviceRecord>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(keys::devices_pk(user)))
            .update_expression("REMOVE devices.#id")
            .condition_expression("attribute_exists(devices.#id)")
            .expression_attribute_names("#id", id)
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item: Option<DevicesItem> = out.attributes.map(serde_dynamo::from_item).transpose()?;
                Ok(item.and_then(|mut i| i.devices.remove(id)))
            }
            Err(err) if is_condition_failure(&err) => Ok(None),
            Err(err) => Err(StoreError::aws("UpdateItem", err)),
        }
    }

    pub async fn disable_device(&self, user: &UserId, id: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(keys::devices_pk(user)))
            .update_expression("SET devices.#id.enabled = :no")
            .condition_expression("attribute_exists(devices.#id)")
            .expression_attribute_names("#id", id)
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_condition_failure(&err) => Ok(()),
            Err(err) => Err(StoreError::aws("UpdateItem", err)),
        }
    }

    /// The devices of `users` (one BatchGetItem per 100 users).
    pub async fn devices(&self, users: &[UserId]) -> Result<HashMap<UserId, Vec<(String, DeviceRecord)>>, StoreError> {
        let keys = users
            .iter()
            .map(|user| HashMap::from([("pk".to_owned(), AttributeValue::S(keys::devices_pk(user)))]))
            .collect();
        let mut found = HashMap::new();
        for item in super::batch_get(&self.client, &self.table, keys, None, false).await? {
            let item: DevicesItem = serde_dynamo::from_item(item)?;
            found.insert(item.user_id, item.devices.into_iter().collect());
        }
        Ok(found)
    }
}

#[async_trait::async_trait]
impl UserStore for Users {
    async fn create(&self, record: &UserRecord) -> Result<bool, PortError> {
        Ok(Users::create(self, record).await?)
    }

    async fn get(&self, user: &UserId) -> Result<Option<UserRecord>, PortError> {
        Ok(Users::get(self, user).await?)
    }

    async fn existing(&self, users: &[UserId]) -> Result<HashSet<UserId>, PortError> {
        Ok(Users::existing(self, users).await?)
    }

    async fn put_device(&self, user: &UserId, id: &str, device: &DeviceRecord) -> Result<(), PortError> {
        Ok(Users::put_device(self, user, id, device).await?)
    }

    async fn remove_device(&self, user: &UserId, id: &str) -> Result<Option<DeviceRecord>, PortError> {
        Ok(Users::remove_device(self, user, id).await?)
    }

    async fn disable_device(&self, user: &UserId, id: &str) -> Result<(), PortError> {
        Ok(Users::disable_device(self, user, id).await?)
    }

    async fn devices(&self, users: &[UserId]) -> Result<HashMap<UserId, Vec<(String, DeviceRecord)>>, PortError> {
        Ok(Users::devices(self, users).await?)
    }
}
