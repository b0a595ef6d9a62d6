//! The signed-in session, kept in a file (mode 0600) between commands: tokens, and the
//! endpoints it belongs to.

use std::path::{Path, PathBuf};

use chat_protocol::ErrorCode;
use chat_protocol::model::UserId;
use serde::{Deserialize, Serialize};

use crate::api::{Api, Error};

/// Refresh the access token when it has less than this left.
const REFRESH_MARGIN_MS: i64 = 60_000;

/// The session file (this machine's, never on the wire): the tokens with the times they
/// expire, and the endpoints they belong to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub user_id: UserId,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at_ms: i64,
    pub refresh_expires_at_ms: i64,
    /// The endpoints it was made with: later commands use them unless told otherwise.
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default)]
    pub ws_url: Option<String>,
}

impl Session {
    /// From what sign up, sign in and refresh answer.
    pub fn from_answer(answer: chat_protocol::http::Session) -> Self {
        let now = now_ms();
        Self {
            user_id: answer.user_id,
            access_token: answer.access_token,
            refresh_token: answer.refresh_token,
            expires_at_ms: now + answer.expires_in * 1000,
            refresh_expires_at_ms: now + answer.refresh_expires_in * 1000,
            api_url: None,
            ws_url: None,
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `$XDG_CONFIG_HOME/serverless-chat/session.json`, else under `~/.config`.
pub fn default_path() -> PathBuf {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config.join("serverless-chat").join("session.json")
}

pub struct Store {
    path: PathBuf,
    pub session: Option<Session>,
}

impl Store {
    pub fn load(path: PathBuf) -> Result<Self, Error> {
        let session =
            match std::fs::read_to_string(&path) {
                Ok(text) => Some(serde_json::from_str(&text).map_err(|e| {
                    Error::Usage(format!("{} is not a session file ({e}); sign in again", path.display()))
                })?),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => return Err(err.into()),
            };
        Ok(Self { path, session })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn set(&mut self, session: Session) -> Result<(), Error> {
        self.session = Some(session);
        self.save()
    }

    pub fn clear(&mut self) -> Result<(), Error> {
        self.session = None;
        match std::fs::remove_file(&self.path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    fn save(&self) -> Result<(), Error> {
        let Some(session) = &self.session else { return Ok(()) };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Written whole under another name, then renamed: a crash never leaves half a file.
        let temporary = self.path.with_extension("tmp");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut file =
                std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
            file.write_all(serde_json::to_string_pretty(session).expect("sessions serialise").as_bytes())?;
        }
        std::fs::rename(&temporary, &self.path)?;
        Ok(())
    }

    pub fn user_id(&self) -> Result<&UserId, Error> {
        self.session.as_ref().map(|s| &s.user_id).ok_or(Error::NotSignedIn)
    }

    pub fn can_refresh(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.refresh_expires_at_ms > now_ms())
    }

    /// A valid access token, refreshed first when it is about to expire.
    pub async fn access_token(&mut self, api: &Api) -> Result<String, Error> {
        let session = self.session.as_ref().ok_or(Error::NotSignedIn)?;
        if session.expires_at_ms - now_ms() < REFRESH_MARGIN_MS {
            self.refresh(api).await?;
        }
        Ok(self.session.as_ref().ok_or(Error::NotSignedIn)?.access_token.clone())
    }

    /// Trades the (single-use) refresh token for a new session and saves it. Another
    /// `chat` of this session may have traded it already (and a refresh token used twice
    /// ends the whole session): then the newer tokens it saved are taken instead. When
    /// the file is gone (`chat signout`), this session is over here too.
    pub async fn refresh(&mut self, api: &Api) -> Result<(), Error> {
        let mut old = self.session.clone().ok_or(Error::NotSignedIn)?;
        match Store::load(self.path.clone())?.session {
            None => {
                self.session = None;
                return Err(Error::NotSignedIn);
            }
            Some(saved) if saved.user_id == old.user_id && saved.refresh_token != old.refresh_token => {
                if saved.expires_at_ms - now_ms() >= REFRESH_MARGIN_MS {
                    self.session = Some(saved);
                    return Ok(());
                }
                old = saved;
            }
            Some(_) => {}
        }
        match api.refresh(&old.refresh_token).await {
            Ok(mut fresh) => {
                fresh.api_url = old.api_url;
                fresh.ws_url = old.ws_url;
                self.set(fresh)
            }
            Err(err) if err.code() == Some(ErrorCode::Unauthorized) => {
                self.clear()?;
                Err(Error::NotSignedIn)
            }
            Err(err) => Err(err),
        }
    }
}
