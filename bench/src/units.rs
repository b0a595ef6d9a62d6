//! DynamoDB capacity units from item sizes, by the published rules, for an emulator that
//! does not bill. Items are in DynamoDB's JSON (`{"S": "…"}`, `{"N": "…"}` …), as requests
//! and answers carry them.
//!
//! - Size: each attribute's name in UTF-8 bytes plus its value: a string's UTF-8 bytes; a
//!   number 1 byte per two significant digits plus 1; binary its raw bytes; a boolean or
//!   null 1; a list or map 3 bytes plus its elements plus 1 byte per element (a map's
//!   element counts its name); a set the sum of its elements.
//! - Writes: 1 unit per KB started, at least 1; an update bills the larger of the item
//!   before and after; a write its condition refused bills the same as if it had written;
//!   a transaction bills every item twice.
//! - An index: a write that puts an item into a global secondary index, changes the
//!   indexed item or takes it out bills 1 write there (of the projected size); one that
//!   changes the index key bills 2 (a delete and a put).
//! - Reads: 4 KB per unit, rounded per item for GetItem and BatchGetItem, over the sum of
//!   the items for Query and Scan; half for an eventually consistent read.

use serde_json::{Map, Value};

/// An item's size in bytes.
pub fn item_size(item: &Map<String, Value>) -> u64 {
    item.iter().map(|(name, value)| name.len() as u64 + value_size(value)).sum()
}

fn value_size(value: &Value) -> u64 {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else { return 0 };
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len() as u64,
        ("N", Value::String(n)) => number_size(n),
        ("B", Value::String(b)) => base64_len(b),
        ("BOOL", _) | ("NULL", _) => 1,
        ("SS", Value::Array(items)) => items.iter().filter_map(Value::as_str).map(|s| s.len() as u64).sum(),
        ("NS", Value::Array(items)) => items.iter().filter_map(Value::as_str).map(number_size).sum(),
        ("BS", Value::Array(items)) => items.iter().filter_map(Value::as_str).map(base64_len).sum(),
        ("L", Value::Array(items)) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<u64>(),
        ("M", Value::Object(map)) => 3 + map.iter().map(|(k, v)| 1 + k.len() as u64 + value_size(v)).sum::<u64>(),
        _ => 0,
    }
}

/// 1 byte per two significant digits (leading and trailing zeros trimmed), plus 1.
fn number_size(n: &str) -> u64 {
    let digits: String = n.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    (significant.len() as u64).div_ceil(2) + 1
}

fn base64_len(b: &str) -> u64 {
    let padding = b.bytes().rev().take_while(|c| *c == b'=').count() as u64;
    (b.len() as u64 / 4 * 3).saturating_sub(padding)
}

/// Write units of one item's write: the larger of before and after, per KB, at least 1;
/// twice that inside a transaction.
pub fn write_units(before: Option<u64>, after: Option<u64>, transactional: bool) -> f64 {
    let size = before.unwrap_or(0).max(after.unwrap_or(0));
    let units = size.div_ceil(1024).max(1) as f64;
    if transactional { units * 2.0 } else { units }
}

/// Whether and how a write touches an index whose key is `key_attributes`: the index
/// writes it bills (0, 1 or 2).
pub fn index_writes(
    before: Option<&Map<String, Value>>,
    after: Option<&Map<String, Value>>,
    key_attributes: &[String],
) -> f64 {
    let key_of = |item: Option<&Map<String, Value>>| -> Option<Vec<Value>> {
        let item = item?;
        key_attributes.iter().map(|k| item.get(k).cloned()).collect()
    };
    match (key_of(before), key_of(after)) {
        (None, None) => 0.0,
        (Some(_), None) | (None, Some(_)) => 1.0,
        (Some(old), Some(new)) if old != new => 2.0,
        // In the index before and after under the same key: billed if anything changed.
        (Some(_), Some(_)) => {
            if before == after {
                0.0
            } else {
                1.0
            }
        }
    }
}

/// Read units of items read one by one (GetItem, BatchGetItem): per item, 4 KB each.
pub fn item_read_units(sizes: &[u64], consistent: bool) -> f64 {
    let units: u64 = sizes.iter().map(|s| s.div_ceil(4096).max(1)).sum();
    if consistent { units as f64 } else { units as f64 / 2.0 }
}

