//! Capacity units of the DynamoDB calls the functions make, metered beside an emulator
//! that bills nothing: for each write, the tap reads the items it writes just before and
//! just after it (straight to the emulator, not counted as requests), and [`crate::units`]
//! turns the sizes into units by DynamoDB's rules; reads are metered from what they
//! answered. Tables' keys and indexes come from DescribeTable, once per table.
//!
//! Only for the bench: the extra reads go out unsigned in substance (the emulator does not
//! check signatures) and make the timings of a metered run meaningless.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use serde_json::{Map, Value, json};

use crate::units;

/// Capacity units, as DynamoDB would bill them.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Units {
    /// Write units of the tables' own items.
    pub write: f64,
    /// Write units of global secondary indexes.
    pub index_write: f64,
    pub read: f64,
}

impl Units {
    pub fn writes(&self) -> f64 {
        self.write + self.index_write
    }

    pub fn minus(&self, earlier: &Units) -> Units {
        Units {
            write: self.write - earlier.write,
            index_write: self.index_write - earlier.index_write,
            read: self.read - earlier.read,
        }
    }
}

/// A table's primary key and its indexes' keys.
#[derive(Debug, Clone)]
struct Schema {
    key: Vec<String>,
    indexes: Vec<Vec<String>>,
}

/// One item a write touches.
#[derive(Debug, Clone)]
pub struct Write {
    table: String,
    /// The key, or the whole item of a Put (its key is cut out once the schema is known).
    item: Map<String, Value>,
    transactional: bool,
}

/// Where the emulator is and who is asking (the account): what the meter's own calls copy
/// from the call they meter.
#[derive(Debug, Clone)]
pub struct Template {
    uri: String,
    headers: Vec<(String, String)>,
}

/// What a DynamoDB call is to the meter.
#[derive(Debug, Clone)]
pub enum Metered {
    Writes {
        template: Template,
        writes: Vec<Write>,
    },
    /// A read: GetItem and BatchGetItem round per item, Query and Scan over the total.
    Read {
        per_item: bool,
        consistent: HashMap<String, bool>,
    },
}

impl Metered {
    /// What `request` (a DynamoDB `operation`) writes or reads; `None` for anything else.
    pub fn of(request: &HttpRequest, operation: &str) -> Option<Metered> {
        let body: Value = serde_json::from_slice(request.body().bytes()?).ok()?;
        let table = || body["TableName"].as_str().unwrap_or_default().to_owned();
        let object = |v: &Value| v.as_object().cloned().unwrap_or_default();
        let write =
            |table: String, item: &Value, transactional: bool| Write { table, item: object(item), transactional };
        let writes = match operation {
            "PutItem" => vec![write(table(), &body["Item"], false)],
            "UpdateItem" | "DeleteItem" => vec![write(table(), &body["Key"], false)],
            "TransactWriteItems" => body["TransactItems"]
                .as_array()?
                .iter()
                .filter_map(|action| {
                    let (kind, inner) = action.as_object()?.iter().next()?;
                    let table = inner["TableName"].as_str()?.to_owned();
                    Some(write(table, if kind == "Put" { &inner["Item"] } else { &inner["Key"] }, true))
                })
                .collect(),
            "BatchWriteItem" => body["RequestItems"]
                .as_object()?
                .iter()
                .flat_map(|(table, requests)| {
                    requests.as_array().cloned().unwrap_or_default().into_iter().filter_map(move |r| {
                        let item = r.pointer("/PutRequest/Item").or_else(|| r.pointer("/DeleteRequest/Key"))?;
                        Some(Write { table: table.clone(), item: item.as_object()?.clone(), transactional: false })
                    })
                })
                .collect(),
            "GetItem" | "Query" | "Scan" => {
                let consistent = HashMap::from([(String::new(), body["ConsistentRead"].as_bool().unwrap_or(false))]);
                return Some(Metered::Read { per_item: operation == "GetItem", consistent });
            }
            "BatchGetItem" => {
                let consistent = body["RequestItems"]
                    .as_object()?
                    .iter()
                    .map(|(table, keys)| (table.clone(), keys["ConsistentRead"].as_bool().unwrap_or(false)))
                    .collect();
                return Some(Metered::Read { per_item: true, consistent });
            }
            _ => return None,
        };
        let template = Template {
            uri: request.uri().to_owned(),
            headers: request.headers().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        };
        Some(Metered::Writes { template, writes })
    }
}

/// The items a write touched, as they were before it.
pub type Before = Vec<Option<Map<String, Value>>>;

#[derive(Debug, Default)]
pub struct Meter {
    schemas: Mutex<HashMap<String, Schema>>,
    total: Mutex<Units>,
}

impl Meter {
    pub fn total(&self) -> Units {
        *self.total.lock().unwrap()
    }

    /// Reads the items `metered` is about to write.
    pub async fn before(&self, inner: &SharedHttpConnector, metered: &Metered) -> Before {
        let Metered::Writes { template, writes } = metered else { return Vec::new() };
        let mut items = Vec::with_capacity(writes.len());
        for write in writes {
            items.push(self.current(inner, template, write).await);
        }
        items
    }

