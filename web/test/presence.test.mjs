// Presence in the browser against the real backend: the page subscribes to the presence
// of the people it shows (nothing is pushed otherwise), idle devices, the state a person
// chooses (online, do not disturb, invisible) and custom statuses that expire.

import assert from 'node:assert/strict';
import {
  APP_URL,
  INVITATION_TIMEOUT,
  TIMEOUT,
  acceptInvitation,
  browserTest,
  cuttableNetwork,
  chatWith,
  send,
  waitForTexts,
  waitOnline,
} from './helpers.mjs';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `name`'s entry in the channel list of `page`, shown with `status`. */
function seenAs(page, name, status) {
  return page.locator(`[data-testid="channel-item"][data-presence="${status}"]`).filter({ hasText: name });
}

/** Alice and Bob share a direct chat, open on both pages, and see each other online. */
async function contacts(person, bobOptions = {}) {
  const alice = await person('alice');
  const bob = await person('bob', bobOptions);
  await chatWith(alice.page, bob.username);
  await send(alice.page, 'hello');
  await acceptInvitation(bob.page, alice.username);
  await waitForTexts(bob.page, ['hello']);
  // Alice's page notices that Bob joined with its next poll, and subscribes to him.
  await seenAs(alice.page, bob.username, 'online').waitFor({ timeout: INVITATION_TIMEOUT });
  await seenAs(bob.page, alice.username, 'online').waitFor();
  await alice.page.locator('#subtitle').filter({ hasText: /^online$/ }).waitFor();
  return { alice, bob };
}

/** The frames `page` sends (or, with `event` 'framereceived', receives) on its WebSockets
 * from now on, parsed: this page load and the next ones. */
function framesSent(page, event = 'framesent') {
  const frames = [];
  page.on('websocket', (ws) =>
    ws.on(event, ({ payload }) => {
      try {
        frames.push(JSON.parse(String(payload)));
      } catch {
        // Not a frame of ours.
      }
    }),
  );
  return frames;
}

/** Waits until `frames` holds one that `match` accepts. */
async function waitForFrame(frames, match, what) {
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    if (frames.some(match)) return;
    await sleep(100);
  }
  throw new Error(`no ${what} was sent; frames: ${JSON.stringify(frames)}`);
}

/** Does `act` every `everyMs` until `waiting` settles (a device that would go idle again
 * before the other page noticed it was back). */
async function keepDoing(act, waiting, everyMs = 400) {
  let done = false;
  const settled = waiting.finally(() => {
    done = true;
  });
  while (!done) {
    await act();
    await Promise.race([settled.catch(() => {}), sleep(everyMs)]);
  }
  return settled;
}

/** Everything `page` shows about the direct chat's other person `name`: the channel list
 * entry (its dot and text) and the open chat's header. */
async function howShown(page, name) {
  const item = page.getByTestId('channel-item').filter({ hasText: name });
  return {
    presence: await item.getAttribute('data-presence'),
    item: await item.innerText(),
    itemCustomStatus: await item.getByTestId('custom-status').count(),
    subtitle: await page.locator('#subtitle').textContent(),
    subtitlePresence: await page.locator('#subtitle').getAttribute('data-presence'),
    // The exact last-seen time (to the second).
    subtitleTitle: await page.locator('#subtitle').getAttribute('title'),
    peerStatusShown: await page.getByTestId('peer-status').isVisible(),
  };
}

