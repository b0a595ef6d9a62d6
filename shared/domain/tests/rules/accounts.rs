//! Accounts: sign-up (lower-cased, checked usernames; taken ones conflict), sign-in (a
//! wrong password and an unknown user answer the same), single-use refresh tokens (a reuse
//! ends the session), sign-out (closes that session's connections), at most 20 sessions.
//!
//! Argon2 with the production parameters costs ~30 ms a hash here, so only three tests pay
//! it; the others sign in against accounts stored with a cheap Argon2id hash (verifying
//! uses the parameters the stored hash names, so the rule checked is the same).

use argon2::password_hash::PasswordHasher;
use chat_domain::accounts::{self, Credentials, MAX_SESSIONS, Session};
use chat_domain::memory::World;
use chat_domain::ports::{TokenError, Tokens, UserRecord};
use chat_domain::settings::{RateLimit, RateLimits};
use chat_domain::{App, ErrorCode};
use sha2::Digest;

use crate::*;

const PASSWORD: &str = "correct horse";

/// One source address for every refresh (an office, a carrier NAT).
const ADDRESS: &str = "ip:198.51.100.7";

fn credentials(username: &str, password: &str) -> Credentials {
    Credentials { username: username.into(), password: password.into() }
}

/// An Argon2id hash that takes microseconds to check.
fn cheap_hash(password: &str) -> String {
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let argon2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    argon2.hash_password(password.as_bytes()).unwrap().to_string()
}

/// A world where `name` has an account with [`PASSWORD`] (cheaply hashed).
async fn with_account(name: &str) -> (World, App) {
    let world = World::new().generous();
    let record = UserRecord { user_id: user(name), password_hash: cheap_hash(PASSWORD), created_at: World::START_MS };
    assert!(world.users.create(&record).await.unwrap());
    let app = world.app();
    (world, app)
}

async fn sign_in(app: &App, name: &str) -> Session {
    accounts::sign_in(app, credentials(name, PASSWORD), "ip:10.0.0.1").await.unwrap()
}

/// The session an access token belongs to.
fn sid(world: &World, session: &Session) -> String {
    world.tokens.check(&session.access_token).unwrap().session.expect("tokens of a session")
}

#[tokio::test]
async fn signing_up_stores_a_lower_cased_account_and_starts_a_session() {
    let world = World::new().generous();
    let app = world.app();
    let session = accounts::sign_up(&app, credentials(" Alice ", PASSWORD)).await.unwrap();
    assert_eq!(session.user_id, user("alice"));
    let record = app.users().get(&user("alice")).await.unwrap().expect("stored");
    assert!(record.password_hash.starts_with("$argon2id$") && !record.password_hash.contains(PASSWORD));
    let verified = world.tokens.check(&session.access_token).unwrap();
    assert_eq!(verified.user, user("alice"));
    assert_eq!(world.sessions.live(&user("alice")), vec![verified.session.unwrap()]);
}

