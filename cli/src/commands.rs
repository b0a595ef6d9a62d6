//! The one-shot commands: accounts, channels, send, reply, react, history, status.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chat_protocol::ErrorCode;
use chat_protocol::frames::{ChosenState, CustomStatus, LastSeenTo, ServerFrame, Status};
use chat_protocol::http::{
    BlockList, BlockRequest, ChannelSummary, ChannelView, DirectWith, Invitation, NewGroup, NewMembers, SignOutRequest,
};
use chat_protocol::ids::MessageId;
use chat_protocol::model::{ChannelId, ChannelKind, ClientMsgId, Emoji, MemberRole, UserId};
use chat_protocol::{ProtocolError, frames::ClientFrame};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Args, Subcommand};
use http::Method;
use serde::de::IntoDeserializer;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Endpoints;
use crate::api::{Api, Error};
use crate::session::{self, PresenceChoices, Store};
use crate::show::{self, kind_name, role_name};
use crate::socket::{self, Incoming, Received, Socket};
use crate::term::{self, Progress};

/// How long `send` waits for its ack.
const ACK_TIMEOUT: Duration = Duration::from_secs(15);
/// How often `send` tries again when the server says it is too busy.
const MAX_RATE_LIMITED_TRIES: u32 = 5;
/// The longest rate-limit wait `send` sits through; a longer one is reported at once.
const MAX_RATE_LIMITED_WAIT: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct Credentials {
    pub username: String,
    /// The password [default: asked for, or read from stdin when it is not a terminal]
    #[arg(long, env = "CHAT_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Subcommand)]
pub enum ChannelAction {
    /// Your channels, most recently active first (the default), with the unread messages
    /// and, of those, the ones that mention you.
    List,
    /// Open (or find) the direct channel with a user: they are invited, and join when
    /// they accept (or open it too).
    Direct {
        #[arg(value_parser = user_id)]
        user: UserId,
    },
    /// Create a group that you own; the members are invited and join when they accept.
    Group {
        name: String,
        /// People to invite besides you, comma-separated.
        #[arg(long, value_delimiter = ',', value_parser = user_id)]
        members: Vec<UserId>,
    },
    /// A channel and its members.
    Show { channel: String },
    /// Invite people to a group (owners and admins); they join when they accept.
    Add {
        channel: String,
        #[arg(required = true, value_parser = user_id)]
        users: Vec<UserId>,
        /// `member` or `admin` (only the owner makes admins).
        #[arg(long, default_value = "member", value_parser = member_role)]
        role: MemberRole,
    },
    /// Remove a member from a group, or leave it (your own username).
    Remove {
        channel: String,
        #[arg(value_parser = user_id)]
        user: UserId,
    },
}

#[derive(Subcommand)]
pub enum InvitationAction {
    /// Your pending invitations, oldest first (the default).
    List,
    /// Join the channel. CHANNEL: its id, the group's name, or (a direct chat) the username
    /// of who invited you.
    Accept { channel: String },
    /// Turn the invitation down (CHANNEL as for `accept`).
    Decline { channel: String },
}

#[derive(Args)]
pub struct HistoryArgs {
    /// Channel id, group name, or the other person's username.
    pub channel: String,
    /// How many of the newest messages.
    #[arg(long, default_value_t = 20, conflicts_with = "all")]
    pub limit: usize,
    /// The whole history, page by page.
    #[arg(long)]
    pub all: bool,
    /// Only messages older than this message id.
    #[arg(long)]
    pub before: Option<MessageId>,
}

#[derive(Args)]
pub struct SearchArgs {
    /// What to look for (words are joined with spaces).
    #[arg(required = true, num_args = 1..)]
    pub query: Vec<String>,
    /// Only this channel: id, group name, or the other person's username.
    #[arg(long)]
    pub channel: Option<String>,
    /// Only messages by this user.
    #[arg(long, value_parser = user_id)]
    pub from: Option<UserId>,
    /// Only messages with files.
    #[arg(long)]
    pub files: bool,
    /// Best matches first instead of newest first.
    #[arg(long)]
    pub relevance: bool,
    /// How many hits (the server answers at most 50 a page; more are fetched page by page).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Args)]
pub struct ReactionArgs {
    /// Channel id, group name, or the other person's username.
    pub channel: String,
    /// The message: `#12` (quoted in a shell) or `12`, its seq as `chat history` shows it,
    /// or its id.
    #[arg(value_parser = message_ref)]
    pub message: MessageRef,
    /// One emoji (👍, ❤️, 🎉…) or a short code such as `:party:`.
    #[arg(value_parser = emoji)]
    pub emoji: Emoji,
}

#[derive(Args)]
#[command(group(ArgGroup::new("custom").args(["text", "emoji"]).multiple(true)))]
pub struct StatusArgs {
    /// Your state on all your devices: `online` (online or idle, as you use them), `dnd`
    /// (do not disturb: no pushes) or `invisible` (you look offline; everything else works).
    #[arg(value_parser = wire_values::<ChosenState>(&["online", "dnd", "invisible"]))]
    pub state: Option<ChosenState>,
    /// A custom status shown with your presence (at most 100 characters).
    #[arg(long)]
    pub text: Option<String>,
    /// An emoji shown with it (📅, :palm:…).
    #[arg(long, value_parser = emoji)]
    pub emoji: Option<Emoji>,
    /// The custom status lapses after this long: 90s, 30m, 1h, 2h30m, 1d.
    #[arg(long = "for", value_name = "DURATION", value_parser = duration, requires = "custom")]
    pub lasts: Option<Duration>,
    /// Clear the custom status.
    #[arg(long, conflicts_with_all = ["text", "emoji", "lasts"])]
    pub clear: bool,
    /// Who sees when you were last online: `contacts` (people you share a channel with)
    /// or `nobody`.
    #[arg(long, value_parser = wire_values::<LastSeenTo>(&["contacts", "nobody"]))]
    pub last_seen: Option<LastSeenTo>,
}

/// A user id argument (`chat block bob`), checked as the protocol checks it.
pub fn user_id(raw: &str) -> Result<UserId, ProtocolError> {
    UserId::parse(raw)
}

/// An emoji argument (`chat react bob 12 👍`), checked as the protocol checks it.
pub fn emoji(raw: &str) -> Result<Emoji, ProtocolError> {
    Emoji::parse(raw)
}

/// Below this, a bare number is a seq; message ids are far larger (their high bits count
/// milliseconds since 2024: every id made after 2024-01-01 00:00:01 UTC is past it).
const SEQ_LIMIT: u64 = 1 << 32;

/// A message as the commands name it: `#12` (or just `12`), its place in the channel as
/// `chat history` and the chat show it, or its id (`chat --json history`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRef {
    Seq(u64),
    Id(MessageId),
}

impl FromStr for MessageRef {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let (digits, hash) = match raw.strip_prefix('#') {
            Some(rest) => (rest, true),
            None => (raw, false),
        };
        let number: u64 = digits.parse().map_err(|_| {
            format!("\"{raw}\" is not a message: give its #seq as `chat history` shows it (#12, or 12) or its id")
        })?;
        match number {
            0 => Err("messages are numbered from #1".into()),
            n if hash || n < SEQ_LIMIT => Ok(MessageRef::Seq(n)),
            n => Ok(MessageRef::Id(MessageId::from_u64(n))),
        }
    }
}