/// Read units of a Query or Scan: the items' sizes added up, then per 4 KB (at least 1).
pub fn query_read_units(sizes: &[u64], consistent: bool) -> f64 {
    let units = sizes.iter().sum::<u64>().div_ceil(4096).max(1);
    if consistent { units as f64 } else { units as f64 / 2.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn strings_count_their_utf8_bytes_and_the_name() {
        assert_eq!(item_size(&item(json!({"pk": {"S": "alice"}}))), 2 + 5);
        assert_eq!(item_size(&item(json!({"t": {"S": "héllo"}}))), 1 + 6);
    }

    #[test]
    fn numbers_count_a_byte_per_two_significant_digits_plus_one() {
        assert_eq!(item_size(&item(json!({"n": {"N": "7"}}))), 1 + 2);
        assert_eq!(item_size(&item(json!({"n": {"N": "12345"}}))), 1 + 4);
        assert_eq!(item_size(&item(json!({"n": {"N": "1200000"}}))), 1 + 2, "trailing zeros trimmed");
        assert_eq!(item_size(&item(json!({"n": {"N": "-0.0015"}}))), 1 + 2, "leading zeros trimmed");
        // A message id: 19 digits.
        assert_eq!(item_size(&item(json!({"id": {"N": "1234567890123456789"}}))), 2 + 11);
    }

    #[test]
    fn booleans_nulls_binaries_and_sets() {
        assert_eq!(item_size(&item(json!({"ok": {"BOOL": true}, "no": {"NULL": true}}))), 2 + 1 + 2 + 1);
        assert_eq!(item_size(&item(json!({"b": {"B": "aGVsbG8="}}))), 1 + 5, "raw bytes, not base64");
        assert_eq!(item_size(&item(json!({"ss": {"SS": ["ab", "cde"]}}))), 2 + 5);
        assert_eq!(item_size(&item(json!({"ns": {"NS": ["1", "22", "333"]}}))), 2 + 2 + 2 + 3);
    }

    #[test]
    fn lists_and_maps_cost_three_bytes_and_one_per_element() {
        assert_eq!(item_size(&item(json!({"l": {"L": []}}))), 1 + 3);
        assert_eq!(item_size(&item(json!({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}))), 1 + 3 + (1 + 2) + (1 + 2));
        assert_eq!(item_size(&item(json!({"m": {"M": {"k": {"S": "v"}}}}))), 1 + 3 + 1 + 1 + 1);
    }

    #[test]
    fn a_write_bills_per_kilobyte_started_and_the_larger_side_of_an_update() {
        assert_eq!(write_units(None, Some(100), false), 1.0);
        assert_eq!(write_units(None, Some(1024), false), 1.0);
        assert_eq!(write_units(None, Some(1025), false), 2.0);
        assert_eq!(write_units(Some(3500), Some(200), false), 4.0, "a shrinking update bills the item before");
        assert_eq!(write_units(None, None, false), 1.0, "a delete of nothing still bills one");
        assert_eq!(write_units(None, Some(500), true), 2.0, "a transaction bills twice");
    }

    #[test]
    fn index_writes_follow_the_index_key() {
        let key = vec!["userId".to_owned()];
        let member = item(json!({"pk": {"S": "c"}, "userId": {"S": "alice"}, "read": {"N": "1"}}));
        let read_more = item(json!({"pk": {"S": "c"}, "userId": {"S": "alice"}, "read": {"N": "2"}}));
        let other = item(json!({"pk": {"S": "c"}, "userId": {"S": "bob"}, "read": {"N": "2"}}));
        let meta = item(json!({"pk": {"S": "c"}, "seq": {"N": "2"}}));
        assert_eq!(index_writes(None, Some(&member), &key), 1.0, "enters the index");
        assert_eq!(index_writes(Some(&member), Some(&read_more), &key), 1.0, "changes in place");
        assert_eq!(index_writes(Some(&member), Some(&member), &key), 0.0);
        assert_eq!(index_writes(Some(&member), Some(&other), &key), 2.0, "a new index key: delete and put");
        assert_eq!(index_writes(None, Some(&meta), &key), 0.0, "not in a sparse index");
        assert_eq!(index_writes(Some(&member), None, &key), 1.0, "leaves the index");
    }

    #[test]
    fn reads_round_per_item_for_gets_and_over_the_sum_for_queries() {
        assert_eq!(item_read_units(&[100, 100], true), 2.0);
        assert_eq!(item_read_units(&[100, 100], false), 1.0);
        assert_eq!(item_read_units(&[5000], true), 2.0);
        assert_eq!(query_read_units(&[100; 50], true), 2.0, "5,000 bytes together");
        assert_eq!(query_read_units(&[100; 50], false), 1.0);
        assert_eq!(query_read_units(&[], false), 0.5, "an empty Query still bills");
    }
}
