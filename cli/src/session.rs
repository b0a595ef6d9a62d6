//! The signed-in session, kept in a file (mode 0600) between commands: tokens, the
//! endpoints it belongs to, and the presence choices made with `chat status`.

use std::path::{Path, PathBuf};

use chat_protocol::ErrorCode;
use chat_protocol::frames::{ChosenState, ClientFrame, CustomStatus, LastSeenTo};
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
    #[serde(default, skip_serializing_if = "PresenceChoices::is_default")]
    pub presence: PresenceChoices,
}

/// The presence choices made with `chat status` on this device. The server forgets them
/// about 2 hours after the user was last connected, so every connection sends them again
/// first ([`PresenceChoices::frames`]). The defaults (online, last seen shown to contacts,
/// no custom status) are not kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceChoices {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ChosenState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<LastSeenTo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_status: Option<CustomStatus>,
}

impl PresenceChoices {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// What is kept of these choices: the defaults are dropped, and a custom status past
    /// its `expiresAt`.
    pub fn kept(self, now_ms: i64) -> Self {
        Self {
            state: self.state.filter(|s| *s != ChosenState::Online),
            last_seen: self.last_seen.filter(|l| *l != LastSeenTo::Contacts),
            custom_status: self.custom_status.filter(|c| c.shows_at(now_ms)),
        }
    }

    /// The frames that tell the server these choices again (none for the defaults; a
    /// custom status that lapsed is not sent).
    pub fn frames(&self, now_ms: i64) -> Vec<ClientFrame> {
        let kept = self.clone().kept(now_ms);
        let mut frames = Vec::new();
        if kept.state.is_some() || kept.last_seen.is_some() {
            frames.push(ClientFrame::SetPresence { state: kept.state, last_seen: kept.last_seen });
        }
        if let Some(CustomStatus { text, emoji, expires_at }) = kept.custom_status {
            frames.push(ClientFrame::SetStatus { text, emoji, expires_at });
        }
        frames
    }
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
            presence: PresenceChoices::default(),
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

    /// The session as the file has it now when it is this user's (another `chat` may have
    /// saved newer tokens or presence choices since this one loaded it).
    fn on_disk(&self) -> Option<Session> {
        let user = &self.session.as_ref()?.user_id;
        Store::load(self.path.clone()).ok()?.session.filter(|s| s.user_id == *user)
    }

    /// The presence choices of this session, as last saved by any `chat`.
    pub fn presence_choices(&self) -> PresenceChoices {
        match self.on_disk() {
            Some(saved) => saved.presence,
            None => self.session.as_ref().map(|s| s.presence.clone()).unwrap_or_default(),
        }
    }

    /// Keeps the presence choices (written into the file as it is now, so that tokens
    /// another `chat` saved meanwhile are not lost).
    pub fn set_presence_choices(&mut self, choices: PresenceChoices) -> Result<(), Error> {
        let mut session = self.on_disk().or_else(|| self.session.clone()).ok_or(Error::NotSignedIn)?;
        session.presence = choices;
        self.set(session)
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
        let on_disk = Store::load(self.path.clone())?.session;
        // The presence choices as saved last (perhaps by another `chat`) go on.
        if let Some(saved) = on_disk.as_ref().filter(|s| s.user_id == old.user_id) {
            old.presence = saved.presence.clone();
        }
        match on_disk {
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
                fresh.presence = old.presence;
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

#[cfg(test)]
mod tests {
    use chat_protocol::model::Emoji;

    use super::*;

    #[test]
    fn presence_choices_are_kept_and_sent_again_without_the_defaults() {
        let now = 1_795_422_301_353;
        let meeting = |expires_at| CustomStatus {
            text: Some("In a meeting".into()),
            emoji: Some(Emoji::parse("📅").unwrap()),
            expires_at,
        };
        let defaults = PresenceChoices {
            state: Some(ChosenState::Online),
            last_seen: Some(LastSeenTo::Contacts),
            custom_status: Some(meeting(Some(now - 1))),
        };
        assert!(defaults.clone().kept(now).is_default());
        assert!(defaults.frames(now).is_empty());

        let chosen = PresenceChoices {
            state: Some(ChosenState::Dnd),
            last_seen: None,
            custom_status: Some(meeting(Some(now + 60_000))),
        };
        assert_eq!(chosen.clone().kept(now), chosen);
        assert_eq!(
            chosen.frames(now),
            [
                ClientFrame::SetPresence { state: Some(ChosenState::Dnd), last_seen: None },
                ClientFrame::SetStatus {
                    text: Some("In a meeting".into()),
                    emoji: Some(Emoji::parse("📅").unwrap()),
                    expires_at: Some(now + 60_000),
                },
            ]
        );
        // Lapsed meanwhile: the state alone.
        assert_eq!(chosen.frames(now + 60_000).len(), 1);

        // In the session file: absent while default, camelCase otherwise; older files read.
        let file = r#"{"userId":"alice","accessToken":"a","refreshToken":"r","expiresAtMs":1,"refreshExpiresAtMs":2}"#;
        let mut session: Session = serde_json::from_str(file).unwrap();
        assert!(session.presence.is_default());
        assert!(!serde_json::to_string(&session).unwrap().contains("presence"));
        session.presence = PresenceChoices { last_seen: Some(LastSeenTo::Nobody), ..chosen };
        let saved = serde_json::to_value(&session).unwrap();
        assert_eq!(saved["presence"]["state"], "dnd");
        assert_eq!(saved["presence"]["lastSeen"], "nobody");
        assert_eq!(saved["presence"]["customStatus"]["text"], "In a meeting");
        assert_eq!(serde_json::from_value::<Session>(saved).unwrap().presence, session.presence);
    }
}