impl fmt::Display for MessageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageRef::Seq(seq) => write!(f, "#{seq}"),
            MessageRef::Id(id) => write!(f, "message {id}"),
        }
    }
}

/// A message argument: `#12`, `12` or a message id.
pub fn message_ref(raw: &str) -> Result<MessageRef, String> {
    raw.parse()
}

/// The id of the message `reference` names in `channel` (a seq is looked up in history).
pub async fn message_id(
    api: &Api,
    store: &mut Store,
    channel: &ChannelSummary,
    reference: MessageRef,
) -> Result<MessageId, Error> {
    let seq = match reference {
        MessageRef::Id(id) => return Ok(id),
        MessageRef::Seq(seq) => seq,
    };
    let missing =
        || Error::Usage(format!("no message #{seq} in {} (it has {} messages)", channel.title(), channel.seq));
    if seq > channel.seq {
        return Err(missing());
    }
    match api.message_at(store, &channel.channel_id, seq).await? {
        Some(message) => Ok(message.message_id),
        None => Err(missing()),
    }
}

/// The members `text` mentions as `@name` (in the order they come, once each; the
/// sender, and names that are not members, are not mentions). A name ends where a
/// username cannot go on; a trailing `.` or `-` (`@bob.`) is tried without as well.
pub fn mentioned(text: &str, members: &[UserId], me: Option<&UserId>) -> Vec<UserId> {
    let mut found: Vec<UserId> = Vec::new();
    for (at, _) in text.match_indices('@') {
        // An @ inside a word (an e-mail address) mentions nobody.
        if text[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at + 1..];
        let end =
            rest.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))).unwrap_or(rest.len());
        let name = &rest[..end];
        let member = [name, name.trim_end_matches(['.', '-'])]
            .into_iter()
            .find_map(|name| members.iter().find(|m| !name.is_empty() && m.as_str().eq_ignore_ascii_case(name)));
        if let Some(member) = member
            && Some(member) != me
            && !found.contains(member)
        {
            found.push(member.clone());
        }
    }
    found
}

/// A role argument: `owner`, `admin` or `member`, as the protocol names them.
fn member_role(raw: &str) -> Result<MemberRole, serde::de::value::Error> {
    MemberRole::deserialize(raw.into_deserializer())
}

/// An argument that is one of the protocol's names for a `T` (`dnd`, `nobody`…); the
/// names are listed in `--help` and in the error for any other word.
fn wire_values<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: for<'de> Deserialize<'de> + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names.iter().copied())
        .try_map(|name| T::deserialize(IntoDeserializer::<serde::de::value::Error>::into_deserializer(name.as_str())))
}

/// The longest `--for` of a custom status.
const MAX_STATUS_FOR: Duration = Duration::from_secs(366 * 86_400);

/// A duration argument: numbers with units, `90s`, `30m`, `1h`, `2h30m`, `1d`.
pub fn duration(raw: &str) -> Result<Duration, String> {
    let bad = || format!("\"{raw}\" is not a duration: say 90s, 30m, 1h, 2h30m or 1d");
    let mut seconds: u64 = 0;
    let mut digits = String::new();
    for c in raw.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let count: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        seconds = count.checked_mul(unit).and_then(|s| s.checked_add(seconds)).ok_or_else(bad)?;
    }
    if !digits.is_empty() || seconds == 0 {
        return Err(bad());
    }
    let lasts = Duration::from_secs(seconds);
    if lasts > MAX_STATUS_FOR {
        return Err(format!("\"{raw}\" is too long: a custom status lasts at most 366 days"));
    }
    Ok(lasts)
}

pub async fn authenticate(
    api: &Api,
    endpoints: &Endpoints,
    store: &mut Store,
    sign_up: bool,
    credentials: Credentials,
    json: bool,
) -> Result<(), Error> {
    let password = match credentials.password {
        Some(password) => password,
        None => term::read_password("Password: ")?,
    };
    let mut session = api.authenticate(sign_up, &credentials.username, &password).await?;
    session.api_url = Some(endpoints.api.clone());
    session.ws_url = Some(endpoints.ws.clone());
    let user = session.user_id.clone();
    store.set(session)?;
    if json {
        println!("{}", json!({"userId": user}));
    } else {
        let verb = if sign_up { "signed up" } else { "signed in" };
        println!("{verb} as {user} (session saved in {})", store.path().display());
    }
    Ok(())
}

