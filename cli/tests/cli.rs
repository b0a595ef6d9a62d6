//! The `chat` binary against the real backend (moto + a local gateway per test), used the
//! way people and scripts use it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use e2e::Stack;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const PASSWORD: &str = "correct horse battery";

/// `chat` as one person on one machine: their own session file.
struct Person {
    name: String,
    session: PathBuf,
    api: String,
    ws: String,
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Alice and Bob, each signed up on a device of their own.
async fn signed_up_pair(stack: &Stack) -> (Person, Person) {
    let (alice, bob) = (Person::new(stack, "alice"), Person::new(stack, "bob"));
    alice.sign_up().await;
    bob.sign_up().await;
    (alice, bob)
}

/// Alice, Bob and Carol, each signed up on a device of their own.
async fn signed_up_trio(stack: &Stack) -> (Person, Person, Person) {
    let (alice, bob) = signed_up_pair(stack).await;
    let carol = Person::new(stack, "carol");
    carol.sign_up().await;
    (alice, bob, carol)
}

impl Person {
    fn new(stack: &Stack, prefix: &str) -> Self {
        let name = format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        let session = std::env::temp_dir().join(format!("chat-cli-test-{name}.json"));
        Self { name, session, api: stack.gateway.http_url(), ws: stack.websocket_url() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chat"));
        command
            .args(["--api", &self.api, "--ws", &self.ws, "--session"])
            .arg(&self.session)
            .args(args)
            .env_remove("CHAT_PASSWORD")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, "").await
    }

    async fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chat runs");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("chat finishes within a minute")
            .unwrap();
        Output {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn sign_up(&self) {
        let out = self.run(&["signup", &self.name, "--password", PASSWORD]).await;
        assert!(out.ok, "signup failed: {}", out.stderr);
        assert!(out.stdout.contains(&format!("signed up as {}", self.name)), "{}", out.stdout);
    }

    /// The same person on another device: a session file of its own (not signed in yet).
    fn device(&self, label: &str) -> Self {
        let session = std::env::temp_dir().join(format!("chat-cli-test-{}-{label}.json", self.name));
        Self { name: self.name.clone(), session, api: self.api.clone(), ws: self.ws.clone() }
    }

    async fn sign_in(&self) {
        let out = self.run(&["signin", &self.name, "--password", PASSWORD]).await;
        assert!(out.ok, "signin failed: {}", out.stderr);
    }

    /// `chat invitations accept CHANNEL`, which must succeed.
    async fn accept(&self, channel: &str) -> Output {
        let out = self.run(&["invitations", "accept", channel]).await;
        assert!(out.ok, "{} could not accept {channel}: {}{}", self.name, out.stdout, out.stderr);
        assert!(out.stdout.starts_with("accepted: "), "{}", out.stdout);
        out
    }

    /// `chat --json invitations`: one JSON line per pending invitation.
    async fn invitations(&self) -> Vec<Value> {
        let out = self.run(&["--json", "invitations"]).await;
        assert!(out.ok, "{}", out.stderr);
        json_lines(&out.stdout)
    }

    fn saved_session(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(&self.session).unwrap()).unwrap()
    }

    fn token(&self) -> String {
        self.saved_session()["accessToken"].as_str().unwrap().to_owned()
    }
}

impl Drop for Person {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.session);
    }
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))).collect()
}

#[tokio::test]
async fn sign_up_sign_in_and_manage_channels() {
    let stack = Stack::start().await;
    let (alice, bob) = signed_up_pair(&stack).await;

    let out = alice.run(&["channels"]).await;
    assert!(out.ok && out.stdout.contains("no channels yet"), "{}{}", out.stdout, out.stderr);

    // Opening a direct channel and creating a group invite Bob: he is not a member yet.
    let invited = format!("invited (not members until they accept): {}", bob.name);
    let out = alice.run(&["channels", "direct", &bob.name]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("(direct)") && out.stdout.contains(&invited), "{}", out.stdout);
    assert!(!out.stdout.lines().any(|l| l.trim_start().starts_with(&bob.name)), "{}", out.stdout);

    let out = alice.run(&["channels", "group", "Book club", "--members", &bob.name]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("\"Book club\"") && out.stdout.contains("owner"), "{}", out.stdout);
    assert!(out.stdout.contains(&invited), "{}", out.stdout);
    assert!(!out.stdout.lines().any(|l| l.trim_start().starts_with(&bob.name)), "{}", out.stdout);
    let out = alice.run(&["--json", "channels", "add", "Book club", "carol-nobody"]).await;
    let view: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", out.stdout, out.stderr));
    assert_eq!(view["invited"], serde_json::json!(["carol-nobody"]), "{view}");
    assert_eq!(view["members"].as_array().map(Vec::len), Some(1), "{view}");

    let out = alice.run(&["--json", "channels"]).await;
    let channels = json_lines(&out.stdout);
    assert_eq!(channels.len(), 2, "{}", out.stdout);
    assert!(channels.iter().any(|c| c["kind"] == "direct" && c["peer"] == bob.name.as_str()));
    assert!(channels.iter().any(|c| c["kind"] == "group" && c["name"] == "Book club"));

    // Bob has neither until he accepts; then he sees both, by name.
    let out = bob.run(&["channels"]).await;
    assert!(out.stdout.contains("no channels yet"), "{}", out.stdout);
    assert!(out.stdout.contains("2 pending invitation(s)"), "{}", out.stdout);
    bob.accept("Book club").await;
    bob.accept(&alice.name).await;
    let out = bob.run(&["channels"]).await;
    assert!(out.stdout.contains("Book club") && out.stdout.contains(&alice.name), "{}", out.stdout);
    assert!(!out.stdout.contains("pending invitation"), "{}", out.stdout);

    // A refusal is reported with the server's reason and a failing status.
    let out = alice.run(&["channels", "direct", &alice.name]).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("a direct channel needs another user") && out.stderr.contains("invalid_request"),
        "{}",
        out.stderr
    );

    // Signing in again (password on stdin, as a script would) replaces the session.
    let out = alice.run_with_input(&["signin", &alice.name], &format!("{PASSWORD}\n")).await;
    assert!(out.ok && out.stdout.contains("signed in as"), "{}{}", out.stdout, out.stderr);
    let out = alice.run(&["signin", &alice.name, "--password", "wrong password"]).await;
    assert!(!out.ok && out.stderr.contains("wrong username or password"), "{}", out.stderr);
}

