//! The chat rules against the in-memory ports (`chat_domain::memory`): one module per rule
//! area. Each test builds a [`World`], calls domain operations, and asserts on what the
//! stores hold and what was posted, pushed and uploaded. Time moves with the world's
//! `ManualClock`, never by sleeping.

mod access;
mod accounts;
mod calls;
mod consent;
mod delivery;
mod history;
mod limits;
mod media;
mod membership;
mod ordering;
mod presence;
mod presence_states;
mod push;
mod reactions;
mod sync;
mod unread;

use std::sync::atomic::{AtomicU64, Ordering};

use chat_domain::App;
use chat_domain::chat::{self, Sent};
use chat_domain::memory::World;
use chat_domain::model::{Attachment, ChannelId, ClientMsgId, ConnectionId, Message, UserId};
use chat_domain::ports::{UserRecord, UserStore};
use chat_domain::presence::Device;
use serde_json::Value;

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;
/// How long API Gateway keeps a test connection open.
pub const LIFETIME: i64 = 2 * HOUR;

pub fn user(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}

pub fn conn(name: &str) -> ConnectionId {
    ConnectionId::new(name)
}

pub fn channel(name: &str) -> ChannelId {
    ChannelId::parse(name).unwrap()
}

/// A clientMsgId never used before in this process.
pub fn fresh_id() -> ClientMsgId {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    ClientMsgId::parse(format!("m{}", NEXT.fetch_add(1, Ordering::Relaxed))).unwrap()
}

/// A world with generous limits and accounts for `names` (no password work).
pub async fn world_with(names: &[&str]) -> (World, App) {
    let world = World::new().generous();
    add_accounts(&world, names).await;
    let app = world.app();
    (world, app)
}

pub async fn add_accounts(world: &World, names: &[&str]) {
    for name in names {
        let record = UserRecord { user_id: user(name), password_hash: String::new(), created_at: World::START_MS };
        assert!(world.users.create(&record).await.unwrap(), "{name} exists already");
    }
}

/// A group `owner` created and every one of `members` accepted, in that order, one
/// millisecond apart (so the first has stood longest).
pub async fn group(world: &World, app: &App, owner: &str, members: &[&str]) -> ChannelId {
    let invited = members.iter().map(|m| user(m)).collect();
    let view = chat_domain::membership::create_group(app, &user(owner), "team", invited).await.unwrap();
    for member in members {
        world.clock.advance(1);
        chat_domain::consent::accept(app, &user(member), &view.channel_id).await.unwrap();
    }
    view.channel_id
}

/// The direct channel of `a` and `b`, opened by both.
pub async fn direct(app: &App, a: &str, b: &str) -> ChannelId {
    chat_domain::membership::open_direct(app, &user(a), &user(b)).await.unwrap();
    chat_domain::membership::open_direct(app, &user(b), &user(a)).await.unwrap().channel_id
}

pub fn device(connection: &ConnectionId) -> Device<'_> {
    Device { connection, session: None, lifetime_left_ms: LIFETIME }
}

/// `user` opens connection `connection`.
pub async fn connect(app: &App, name: &str, connection: &str) {
    chat::connect(app, &user(name), &device(&conn(connection))).await.unwrap();
}

/// `user` opens connection `connection` with session `sid`.
pub async fn connect_in_session(app: &App, name: &str, connection: &str, sid: &str) {
    let connection = conn(connection);
    let device = Device { connection: &connection, session: Some(sid), lifetime_left_ms: LIFETIME };
    chat_domain::presence::connected(app, &user(name), &device).await.unwrap();
}

/// `name` sends `text` from connection `origin`.
pub async fn send(app: &App, name: &str, origin: &str, channel: &ChannelId, text: &str) -> Message {
    send_with(app, name, origin, channel, &fresh_id(), text, vec![]).await.unwrap().message
}

pub async fn send_with(
    app: &App,
    name: &str,
    origin: &str,
    channel: &ChannelId,
    client_msg_id: &ClientMsgId,
    text: &str,
    attachments: Vec<Attachment>,
) -> Result<Sent, chat_domain::ChatError> {
    let draft = chat::Draft { attachments, ..chat::Draft::text(client_msg_id.clone(), text) };
    chat::send_message(app, &user(name), &conn(origin), channel, draft).await
}

/// The frames of `kind` (`"message"`, `"presence"`…) delivered to `connection`.
pub fn frames(world: &World, connection: &str, kind: &str) -> Vec<Value> {
    world.poster.delivered_to(&conn(connection)).into_iter().filter(|f| f["type"] == kind).collect()
}

/// `user`'s read position in `channel`.
pub async fn read_seq(app: &App, channel: &ChannelId, name: &str) -> u64 {
    let roster = app.channels().roster(channel).await.unwrap().unwrap();
    roster.member(&user(name)).expect("a member").last_read_seq
}

/// The message ids of a list of messages.
pub fn ids(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.message_id.as_u64()).collect()
}

/// The text of each message.
pub fn texts(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.text.clone()).collect()
}

#[allow(dead_code)]
pub async fn member_count(app: &App, channel: &ChannelId) -> u64 {
    app.channels().meta(channel).await.unwrap().unwrap().member_count
}