pub async fn channels(api: &Api, store: &mut Store, action: Option<ChannelAction>, json: bool) -> Result<(), Error> {
    let channel_path = |id: &ChannelId| format!("/channels/{}", urlencoding::encode(id.as_str()));
    let view: Value = match action.unwrap_or(ChannelAction::List) {
        ChannelAction::List => {
            let channels = api.channels(store).await?;
            print_channels(&channels, json);
            // Invitations are not in the list until accepted: say that some are waiting.
            if !json
                && let Ok(pending) = api.invitations(store).await
                && !pending.is_empty()
            {
                println!("{} pending invitation(s): see `chat invitations`", pending.len());
            }
            return Ok(());
        }
        ChannelAction::Direct { user } => {
            let request = DirectWith { user_id: user };
            api.authorized_as(store, Method::POST, "/channels/direct", Some(&request)).await?
        }
        ChannelAction::Group { name, members } => {
            let request = NewGroup { name, members };
            api.authorized_as(store, Method::POST, "/channels", Some(&request)).await?
        }
        ChannelAction::Show { channel } => {
            let id = api.resolve(store, &channel).await?.channel_id;
            api.get(store, &channel_path(&id)).await?
        }
        ChannelAction::Add { channel, users, role } => {
            let id = api.resolve(store, &channel).await?.channel_id;
            let request = NewMembers { user_ids: users, role };
            api.authorized_as(store, Method::POST, &format!("{}/members", channel_path(&id)), Some(&request)).await?
        }
        ChannelAction::Remove { channel, user } => {
            let id = api.resolve(store, &channel).await?.channel_id;
            let path = format!("{}/members/{}", channel_path(&id), urlencoding::encode(user.as_str()));
            api.authorized(store, Method::DELETE, &path, None).await?;
            if json {
                println!("{}", json!({"removed": user, "channelId": id}));
            } else {
                println!("removed {user} from {id}");
            }
            return Ok(());
        }
    };
    print_channel_view(&view, json)?;
    Ok(())
}

pub async fn invitations(
    api: &Api,
    store: &mut Store,
    action: Option<InvitationAction>,
    json: bool,
) -> Result<(), Error> {
    let (invitation, accept) = match action.unwrap_or(InvitationAction::List) {
        InvitationAction::List => {
            let pending = api.invitations(store).await?;
            print_invitations(&pending, json);
            return Ok(());
        }
        InvitationAction::Accept { channel } => (api.resolve_invitation(store, &channel).await?, true),
        InvitationAction::Decline { channel } => (api.resolve_invitation(store, &channel).await?, false),
    };
    let id = urlencoding::encode(invitation.channel_id.as_str()).into_owned();
    if accept {
        // The route reads no body.
        let view = api.authorized(store, Method::POST, &format!("/invitations/{id}/accept"), None).await?;
        if !json {
            println!("accepted: {}", invitation.describe());
        }
        print_channel_view(&view, json)?;
    } else {
        api.authorized(store, Method::POST, &format!("/invitations/{id}/decline"), None).await?;
        if json {
            println!("{}", json!({"declined": invitation.channel_id}));
        } else {
            println!("declined: {} ({})", invitation.describe(), invitation.channel_id);
        }
    }
    Ok(())
}

fn print_invitations(pending: &[Invitation], json: bool) {
    if json {
        for invitation in pending {
            println!("{}", serde_json::to_string(invitation).expect("invitations serialise"));
        }
        return;
    }
    if pending.is_empty() {
        println!("no pending invitations");
        return;
    }
    let width = pending.iter().map(|i| i.channel_id.as_str().len()).max().unwrap_or(0).max(7);
    let from = pending.iter().map(|i| i.invited_by.as_str().len()).max().unwrap_or(0).max(4);
    println!("{:<width$}  {:<6}  {:<from$}  {:<6}  {:<19}  NAME", "CHANNEL", "KIND", "FROM", "ROLE", "INVITED (UTC)");
    for i in pending {
        println!(
            "{:<width$}  {:<6}  {:<from$}  {:<6}  {:<19}  {}",
            i.channel_id.as_str(),
            kind_name(i.kind),
            i.invited_by.as_str(),
            role_name(i.role),
            term::format_time(i.invited_at),
            i.name.as_deref().unwrap_or(i.invited_by.as_str())
        );
    }
    println!("answer with `chat invitations accept CHANNEL` or `chat invitations decline CHANNEL`");
}

/// `chat block USER` (`blocked`: true) or `chat unblock USER`.
pub async fn block(api: &Api, store: &mut Store, user: &UserId, blocked: bool, json: bool) -> Result<(), Error> {
    if blocked {
        let request = BlockRequest { user_id: user.clone() };
        api.authorized_as::<Value>(store, Method::POST, "/blocks", Some(&request)).await?;
    } else {
        let path = format!("/blocks/{}", urlencoding::encode(user.as_str()));
        api.authorized(store, Method::DELETE, &path, None).await?;
    }
    if json {
        println!("{}", json!({"userId": user, "blocked": blocked}));
    } else if blocked {
        println!(
            "blocked {user}: their invitations no longer reach you and they cannot see your presence (they are not told)"
        );
    } else {
        println!("unblocked {user}");
    }
    Ok(())
}

pub async fn blocked(api: &Api, store: &mut Store, json: bool) -> Result<(), Error> {
    let list: BlockList = api.get(store, "/blocks").await?;
    if json {
        println!("{}", serde_json::to_string(&list).expect("block lists serialise"));
    } else if list.blocked.is_empty() {
        println!("you block nobody");
    } else {
        for user in list.blocked {
            println!("{user}");
        }
    }
    Ok(())
}