#[tokio::test]
async fn a_malformed_username_is_refused_and_nothing_is_stored() {
    let world = World::new().generous();
    let app = world.app();
    for bad in ["al", "_alice", "al ice", "alice#1", &"a".repeat(33)] {
        let err = accounts::sign_up(&app, credentials(bad, PASSWORD)).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest, "{bad:?}");
    }
    assert!(app.users().existing(&[user("al"), user("alice")]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_short_password_is_refused_and_nothing_is_stored() {
    let world = World::new().generous();
    let app = world.app();
    let err = accounts::sign_up(&app, credentials("alice", "1234567")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert!(app.users().get(&user("alice")).await.unwrap().is_none());
}

#[tokio::test]
async fn a_taken_username_is_a_conflict_whatever_its_case() {
    let (world, app) = with_account("alice").await;
    let before = app.users().get(&user("alice")).await.unwrap();
    let err = accounts::sign_up(&app, credentials("ALICE", "another password")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    assert_eq!(app.users().get(&user("alice")).await.unwrap(), before, "the account is untouched");
    assert!(world.sessions.live(&user("alice")).is_empty());
}

#[tokio::test]
async fn the_right_password_signs_in_with_tokens_of_a_new_session() {
    let (world, app) = with_account("alice").await;
    let session = accounts::sign_in(&app, credentials("ALICE", PASSWORD), "ip:10.0.0.1").await.unwrap();
    assert_eq!(session.user_id, user("alice"));
    assert_eq!(world.sessions.live(&user("alice")), vec![sid(&world, &session)]);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_or_malformed_user_get_the_same_answer() {
    let (_world, app) = with_account("alice").await;
    let answer = |err: chat_domain::ChatError| (err.code(), err.to_string());
    let wrong = answer(accounts::sign_in(&app, credentials("alice", "wrong password"), "ip:1").await.unwrap_err());
    let unknown = answer(accounts::sign_in(&app, credentials("nobody", PASSWORD), "ip:1").await.unwrap_err());
    let malformed = answer(accounts::sign_in(&app, credentials("#?", PASSWORD), "ip:1").await.unwrap_err());
    assert_eq!(wrong.0, ErrorCode::Unauthorized);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, malformed);
}

#[tokio::test]
async fn sign_in_attempts_past_the_limit_are_refused_even_with_the_right_password() {
    let (world, _app) = with_account("alice").await;
    let world = world.with_settings(|s| s.rate_limits = RateLimits::uniform(RateLimit { count: 1, window_ms: 60_000 }));
    let app = world.app();
    accounts::sign_in(&app, credentials("alice", "wrong password"), "ip:1").await.unwrap_err();
    let err = accounts::sign_in(&app, credentials("alice", PASSWORD), "ip:1").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited);
    assert!(world.sessions.live(&user("alice")).is_empty());
}

#[tokio::test]
async fn an_account_tried_from_many_addresses_is_slowed_down() {
    let (world, _app) = with_account("alice").await;
    let world = world.with_settings(|s| s.rate_limits = RateLimits::uniform(RateLimit { count: 1, window_ms: 60_000 }));
    let app = world.app();
    for i in 0..5 {
        let err = accounts::sign_in(&app, credentials("alice", "guess"), &format!("ip:10.0.0.{i}")).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unauthorized);
    }
    let err = accounts::sign_in(&app, credentials("alice", PASSWORD), "ip:10.0.0.99").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited, "five times the per-address limit per account");
}

#[tokio::test]
async fn a_refresh_gives_the_next_tokens_of_the_same_session() {
    let (world, app) = with_account("alice").await;
    let first = sign_in(&app, "alice").await;
    let session = sid(&world, &first);
    world.clock.advance(HOUR);
    let next = accounts::refresh(&app, &first.refresh_token, ADDRESS).await.unwrap();
    assert_eq!(sid(&world, &next), session);
    assert_ne!(next.refresh_token, first.refresh_token);
    assert_eq!(world.sessions.live(&user("alice")).len(), 1);
}

#[tokio::test]
async fn refreshes_are_limited_per_session_so_users_behind_one_address_never_limit_each_other() {
    let (world, _app) = with_account("alice").await;
    let world = world.with_settings(|s| {
        s.rate_limits.refreshes = RateLimit { count: 3, window_ms: HOUR };
        s.rate_limits.refresh_failures = RateLimit { count: 2, window_ms: HOUR };
    });
    let app = world.app();
    // Four devices behind one address: 12 refreshes, four times a session's limit, all fine.
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(sign_in(&app, "alice").await);
    }
    let counted = world.counters.total();
    for _ in 0..3 {
        for session in &mut sessions {
            *session = accounts::refresh(&app, &session.refresh_token, ADDRESS).await.unwrap();
        }
    }
    // A fourth refresh of one session in the hour is refused, and its token is not spent:
    let err = accounts::refresh(&app, &sessions[0].refresh_token, ADDRESS).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited);
    assert_eq!(world.sessions.live(&user("alice")).len(), 4, "no session ends for it");
    // it works in the next window, and the count starts again there.
    world.clock.advance(HOUR);
    let mut next = accounts::refresh(&app, &sessions[0].refresh_token, ADDRESS).await.unwrap();
    for _ in 0..2 {
        next = accounts::refresh(&app, &next.refresh_token, ADDRESS).await.unwrap();
    }
    let err = accounts::refresh(&app, &next.refresh_token, ADDRESS).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited);
    assert_eq!(world.counters.total(), counted, "valid refreshes write no counter");
}

