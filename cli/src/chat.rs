//! `chat chat CHANNEL`: the interactive chat. Messages are shown in `seq` order (a gap is
//! read from history), sends go one at a time so they keep the order they were typed in,
//! a rate-limited send is retried with its clientMsgId, and a lost connection comes back
//! with backoff and catches up from the last message shown. While it runs it sends
//! heartbeats (the user is online), sends the user's own presence choices again (`chat
//! status`: the server forgets them), marks what it shows as read, subscribes to the
//! presence of the other person of a direct chat (or the members of a group) and tells
//! their changes (online, idle, dnd, offline, and their custom status), and notes
//! invitations to other channels as they arrive (looked for on connecting and every 15 s:
//! they are not pushed). Replies, mentions and reactions: see [`LONG_ABOUT`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use chat_protocol::ErrorCode;
use chat_protocol::calls::{CallOutcome, Media};
use chat_protocol::frames::{ClientFrame, CustomStatus, ErrorBody, PresenceView, ServerFrame, Status};
use chat_protocol::http::ChannelSummary;
use chat_protocol::ids::MessageId;
use chat_protocol::model::{ChannelId, ChannelKind, ClientMsgId, Emoji, Message, UserId};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::Endpoints;
use crate::api::{Api, Error};
use crate::commands::{self, MessageRef};
use crate::session::{self, Store};
use crate::show::{self, display_text, kind_name};
use crate::socket::{self, Incoming, Received, Socket};
use crate::term::{self, Screen};

const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// The backend counts a user online for 60 s after each heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Past this many missed messages, show only the newest ones.
const MAX_CATCH_UP: usize = 500;
/// How often pending invitations are looked for while connected.
const INVITATION_POLL: Duration = Duration::from_secs(15);
/// The close code of a socket the server ended on purpose (as when the session is signed out).
const CLOSE_NORMAL: u16 = 1000;

/// `chat chat --help`.
pub const LONG_ABOUT: &str = "\
Chat in a channel: incoming messages scroll above, your prompt stays on the last line.
Ctrl-D or /quit leaves.

Messages show as `HH:MM #seq author: text`. A reply comes after the start of the message it
answers (`↪ alice: first words…`, or `↪ (deleted message)`); `(mentions you)` marks a
message that mentions you; reactions follow the text (`👍 2* ❤️ 1`, `*`: yours), and
reactions as they come are told (`bob reacted 👍 to #12`).

Presence: the other person of a direct chat (or the members of a group) as they change:
`bob is online`, `idle`, `dnd (do not disturb)` or `offline`, with their custom status
(`· 📅 In a meeting (until 14:30 UTC)`). Set your own with `chat status`.

A line you type is sent as a message; `@username` in it mentions that member of the
channel. Commands (MESSAGE: #12 or 12, its seq, or its id):
  /reply MESSAGE TEXT     answer a message
  /react MESSAGE EMOJI    react to a message (👍, ❤️, :party:…)
  /unreact MESSAGE EMOJI  take your reaction back
  /help                   these commands
  /quit                   leave";

/// What `/help` shows.
const HELP: &str = "\
/reply MESSAGE TEXT · /react MESSAGE EMOJI · /unreact MESSAGE EMOJI · /quit
MESSAGE: #12 or 12 (its seq) or its id; @username in a text mentions a member";

struct Outgoing {
    client_msg_id: ClientMsgId,
    text: String,
    reply_to: Option<MessageId>,
    mentions: Vec<UserId>,
}

/// What the chat last told of someone's presence.
#[derive(Clone, PartialEq)]
struct Seen {
    status: Status,
    /// Only while it shows.
    custom: Option<CustomStatus>,
}

impl Seen {
    fn of(view: &PresenceView, now_ms: i64) -> Self {
        Self { status: view.status, custom: show::shown_custom_status(view, now_ms).cloned() }
    }
}

struct Chat<'a> {
    api: &'a Api,
    store: &'a mut Store,
    me: UserId,
    screen: Screen,
    channel: ChannelSummary,
    channels: Vec<ChannelSummary>,
    last_seq: u64,
    last_id: Option<MessageId>,
    /// Typed and not yet acknowledged; the head is in flight.
    outbox: VecDeque<Outgoing>,
    in_flight: bool,
    retry_at: Option<tokio::time::Instant>,
    /// Messages of others shown since the last `markRead`.
    unread_shown: bool,
    /// The other person of a direct chat: their presence as last told.
    peer: Option<Seen>,
    /// A group's other members: their presence as last told. (Filled by the first answer
    /// to `subscribePresence`.)
    members: Option<BTreeMap<UserId, Seen>>,
    /// Channels of the invitations already noted.
    invitations_noted: HashSet<ChannelId>,
    /// The ids of the messages shown, by seq: what `/react 12` names.
    shown: BTreeMap<u64, MessageId>,
    /// The emoji the user reacted with, per message (as far as seen): `reaction` events
    /// carry counts only.
    mine: HashMap<MessageId, BTreeSet<Emoji>>,
    /// Reactions typed and not yet sent (they wait for the connection).
    reactions: VecDeque<ClientFrame>,
}