/// `chat signout`: the server ends the session (`everywhere`: every device's), then the
/// saved session is forgotten whatever the server answered. A server without the route
/// (HTTP 404) still signs out here; `--everywhere` then fails, since other devices stay in.
pub async fn sign_out(api: &Api, store: &mut Store, everywhere: bool, json: bool) -> Result<(), Error> {
    if store.session.is_none() {
        if json {
            println!("{}", json!({"signedOut": false}));
        } else {
            println!("not signed in");
        }
        return Ok(());
    }
    let body = serde_json::to_value(SignOutRequest { everywhere }).expect("request bodies serialise");
    let answer = api.authorized_request(store, Method::POST, "/auth/signout", Some(&body)).await;
    // Whatever happened there, this machine forgets the session.
    store.clear()?;
    let server = match answer {
        Ok(_) => "ended",
        // The refresh token was refused: the session was over already.
        Err(Error::NotSignedIn) => "alreadyEnded",
        Err(Error::Api { status: 404, .. }) => "notSupported",
        Err(err) => {
            return Err(Error::Usage(format!(
                "signed out here, but the server could not end the session ({err}); its tokens stay valid until they expire"
            )));
        }
    };
    if everywhere && server != "ended" {
        let why = match server {
            "notSupported" => "the server does not offer sign-out yet (HTTP 404)",
            _ => "this session had ended already (sign in and run `chat signout --everywhere` again)",
        };
        return Err(Error::Usage(format!("signed out here only; your other devices are still signed in: {why}")));
    }
    if json {
        println!("{}", json!({"signedOut": true, "everywhere": everywhere, "server": server}));
        return Ok(());
    }
    match server {
        "ended" if everywhere => println!("signed out everywhere: the server ended the sessions of all your devices"),
        "ended" => println!("signed out: the server ended this session"),
        "alreadyEnded" => println!("signed out (the session had ended already)"),
        _ => {
            println!("signed out: the session is forgotten here");
            eprintln!(
                "chat: note: the server does not offer sign-out yet (HTTP 404); this session's tokens stay valid until they expire"
            );
        }
    }
    Ok(())
}

/// A line of `chat --json channels`: what it has always printed of a channel, in this
/// order (`name` and `peer` null when absent), then the unread messages that mention the
/// reader (`mentions`, added last). The CLI's output, not a wire type (that is
/// [`ChannelSummary`], which has more).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChannelLine<'a> {
    channel_id: &'a ChannelId,
    kind: ChannelKind,
    name: Option<&'a str>,
    peer: Option<&'a UserId>,
    member_count: u64,
    seq: u64,
    unread: u64,
    mentions: u64,
}

impl<'a> From<&'a ChannelSummary> for ChannelLine<'a> {
    fn from(c: &'a ChannelSummary) -> Self {
        Self {
            channel_id: &c.channel_id,
            kind: c.kind,
            name: c.name.as_deref(),
            peer: c.peer.as_ref(),
            member_count: c.member_count,
            seq: c.seq,
            unread: c.unread,
            mentions: c.mentions,
        }
    }
}

fn print_channels(channels: &[ChannelSummary], json: bool) {
    if json {
        for channel in channels {
            println!("{}", serde_json::to_string(&ChannelLine::from(channel)).expect("channels serialise"));
        }
        return;
    }
    if channels.is_empty() {
        println!("no channels yet: `chat channels direct USER` or `chat channels group NAME --members a,b`");
        return;
    }
    let width = channels.iter().map(|c| c.channel_id.as_str().len()).max().unwrap_or(0).max(2);
    println!(
        "{:<width$}  {:<6}  {:>7}  {:>8}  {:>6}  {:>8}  NAME",
        "ID", "KIND", "MEMBERS", "MESSAGES", "UNREAD", "MENTIONS"
    );
    for c in channels {
        let count = |n: u64| if n > 0 { n.to_string() } else { String::new() };
        println!(
            "{:<width$}  {:<6}  {:>7}  {:>8}  {:>6}  {:>8}  {}",
            c.channel_id.as_str(),
            kind_name(c.kind),
            c.member_count,
            c.seq,
            count(c.unread),
            count(c.mentions),
            c.title()
        );
    }
}

/// A channel as the channel routes answer it: `--json` prints the answer as it came.
fn print_channel_view(answer: &Value, json: bool) -> Result<(), Error> {
    let view: ChannelView = crate::api::parse(answer.clone())?;
    if json {
        println!("{answer}");
        return Ok(());
    }
    let name = view.name.as_ref().map(|n| format!(" \"{n}\"")).unwrap_or_default();
    println!("{} ({}){name}", view.channel_id, kind_name(view.kind));
    for member in &view.members {
        println!("  {:<32} {}", member.user_id.as_str(), role_name(member.role));
    }
    if !view.invited.is_empty() {
        let invited: Vec<&str> = view.invited.iter().map(UserId::as_str).collect();
        println!("  invited (not members until they accept): {}", invited.join(", "));
    }
    Ok(())
}

/// The content type of a file to upload, from its extension (the backend allows a short list).
pub fn content_type_of(path: &Path) -> &'static str {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" | "md" | "log" => "text/plain",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

/// A message to send: `chat send`, and `chat reply` (with `reply_to`).
pub struct Draft {
    pub channel: String,
    /// The text's words, joined with spaces; `-` alone reads the text from stdin.
    pub words: Vec<String>,
    pub files: Vec<PathBuf>,
    pub reply_to: Option<MessageRef>,
    /// Mentioned besides the members the text names as `@name`.
    pub mentions: Vec<UserId>,
}

