//! Every client action on an open connection (`sendMessage`, `editMessage`,
//! `deleteMessage`, `heartbeat`, `typing`, `markRead`, `getPresence`, `sync`, and
//! `startCall`, `acceptCall`, `declineCall`, `endCall`, `callSignal`, and `$default` for
//! frames with no known action).
//! An answer, when the action has one, goes back to the caller as the route response.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chat_aws::apigw;
use chat_domain::limits::{self, Action};
use chat_domain::protocol::{ClientFrame, ServerFrame};
use chat_domain::reactions::{self, Reacting};
use chat_domain::sync::{self, SyncRequest};
use chat_domain::{App, ChatError, calling, chat, presence};
use tracing::{Instrument, error};

pub async fn handle(app: &App, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let span = apigw::ws_span(&event);
    handle_in_span(app, event).instrument(span).await
}

async fn handle_in_span(app: &App, event: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let body = event.body.as_deref().unwrap_or_default();
    match dispatch(app, &event, body).await {
        Ok(Some(frame)) => apigw::ws_reply_json(frame),
        Ok(None) => apigw::ws_status(200),
        Err(err) => {
            if let ChatError::Internal(detail) = &err {
                error!(connection = ?event.request_context.connection_id, error = %detail, "action failed");
            }
            apigw::ws_reply(&ServerFrame::Error(err.body().about_frame(body)))
        }
    }
}

async fn dispatch(app: &App, event: &ApiGatewayWebsocketProxyRequest, body: &str) -> Result<Option<String>, ChatError> {
    let (user, connection) = apigw::ws_caller(event)?;
    let frame = ClientFrame::parse(body);
    // sendMessage counts in `chat::send_message` (the dedupe of a retry comes first); a
    // frame that does not parse counts as a cheap frame, so floods of junk are limited too.
    let action = match &frame {
        Ok(ClientFrame::SendMessage { .. }) => None,
        Ok(ClientFrame::EditMessage { .. } | ClientFrame::DeleteMessage { .. }) => Some(Action::Change),
        Ok(ClientFrame::AddReaction { .. } | ClientFrame::RemoveReaction { .. }) => Some(Action::React),
        Ok(ClientFrame::SubscribePresence { .. }) => Some(Action::Subscribe),
        Ok(ClientFrame::StartCall { .. }) => Some(Action::Call),
        Ok(ClientFrame::CallSignal { .. }) => Some(Action::Signal),
        _ => Some(Action::Frame),
    };
    if let Some(action) = action {
        limits::check(app, action, user.as_str()).await?;
    }
    let frame = frame?;
    let answer = match frame {
        ClientFrame::SendMessage { channel_id, client_msg_id, text, attachments, reply_to, mentions } => {
            let draft = chat::Draft { client_msg_id, text, attachments, reply_to, mentions };
            let sent = chat::send_message(app, &user, &connection, &channel_id, draft).await?;
            // Posted already when the send pushed to someone: answering it again would
            // deliver it twice.
            return Ok((!sent.ack_posted).then_some(sent.ack));
        }
        ClientFrame::EditMessage { channel_id, message_id, text } => {
            Some(chat::edit_message(app, &user, &connection, &channel_id, message_id, text).await?)
        }
        ClientFrame::DeleteMessage { channel_id, message_id } => {
            Some(chat::delete_message(app, &user, &connection, &channel_id, message_id).await?)
        }
        ClientFrame::AddReaction { channel_id, message_id, emoji } => {
            Some(reactions::react(app, &user, &connection, &channel_id, message_id, emoji, Reacting::Add).await?)
        }
        ClientFrame::RemoveReaction { channel_id, message_id, emoji } => {
            Some(reactions::react(app, &user, &connection, &channel_id, message_id, emoji, Reacting::Remove).await?)
        }
        ClientFrame::Heartbeat { idle } => {
            let device = presence::Device {
                connection: &connection,
                session: apigw::ws_session(event),
                lifetime_left_ms: apigw::ws_lifetime_left_ms(event),
            };
            presence::heartbeat(app, &user, &device, idle).await?;
            None
        }
        ClientFrame::SetPresence { state, last_seen } => {
            Some(ServerFrame::Presence(presence::set_presence(app, &user, state, last_seen).await?))
        }
        ClientFrame::SetStatus { text, emoji, expires_at } => {
            Some(ServerFrame::Presence(presence::set_status(app, &user, text, emoji, expires_at).await?))
        }
        ClientFrame::SubscribePresence { user_ids, channel_id } => Some(ServerFrame::PresenceState {
            users: presence::subscribe(app, &user, &connection, user_ids, channel_id.as_ref()).await?,
        }),
        ClientFrame::UnsubscribePresence { user_ids } => {
            presence::unsubscribe(app, &connection, user_ids).await?;
            None
        }
        ClientFrame::Typing { channel_id, state } => {
            chat::typing(app, &user, &channel_id, state).await?;
            None
        }
        ClientFrame::MarkRead { channel_id, message_id } => {
            Some(chat::mark_read(app, &user, &connection, &channel_id, message_id).await?)
        }
        ClientFrame::GetPresence { user_ids, channel_id } => Some(ServerFrame::PresenceState {
            users: presence::states(app, &user, user_ids, channel_id.as_ref()).await?,
        }),
        ClientFrame::Sync { channels, after, limit, changes } => {
            let request = SyncRequest { channels, after, limit, changes };
            Some(ServerFrame::Synced { channels: sync::sync(app, &user, &connection, request).await? })
        }
        ClientFrame::StartCall { channel_id, media } => {
            Some(calling::start(app, &user, &connection, &channel_id, media).await?)
        }
        ClientFrame::AcceptCall { call_id } => Some(calling::accept(app, &user, &connection, &call_id).await?),
        ClientFrame::DeclineCall { call_id } => Some(calling::decline(app, &user, &connection, &call_id).await?),
        ClientFrame::EndCall { call_id } => Some(calling::end(app, &user, &connection, &call_id).await?),
        ClientFrame::CallSignal { call_id, signal } => {
            calling::signal(app, &user, &connection, &call_id, signal).await?;
            None
        }
    };
    Ok(answer.map(|frame| frame.to_json()))
}