#[tokio::test]
async fn send_delivers_live_and_history_reads_back_in_order() {
    let stack = Stack::start().await;
    let (alice, bob) = signed_up_pair(&stack).await;
    assert!(alice.run(&["channels", "direct", &bob.name]).await.ok);
    bob.accept(&alice.name).await;
    let mut bobs_phone = stack.connect_with_token(&bob.token()).await;

    for (i, text) in ["first", "second", "third"].iter().enumerate() {
        let out = alice.run(&["send", &bob.name, "message", text]).await;
        assert!(out.ok, "{}", out.stderr);
        assert!(out.stdout.contains(&format!("as #{}", i + 1)), "{}", out.stdout);
        let frame = bobs_phone.recv_type("message").await;
        assert_eq!(frame["message"]["text"], format!("message {text}"));
    }

    let out = bob.run(&["history", &alice.name, "--limit", "2"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(lines[0].ends_with(&format!("{}: message second", alice.name)), "{}", out.stdout);
    assert!(lines[1].ends_with(&format!("{}: message third", alice.name)), "{}", out.stdout);

    let out = bob.run(&["--json", "history", &alice.name, "--all"]).await;
    let messages = json_lines(&out.stdout);
    let seqs: Vec<u64> = messages.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);

    // Alice edits the first and deletes the second; Bob's phone hears of both; Bob may not.
    let first = messages[0]["messageId"].as_str().unwrap();
    let second = messages[1]["messageId"].as_str().unwrap();
    let out = alice.run(&["edit", &bob.name, first, "message one"]).await;
    assert!(out.ok && out.stdout.contains("edited message"), "{}{}", out.stdout, out.stderr);
    assert_eq!(bobs_phone.recv_type("messageUpdated").await["message"]["text"], "message one");
    let out = alice.run(&["delete", &bob.name, second]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(bobs_phone.recv_type("messageDeleted").await["messageId"], second);
    let out = bob.run(&["edit", &alice.name, first, "not mine"]).await;
    assert!(!out.ok && out.stderr.contains("forbidden"), "{}", out.stderr);

    let out = bob.run(&["history", &alice.name]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].ends_with("message one (edited)"), "{}", out.stdout);
    assert!(lines[1].ends_with("(deleted)"), "{}", out.stdout);
}

#[tokio::test]
async fn send_uploads_a_file_that_the_other_person_can_download() {
    let stack = Stack::start().await;
    let (alice, bob) = signed_up_pair(&stack).await;
    assert!(alice.run(&["channels", "direct", &bob.name]).await.ok);
    bob.accept(&alice.name).await;
    let file = std::env::temp_dir().join(format!("chat-cli-notes-{}.txt", alice.name));
    let contents = "line one\nline two \u{2713}\n";
    std::fs::write(&file, contents).unwrap();

    let out = alice.run(&["send", &bob.name, "the notes", "--file", file.to_str().unwrap()]).await;
    std::fs::remove_file(&file).unwrap();
    assert!(out.ok, "{}", out.stderr);

    let out = bob.run(&["--json", "history", &alice.name]).await;
    let messages = json_lines(&out.stdout);
    let attachment = &messages[0]["attachments"][0];
    assert_eq!(messages[0]["text"], "the notes");
    assert_eq!(
        (attachment["contentType"].as_str(), attachment["size"].as_u64()),
        (Some("text/plain"), Some(contents.len() as u64))
    );
    let url = attachment["url"].as_str().expect("a download link");
    let downloaded = reqwest::get(url).await.expect("storage answers").text().await.unwrap();
    assert_eq!(downloaded, contents);
    let text = bob.run(&["history", &alice.name]).await.stdout;
    assert!(text.contains("the notes [file chat-cli-notes-"), "{text}");
}

#[tokio::test]
async fn history_all_pages_through_a_long_channel() {
    let stack = Stack::start().await;
    let (alice, bob) = signed_up_pair(&stack).await;
    assert!(alice.run(&["channels", "direct", &bob.name]).await.ok);
    bob.accept(&alice.name).await;
    let channel =
        json_lines(&alice.run(&["--json", "channels"]).await.stdout)[0]["channelId"].as_str().unwrap().to_owned();

    let script: String = (1..=130)
        .map(|i| format!("{{\"action\":\"sendMessage\",\"channelId\":\"{channel}\",\"text\":\"m{i}\"}}\n"))
        .collect();
    let out = alice.run_with_input(&["script", "--max-in-flight", "1"], &script).await;
    assert!(out.ok, "{}", out.stderr);

    let out = bob.run(&["--json", "history", &alice.name, "--all"]).await;
    let texts: Vec<String> = json_lines(&out.stdout).iter().map(|m| m["text"].as_str().unwrap().to_owned()).collect();
    let expected: Vec<String> = (1..=130).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected);
}

#[tokio::test]
async fn script_mode_prints_every_server_frame_as_a_json_line() {
    let stack = Stack::start().await;
    let (alice, bob) = signed_up_pair(&stack).await;
    let out = alice.run(&["--json", "channels", "direct", &bob.name]).await;
    let channel = serde_json::from_str::<Value>(&out.stdout).unwrap()["channelId"].as_str().unwrap().to_owned();

    let script = format!(
        r#"# a scripted chat
{{"action":"sendMessage","channelId":"{channel}","clientMsgId":"s1","text":"scripted one"}}
{{"action":"sendMessage","channelId":"{channel}","text":"scripted two"}}
{{"action":"sendMessage","channelId":"not-mine","clientMsgId":"s3","text":"refused"}}
{{"waitFor":"ack"}}
{{"http":"GET","path":"/channels/{channel}/messages?limit=5"}}
{{"sleep":10}}
"#
    );
    let out = alice.run_with_input(&["script"], &script).await;
    assert!(out.ok, "{}", out.stderr);
    let frames = json_lines(&out.stdout);
    let acks: Vec<&Value> = frames.iter().filter(|f| f["type"] == "ack").collect();
    assert_eq!(acks.len(), 2, "{}", out.stdout);
    assert!(acks.iter().any(|a| a["clientMsgId"] == "s1" && a["message"]["text"] == "scripted one"));
    let error = frames.iter().find(|f| f["type"] == "error").expect("an error frame");
    assert_eq!((error["code"].as_str(), error["clientMsgId"].as_str()), (Some("forbidden"), Some("s3")));
    let http = frames.iter().find(|f| f["type"] == "http").expect("the http answer");
    assert_eq!(http["status"], 200);
    assert!(http["body"]["messages"].as_array().is_some_and(|m| !m.is_empty()));
    assert!(out.stderr.contains("3 frames") || out.stderr.contains("sent 3 frames"), "{}", out.stderr);

    // A line that is not an action stops the script with status 2 and says where.
    let out = alice.run_with_input(&["script"], "{\"action\":\"heartbeat\"}\nnot json\n").await;
    assert!(!out.ok && out.stderr.contains("line 2: not JSON"), "{}", out.stderr);
}

