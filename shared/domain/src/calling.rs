//! Voice and video calls in a direct channel, signalled over the chat socket.
//!
//! A call is one stored record whose every change is conditional on the state it leaves
//! (ringing → active → ended, or ringing → ended), so two devices answering at once cannot
//! both win and a call ends once. Each user carries a mark of the call they are in, so a
//! second call finds them busy and a closing connection finds its call. Signalling (offer,
//! answer, ICE candidates) is relayed only between the caller's device and the device that
//! answered. When a call ends, the channel gets a call entry: a message of the caller that
//! counts as unread and syncs like any other.
//!
//! Nothing runs on a timer: the caller's device ends a call nobody answered at `ringUntil`
//! (`endCall`), an answer after it is refused, and a device that leaves ends its call.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use tracing::{info, warn};

use crate::access::roster_for_member;
use crate::app::App;
use crate::calls::{Call, CallOutcome, CallState, IceServer, Media, Signal};
use crate::chat::CONNECTION_TTL_MS;
use crate::delivery::{fan_out, post_all};
use crate::error::{ChatError, PortError};
use crate::ids::MessageId;
use crate::model::{CallId, ChannelId, ChannelKind, ClientMsgId, ConnectionId, Message, UserId};
use crate::ordering::{Appended, append_next};
use crate::ports::{CallRecord, CallStart, Notification, PostOutcome, Roster};
use crate::protocol::{MessageFrames, ServerFrame};

/// How long a user stays marked as in an answered call unless it ends first: as long as
/// API Gateway keeps a connection open.
pub const MAX_CALL_MS: i64 = CONNECTION_TTL_MS;

/// A new call id: random, so nobody can guess another's.
fn new_call_id() -> CallId {
    CallId::parse(format!("call-{}", hex::encode(rand::random::<[u8; 12]>()))).expect("hex is key-safe")
}

/// The ICE servers `user`'s device gets for a call: the STUN URLs as they are, and the TURN
/// URLs with a credential by the TURN REST API convention (coturn's `use-auth-secret`):
/// username `{expiry in s}:{user}`, password base64(HMAC-SHA1(secret, username)).
pub fn ice_servers(app: &App, user: &UserId) -> Vec<IceServer> {
    let settings = &app.settings.calls;
    let mut servers = Vec::new();
    if !settings.stun_urls.is_empty() {
        servers.push(IceServer { urls: settings.stun_urls.clone(), username: None, credential: None });
    }
    if let (false, Some(secret)) = (settings.turn_urls.is_empty(), &settings.turn_secret) {
        let expiry = app.now_ms() / 1000 + settings.turn_credential_ttl_s;
        let username = format!("{expiry}:{user}");
        servers.push(IceServer {
            urls: settings.turn_urls.clone(),
            credential: Some(turn_password(secret, &username)),
            username: Some(username),
        });
    }
    servers
}

