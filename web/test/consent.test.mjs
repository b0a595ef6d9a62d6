// Consent in the web client against the real backend: nobody is put into a chat without
// accepting an invitation, whoever declines stays out, and whoever is blocked cannot reach
// the person who blocked them (no invitations, no presence) until unblocked.

import assert from 'node:assert/strict';
import {
  GATEWAY_URL,
  INVITATION_TIMEOUT,
  acceptInvitation,
  browserTest,
  chatWith,
  createGroup,
  declineInvitation,
  invitation,
  openChannel,
  pageNow,
  send,
  storedSession,
  waitForInvitationPoll,
  waitForTexts,
  waitOnline,
} from './helpers.mjs';

/** Collects the text of every WebSocket frame the page receives (set up before it loads). */
function recordFrames(frames) {
  return (page) => {
    page.on('websocket', (ws) => ws.on('framereceived', ({ payload }) => frames.push(String(payload))));
  };
}

browserTest('a group invitation: who accepts joins with the history, who declines gets nothing', async ({ person }) => {
  const owner = await person('owner');
  const bob = await person('bob');
  const carolFrames = [];
  const carol = await person('carol', { beforeLoad: recordFrames(carolFrames) });

  await createGroup(owner.page, 'Trip', [bob.username]);
  const groupId = await owner.page.getByTestId('channel-item').filter({ hasText: 'Trip' }).getAttribute('data-channel-id');
  // Invited is not a member: the group has its owner only.
  await owner.page.getByTestId('invited').filter({ hasText: `invited: ${bob.username}` }).waitFor();
  await owner.page.locator('#subtitle').filter({ hasText: /^Group · 1 member\b/ }).waitFor();

  // Adding someone invites them too.
  await owner.page.getByTestId('members-toggle').click();
  await owner.page.getByTestId('add-member-input').fill(carol.username);
  await owner.page.getByTestId('add-member-submit').click();
  await owner.page.locator(`[data-testid="member-invited"][data-user-id="${carol.username}"]`).waitFor();
  await owner.page.getByTestId('invited').filter({ hasText: `invited: ${bob.username}, ${carol.username}` }).waitFor();
  assert.deepEqual(await owner.page.locator('[data-testid="member"]').evaluateAll((n) => n.map((e) => e.dataset.userId)), [
    owner.username,
  ]);
  await send(owner.page, 'before anyone joined');
  await waitForTexts(owner.page, ['before anyone joined']);

  // Bob accepts: the group opens with what was said before he joined.
  const offer = invitation(bob.page, owner.username, 'Trip');
  await offer.waitFor({ timeout: INVITATION_TIMEOUT });
  assert.equal(await offer.getAttribute('data-channel-id'), groupId);
  await acceptInvitation(bob.page, owner.username, 'Trip');
  await waitForTexts(bob.page, ['before anyone joined']);

  // Carol declines: no chat for her, on this page or after a reload.
  await declineInvitation(carol.page, owner.username, 'Trip');
  assert.equal(await carol.page.getByTestId('channel-item').count(), 0);

  await send(owner.page, 'after bob joined');
  await waitForTexts(bob.page, ['before anyone joined', 'after bob joined']);
  await send(bob.page, 'hello from bob');
  await waitForTexts(owner.page, ['before anyone joined', 'after bob joined', 'hello from bob']);

  // The owner's page, reloaded: two members, Bob online (a group's presence is asked for
  // by the group: asked for by user, Bob would look offline to someone without a direct
  // chat with him).
  await owner.page.reload();
  await waitOnline(owner.page);
  await openChannel(owner.page, 'Trip');
  await owner.page.locator('#subtitle').filter({ hasText: 'Group · 2 members · 1 online' }).waitFor();
  await owner.page.getByTestId('members-toggle').click();
  await owner.page.locator(`[data-testid="member"][data-user-id="${bob.username}"][data-presence="online"]`).waitFor();
  assert.equal(await owner.page.locator(`[data-testid="member"][data-user-id="${carol.username}"]`).count(), 0);

  // Carol never got anything of the group, and the server keeps her out.
  await carol.page.reload();
  await waitOnline(carol.page);
  await waitForInvitationPoll(carol.page, 0);
  assert.equal(await carol.page.getByTestId('invitation').count(), 0);
  assert.equal(await carol.page.getByTestId('channel-item').count(), 0);
  const leaked = carolFrames.filter((frame) => frame.includes(groupId) || frame.includes('after bob joined'));
  assert.deepEqual(leaked, [], 'frames of the group reached Carol');
  const { accessToken } = await storedSession(carol.page);
  const late = await fetch(`${GATEWAY_URL}/invitations/${groupId}/accept`, {
    method: 'POST',
    headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(late.status, 404, 'a declined invitation cannot be accepted any more');
});

browserTest('opening the direct chat one was invited to accepts it', async ({ person }) => {
  const alice = await person('alice');
  const bob = await person('bob');
  await chatWith(alice.page, bob.username);
  await send(alice.page, 'are you there?');
  await invitation(bob.page, alice.username).waitFor({ timeout: INVITATION_TIMEOUT });

  // Bob opens the chat himself instead of clicking Accept: he is in, the invitation is gone.
  await chatWith(bob.page, alice.username);
  await waitForTexts(bob.page, ['are you there?']);
  await invitation(bob.page, alice.username).waitFor({ state: 'detached' });
  await send(bob.page, 'yes');
  await waitForTexts(alice.page, ['are you there?', 'yes']);
});

browserTest("a blocked user's invitations never arrive; unblocking lets new ones through", async ({ person }) => {
  const alice = await person('alice');
  const bob = await person('bob');

  // Bob blocks Alice from her first invitation; it goes away.
  await createGroup(alice.page, 'Spam', [bob.username]);
  const spam = invitation(bob.page, alice.username, 'Spam');
  await spam.getByTestId('invitation-block').click({ timeout: INVITATION_TIMEOUT });
  await spam.waitFor({ state: 'detached' });
  await bob.page.getByTestId('blocked-toggle').click();
  const blockedAlice = bob.page.getByTestId('blocked-list').locator(`[data-testid="blocked-user"][data-user-id="${alice.username}"]`);
  await blockedAlice.waitFor();

  // Alice gets the usual answers (nothing tells her she is blocked)...
  await chatWith(alice.page, bob.username);
  await alice.page.getByTestId('invited').filter({ hasText: `invited: ${bob.username}` }).waitFor();
  await send(alice.page, 'sent while blocked');
  await waitForTexts(alice.page, ['sent while blocked']);
  await createGroup(alice.page, 'Spam again', [bob.username]);
  await alice.page.getByTestId('invited').filter({ hasText: `invited: ${bob.username}` }).waitFor();

  // ...but Bob's invitations stay empty, polled after all that, and after a reload.
  await waitForInvitationPoll(bob.page, await pageNow(bob.page));
  assert.equal(await bob.page.getByTestId('invitation').count(), 0);
  assert.equal(await bob.page.getByTestId('channel-item').count(), 0);
  await bob.page.reload();
  await waitOnline(bob.page);
  await waitForInvitationPoll(bob.page, 0);
  assert.equal(await bob.page.getByTestId('invitation').count(), 0);
  assert.equal(await bob.page.getByTestId('channel-item').count(), 0);
  await bob.page.getByTestId('blocked-toggle').click();
  await blockedAlice.waitFor();

  // Unblocked (from the list), Alice's next invitation arrives; the earlier ones do not.
  await blockedAlice.getByTestId('unblock-user').click();
  await blockedAlice.waitFor({ state: 'detached' });
  await createGroup(alice.page, 'Third time', [bob.username]);
  await send(alice.page, 'third time lucky');
  await acceptInvitation(bob.page, alice.username, 'Third time');
  await waitForTexts(bob.page, ['third time lucky']);
  assert.equal(await bob.page.getByTestId('invitation').count(), 0);
  assert.equal(await bob.page.getByTestId('channel-item').filter({ hasText: 'Spam' }).count(), 0);

  // The direct chat Alice opened while blocked: Bob can join it by opening it himself.
  await chatWith(bob.page, alice.username);
  await waitForTexts(bob.page, ['sent while blocked']);
  await send(bob.page, 'sorry, hi');
  await openChannel(alice.page, bob.username);
  await waitForTexts(alice.page, ['sent while blocked', 'sorry, hi']);
});

browserTest('blocking from a direct chat hides presence until unblocked', async ({ person }) => {
  const alice = await person('alice');
  const bob = await person('bob');
  await chatWith(alice.page, bob.username);
  await send(alice.page, 'hi');
  await acceptInvitation(bob.page, alice.username);
  await send(bob.page, 'hey');
  await waitForTexts(alice.page, ['hi', 'hey']);
  const bobSeenAs = (status) =>
    alice.page.locator(`[data-testid="channel-item"][data-presence="${status}"]`).filter({ hasText: bob.username });
  await bobSeenAs('online').waitFor();

  // Bob blocks Alice from the chat's header.
  await bob.page.getByTestId('block-user').click();
  await bob.page.locator(`#block-toggle[data-testid="unblock-user"][data-user-id="${alice.username}"]`).waitFor();
  await bob.page.getByTestId('blocked-toggle').click();
  await bob.page.getByTestId('blocked-list').locator(`[data-testid="blocked-user"][data-user-id="${alice.username}"]`).waitFor();

  // Alice asks again (a reload): Bob, still connected, looks offline to her.
  await alice.page.reload();
  await waitOnline(alice.page);
  await bobSeenAs('offline').waitFor();
  await openChannel(alice.page, bob.username);
  assert.equal(await alice.page.locator('#subtitle').textContent(), 'offline');

  // Unblocked from the header: Alice sees him online again.
  await bob.page.locator('#block-toggle[data-testid="unblock-user"]').click();
  await bob.page.locator('#block-toggle[data-testid="block-user"]').waitFor();
  await bob.page.getByTestId('blocked-list').getByTestId('blocked-user').waitFor({ state: 'detached' });
  await alice.page.reload();
  await waitOnline(alice.page);
  await bobSeenAs('online').waitFor();
});
