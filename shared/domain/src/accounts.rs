//! Sign up, sign in and refresh: Argon2id password hashes, HS256 access tokens, and
//! single-use refresh tokens stored (hashed) in the Users table.

use std::sync::OnceLock;

pub use crate::http::{Credentials, Session};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::app::App;
use crate::error::{ChatError, PortError};
use crate::model::UserId;
use crate::ports::{Refresh, SessionRefreshes, UserRecord};

pub const MIN_PASSWORD_CHARS: usize = 8;
/// Argon2 handles long inputs, but nobody needs more, and it bounds the work per request.
pub const MAX_PASSWORD_BYTES: usize = 1024;
pub const MIN_USERNAME_CHARS: usize = 3;
pub const MAX_USERNAME_CHARS: usize = 32;

/// OWASP's Argon2id parameters: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Usernames are user ids: 3-32 of `a-z 0-9 _ . -`, starting with a letter or digit,
/// compared without case (stored lower-case).
pub fn parse_username(raw: &str) -> Result<UserId, ChatError> {
    let name = raw.trim().to_lowercase();
    let valid = (MIN_USERNAME_CHARS..=MAX_USERNAME_CHARS).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if !valid {
        return Err(ChatError::InvalidRequest(format!(
            "username must be {MIN_USERNAME_CHARS}-{MAX_USERNAME_CHARS} characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit"
        )));
    }
    Ok(UserId::parse(name)?)
}

fn check_password_policy(password: &str) -> Result<(), ChatError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ChatError::InvalidRequest(format!("password must be at least {MIN_PASSWORD_CHARS} characters")));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ChatError::InvalidRequest(format!("password must be at most {MAX_PASSWORD_BYTES} bytes")));
    }
    Ok(())
}

/// Hashing takes ~20-50 ms of CPU: off the async threads.
async fn hash_password(password: String) -> Result<String, ChatError> {
    tokio::task::spawn_blocking(move || argon2().hash_password(password.as_bytes()).map(|h| h.to_string()))
        .await
        .map_err(|e| PortError::backend("the password hashing task", e))?
        .map_err(|e| PortError::backend("Argon2 hashing", e.to_string()).into())
}

