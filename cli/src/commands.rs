//! The one-shot commands: accounts, channels, send, history.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::Endpoints;
use crate::api::{Api, ChannelSummary, Error, Invitation, Message};
use crate::session::Store;
use crate::socket::{self, Incoming, Socket};
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
    /// Your channels, most recently active first (the default).
    List,
    /// Open (or find) the direct channel with a user: they are invited, and join when
    /// they accept (or open it too).
    Direct { user: String },
    /// Create a group that you own; the members are invited and join when they accept.
    Group {
        name: String,
        /// People to invite besides you, comma-separated.
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
    },
    /// A channel and its members.
    Show { channel: String },
    /// Invite people to a group (owners and admins); they join when they accept.
    Add {
        channel: String,
        #[arg(required = true)]
        users: Vec<String>,
        /// `member` or `admin` (only the owner makes admins).
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Remove a member from a group, or leave it (your own username).
    Remove { channel: String, user: String },
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
    pub before: Option<String>,
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
    use http::Method;
    let channel_path = |id: &str| format!("/channels/{}", urlencoding::encode(id));
    let view = match action.unwrap_or(ChannelAction::List) {
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
            api.authorized(store, Method::POST, "/channels/direct", Some(&json!({"userId": user}))).await?
        }
        ChannelAction::Group { name, members } => {
            api.authorized(store, Method::POST, "/channels", Some(&json!({"name": name, "members": members}))).await?
        }
        ChannelAction::Show { channel } => {
            let id = api.resolve(store, &channel).await?.channel_id;
            api.authorized(store, Method::GET, &channel_path(&id), None).await?
        }
        ChannelAction::Add { channel, users, role } => {
            let id = api.resolve(store, &channel).await?.channel_id;
            let body = json!({"userIds": users, "role": role});
            api.authorized(store, Method::POST, &format!("{}/members", channel_path(&id)), Some(&body)).await?
        }
        ChannelAction::Remove { channel, user } => {
            let id = api.resolve(store, &channel).await?.channel_id;
            let path = format!("{}/members/{}", channel_path(&id), urlencoding::encode(&user));
            api.authorized(store, Method::DELETE, &path, None).await?;
            if json {
                println!("{}", json!({"removed": user, "channelId": id}));
            } else {
                println!("removed {user} from {id}");
            }
            return Ok(());
        }
    };
    print_channel_view(&view, json);
    Ok(())
}