pub async fn run(
    api: &Api,
    endpoints: &Endpoints,
    store: &mut Store,
    reference: &str,
    history: usize,
) -> Result<(), Error> {
    let channels = api.channels(store).await?;
    let channel = api.resolve(store, reference).await?;
    let me = store.user_id()?.clone();
    let screen = Screen::new(format!("{}> ", channel.title()));
    let mut chat = Chat {
        api,
        store,
        me,
        screen,
        channel,
        channels,
        last_seq: 0,
        last_id: None,
        outbox: VecDeque::new(),
        in_flight: false,
        retry_at: None,
        unread_shown: false,
        peer: None,
        members: None,
        invitations_noted: HashSet::new(),
        shown: BTreeMap::new(),
        mine: HashMap::new(),
        reactions: VecDeque::new(),
    };
    chat.note(&format!(
        "{} ({}, {}) · you are {} · /help lists commands · /quit or Ctrl-D leaves",
        chat.channel.title(),
        kind_name(chat.channel.kind),
        chat.channel.channel_id,
        chat.me
    ));
    chat.show_recent(history.clamp(1, 100)).await?;

    // Reading stdin blocks: a thread of its own hands the lines over.
    let (tx, mut lines) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut attempt = 0u32;
    let mut was_connected = false;
    loop {
        let token = chat.store.access_token(chat.api).await?;
        let mut socket = match Socket::connect(&endpoints.ws, &token, &endpoints.tls).await {
            Ok(socket) => socket,
            Err(err) => {
                if err.code() == Some(ErrorCode::Unauthorized) {
                    chat.store.refresh(chat.api).await?;
                }
                let delay = backoff(attempt);
                attempt += 1;
                chat.note(&format!("! cannot connect ({err}); trying again in {:.1} s", delay.as_secs_f64()));
                if wait_or_quit(&mut lines, delay, &mut chat).await {
                    return Ok(());
                }
                continue;
            }
        };
        if was_connected {
            chat.note("connected again");
            chat.catch_up().await?;
        }
        attempt = 0;
        was_connected = true;
        chat.in_flight = false;
        // The user's own choices first (the server may have forgotten them); then, as a new
        // connection has no subscriptions, subscribe (again).
        socket.restore_presence(&chat.store.presence_choices()).await?;
        socket.send(&chat.presence_subscription()).await?;
        chat.check_invitations().await;
        chat.pump(&mut socket).await?;
        match chat.session(&mut socket, &mut lines).await? {
            End::Quit => {
                socket.close().await;
                if !chat.outbox.is_empty() {
                    eprintln!("chat: {} message(s) were not sent", chat.outbox.len());
                }
                return Ok(());
            }
            End::Lost(why) => {
                if socket.close_code() == Some(CLOSE_NORMAL) {
                    // The server ended the connection on purpose: perhaps the session was
                    // signed out (here or on another device). Then the refresh is refused.
                    // Any other failure of the refresh is a matter for the reconnect below.
                    if let Err(Error::NotSignedIn) = chat.store.refresh(chat.api).await {
                        return Err(Error::Usage(
                            "signed out: the session was ended (`chat signout` here or elsewhere); sign in again"
                                .into(),
                        ));
                    }
                }
                let delay = backoff(0);
                chat.note(&format!("! connection lost ({why}); reconnecting in {:.1} s", delay.as_secs_f64()));
                if wait_or_quit(&mut lines, delay, &mut chat).await {
                    return Ok(());
                }
            }
        }
    }
}

