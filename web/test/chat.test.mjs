// The web client in a real browser against the real backend (local gateway + moto): what
// people see when they sign up, chat, reload, lose the connection and hit the server's
// limits.

import assert from 'node:assert/strict';
import {
  APP_URL,
  INVITATION_TIMEOUT,
  PASSWORD,
  acceptInvitation,
  browserTest,
  cuttableNetwork,
  chatWith,
  createGroup,
  openChannel,
  send,
  texts,
  waitForTexts,
  waitOnline,
} from './helpers.mjs';

browserTest('two people sign up and chat in both directions', async ({ person }) => {
  const alice = await person('alice');
  const bob = await person('bob');

  await chatWith(alice.page, bob.username);
  // Bob is invited, not added: Alice's page says so.
  await alice.page.getByTestId('invited').filter({ hasText: `invited: ${bob.username}` }).waitFor();
  await send(alice.page, 'Hi Bob!');
  await waitForTexts(alice.page, ['Hi Bob!']);

  // Bob's invitations list it; accepting opens the chat with what was sent before.
  await acceptInvitation(bob.page, alice.username);
  await waitForTexts(bob.page, ['Hi Bob!']);
  await send(bob.page, 'Hello Alice');
  await waitForTexts(bob.page, ['Hi Bob!', 'Hello Alice']);
  await waitForTexts(alice.page, ['Hi Bob!', 'Hello Alice']);
  // Bob writing tells Alice's page that he joined.
  await alice.page.getByTestId('invited').waitFor({ state: 'hidden' });

  const fromBob = alice.page.locator('[data-testid="message"][data-author="' + bob.username + '"]');
  assert.equal(await fromBob.count(), 1);
  assert.equal(await fromBob.locator('.author').textContent(), bob.username);
});

browserTest('a reload keeps the session and the history', async ({ person }) => {
  const alice = await person('alice');
  const bob = await person('bob');
  await chatWith(alice.page, bob.username);
  for (const text of ['one', 'two', 'three']) await send(alice.page, text);
  await waitForTexts(alice.page, ['one', 'two', 'three']);
  await acceptInvitation(bob.page, alice.username);
  await send(bob.page, 'four');
  await waitForTexts(alice.page, ['one', 'two', 'three', 'four']);

  await alice.page.reload();
  await alice.page.getByTestId('me').filter({ hasText: alice.username }).waitFor();
  await waitOnline(alice.page);
  await openChannel(alice.page, bob.username);
  await waitForTexts(alice.page, ['one', 'two', 'three', 'four']);

  // And the connection after the reload is live.
  await send(bob.page, 'five');
  await waitForTexts(alice.page, ['one', 'two', 'three', 'four', 'five']);
});

browserTest('a dropped WebSocket reconnects and loses nothing either way', async ({ person }) => {
  // Alice's WebSockets go through a relay the test can cut, as a network would.
  const network = cuttableNetwork();
  const { relays } = network;
  const alice = await person('alice', { beforeLoad: network.beforeLoad });
  const bob = await person('bob');
  await chatWith(alice.page, bob.username);
  await send(alice.page, 'before the drop');
  await acceptInvitation(bob.page, alice.username);
  await waitForTexts(bob.page, ['before the drop']);
  assert.ok(relays.length >= 1, 'the relay carried the connection');

  network.cut();
  await alice.page.locator('[data-testid="connection"][data-state="waiting"]').waitFor();
  await alice.page.locator('[data-testid="status"]:not([data-state="open"])').waitFor();

  // While Alice is away Bob writes, and Alice writes too (it waits in her outbox).
  for (const text of ['missed 1', 'missed 2', 'missed 3']) await send(bob.page, text);
  await waitForTexts(bob.page, ['before the drop', 'missed 1', 'missed 2', 'missed 3']);
  await send(alice.page, 'written offline');
  await alice.page.locator('[data-testid="message"][data-state="queued"]').filter({ hasText: 'written offline' }).waitFor();

  network.restore();
  // Skip the rest of the backoff (a retry may already have got through).
  await alice.page.getByRole('button', { name: 'Reconnect now' }).click({ timeout: 1000 }).catch(() => {});
  await waitOnline(alice.page);
  const everything = ['before the drop', 'missed 1', 'missed 2', 'missed 3', 'written offline'];
  await waitForTexts(alice.page, everything);
  await waitForTexts(bob.page, everything);
  assert.ok(relays.length >= 1, 'Alice reconnected through the relay');

  // Nothing twice, even after another look at the server's history.
  await alice.page.reload();
  await waitOnline(alice.page);
  await openChannel(alice.page, bob.username);
  await waitForTexts(alice.page, everything);
});