pub async fn invitations(
    api: &Api,
    store: &mut Store,
    action: Option<InvitationAction>,
    json: bool,
) -> Result<(), Error> {
    use http::Method;
    let (invitation, accept) = match action.unwrap_or(InvitationAction::List) {
        InvitationAction::List => {
            let pending = api.invitations(store).await?;
            print_invitations(&pending, json);
            return Ok(());
        }
        InvitationAction::Accept { channel } => (api.resolve_invitation(store, &channel).await?, true),
        InvitationAction::Decline { channel } => (api.resolve_invitation(store, &channel).await?, false),
    };
    let id = urlencoding::encode(&invitation.channel_id).into_owned();
    if accept {
        let view = api.authorized(store, Method::POST, &format!("/invitations/{id}/accept"), Some(&json!({}))).await?;
        if !json {
            println!("accepted: {}", invitation.describe());
        }
        print_channel_view(&view, json);
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
    let width = pending.iter().map(|i| i.channel_id.len()).max().unwrap_or(0).max(7);
    let from = pending.iter().map(|i| i.invited_by.len()).max().unwrap_or(0).max(4);
    println!("{:<width$}  {:<6}  {:<from$}  {:<6}  {:<19}  NAME", "CHANNEL", "KIND", "FROM", "ROLE", "INVITED (UTC)");
    for i in pending {
        println!(
            "{:<width$}  {:<6}  {:<from$}  {:<6}  {:<19}  {}",
            i.channel_id,
            i.kind,
            i.invited_by,
            i.role,
            term::format_time(i.invited_at),
            i.name.as_deref().unwrap_or(&i.invited_by)
        );
    }
    println!("answer with `chat invitations accept CHANNEL` or `chat invitations decline CHANNEL`");
}

/// `chat block USER` (`blocked`: true) or `chat unblock USER`.
pub async fn block(api: &Api, store: &mut Store, user: &str, blocked: bool, json: bool) -> Result<(), Error> {
    use http::Method;
    if blocked {
        api.authorized(store, Method::POST, "/blocks", Some(&json!({"userId": user}))).await?;
    } else {
        let path = format!("/blocks/{}", urlencoding::encode(user));
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
    let answer = api.authorized(store, http::Method::GET, "/blocks", None).await?;
    let users: Vec<String> = crate::api::parse(answer.get("blocked").cloned().unwrap_or(Value::Null))?;
    if json {
        println!("{}", json!({"blocked": users}));
    } else if users.is_empty() {
        println!("you block nobody");
    } else {
        for user in users {
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
    let body = json!({"everywhere": everywhere});
    let answer = api.authorized_request(store, http::Method::POST, "/auth/signout", Some(&body)).await;
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

fn print_channels(channels: &[ChannelSummary], json: bool) {
    if json {
        for channel in channels {
            println!("{}", serde_json::to_string(channel).expect("channels serialise"));
        }
        return;
    }
    if channels.is_empty() {
        println!("no channels yet: `chat channels direct USER` or `chat channels group NAME --members a,b`");
        return;
    }
    let width = channels.iter().map(|c| c.channel_id.len()).max().unwrap_or(0).max(2);
    println!("{:<width$}  {:<6}  {:>7}  {:>8}  {:>6}  NAME", "ID", "KIND", "MEMBERS", "MESSAGES", "UNREAD");
    for c in channels {
        let unread = if c.unread > 0 { c.unread.to_string() } else { String::new() };
        println!(
            "{:<width$}  {:<6}  {:>7}  {:>8}  {:>6}  {}",
            c.channel_id,
            c.kind,
            c.member_count,
            c.seq,
            unread,
            c.title()
        );
    }
}

fn print_channel_view(view: &Value, json: bool) {
    if json {
        println!("{view}");
        return;
    }
    let text = |key: &str| view.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let name = view.get("name").and_then(Value::as_str).map(|n| format!(" \"{n}\"")).unwrap_or_default();
    println!("{} ({}){name}", text("channelId"), text("kind"));
    for member in view.get("members").and_then(Value::as_array).into_iter().flatten() {
        let field = |key: &str| member.get(key).and_then(Value::as_str).unwrap_or_default();
        println!("  {:<32} {}", field("userId"), field("role"));
    }
    let invited: Vec<&str> =
        view.get("invited").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    if !invited.is_empty() {
        println!("  invited (not members until they accept): {}", invited.join(", "));
    }
}

pub fn message_line(message: &Message) -> String {
    format!("{}  {}: {}", term::format_time(message.created_at), message.author_id, message.display_text())
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

pub async fn send(
    api: &Api,
    endpoints: &Endpoints,
    store: &mut Store,
    channel: &str,
    words: Vec<String>,
    files: Vec<PathBuf>,
    json: bool,
) -> Result<(), Error> {
    let text = if words == ["-"] { std::io::read_to_string(std::io::stdin())? } else { words.join(" ") };
    let channel = api.resolve(store, channel).await?;
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
    let client_msg_id = socket::new_client_msg_id();
    let mut frame = socket::send_message_frame(&channel.channel_id, &client_msg_id, text.trim_end_matches('\n'));
    if !attachments.is_empty() {
        frame["attachments"] = Value::Array(attachments);
    }
    let mut tries = 0;
    let ack = loop {
        tries += 1;
        socket.send(&frame).await?;
        let answer = wait_for_answer(&mut socket, &client_msg_id).await?;
        match answer.get("type").and_then(Value::as_str) {
            Some("ack") => break answer,
            _ if answer["code"] == "rate_limited"
                && tries < MAX_RATE_LIMITED_TRIES
                && answer.get("retryAfterMs").and_then(Value::as_u64).unwrap_or(1000)
                    <= MAX_RATE_LIMITED_WAIT.as_millis() as u64 =>
            {
                // The same clientMsgId again: the server stores the message at most once.
                let wait = answer.get("retryAfterMs").and_then(Value::as_u64).unwrap_or(1000);
                progress.show(&format!("too fast; sending again in {:.1} s", wait as f64 / 1000.0));
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            _ => return Err(Error::from_frame(&answer)),
        }
    };
    progress.finish();
    socket.close().await;
    if json {
        println!("{ack}");
    } else {
        let message = &ack["message"];
        println!(
            "sent to {} as #{} (id {})",
            channel.title(),
            message["seq"],
            message["messageId"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// The `ack` or `error` answering the frame with `client_msg_id`; other frames are skipped.
async fn wait_for_answer(socket: &mut Socket, client_msg_id: &str) -> Result<Value, Error> {
    wait_for(socket, |frame| {
        frame.get("clientMsgId").and_then(Value::as_str) == Some(client_msg_id)
            && matches!(frame.get("type").and_then(Value::as_str), Some("ack" | "error"))
    })
    .await
}

/// The first frame `answers` accepts (or API Gateway's own error); others are skipped.
async fn wait_for(socket: &mut Socket, answers: impl Fn(&Value) -> bool) -> Result<Value, Error> {
    let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return Err(Error::WebSocket(format!("no answer within {} s", ACK_TIMEOUT.as_secs()))),
            Ok(Incoming::Closed(why)) => return Err(Error::WebSocket(why)),
            Ok(Incoming::Frame(frame)) => {
                if answers(&frame) {
                    return Ok(frame);
                }
                // API Gateway's own answers ({"message": "Internal server error"}) have no type.
                if frame.get("type").is_none() && frame.get("message").is_some() {
                    return Ok(json!({"type": "error", "code": "internal", "message": frame["message"]}));
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
    message_id: &str,
    text: Option<String>,
    json: bool,
) -> Result<(), Error> {
    let channel = api.resolve(store, channel).await?;
    let (action, answer_type) =
        if text.is_some() { ("editMessage", "messageUpdated") } else { ("deleteMessage", "messageDeleted") };
    let mut frame = json!({"action": action, "channelId": channel.channel_id, "messageId": message_id});
    if let Some(text) = &text {
        frame["text"] = json!(text);
    }
    let token = store.access_token(api).await?;
    let mut socket = Socket::connect(&endpoints.ws, &token, &endpoints.tls).await?;
    socket.send(&frame).await?;
    let answer = wait_for(&mut socket, |f| {
        let about = |f: &Value| f.get("messageId").or_else(|| f["message"].get("messageId")).cloned();
        match f.get("type").and_then(Value::as_str) {
            Some(t) if t == answer_type => about(f) == Some(json!(message_id)),
            Some("error") => f.get("action").and_then(Value::as_str) == Some(action),
            _ => false,
        }
    })
    .await?;
    socket.close().await;
    if answer["type"] != answer_type {
        return Err(Error::from_frame(&answer));
    }
    if json {
        println!("{answer}");
    } else if text.is_some() {
        println!("edited message {message_id} in {}", channel.title());
    } else {
        println!("deleted message {message_id} in {}", channel.title());
    }
    Ok(())
}

pub async fn history(api: &Api, store: &mut Store, args: HistoryArgs, json: bool) -> Result<(), Error> {
    let channel = api.resolve(store, &args.channel).await?;
    let mut progress = Progress::new();
    let mut messages: Vec<Message> = Vec::new();
    let mut before = args.before.clone();
    loop {
        let want = if args.all { 100 } else { (args.limit - messages.len()).clamp(1, 100) };
        let page = api.history(store, &channel.channel_id, before.as_deref(), None, want).await?;
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
    for message in &messages {
        if json {
            println!("{}", serde_json::to_string(message).expect("messages serialise"));
        } else {
            println!("{}", message_line(message));
        }
    }
    Ok(())
}
