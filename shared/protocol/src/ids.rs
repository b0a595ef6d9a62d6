//! Message ids and time buckets.
//!
//! A message id is a Snowflake-style 64-bit number: milliseconds since [`ID_EPOCH_MS`] in
//! the high bits, a counter in the low [`COUNTER_BITS`]. Within a channel ids strictly
//! increase in commit order (the send path guarantees it), so sorting by id is the order
//! everyone sees. Ids travel as decimal strings on the wire: JavaScript numbers lose
//! precision above 2^53.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 2024-01-01T00:00:00Z.
pub const ID_EPOCH_MS: i64 = 1_704_067_200_000;
pub const COUNTER_BITS: u32 = 22;
/// Messages are partitioned by (channel, bucket); a bucket is a fixed 10-day window.
pub const BUCKET_MS: i64 = 10 * 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(u64);

impl MessageId {
    pub const ZERO: MessageId = MessageId(0);

    pub fn from_u64(raw: u64) -> Self {
        Self(raw)
    }

    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The first id at or after `now_ms` that is greater than `last` (the channel's newest id).
    /// When the clock is behind the channel (clock skew between Lambdas, or many messages in
    /// one millisecond) the id continues from `last`, so ids never go backwards.
    pub fn next_after(now_ms: i64, last: MessageId) -> Self {
        let since_epoch = now_ms.saturating_sub(ID_EPOCH_MS).max(0) as u64;
        let candidate = since_epoch << COUNTER_BITS;
        Self(candidate.max(last.0 + 1))
    }

    /// The id of a channel's `seq`th message, claimed at `at_ms`: the time in the high bits,
    /// the seq's low [`COUNTER_BITS`] below it, and the seq's higher bits added to the time
    /// so that the counter's wrap still moves the id forward. Ids grow with the seq as long
    /// as `at_ms` never goes backwards from one seq to the next (the claim's condition).
    pub fn claimed(at_ms: i64, seq: u64) -> Self {
        let since_epoch = at_ms.saturating_sub(ID_EPOCH_MS).max(0) as u64;
        let mask = (1u64 << COUNTER_BITS) - 1;
        Self(((since_epoch + (seq >> COUNTER_BITS)) << COUNTER_BITS) | (seq & mask))
    }

    /// The lowest id that can exist at `time_ms`: used to turn a time into an id bound.
    pub fn first_at(time_ms: i64) -> Self {
        Self::next_after(time_ms, MessageId::ZERO).max(MessageId(1))
    }

    pub fn timestamp_ms(self) -> i64 {
        (self.0 >> COUNTER_BITS) as i64 + ID_EPOCH_MS
    }

    pub fn bucket(self) -> Bucket {
        Bucket::containing(self.timestamp_ms())
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for MessageId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<u64>().map(MessageId)
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// Accepts `"123"` (what we send) and `123` (what a careless client may send back).
impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(MessageId(n)),
            Raw::Text(s) => s.parse().map_err(|_| serde::de::Error::custom("message id must be a decimal number")),
        }
    }
}

/// A fixed window of time; together with the channel id it is the partition key of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bucket(pub i64);

impl Bucket {
    pub fn containing(time_ms: i64) -> Self {
        Self(time_ms.div_euclid(BUCKET_MS))
    }

    /// Ids that fall into this bucket are in `[first_id, last_id]`.
    pub fn first_id(self) -> MessageId {
        MessageId::first_at(self.0 * BUCKET_MS)
    }

    pub fn last_id(self) -> MessageId {
        MessageId(MessageId::first_at((self.0 + 1) * BUCKET_MS).0 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = ID_EPOCH_MS + 1_000_000_000;

    #[test]
    fn claimed_ids_grow_with_the_seq_at_one_time_and_across_the_counter_wrap() {
        let wrap = 1u64 << COUNTER_BITS;
        for seqs in [(1, 2), (wrap - 1, wrap), (wrap, wrap + 1), (3 * wrap - 1, 3 * wrap)] {
            assert!(MessageId::claimed(T, seqs.0) < MessageId::claimed(T, seqs.1), "{seqs:?}");
        }
        assert!(MessageId::claimed(T, 7) < MessageId::claimed(T + 1, 8));
        assert_eq!(MessageId::claimed(T, 5).timestamp_ms(), T);
        assert_eq!(MessageId::claimed(T, 5).bucket(), Bucket::containing(T));
    }

    #[test]
    fn ids_sort_by_time() {
        let a = MessageId::next_after(T, MessageId::ZERO);
        let b = MessageId::next_after(T + 1, MessageId::ZERO);
        assert!(a < b);
        assert_eq!(a.timestamp_ms(), T);
    }

    #[test]
    fn ids_never_go_backwards_when_the_clock_does() {
        let newest = MessageId::next_after(T + 5_000, MessageId::ZERO);
        let next = MessageId::next_after(T, newest);
        assert_eq!(next.as_u64(), newest.as_u64() + 1);
    }

    #[test]
    fn many_ids_in_one_millisecond_stay_unique_and_ordered() {
        let mut last = MessageId::ZERO;
        for _ in 0..1000 {
            let id = MessageId::next_after(T, last);
            assert!(id > last);
            last = id;
        }
        assert_eq!(last.timestamp_ms(), T);
    }

    #[test]
    fn bucket_bounds_contain_exactly_the_bucket_ids() {
        let id = MessageId::next_after(T, MessageId::ZERO);
        let bucket = id.bucket();
        assert!(bucket.first_id() <= id && id <= bucket.last_id());
        assert_eq!(bucket.first_id().bucket(), bucket);
        assert_eq!(bucket.last_id().bucket(), bucket);
        assert_eq!(MessageId::from_u64(bucket.last_id().as_u64() + 1).bucket().0, bucket.0 + 1);
    }

    #[test]
    fn ids_travel_as_strings_and_parse_from_either() {
        let id = MessageId::from_u64(9_007_199_254_740_993);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"9007199254740993\"");
        let back: MessageId = serde_json::from_str("\"9007199254740993\"").unwrap();
        assert_eq!(back, id);
        let number: MessageId = serde_json::from_str("42").unwrap();
        assert_eq!(number.as_u64(), 42);
        assert!(serde_json::from_str::<MessageId>("\"x1\"").is_err());
    }
}