pub async fn send(api: &Api, endpoints: &Endpoints, store: &mut Store, draft: Draft, json: bool) -> Result<(), Error> {
    let Draft { channel, words, files, reply_to, mut mentions } = draft;
    let text = if words == ["-"] { std::io::read_to_string(std::io::stdin())? } else { words.join(" ") };
    let text = text.trim_end_matches('\n').to_owned();
    let channel = api.resolve(store, &channel).await?;
    let reply_to = match reply_to {
        Some(reference) => Some(message_id(api, store, &channel, reference).await?),
        None => None,
    };
    if text.contains('@') {
        let members = api.members(store, &channel.channel_id).await?;
        let me = store.user_id()?.clone();
        for member in mentioned(&text, &members, Some(&me)) {
            if !mentions.contains(&member) {
                mentions.push(member);
            }
        }
    }
    let mut progress = Progress::new();
    let mut attachments = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file").to_owned();
        progress.show(&format!("uploading {name} ({} of {}, {} bytes)", i + 1, files.len(), bytes.len()));
        attachments.push(api.upload(store, &channel.channel_id, &name, content_type_of(path), &bytes).await?);
    }
    let token = store.access_token(api).await?;
    let mut socket = Socket::connect(&endpoints.ws, &token, &endpoints.tls).await?;
    socket.restore_presence(&store.presence_choices()).await?;
    let client_msg_id = socket::new_client_msg_id();
    let frame = ClientFrame::SendMessage {
        channel_id: channel.channel_id.clone(),
        client_msg_id: client_msg_id.clone(),
        text,
        attachments,
        reply_to,
        mentions,
    };
    let mut tries = 0;
    let (ack, message) = loop {
        tries += 1;
        socket.send(&frame).await?;
        let answer = wait_for_answer(&mut socket, &client_msg_id).await?;
        let refused = match answer.frame {
            Some(ServerFrame::Ack { message, .. }) => break (answer.raw, message),
            Some(ServerFrame::Error(body)) => body,
            _ => answer.gateway_error().expect("wait_for answers acks and errors"),
        };
        let wait = refused.retry_after_ms.unwrap_or(1000);
        if refused.code == ErrorCode::RateLimited
            && tries < MAX_RATE_LIMITED_TRIES
            && wait <= MAX_RATE_LIMITED_WAIT.as_millis() as u64
        {
            // The same clientMsgId again: the server stores the message at most once.
            progress.show(&format!("too fast; sending again in {:.1} s", wait as f64 / 1000.0));
            tokio::time::sleep(Duration::from_millis(wait)).await;
        } else {
            return Err(Error::from_frame(&refused));
        }
    };
    progress.finish();
    socket.close().await;
    if json {
        println!("{ack}");
    } else {
        let mut said = format!("sent to {} as #{} (id {})", channel.title(), message.seq, message.message_id);
        if let Some(quote) = &message.reply_to {
            said.push_str(&format!(", a reply to {}'s message", quote.author_id));
        }
        if !message.mentions.is_empty() {
            let names: Vec<&str> = message.mentions.iter().map(UserId::as_str).collect();
            said.push_str(&format!(", mentioning {}", names.join(", ")));
        }
        println!("{said}");
    }
    Ok(())
}

/// The `ack` or `error` answering the frame with `client_msg_id`; other frames are skipped.
async fn wait_for_answer(socket: &mut Socket, client_msg_id: &ClientMsgId) -> Result<Received, Error> {
    wait_for(socket, |frame| match frame {
        ServerFrame::Ack { client_msg_id: id, .. } => id == client_msg_id,
        ServerFrame::Error(body) => body.client_msg_id.as_deref() == Some(client_msg_id.as_str()),
        _ => false,
    })
    .await
}

/// The first frame `answers` accepts, or API Gateway's own error (see
/// [`Received::gateway_error`]); other frames are skipped.
async fn wait_for(socket: &mut Socket, answers: impl Fn(&ServerFrame) -> bool) -> Result<Received, Error> {
    let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return Err(Error::WebSocket(format!("no answer within {} s", ACK_TIMEOUT.as_secs()))),
            Ok(Incoming::Closed(why)) => return Err(Error::WebSocket(why)),
            Ok(Incoming::Frame(received)) => {
                if received.frame.as_ref().is_some_and(&answers) || received.gateway_error().is_some() {
                    return Ok(*received);
                }
            }
        }
    }
}

/// `editMessage` (with `text`) or `deleteMessage` (without), waiting for the answer.
pub async fn change(
    api: &Api,
    endpoints: &Endpoints,
    store: &mut Store,
    channel: &str,
    message: MessageRef,
    text: Option<String>,
    json: bool,
) -> Result<(), Error> {
    let channel = api.resolve(store, channel).await?;
    let message_id = message_id(api, store, &channel, message).await?;
    let channel_id = channel.channel_id.clone();
    let (action, frame) = match text.clone() {
        Some(text) => ("editMessage", ClientFrame::EditMessage { channel_id, message_id, text }),
        None => ("deleteMessage", ClientFrame::DeleteMessage { channel_id, message_id }),
    };
    let token = store.access_token(api).await?;
    let mut socket = Socket::connect(&endpoints.ws, &token, &endpoints.tls).await?;
    socket.restore_presence(&store.presence_choices()).await?;
    socket.send(&frame).await?;
    let edit = text.is_some();
    let answer = wait_for(&mut socket, |f| match f {
        ServerFrame::MessageUpdated { message } => edit && message.message_id == message_id,
        ServerFrame::MessageDeleted { message_id: id, .. } => !edit && *id == message_id,
        ServerFrame::Error(body) => body.action.as_deref() == Some(action),
        _ => false,
    })
    .await?;
    socket.close().await;
    match &answer.frame {
        Some(ServerFrame::MessageUpdated { .. } | ServerFrame::MessageDeleted { .. }) => {}
        Some(ServerFrame::Error(body)) => return Err(Error::from_frame(body)),
        _ => return Err(Error::from_frame(&answer.gateway_error().expect("wait_for answers errors"))),
    }
    if json {
        println!("{}", answer.raw);
    } else if edit {
        println!("edited message {message_id} in {}", channel.title());
    } else {
        println!("deleted message {message_id} in {}", channel.title());
    }
    Ok(())
}