    /// Reads the written items again and adds the call's units; for a read, meters what
    /// it answered.
    pub async fn after(&self, inner: &SharedHttpConnector, metered: &Metered, before: Before, answer: &[u8]) {
        let units = match metered {
            Metered::Writes { template, writes } => {
                let mut units = Units::default();
                for (write, before) in writes.iter().zip(before) {
                    let after = self.current(inner, template, write).await;
                    let size = |item: &Option<Map<String, Value>>| item.as_ref().map(units::item_size);
                    units.write += units::write_units(size(&before), size(&after), write.transactional);
                    if let Some(schema) = self.schema(inner, template, &write.table).await {
                        for index in &schema.indexes {
                            units.index_write += units::index_writes(before.as_ref(), after.as_ref(), index);
                        }
                    }
                }
                units
            }
            Metered::Read { per_item, consistent } => {
                Units { read: read_units(answer, *per_item, consistent), ..Units::default() }
            }
        };
        let mut total = self.total.lock().unwrap();
        total.write += units.write;
        total.index_write += units.index_write;
        total.read += units.read;
    }

    /// The item `write` names as it is now (a consistent GetItem).
    async fn current(
        &self,
        inner: &SharedHttpConnector,
        template: &Template,
        write: &Write,
    ) -> Option<Map<String, Value>> {
        let schema = self.schema(inner, template, &write.table).await?;
        let key: Map<String, Value> =
            schema.key.iter().filter_map(|k| write.item.get(k).map(|v| (k.clone(), v.clone()))).collect();
        let answer =
            call(inner, template, "GetItem", json!({"TableName": write.table, "Key": key, "ConsistentRead": true}))
                .await?;
        answer.get("Item").and_then(Value::as_object).cloned()
    }

    async fn schema(&self, inner: &SharedHttpConnector, template: &Template, table: &str) -> Option<Schema> {
        if let Some(schema) = self.schemas.lock().unwrap().get(table) {
            return Some(schema.clone());
        }
        let answer = call(inner, template, "DescribeTable", json!({"TableName": table})).await?;
        let key_names = |key_schema: &Value| -> Vec<String> {
            key_schema
                .as_array()
                .map(|keys| keys.iter().filter_map(|k| k["AttributeName"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        let description = &answer["Table"];
        let schema = Schema {
            key: key_names(&description["KeySchema"]),
            indexes: description["GlobalSecondaryIndexes"]
                .as_array()
                .map(|indexes| indexes.iter().map(|i| key_names(&i["KeySchema"])).collect())
                .unwrap_or_default(),
        };
        self.schemas.lock().unwrap().insert(table.to_owned(), schema.clone());
        Some(schema)
    }
}

/// Read units of a read's answer: its items, per item or together.
fn read_units(answer: &[u8], per_item: bool, consistent: &HashMap<String, bool>) -> f64 {
    let Ok(answer) = serde_json::from_slice::<Value>(answer) else { return 0.0 };
    let sizes = |items: &Value| -> Vec<u64> {
        items
            .as_array()
            .map(|items| items.iter().filter_map(Value::as_object).map(units::item_size).collect())
            .unwrap_or_default()
    };
    if let Some(responses) = answer["Responses"].as_object() {
        return responses
            .iter()
            .map(|(table, items)| {
                units::item_read_units(&sizes(items), consistent.get(table).copied().unwrap_or(false))
            })
            .sum();
    }
    let consistent = consistent.get("").copied().unwrap_or(false);
    if per_item {
        let size = answer["Item"].as_object().map(units::item_size).unwrap_or(0);
        units::item_read_units(&[size], consistent)
    } else {
        units::query_read_units(&sizes(&answer["Items"]), consistent)
    }
}

/// One DynamoDB call straight to the emulator (through the local IAM as nobody's), with
/// the other headers of `template`, answering the parsed body of a 200.
async fn call(inner: &SharedHttpConnector, template: &Template, operation: &str, body: Value) -> Option<Value> {
    let body = serde_json::to_vec(&body).ok()?;
    let mut request = HttpRequest::new(SdkBody::from(body.clone()));
    request.set_method("POST").ok()?;
    request.set_uri(template.uri.clone()).ok()?;
    for (name, value) in &template.headers {
        let own = ["content-length", "x-amz-target", "x-amz-security-token"];
        if name.eq_ignore_ascii_case("authorization") {
            // Not as the function (the local IAM would hold the meter's reads to its
            // policy): the same scope under another access key.
            request.headers_mut().insert(name.clone(), as_the_meter(value));
        } else if !own.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            request.headers_mut().insert(name.clone(), value.clone());
        }
    }
    request.headers_mut().insert("x-amz-target", format!("DynamoDB_20120810.{operation}"));
    request.headers_mut().insert("content-length", body.len().to_string());
    let response = inner.call(request).await.ok()?;
    if response.status().as_u16() != 200 {
        return None;
    }
    let bytes = ByteStream::new(response.into_body()).collect().await.ok()?.into_bytes();
    serde_json::from_slice(&bytes).ok()
}

/// `… Credential=AKID/20261129/us-east-1/dynamodb/aws4_request, …` with the meter's own
/// access key instead of the function's.
fn as_the_meter(authorization: &str) -> String {
    match authorization.split_once("Credential=") {
        Some((head, rest)) => match rest.split_once('/') {
            Some((_, scope)) => format!("{head}Credential=bench-meter/{scope}"),
            None => authorization.to_owned(),
        },
        None => authorization.to_owned(),
    }
}
