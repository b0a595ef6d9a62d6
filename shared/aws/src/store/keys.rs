//! Every table key in one place, so the layouts can be read (and changed) together.
//!
//! | table    | partition key (`pk`)       | sort key                                   |
//! |----------|----------------------------|--------------------------------------------|
//! | Messages | `{channelId}#{bucket}`     | `id` (number, the message id)              |
//! | Messages | `{channelId}#{bucket}#reactions` | `id` (the message id): its reactions  |
//! | Channels | `{channelId}`              | `sk`: `meta`, `member#{userId}`, `dedupe#{userId}#{clientMsgId}` |
//! | Channels | `invitations#{userId}`     | `sk`: `inbox` (pending invitations, a capped map) |
//! | Channels | `blocks#{userId}`          | `sk`: `list` (users they block, a capped set)     |
//! | Channels | `search#{shard}`           | `sk`: `manifest` (the search index shard's published files) |
//! | Presence | `userId`                   | — (attributes `c#{connectionId}` per connection) |
//! | Presence | `watchers#{userId}`        | — (attributes `w#{connectionId}` per subscribed connection) |
//! | Presence | `call#{callId}`            | — (a call: its state, the call, the two devices) |
//! | Presence | `incall#{userId}`          | — (the call the user is in, from which device) |
//! | Users    | `user#{userId}`, `refresh#{sha256 of token}`, `sessions#{userId}` | —   |
//! | RateLimits | `{kind}#{userId}#{window}` | —                                          |

use chat_domain::ids::Bucket;
use chat_domain::model::{CallId, ChannelId, ClientMsgId, UserId};

pub const CHANNEL_META_SK: &str = "meta";
pub const MEMBER_SK_PREFIX: &str = "member#";
/// Sparse GSI of the Channels table over member items: `userId` -> `pk` (channel id).
pub const USER_CHANNELS_INDEX: &str = "UserChannels";
/// Sparse GSI of the Messages table over changed messages: `channelId` -> `changeSeq`.
/// `sync` reads the edits and deletions a device missed from it.
pub const CHANNEL_CHANGES_INDEX: &str = "ChannelChanges";
/// Sparse GSI of the Presence table over users contacts believe online:
/// `onlineShard` -> `deadline`. The presence sweep reads it.
pub const ONLINE_BY_DEADLINE_INDEX: &str = "OnlineByDeadline";

/// Each open connection is an attribute of its user's Presence item: `c#{connectionId}`.
pub const CONNECTION_ATTRIBUTE_PREFIX: &str = "c#";

pub const INBOX_SK: &str = "inbox";
pub const SEARCH_MANIFEST_SK: &str = "manifest";

/// The Channels item naming the files of a search index shard.
pub fn search_manifest_pk(shard: u32) -> String {
    format!("search#{shard}")
}

/// A search index shard's file in the search bucket.
pub fn search_file_key(shard: u32, file: &str) -> String {
    format!("search/{shard}/{file}")
}

/// A message item's partition key back to its channel (`None` for the reactions partition
/// and anything that is not a message's).
pub fn channel_of_message_pk(pk: &str) -> Option<ChannelId> {
    let (channel, bucket) = pk.rsplit_once('#')?;
    bucket.parse::<i64>().ok()?;
    ChannelId::parse(channel).ok()
}
pub const BLOCKS_SK: &str = "list";
pub const BLOCKS_PK_PREFIX: &str = "blocks#";

/// The Presence item of the connections subscribed to `user`'s presence.
pub fn watchers_key(user: &UserId) -> String {
    format!("watchers#{user}")
}

/// The Presence item of a call.
pub fn call_key(call: &CallId) -> String {
    format!("call#{call}")
}

/// The Presence item naming the call `user` is in.
pub fn in_call_key(user: &UserId) -> String {
    format!("incall#{user}")
}

pub fn invitations_pk(user: &UserId) -> String {
    format!("invitations#{user}")
}

pub fn blocks_pk(user: &UserId) -> String {
    format!("{BLOCKS_PK_PREFIX}{user}")
}

pub fn user_pk(user: &UserId) -> String {
    format!("user#{user}")
}

pub fn devices_pk(user: &UserId) -> String {
    format!("devices#{user}")
}

pub fn sessions_pk(user: &UserId) -> String {
    format!("sessions#{user}")
}

pub fn refresh_pk(token_hash: &str) -> String {
    format!("refresh#{token_hash}")
}

pub fn rate_limit_pk(kind: &str, who: &str, window: i64) -> String {
    format!("{kind}#{who}#{window}")
}

pub fn message_pk(channel: &ChannelId, bucket: Bucket) -> String {
    format!("{channel}#{}", bucket.0)
}

/// The partition of a bucket's reactions: one item per message that has any, beside the
/// messages' own partition, so a history page reads its reactions with one Query.
pub fn reactions_pk(channel: &ChannelId, bucket: Bucket) -> String {
    format!("{channel}#{}{REACTIONS_PK_SUFFIX}", bucket.0)
}

pub const REACTIONS_PK_SUFFIX: &str = "#reactions";

pub fn member_sk(user: &UserId) -> String {
    format!("{MEMBER_SK_PREFIX}{user}")
}

pub fn dedupe_sk(user: &UserId, client_msg_id: &ClientMsgId) -> String {
    format!("dedupe#{user}#{client_msg_id}")
}

/// One Query with `sk BETWEEN member# AND meta` returns the members and the meta item
/// but no dedupe rows: "member#…" < "meta" because 'm' 'e' 'm' < 'm' 'e' 't'.
pub const ROSTER_SK_RANGE: (&str, &str) = (MEMBER_SK_PREFIX, CHANNEL_META_SK);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roster_range_holds_members_and_meta_but_not_dedupe_rows() {
        let (low, high) = ROSTER_SK_RANGE;
        let alice = UserId::parse("zzzz").unwrap();
        let member = member_sk(&alice);
        assert!(low <= member.as_str() && member.as_str() <= high);
        assert!(low <= CHANNEL_META_SK && CHANNEL_META_SK <= high);
        let dedupe = dedupe_sk(&alice, &ClientMsgId::parse("m").unwrap());
        assert!(dedupe.as_str() < low);
    }
}
