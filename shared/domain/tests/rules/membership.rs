//! Membership: groups (one owner, admins, up to 100 members) and direct channels; an owner
//! who leaves hands the group to an admin (the longest-standing one), else to the
//! longest-standing member; nobody leaves a direct channel.

use chat_domain::consent;
use chat_domain::membership::{self, MAX_GROUP_NAME_CHARS};
use chat_domain::memory::World;
use chat_domain::model::{ChannelKind, MAX_CHANNEL_MEMBERS, MemberRole};
use chat_domain::ports::Seat;
use chat_domain::{App, ErrorCode};

use crate::*;

async fn roles(app: &App, c: &ChannelId) -> Vec<(String, MemberRole)> {
    let roster = app.channels().roster(c).await.unwrap().unwrap();
    roster.members.iter().map(|m| (m.user_id.to_string(), m.role)).collect()
}

async fn owner_of(app: &App, c: &ChannelId) -> Vec<String> {
    roles(app, c).await.into_iter().filter(|(_, r)| *r == MemberRole::Owner).map(|(u, _)| u).collect()
}

/// `name` joins `c` as `role` through an invitation from its owner `by`.
async fn join_as(world: &World, app: &App, c: &ChannelId, by: &str, name: &str, role: MemberRole) {
    membership::add_members(app, &user(by), c, vec![user(name)], role).await.unwrap();
    world.clock.advance(1);
    consent::accept(app, &user(name), c).await.unwrap();
}

#[tokio::test]
async fn the_creator_owns_the_group_and_is_its_only_member_until_others_accept() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let view = membership::create_group(&app, &user("alice"), "  team  ", vec![user("bob")]).await.unwrap();
    assert_eq!(view.name.as_deref(), Some("team"));
    assert_eq!(roles(&app, &view.channel_id).await, vec![("alice".to_owned(), MemberRole::Owner)]);
    assert_eq!(view.invited, vec![user("bob")]);
}

#[tokio::test]
async fn an_owner_who_leaves_hands_the_group_to_an_admin_before_older_members() {
    let (world, app) = world_with(&["alice", "bob", "carol", "dave"]).await;
    let c = group(&world, &app, "alice", &["bob", "carol"]).await;
    join_as(&world, &app, &c, "alice", "dave", MemberRole::Admin).await;
    membership::remove_member(&app, &user("alice"), &c, &user("alice")).await.unwrap();
    assert_eq!(
        roles(&app, &c).await,
        vec![
            ("bob".to_owned(), MemberRole::Member),
            ("carol".to_owned(), MemberRole::Member),
            ("dave".to_owned(), MemberRole::Owner),
        ]
    );
}

#[tokio::test]
async fn among_admins_the_longest_standing_one_becomes_owner() {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    let c = group(&world, &app, "alice", &[]).await;
    join_as(&world, &app, &c, "alice", "carol", MemberRole::Admin).await;
    join_as(&world, &app, &c, "alice", "bob", MemberRole::Admin).await;
    membership::remove_member(&app, &user("alice"), &c, &user("alice")).await.unwrap();
    assert_eq!(owner_of(&app, &c).await, vec!["carol"]);
    assert_eq!(roles(&app, &c).await[0], ("bob".to_owned(), MemberRole::Admin));
}

#[tokio::test]
async fn without_admins_the_longest_standing_member_becomes_owner() {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    let c = group(&world, &app, "alice", &["carol", "bob"]).await;
    membership::remove_member(&app, &user("alice"), &c, &user("alice")).await.unwrap();
    assert_eq!(owner_of(&app, &c).await, vec!["carol"]);
}

#[tokio::test]
async fn members_who_joined_at_the_same_moment_are_ordered_by_user_id() {
    let (_world, app) = world_with(&["alice", "bob", "zed"]).await;
    let c = membership::create_group(&app, &user("alice"), "team", vec![user("zed"), user("bob")])
        .await
        .unwrap()
        .channel_id;
    consent::accept(&app, &user("zed"), &c).await.unwrap();
    consent::accept(&app, &user("bob"), &c).await.unwrap();
    membership::remove_member(&app, &user("alice"), &c, &user("alice")).await.unwrap();
    assert_eq!(owner_of(&app, &c).await, vec!["bob"]);
}

#[tokio::test]
async fn a_member_who_leaves_changes_nobodys_role() {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    let c = group(&world, &app, "alice", &["bob", "carol"]).await;
    membership::remove_member(&app, &user("bob"), &c, &user("bob")).await.unwrap();
    assert_eq!(
        roles(&app, &c).await,
        vec![("alice".to_owned(), MemberRole::Owner), ("carol".to_owned(), MemberRole::Member)]
    );
    assert_eq!(member_count(&app, &c).await, 2);
}

#[tokio::test]
async fn the_last_member_leaving_leaves_an_empty_group() {
    let (world, app) = world_with(&["alice"]).await;
    let c = group(&world, &app, "alice", &[]).await;
    membership::remove_member(&app, &user("alice"), &c, &user("alice")).await.unwrap();
    assert!(roles(&app, &c).await.is_empty());
    assert_eq!(member_count(&app, &c).await, 0);
}

#[tokio::test]
async fn nobody_leaves_a_direct_channel() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let c = direct(&app, "alice", "bob").await;
    let err = membership::remove_member(&app, &user("alice"), &c, &user("alice")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert_eq!(member_count(&app, &c).await, 2);
}

#[tokio::test]
async fn removing_someone_who_is_not_a_member_is_not_found() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = group(&world, &app, "alice", &[]).await;
    let err = membership::remove_member(&app, &user("alice"), &c, &user("bob")).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
}