/// The TURN REST API password of `username`.
pub fn turn_password(secret: &str, username: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `startCall`: rings every live device of the other member of a direct channel and
/// pushes to them when none is live. Answers `callStarted`, or `callEnded` (busy) when the
/// callee is in another call.
pub async fn start(
    app: &App,
    caller: &UserId,
    origin: &ConnectionId,
    channel_id: &ChannelId,
    media: Media,
) -> Result<ServerFrame, ChatError> {
    let (roster, blocked_by_caller) = tokio::join!(roster_for_member(app, caller, channel_id), app.blocks().of(caller));
    let roster = roster?;
    if roster.meta.kind != ChannelKind::Direct {
        return Err(ChatError::InvalidRequest("calls are made in direct chats (group calls are not supported)".into()));
    }
    let callee = roster
        .members
        .iter()
        .map(|m| &m.user_id)
        .find(|m| *m != caller)
        .cloned()
        .ok_or_else(|| ChatError::Conflict("the other person has not joined this chat yet".into()))?;
    if blocked_by_caller?.contains(&callee) {
        return Err(ChatError::Forbidden(format!("you blocked {callee}; unblock them to call")));
    }
    if app.blocks().blocking(std::slice::from_ref(&callee), caller).await?.contains(&callee) {
        return Err(ChatError::Forbidden(format!("{callee} does not take calls from you")));
    }
    let now = app.now_ms();
    let call = Call {
        call_id: new_call_id(),
        channel_id: channel_id.clone(),
        caller_id: caller.clone(),
        callee_id: callee.clone(),
        media,
        state: CallState::Ringing,
        started_at: now,
        ring_until: now + app.settings.calls.ring_ms,
        answered_at: None,
        ended_at: None,
        outcome: None,
        ended_by: None,
        duration_ms: None,
    };
    let record = CallRecord { call, caller_connection: origin.clone(), callee_connection: None };
    match app.calls().start(&record, now).await? {
        CallStart::CallerBusy => Err(ChatError::Conflict("you are already in a call".into())),
        CallStart::CalleeBusy => {
            // Nothing was stored of the call: the entry is its only record.
            let mut busy = record.call;
            (busy.state, busy.outcome, busy.ended_at) = (CallState::Ended, Some(CallOutcome::Busy), Some(now));
            record_entry(app, &roster, &busy).await;
            Ok(ServerFrame::CallEnded { call: busy })
        }
        CallStart::Started => {
            ring(app, &roster, &record.call).await;
            info!(call = %record.call.call_id, %caller, %callee, "call started");
            Ok(ServerFrame::CallStarted { ice_servers: ice_servers(app, caller), call: record.call })
        }
    }
}

/// Rings every live device of the callee; when none is live, pushes the call (unless they
/// chose do-not-disturb).
async fn ring(app: &App, roster: &Roster, call: &Call) {
    let callee = std::slice::from_ref(&call.callee_id);
    let reach = match crate::connections::reach(app, callee).await {
        Ok(reach) => reach,
        Err(err) => return warn!(call = %call.call_id, error = %err, "presence lookup failed; nothing rings"),
    };
    if reach.connections.is_empty() {
        if !reach.do_not_disturb.contains(&call.callee_id) {
            crate::push::publish(app, callee, &notification(roster, call)).await;
        }
        return;
    }
    let frame = ServerFrame::IncomingCall { call: call.clone(), ice_servers: ice_servers(app, &call.callee_id) };
    post_all(app, reach.connections, None, &frame.to_json()).await;
}

/// The push of an incoming call.
fn notification(roster: &Roster, call: &Call) -> Notification {
    let what = match call.media {
        Media::Audio => "Incoming voice call",
        Media::Video => "Incoming video call",
    };
    Notification {
        title: call.caller_id.to_string(),
        body: what.to_owned(),
        channel_id: call.channel_id.clone(),
        message_id: roster.meta.last_message_id,
        call: Some(call.clone()),
    }
}

/// The call `user` takes part in (or is called in), or `not_found`: nobody else learns
/// that a call exists.
async fn participants_call(app: &App, user: &UserId, call_id: &CallId) -> Result<CallRecord, ChatError> {
    app.calls()
        .get(call_id)
        .await?
        .filter(|r| r.call.caller_id == *user || r.call.callee_id == *user)
        .ok_or_else(|| ChatError::NotFound(format!("no call {call_id}")))
}

/// The call `user` is called in, for an action only the callee takes (`what`).
async fn callees_call(app: &App, user: &UserId, call_id: &CallId, what: &str) -> Result<CallRecord, ChatError> {
    let record = participants_call(app, user, call_id).await?;
    if record.call.callee_id != *user {
        return Err(ChatError::Forbidden(format!("only the person called can {what}")));
    }
    Ok(record)
}

/// `acceptCall` from a device of the callee: the call becomes active between this device
/// and the caller's; the caller's device and the callee's other devices are told.
pub async fn accept(
    app: &App,
    user: &UserId,
    origin: &ConnectionId,
    call_id: &CallId,
) -> Result<ServerFrame, ChatError> {
    let record = callees_call(app, user, call_id, "answer").await?;
    let now = app.now_ms();
    if record.call.state != CallState::Ringing {
        return Err(ChatError::Conflict(over_or_answered(&record.call)));
    }
    if now >= record.call.ring_until {
        // Nobody ended it at its time (the caller's device went quiet): it was missed.
        finish(app, record, CallOutcome::Missed, None, None).await?;
        return Err(ChatError::Conflict("the call was not answered in time".into()));
    }
    let mut next = record.clone();
    (next.call.state, next.call.answered_at, next.callee_connection) =
        (CallState::Active, Some(now), Some(origin.clone()));
    if !app.calls().advance(&next, CallState::Ringing, now + MAX_CALL_MS).await? {
        let now_stored = participants_call(app, user, call_id).await?;
        return Err(ChatError::Conflict(over_or_answered(&now_stored.call)));
    }
    let json = ServerFrame::CallAccepted { call: next.call.clone(), ice_servers: Vec::new() }.to_json();
    // The caller's device, and every other device of the callee (they stop ringing).
    let callee = std::slice::from_ref(user);
    let (_, _) =
        tokio::join!(app.poster().post(&next.caller_connection, &json), fan_out(app, callee, Some(origin), &json));
    info!(call = %call_id, "call answered");
    Ok(ServerFrame::CallAccepted { ice_servers: ice_servers(app, user), call: next.call })
}

fn over_or_answered(call: &Call) -> String {
    match call.state {
        CallState::Active => "the call was answered on another device".into(),
        _ => "the call is over".into(),
    }
}

/// `declineCall` from a device of the callee while it rings.
pub async fn decline(
    app: &App,
    user: &UserId,
    origin: &ConnectionId,
    call_id: &CallId,
) -> Result<ServerFrame, ChatError> {
    let record = callees_call(app, user, call_id, "decline").await?;
    match record.call.state {
        CallState::Ringing => {
            let call = finish(app, record, CallOutcome::Declined, Some(user), Some(origin)).await?;
            Ok(ServerFrame::CallEnded { call })
        }
        CallState::Ended => Ok(ServerFrame::CallEnded { call: record.call }),
        CallState::Active => Err(ChatError::Conflict("the call was answered; hang up instead".into())),
    }
}

/// `endCall`: the caller cancels a ringing call (or its ring time passed), or either side
/// hangs up an answered one. Ending an ended call answers it again.
pub async fn end(app: &App, user: &UserId, origin: &ConnectionId, call_id: &CallId) -> Result<ServerFrame, ChatError> {
    let record = participants_call(app, user, call_id).await?;
    let call = match record.call.state {
        CallState::Ended => record.call,
        CallState::Ringing if record.call.callee_id == *user => {
            return Err(ChatError::Conflict("the call has not been answered; decline it instead".into()));
        }
        CallState::Ringing => finish(app, record, CallOutcome::Missed, Some(user), Some(origin)).await?,
        CallState::Active => finish(app, record, CallOutcome::Answered, Some(user), Some(origin)).await?,
    };
    Ok(ServerFrame::CallEnded { call })
}

/// `callSignal`: relays a signalling payload from one device of an answered call to the
/// other. A device that is gone ends the call.
pub async fn signal(
    app: &App,
    user: &UserId,
    origin: &ConnectionId,
    call_id: &CallId,
    signal: serde_json::Value,
) -> Result<(), ChatError> {
    let signal = Signal::parse(signal)?;
    let record = participants_call(app, user, call_id).await?;
    if record.call.state != CallState::Active {
        return Err(ChatError::Conflict(match record.call.state {
            CallState::Ringing => "the call has not been answered yet".into(),
            _ => "the call is over".into(),
        }));
    }
    let to = if *origin == record.caller_connection {
        record.callee_connection.clone()
    } else if Some(origin) == record.callee_connection.as_ref() {
        Some(record.caller_connection.clone())
    } else {
        None
    };
    let Some(to) = to else {
        return Err(ChatError::Forbidden("this device is not in the call".into()));
    };
    let frame = ServerFrame::CallSignal { call_id: call_id.clone(), signal }.to_json();
    match app.poster().post(&to, &frame).await {
        PostOutcome::Delivered => Ok(()),
        PostOutcome::Gone => {
            finish(app, record, CallOutcome::Answered, None, Some(origin)).await?;
            Err(ChatError::Conflict("the other side has left the call".into()))
        }
        PostOutcome::Throttled(error) | PostOutcome::Failed(error) => {
            Err(PortError::Contended(format!("could not relay the signal: {error}")).into())
        }
    }
}

/// A connection closed (`$disconnect`, or found gone): the call it took part in ends for
/// the other side. A callee's device that was only ringing leaves the call ringing on the
/// others.
pub async fn connection_closed(app: &App, user: &UserId, connection: &ConnectionId) -> Result<(), ChatError> {
    let Some(mark) = app.calls().in_call(user).await? else { return Ok(()) };
    if mark.connection.as_ref() != Some(connection) {
        return Ok(());
    }
    end_for_the_other_side(app, user, mark).await
}

/// The sweep found `user` with no device beating within the presence window (a phone in a
/// tunnel: its socket can stay open until API Gateway's 10-minute idle timeout): the call
/// their device takes part in ends for the other side.
pub async fn went_quiet(app: &App, user: &UserId) -> Result<(), ChatError> {
    match app.calls().in_call(user).await? {
        Some(mark) if mark.connection.is_some() => end_for_the_other_side(app, user, mark).await,
        _ => Ok(()),
    }
}

/// Ends the call of `mark` (missed while it rang, answered once it was), as `user` left it.
async fn end_for_the_other_side(app: &App, user: &UserId, mark: crate::ports::InCall) -> Result<(), ChatError> {
    if mark.until <= app.now_ms() {
        return Ok(());
    }
    let connection = mark.connection.clone();
    let Some(record) = app.calls().get(&mark.call_id).await? else { return Ok(()) };
    let outcome = match record.call.state {
        CallState::Ringing => CallOutcome::Missed,
        CallState::Active => CallOutcome::Answered,
        CallState::Ended => return Ok(()),
    };
    finish(app, record, outcome, Some(user), connection.as_ref()).await?;
    Ok(())
}

/// Ends a call as `outcome` says, if nobody ended it first: the record, both users' marks,
/// `callEnded` to every device taking part or ringing but `origin` (which gets the answer),
/// and the call's entry in the channel. Answers the call as it ended (someone else's end,
/// when they got there first).
async fn finish(
    app: &App,
    record: CallRecord,
    outcome: CallOutcome,
    ended_by: Option<&UserId>,
    origin: Option<&ConnectionId>,
) -> Result<Call, ChatError> {
    let now = app.now_ms();
    let from = record.call.state;
    let mut ended = record.clone();
    let call = &mut ended.call;
    (call.state, call.outcome, call.ended_at, call.ended_by) =
        (CallState::Ended, Some(outcome), Some(now), ended_by.cloned());
    call.duration_ms = call.answered_at.filter(|_| outcome == CallOutcome::Answered).map(|at| now - at);
    if !app.calls().finish(&ended, from).await? {
        let stored = app.calls().get(&record.call.call_id).await?;
        return Ok(stored.map(|r| r.call).unwrap_or(ended.call));
    }
    info!(call = %ended.call.call_id, ?outcome, "call ended");
    let frame = ServerFrame::CallEnded { call: ended.call.clone() }.to_json();
    let mut devices = vec![(ended.call.caller_id.clone(), ended.caller_connection.clone())];
    match &ended.callee_connection {
        Some(callee) => devices.push((ended.call.callee_id.clone(), callee.clone())),
        // Still ringing: every device of the callee stops.
        None => match crate::connections::live(app, std::slice::from_ref(&ended.call.callee_id)).await {
            Ok(ringing) => devices.extend(ringing),
            Err(err) => warn!(error = %err, "presence lookup failed; the callee's devices ring until their time"),
        },
    }
    post_all(app, devices, origin, &frame).await;
    match roster_for_member(app, &ended.call.caller_id, &ended.call.channel_id).await {
        Ok(roster) => record_entry(app, &roster, &ended.call).await,
        Err(err) => warn!(call = %ended.call.call_id, error = %err, "no call entry: the channel could not be read"),
    }
    Ok(ended.call)
}

/// Appends the call's entry to its channel (a message of the caller, once per call: its
/// clientMsgId is the call's) and posts it to the members' live devices. Best effort: the
/// call itself is over whatever happens here.
async fn record_entry(app: &App, roster: &Roster, call: &Call) {
    let Some(entry) = call.entry() else { return };
    let Ok(client_msg_id) = ClientMsgId::parse(call.call_id.as_str()) else { return };
    let message = Message {
        channel_id: call.channel_id.clone(),
        message_id: MessageId::ZERO,
        seq: 0,
        author_id: call.caller_id.clone(),
        text: String::new(),
        client_msg_id: client_msg_id.clone(),
        created_at: 0,
        attachments: Vec::new(),
        edited_at: None,
        deleted: false,
        change_seq: None,
        reply_to: None,
        mentions: Vec::new(),
        reactions: Vec::new(),
        call: Some(entry),
    };
    let stored = match append_next(app, message, roster.meta.clone()).await {
        Ok(Appended::Stored(message)) => *message,
        // A retried end: the entry is there already.
        Ok(Appended::Duplicate(_)) => return,
        Err(err) => return warn!(call = %call.call_id, error = %err, "the call entry could not be stored"),
    };
    crate::metrics::count(crate::metrics::MESSAGES_STORED, 1);
    let frames = MessageFrames::new(&client_msg_id, &stored);
    fan_out(app, &roster.member_ids(), None, &frames.live).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_passwords_follow_the_turn_rest_api_convention() {
        // Worked example: `echo -n "1700000000:alice" | openssl dgst -sha1 -hmac "secret" -binary | base64`.
        assert_eq!(turn_password("secret", "1700000000:alice"), "d8soP47RbdIKLDUOpnJPVQyq5Ts=");
    }
}
