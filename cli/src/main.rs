//! `chat`: a command-line client of the serverless chat. Accounts, channels, invitations
//! (nobody joins a channel without accepting) and blocking, history, an interactive chat
//! (`chat chat bob`) with replies, mentions, reactions and the others' presence, your own
//! presence and custom status (`chat status`), and a scripted mode that reads JSON actions
//! line by line and prints every server frame as a JSON line (`chat script < actions.jsonl`).

mod api;
mod chat;
mod commands;
mod net;
mod script;
mod session;
mod show;
mod socket;
mod term;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chat_protocol::model::UserId;
use clap::{Parser, Subcommand};

use crate::api::{Api, Error};
use crate::commands::{Draft, MessageRef};
use crate::session::Store;

const DEFAULT_API: &str = "http://127.0.0.1:8080";
/// The local gateway's stage (`local-gateway serve --stage`).
const DEFAULT_STAGE: &str = "local";

#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// HTTP API base URL [default: the signed-in session's, else http://127.0.0.1:8080]
    #[arg(long, env = "CHAT_API_URL", global = true)]
    api: Option<String>,
    /// WebSocket URL [default: the session's, else the API's host with /local (the local gateway)]
    #[arg(long, env = "CHAT_WS_URL", global = true)]
    ws: Option<String>,
    /// Session file [default: $XDG_CONFIG_HOME/serverless-chat/session.json]
    #[arg(long, env = "CHAT_SESSION", global = true)]
    session: Option<PathBuf>,
    /// Print JSON instead of text (one value per line).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an account and sign in.
    Signup(commands::Credentials),
    /// Sign in; the session is saved for the other commands.
    Signin(commands::Credentials),
    /// Sign out: the server ends this session (its refresh token stops working, its open
    /// chats are closed), and the saved session is forgotten.
    Signout {
        /// End the sessions of all your devices, not only this one.
        #[arg(long)]
        everywhere: bool,
    },
    /// Invitations to channels waiting for your answer; accept or decline them.
    Invitations {
        #[command(subcommand)]
        action: Option<commands::InvitationAction>,
    },
    /// Block a user: their invitations (groups, direct chats) no longer reach you and they
    /// cannot see your presence. They are not told.
    Block {
        #[arg(value_parser = commands::user_id)]
        user: UserId,
    },
    /// Unblock a user.
    Unblock {
        #[arg(value_parser = commands::user_id)]
        user: UserId,
    },
    /// The users you block.
    Blocked,
    /// List your channels, or create and manage them.
    Channels {
        #[command(subcommand)]
        action: Option<commands::ChannelAction>,
    },
    /// Chat in a channel: incoming messages above, your prompt below. Ctrl-D or /quit leaves.
    #[command(long_about = chat::LONG_ABOUT)]
    Chat {
        /// Channel id, group name, or the other person's username for a direct chat.
        channel: String,
        /// Messages of history to show first.
        #[arg(long, default_value_t = 20)]
        history: usize,
    },
    /// Send one message (with files, if any) and wait for the server's ack.
    ///
    /// Members named as `@username` in the text are mentioned: they see the message marked,
    /// and are told even when they muted the channel.
    Send {
        channel: String,
        /// The text (words are joined with spaces); `-` reads it from stdin.
        #[arg(required_unless_present = "file", num_args = 1..)]
        text: Vec<String>,
        /// Attach a file (repeatable): uploaded straight to storage first.
        #[arg(long)]
        file: Vec<PathBuf>,
        /// Mention these members besides those named `@username` in the text
        /// (comma-separated, repeatable).
        #[arg(long, value_delimiter = ',', value_parser = commands::user_id)]
        mention: Vec<UserId>,
    },
    /// Answer a message: the reply shows the start of it (`↪ alice: …`).
    ///
    /// `@username` in the text mentions a member, as for `send`.
    Reply {
        /// Channel id, group name, or the other person's username.
        channel: String,
        /// The message answered: `#12` (quoted in a shell) or `12`, its seq as `chat
        /// history` shows it, or its id.
        #[arg(value_parser = commands::message_ref)]
        message: MessageRef,
        /// The text (words are joined with spaces); `-` reads it from stdin.
        #[arg(required_unless_present = "file", num_args = 1..)]
        text: Vec<String>,
        /// Attach a file (repeatable).
        #[arg(long)]
        file: Vec<PathBuf>,
        /// Mention members besides those named `@username` in the text.
        #[arg(long, value_delimiter = ',', value_parser = commands::user_id)]
        mention: Vec<UserId>,
    },
    /// React to a message with an emoji.
    ///
    /// One of each emoji per member. History shows the counts after the message
    /// (`👍 2* ❤️ 1`, `*`: yours).
    React(commands::ReactionArgs),
    /// Take your reaction with an emoji back.
    Unreact(commands::ReactionArgs),
    /// Replace the text of one of your messages.
    Edit {
        channel: String,
        /// `#12` (quoted in a shell) or `12`, its seq as `chat history` shows it, or its id
        /// (`chat --json history CHANNEL`).
        #[arg(value_parser = commands::message_ref)]
        message: MessageRef,
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Delete a message: yours, or anyone's in a group you own or administer.
    Delete {
        channel: String,
        /// `#12` (quoted in a shell) or `12`, its seq as `chat history` shows it, or its id.
        #[arg(value_parser = commands::message_ref)]
        message: MessageRef,
    },
    /// Print a channel's history, oldest first.
    ///
    /// Each message as `#seq author: text`; a reply after the start of the message it
    /// answers (`↪ alice: …`); `(mentions you)` marks those that mention you; the reactions
    /// follow (`👍 2* ❤️ 1`, `*`: yours).
    History(commands::HistoryArgs),
    /// Search the messages of your channels: words, "quoted phrases", and the last word as
    /// a prefix (`chat search lunch tom` finds "lunch tomorrow").
    ///
    /// Each hit as `channel #seq author: …snippet…`, the matched words in `[brackets]`
    /// (bold on a terminal), newest first. New messages are found a few seconds after they
    /// were sent.
    Search(commands::SearchArgs),
    /// Your presence as others see it; set your state (online, dnd, invisible), a custom
    /// status, and who sees when you were last online.
    ///
    /// `chat status` shows how others see you and your custom status; `chat status dnd`
    /// (or `invisible`, or `online` again) sets your state on all your devices; `chat status
    /// --text "In a meeting" --emoji 📅 --for 1h` sets a custom status (`--clear` clears
    /// it); `--last-seen nobody` (or `contacts`) says who sees when you were last online.
    /// They combine: `chat status dnd --text "Focus"`. People in a chat with you see the
    /// changes as they happen.
    ///
    /// The server keeps these choices 90 days after your last choice or heartbeat; this
    /// device keeps them too (in the session file) and every `chat` that connects sends
    /// them again first (but `chat script`, which sends only what it reads).
    Status(commands::StatusArgs),
    /// Read JSON actions, one per line, from FILE or stdin; print every server frame as a
    /// JSON line. Details: `chat script --help`.
    #[command(long_about = script::LONG_ABOUT)]
    Script(script::ScriptArgs),
}