#[tokio::test]
async fn a_group_name_is_one_to_a_hundred_characters() {
    let (_world, app) = world_with(&["alice"]).await;
    for bad in ["   ".to_owned(), "é".repeat(MAX_GROUP_NAME_CHARS + 1)] {
        let err = membership::create_group(&app, &user("alice"), &bad, vec![]).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
    }
    let longest = "é".repeat(MAX_GROUP_NAME_CHARS);
    let view = membership::create_group(&app, &user("alice"), &longest, vec![]).await.unwrap();
    assert_eq!(view.name, Some(longest));
    assert_eq!(app.channels().membership_count(&user("alice")).await.unwrap(), 1);
}

#[tokio::test]
async fn a_new_group_invites_at_most_ninety_nine_others() {
    let (_world, app) = world_with(&["alice"]).await;
    let others = |n: usize| (0..n).map(|i| user(&format!("u{i}"))).collect::<Vec<_>>();
    let err = membership::create_group(&app, &user("alice"), "big", others(MAX_CHANNEL_MEMBERS)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert_eq!(app.channels().membership_count(&user("alice")).await.unwrap(), 0);
    let mut with_repeats = others(MAX_CHANNEL_MEMBERS - 1);
    with_repeats.extend(others(10));
    with_repeats.push(user("alice"));
    let view = membership::create_group(&app, &user("alice"), "big", with_repeats).await.unwrap();
    assert_eq!(view.invited.len(), MAX_CHANNEL_MEMBERS - 1, "repeats and the creator are left out");
}

/// A group of alice and 99 others who joined.
async fn full_group(app: &App) -> ChannelId {
    let c = membership::create_group(app, &user("alice"), "full", vec![]).await.unwrap().channel_id;
    let seat = Seat { role: MemberRole::Member, kind: ChannelKind::Group, max_members: MAX_CHANNEL_MEMBERS as u64 };
    for i in 1..MAX_CHANNEL_MEMBERS {
        app.channels().join(&c, &user(&format!("u{i}")), seat, false, app.now_ms()).await.unwrap();
    }
    c
}

#[tokio::test]
async fn a_full_group_is_added_to_no_more() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let c = full_group(&app).await;
    let err =
        membership::add_members(&app, &user("alice"), &c, vec![user("bob")], MemberRole::Member).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert!(consent::pending(&app, &user("bob")).await.unwrap().is_empty());
}

#[tokio::test]
async fn accepting_into_a_group_that_filled_up_is_refused_and_the_invitation_stays() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    let c = membership::create_group(&app, &user("alice"), "soon full", vec![user("bob")]).await.unwrap().channel_id;
    let seat = Seat { role: MemberRole::Member, kind: ChannelKind::Group, max_members: MAX_CHANNEL_MEMBERS as u64 };
    for i in 1..MAX_CHANNEL_MEMBERS {
        app.channels().join(&c, &user(&format!("u{i}")), seat, false, app.now_ms()).await.unwrap();
    }
    let err = consent::accept(&app, &user("bob"), &c).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
    assert_eq!(member_count(&app, &c).await, MAX_CHANNEL_MEMBERS as u64);
    assert_eq!(consent::pending(&app, &user("bob")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn adding_someone_who_is_a_member_already_invites_nobody() {
    let (world, app) = world_with(&["alice", "bob"]).await;
    let c = group(&world, &app, "alice", &["bob"]).await;
    let view = membership::add_members(&app, &user("alice"), &c, vec![user("bob")], MemberRole::Member).await.unwrap();
    assert!(view.invited.is_empty());
    assert!(consent::pending(&app, &user("bob")).await.unwrap().is_empty());
}

#[tokio::test]
async fn members_are_added_to_groups_only() {
    let (_world, app) = world_with(&["alice", "bob", "carol"]).await;
    let c = direct(&app, "alice", "bob").await;
    let err =
        membership::add_members(&app, &user("alice"), &c, vec![user("carol")], MemberRole::Member).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRequest);
    assert!(consent::pending(&app, &user("carol")).await.unwrap().is_empty());
}

#[tokio::test]
async fn only_members_mute_a_channel() {
    let (world, app) = world_with(&["alice", "bob", "mallory"]).await;
    let c = group(&world, &app, "alice", &["bob"]).await;
    let err = membership::set_muted(&app, &user("mallory"), &c, true).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);
    membership::set_muted(&app, &user("bob"), &c, true).await.unwrap();
    let roster = app.channels().roster(&c).await.unwrap().unwrap();
    assert!(roster.member(&user("bob")).unwrap().muted);
    assert!(!roster.member(&user("alice")).unwrap().muted);
}

#[tokio::test]
async fn the_channel_list_puts_the_most_recently_active_first() {
    let (world, app) = world_with(&["alice", "bob", "carol"]).await;
    let quiet = group(&world, &app, "alice", &["bob"]).await;
    let busy = direct(&app, "alice", "carol").await;
    let empty = group(&world, &app, "alice", &[]).await;
    send(&app, "bob", "b1", &quiet, "old news").await;
    world.clock.advance(1_000);
    send(&app, "carol", "c1", &busy, "news").await;
    let list = membership::list_channels(&app, &user("alice")).await.unwrap();
    let order: Vec<ChannelId> = list.iter().map(|s| s.channel_id.clone()).collect();
    assert_eq!(order, vec![busy, quiet, empty]);
}

#[tokio::test]
async fn the_channel_list_names_the_other_person_of_a_direct_channel() {
    let (_world, app) = world_with(&["alice", "bob"]).await;
    direct(&app, "alice", "bob").await;
    let list = membership::list_channels(&app, &user("bob")).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].kind, list[0].peer.clone(), list[0].title()),
        (ChannelKind::Direct, Some(user("alice")), "alice")
    );
}