async fn password_matches(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| argon2().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A hash to check against when the user does not exist, so that a wrong username costs
/// the same time as a wrong password. Made once per cold start.
async fn decoy_hash() -> String {
    static DECOY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DECOY.get() {
        return hash.clone();
    }
    let hash = hash_password("decoy password that matches nothing".into()).await.unwrap_or_default();
    DECOY.get_or_init(|| hash).clone()
}

/// Devices (sessions) one user can be signed in on; signing in on one more ends the oldest.
pub const MAX_SESSIONS: usize = 20;

/// A new session (sign-up, sign-in) or the next tokens of one (`sid`, refresh).
async fn new_session(
    app: &App,
    user: UserId,
    sid: Option<String>,
    refreshes: SessionRefreshes,
) -> Result<Session, ChatError> {
    let now = app.now_ms();
    let sid = match sid {
        Some(sid) => sid,
        None => {
            let sid = hex::encode(rand::random::<[u8; 16]>());
            let mut live = app.sessions().start(&user, &sid, now).await?;
            if live.len() > MAX_SESSIONS {
                live.sort();
                let (_, oldest) = live.remove(0);
                app.sessions().end(&user, Some(&oldest)).await?;
                info!(%user, session = %oldest, "oldest session ended: too many devices");
                crate::presence::close_connections(app, &user, Some(&oldest)).await?;
            }
            sid
        }
    };
    let access_token = app.tokens()?.issue_access(&user, Some(&sid), now / 1000, app.settings.access_token_ttl_s);
    let refresh_token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let expires = now + app.settings.refresh_token_ttl_s * 1000;
    app.sessions().put_refresh(&refresh_hash(&refresh_token), &user, &sid, expires, refreshes).await?;
    Ok(Session {
        user_id: user,
        access_token,
        expires_in: app.settings.access_token_ttl_s,
        refresh_token,
        refresh_expires_in: app.settings.refresh_token_ttl_s,
    })
}

/// Only the hash is stored: a leaked table does not leak sessions.
fn refresh_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub async fn sign_up(app: &App, credentials: Credentials) -> Result<Session, ChatError> {
    let user = parse_username(&credentials.username)?;
    check_password_policy(&credentials.password)?;
    let record = UserRecord {
        user_id: user.clone(),
        password_hash: hash_password(credentials.password).await?,
        created_at: app.now_ms(),
    };
    if !app.users().create(&record).await? {
        return Err(ChatError::Conflict(format!("username {user} is taken")));
    }
    info!(%user, "signed up");
    new_session(app, user, None, SessionRefreshes::default()).await
}

/// Checks a password. Attempts count before any hashing, per source address, per account,
/// and per account from this address (the tightest), so a flood costs no Argon2 work. The
/// per-account count alone is five times looser: an attacker on many addresses can slow
/// the owner's sign-in but the owner's refresh tokens keep working.
pub async fn sign_in(app: &App, credentials: Credentials, source: &str) -> Result<Session, ChatError> {
    use crate::limits::{Action, check};
    let refused = || ChatError::Unauthorized("wrong username or password".into());
    // A malformed username is just another wrong username: same answer, same time.
    let user = parse_username(&credentials.username).ok();
    let account = user.as_ref().map(UserId::as_str).unwrap_or("-");
    check(app, Action::SignIn, &format!("{account}@{source}")).await?;
    check(app, Action::SignIn, source).await?;
    let mut per_account = app.settings.rate_limits.sign_ins;
    per_account.count = per_account.count.saturating_mul(5);
    if let Some(retry_after_ms) = crate::limits::shared_hit(app, "signin-account", account, per_account).await? {
        return Err(ChatError::RateLimited { retry_after_ms });
    }
    let record = match &user {
        Some(user) => app.users().get(user).await?,
        None => None,
    };
    let (hash, known) = match record {
        Some(record) => (record.password_hash, true),
        None => (decoy_hash().await, false),
    };
    // Bounded work for any input; one character more than a stored password can have, so a
    // longer one never matches by being cut to a stored one's length.
    let password = credentials.password.chars().take(MAX_PASSWORD_BYTES + 1).collect();
    if !password_matches(password, hash).await || !known {
        return Err(refused());
    }
    let user = user.ok_or_else(refused)?;
    info!(%user, "signed in");
    new_session(app, user, None, SessionRefreshes::default()).await
}

/// Single-use refresh: the next tokens of the same session. A token used a second time
/// ends its whole session (the thief's copy and the owner's both stop working).
///
/// Limited per session (`refreshes`, counted in the tokens themselves: no write of its own)
/// and, for tokens that are refused, per source address (`refresh_failures`), so users
/// sharing an address never limit each other.
pub async fn refresh(app: &App, refresh_token: &str, address: &str) -> Result<Session, ChatError> {
    crate::limits::check_refused_refreshes(app, address).await?;
    let refused = |why: &str| ChatError::Unauthorized(format!("refresh token is {why}"));
    let (quota, retry_after_ms) = crate::limits::session_refresh_quota(app);
    let taken = app.sessions().take_refresh(&refresh_hash(refresh_token), app.now_ms(), quota).await?;
    if matches!(taken, Refresh::Reused { .. } | Refresh::Invalid) {
        crate::limits::count_refused_refresh(app, address).await?;
    }
    match taken {
        Refresh::Fresh { user, sid: Some(sid), refreshes } => {
            if !app.sessions().is_live(&user, &sid).await? {
                return Err(refused("of a session that was signed out"));
            }
            new_session(app, user, Some(sid), refreshes).await
        }
        // Issued before sessions existed: it starts one.
        Refresh::Fresh { user, sid: None, refreshes } => new_session(app, user, None, refreshes).await,
        Refresh::OverQuota => {
            crate::metrics::count(crate::limits::Action::Refresh.metric(), 1);
            Err(ChatError::RateLimited { retry_after_ms })
        }
        Refresh::Reused { user, sid } => {
            warn!(%user, "a refresh token was used twice: its session ends");
            if let Some(sid) = sid {
                app.sessions().end(&user, Some(&sid)).await?;
                crate::presence::close_connections(app, &user, Some(&sid)).await?;
            }
            Err(refused("used already; the session is ended"))
        }
        Refresh::Invalid => Err(refused("invalid or expired")),
    }
}

/// Signs out this session, or every session of the user: their refresh tokens stop
/// working, their access tokens stop opening connections, and their open connections are
/// closed. Answers how many connections were closed.
pub async fn sign_out(app: &App, user: &UserId, session: Option<&str>, everywhere: bool) -> Result<usize, ChatError> {
    let ending = if everywhere {
        None
    } else {
        Some(session.ok_or_else(|| {
            ChatError::InvalidRequest("this token belongs to no session; sign out everywhere instead".into())
        })?)
    };
    app.sessions().end(user, ending).await?;
    let closed = crate::presence::close_connections(app, user, ending).await?;
    info!(%user, everywhere, closed, "signed out");
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(parse_username(" Alice ").unwrap().as_str(), "alice");
        assert!(parse_username("al").is_err());
        assert!(parse_username("_alice").is_err());
        assert!(parse_username("al ice").is_err());
        assert!(parse_username(&"a".repeat(33)).is_err());
    }

    #[tokio::test]
    async fn hashes_verify_and_do_not_contain_the_password() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(password_matches("correct horse".into(), hash.clone()).await);
        assert!(!password_matches("wrong horse".into(), hash).await);
    }
}
