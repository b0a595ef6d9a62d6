//! The Users table: accounts (`user#{userId}`) and push devices (`devices#{userId}`);
//! sessions and refresh tokens are in `sessions.rs`.

use std::sync::Arc;

use crate::lazy::LazyClient;
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
    client: Arc<LazyClient<Client>>,
    table: String,
}

impl Users {
    pub fn new(client: Arc<LazyClient<Client>>, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// An UpdateItem of `user`'s devices item.
    fn update_devices_of(
        &self,
        user: &UserId,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client.get().update_item().table_name(&self.table).key("pk", AttributeValue::S(keys::devices_pk(user)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DevicesItem {
    user_id: UserId,
    #[serde(default)]
    devices: HashMap<String, DeviceRecord>,
}

#[async_trait::async_trait]
impl UserStore for Users {
    async fn create(&self, record: &UserRecord) -> Result<bool, PortError> {
        let item = UserItem { pk: keys::user_pk(&record.user_id), record: record.clone() };
        let result = self
            .client
            .get()
            .put_item()
            .table_name(&self.table)
            .set_item(Some(super::to_item(&item)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(err) => Err(StoreError::aws("PutItem", err).into()),
        }
    }

    async fn get(&self, user: &UserId) -> Result<Option<UserRecord>, PortError> {
        let out = self
            .client
            .get()
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(keys::user_pk(user)))
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem", e))?;
        Ok(out.item.map(super::from_item::<UserItem>).transpose()?.map(|i| i.record))
    }

    async fn existing(&self, users: &[UserId]) -> Result<HashSet<UserId>, PortError> {
        let keys = users
            .iter()
            .map(|user| HashMap::from([("pk".to_owned(), AttributeValue::S(keys::user_pk(user)))]))
            .collect();
        let items = super::batch_get(self.client.get(), &self.table, keys, Some("userId"), false).await?;
        Ok(items
            .iter()
            .filter_map(|item| match item.get("userId") {
                Some(AttributeValue::S(id)) => UserId::parse(id.as_str()).ok(),
                _ => None,
            })
            .collect())
    }

    async fn put_device(&self, user: &UserId, id: &str, device: &DeviceRecord) -> Result<(), PortError> {
        let value: AttributeValue = super::to_value(device)?;
        let request =
            || self.update_devices_of(user).expression_attribute_values(":user", AttributeValue::S(user.to_string()));
        super::set_in_map(request, "devices", id, value, ", userId = :user").await?;
        Ok(())
    }

    async fn remove_device(&self, user: &UserId, id: &str) -> Result<Option<DeviceRecord>, PortError> {
        let result = self
            .update_devices_of(user)
            .update_expression("REMOVE devices.#id")
            .condition_expression("attribute_exists(devices.#id)")
            .expression_attribute_names("#id", id)
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item: Option<DevicesItem> = out.attributes.map(super::from_item).transpose()?;
                Ok(item.and_then(|mut i| i.devices.remove(id)))
            }
            Err(err) if is_condition_failure(&err) => Ok(None),
            Err(err) => Err(StoreError::aws("UpdateItem", err).into()),
        }
    }

    async fn disable_device(&self, user: &UserId, id: &str) -> Result<(), PortError> {
        let result = self
            .update_devices_of(user)
            .update_expression("SET devices.#id.enabled = :no")
            .condition_expression("attribute_exists(devices.#id)")
            .expression_attribute_names("#id", id)
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .send()
            .await;
        // A device removed meanwhile is simply not there to disable.
        super::updated(result)?;
        Ok(())
    }

    async fn devices(&self, users: &[UserId]) -> Result<HashMap<UserId, Vec<(String, DeviceRecord)>>, PortError> {
        let keys = users
            .iter()
            .map(|user| HashMap::from([("pk".to_owned(), AttributeValue::S(keys::devices_pk(user)))]))
            .collect();
        let mut found = HashMap::new();
        for item in super::batch_get(self.client.get(), &self.table, keys, None, false).await? {
            let item: DevicesItem = super::from_item(item)?;
            found.insert(item.user_id, item.devices.into_iter().collect());
        }
        Ok(found)
    }
}
