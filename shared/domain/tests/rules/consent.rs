//! Consent: nobody joins a channel they did not agree to. Invitations to unknown users,
//! to users who block the inviter, or to full inboxes are dropped without a word; accepting
//! joins with the invited role; invitations lapse after 14 days; blocking withdraws the
//! blocked user's pending invitations; block lists and channels per user are capped.

use chat_domain::consent::{
    self, INVITATION_TTL_MS, MAX_BLOCKED_USERS, MAX_CHANNELS_PER_USER, MAX_PENDING_INVITATIONS,
};
use chat_domain::http::Invitation;
use chat_domain::membership;
use chat_domain::model::{ChannelKind, MemberRole};
use chat_domain::{App, ErrorCode};

use crate::*;

async fn pending_channels(app: &App, name: &str) -> Vec<ChannelId> {
    consent::pending(app, &user(name)).await.unwrap().into_iter().map(|i| i.channel_id).collect()
}

async fn is_member(app: &App, c: &ChannelId, name: &str) -> bool {
    app.channels().roster(c).await.unwrap().unwrap().is_member(&user(name))
}

#[tokio::test]
async fn an_invitation_to_an_unknown_user_is_dropped_without_a_word() {
    let (world, app) = world_with(&["alice"]).await;
    let view = membership::create_group(&app, &user("alice"), "team", vec![user("ghost")]).await.unwrap();
    assert_eq!(view.invited, vec![user("ghost")], "the answer is what was asked");
    add_accounts(&world, &["ghost"]).await;
    assert!(pending_channels(&app, "ghost").await.is_empty(), "nothing was stored for a name that did not exist");
}

#[tokio::test]
async fn an_invitation_from_someone_the_invitee_blocks_is_dropped_without_a_word() {
    let (_world, app) = world_with(&["alice", "bob", "carol"]).await;
    consent::block(&app, &user("bob"), &user("alice")).await.unwrap();
    let view = membership::create_group(&app, &user("alice"), "team", vec![user("bob"), user("carol")]).await.unwrap();
    assert_eq!(view.invited, vec![user("bob"), user("carol")]);
    assert!(pending_channels(&app, "bob").await.is_empty());
    assert_eq!(pending_channels(&app, "carol").await, vec![view.channel_id]);
}

#[tokio::test]
async fn an_invitation_to_a_full_inbox_is_dropped_without_a_word() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    for i in 0..MAX_PENDING_INVITATIONS {
        let invitation = Invitation {
            channel_id: channel(&format!("g-old-{i}")),
            kind: ChannelKind::Group,
            name: None,
            invited_by: user("alice"),
            role: MemberRole::Member,
            invited_at: app.now_ms(),
        };
        assert!(app.invitations().offer(&user("bob"), &invitation, MAX_PENDING_INVITATIONS).await.unwrap());
    }
    let view = membership::create_group(&app, &user("alice"), "team", vec![user("bob")]).await.unwrap();
    let pending = pending_channels(&app, "bob").await;
    assert_eq!(pending.len(), MAX_PENDING_INVITATIONS);
    assert!(!pending.contains(&view.channel_id));
}

#[tokio::test]
async fn inviting_again_replaces_the_invitation_even_in_a_full_inbox() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let mut invitation = Invitation {
        channel_id: channel("g-1"),
        kind: ChannelKind::Group,
        name: None,
        invited_by: user("alice"),
        role: MemberRole::Member,
        invited_at: app.now_ms(),
    };
    assert!(app.invitations().offer(&user("bob"), &invitation, 1).await.unwrap());
    invitation.role = MemberRole::Admin;
    assert!(app.invitations().offer(&user("bob"), &invitation, 1).await.unwrap());
    let pending = consent::pending(&app, &user("bob")).await.unwrap();
    assert_eq!(pending, vec![invitation]);
}

#[tokio::test]
async fn accepting_joins_with_the_invited_role() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = group(&world, &app, "alice", &[]).await;
    membership::add_members(&app, &user("alice"), &c, vec![user("bob")], MemberRole::Admin).await.unwrap();
    consent::accept(&app, &user("bob"), &c).await.unwrap();
    let roster = app.channels().roster(&c).await.unwrap().unwrap();
    assert_eq!(roster.member(&user("bob")).unwrap().role, MemberRole::Admin);
    assert_eq!(roster.meta.member_count, 2);
    assert!(pending_channels(&app, "bob").await.is_empty(), "the invitation is used up");
}