browserTest('an idle device shows its person idle, and input makes them online again', async ({ person }) => {
  const { alice, bob } = await contacts(person);
  const sent = framesSent(bob.page);

  // Bob's page again, idle after 2 s without input instead of 5 minutes. Nobody touches it.
  await bob.page.goto(`${APP_URL}?idleAfterMs=2000`);
  await bob.page.getByTestId('me').filter({ hasText: bob.username }).waitFor();
  await waitOnline(bob.page);
  await seenAs(alice.page, bob.username, 'idle').waitFor();
  await alice.page.locator('#subtitle').filter({ hasText: /^idle$/ }).waitFor();
  await bob.page.locator('#my-avatar[data-presence="idle"]').waitFor();
  assert.ok(
    sent.some((f) => f.action === 'heartbeat' && f.idle === true),
    'an idle heartbeat was sent',
  );

  // Bob types: a plain heartbeat goes at once and Alice sees him online again (he keeps
  // typing: 2 s later his page would be idle again).
  const idleBeats = sent.length;
  await keepDoing(() => bob.page.keyboard.press('Shift'), seenAs(alice.page, bob.username, 'online').waitFor());
  assert.ok(
    sent.slice(idleBeats).some((f) => f.action === 'heartbeat' && !f.idle),
    'a plain heartbeat followed the input',
  );
  await bob.page.locator('#my-avatar[data-presence="online"]').waitFor();

  // Left alone again, idle again.
  await seenAs(alice.page, bob.username, 'idle').waitFor();
});

browserTest('do not disturb and invisible, as others see them, kept across a reload', async ({ person }) => {
  const { alice, bob } = await contacts(person);
  const sent = framesSent(bob.page);

  await bob.page.getByTestId('presence-state').selectOption('dnd');
  await seenAs(alice.page, bob.username, 'dnd').waitFor();
  await alice.page.locator('#subtitle').filter({ hasText: /^do not disturb$/ }).waitFor();
  await bob.page.locator('#my-avatar[data-presence="dnd"]').waitFor();

  // Invisible: Bob looks offline to Alice.
  await bob.page.getByTestId('presence-state').selectOption('invisible');
  await seenAs(alice.page, bob.username, 'offline').waitFor();
  await alice.page.locator('#subtitle').filter({ hasText: /^(last seen .+|offline)$/ }).waitFor();
  const invisible = await howShown(alice.page, bob.username);

  // Bob's page remembers his choice across a reload and tells the server again.
  sent.length = 0;
  await bob.page.reload();
  await waitOnline(bob.page);
  assert.equal(await bob.page.getByTestId('presence-state').inputValue(), 'invisible');
  await waitForFrame(sent, (f) => f.action === 'setPresence' && f.state === 'invisible', 'setPresence invisible');
  await bob.page.locator('#my-avatar[data-presence="invisible"]').waitFor();

  // Alice, reloaded (she subscribes afresh), still sees him exactly as before.
  await alice.page.reload();
  await waitOnline(alice.page);
  await seenAs(alice.page, bob.username, 'offline').waitFor();
  await alice.page.getByTestId('channel-item').filter({ hasText: bob.username }).click();
  await alice.page.locator('#subtitle[data-presence="offline"]').waitFor();
  assert.deepEqual(await howShown(alice.page, bob.username), invisible);

  // Bob really goes: Alice sees the very same thing once the server noticed (a 5 s grace
  // after the last connection closes, then a sweep every 5 s).
  await bob.context.close();
  await sleep(12_000);
  await alice.page.reload();
  await waitOnline(alice.page);
  await alice.page.getByTestId('channel-item').filter({ hasText: bob.username }).click();
  await alice.page.locator('#subtitle[data-presence="offline"]').waitFor();
  assert.deepEqual(await howShown(alice.page, bob.username), invisible);
});

