//! Voice and video calls in a direct channel: the call object, its outcome, the entry a
//! finished call leaves in history, ICE servers and the signalling payloads relayed between
//! the two devices. The frames are in [`crate::frames`]; docs/PROTOCOL.md has the flow.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ProtocolError;
use crate::model::{CallId, ChannelId, UserId};

/// Largest signalling payload (an SDP offer with video is 3-8 KB).
pub const MAX_SIGNAL_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Media {
    Audio,
    Video,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallState {
    /// Every device of the callee rings until `ringUntil`.
    Ringing,
    /// One device of the callee accepted; media flows between it and the caller's device.
    Active,
    Ended,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallOutcome {
    /// Not answered: the caller cancelled, the ring time passed, or the caller's device left.
    Missed,
    Declined,
    Answered,
    /// The callee was already in another call.
    Busy,
}

/// A call as frames carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    pub call_id: CallId,
    pub channel_id: ChannelId,
    pub caller_id: UserId,
    pub callee_id: UserId,
    pub media: Media,
    pub state: CallState,
    pub started_at: i64,
    /// The callee's devices ring until then (ms since the epoch); an answer after it is
    /// refused and the call counts as missed.
    pub ring_until: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<CallOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
}

impl Call {
    /// The entry the call leaves in the channel's history once it ended.
    pub fn entry(&self) -> Option<CallEntry> {
        Some(CallEntry {
            call_id: self.call_id.clone(),
            media: self.media,
            outcome: self.outcome?,
            duration_ms: self.duration_ms,
        })
    }
}

/// What a finished call leaves in the channel's history: a message of the caller with no
/// text and this `call` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallEntry {
    pub call_id: CallId,
    pub media: Media,
    pub outcome: CallOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
}

/// An ICE server as `RTCPeerConnection` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A WebRTC signalling payload (an offer, an answer, an ICE candidate): a JSON object of
/// at most [`MAX_SIGNAL_BYTES`], relayed as it is. The server reads nothing in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Signal(Map<String, Value>);

impl Signal {
    pub fn parse(value: Value) -> Result<Self, ProtocolError> {
        let Value::Object(object) = value else {
            return Err(ProtocolError::invalid("signal must be a JSON object"));
        };
        let size = crate::frames::json_len(&object);
        if size > MAX_SIGNAL_BYTES {
            return Err(ProtocolError::too_large(format!("a signal is {size} bytes; the limit is {MAX_SIGNAL_BYTES}")));
        }
        Ok(Self(object))
    }
}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_bounded_objects() {
        assert!(Signal::parse(serde_json::json!({"type": "offer", "sdp": "v=0"})).is_ok());
        assert!(Signal::parse(serde_json::json!("offer")).unwrap_err().to_string().contains("object"));
        let huge = "a".repeat(MAX_SIGNAL_BYTES);
        let err = Signal::parse(serde_json::json!({"sdp": huge})).unwrap_err();
        assert_eq!(err.code, crate::ErrorCode::TooLarge);
    }
}