enum End {
    Quit,
    Lost(String),
}

/// Exponential backoff with jitter.
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_FIRST.saturating_mul(2u32.saturating_pow(attempt.min(16))).min(BACKOFF_MAX);
    ceiling.mul_f64(0.5 + rand::random::<f64>() / 2.0)
}

/// Waits `delay`, queueing what is typed meanwhile; true when the user quit.
async fn wait_or_quit(lines: &mut mpsc::UnboundedReceiver<String>, delay: Duration, chat: &mut Chat<'_>) -> bool {
    let deadline = tokio::time::Instant::now() + delay;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return false,
            line = lines.recv() => match line {
                None => return true,
                Some(line) => if chat.typed(line).await { return true },
            },
        }
    }
}

impl Chat<'_> {
    fn note(&self, text: &str) {
        self.screen.line(text);
    }

    fn print(&mut self, message: &Message) {
        let time = term::format_time(message.created_at);
        for line in show::message_lines(&format!("{} ", &time[11..]), message, Some(&self.me)) {
            self.screen.line(&line);
        }
        if self.me != message.author_id {
            self.unread_shown = true;
        }
        self.shown.insert(message.seq, message.message_id);
        let mine: BTreeSet<Emoji> = message.reactions.iter().filter(|r| r.me).map(|r| r.emoji.clone()).collect();
        if mine.is_empty() {
            self.mine.remove(&message.message_id);
        } else {
            self.mine.insert(message.message_id, mine);
        }
        self.last_seq = message.seq;
        self.last_id = Some(message.message_id);
    }

    async fn show_recent(&mut self, count: usize) -> Result<(), Error> {
        let channel_id = self.channel.channel_id.clone();
        let page = self.api.history(self.store, &channel_id, None, None, count).await?;
        if page.next_before.is_some() {
            self.note("… (older messages: `chat history`)");
        }
        for message in page.messages.iter().rev() {
            self.print(message);
        }
        Ok(())
    }

    /// Prints what came after the last message shown, in order.
    async fn catch_up(&mut self) -> Result<(), Error> {
        let Some(after) = self.last_id else {
            return self.show_recent(20).await;
        };
        let channel_id = self.channel.channel_id.clone();
        let mut missed: Vec<Message> = Vec::new();
        let mut before: Option<MessageId> = None;
        loop {
            let page = self.api.history(self.store, &channel_id, before, Some(after), 100).await?;
            missed.extend(page.messages);
            before = page.next_before;
            if before.is_none() || missed.len() > MAX_CATCH_UP {
                break;
            }
        }
        missed.sort_by_key(|m| m.seq);
        if missed.len() > MAX_CATCH_UP {
            self.note(&format!("… {} missed messages; the newest follow", missed.len()));
            missed.drain(..missed.len() - 20);
        }
        let last_seq = self.last_seq;
        for message in missed.iter().filter(|m| m.seq > last_seq) {
            self.settle(message);
            self.print(message);
        }
        Ok(())
    }

    /// A message of this channel, shown in `seq` order.
    async fn deliver(&mut self, message: Message) -> Result<(), Error> {
        if message.seq <= self.last_seq {
            return Ok(());
        }
        if message.seq > self.last_seq + 1 {
            // Live events can overtake each other; history has them all, in order.
            self.catch_up().await?;
            if message.seq <= self.last_seq {
                return Ok(());
            }
        }
        self.print(&message);
        Ok(())
    }

    /// A send whose ack went missing shows up in history: it is delivered.
    fn settle(&mut self, message: &Message) {
        if self.me == message.author_id && self.outbox.front().is_some_and(|o| o.client_msg_id == message.client_msg_id)
        {
            self.outbox.pop_front();
            self.in_flight = false;
        }
    }

    /// A line typed at the prompt; true for /quit.
    async fn typed(&mut self, line: String) -> bool {
        self.screen.clear_prompt();
        let text = line.trim();
        if text == "/quit" || text == "/exit" {
            return true;
        }
        let (command, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        let rest = rest.trim();
        match command {
            "" => {}
            "/help" => {
                for line in HELP.lines() {
                    self.note(&format!("  {line}"));
                }
            }
            "/react" | "/unreact" => self.react(rest, command == "/react").await,
            "/reply" => self.reply(rest).await,
            _ => self.queue(text.to_owned(), None).await,
        }
        false
    }

    /// A message for the outbox, with the members its text mentions.
    async fn queue(&mut self, text: String, reply_to: Option<MessageId>) {
        let mut mentions = Vec::new();
        if text.contains('@') {
            // Asked each time: members come and go while the chat runs.
            match self.api.members(self.store, &self.channel.channel_id).await {
                Ok(members) => mentions = commands::mentioned(&text, &members, Some(&self.me)),
                Err(err) => self.note(&format!("! the members are not known ({err}): sent without mentions")),
            }
        }
        let client_msg_id = socket::new_client_msg_id();
        self.outbox.push_back(Outgoing { client_msg_id, text, reply_to, mentions });
    }

    /// `/reply MESSAGE TEXT`.
    async fn reply(&mut self, args: &str) {
        let Some((reference, text)) = args.split_once(char::is_whitespace).filter(|(_, t)| !t.trim().is_empty()) else {
            self.note("! usage: /reply MESSAGE TEXT (MESSAGE: #12 or 12, or its id)");
            return;
        };
        let reference = match commands::message_ref(reference) {
            Ok(reference) => reference,
            Err(why) => return self.note(&format!("! {why}")),
        };
        if let Some(message_id) = self.message_id(reference).await {
            self.queue(text.trim().to_owned(), Some(message_id)).await;
        }
    }

    /// `/react MESSAGE EMOJI` (`add`) or `/unreact MESSAGE EMOJI`: sent when connected,
    /// answered by a `reaction` event.
    async fn react(&mut self, args: &str, add: bool) {
        let command = if add { "/react" } else { "/unreact" };
        let words: Vec<&str> = args.split_whitespace().collect();
        let [reference, emoji] = words.as_slice() else {
            return self.note(&format!("! usage: {command} MESSAGE EMOJI (MESSAGE: #12 or 12, or its id)"));
        };
        let reference = match commands::message_ref(reference) {
            Ok(reference) => reference,
            Err(why) => return self.note(&format!("! {why}")),
        };
        let emoji = match Emoji::parse(*emoji) {
            Ok(emoji) => emoji,
            Err(why) => return self.note(&format!("! {why}")),
        };
        let Some(message_id) = self.message_id(reference).await else { return };
        let channel_id = self.channel.channel_id.clone();
        self.reactions.push_back(if add {
            ClientFrame::AddReaction { channel_id, message_id, emoji }
        } else {
            ClientFrame::RemoveReaction { channel_id, message_id, emoji }
        });
    }

    /// The id of a message of this channel: one shown, else looked up in history.
    async fn message_id(&mut self, reference: MessageRef) -> Option<MessageId> {
        let seq = match reference {
            MessageRef::Id(id) => return Some(id),
            MessageRef::Seq(seq) => seq,
        };
        if let Some(id) = self.shown.get(&seq) {
            return Some(*id);
        }
        match self.api.message_at(self.store, &self.channel.channel_id, seq).await {
            Ok(Some(message)) => Some(message.message_id),
            Ok(None) => {
                self.note(&format!("! there is no message #{seq} here"));
                None
            }
            Err(err) => {
                self.note(&format!("! cannot look #{seq} up: {err}"));
                None
            }
        }
    }

    /// Sends the reactions typed, then the head of the outbox unless it is in flight or
    /// waiting out a rate limit.
    async fn pump(&mut self, socket: &mut Socket) -> Result<(), Error> {
        while let Some(frame) = self.reactions.front() {
            socket.send(frame).await?;
            self.reactions.pop_front();
        }
        if self.in_flight || self.retry_at.is_some() {
            return Ok(());
        }
        if let Some(head) = self.outbox.front() {
            let frame = ClientFrame::SendMessage {
                channel_id: self.channel.channel_id.clone(),
                client_msg_id: head.client_msg_id.clone(),
                text: head.text.clone(),
                attachments: Vec::new(),
                reply_to: head.reply_to,
                mentions: head.mentions.clone(),
            };
            socket.send(&frame).await?;
            self.in_flight = true;
        }
        Ok(())
    }

    async fn session(
        &mut self,
        socket: &mut Socket,
        lines: &mut mpsc::UnboundedReceiver<String>,
    ) -> Result<End, Error> {
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        let mut invitations = tokio::time::interval_at(tokio::time::Instant::now() + INVITATION_POLL, INVITATION_POLL);
        loop {
            if self.unread_shown
                && let Some(last) = self.last_id
            {
                let frame = ClientFrame::MarkRead { channel_id: self.channel.channel_id.clone(), message_id: last };
                if let Err(err) = socket.send(&frame).await {
                    return Ok(End::Lost(err.to_string()));
                }
                self.unread_shown = false;
            }
            let retry = self.retry_at;
            tokio::select! {
                _ = heartbeat.tick() => {
                    if let Err(err) = socket.send(&ClientFrame::Heartbeat { idle: false }).await {
                        return Ok(End::Lost(err.to_string()));
                    }
                }
                _ = invitations.tick() => self.check_invitations().await,
                line = lines.recv() => match line {
                    None => return Ok(End::Quit),
                    Some(line) => {
                        if self.typed(line).await {
                            return Ok(End::Quit);
                        }
                    }
                },
                incoming = socket.next() => match incoming {
                    Incoming::Closed(why) => return Ok(End::Lost(why)),
                    Incoming::Frame(received) => self.frame(*received).await?,
                },
                _ = async { tokio::time::sleep_until(retry.unwrap()).await }, if retry.is_some() => {
                    self.retry_at = None;
                }
            }
            if let Err(err) = self.pump(socket).await {
                return Ok(End::Lost(err.to_string()));
            }
        }
    }

    /// Notes invitations that arrived since the last look. Best effort: a look that fails
    /// is simply made again later.
    async fn check_invitations(&mut self) {
        let Ok(pending) = self.api.invitations(self.store).await else { return };
        for invitation in pending {
            if self.invitations_noted.insert(invitation.channel_id.clone()) {
                self.note(&format!(
                    "  invitation: {} · `chat invitations accept {}`",
                    invitation.describe(),
                    invitation.channel_id
                ));
            }
        }
    }

    /// Live presence of the other person of a direct chat (by user id, as direct peers are
    /// answered), or of a group's members (by its channel).
    fn presence_subscription(&self) -> ClientFrame {
        match self.channel.peer.clone() {
            Some(peer) if self.channel.kind == ChannelKind::Direct => {
                ClientFrame::SubscribePresence { user_ids: vec![peer], channel_id: None }
            }
            _ => ClientFrame::SubscribePresence {
                user_ids: Vec::new(),
                channel_id: Some(self.channel.channel_id.clone()),
            },
        }
    }

    /// Tells how the other person of a direct chat, or a member of a group, changed: their
    /// status, or only their custom status. `joined`: a member the group's list did not have
    /// yet (from a new subscription's answer, after a reconnect) is taken in.
    fn presence(&mut self, view: &PresenceView, joined: bool) {
        let user = &view.user_id;
        let now = session::now_ms();
        let seen = Seen::of(view, now);
        let before = if self.channel.kind == ChannelKind::Direct {
            if self.channel.peer.as_ref() != Some(user) || self.peer.as_ref() == Some(&seen) {
                return;
            }
            self.peer.replace(seen.clone())
        } else {
            // Members known from the group's presence answer; others are not of this channel.
            let Some(members) = self.members.as_mut() else { return };
            match members.get_mut(user) {
                Some(known) if *known != seen => Some(std::mem::replace(known, seen.clone())),
                None if joined && *user != self.me => {
                    members.insert(user.clone(), seen.clone());
                    None
                }
                _ => return,
            }
        };
        match before {
            Some(before) if before.status == seen.status => match &seen.custom {
                Some(custom) => self.note(&format!("  {user}'s status: {}", show::custom_status(custom, now))),
                // Cleared, or lapsed.
                None => self.note(&format!("  {user}'s status: cleared")),
            },
            _ => self.note(&format!("  {}", show::presence_line(view, now))),
        }
    }

    /// The answer to `subscribePresence`: a direct peer, or a group's members (who is
    /// online, and the custom statuses, are said once; then changes as they come).
    fn presence_state(&mut self, users: &[PresenceView]) {
        if self.channel.kind == ChannelKind::Direct || self.members.is_some() {
            for user in users {
                self.presence(user, true);
            }
            return;
        }
        let now = session::now_ms();
        let others: Vec<&PresenceView> = users.iter().filter(|u| u.user_id != self.me).collect();
        let online: Vec<String> = others
            .iter()
            .filter_map(|u| match u.status {
                Status::Online => Some(u.user_id.to_string()),
                Status::Idle | Status::Dnd => Some(format!("{} ({})", u.user_id, show::status_name(u.status))),
                Status::Offline => None,
            })
            .collect();
        if online.is_empty() {
            self.note("  nobody else here is online");
        } else {
            self.note(&format!("  online: {}", online.join(", ")));
        }
        for user in &others {
            if let Some(custom) = show::shown_custom_status(user, now) {
                self.note(&format!("  {}'s status: {}", user.user_id, show::custom_status(custom, now)));
            }
        }
        self.members = Some(others.iter().map(|u| (u.user_id.clone(), Seen::of(u, now))).collect());
    }

    /// Whether an `error` frame answers the send at the head of the outbox.
    fn answers_head(&self, body: &ErrorBody) -> bool {
        self.outbox.front().is_some_and(|o| body.client_msg_id.as_deref() == Some(o.client_msg_id.as_str()))
    }

    /// A `reaction` event: who reacted how in this channel, and the counts now (those of
    /// other channels are not shown).
    fn reaction(&mut self, event: ServerFrame) {
        let ServerFrame::Reaction { channel_id, message_id, seq, user_id, emoji, added, mut reactions, change_seq } =
            event
        else {
            return;
        };
        if channel_id != self.channel.channel_id {
            return;
        }
        let changed = change_seq.is_some();
        let mine = user_id == self.me;
        if !mine && !changed {
            return;
        }
        if mine {
            let emojis = self.mine.entry(message_id).or_default();
            if added {
                emojis.insert(emoji.clone());
            } else {
                emojis.remove(&emoji);
            }
        }
        // The event carries counts only: the reader's own are those seen.
        let own = self.mine.get(&message_id);
        for count in &mut reactions {
            count.me = own.is_some_and(|own| own.contains(&count.emoji));
        }
        let who = if mine { "you".to_owned() } else { user_id.to_string() };
        let said = match (added, changed) {
            (true, true) => format!("{who} reacted {emoji} to #{seq}"),
            (false, true) => format!("{who} took back {emoji} from #{seq}"),
            (true, false) => format!("you had reacted {emoji} to #{seq} already"),
            (false, false) => format!("you had not reacted {emoji} to #{seq}"),
        };
        let counts = show::reaction_counts(&reactions);
        if counts.is_empty() {
            self.note(&format!("  {said} (no reactions now)"));
        } else {
            self.note(&format!("  {said} · {counts}"));
        }
    }

    async fn frame(&mut self, received: Received) -> Result<(), Error> {
        let Some(frame) = received.frame else {
            // API Gateway's own answer ({"message": "Internal server error"}): the head is
            // tried again in a moment, with the same clientMsgId. Frame types this client
            // does not know are skipped, as the protocol allows.
            if received.raw.get("type").and_then(Value::as_str).is_none()
                && let Some(text) = received.raw.get("message").and_then(Value::as_str)
            {
                self.note(&format!("! gateway: {text}"));
                if self.in_flight {
                    self.in_flight = false;
                    self.retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(2));
                }
            }
            return Ok(());
        };
        match frame {
            ServerFrame::Ack { client_msg_id, message } => {
                if self.outbox.front().is_some_and(|o| o.client_msg_id == client_msg_id) {
                    self.outbox.pop_front();
                    self.in_flight = false;
                }
                self.deliver(message).await?;
            }
            ServerFrame::Message { message } => {
                if message.channel_id == self.channel.channel_id {
                    self.deliver(message).await?;
                } else {
                    let title = self
                        .channels
                        .iter()
                        .find(|c| c.channel_id == message.channel_id)
                        .map(|c| c.title().to_owned())
                        .unwrap_or_else(|| message.channel_id.to_string());
                    let body = show::message_body(&message, Some(&self.me));
                    self.note(&format!("  [{title}] {}: {body}", message.author_id));
                }
            }
            ServerFrame::Error(body) => {
                let code = body.code;
                let ours = self.answers_head(&body);
                if ours && matches!(code, ErrorCode::RateLimited | ErrorCode::Internal) {
                    let wait = body.retry_after_ms.unwrap_or(2000);
                    let why = if code == ErrorCode::RateLimited {
                        "too fast".to_owned()
                    } else {
                        format!("{}: {}", code.as_str(), body.message)
                    };
                    self.note(&format!("! {why}; sending again in {:.1} s", wait as f64 / 1000.0));
                    self.retry_at = Some(tokio::time::Instant::now() + Duration::from_millis(wait));
                    self.in_flight = false;
                } else if ours {
                    let dropped = self.outbox.pop_front().map(|o| o.text).unwrap_or_default();
                    self.in_flight = false;
                    self.note(&format!("! not sent ({}): {dropped}", Error::from_frame(&body)));
                } else {
                    self.note(&format!("! {}", Error::from_frame(&body)));
                }
            }
            ServerFrame::MessageUpdated { message } => {
                self.note(&format!("  {} edited #{}: {}", message.author_id, message.seq, display_text(&message)));
            }
            ServerFrame::MessageDeleted { seq, .. } => self.note(&format!("  message #{seq} was deleted")),
            event @ ServerFrame::Reaction { .. } => self.reaction(event),
            ServerFrame::Presence(view) => self.presence(&view, false),
            ServerFrame::PresenceState { users } => self.presence_state(&users),
            // Calls are answered in the web client; the terminal says who is calling.
            ServerFrame::IncomingCall { call, .. } => {
                let media = if call.media == Media::Video { "video" } else { "voice" };
                self.note(&format!(
                    "  {} is calling you ({media}); answer on a device with a microphone",
                    call.caller_id
                ));
            }
            ServerFrame::CallEnded { call }
                if call.outcome == Some(CallOutcome::Missed) && call.caller_id != self.me =>
            {
                self.note(&format!("  missed call from {}", call.caller_id));
            }
            ServerFrame::CallStarted { .. }
            | ServerFrame::CallAccepted { .. }
            | ServerFrame::CallEnded { .. }
            | ServerFrame::CallSignal { .. } => {}
            // Typing, receipts and sync answers are not for this client.
            ServerFrame::Typing { .. }
            | ServerFrame::Receipt { .. }
            | ServerFrame::Messages { .. }
            | ServerFrame::Synced { .. } => {}
        }
        Ok(())
    }
}