browserTest('a rate-limited sender is told, and the messages still arrive in order', async ({ person }) => {
  const alice = await person('alice');
  const bob = await person('bob');
  await chatWith(alice.page, bob.username);

  // The backend allows 5 sends per 5 s per user, in windows aligned to the clock: a burst
  // that straddles two windows gets 10 through, never 12.
  const burst = Array.from({ length: 12 }, (_, i) => `burst ${i + 1}`);
  for (const text of burst) await send(alice.page, text);
  const notice = alice.page.locator('[data-testid="toast"][data-code="rate_limited"]');
  await notice.first().waitFor();
  // Said in words, with the wait the server asked for.
  assert.match(await notice.first().textContent(), /Too fast - try again in \d+ s/);

  await waitForTexts(alice.page, burst);
  await acceptInvitation(bob.page, alice.username);
  await waitForTexts(bob.page, burst);
});

browserTest('a refused send shows the reason and is not stored', async ({ person }) => {
  const owner = await person('owner');
  const member = await person('member');

  await createGroup(owner.page, 'Book club', [member.username]);
  await send(owner.page, 'Welcome!');

  await acceptInvitation(member.page, owner.username, 'Book club');
  await waitForTexts(member.page, ['Welcome!']);

  await owner.page.getByTestId('members-toggle').click();
  await owner.page.locator(`[data-testid="member"][data-user-id="${member.username}"] [data-testid="remove-member"]`).click();
  await owner.page.locator(`[data-testid="member"][data-user-id="${member.username}"]`).waitFor({ state: 'detached' });

  await send(member.page, 'am I still here?');
  const notice = member.page.locator('[data-testid="toast"][data-code="forbidden"]');
  await notice.first().waitFor();
  assert.match(await notice.first().textContent(), /not a member/);
  await member.page.locator('[data-testid="message"][data-state="failed"]').filter({ hasText: 'not a member' }).waitFor();

  await owner.page.reload();
  await waitOnline(owner.page);
  await openChannel(owner.page, 'Book club');
  await waitForTexts(owner.page, ['Welcome!']);
  assert.deepEqual(await texts(owner.page), ['Welcome!']);
});

browserTest('sign-in problems are shown on the form', async ({ person }) => {
  const alice = await person('alice');
  await alice.page.getByTestId('signout').click();
  const form = alice.page.getByTestId('signin-error');

  await alice.page.getByTestId('signin-username').fill(alice.username);
  await alice.page.getByTestId('signin-password').fill('wrong password');
  await alice.page.getByTestId('signin-submit').click();
  await form.filter({ hasText: 'wrong username or password' }).waitFor();

  await alice.page.getByTestId('signin-password').fill(PASSWORD);
  await alice.page.getByTestId('signup-submit').click();
  await form.filter({ hasText: 'is taken' }).waitFor();

  await alice.page.getByTestId('signin-submit').click();
  await alice.page.getByTestId('me').filter({ hasText: alice.username }).waitFor();
  assert.equal(new URL(alice.page.url()).href, APP_URL);
});

browserTest('unread counts and read receipts follow what each person has read', async ({ person }) => {
  const alice = await person('alice');
  const bob = await person('bob');
  await chatWith(bob.page, alice.username);
  await acceptInvitation(alice.page, bob.username);
  // After a reload Alice has no chat open.
  await alice.page.reload();
  await waitOnline(alice.page);
  await alice.page.getByTestId('channel-item').filter({ hasText: bob.username }).waitFor();
  await send(bob.page, 'news 1');
  await send(bob.page, 'news 2');
  await waitForTexts(bob.page, ['news 1', 'news 2']);

  // Alice has no chat open: the list counts what she has not read.
  const unread = alice.page.getByTestId('channel-item').filter({ hasText: bob.username }).getByTestId('unread');
  await unread.filter({ hasText: '2' }).waitFor();
  assert.equal(await bob.page.getByTestId('seen').count(), 0);

  await openChannel(alice.page, bob.username);
  await waitForTexts(alice.page, ['news 1', 'news 2']);
  await unread.waitFor({ state: 'detached' });
  // Bob's newest message says it was seen.
  await bob.page.locator('[data-testid="message"]').filter({ hasText: 'news 2' }).getByTestId('seen').waitFor();

  // The read position is the server's: a reload (another device, say) shows no unread.
  await alice.page.reload();
  await waitOnline(alice.page);
  await alice.page.getByTestId('channel-item').filter({ hasText: bob.username }).waitFor();
  assert.equal(await alice.page.getByTestId('unread').count(), 0);

  // With the chat open, a new message is read at once; with another one open, it counts.
  await openChannel(alice.page, bob.username);
  await send(bob.page, 'news 3');
  await waitForTexts(alice.page, ['news 1', 'news 2', 'news 3']);
  await bob.page.locator('[data-testid="message"]').filter({ hasText: 'news 3' }).getByTestId('seen').waitFor();
});

