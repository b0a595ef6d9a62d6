//! The bodies of the HTTP API (docs/openapi.yaml): what each route takes and answers.
//! Requests refuse unknown fields where a typo would otherwise be silently ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::MessageId;
use crate::model::{ChannelId, ChannelKind, MemberRole, Message, UserId};

// ---- accounts ----------------------------------------------------------------------------

/// `POST /auth/signup` and `POST /auth/signin`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// `POST /auth/refresh`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// `POST /auth/signout`: this device's session, or every session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignOutRequest {
    #[serde(default)]
    pub everywhere: bool,
}

/// What sign up, sign in and refresh answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub user_id: UserId,
    pub access_token: String,
    /// Seconds.
    pub expires_in: i64,
    /// Single use: `POST /auth/refresh` answers with a new one.
    pub refresh_token: String,
    pub refresh_expires_in: i64,
}

// ---- push devices ------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Fcm,
    Apns,
    ApnsSandbox,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Fcm => "fcm",
            Platform::Apns => "apns",
            Platform::ApnsSandbox => "apns_sandbox",
        }
    }
}

/// `POST /devices`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    pub platform: Platform,
    pub token: String,
}

/// A registered device, as the device routes answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    pub device_id: String,
    pub platform: Platform,
    pub enabled: bool,
    /// Whether pushes go to this device's own SNS endpoint (a platform application is
    /// configured for its platform) or only to the deployment's topic.
    pub has_endpoint: bool,
}

/// `GET /devices`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceList {
    pub devices: Vec<DeviceView>,
}

// ---- channels ----------------------------------------------------------------------------

/// `POST /channels`: a group the caller owns.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
    #[serde(default)]
    pub members: Vec<UserId>,
}

/// `POST /channels/direct`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectWith {
    pub user_id: UserId,
}

/// `POST /channels/{channelId}/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewMembers {
    pub user_ids: Vec<UserId>,
    #[serde(default = "NewMembers::default_role")]
    pub role: MemberRole,
}

impl NewMembers {
    fn default_role() -> MemberRole {
        MemberRole::Member
    }
}

/// `POST /channels/{channelId}/mute`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mute {
    pub muted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub user_id: UserId,
    pub role: MemberRole,
}

/// A channel with its members, as the channel routes answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelView {
    pub channel_id: ChannelId,
    pub kind: ChannelKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub members: Vec<MemberView>,
    /// In answers to creating, adding and opening: who was invited (they join when they
    /// accept). Always what was asked for, so nobody learns who exists or blocks whom.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invited: Vec<UserId>,
    pub created_at: i64,
}

/// One entry of the caller's channel list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelSummary {
    pub channel_id: ChannelId,
    pub kind: ChannelKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Direct channels: the other user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<UserId>,
    pub role: MemberRole,
    pub member_count: u64,
    /// Messages in the channel so far (the newest message's `seq`).
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_id: Option<MessageId>,
    /// Messages after the caller's read position (their own messages count as read).
    pub unread: u64,
    /// Of the unread messages, those that mention the caller.
    #[serde(default)]
    pub mentions: u64,
    /// The caller's read position (seq of the newest message they have read).
    pub last_read_seq: u64,
    /// The channel's newest change position (edits and deletions are numbered 1, 2, 3…): a
    /// device that loads the channel now has every change up to here.
    pub change_seq: u64,
    /// No pushes for this channel.
    pub muted: bool,
}

impl ChannelSummary {
    /// What people call it: the group's name, or the other person of a direct channel.
    pub fn title(&self) -> &str {
        self.name.as_deref().or(self.peer.as_ref().map(UserId::as_str)).unwrap_or(self.channel_id.as_str())
    }
}

/// `GET /channels`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelList {
    pub channels: Vec<ChannelSummary>,
}

/// `GET /channels/{channelId}/messages`: a page of history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    /// Newest first.
    pub messages: Vec<Message>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<MessageId>,
}

// ---- files -------------------------------------------------------------------------------

/// `POST /channels/{channelId}/uploads`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UploadRequest {
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
}

/// What a client needs to upload: POST a multipart form with `fields` (in order) and then
/// the `file` part to `url`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadGrant {
    pub url: String,
    pub fields: BTreeMap<String, String>,
    /// Put this key in the message's attachment.
    pub key: String,
    pub expires_at: i64,
    pub max_bytes: u64,
}

/// `GET /channels/{channelId}/attachments?key=`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DownloadUrl {
    pub url: String,
}

// ---- consent -----------------------------------------------------------------------------

/// An invitation to join a channel, waiting for the invitee's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    pub channel_id: ChannelId,
    pub kind: ChannelKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub invited_by: UserId,
    pub role: MemberRole,
    pub invited_at: i64,
}

impl Invitation {
    /// What it is an invitation to, as a person reads it.
    pub fn describe(&self) -> String {
        match (&self.name, self.kind) {
            (Some(name), ChannelKind::Group) => format!("{} invites you to the group \"{name}\"", self.invited_by),
            _ => format!("{} wants to chat with you (direct)", self.invited_by),
        }
    }
}

/// `GET /invitations`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvitationList {
    pub invitations: Vec<Invitation>,
}

/// `POST /blocks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockRequest {
    pub user_id: UserId,
}

/// `GET /blocks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockList {
    pub blocked: Vec<UserId>,
}