#[tokio::test]
async fn refused_refreshes_are_limited_per_address_before_any_token_is_looked_up() {
    let (world, _app) = with_account("alice").await;
    let world = world.with_settings(|s| s.rate_limits.refresh_failures = RateLimit { count: 2, window_ms: HOUR });
    let app = world.app();
    let session = sign_in(&app, "alice").await;
    let counted = world.counters.total();
    for guess in ["guess-1", "guess-2"] {
        let err = accounts::refresh(&app, guess, ADDRESS).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unauthorized);
    }
    // Over the limit, that address is refused even with a real token, which stays unspent;
    let err = accounts::refresh(&app, "guess-3", ADDRESS).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited);
    let err = accounts::refresh(&app, &session.refresh_token, ADDRESS).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::RateLimited);
    // from another address it works.
    accounts::refresh(&app, &session.refresh_token, "ip:203.0.113.9").await.unwrap();
    assert_eq!(world.counters.total(), counted + 2, "only the two refused refreshes were counted");
}

#[tokio::test]
async fn a_refresh_token_works_once_and_its_reuse_ends_the_session() {
    let (world, app) = with_account("alice").await;
    let stolen = sign_in(&app, "alice").await;
    let other = sign_in(&app, "alice").await;
    let (sid, other_sid) = (sid(&world, &stolen), sid(&world, &other));
    connect_in_session(&app, "alice", "phone", &sid).await;
    connect_in_session(&app, "alice", "laptop", &other_sid).await;
    let owners = accounts::refresh(&app, &stolen.refresh_token, ADDRESS).await.unwrap();
    let err = accounts::refresh(&app, &stolen.refresh_token, ADDRESS).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    assert_eq!(world.sessions.live(&user("alice")), vec![other_sid], "only that session ends");
    assert_eq!(world.poster.closed(), vec![conn("phone")]);
    let err = accounts::refresh(&app, &owners.refresh_token, ADDRESS).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized, "the thief's and the owner's copies both stop");
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let (world, app) = with_account("alice").await;
    let session = sign_in(&app, "alice").await;
    world.clock.advance(session.refresh_expires_in * 1000);
    let err = accounts::refresh(&app, &session.refresh_token, ADDRESS).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized);
}

#[tokio::test]
async fn an_unknown_refresh_token_is_refused() {
    let (_world, app) = with_account("alice").await;
    let err = accounts::refresh(&app, "made-up", ADDRESS).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized);
}

#[tokio::test]
async fn the_refresh_token_of_a_signed_out_session_is_refused() {
    let (world, app) = with_account("alice").await;
    let session = sign_in(&app, "alice").await;
    accounts::sign_out(&app, &user("alice"), Some(&sid(&world, &session)), false).await.unwrap();
    let err = accounts::refresh(&app, &session.refresh_token, ADDRESS).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthorized);
}

#[tokio::test]
async fn a_refresh_token_from_before_sessions_starts_one() {
    let (world, app) = with_account("alice").await;
    let hash = hex::encode(sha2::Sha256::digest(b"legacy-token"));
    world.sessions.put_sessionless_refresh(&hash, &user("alice"), app.now_ms() + DAY);
    let session = accounts::refresh(&app, "legacy-token", ADDRESS).await.unwrap();
    assert_eq!(world.sessions.live(&user("alice")), vec![sid(&world, &session)]);
}