#[tokio::test]
async fn accepting_twice_is_refused_the_second_time() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = group(&world, &app, "alice", &["bob"]).await;
    let err = consent::accept(&app, &user("bob"), &c).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert_eq!(member_count(&app, &c).await, 2);
}

#[tokio::test]
async fn accepting_without_an_invitation_is_refused() {
    let (world, app) = world_with(&["alice", "bob", "mallory"]).await;
    let c = group(&world, &app, "alice", &["bob"]).await;
    let err = consent::accept(&app, &user("mallory"), &c).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert!(!is_member(&app, &c, "mallory").await);
}

#[tokio::test]
async fn declining_removes_the_invitation_and_joins_nothing() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let view = membership::create_group(&app, &user("alice"), "team", vec![user("bob")]).await.unwrap();
    consent::decline(&app, &user("bob"), &view.channel_id).await.unwrap();
    assert!(pending_channels(&app, "bob").await.is_empty());
    assert!(!is_member(&app, &view.channel_id, "bob").await);
    assert_eq!(consent::accept(&app, &user("bob"), &view.channel_id).await.unwrap_err().code(), ErrorCode::NotFound);
}

#[tokio::test]
async fn an_invitation_is_good_until_fourteen_days_have_passed() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let view = membership::create_group(&app, &user("alice"), "team", vec![user("bob")]).await.unwrap();
    world.clock.advance(INVITATION_TTL_MS - 1);
    consent::accept(&app, &user("bob"), &view.channel_id).await.unwrap();
    assert!(is_member(&app, &view.channel_id, "bob").await);
}

#[tokio::test]
async fn an_invitation_lapses_after_fourteen_days_and_is_removed() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let view = membership::create_group(&app, &user("alice"), "team", vec![user("bob")]).await.unwrap();
    world.clock.advance(INVITATION_TTL_MS);
    assert!(pending_channels(&app, "bob").await.is_empty());
    assert!(app.invitations().pending(&user("bob")).await.unwrap().is_empty(), "removed from the store too");
    let err = consent::accept(&app, &user("bob"), &view.channel_id).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert!(!is_member(&app, &view.channel_id, "bob").await);
}

#[tokio::test]
async fn invitations_are_listed_oldest_first() {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    let first = membership::create_group(&app, &user("carol"), "b", vec![user("bob")]).await.unwrap().channel_id;
    world.clock.advance(1);
    let second = membership::create_group(&app, &user("alice"), "a", vec![user("bob")]).await.unwrap().channel_id;
    assert_eq!(pending_channels(&app, "bob").await, vec![first, second]);
}

#[tokio::test]
async fn blocking_withdraws_the_blocked_users_pending_invitations_only() {
    let (_world, app) = world_with(&["alice", "bob", "carol"]).await;
    let from_alice = membership::create_group(&app, &user("alice"), "a", vec![user("bob")]).await.unwrap().channel_id;
    let from_carol = membership::create_group(&app, &user("carol"), "c", vec![user("bob")]).await.unwrap().channel_id;
    consent::block(&app, &user("bob"), &user("alice")).await.unwrap();
    assert_eq!(pending_channels(&app, "bob").await, vec![from_carol]);
    assert_eq!(consent::accept(&app, &user("bob"), &from_alice).await.unwrap_err().code(), ErrorCode::NotFound);
}

#[tokio::test]
async fn a_blocked_user_cannot_invite_and_an_unblocked_one_can_again() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    consent::block(&app, &user("bob"), &user("alice")).await.unwrap();
    assert_eq!(consent::blocked(&app, &user("bob")).await.unwrap(), vec![user("alice")]);
    membership::create_group(&app, &user("alice"), "a", vec![user("bob")]).await.unwrap();
    assert!(pending_channels(&app, "bob").await.is_empty());
    consent::unblock(&app, &user("bob"), &user("alice")).await.unwrap();
    let c = membership::create_group(&app, &user("alice"), "b", vec![user("bob")]).await.unwrap().channel_id;
    assert_eq!(pending_channels(&app, "bob").await, vec![c]);
}

