//! Attacks, measured: what a flood of invitations costs its target on connect and on the
//! channel list, what a typing flood gets through, and what sign-in attempts past the limit
//! cost. The pass/fail side is tests/e2e/abuse.rs; this prints the figures.

use std::time::{Duration, Instant};

use chat_aws::config::RateLimits;
use chat_domain::model::UserId;
use e2e::{Stack, StackOptions};
use serde::Serialize;
use serde_json::json;

use crate::stats::Summary;

#[derive(Debug, Serialize)]
pub struct AbuseFigures {
    pub invitation_attempts: usize,
    pub pending_after: usize,
    pub declined: usize,
    /// Handshake ms (p50/p90) and AWS requests per connect: target, then someone with none.
    pub connect_ms_target: Summary,
    pub connect_ms_calm: Summary,
    pub connect_requests_target: u64,
    pub connect_requests_calm: u64,
    pub list_ms_target: Summary,
    pub list_ms_calm: Summary,
    pub typing_sent: usize,
    pub typing_refused: usize,
    pub typing_relayed: usize,
    pub typing_limit: String,
    pub typing_limit_writes: u64,
    pub signin_refused_ms: Summary,
    pub signin_checked_ms: Summary,
    pub signin_refused_account_reads: u64,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

pub async fn run(quick: bool, progress: &dyn Fn(&str)) -> AbuseFigures {
    // The default limits, but for connecting and listing, which the rounds below repeat.
    let plenty = chat_aws::config::RateLimit { count: 10_000, window_ms: 1_000 };
    let limits = RateLimits { connects: plenty, reads: plenty, ..RateLimits::default() };
    let stack = Stack::start_with(StackOptions { rate_limits: Some(limits), ..Default::default() }).await;
    stack.add_users(&["mallory", "target", "calm"]).await;
    let (mallory, target) = (UserId::parse("mallory").unwrap(), UserId::parse("target").unwrap());

    let attempts = if quick { 120 } else { 1000 };
    progress(&format!("abuse: {attempts} groups inviting one target"));
    let mut groups = Vec::new();
    for n in 0..attempts {
        let view =
            chat_domain::membership::create_group(&stack.app, &mallory, &format!("spam {n}"), vec![target.clone()])
                .await
                .expect("the group is made");
        groups.push(view.channel_id);
    }
    // She declines the first 50 she sees; the rest stay pending (the inbox keeps 100).
    let pending = chat_domain::consent::pending(&stack.app, &target).await.unwrap();
    let declined = pending.len().min(50);
    for invitation in &pending[..declined] {
        chat_domain::consent::decline(&stack.app, &target, &invitation.channel_id).await.unwrap();
    }
    let pending_after = chat_domain::consent::pending(&stack.app, &target).await.unwrap().len();

    progress("abuse: connect and channel list, target against a user with nothing");
    let rounds = if quick { 5 } else { 20 };
    let mut figures = Vec::new();
    for user in ["target", "calm"] {
        let (mut connect, mut list) = (Vec::new(), Vec::new());
        let mut requests = 0;
        for _ in 0..rounds {
            let before = stack.requests.total();
            let started = Instant::now();
            let client = stack.connect(user).await;
            connect.push(ms(started));
            requests = stack.requests.total() - before;
            let started = Instant::now();
            let (status, _) = stack.get("/channels", Some(&stack.token(user))).await;
            assert_eq!(status, 200);
            list.push(ms(started));
            client.close().await;
            stack.wait_for_open_connections(0).await;
        }
        figures.push((Summary::of(&connect), Summary::of(&list), requests));
    }
    let (calm, target_figures) = (figures.pop().unwrap(), figures.pop().unwrap());

    progress("abuse: a typing flood");
    stack.create_channel("dm", &["mallory", "target"]).await;
    let mut flooder = stack.connect("mallory").await;
    let mut watcher = stack.connect("target").await;
    let sent = if quick { 100 } else { 500 };
    let writes_before = stack.requests.snapshot().get("dynamodb.UpdateItem").copied().unwrap_or(0);
    for _ in 0..sent {
        flooder.send_json(&json!({"action": "typing", "channelId": "dm", "state": "start"})).await;
    }
    let mut refused = 0;
    while let Some(frame) = flooder.try_recv(Duration::from_millis(1500)).await {
        if frame["code"] == "rate_limited" {
            refused += 1;
        }
    }
    let mut relayed = 0;
    while watcher.try_recv(Duration::from_millis(500)).await.is_some() {
        relayed += 1;
    }
    let writes = stack.requests.snapshot().get("dynamodb.UpdateItem").copied().unwrap_or(0) - writes_before;
    let limit = RateLimits::default().frames;

    progress("abuse: sign-in attempts past the limit");
    stack.sign_up("owner", "the owner's password").await;
    let wrong = json!({"username": "owner", "password": "a wrong guess"});
    let (mut checked, mut refused_ms) = (Vec::new(), Vec::new());
    let mut reads = 0;
    for _ in 0..(RateLimits::default().sign_ins.count as usize + 10) {
        let before = stack.requests.snapshot().get("dynamodb.GetItem").copied().unwrap_or(0);
        let started = Instant::now();
        let (status, _) = stack.post("/auth/signin", None, &wrong).await;
        let took = ms(started);
        match status {
            401 => checked.push(took),
            429 => {
                refused_ms.push(took);
                reads += stack.requests.snapshot().get("dynamodb.GetItem").copied().unwrap_or(0) - before;
            }
            other => panic!("sign-in answered {other}"),
        }
    }

    AbuseFigures {
        invitation_attempts: attempts,
        pending_after,
        declined,
        connect_ms_target: target_figures.0,
        connect_ms_calm: calm.0,
        connect_requests_target: target_figures.2,
        connect_requests_calm: calm.2,
        list_ms_target: target_figures.1,
        list_ms_calm: calm.1,
        typing_sent: sent,
        typing_refused: refused,
        typing_relayed: relayed,
        typing_limit: format!("{} per {} ms", limit.count, limit.window_ms),
        typing_limit_writes: writes,
        signin_refused_ms: Summary::of(&refused_ms),
        signin_checked_ms: Summary::of(&checked),
        signin_refused_account_reads: reads,
    }
}

pub fn table(f: &AbuseFigures) -> String {
    let row = |k: &str, v: String| vec![k.to_owned(), v];
    let p = |s: &Summary| format!("{:.1} / {:.1} ms", s.p50, s.p90);
    let rows = vec![
        row(
            "invitations sent to one target / declined / pending after",
            format!("{} / {} / {}", f.invitation_attempts, f.declined, f.pending_after),
        ),
        row("connect p50/p90: target / nobody", format!("{} / {}", p(&f.connect_ms_target), p(&f.connect_ms_calm))),
        row(
            "AWS requests per connect: target / nobody",
            format!("{} / {}", f.connect_requests_target, f.connect_requests_calm),
        ),
        row("GET /channels p50/p90: target / nobody", format!("{} / {}", p(&f.list_ms_target), p(&f.list_ms_calm))),
        row(
            &format!("typing frames sent / refused / relayed (limit {})", f.typing_limit),
            format!("{} / {} / {}", f.typing_sent, f.typing_refused, f.typing_relayed),
        ),
        row("DynamoDB writes to count the typing flood", f.typing_limit_writes.to_string()),
        row(
            "sign-in p50/p90: checked (Argon2) / refused by the limit",
            format!("{} / {}", p(&f.signin_checked_ms), p(&f.signin_refused_ms)),
        ),
        row("account reads by refused sign-ins", f.signin_refused_account_reads.to_string()),
    ];
    crate::report::table(&["abuse", "figure"], &rows)
}
