//! Access tokens: HS256 JWTs with pinned algorithm, issuer, audience and expiry (the
//! domain's [`Tokens`] port).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use chat_domain::model::UserId;
pub use chat_domain::ports::{TokenError, Tokens, Verified};

use crate::config::TokenSettings;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    /// The session (device) the token was issued to; absent in tokens minted by operator
    /// tools (`local-gateway token`), which belong to no session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
}

/// Signs and checks tokens with one key. Build once per cold start.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl TokenKeys {
    pub fn new(settings: &TokenSettings) -> Self {
        // Only HS256 is accepted: a token that names another algorithm ("none", RS256 with
        // the secret as a public key) fails before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(settings.secret.as_bytes()),
            decoding: DecodingKey::from_secret(settings.secret.as_bytes()),
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
        }
    }

    /// A token for `user` valid from `now_s` for `ttl_s` seconds, of no session.
    pub fn issue(&self, user: &UserId, now_s: i64, ttl_s: i64) -> String {
        self.issue_for_session(user, None, now_s, ttl_s)
    }

    /// A token for `user`'s session `sid`: it stops opening connections once the session ends.
    pub fn issue_for_session(&self, user: &UserId, sid: Option<&str>, now_s: i64, ttl_s: i64) -> String {
        let claims = Claims {
            sub: user.as_str().to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now_s,
            exp: now_s + ttl_s,
            sid: sid.map(str::to_owned),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }

    /// The user a token speaks for. Expiry is checked against the system clock.
    pub fn verify(&self, token: &str) -> Result<UserId, TokenError> {
        self.verify_session(token).map(|v| v.user)
    }

    /// The user and the session a token speaks for.
    pub fn verify_session(&self, token: &str) -> Result<Verified, TokenError> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let user = UserId::parse(data.claims.sub).map_err(|_| TokenError::Invalid)?;
        Ok(Verified { user, session: data.claims.sid })
    }
}

impl Tokens for TokenKeys {
    fn issue_access(&self, user: &UserId, sid: Option<&str>, now_s: i64, ttl_s: i64) -> String {
        self.issue_for_session(user, sid, now_s, ttl_s)
    }

    fn check(&self, token: &str) -> Result<Verified, TokenError> {
        self.verify_session(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(secret: &str) -> TokenSettings {
        TokenSettings { secret: secret.into(), issuer: "chat".into(), audience: "chat".into() }
    }

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    #[test]
    fn a_fresh_token_names_its_user() {
        let keys = TokenKeys::new(&settings("k".repeat(32).as_str()));
        let alice = UserId::parse("alice").unwrap();
        assert_eq!(keys.verify(&keys.issue(&alice, now(), 60)).unwrap(), alice);
    }

    #[test]
    fn refuses_expired_foreign_and_mangled_tokens() {
        let keys = TokenKeys::new(&settings(&"k".repeat(32)));
        let other = TokenKeys::new(&settings(&"x".repeat(32)));
        let alice = UserId::parse("alice").unwrap();
        assert_eq!(keys.verify(&keys.issue(&alice, now() - 3600, 60)), Err(TokenError::Expired));
        assert_eq!(keys.verify(&other.issue(&alice, now(), 60)), Err(TokenError::Invalid));
        assert_eq!(keys.verify("not.a.token"), Err(TokenError::Invalid));
        let other_audience = TokenKeys::new(&TokenSettings { audience: "else".into(), ..settings(&"k".repeat(32)) });
        assert_eq!(keys.verify(&other_audience.issue(&alice, now(), 60)), Err(TokenError::Invalid));
    }

    #[test]
    fn refuses_the_none_algorithm() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let claims = b64.encode(format!(
            r#"{{"sub":"alice","iss":"chat","aud":"chat","iat":{0},"exp":{1}}}"#,
            now(),
            now() + 60
        ));
        let keys = TokenKeys::new(&settings(&"k".repeat(32)));
        assert_eq!(keys.verify(&format!("{header}.{claims}.")), Err(TokenError::Invalid));
    }
}