/// Where the backend is, and how to talk TLS to it.
pub struct Endpoints {
    pub api: String,
    pub ws: String,
    pub tls: Arc<rustls::ClientConfig>,
}

fn endpoints(cli: &Cli, store: &Store) -> Endpoints {
    let saved = store.session.as_ref();
    let api = cli.api.clone().or_else(|| saved.and_then(|s| s.api_url.clone())).unwrap_or_else(|| DEFAULT_API.into());
    let api = api.trim_end_matches('/').to_owned();
    let ws = cli.ws.clone().or_else(|| {
        // The saved WebSocket URL belongs to the saved API URL only.
        saved.filter(|s| s.api_url.as_deref() == Some(api.as_str())).and_then(|s| s.ws_url.clone())
    });
    let ws = ws.unwrap_or_else(|| {
        let scheme_swapped = if let Some(rest) = api.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            api.replacen("http://", "ws://", 1)
        };
        format!("{scheme_swapped}/{DEFAULT_STAGE}")
    });
    Endpoints { api, ws, tls: net::tls_config() }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("chat: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let mut store = Store::load(cli.session.clone().unwrap_or_else(session::default_path))?;
    let endpoints = endpoints(&cli, &store);
    let api = Api::new(&endpoints.api, net::HttpClient::new(endpoints.tls.clone()));
    let json = cli.json;
    match cli.command {
        Command::Signup(credentials) => {
            commands::authenticate(&api, &endpoints, &mut store, true, credentials, json).await?
        }
        Command::Signin(credentials) => {
            commands::authenticate(&api, &endpoints, &mut store, false, credentials, json).await?
        }
        Command::Signout { everywhere } => commands::sign_out(&api, &mut store, everywhere, json).await?,
        Command::Channels { action } => commands::channels(&api, &mut store, action, json).await?,
        Command::Invitations { action } => commands::invitations(&api, &mut store, action, json).await?,
        Command::Block { user } => commands::block(&api, &mut store, &user, true, json).await?,
        Command::Unblock { user } => commands::block(&api, &mut store, &user, false, json).await?,
        Command::Blocked => commands::blocked(&api, &mut store, json).await?,
        Command::Chat { channel, history } => chat::run(&api, &endpoints, &mut store, &channel, history).await?,
        Command::Send { channel, text, file, mention } => {
            let draft = Draft { channel, words: text, files: file, reply_to: None, mentions: mention };
            commands::send(&api, &endpoints, &mut store, draft, json).await?
        }
        Command::Reply { channel, message, text, file, mention } => {
            let draft = Draft { channel, words: text, files: file, reply_to: Some(message), mentions: mention };
            commands::send(&api, &endpoints, &mut store, draft, json).await?
        }
        Command::React(args) => commands::react(&api, &endpoints, &mut store, args, true, json).await?,
        Command::Unreact(args) => commands::react(&api, &endpoints, &mut store, args, false, json).await?,
        Command::Edit { channel, message, text } => {
            let text = Some(text.join(" "));
            commands::change(&api, &endpoints, &mut store, &channel, message, text, json).await?
        }
        Command::Delete { channel, message } => {
            commands::change(&api, &endpoints, &mut store, &channel, message, None, json).await?
        }
        Command::History(args) => commands::history(&api, &mut store, args, json).await?,
        Command::Search(args) => commands::search(&api, &mut store, args, json).await?,
        Command::Status(args) => commands::status(&api, &endpoints, &mut store, args, json).await?,
        Command::Script(args) => return script::run(&api, &endpoints, &mut store, args).await,
    }
    Ok(ExitCode::SUCCESS)
}