#[tokio::test]
async fn signing_out_closes_this_sessions_connections_only() {
    let (world, app) = with_account("alice").await;
    let phone = sign_in(&app, "alice").await;
    let laptop = sign_in(&app, "alice").await;
    connect_in_session(&app, "alice", "phone-1", &sid(&world, &phone)).await;
    connect_in_session(&app, "alice", "phone-2", &sid(&world, &phone)).await;
    connect_in_session(&app, "alice", "laptop-1", &sid(&world, &laptop)).await;
    let closed = accounts::sign_out(&app, &user("alice"), Some(&sid(&world, &phone)), false).await.unwrap();
    assert_eq!(closed, 2);
    let mut gone = world.poster.closed();
    gone.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(gone, vec![conn("phone-1"), conn("phone-2")]);
    assert_eq!(world.sessions.live(&user("alice")), vec![sid(&world, &laptop)]);
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session_and_closes_every_connection() {
    let (world, app) = with_account("alice").await;
    let phone = sign_in(&app, "alice").await;
    connect_in_session(&app, "alice", "phone-1", &sid(&world, &phone)).await;
    connect(&app, "alice", "no-session").await;
    let closed = accounts::sign_out(&app, &user("alice"), None, true).await.unwrap();
    assert_eq!(closed, 2);
    assert!(world.sessions.live(&user("alice")).is_empty());
}

#[tokio::test]
async fn a_token_of_no_session_signs_out_only_everywhere() {
    let (world, app) = with_account("alice").await;
    sign_in(&app, "alice").await;
    let err = accounts::sign_out(&app, &user("alice"), None, false).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert_eq!(world.sessions.live(&user("alice")).len(), 1);
}

#[tokio::test]
async fn the_twenty_first_session_ends_the_oldest_and_closes_its_connections() {
    let (world, app) = with_account("alice").await;
    let oldest = sign_in(&app, "alice").await;
    let oldest = sid(&world, &oldest);
    connect_in_session(&app, "alice", "old-device", &oldest).await;
    for i in 1..MAX_SESSIONS {
        world.clock.advance(1);
        app.sessions().start(&user("alice"), &format!("s{i:02}"), app.now_ms()).await.unwrap();
    }
    assert_eq!(world.sessions.live(&user("alice")).len(), MAX_SESSIONS);
    world.clock.advance(1);
    let newest = sign_in(&app, "alice").await;
    let live = world.sessions.live(&user("alice"));
    assert_eq!(live.len(), MAX_SESSIONS);
    assert!(!live.contains(&oldest) && live.contains(&sid(&world, &newest)));
    assert_eq!(world.poster.closed(), vec![conn("old-device")]);
}

#[tokio::test]
async fn an_access_token_names_its_user_and_session_until_it_expires() {
    let (world, app) = with_account("alice").await;
    let session = sign_in(&app, "alice").await;
    assert_eq!(session.expires_in, app.settings.access_token_ttl_s);
    let verified = world.tokens.check(&session.access_token).unwrap();
    assert_eq!((verified.user, verified.session.is_some()), (user("alice"), true));
    world.clock.advance(session.expires_in * 1000 - 1_000);
    assert!(world.tokens.check(&session.access_token).is_ok());
    world.clock.advance(1_000);
    assert_eq!(world.tokens.check(&session.access_token), Err(TokenError::Expired));
    assert_eq!(world.tokens.check("mem:alice"), Err(TokenError::Invalid));
    assert_eq!(world.tokens.check("not a token"), Err(TokenError::Invalid));
}

#[tokio::test]
async fn a_password_longer_than_any_stored_one_never_matches_a_stored_one() {
    // The longest password sign-up takes, stored; then the same with more after it.
    let longest = "p".repeat(accounts::MAX_PASSWORD_BYTES);
    let world = World::new().generous();
    let record =
        UserRecord { user_id: user("alice"), password_hash: cheap_hash(&longest), created_at: World::START_MS };
    assert!(world.users.create(&record).await.unwrap());
    let app = world.app();
    assert!(accounts::sign_in(&app, credentials("alice", &longest), "ip:10.0.0.1").await.is_ok());
    let longer = format!("{longest}and more");
    let refused = accounts::sign_in(&app, credentials("alice", &longer), "ip:10.0.0.1").await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Unauthorized);
}