/// `addReaction` (`add`) or `removeReaction`, waiting for the answer: the `reaction`
/// event with the message's reactions now.
pub async fn react(
    api: &Api,
    endpoints: &Endpoints,
    store: &mut Store,
    args: ReactionArgs,
    add: bool,
    json: bool,
) -> Result<(), Error> {
    let ReactionArgs { channel, message, emoji } = args;
    let channel = api.resolve(store, &channel).await?;
    let message_id = message_id(api, store, &channel, message).await?;
    let me = store.user_id()?.clone();
    let channel_id = channel.channel_id.clone();
    let (action, frame) = if add {
        ("addReaction", ClientFrame::AddReaction { channel_id, message_id, emoji: emoji.clone() })
    } else {
        ("removeReaction", ClientFrame::RemoveReaction { channel_id, message_id, emoji: emoji.clone() })
    };
    let token = store.access_token(api).await?;
    let mut socket = Socket::connect(&endpoints.ws, &token, &endpoints.tls).await?;
    socket.restore_presence(&store.presence_choices()).await?;
    socket.send(&frame).await?;
    let answer = wait_for(&mut socket, |f| match f {
        ServerFrame::Reaction { message_id: id, user_id, emoji: e, added, .. } => {
            *id == message_id && *user_id == me && *e == emoji && *added == add
        }
        ServerFrame::Error(body) => body.action.as_deref() == Some(action),
        _ => false,
    })
    .await?;
    socket.close().await;
    let (seq, mut reactions, changed) = match answer.frame {
        Some(ServerFrame::Reaction { seq, reactions, change_seq, .. }) => (seq, reactions, change_seq.is_some()),
        Some(ServerFrame::Error(body)) => return Err(Error::from_frame(&body)),
        _ => return Err(Error::from_frame(&answer.gateway_error().expect("wait_for answers errors"))),
    };
    if json {
        println!("{}", answer.raw);
        return Ok(());
    }
    // The event carries counts only: of the reader's own, this one is known.
    for count in &mut reactions {
        count.me = add && count.emoji == emoji;
    }
    let title = channel.title();
    let said = match (add, changed) {
        (true, true) => format!("reacted {emoji} to #{seq} in {title}"),
        (true, false) => format!("you had reacted {emoji} to #{seq} in {title} already"),
        (false, true) => format!("took back {emoji} from #{seq} in {title}"),
        (false, false) => format!("you had not reacted {emoji} to #{seq} in {title}"),
    };
    let counts = show::reaction_counts(&reactions);
    if counts.is_empty() {
        println!("{said} (no reactions now)");
    } else {
        println!("{said} · {counts}");
    }
    Ok(())
}

/// `chat status`: sets the state and who sees the last-seen time (`setPresence`), then the
/// custom status (`setStatus`), each waiting for its answer (the user as others now see
/// them), and prints the last answer. The choices are kept in the session file and sent
/// with every later connection ([`PresenceChoices`]); those kept already go with these.
/// With nothing to send, `getPresence` about the user answers.
pub async fn status(
    api: &Api,
    endpoints: &Endpoints,
    store: &mut Store,
    args: StatusArgs,
    json: bool,
) -> Result<(), Error> {
    let StatusArgs { state, text, emoji, lasts, clear, last_seen } = args;
    let now = session::now_ms();
    let kept = store.presence_choices().kept(now);
    let custom_status = if clear || text.is_some() || emoji.is_some() {
        // Checked as the server checks it, before connecting; without text or emoji it is
        // cleared.
        let expires_at = lasts.map(|d| now + d.as_millis() as i64);
        let custom = CustomStatus::parse(text, emoji, expires_at).map_err(|e| Error::Usage(e.to_string()))?;
        Some(custom)
    } else {
        None
    };
    let chosen = PresenceChoices {
        state: state.or(kept.state),
        last_seen: last_seen.or(kept.last_seen),
        custom_status: custom_status.clone().unwrap_or_else(|| kept.custom_status.clone()),
    };
    let mut frames: Vec<(&str, ClientFrame)> = Vec::new();
    if chosen.state.is_some() || chosen.last_seen.is_some() {
        frames.push(("setPresence", ClientFrame::SetPresence { state: chosen.state, last_seen: chosen.last_seen }));
    }
    match (&custom_status, &chosen.custom_status) {
        // Cleared: said even when nothing was kept (another device may have set one).
        (Some(None), _) => {
            frames.push(("setStatus", ClientFrame::SetStatus { text: None, emoji: None, expires_at: None }))
        }
        (_, Some(CustomStatus { text, emoji, expires_at })) => frames.push((
            "setStatus",
            ClientFrame::SetStatus { text: text.clone(), emoji: emoji.clone(), expires_at: *expires_at },
        )),
        _ => {}
    }
    let me = store.user_id()?.clone();
    if frames.is_empty() {
        frames.push(("getPresence", ClientFrame::GetPresence { user_ids: vec![me.clone()], channel_id: None }));
    }
    let token = store.access_token(api).await?;
    let mut socket = Socket::connect(&endpoints.ws, &token, &endpoints.tls).await?;
    let mut view = None;
    for (action, frame) in frames {
        socket.send(&frame).await?;
        // This connection subscribed to nobody: a `presence` about the user answers.
        let answer = wait_for(&mut socket, |f| match f {
            ServerFrame::Presence(view) => action != "getPresence" && view.user_id == me,
            ServerFrame::PresenceState { .. } => action == "getPresence",
            ServerFrame::Error(body) => body.action.as_deref() == Some(action),
            _ => false,
        })
        .await?;
        match answer.frame {
            Some(ServerFrame::Presence(presence)) => view = Some((presence, answer.raw)),
            Some(ServerFrame::PresenceState { users }) => {
                let Some(presence) = users.into_iter().find(|u| u.user_id == me) else {
                    return Err(Error::Usage("the server's answer says nothing of you".into()));
                };
                let raw = serde_json::to_value(ServerFrame::Presence(presence.clone())).expect("frames serialise");
                view = Some((presence, raw));
            }
            Some(ServerFrame::Error(body)) => return Err(Error::from_frame(&body)),
            _ => return Err(Error::from_frame(&answer.gateway_error().expect("wait_for answers errors"))),
        }
    }
    socket.close().await;
    let chosen = chosen.kept(now);
    store.set_presence_choices(chosen.clone())?;
    let (view, raw) = view.expect("every frame sent was answered");
    if json {
        println!("{raw}");
        return Ok(());
    }
    println!("{}", own_presence_line(&view, &chosen, session::now_ms()));
    match last_seen {
        Some(LastSeenTo::Contacts) => println!("when you were last online is shown to your contacts"),
        Some(LastSeenTo::Nobody) => println!("when you were last online is shown to nobody"),
        None => {}
    }
    Ok(())
}

