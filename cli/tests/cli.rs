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

    fn token(&self) -> String {
        let session: Value = serde_json::from_str(&std::fs::read_to_string(&self.session).unwrap()).unwrap();
        session["accessToken"].as_str().unwrap().to_owned()
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
    let alice = Person::new(&stack, "alice");
    let bob = Person::new(&stack, "bob");
    alice.sign_up().await;
    bob.sign_up().await;

    let out = alice.run(&["channels"]).await;
    assert!(out.ok && out.stdout.contains("no channels yet"), "{}{}", out.stdout, out.stderr);

    let out = alice.run(&["channels", "direct", &bob.name]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("(direct)") && out.stdout.contains(&bob.name), "{}", out.stdout);

    let out = alice.run(&["channels", "group", "Book club", "--members", &bob.name]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("\"Book club\"") && out.stdout.contains("owner"), "{}", out.stdout);

    let out = alice.run(&["--json", "channels"]).await;
    let channels = json_lines(&out.stdout);
    assert_eq!(channels.len(), 2, "{}", out.stdout);
    assert!(channels.iter().any(|c| c["kind"] == "direct" && c["peer"] == bob.name.as_str()));
    assert!(channels.iter().any(|c| c["kind"] == "group" && c["name"] == "Book club"));

    // Bob sees both, by name.
    let out = bob.run(&["channels"]).await;
    assert!(out.stdout.contains("Book club") && out.stdout.contains(&alice.name), "{}", out.stdout);

    // A refusal is reported with the server's reason and a failing status.
    let out = alice.run(&["channels", "direct", "nobody-here"]).await;
    assert!(!out.ok);
    assert!(out.stderr.contains("no such users: nobody-here") && out.stderr.contains("not_found"), "{}", out.stderr);

    // Signing in again (password on stdin, as a script would) replaces the session.
    let out = alice.run_with_input(&["signin", &alice.name], &format!("{PASSWORD}\n")).await;
    assert!(out.ok && out.stdout.contains("signed in as"), "{}{}", out.stdout, out.stderr);
    let out = alice.run(&["signin", &alice.name, "--password", "wrong password"]).await;
    assert!(!out.ok && out.stderr.contains("wrong username or password"), "{}", out.stderr);
}

#[tokio::test]
async fn send_delivers_live_and_history_reads_back_in_order() {
    let stack = Stack::start().await;
    let alice = Person::new(&stack, "alice");
    let bob = Person::new(&stack, "bob");
    alice.sign_up().await;
    bob.sign_up().await;
    assert!(alice.run(&["channels", "direct", &bob.name]).await.ok);
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
    let alice = Person::new(&stack, "alice");
    let bob = Person::new(&stack, "bob");
    alice.sign_up().await;
    bob.sign_up().await;
    assert!(alice.run(&["channels", "direct", &bob.name]).await.ok);
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
    let alice = Person::new(&stack, "alice");
    let bob = Person::new(&stack, "bob");
    alice.sign_up().await;
    bob.sign_up().await;
    assert!(alice.run(&["channels", "direct", &bob.name]).await.ok);
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
    let alice = Person::new(&stack, "alice");
    let bob = Person::new(&stack, "bob");
    alice.sign_up().await;
    bob.sign_up().await;
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
    let alice = Person::new(&stack, "alice");
    let bob = Person::new(&stack, "bob");
    alice.sign_up().await;
    bob.sign_up().await;
    assert!(alice.run(&["channels", "direct", &bob.name]).await.ok);
    assert!(bob.run(&["send", &alice.name, "are you there?"]).await.ok);
    let mut bobs_phone = stack.connect_with_token(&bob.token()).await;

    let mut child = alice
        .command(&["chat", &bob.name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chat runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // The lines up to the first that ends with `end`; fails after 15 s.
    let mut lines_until = async |end: &str| {
        let start = seen.len();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(15), stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("no line ending with {end:?} within 15 s; got {seen:?}"))
                .unwrap()
                .expect("chat is still running");
            seen.push(line.clone());
            if line.ends_with(end) {
                return seen[start..].to_vec();
            }
        }
    };

    // Without a terminal the screen is plain lines: the header, then the history.
    let first = lines_until(&format!("{}: are you there?", bob.name)).await;
    assert!(first[0].contains(&bob.name), "{first:?}");
    assert_eq!(first.len(), 2, "{first:?}");
    // Bob is connected, and the chat says so (presence).
    lines_until(&format!("{} is online", bob.name)).await;

    stdin.write_all(b"yes, here\n").await.unwrap();
    let frame = bobs_phone.recv_type("message").await;
    assert_eq!(frame["message"]["text"], "yes, here");
    lines_until(&format!("{}: yes, here", alice.name)).await;

    // What the chat shows is marked read: Bob's phone gets the receipt.
    bobs_phone.send_message(frame["message"]["channelId"].as_str().unwrap(), "b2", "great").await;
    lines_until(&format!("{}: great", bob.name)).await;
    loop {
        let receipt = bobs_phone.recv_type("receipt").await;
        assert_eq!(receipt["userId"].as_str(), Some(alice.name.as_str()));
        if receipt["seq"] == 3 {
            break;
        }
    }

    stdin.write_all(b"/quit\n").await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("chat quits").unwrap();
    assert!(status.success());
}