#[tokio::test]
async fn nobody_blocks_themselves() {
    let (_world, app) = world_with(&["alice"]).await;
    let err = consent::block(&app, &user("alice"), &user("alice")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert!(consent::blocked(&app, &user("alice")).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_block_list_holds_at_most_a_thousand_users() {
    let (_world, app) = world_with(&["alice"]).await;
    for i in 0..MAX_BLOCKED_USERS {
        assert!(app.blocks().block(&user("alice"), &user(&format!("u{i}")), MAX_BLOCKED_USERS).await.unwrap());
    }
    let err = consent::block(&app, &user("alice"), &user("one-more")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert_eq!(consent::blocked(&app, &user("alice")).await.unwrap().len(), MAX_BLOCKED_USERS);
    consent::block(&app, &user("alice"), &user("u7")).await.expect("blocking someone blocked already is fine");
}

/// `name` is in the most channels allowed.
async fn fill_channels(app: &App, name: &str) {
    for i in 0..MAX_CHANNELS_PER_USER {
        let id = channel(&format!("g-filler-{i}"));
        let owner = [(user(name), MemberRole::Owner)];
        app.channels().create(&id, ChannelKind::Group, Some("filler"), &owner, app.now_ms()).await.unwrap();
    }
}

#[tokio::test]
async fn a_user_in_a_thousand_channels_cannot_start_another() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    fill_channels(&app, "alice").await;
    let err = membership::create_group(&app, &user("alice"), "one more", vec![]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    let err = membership::open_direct(&app, &user("alice"), &user("bob")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    assert_eq!(app.channels().membership_count(&user("alice")).await.unwrap(), MAX_CHANNELS_PER_USER);
}

#[tokio::test]
async fn a_user_in_a_thousand_channels_cannot_accept_another_and_keeps_the_invitation() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let c = membership::create_group(&app, &user("alice"), "team", vec![user("bob")]).await.unwrap().channel_id;
    fill_channels(&app, "bob").await;
    let err = consent::accept(&app, &user("bob"), &c).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    assert!(!is_member(&app, &c, "bob").await);
    assert_eq!(pending_channels(&app, "bob").await, vec![c]);
}

#[tokio::test]
async fn opening_a_direct_channel_joins_the_opener_and_invites_the_other() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let view = membership::open_direct(&app, &user("alice"), &user("bob")).await.unwrap();
    assert_eq!(view.invited, vec![user("bob")]);
    assert!(is_member(&app, &view.channel_id, "alice").await);
    assert!(!is_member(&app, &view.channel_id, "bob").await);
    let pending = consent::pending(&app, &user("bob")).await.unwrap();
    assert_eq!((pending.len(), pending[0].kind, &pending[0].invited_by), (1, ChannelKind::Direct, &user("alice")));
}

#[tokio::test]
async fn the_other_opening_it_too_joins_and_uses_up_the_invitation() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    assert!(is_member(&app, &c, "bob").await);
    assert!(pending_channels(&app, "bob").await.is_empty());
    let roster = app.channels().roster(&c).await.unwrap().unwrap();
    assert_eq!(roster.meta.member_count, 2);
    assert_eq!(roster.meta.pair, vec![user("alice"), user("bob")]);
}

#[tokio::test]
async fn accepting_a_direct_invitation_joins_the_direct_channel() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let c = membership::open_direct(&app, &user("alice"), &user("bob")).await.unwrap().channel_id;
    consent::accept(&app, &user("bob"), &c).await.unwrap();
    assert!(is_member(&app, &c, "bob").await);
    assert_eq!(send(&app, "bob", "b1", &c, "hi alice").await.seq, 1);
}

#[tokio::test]
async fn opening_a_direct_channel_answers_the_same_whether_the_other_blocks_or_exists() {
    let (_world, app) = world_with(&["alice", "bob", "carol"]).await;
    consent::block(&app, &user("bob"), &user("alice")).await.unwrap();
    let blocked = membership::open_direct(&app, &user("alice"), &user("bob")).await.unwrap();
    let open = membership::open_direct(&app, &user("alice"), &user("carol")).await.unwrap();
    let unknown = membership::open_direct(&app, &user("alice"), &user("nobody")).await.unwrap();
    let shape = |v: &chat_domain::http::ChannelView| (v.kind, v.members.len(), v.invited.len());
    assert_eq!(shape(&blocked), shape(&open));
    assert_eq!(shape(&unknown), shape(&open));
    assert!(pending_channels(&app, "bob").await.is_empty());
    assert_eq!(pending_channels(&app, "carol").await.len(), 1);
}

#[tokio::test]
async fn nobody_opens_a_direct_channel_with_themselves() {
    let (_world, app) = world_with(&["alice"]).await;
    let err = membership::open_direct(&app, &user("alice"), &user("alice")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
}