/// `you appear dnd (do not disturb) to others · 📅 In a meeting`: the user's own presence
/// as others see it, given the `chosen` presence. While a connection is open (this
/// command's) offline means invisible, which hides the custom status.
fn own_presence_line(view: &chat_protocol::frames::PresenceView, chosen: &PresenceChoices, now: i64) -> String {
    let invisible = view.status == Status::Offline || chosen.state == Some(ChosenState::Invisible);
    let mut line = format!("you appear {} to others", show::status_phrase(view.status));
    if invisible {
        line.push_str(" (invisible)");
    }
    match (show::shown_custom_status(view, now), &chosen.custom_status) {
        (Some(custom), _) => line.push_str(&format!(" · {}", show::custom_status(custom, now))),
        (None, Some(hidden)) if invisible => {
            line.push_str(&format!(" · {} (hidden while invisible)", show::custom_status(hidden, now)))
        }
        (None, _) => line.push_str(" · no custom status"),
    }
    line
}

pub async fn search(api: &Api, store: &mut Store, args: SearchArgs, json: bool) -> Result<(), Error> {
    let channel = match &args.channel {
        Some(reference) => Some(api.resolve(store, reference).await?.channel_id),
        None => None,
    };
    let names: std::collections::HashMap<ChannelId, String> = api
        .channels(store)
        .await?
        .into_iter()
        .map(|c| {
            let name = c
                .name
                .clone()
                .or_else(|| c.peer.as_ref().map(|p| format!("@{p}")))
                .unwrap_or_else(|| c.channel_id.to_string());
            (c.channel_id, name)
        })
        .collect();
    let mut base = format!("/search?q={}", urlencoding::encode(&args.query.join(" ")));
    if let Some(channel) = &channel {
        base.push_str(&format!("&channelId={}", urlencoding::encode(channel.as_str())));
    }
    if let Some(from) = &args.from {
        base.push_str(&format!("&from={}", urlencoding::encode(from.as_str())));
    }
    if args.files {
        base.push_str("&hasFile=true");
    }
    if args.relevance {
        base.push_str("&order=relevance");
    }
    let bold = crate::term::stdout_is_tty();
    let mut shown = 0;
    let mut cursor: Option<String> = None;
    while shown < args.limit {
        let mut path = format!("{base}&limit={}", (args.limit - shown).clamp(1, 50));
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={}", urlencoding::encode(cursor)));
        }
        let page: chat_protocol::search::SearchPage = api.get(store, &path).await?;
        for hit in &page.hits {
            shown += 1;
            if json {
                println!("{}", serde_json::to_string(hit).expect("hits serialise"));
                continue;
            }
            let snippet: String = hit
                .snippet
                .iter()
                .map(|f| match (f.highlighted, bold) {
                    (false, _) => f.text.clone(),
                    (true, true) => format!("\x1b[1m{}\x1b[0m", f.text),
                    (true, false) => format!("[{}]", f.text),
                })
                .collect();
            let message = &hit.message;
            let channel = names.get(&message.channel_id).cloned().unwrap_or_else(|| message.channel_id.to_string());
            println!("{channel} #{} {}: {}", message.seq, message.author_id, snippet.replace('\n', " "));
        }
        match page.next_cursor {
            Some(next) if !page.hits.is_empty() => cursor = Some(next),
            _ => break,
        }
    }
    if shown == 0 && !json {
        eprintln!("no messages found");
    }
    Ok(())
}

