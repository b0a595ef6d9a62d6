//! DynamoDB stream events (what Lambda's event source mapping sends the indexer) as the
//! domain's index changes. Records arrive in DynamoDB's JSON (`{"S": "…"}`); only message
//! items are kept (not reactions, not anything else the table may hold).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::Blob;
use chat_domain::ids::MessageId;
use chat_domain::model::UserId;
use chat_domain::ports::IndexedMessage;
use serde_json::Value;

use crate::store::keys;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("not a DynamoDB stream event: {0}")]
    NotAnEvent(String),
}

/// What a batch of records holds for the index, and how many records were not messages
/// or could not be read (those are logged and skipped: retrying cannot fix them).
#[derive(Debug, Default)]
pub struct StreamBatch {
    pub changes: Vec<IndexedMessage>,
    pub skipped: usize,
    pub unreadable: usize,
}

pub fn index_changes(event: &Value) -> Result<StreamBatch, StreamError> {
    let records =
        event.get("Records").and_then(Value::as_array).ok_or_else(|| StreamError::NotAnEvent("no Records".into()))?;
    let mut batch = StreamBatch::default();
    for record in records {
        match change_of(record) {
            Ok(Some(change)) => batch.changes.push(change),
            Ok(None) => batch.skipped += 1,
            Err(problem) => {
                let id = record.get("eventID").and_then(Value::as_str).unwrap_or("?");
                tracing::warn!(event_id = id, problem, "stream record skipped");
                batch.unreadable += 1;
            }
        }
    }
    Ok(batch)
}

fn change_of(record: &Value) -> Result<Option<IndexedMessage>, String> {
    let dynamodb = record.get("dynamodb").ok_or("no dynamodb")?;
    let pk = dynamodb.pointer("/Keys/pk/S").and_then(Value::as_str).ok_or("no pk")?;
    let Some(channel) = keys::channel_of_message_pk(pk) else { return Ok(None) };
    match record.get("eventName").and_then(Value::as_str) {
        Some("INSERT" | "MODIFY") => {
            let image = dynamodb.get("NewImage").ok_or("no NewImage (the stream must carry new images)")?;
            let item = item_of(image)?;
            let message = crate::store::messages::message_of_item(item).map_err(|e| e.to_string())?;
            Ok(Some(chat_domain::search::indexed(&message)))
        }
        // Messages are never removed by the application (a deletion keeps the item): an
        // item removed by hand is gone for good, whatever comes later.
        Some("REMOVE") => {
            let id = dynamodb.pointer("/Keys/id/N").and_then(Value::as_str).and_then(|n| n.parse().ok());
            Ok(Some(IndexedMessage {
                channel_id: channel,
                message_id: MessageId::from_u64(id.ok_or("no id")?),
                version: u64::MAX,
                author_id: UserId::parse("removed").map_err(|e| e.to_string())?,
                text: String::new(),
                has_file: false,
                deleted: true,
            }))
        }
        other => Err(format!("unknown eventName {other:?}")),
    }
}

fn item_of(image: &Value) -> Result<HashMap<String, AttributeValue>, String> {
    let map = image.as_object().ok_or("an image that is not a map")?;
    map.iter().map(|(name, value)| Ok((name.clone(), attribute_of(value)?))).collect()
}

/// One value in DynamoDB's JSON.
fn attribute_of(value: &Value) -> Result<AttributeValue, String> {
    let (kind, inner) = value.as_object().and_then(|m| m.iter().next()).ok_or("an attribute that is not typed")?;
    let text = || inner.as_str().map(str::to_owned).ok_or(format!("{kind} that is not text"));
    let texts = || -> Result<Vec<String>, String> {
        inner
            .as_array()
            .ok_or(format!("{kind} that is not a list"))?
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or(format!("{kind} item")))
            .collect()
    };
    let blob = |s: &str| -> Result<Blob, String> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(s).map(Blob::new).map_err(|e| e.to_string())
    };
    Ok(match kind.as_str() {
        "S" => AttributeValue::S(text()?),
        "N" => AttributeValue::N(text()?),
        "B" => AttributeValue::B(blob(&text()?)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or("BOOL that is not a boolean")?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(texts()?),
        "NS" => AttributeValue::Ns(texts()?),
        "BS" => AttributeValue::Bs(texts()?.iter().map(|s| blob(s)).collect::<Result<_, _>>()?),
        "L" => AttributeValue::L(
            inner.as_array().ok_or("L that is not a list")?.iter().map(attribute_of).collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(item_of(inner)?),
        other => return Err(format!("unknown attribute type {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(name: &str, pk: &str, image: Option<Value>) -> Value {
        let mut dynamodb = json!({"Keys": {"pk": {"S": pk}, "id": {"N": "77"}}, "SequenceNumber": "1"});
        if let Some(image) = image {
            dynamodb["NewImage"] = image;
        }
        json!({"eventID": "e1", "eventName": name, "eventSource": "aws:dynamodb", "dynamodb": dynamodb})
    }

    fn image(extra: Value) -> Value {
        let mut image = json!({
            "pk": {"S": "general#3"}, "id": {"N": "77"}, "channelId": {"S": "general"}, "seq": {"N": "4"},
            "authorId": {"S": "alice"}, "text": {"S": "Lunch?"}, "clientMsgId": {"S": "c1"}, "createdAt": {"N": "1000"}
        });
        image.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        image
    }

    #[test]
    fn messages_become_changes_and_the_rest_is_skipped() {
        let event = json!({"Records": [
            record("INSERT", "general#3", Some(image(json!({})))),
            record("MODIFY", "general#3", Some(image(json!({"text": {"S": "Dinner?"}, "changeSeq": {"N": "2"}, "editedAt": {"N": "2000"}})))),
            record("MODIFY", "general#3", Some(image(json!({"deleted": {"BOOL": true}, "changeSeq": {"N": "3"}})))),
            record("INSERT", "general#3#reactions", Some(json!({"pk": {"S": "general#3#reactions"}}))),
            record("REMOVE", "general#3", None),
            record("INSERT", "general#3", Some(json!({"pk": {"S": "general#3"}}))),
        ]});
        let batch = index_changes(&event).unwrap();
        assert_eq!((batch.skipped, batch.unreadable), (1, 1));
        let seen: Vec<(u64, &str, bool)> =
            batch.changes.iter().map(|c| (c.version, c.text.as_str(), c.deleted)).collect();
        assert_eq!(seen, [(0, "Lunch?", false), (2, "Dinner?", false), (3, "", true), (u64::MAX, "", true)]);
        assert_eq!(batch.changes[0].message_id.as_u64(), 77);
        assert!(index_changes(&json!({"nope": 1})).is_err());
    }
}