#[tokio::test]
async fn interactive_chat_shows_incoming_messages_and_sends_typed_lines() {
    let stack = Stack::start().await;
    let (alice, bob) = signed_up_pair(&stack).await;
    assert!(alice.run(&["channels", "direct", &bob.name]).await.ok);
    bob.accept(&alice.name).await;
    assert!(bob.run(&["send", &alice.name, "are you there?"]).await.ok);
    let mut bobs_phone = stack.connect_with_token(&bob.token()).await;

    let mut chat = RunningChat::start(&alice, &bob.name);

    // Without a terminal the screen is plain lines: the header, then the history.
    let first = chat.lines_until(|l| l.ends_with(&format!("{}: are you there?", bob.name))).await;
    assert!(first[0].contains(&bob.name), "{first:?}");
    assert_eq!(first.len(), 2, "{first:?}");
    // Bob is connected, and the chat says so (presence).
    chat.line(|l| l.ends_with(&format!("{} is online", bob.name))).await;

    chat.type_line("yes, here").await;
    let frame = bobs_phone.recv_type("message").await;
    assert_eq!(frame["message"]["text"], "yes, here");
    chat.line(|l| l.ends_with(&format!("{}: yes, here", alice.name))).await;

    // What the chat shows is marked read: Bob's phone gets the receipt.
    bobs_phone.send_message(frame["message"]["channelId"].as_str().unwrap(), "b2", "great").await;
    chat.line(|l| l.ends_with(&format!("{}: great", bob.name))).await;
    loop {
        let receipt = bobs_phone.recv_type("receipt").await;
        assert_eq!(receipt["userId"].as_str(), Some(alice.name.as_str()));
        if receipt["seq"] == 3 {
            break;
        }
    }
    chat.quit().await;
}

