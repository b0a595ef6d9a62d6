//! Sign up, sign in, refresh, and tokens refused everywhere.

use e2e::{Client, ConnectError, Stack};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_who_signed_up_can_chat() {
    let stack = Stack::start().await;
    stack.sign_up("Alice", "correct horse battery").await;
    stack.sign_up("bob", "another good password").await;

    let (status, alice) =
        stack.post("/auth/signin", None, &json!({"username": "alice", "password": "correct horse battery"})).await;
    assert_eq!(status, 200, "{alice}");
    assert_eq!(alice["userId"], "alice", "usernames are case-insensitive");
    let alice_token = alice["accessToken"].as_str().unwrap();
    let (_, bob) =
        stack.post("/auth/signin", None, &json!({"username": "bob", "password": "another good password"})).await;
    let bob_token = bob["accessToken"].as_str().unwrap();

    let (status, channel) = stack.post("/channels/direct", Some(alice_token), &json!({"userId": "bob"})).await;
    assert_eq!(status, 200, "{channel}");
    let channel_id = channel["channelId"].as_str().unwrap();
    let (status, _) = stack.post(&format!("/invitations/{channel_id}/accept"), Some(bob_token), &json!({})).await;
    assert_eq!(status, 200, "bob accepts alice's direct channel");

    let mut alice_ws = stack.connect_with_token(alice_token).await;
    let mut bob_ws = stack.connect_with_token(bob_token).await;
    alice_ws.send_message(channel_id, "hello-1", "hi Bob, I just signed up").await;
    assert_eq!(alice_ws.recv().await["type"], "ack");
    let received = bob_ws.recv().await;
    assert_eq!(received["message"]["text"], "hi Bob, I just signed up");
    assert_eq!(received["message"]["authorId"], "alice");

    let (status, list) = stack.get("/channels", Some(bob_token)).await;
    assert_eq!(status, 200);
    assert_eq!(list["channels"][0]["channelId"], channel_id);
    assert_eq!(list["channels"][0]["peer"], "alice");
    assert_eq!(list["channels"][0]["seq"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_and_sign_in_refuse_what_they_should() {
    let stack = Stack::start().await;
    stack.sign_up("carol", "a long enough password").await;

    let (status, body) =
        stack.post("/auth/signup", None, &json!({"username": "CAROL", "password": "something else 1"})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("conflict")), "duplicate: {body}");
    let (status, body) = stack.post("/auth/signup", None, &json!({"username": "dave", "password": "short"})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_request")), "weak password: {body}");
    let (status, _) = stack.post("/auth/signup", None, &json!({"username": "x", "password": "long enough pw"})).await;
    assert_eq!(status, 400, "username too short");
    let (status, _) =
        stack.post("/auth/signup", None, &json!({"username": "bad name", "password": "long enough pw"})).await;
    assert_eq!(status, 400, "username with a space");
    let (status, _) = stack.post("/auth/signup", None, &json!({"password": "long enough pw"})).await;
    assert_eq!(status, 400, "missing username");

    let (wrong_password_status, wrong_password) =
        stack.post("/auth/signin", None, &json!({"username": "carol", "password": "not her password"})).await;
    let (unknown_status, unknown_user) =
        stack.post("/auth/signin", None, &json!({"username": "nobody", "password": "not her password"})).await;
    assert_eq!(wrong_password_status, 401);
    assert_eq!(unknown_status, 401);
    assert_eq!(wrong_password, unknown_user, "a wrong username and a wrong password look the same");
    assert!(wrong_password.get("accessToken").is_none());

    // What is stored is an Argon2id hash, not the password.
    let record = stack.app.users().get(&chat_domain::model::UserId::parse("carol").unwrap()).await.unwrap().unwrap();
    assert!(record.password_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", record.password_hash);
    assert!(!record.password_hash.contains("a long enough password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_renew_a_session_once() {
    let stack = Stack::start().await;
    let session = stack.sign_up("erin", "erin's password").await;
    let refresh_token = session["refreshToken"].as_str().unwrap();

    let (status, renewed) = stack.post("/auth/refresh", None, &json!({"refreshToken": refresh_token})).await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(renewed["userId"], "erin");
    assert_ne!(renewed["refreshToken"], session["refreshToken"]);
    let _ws = stack.connect_with_token(renewed["accessToken"].as_str().unwrap()).await;

    // Each token renews once, in a chain (a spent one used again ends the session:
    // abuse::a_refresh_token_used_twice_ends_its_whole_session).
    let (status, again) = stack.post("/auth/refresh", None, &json!({"refreshToken": renewed["refreshToken"]})).await;
    assert_eq!(status, 200);
    let (status, _) = stack.post("/auth/refresh", None, &json!({"refreshToken": again["refreshToken"]})).await;
    assert_eq!(status, 200);
    let (status, _) = stack.post("/auth/refresh", None, &json!({"refreshToken": refresh_token})).await;
    assert_eq!(status, 401, "the first token is spent");
    let (status, _) = stack.post("/auth/refresh", None, &json!({"refreshToken": "made-up"})).await;
    assert_eq!(status, 401);
}

/// Tokens that must never get in: (what is wrong, token).
fn bad_tokens(stack: &Stack) -> Vec<(&'static str, String)> {
    use chat_aws::config::{DEFAULT_TOKEN_AUDIENCE, DEFAULT_TOKEN_ISSUER, TokenSettings};
    use chat_aws::tokens::TokenKeys;
    let alice = chat_domain::model::UserId::parse("alice").unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let keys = |secret: &str, audience: &str| {
        TokenKeys::new(&TokenSettings {
            secret: secret.into(),
            issuer: DEFAULT_TOKEN_ISSUER.into(),
            audience: audience.into(),
        })
    };
    let good = stack.token("alice");
    let (header, rest) = good.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    // Same header and signature, payload changed to another user.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims: Value = serde_json::from_slice(&b64.decode(payload).unwrap()).unwrap();
    let mut tampered_claims = claims.clone();
    tampered_claims["sub"] = json!("mallory");
    let tampered = format!("{header}.{}.{signature}", b64.encode(tampered_claims.to_string()));
    let none = format!("{}.{payload}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#));
    vec![
        ("expired", stack.token_valid_for("alice", -120)),
        ("tampered", tampered),
        ("alg none", none),
        (
            "wrong secret",
            keys("another-deployment-signing-key-0123456789", DEFAULT_TOKEN_AUDIENCE).issue(&alice, now, 600),
        ),
        (
            "wrong audience",
            keys("end-to-end-tests-only-signing-key-0123456789", "someone-else").issue(&alice, now, 600),
        ),
        ("garbage", "not-a-token".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_at_connect_and_at_every_http_route() {
    let stack = Stack::start().await;
    stack.sign_up("alice", "alice's password").await;
    stack.create_channel("c-1", &["alice", "bob"]).await;
    for (what, token) in bad_tokens(&stack) {
        match Client::connect(&stack.websocket_url(), &format!("token={token}")).await {
            Err(ConnectError::Refused(401)) => {}
            other => panic!("{what} token at connect: {:?}", other.err()),
        }
        for route in local_gateway::routes::HTTP_ROUTES.iter().filter(|r| r.authorized) {
            let path = route.path.replace("{channelId}", "c-1").replace("{userId}", "bob");
            let method = reqwest::Method::from_bytes(route.method.as_bytes()).unwrap();
            let (status, _) = stack.request(method, &path, Some(&token), Some(&json!({}))).await;
            assert_eq!(status, 403, "{what} token at {} {path}", route.method);
            let method = reqwest::Method::from_bytes(route.method.as_bytes()).unwrap();
            let (status, _) = stack.request(method, &path, None, Some(&json!({}))).await;
            assert_eq!(status, 401, "no token at {} {path}", route.method);
        }
    }
    assert_eq!(stack.gateway.open_connections(), 0);
}