pub async fn history(api: &Api, store: &mut Store, args: HistoryArgs, json: bool) -> Result<(), Error> {
    let channel = api.resolve(store, &args.channel).await?;
    let mut progress = Progress::new();
    let mut messages = Vec::new();
    let mut before = args.before;
    loop {
        let want = if args.all { 100 } else { (args.limit - messages.len()).clamp(1, 100) };
        let page = api.history(store, &channel.channel_id, before, None, want).await?;
        messages.extend(page.messages);
        if args.all && channel.seq > 0 {
            progress.show(&format!("read {} of {} messages", messages.len(), channel.seq));
        }
        before = page.next_before;
        if before.is_none() || (!args.all && messages.len() >= args.limit) {
            break;
        }
    }
    progress.finish();
    messages.reverse();
    let me = store.user_id().ok().cloned();
    for message in &messages {
        if json {
            println!("{}", serde_json::to_string(message).expect("messages serialise"));
        } else {
            println!("{}", show::message_line(message, me.as_ref()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(json: &str) -> ChannelSummary {
        serde_json::from_str(json).unwrap()
    }

    /// `chat --json channels` prints what it printed when the CLI had its own type, and
    /// `mentions` after it.
    #[test]
    fn channel_lines_keep_their_fields_and_order() {
        let direct = summary(
            r#"{"channelId":"d-01","kind":"direct","peer":"bob","role":"member","memberCount":2,"seq":3,
                "lastMessageId":"383171067025293312","unread":1,"lastReadSeq":2,"changeSeq":0,"muted":false}"#,
        );
        assert_eq!(
            serde_json::to_string(&ChannelLine::from(&direct)).unwrap(),
            r#"{"channelId":"d-01","kind":"direct","name":null,"peer":"bob","memberCount":2,"seq":3,"unread":1,"mentions":0}"#
        );
        let group = summary(
            r#"{"channelId":"g-01","kind":"group","name":"Book club","role":"owner","memberCount":1,"seq":0,
                "unread":0,"lastReadSeq":0,"changeSeq":0,"muted":true}"#,
        );
        assert_eq!(
            serde_json::to_string(&ChannelLine::from(&group)).unwrap(),
            r#"{"channelId":"g-01","kind":"group","name":"Book club","peer":null,"memberCount":1,"seq":0,"unread":0,"mentions":0}"#
        );
        assert_eq!(group.title(), "Book club");
        assert_eq!(direct.title(), "bob");
    }

    #[test]
    fn messages_are_named_by_seq_or_id() {
        assert_eq!(message_ref("#12").unwrap(), MessageRef::Seq(12));
        assert_eq!(message_ref("12").unwrap(), MessageRef::Seq(12));
        let id = 383_171_067_025_293_312_u64;
        assert_eq!(message_ref(&id.to_string()).unwrap(), MessageRef::Id(MessageId::from_u64(id)));
        // With a #, a number is always a seq.
        assert_eq!(message_ref(&format!("#{id}")).unwrap(), MessageRef::Seq(id));
        assert!(message_ref("#0").unwrap_err().contains("from #1"));
        assert!(message_ref("twelve").unwrap_err().contains("#12"));
        assert!(message_ref("#").is_err());
        assert_eq!(MessageRef::Seq(3).to_string(), "#3");
        assert!(emoji("👍").is_ok() && emoji("two words").is_err());
    }

    #[test]
    fn at_names_of_members_are_mentions() {
        let members: Vec<UserId> = ["alice", "bob", "carol.x"].into_iter().map(|u| user_id(u).unwrap()).collect();
        let me = user_id("alice").unwrap();
        let names = |text: &str| -> Vec<String> {
            mentioned(text, &members, Some(&me)).iter().map(|u| u.as_str().to_owned()).collect()
        };
        assert_eq!(names("@bob and @carol.x, look"), ["bob", "carol.x"]);
        // Once each, in order; the sender and strangers are no mentions; case is ignored.
        assert_eq!(names("@Carol.x: @bob @bob @alice @mallory"), ["carol.x", "bob"]);
        // A sentence's full stop, and an e-mail address.
        assert_eq!(names("ask @bob."), ["bob"]);
        assert!(names("mail bob@example.org or @ nobody").is_empty());
        assert!(mentioned("hi @bob", &[], None).is_empty());
    }

    #[test]
    fn arguments_are_checked_as_the_protocol_checks_them() {
        assert_eq!(member_role("admin").unwrap(), MemberRole::Admin);
        assert_eq!(member_role("member").unwrap(), MemberRole::Member);
        assert!(member_role("boss").unwrap_err().to_string().contains("unknown variant `boss`"));
        assert_eq!(user_id("bob").unwrap().as_str(), "bob");
        assert!(user_id("bob smith").is_err());
    }

    #[test]
    fn durations_read_with_their_units() {
        assert_eq!(duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("30m").unwrap(), Duration::from_secs(1_800));
        assert_eq!(duration("1h").unwrap(), Duration::from_secs(3_600));
        assert_eq!(duration("2h30m").unwrap(), Duration::from_secs(9_000));
        assert_eq!(duration("1d").unwrap(), Duration::from_secs(86_400));
        for bad in ["", "1", "h", "0m", "1w", "1.5h", "-1h", "99999999999999999999d"] {
            assert!(duration(bad).unwrap_err().contains("is not a duration"), "{bad}");
        }
        assert!(duration("400d").unwrap_err().contains("at most 366 days"));
    }

    /// `chat status` as its arguments read: states and last-seen audiences by their wire
    /// names, `--for` only with something to show, `--clear` alone.
    #[test]
    fn status_arguments_read_as_the_protocol_names_them() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: StatusArgs,
        }
        let parse =
            |args: &[&str]| Cli::try_parse_from(std::iter::once("status").chain(args.iter().copied())).map(|c| c.args);
        let dnd = parse(&["dnd", "--last-seen", "nobody"]).unwrap();
        assert_eq!((dnd.state, dnd.last_seen), (Some(ChosenState::Dnd), Some(LastSeenTo::Nobody)));
        assert_eq!(parse(&["invisible"]).unwrap().state, Some(ChosenState::Invisible));
        assert_eq!(parse(&["online"]).unwrap().state, Some(ChosenState::Online));
        let meeting = parse(&["--text", "In a meeting", "--emoji", "📅", "--for", "1h"]).unwrap();
        assert_eq!(meeting.text.as_deref(), Some("In a meeting"));
        assert_eq!(meeting.lasts, Some(Duration::from_secs(3_600)));
        assert!(parse(&["--clear"]).unwrap().clear);
        let busy = parse(&["busy"]).err().unwrap().to_string();
        assert!(busy.contains("online") && busy.contains("dnd") && busy.contains("invisible"), "{busy}");
        assert!(parse(&["--for", "1h"]).is_err());
        assert!(parse(&["--clear", "--text", "x"]).is_err());
        assert!(parse(&["--last-seen", "everyone"]).is_err());
        assert!(parse(&["--emoji", "two words"]).is_err());
    }

    #[test]
    fn your_own_presence_reads_as_others_see_it() {
        use chat_protocol::frames::PresenceView;
        let now = 1_795_422_301_353;
        let view = |status, custom_status| PresenceView {
            user_id: user_id("alice").unwrap(),
            status,
            last_seen: Some(now),
            custom_status,
        };
        let nothing = PresenceChoices::default();
        assert_eq!(
            own_presence_line(&view(Status::Online, None), &nothing, now),
            "you appear online to others · no custom status"
        );
        // Offline with this command's connection open: invisible (perhaps chosen elsewhere).
        assert_eq!(
            own_presence_line(&view(Status::Offline, None), &nothing, now),
            "you appear offline to others (invisible) · no custom status"
        );
        let meeting = CustomStatus {
            text: Some("In a meeting".into()),
            emoji: Some(Emoji::parse("📅").unwrap()),
            expires_at: Some(now + 3_600_000),
        };
        assert_eq!(
            own_presence_line(&view(Status::Dnd, Some(meeting.clone())), &nothing, now),
            "you appear dnd (do not disturb) to others · 📅 In a meeting (until 09:25 UTC)"
        );
        let invisible =
            PresenceChoices { state: Some(ChosenState::Invisible), last_seen: None, custom_status: Some(meeting) };
        assert_eq!(
            own_presence_line(&view(Status::Offline, None), &invisible, now),
            "you appear offline to others (invisible) · 📅 In a meeting (until 09:25 UTC) (hidden while invisible)"
        );
    }
}