#[tokio::test]
async fn invitations_are_listed_then_accepted_or_declined() {
    let stack = Stack::start().await;
    let (alice, bob) = signed_up_pair(&stack).await;
    let out = bob.run(&["invitations"]).await;
    assert!(out.ok && out.stdout.trim() == "no pending invitations", "{}{}", out.stdout, out.stderr);

    for name in ["Book club", "Chess", "Twins", "Twins"] {
        assert!(alice.run(&["channels", "group", name, "--members", &bob.name]).await.ok);
    }
    assert!(alice.run(&["channels", "direct", &bob.name]).await.ok);
    let book_club = alice.run(&["--json", "channels"]).await;
    let book_club = json_lines(&book_club.stdout).into_iter().find(|c| c["name"] == "Book club").unwrap();
    let book_club = book_club["channelId"].as_str().unwrap().to_owned();

    // Bob's invitations, oldest first, with who sent them.
    let pending = bob.invitations().await;
    let kinds: Vec<(&str, Option<&str>)> =
        pending.iter().map(|i| (i["kind"].as_str().unwrap(), i["name"].as_str())).collect();
    assert_eq!(
        kinds,
        [
            ("group", Some("Book club")),
            ("group", Some("Chess")),
            ("group", Some("Twins")),
            ("group", Some("Twins")),
            ("direct", None)
        ]
    );
    assert!(pending.iter().all(|i| i["invitedBy"] == alice.name.as_str() && i["role"] == "member"), "{pending:?}");
    assert_eq!(pending[0]["channelId"], book_club.as_str());
    let out = bob.run(&["invitations"]).await;
    assert_eq!(out.stdout.lines().count(), 1 + 5 + 1, "{}", out.stdout);
    assert!(
        out.stdout.lines().nth(1).is_some_and(|l| l.starts_with(&book_club) && l.ends_with("Book club")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.lines().nth(5).is_some_and(|l| l.contains("direct") && l.contains(&alice.name)),
        "{}",
        out.stdout
    );

    // Until he accepts, the group is not Bob's: nothing of it reaches him, and the CLI
    // says how to join.
    let mut bobs_phone = stack.connect_with_token(&bob.token()).await;
    assert!(alice.run(&["send", "Book club", "sent before you joined"]).await.ok);
    bobs_phone.expect_silence(Duration::from_secs(1)).await;
    let out = bob.run(&["history", "Book club"]).await;
    assert!(!out.ok, "{}", out.stdout);
    assert!(out.stderr.contains(&format!("`chat invitations accept {book_club}`")), "{}", out.stderr);

    // Accepted by the group's name: Bob is a member, reads what was sent before, and
    // receives what Alice sends now.
    let out = bob.accept("Book club").await;
    assert!(out.stdout.contains(&format!("{} invites you to the group \"Book club\"", alice.name)), "{}", out.stdout);
    assert!(
        out.stdout.lines().any(|l| l.trim_start().starts_with(&bob.name) && l.ends_with("member")),
        "{}",
        out.stdout
    );
    let out = bob.run(&["history", "Book club"]).await;
    assert!(out.stdout.trim_end().ends_with(&format!("{}: sent before you joined", alice.name)), "{}", out.stdout);
    assert!(alice.run(&["send", "Book club", "welcome"]).await.ok);
    let frame = bobs_phone.recv_type("message").await;
    assert_eq!(
        (frame["message"]["channelId"].as_str(), frame["message"]["text"].as_str()),
        (Some(book_club.as_str()), Some("welcome"))
    );

    // The direct chat, by the inviter's username.
    bob.accept(&alice.name).await;
    assert!(bob.run(&["send", &alice.name, "hello Alice"]).await.ok);
    let out = alice.run(&["history", &bob.name]).await;
    assert!(out.stdout.trim_end().ends_with(&format!("{}: hello Alice", bob.name)), "{}", out.stdout);

    // A name two invitations share is refused with their ids; an id settles it.
    let out = bob.run(&["invitations", "accept", "Twins"]).await;
    assert!(!out.ok && out.stderr.contains("names 2 pending invitations"), "{}", out.stderr);
    let twins: Vec<String> = bob
        .invitations()
        .await
        .iter()
        .filter(|i| i["name"] == "Twins")
        .map(|i| i["channelId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(twins.len(), 2);
    bob.accept(&twins[1]).await;

    // Declined: the invitation is gone and Bob is not in the channel.
    let out = bob.run(&["invitations", "decline", "Chess"]).await;
    assert!(out.ok && out.stdout.starts_with("declined: "), "{}{}", out.stdout, out.stderr);
    let left: Vec<Value> = bob.invitations().await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["channelId"], twins[0].as_str());
    let out = bob.run(&["invitations", "accept", "Chess"]).await;
    assert!(!out.ok && out.stderr.contains("no pending invitation \"Chess\""), "{}", out.stderr);
    let out = bob.run(&["--json", "channels"]).await;
    let groups = json_lines(&out.stdout).iter().filter(|c| c["kind"] == "group").count();
    assert_eq!(groups, 2, "Book club and one Twins: {}", out.stdout);
    assert!(!out.stdout.contains("Chess"), "{}", out.stdout);
    let out = alice.run(&["--json", "channels", "show", "Chess"]).await;
    let chess: Value = serde_json::from_str(&out.stdout).unwrap();
    let members: Vec<&str> =
        chess["members"].as_array().unwrap().iter().map(|m| m["userId"].as_str().unwrap()).collect();
    assert_eq!(members, [alice.name.as_str()]);
    let out = bob.run(&["history", "Chess"]).await;
    assert!(!out.ok && out.stderr.contains("no channel \"Chess\""), "{}", out.stderr);
}

#[tokio::test]
async fn blocking_stops_invitations_and_unblocking_lets_them_through() {
    let stack = Stack::start().await;
    let (alice, bob) = signed_up_pair(&stack).await;
    let out = bob.run(&["blocked"]).await;
    assert!(out.ok && out.stdout.trim() == "you block nobody", "{}{}", out.stdout, out.stderr);

    // An invitation that is waiting goes when Bob blocks its sender.
    assert!(alice.run(&["channels", "group", "Before", "--members", &bob.name]).await.ok);
    assert_eq!(bob.invitations().await.len(), 1);
    let out = bob.run(&["block", &alice.name]).await;
    assert!(out.ok && out.stdout.starts_with(&format!("blocked {}", alice.name)), "{}{}", out.stdout, out.stderr);
    assert!(bob.invitations().await.is_empty());
    let out = bob.run(&["--json", "blocked"]).await;
    assert_eq!(serde_json::from_str::<Value>(&out.stdout).unwrap(), serde_json::json!({"blocked": [alice.name]}));
    assert_eq!(bob.run(&["blocked"]).await.stdout.trim(), alice.name);

    // Alice is told the same as ever, but her direct-channel invitation never arrives.
    let out = alice.run(&["--json", "channels", "direct", &bob.name]).await;
    assert!(out.ok, "{}", out.stderr);
    let view: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(view["invited"], serde_json::json!([bob.name]));
    assert!(alice.run(&["channels", "group", "While blocked", "--members", &bob.name]).await.ok);
    assert!(bob.invitations().await.is_empty());
    let out = bob.run(&["invitations"]).await;
    assert_eq!(out.stdout.trim(), "no pending invitations");

    // Unblocked: Alice's next invitation arrives.
    let out = bob.run(&["unblock", &alice.name]).await;
    assert!(out.ok && out.stdout.trim() == format!("unblocked {}", alice.name), "{}{}", out.stdout, out.stderr);
    assert_eq!(bob.run(&["blocked"]).await.stdout.trim(), "you block nobody");
    assert!(alice.run(&["channels", "group", "After", "--members", &bob.name]).await.ok);
    let pending = bob.invitations().await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(
        (pending[0]["name"].as_str(), pending[0]["invitedBy"].as_str()),
        (Some("After"), Some(alice.name.as_str()))
    );
    bob.accept("After").await;
}

#[tokio::test]
async fn signout_forgets_the_session_and_ends_it_on_the_server() {
    let stack = Stack::start().await;
    let alice = Person::new(&stack, "alice");
    alice.sign_up().await;
    let laptop = alice.device("laptop");
    laptop.sign_in().await;
    let phone = alice.device("phone");
    phone.sign_in().await;
    let old = alice.saved_session();
    let mut socket = stack.connect_with_token(old["accessToken"].as_str().unwrap()).await;

    let out = alice.run(&["--json", "signout"]).await;
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let answer: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!((answer["signedOut"].as_bool(), answer["everywhere"].as_bool()), (Some(true), Some(false)));
    // Forgotten here, whatever the server did: commands that need a session say so.
    assert!(!alice.session.exists());
    let out = alice.run(&["channels"]).await;
    assert!(!out.ok && out.stderr.contains("not signed in: run `chat signin`"), "{}{}", out.stdout, out.stderr);
    let out = alice.run(&["signout"]).await;
    assert!(out.ok && out.stdout.trim() == "not signed in", "{}{}", out.stdout, out.stderr);

    let refresh = |session: &Value| serde_json::json!({"refreshToken": session["refreshToken"]});
    let laptop_session = laptop.saved_session();
    let phone_session = phone.saved_session();
    match answer["server"].as_str() {
        Some("ended") => {
            // The server ended that session only: its refresh token is refused, its socket
            // closed; the laptop's session lives on.
            assert_eq!(stack.post("/auth/refresh", None, &refresh(&old)).await.0, 401);
            assert_eq!(socket.closed().await.code, Some(1000));
            assert!(laptop.run(&["channels", "group", "Notes"]).await.ok);

            // The phone signs out everywhere: the chat open on the laptop ends and says why.
            let mut chat = laptop
                .command(&["chat", "Notes"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("chat runs");
            let stdin = chat.stdin.take().unwrap();
            let mut stdout = BufReader::new(chat.stdout.take().unwrap()).lines();
            loop {
                // The answer to its presence question: it is connected.
                let line = tokio::time::timeout(Duration::from_secs(15), stdout.next_line()).await;
                let line = line.expect("the chat connects").unwrap().expect("chat is still running");
                if line.ends_with("nobody else here is online") {
                    break;
                }
            }
            let out = phone.run(&["signout", "--everywhere"]).await;
            assert!(out.ok, "{}{}", out.stdout, out.stderr);
            assert!(out.stdout.contains("signed out everywhere"), "{}", out.stdout);
            let ended = tokio::time::timeout(Duration::from_secs(15), chat.wait_with_output())
                .await
                .expect("the chat ends when its session does")
                .unwrap();
            drop(stdin);
            // It ends when the server refuses the laptop's refresh token (the file is untouched
            // by the phone), and forgets that session too.
            let stderr = String::from_utf8_lossy(&ended.stderr);
            assert!(!ended.status.success() && stderr.contains("signed out: the session was ended"), "{stderr}");
            assert_ne!(laptop_session["refreshToken"], phone_session["refreshToken"]);
            let (status, body) = stack.post("/auth/refresh", None, &refresh(&phone_session)).await;
            assert_eq!(status, 401, "{body}");
            assert!(!phone.session.exists());
        }
        Some("notSupported") => {
            // The CLI read the answer right: the route is not there yet.
            let (status, body) = stack.post("/auth/signout", Some(&laptop.token()), &serde_json::json!({})).await;
            assert_eq!(status, 404, "{body}");
            socket.expect_silence(Duration::from_millis(200)).await;
            // Everywhere cannot be done then: it fails and says so, but still forgets.
            let out = laptop.run(&["signout", "--everywhere"]).await;
            assert!(!out.ok, "{}", out.stdout);
            assert!(out.stderr.contains("your other devices are still signed in"), "{}", out.stderr);
            assert_eq!(stack.post("/auth/refresh", None, &refresh(&phone_session)).await.0, 200);
        }
        other => panic!("unexpected server outcome {other:?}: {answer}"),
    }
    assert!(!laptop.session.exists());
    let out = laptop.run(&["history", "anything"]).await;
    assert!(!out.ok && out.stderr.contains("not signed in"), "{}{}", out.stdout, out.stderr);
}

#[tokio::test]
async fn rate_limited_send_is_reported_readably() {
    // One message per window; everything else as generous as in the other tests. Windows
    // are fixed and start at the epoch: this one ends an hour from now, so the wait is known.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let mut rate_limits = e2e::GENEROUS;
    rate_limits.sends.count = 1;
    rate_limits.sends.window_ms = now_ms + 3_600_000;
    let stack = Stack::start_with(e2e::StackOptions { rate_limits: Some(rate_limits), ..Default::default() }).await;
    let (alice, bob) = signed_up_pair(&stack).await;
    assert!(alice.run(&["channels", "direct", &bob.name]).await.ok);
    assert!(alice.run(&["send", &bob.name, "one"]).await.ok);

    // A wait longer than a one-shot command should sit through is reported at once.
    let started = std::time::Instant::now();
    let out = alice.run(&["send", &bob.name, "two"]).await;
    assert!(!out.ok, "{}", out.stdout);
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    let line = out.stderr.trim();
    let seconds: u64 = line
        .strip_prefix("chat: too fast; retry in ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not the readable form: {line}"));
    assert!((3_500..=3_600).contains(&seconds), "{line}");
    assert!(line.ends_with("s (rate_limited)"), "{line}");
}

#[tokio::test]
async fn interactive_group_chat_shows_who_is_online_and_new_invitations() {
    let stack = Stack::start().await;
    let (alice, bob, carol) = signed_up_trio(&stack).await;
    assert!(alice.run(&["channels", "group", "Team", "--members", &bob.name]).await.ok);
    bob.accept("Team").await;
    // Bob shares no direct channel with Alice: only asking by the group shows him online.
    let _bobs_phone = stack.connect_with_token(&bob.token()).await;
    assert!(carol.run(&["channels", "group", "Carols", "--members", &alice.name]).await.ok);

    let mut child = alice
        .command(&["chat", "Team"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chat runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen: Vec<String> = Vec::new();
    // Waits up to `wait` for a line `wanted` accepts, among those seen so far and new ones.
    let mut wait_for = async |wanted: &dyn Fn(&str) -> bool, wait: Duration| {
        let deadline = tokio::time::Instant::now() + wait;
        while !seen.iter().any(|l| wanted(l)) {
            let line = tokio::time::timeout_at(deadline, stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("no such line within {wait:?}; got {seen:?}"))
                .unwrap()
                .expect("chat is still running");
            seen.push(line);
        }
    };

    wait_for(&|l| l.ends_with(&format!("online: {}", bob.name)), Duration::from_secs(15)).await;
    let notice = format!("invitation: {} invites you to the group \"Carols\"", carol.name);
    wait_for(&|l| l.contains(&notice) && l.contains("`chat invitations accept g-"), Duration::from_secs(15)).await;
    // One sent while the chat runs is noted too (looked for every 15 s).
    assert!(carol.run(&["channels", "group", "Later", "--members", &alice.name]).await.ok);
    let later = format!("invitation: {} invites you to the group \"Later\"", carol.name);
    wait_for(&|l| l.contains(&later), Duration::from_secs(30)).await;

    stdin.write_all(b"/quit\n").await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("chat quits").unwrap();
    assert!(status.success());
}

/// The `channels` line of `channel` as words: ID KIND MEMBERS MESSAGES [UNREAD [MENTIONS]] NAME.
fn channel_row(listing: &str, channel: &str) -> Vec<String> {
    let line = listing.lines().find(|l| l.starts_with(channel)).unwrap_or_else(|| panic!("no {channel}: {listing}"));
    line.split_whitespace().map(str::to_owned).collect()
}

#[tokio::test]
async fn replies_reactions_and_mentions_from_commands_and_scripts() {
    let stack = Stack::start().await;
    let (alice, bob, carol) = signed_up_trio(&stack).await;
    let members = format!("{},{}", bob.name, carol.name);
    let out = alice.run(&["--json", "channels", "group", "Team", "--members", &members]).await;
    assert!(out.ok, "{}", out.stderr);
    let team = serde_json::from_str::<Value>(&out.stdout).unwrap()["channelId"].as_str().unwrap().to_owned();
    bob.accept("Team").await;
    carol.accept("Team").await;
    let first = "first words of a long message that goes on and on for a good while";
    let out = alice.run(&["send", "Team", first]).await;
    assert!(out.ok && out.stdout.contains("as #1"), "{}{}", out.stdout, out.stderr);

    // Bob answers #1 and mentions Alice by her @name (Mallory is no member: no mention).
    let out = bob.run(&["reply", "Team", "#1", &format!("agreed @{} (cc @mallory)", alice.name)]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("as #2"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("a reply to {}'s message", alice.name)), "{}", out.stdout);
    assert!(out.stdout.trim_end().ends_with(&format!("mentioning {}", alice.name)), "{}", out.stdout);
    let messages = json_lines(&alice.run(&["--json", "history", "Team"]).await.stdout);
    let (id1, id2) = (messages[0]["messageId"].as_str().unwrap(), messages[1]["messageId"].as_str().unwrap());
    assert_eq!(messages[1]["replyTo"]["messageId"], id1, "{}", messages[1]);
    assert_eq!(messages[1]["replyTo"]["authorId"], alice.name.as_str());
    assert_eq!(messages[1]["mentions"], serde_json::json!([alice.name]));
    // --mention names one explicitly; a stranger is refused by the server.
    let out = carol.run(&["send", "Team", "see above", "--mention", &bob.name]).await;
    assert!(out.ok && out.stdout.contains(&format!("mentioning {}", bob.name)), "{}{}", out.stdout, out.stderr);
    let out = carol.run(&["send", "Team", "hello", "--mention", "mallory-nobody"]).await;
    assert!(!out.ok && out.stderr.contains("invalid_request"), "{}{}", out.stdout, out.stderr);

    // Reactions, naming the message by #seq, by seq and by id; Alice's phone hears them live.
    let mut alices_phone = stack.connect_with_token(&alice.token()).await;
    let out = bob.run(&["react", "Team", "#1", "👍"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "reacted 👍 to #1 in Team · 👍 1*");
    let live = alices_phone.recv_type("reaction").await;
    assert_eq!(
        (live["userId"].as_str(), live["emoji"].as_str(), live["added"].as_bool(), live["seq"].as_u64()),
        (Some(bob.name.as_str()), Some("👍"), Some(true), Some(1)),
        "{live}"
    );
    assert!(carol.run(&["react", "Team", "1", "👍"]).await.ok);
    let out = carol.run(&["--json", "react", "Team", "1", "❤️"]).await;
    let answer: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", out.stdout, out.stderr));
    assert_eq!(answer["type"], "reaction");
    assert_eq!(answer["reactions"].as_array().map(Vec::len), Some(2), "{answer}");
    let out = alice.run(&["react", "Team", id2, "🎉"]).await;
    assert!(out.ok && out.stdout.starts_with("reacted 🎉 to #2 in Team"), "{}{}", out.stdout, out.stderr);
    let out = alice.run(&["unreact", "Team", "2", "🎉"]).await;
    assert_eq!(out.stdout.trim(), "took back 🎉 from #2 in Team (no reactions now)", "{}", out.stderr);
    let out = alice.run(&["unreact", "Team", "2", "🎉"]).await;
    assert_eq!(out.stdout.trim(), "you had not reacted 🎉 to #2 in Team (no reactions now)", "{}", out.stderr);
    let out = alice.run(&["react", "Team", "#9", "👍"]).await;
    assert!(!out.ok && out.stderr.contains("no message #9 in Team"), "{}", out.stderr);

    // History: the counts after the message (the reader's own marked), a reply after the
    // start of what it answers, and the mention marked for whom it mentions.
    let out = bob.run(&["history", "Team"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(lines[0].contains(&format!("#1 {}: {first}", alice.name)), "{}", out.stdout);
    assert!(lines[0].ends_with("👍 2* ❤️ 1") || lines[0].ends_with("❤️ 1 👍 2*"), "{}", out.stdout);
    assert_eq!(lines[1].trim_start(), format!("↪ {}: first words of a long message that goes on and…", alice.name));
    assert!(lines[2].ends_with(&format!("#2 {}: agreed @{} (cc @mallory)", bob.name, alice.name)), "{}", out.stdout);
    assert!(lines[3].ends_with("see above (mentions you)"), "{}", out.stdout);
    let out = alice.run(&["history", "Team"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].ends_with("👍 2 ❤️ 1") || lines[0].ends_with("❤️ 1 👍 2"), "{}", out.stdout);
    assert!(lines[2].ends_with("(cc @mallory) (mentions you)"), "{}", out.stdout);

    // Alice's list: two unread messages in Team, one of them mentions her.
    let out = alice.run(&["channels"]).await;
    assert!(out.stdout.lines().next().is_some_and(|l| l.contains("UNREAD  MENTIONS")), "{}", out.stdout);
    assert_eq!(channel_row(&out.stdout, &team)[3..], ["3", "2", "1", "Team"], "{}", out.stdout);
    let out = alice.run(&["--json", "channels"]).await;
    let listed = &json_lines(&out.stdout)[0];
    assert_eq!((listed["unread"].as_u64(), listed["mentions"].as_u64()), (Some(2), Some(1)), "{listed}");

    // A deleted message: the reply's quote says so.
    assert!(alice.run(&["delete", "Team", "#1"]).await.ok);
    let out = bob.run(&["history", "Team"]).await;
    assert_eq!(out.stdout.lines().nth(1).map(str::trim_start), Some("↪ (deleted message)"), "{}", out.stdout);

    // A script: Carol answers #2 mentioning Bob, then reacts to her answer (#4, known from
    // its ack) and to #2 (looked up), all by seq; a stranger's mention is refused.
    let script = format!(
        r##"{{"action":"sendMessage","channelId":"{team}","clientMsgId":"r1","text":"me too @{bob}","replyTo":"#2","mentions":["{bob}"]}}
{{"waitFor":"ack"}}
{{"action":"addReaction","channelId":"{team}","messageId":"#4","emoji":"👀"}}
{{"waitFor":"reaction"}}
{{"action":"addReaction","channelId":"{team}","messageId":"#2","emoji":"👀"}}
{{"waitFor":"reaction"}}
{{"action":"sendMessage","channelId":"{team}","clientMsgId":"r2","text":"psst","mentions":["mallory-nobody"]}}
"##,
        bob = bob.name
    );
    let out = carol.run_with_input(&["script"], &script).await;
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let frames = json_lines(&out.stdout);
    let ack = frames.iter().find(|f| f["type"] == "ack").expect("an ack");
    assert_eq!(ack["message"]["seq"], 4, "{ack}");
    assert_eq!(ack["message"]["replyTo"]["messageId"], id2, "{ack}");
    assert_eq!(ack["message"]["mentions"], serde_json::json!([bob.name]), "{ack}");
    let reacted: Vec<(u64, bool)> = frames
        .iter()
        .filter(|f| f["type"] == "reaction")
        .map(|f| (f["seq"].as_u64().unwrap(), f["added"].as_bool().unwrap()))
        .collect();
    assert_eq!(reacted, [(4, true), (2, true)], "{}", out.stdout);
    let refused = frames.iter().find(|f| f["type"] == "error").expect("the stranger's mention is refused");
    assert_eq!((refused["code"].as_str(), refused["clientMsgId"].as_str()), (Some("invalid_request"), Some("r2")));
    // An unknown seq stops the script before anything is sent.
    let bad = format!(r##"{{"action":"addReaction","channelId":"{team}","messageId":"#99","emoji":"👀"}}"##);
    let out = carol.run_with_input(&["script"], &bad).await;
    assert!(
        !out.ok && out.stderr.contains(&format!("line 1: \"messageId\": no message #99 in {team}")),
        "{}",
        out.stderr
    );

    let out = bob.run(&["history", "Team"]).await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.iter().any(|l| l.trim_start() == format!("↪ {}: agreed @{} (cc @mallory)", bob.name, alice.name)));
    let reply = lines.last().unwrap();
    assert!(
        reply.ends_with(&format!("#4 {}: me too @{} (mentions you)  👀 1", carol.name, bob.name)),
        "{}",
        out.stdout
    );
    assert!(lines.iter().any(|l| l.contains("#2 ") && l.ends_with("👀 1")), "{}", out.stdout);
}

#[tokio::test]
async fn interactive_chat_replies_reacts_and_shows_reactions_as_they_come() {
    let stack = Stack::start().await;
    let (alice, bob) = signed_up_pair(&stack).await;
    assert!(alice.run(&["channels", "direct", &bob.name]).await.ok);
    bob.accept(&alice.name).await;
    assert!(bob.run(&["send", &alice.name, "lunch at noon?"]).await.ok);
    let mut bobs_phone = stack.connect_with_token(&bob.token()).await;

    let mut chat = RunningChat::start(&alice, &bob.name);

    let lunch = format!("#1 {}: lunch at noon?", bob.name);
    chat.lines_until(|l| l.ends_with(&lunch)).await;
    chat.lines_until(|l| l.ends_with(&format!("{} is online", bob.name))).await;

    // Bob reacts elsewhere: the chat tells.
    assert!(bob.run(&["react", &alice.name, "1", "👍"]).await.ok);
    let told = format!("{} reacted 👍 to #1 · 👍 1", bob.name);
    chat.lines_until(|l| l.trim_start() == told).await;

    // Alice reacts, answers with a mention, and takes her reaction back.
    chat.type_line("/react 1 🎉").await;
    let mine = chat.lines_until(|l| l.contains("you reacted 🎉 to #1")).await;
    assert!(mine.last().unwrap().contains("🎉 1*") && mine.last().unwrap().contains("👍 1"), "{mine:?}");
    // Bob's phone heard his own reaction first (from his other device), then Alice's.
    let live = bobs_phone.recv_type("reaction").await;
    assert_eq!((live["emoji"].as_str(), live["userId"].as_str()), (Some("👍"), Some(bob.name.as_str())));
    let live = bobs_phone.recv_type("reaction").await;
    assert_eq!((live["emoji"].as_str(), live["userId"].as_str()), (Some("🎉"), Some(alice.name.as_str())));

    chat.type_line(&format!("/reply #1 yes @{}", bob.name)).await;
    let reply = chat.lines_until(|l| l.ends_with(&format!("#2 {}: yes @{}", alice.name, bob.name))).await;
    let quote = format!("↪ {}: lunch at noon?", bob.name);
    assert_eq!(reply.iter().rev().nth(1).map(|l| l.trim_start()), Some(quote.as_str()), "{reply:?}");
    let frame = bobs_phone.recv_type("message").await;
    assert_eq!(frame["message"]["mentions"], serde_json::json!([bob.name]), "{frame}");
    let (channel, reply_id) =
        (frame["message"]["channelId"].as_str().unwrap(), frame["message"]["messageId"].as_str().unwrap());
    assert!(frame["message"]["replyTo"]["messageId"].is_string(), "{frame}");

    // Bob answers the answer and mentions Alice: marked for her, after its quote.
    bobs_phone
        .send_json(&serde_json::json!({
            "action": "sendMessage", "channelId": channel, "clientMsgId": "b2", "text": "great",
            "replyTo": reply_id, "mentions": [alice.name],
        }))
        .await;
    let answer = chat.lines_until(|l| l.ends_with(&format!("#3 {}: great (mentions you)", bob.name))).await;
    let quote = format!("↪ {}: yes @{}", alice.name, bob.name);
    assert_eq!(answer.iter().rev().nth(1).map(|l| l.trim_start()), Some(quote.as_str()), "{answer:?}");

    chat.type_line("/unreact #1 🎉").await;
    chat.lines_until(|l| l.trim_start() == "you took back 🎉 from #1 · 👍 1").await;
    chat.type_line("/react 99 👍").await;
    chat.lines_until(|l| l.ends_with("there is no message #99 here")).await;
    chat.type_line("/help").await;
    chat.lines_until(|l| l.contains("/reply MESSAGE TEXT")).await;

    chat.quit().await;
}

/// `chat chat CHANNEL` running as someone, read line by line.
struct RunningChat {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    seen: Vec<String>,
}

impl RunningChat {
    fn start(person: &Person, channel: &str) -> Self {
        let mut child = person
            .command(&["chat", channel])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chat runs");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, stdin, stdout, seen: Vec::new() }
    }

    /// The next line `wanted` accepts (the lines before it are passed over); fails after 15 s.
    async fn line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        self.lines_until(wanted).await.pop().expect("the line it waited for")
    }

    /// The lines read up to and with the first that `wanted` accepts; fails after 15 s.
    async fn lines_until(&mut self, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let start = self.seen.len();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(15), self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("no such line within 15 s; got {:?}", self.seen))
                .unwrap()
                .expect("chat is still running");
            self.seen.push(line.clone());
            if wanted(&line) {
                return self.seen[start..].to_vec();
            }
        }
    }

    async fn type_line(&mut self, line: &str) {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
    }

    async fn quit(mut self) {
        self.stdin.write_all(b"/quit\n").await.unwrap();
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.expect("chat quits");
        assert!(status.unwrap().success());
    }
}

#[tokio::test]
async fn status_sets_dnd_invisible_and_a_custom_status_that_the_other_persons_chat_shows() {
    let stack = Stack::start().await;
    let (alice, bob) = signed_up_pair(&stack).await;
    assert!(alice.run(&["channels", "direct", &bob.name]).await.ok);
    bob.accept(&alice.name).await;

    // Refused before anything is sent: a text over 100 characters, --for with nothing to
    // show, a state that does not exist.
    let out = bob.run(&["status", "--text", &"x".repeat(101)]).await;
    assert!(!out.ok && out.stderr.contains("the limit is 100"), "{}{}", out.stdout, out.stderr);
    let out = bob.run(&["status", "--for", "1h"]).await;
    assert!(!out.ok && out.stderr.contains("--text"), "{}", out.stderr);
    let out = bob.run(&["status", "busy"]).await;
    assert!(!out.ok && out.stderr.contains("dnd"), "{}", out.stderr);

    // Bob's phone keeps him connected. Plain `chat status`: how others see him.
    let _bobs_phone = stack.connect_with_token(&bob.token()).await;
    let out = bob.run(&["status"]).await;
    assert_eq!(out.stdout.trim(), "you appear online to others · no custom status", "{}", out.stderr);
    let out = bob.run(&["status", "dnd"]).await;
    assert_eq!(out.stdout.trim(), "you appear dnd (do not disturb) to others · no custom status", "{}", out.stderr);
    // Kept on this device, to be sent again after connecting (the server forgets).
    assert_eq!(bob.saved_session()["presence"], serde_json::json!({"state": "dnd"}));
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let out = bob.run(&["status", "--text", "In a meeting", "--emoji", "📅", "--for", "1h"]).await;
    let meeting = "you appear dnd (do not disturb) to others · 📅 In a meeting (until ";
    assert!(out.ok && out.stdout.starts_with(meeting), "{}{}", out.stdout, out.stderr);
    let out = bob.run(&["--json", "status"]).await;
    let view: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", out.stdout, out.stderr));
    assert_eq!(
        (view["type"].as_str(), view["userId"].as_str(), view["status"].as_str()),
        (Some("presence"), Some(bob.name.as_str()), Some("dnd")),
        "{view}"
    );
    let custom = &view["customStatus"];
    assert_eq!((custom["text"].as_str(), custom["emoji"].as_str()), (Some("In a meeting"), Some("📅")), "{view}");
    let expires_at = custom["expiresAt"].as_i64().expect("it lapses");
    assert!((before + 3_600_000..before + 3_660_000).contains(&expires_at), "{expires_at} vs {before}");

    // Alice's chat shows him so, then his changes as they happen (she is subscribed).
    let mut chat = RunningChat::start(&alice, &bob.name);
    let shown = format!("{} is dnd (do not disturb) · 📅 In a meeting (until ", bob.name);
    chat.line(|l| l.trim_start().starts_with(&shown)).await;

    // Invisible: offline to everyone else, though his phone is still connected.
    let out = bob.run(&["status", "invisible"]).await;
    assert!(out.stdout.starts_with("you appear offline to others (invisible)"), "{}{}", out.stdout, out.stderr);
    let offline = format!("{} is offline", bob.name);
    chat.line(|l| l.trim_start().starts_with(&offline)).await;

    // Online again, and the custom status cleared (two frames, two changes).
    let out = bob.run(&["status", "online", "--clear"]).await;
    assert_eq!(out.stdout.trim(), "you appear online to others · no custom status", "{}", out.stderr);
    assert!(bob.saved_session().get("presence").is_none(), "{}", bob.saved_session());
    let online = format!("{} is online", bob.name);
    chat.line(|l| l.trim_start().starts_with(&online)).await;
    let cleared = format!("{}'s status: cleared", bob.name);
    chat.line(|l| l.trim() == cleared).await;

    // A custom status alone: told as such.
    assert!(bob.run(&["status", "--emoji", "🌴"]).await.ok);
    let palm = format!("{}'s status: 🌴", bob.name);
    chat.line(|l| l.trim() == palm).await;

    // Who sees when he was last online.
    let out = bob.run(&["status", "--last-seen", "nobody"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["you appear online to others · 🌴", "when you were last online is shown to nobody"],
        "{}",
        out.stdout
    );
    chat.quit().await;
}

#[tokio::test]
async fn group_chat_shows_members_states_and_custom_statuses_as_they_change() {
    let stack = Stack::start().await;
    let (alice, bob, carol) = signed_up_trio(&stack).await;
    let members = format!("{},{}", bob.name, carol.name);
    assert!(alice.run(&["channels", "group", "Team", "--members", &members]).await.ok);
    bob.accept("Team").await;
    carol.accept("Team").await;
    let _bobs_phone = stack.connect_with_token(&bob.token()).await;
    let _carols_phone = stack.connect_with_token(&carol.token()).await;
    assert!(carol.run(&["status", "dnd", "--text", "Focus time"]).await.ok);

    let mut chat = RunningChat::start(&alice, "Team");
    let online = chat.line(|l| l.trim_start().starts_with("online: ")).await;
    assert!(online.contains(&format!("{} (dnd)", carol.name)), "{online}");
    assert!(online.contains(&bob.name) && !online.contains(&format!("{} (", bob.name)), "{online}");
    let focus = format!("{}'s status: Focus time", carol.name);
    chat.line(|l| l.trim() == focus).await;

    // Bob goes invisible, Carol back online; Bob's custom status is told as it is set.
    assert!(bob.run(&["status", "invisible"]).await.ok);
    let offline = format!("{} is offline", bob.name);
    chat.line(|l| l.trim_start().starts_with(&offline)).await;
    assert!(carol.run(&["status", "online"]).await.ok);
    let carol_online = format!("{} is online · Focus time", carol.name);
    chat.line(|l| l.trim() == carol_online).await;
    assert!(carol.run(&["status", "--text", "Lunch", "--emoji", "🥪", "--for", "30m"]).await.ok);
    let lunch = format!("{}'s status: 🥪 Lunch (until ", carol.name);
    chat.line(|l| l.trim_start().starts_with(&lunch)).await;
    chat.quit().await;
}

#[tokio::test]
async fn search_finds_messages_with_the_matched_words_marked() {
    let stack = Stack::start_with(e2e::StackOptions { streams: true, ..Default::default() }).await;
    let (alice, bob) = signed_up_pair(&stack).await;
    assert!(alice.run(&["channels", "direct", &bob.name]).await.ok);
    bob.accept(&alice.name).await;
    assert!(alice.run(&["send", &bob.name, "lunch tomorrow at the harbour?"]).await.ok);
    assert!(alice.run(&["send", &bob.name, "the harbour is closed"]).await.ok);

    // The index follows the stream within seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let out = bob.run(&["search", "harb"]).await;
        assert!(out.ok, "{}", out.stderr);
        if out.stdout.lines().count() == 2 {
            break out.stdout;
        }
        assert!(std::time::Instant::now() < deadline, "not found: {} {}", out.stdout, out.stderr);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with(&format!("#2 {}: the [harbour] is closed", alice.name)), "{text}");
    assert!(lines[1].contains("lunch tomorrow at the [harbour]?"), "{text}");

    let out = bob.run(&["--json", "search", "lunch", "tom", "--channel", &alice.name]).await;
    let hits = json_lines(&out.stdout);
    assert_eq!(hits.len(), 1, "{}", out.stdout);
    assert_eq!(hits[0]["message"]["text"], "lunch tomorrow at the harbour?");
    let out = bob.run(&["search", "nothing-like-this"]).await;
    assert!(
        out.ok && out.stdout.is_empty() && out.stderr.contains("no messages found"),
        "{} {}",
        out.stdout,
        out.stderr
    );
}