browserTest('typing and presence are shown to the other person', async ({ person }) => {
  const alice = await person('alice');
  const bob = await person('bob');
  await chatWith(alice.page, bob.username);
  await send(alice.page, 'hello');
  await acceptInvitation(bob.page, alice.username);

  // Both are connected: each sees the other online (Alice's page notices Bob joined with
  // its next poll; presence is only shown between people who share a direct chat).
  const online = (page, name) =>
    page.locator(`[data-testid="channel-item"][data-presence="online"]`).filter({ hasText: name });
  await online(alice.page, bob.username).waitFor({ timeout: INVITATION_TIMEOUT });
  await online(bob.page, alice.username).waitFor();
  await alice.page.getByTestId('channel-title').filter({ hasText: bob.username }).waitFor();
  assert.equal(await alice.page.locator('#subtitle').textContent(), 'online');
  await alice.page.getByTestId('invited').waitFor({ state: 'hidden' });

  await bob.page.getByTestId('composer-input').pressSequentially('I am wri', { delay: 20 });
  await alice.page.getByTestId('typing').filter({ hasText: `${bob.username} is typing` }).waitFor();
  await bob.page.getByTestId('composer-input').press('Enter');
  // Sending ends the typing indicator.
  await alice.page.getByTestId('typing').filter({ hasText: /^$/ }).waitFor();
  await waitForTexts(alice.page, ['hello', 'I am wri']);
});

browserTest('edits and deletions reach everyone and stay after a reload', async ({ person }) => {
  const alice = await person('alice');
  const bob = await person('bob');
  await chatWith(alice.page, bob.username);
  await send(alice.page, 'see you at 5');
  await send(alice.page, 'wrong chat, sorry');
  await acceptInvitation(bob.page, alice.username);
  await waitForTexts(bob.page, ['see you at 5', 'wrong chat, sorry']);

  const first = alice.page.locator('[data-testid="message"]').filter({ hasText: 'see you at 5' });
  await first.hover();
  await first.getByTestId('edit').click();
  await alice.page.getByTestId('editing').waitFor();
  await alice.page.getByTestId('composer-input').fill('see you at 6');
  await alice.page.getByTestId('composer-input').press('Enter');

  const second = alice.page.locator('[data-testid="message"]').filter({ hasText: 'wrong chat, sorry' });
  await second.hover();
  await second.getByTestId('delete').click();
  await second.getByTestId('delete').filter({ hasText: 'Delete?' }).click();

  for (const page of [alice.page, bob.page]) {
    await page.locator('[data-testid="message"][data-edited="true"]').filter({ hasText: 'see you at 6' }).waitFor();
    await page.locator('[data-testid="message"][data-deleted="true"]').filter({ hasText: 'This message was deleted' }).waitFor();
    assert.equal(await page.getByText('wrong chat, sorry').count(), 0);
  }
  // Bob cannot edit or delete Alice's message.
  assert.equal(await bob.page.getByTestId('edit').count(), 0);
  assert.equal(await bob.page.getByTestId('delete').count(), 0);

  await bob.page.reload();
  await waitOnline(bob.page);
  await openChannel(bob.page, alice.username);
  await waitForTexts(bob.page, ['see you at 6', 'This message was deleted']);
  assert.equal(await bob.page.locator('[data-testid="message"][data-edited="true"] .time').first().textContent().then((t) => t.startsWith('edited')), true);
});

