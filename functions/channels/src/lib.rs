//! HTTP API, channel management:
//! - `POST /channels` {name, members}: create a group; the caller owns it.
//! - `POST /channels/direct` {userId}: open (or find) the direct channel with a user.
//! - `GET /channels/{channelId}`: the channel and its members.
//! - `POST /channels/{channelId}/members` {userIds, role?}: add members.
//! - `DELETE /channels/{channelId}/members/{userId}`: remove a member, or leave.
//! - `POST /channels/{channelId}/mute` {muted}: no pushes for this channel.
//! - `POST /channels/{channelId}/uploads` {fileName, contentType, size}: a presigned upload.
//! - `GET /channels/{channelId}/attachments?key=`: a download URL for an attachment.
//! - `GET /invitations`; `POST /invitations/{channelId}/accept` and `/decline`.
//! - `GET /blocks`; `POST /blocks` {userId}; `DELETE /blocks/{userId}`.

use chat_aws::apigw_http::{self, caller, channel_param, json_body, path_param, query_param};
use chat_domain::http::{
    BlockList, BlockRequest, DirectWith, DownloadUrl, InvitationList, Mute, NewGroup, NewMembers, UploadRequest,
};
use chat_domain::model::UserId;
use chat_domain::{App, ChatError, consent, media, membership};
use lambda_http::{Body, Request, Response};

pub async fn handle(app: &App, request: Request) -> Response<Body> {
    if let Err(err) = apigw_http::within_limit(app, &request).await {
        return apigw_http::error(&err);
    }
    let route = apigw_http::route_key(&request);
    match route.as_str() {
        "POST /channels" => apigw_http::respond(201, create_group(app, &request).await),
        "POST /channels/direct" => apigw_http::respond(200, open_direct(app, &request).await),
        "GET /channels/{channelId}" => apigw_http::respond(200, details(app, &request).await),
        "POST /channels/{channelId}/members" => apigw_http::respond(200, add_members(app, &request).await),
        "DELETE /channels/{channelId}/members/{userId}" => match remove_member(app, &request).await {
            Ok(()) => apigw_http::no_content(),
            Err(err) => apigw_http::error(&err),
        },
        "POST /channels/{channelId}/mute" => match set_muted(app, &request).await {
            Ok(()) => apigw_http::no_content(),
            Err(err) => apigw_http::error(&err),
        },
        "POST /channels/{channelId}/uploads" => apigw_http::respond(201, grant_upload(app, &request).await),
        "GET /channels/{channelId}/attachments" => apigw_http::respond(200, attachment(app, &request).await),
        "GET /invitations" => apigw_http::respond(200, invitations(app, &request).await),
        "POST /invitations/{channelId}/accept" => apigw_http::respond(200, accept(app, &request).await),
        "POST /invitations/{channelId}/decline" => no_content(decline(app, &request).await),
        "GET /blocks" => apigw_http::respond(200, blocked(app, &request).await),
        "POST /blocks" => no_content(block(app, &request).await),
        "DELETE /blocks/{userId}" => no_content(unblock(app, &request).await),
        other => apigw_http::error(&ChatError::NotFound(format!("no route {other}"))),
    }
}

async fn create_group(app: &App, request: &Request) -> Result<membership::ChannelView, ChatError> {
    let user = caller(request)?;
    let body: NewGroup = json_body(request)?;
    membership::create_group(app, &user, &body.name, body.members).await
}

async fn open_direct(app: &App, request: &Request) -> Result<membership::ChannelView, ChatError> {
    let user = caller(request)?;
    let body: DirectWith = json_body(request)?;
    membership::open_direct(app, &user, &body.user_id).await
}

async fn details(app: &App, request: &Request) -> Result<membership::ChannelView, ChatError> {
    membership::channel_details(app, &caller(request)?, &channel_param(request)?).await
}

async fn add_members(app: &App, request: &Request) -> Result<membership::ChannelView, ChatError> {
    let user = caller(request)?;
    let body: NewMembers = json_body(request)?;
    membership::add_members(app, &user, &channel_param(request)?, body.user_ids, body.role).await
}

async fn remove_member(app: &App, request: &Request) -> Result<(), ChatError> {
    let user = caller(request)?;
    let target = UserId::parse(path_param(request, "userId")?)?;
    membership::remove_member(app, &user, &channel_param(request)?, &target).await
}

async fn set_muted(app: &App, request: &Request) -> Result<(), ChatError> {
    let body: Mute = json_body(request)?;
    membership::set_muted(app, &caller(request)?, &channel_param(request)?, body.muted).await
}

async fn grant_upload(app: &App, request: &Request) -> Result<media::UploadGrant, ChatError> {
    let body: UploadRequest = json_body(request)?;
    let user = caller(request)?;
    media::grant_upload(app, &user, &channel_param(request)?, &body.file_name, &body.content_type, body.size).await
}

async fn attachment(app: &App, request: &Request) -> Result<DownloadUrl, ChatError> {
    let key = query_param(request, "key").ok_or_else(|| ChatError::InvalidRequest("key is required".into()))?;
    let url = media::download_url(app, &caller(request)?, &channel_param(request)?, key).await?;
    Ok(DownloadUrl { url })
}

fn no_content(result: Result<(), ChatError>) -> Response<Body> {
    match result {
        Ok(()) => apigw_http::no_content(),
        Err(err) => apigw_http::error(&err),
    }
}

async fn invitations(app: &App, request: &Request) -> Result<InvitationList, ChatError> {
    Ok(InvitationList { invitations: consent::pending(app, &caller(request)?).await? })
}

async fn accept(app: &App, request: &Request) -> Result<membership::ChannelView, ChatError> {
    let user = caller(request)?;
    let channel = channel_param(request)?;
    consent::accept(app, &user, &channel).await?;
    membership::channel_details(app, &user, &channel).await
}

async fn decline(app: &App, request: &Request) -> Result<(), ChatError> {
    consent::decline(app, &caller(request)?, &channel_param(request)?).await
}

async fn blocked(app: &App, request: &Request) -> Result<BlockList, ChatError> {
    Ok(BlockList { blocked: consent::blocked(app, &caller(request)?).await? })
}

async fn block(app: &App, request: &Request) -> Result<(), ChatError> {
    let body: BlockRequest = json_body(request)?;
    consent::block(app, &caller(request)?, &body.user_id).await
}

async fn unblock(app: &App, request: &Request) -> Result<(), ChatError> {
    let target = UserId::parse(path_param(request, "userId")?)?;
    consent::unblock(app, &caller(request)?, &target).await
}