browserTest('a custom status shows with its person until it expires, and can be cleared', async ({ person }) => {
  const { alice, bob } = await contacts(person);
  const bobItem = alice.page.getByTestId('channel-item').filter({ hasText: bob.username });

  // The editor offers never, 1 hour and today; the test adds 8 seconds.
  await bob.page.getByTestId('my-status-summary').click();
  await bob.page.getByTestId('status-emoji').fill('📅');
  await bob.page.getByTestId('status-text').fill('In a meeting');
  await bob.page.getByTestId('status-expiry').evaluate((select) => select.add(new Option('8 seconds', '8000')));
  await bob.page.getByTestId('status-expiry').selectOption('8000');
  const setAt = Date.now();
  await bob.page.getByTestId('status-save').click();
  await bob.page.getByTestId('my-status-summary').filter({ hasText: 'In a meeting' }).waitFor();

  await bobItem.getByTestId('custom-status').filter({ hasText: '📅' }).filter({ hasText: 'In a meeting' }).waitFor();
  await alice.page.getByTestId('peer-status').filter({ hasText: '📅' }).filter({ hasText: 'In a meeting' }).waitFor();
  assert.ok(Date.now() < setAt + 8000, 'Alice saw the status before it expired');
  // Presence itself did not change.
  await seenAs(alice.page, bob.username, 'online').waitFor();

  // It goes by itself when it expires, on both pages.
  await bobItem.getByTestId('custom-status').waitFor({ state: 'detached', timeout: 8000 + TIMEOUT });
  assert.ok(Date.now() >= setAt + 7000, 'it showed until it expired');
  await alice.page.getByTestId('peer-status').waitFor({ state: 'hidden' });
  await bob.page.getByTestId('my-status-summary').filter({ hasText: 'Set a status' }).waitFor();
  // And the server no longer tells anyone about it.
  const received = framesSent(alice.page, 'framereceived');
  await alice.page.reload();
  await waitOnline(alice.page);
  await seenAs(alice.page, bob.username, 'online').waitFor();
  assert.equal(await alice.page.getByTestId('custom-status').count(), 0);
  const aboutBob = received.flatMap((f) => (f.type === 'presenceState' ? f.users : f.type === 'presence' ? [f] : []));
  assert.ok(aboutBob.some((u) => u.userId === bob.username), 'Alice was told about Bob');
  assert.deepEqual(
    aboutBob.filter((u) => u.userId === bob.username && u.customStatus),
    [],
    'an expired custom status was sent',
  );

  // A status without expiry stays across Bob's reload, until he clears it.
  await bob.page.getByTestId('my-status-summary').click();
  await bob.page.getByTestId('status-emoji').fill('🌴');
  await bob.page.getByTestId('status-text').fill('On holiday');
  await bob.page.getByTestId('status-save').click();
  await bobItem.getByTestId('custom-status').filter({ hasText: 'On holiday' }).waitFor();
  await bob.page.reload();
  await waitOnline(bob.page);
  await bob.page.getByTestId('my-status-summary').filter({ hasText: 'On holiday' }).waitFor();
  await bob.page.getByTestId('my-status-summary').click();
  assert.equal(await bob.page.getByTestId('status-text').inputValue(), 'On holiday');
  await bob.page.getByTestId('status-clear').click();
  await bob.page.getByTestId('my-status-summary').filter({ hasText: 'Set a status' }).waitFor();
  await bobItem.getByTestId('custom-status').waitFor({ state: 'detached' });
  await seenAs(alice.page, bob.username, 'online').waitFor();
});

browserTest('presence keeps coming after a reconnect', async ({ person }) => {
  // Alice's WebSockets go through a relay the test can cut, as a network would.
  const network = cuttableNetwork();
  const { relays } = network;
  const alice = await person('alice', { beforeLoad: network.beforeLoad });
  const bob = await person('bob');
  await chatWith(alice.page, bob.username);
  await send(alice.page, 'hello');
  await acceptInvitation(bob.page, alice.username);
  await seenAs(alice.page, bob.username, 'online').waitFor({ timeout: INVITATION_TIMEOUT });

  network.cut();
  await alice.page.locator('[data-testid="status"]:not([data-state="open"])').waitFor();
  network.restore();
  await alice.page.getByRole('button', { name: 'Reconnect now' }).click({ timeout: 1000 }).catch(() => {});
  await waitOnline(alice.page);
  await seenAs(alice.page, bob.username, 'online').waitFor();

  // The new connection subscribed again: Bob's changes reach Alice.
  await bob.page.getByTestId('presence-state').selectOption('dnd');
  await seenAs(alice.page, bob.username, 'dnd').waitFor();
  await bob.page.getByTestId('presence-state').selectOption('online');
  await seenAs(alice.page, bob.username, 'online').waitFor();
  assert.ok(relays.length >= 1, 'Alice reconnected through the relay');
});