browserTest('a file goes straight to storage and the other person can open it', async ({ person }) => {
  const alice = await person('alice');
  const bob = await person('bob');
  await chatWith(alice.page, bob.username);

  // A real (tiny) PNG: 1x1 pixel.
  const png = Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
    'base64',
  );
  await alice.page.getByTestId('attach').setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: png });
  await alice.page.locator('[data-testid="draft"][data-state="ready"]').filter({ hasText: 'dot.png' }).waitFor();
  await alice.page.getByTestId('composer-input').fill('a picture');
  await alice.page.getByTestId('composer-send').click();
  await alice.page.locator('[data-testid="message"][data-state="stored"]').filter({ hasText: 'a picture' }).waitFor();

  await acceptInvitation(bob.page, alice.username);
  const attachment = bob.page.getByTestId('attachment').filter({ hasText: 'dot.png' });
  await attachment.waitFor();
  // The image shows, and its link serves the bytes that were uploaded.
  await bob.page.waitForFunction(() => document.querySelector('[data-testid="attachment"] img')?.naturalWidth === 1);
  const response = await bob.page.request.get(await attachment.getAttribute('href'));
  assert.equal(response.status(), 200);
  assert.deepEqual(Buffer.from(await response.body()), png);
});

browserTest('muting a chat is kept by the server', async ({ person }) => {
  const alice = await person('alice');
  const bob = await person('bob');
  await chatWith(alice.page, bob.username);
  await alice.page.getByTestId('mute-toggle').filter({ hasText: 'Mute' }).click();
  await alice.page.getByTestId('mute-toggle').filter({ hasText: 'Unmute' }).waitFor();
  await alice.page.reload();
  await waitOnline(alice.page);
  await alice.page.getByTestId('channel-item').filter({ hasText: 'muted' }).waitFor();
  await openChannel(alice.page, bob.username);
  await alice.page.getByTestId('mute-toggle').filter({ hasText: 'Unmute' }).waitFor();
});

browserTest('an edit and a deletion made while a device was offline reach it when it is back', async ({ person }) => {
  // Bob's WebSockets go through a relay the test can cut, as a network would.
  const network = cuttableNetwork();
  const { relays } = network;
  const alice = await person('alice');
  const bob = await person('bob', { beforeLoad: network.beforeLoad });
  await chatWith(alice.page, bob.username);
  await send(alice.page, 'meet at the station');
  await send(alice.page, 'bring the tickets');
  await send(alice.page, 'see you');
  await acceptInvitation(bob.page, alice.username);
  await waitForTexts(bob.page, ['meet at the station', 'bring the tickets', 'see you']);

  network.cut();
  await bob.page.locator('[data-testid="status"]:not([data-state="open"])').waitFor();

  // While Bob is away, Alice changes two messages he already has.
  const first = alice.page.locator('[data-testid="message"]').filter({ hasText: 'meet at the station' });
  await first.hover();
  await first.getByTestId('edit').click();
  await alice.page.getByTestId('editing').waitFor();
  await alice.page.getByTestId('composer-input').fill('meet at the airport');
  await alice.page.getByTestId('composer-input').press('Enter');
  await alice.page.locator('[data-testid="message"][data-edited="true"]').filter({ hasText: 'meet at the airport' }).waitFor();
  const second = alice.page.locator('[data-testid="message"]').filter({ hasText: 'bring the tickets' });
  await second.hover();
  await second.getByTestId('delete').click();
  await second.hover();
  await second.getByTestId('delete').filter({ hasText: 'Delete?' }).click();
  await alice.page.locator('[data-testid="message"][data-deleted="true"]').waitFor();

  network.restore();
  await bob.page.getByRole('button', { name: 'Reconnect now' }).click({ timeout: 1000 }).catch(() => {});
  await waitOnline(bob.page);
  // No reload: the reconnect's sync brings the changes.
  await bob.page.locator('[data-testid="message"][data-edited="true"]').filter({ hasText: 'meet at the airport' }).waitFor();
  await bob.page.locator('[data-testid="message"][data-deleted="true"]').filter({ hasText: 'This message was deleted' }).waitFor();
  assert.equal(await bob.page.getByText('bring the tickets').count(), 0);
  assert.equal(await bob.page.getByText('meet at the station').count(), 0);
  assert.ok(relays.length >= 1, 'Bob reconnected through the relay');
});
