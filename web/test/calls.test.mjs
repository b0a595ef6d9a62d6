// Voice and video calls in the browser against the real backend: ringing on every device of
// the callee, WebRTC media between two pages (Chromium's fake camera and microphone, kept
// on 127.0.0.1 by loopback.mjs), hanging up, declining, cancelling, ringing out unanswered,
// and the entries calls leave in the conversation.

import assert from 'node:assert/strict';
import {
  TIMEOUT,
  acceptInvitation,
  browserTest,
  chatWith,
  createGroup,
  openChannel,
  send,
  useBrowserArgs,
  waitForTexts,
  waitOnline,
} from './helpers.mjs';
import { CALL_BROWSER_ARGS, loopbackOnly } from './loopback.mjs';

useBrowserArgs(CALL_BROWSER_ARGS);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const LOOPBACK_CANDIDATE = /^candidate:\S+ \d+ \S+ \d+ 127\.0\.0\.1 /;

/** A person whose pages keep WebRTC on 127.0.0.1 and record the frames of their sockets
 * (`frames.sent`, `frames.received`, parsed). */
async function someone(person, prefix, options = {}) {
  const frames = { sent: [], received: [] };
  const who = await person(prefix, {
    ...options,
    beforeLoad: async (page) => {
      await page.context().addInitScript(loopbackOnly);
      page.on('websocket', (ws) => {
        for (const [event, list] of [
          ['framesent', frames.sent],
          ['framereceived', frames.received],
        ]) {
          ws.on(event, ({ payload }) => {
            try {
              list.push(JSON.parse(String(payload)));
            } catch {
              // Not a frame of ours.
            }
          });
        }
      });
    },
  });
  return { ...who, frames };
}

/** Alice and Bob share a direct chat, open on both pages, and Alice's page knows Bob
 * joined it (the call buttons work from then on). */
async function contacts(person) {
  const alice = await someone(person, 'alice');
  const bob = await someone(person, 'bob');
  await chatWith(alice.page, bob.username);
  await send(alice.page, 'hello');
  await acceptInvitation(bob.page, alice.username);
  // Bob writing tells Alice's page that he joined.
  await send(bob.page, 'hi');
  await waitForTexts(alice.page, ['hello', 'hi']);
  await alice.page.locator('[data-testid="call-audio"]:not([disabled])').waitFor();
  return { alice, bob };
}

/** Waits until `frames` holds one that `match` accepts, and answers it. */
async function frame(frames, match, what) {
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    const found = frames.find(match);
    if (found) return found;
    await sleep(100);
  }
  throw new Error(`no ${what}; frames: ${JSON.stringify(frames).slice(0, 2000)}`);
}

function inCall(page, state) {
  return page.locator(state ? `[data-testid="in-call"][data-call-state="${state}"]` : '[data-testid="in-call"]');
}

function callEntry(page, outcome) {
  return page.locator(`[data-testid="call-entry"][data-outcome="${outcome}"]`);
}

/** The text of the conversation's only call entry with `outcome`, once it shows. */
async function entryText(page, outcome) {
  const entry = callEntry(page, outcome);
  await entry.waitFor();
  assert.equal(await entry.count(), 1, `one ${outcome} call entry`);
  return entry.locator('.call-text').textContent();
}

/** Bytes of media `page`'s call received so far, by kind (inbound-rtp statistics); null
 * without a call. */
function received(page) {
  return page.evaluate(async () => {
    const pc = window.__chatCall.pc();
    if (!pc) return null;
    const bytes = { audio: 0, video: 0 };
    (await pc.getStats()).forEach((report) => {
      if (report.type === 'inbound-rtp') bytes[report.kind] += report.bytesReceived ?? 0;
    });
    return bytes;
  });
}

/** Media of `kinds` arrives on `page`, and more of it a second later. */
async function assertMediaFlows(page, kinds) {
  const deadline = Date.now() + TIMEOUT;
  let first = null;
  while (Date.now() < deadline) {
    first = await received(page);
    if (first && kinds.every((kind) => first[kind] > 0)) break;
    await sleep(200);
  }
  assert.ok(first && kinds.every((kind) => first[kind] > 0), `${kinds} arrived: ${JSON.stringify(first)}`);
  await sleep(1000);
  const second = await received(page);
  for (const kind of kinds) {
    assert.ok(second[kind] > first[kind], `${kind} keeps coming: ${first[kind]} bytes, then ${second[kind]}`);
  }
}

/** Every ICE candidate `who` sent over the chat had the address 127.0.0.1 (and some went). */
function assertLoopbackCandidates(who) {
  const candidates = who.frames.sent
    .filter((f) => f.action === 'callSignal' && f.signal?.type === 'candidate')
    .map((f) => f.signal.candidate.candidate);
  assert.ok(candidates.length > 0, `${who.username} sent candidates`);
  for (const candidate of candidates) assert.match(candidate, LOOPBACK_CANDIDATE);
}

browserTest('a video call connects both ways, hangs up, and leaves an answered entry', async ({ person }) => {
  const { alice, bob } = await contacts(person);

  await alice.page.getByTestId('call-video').click();
  const calling = alice.page.getByTestId('outgoing-call');
  await calling.waitFor();
  assert.match(await calling.textContent(), /Calling…/);
  const ringing = bob.page.getByTestId('incoming-call');
  await ringing.waitFor();
  assert.equal(await ringing.getByTestId('incoming-caller').textContent(), alice.username);
  assert.equal(await ringing.getByTestId('incoming-media').textContent(), 'Incoming video call');

  await bob.page.getByTestId('call-accept').click();
  await ringing.waitFor({ state: 'hidden' });
  await calling.waitFor({ state: 'hidden' });
  await Promise.all([inCall(alice.page, 'connected').waitFor(), inCall(bob.page, 'connected').waitFor()]);
  await Promise.all([assertMediaFlows(alice.page, ['audio', 'video']), assertMediaFlows(bob.page, ['audio', 'video'])]);
  // The other side's picture plays, our own shows as a preview, and the timer runs.
  for (const page of [alice.page, bob.page]) {
    await page.waitForFunction(() => document.getElementById('remote-media').videoWidth > 0);
    await page.getByTestId('local-preview').waitFor();
    await page.getByTestId('call-timer').filter({ hasText: /^0:(0[1-9]|[1-5]\d)$/ }).waitFor();
  }
  assertLoopbackCandidates(alice);
  assertLoopbackCandidates(bob);
  // The caller offered, the callee answered.
  assert.ok(alice.frames.sent.some((f) => f.action === 'callSignal' && f.signal.type === 'offer'), 'Alice offered');
  assert.ok(bob.frames.sent.some((f) => f.action === 'callSignal' && f.signal.type === 'answer'), 'Bob answered');

  // Bob mutes and turns his camera off: his tracks stop (and come back).
  const bobTracks = () =>
    bob.page.evaluate(() =>
      Object.fromEntries(window.__chatCall.pc().getSenders().map((s) => [s.track.kind, s.track.enabled])),
    );
  await bob.page.getByTestId('call-mute').click();
  await bob.page.getByTestId('call-camera').click();
  assert.deepEqual(await bobTracks(), { audio: false, video: false });
  assert.equal(await bob.page.getByTestId('call-mute').getAttribute('aria-pressed'), 'true');
  await bob.page.getByTestId('call-mute').click();
  await bob.page.getByTestId('call-camera').click();
  assert.deepEqual(await bobTracks(), { audio: true, video: true });

  await alice.page.getByTestId('call-hangup').click();
  await inCall(alice.page).waitFor({ state: 'hidden' });
  await inCall(bob.page).waitFor({ state: 'hidden' });
  for (const page of [alice.page, bob.page]) {
    assert.equal(await page.evaluate(() => window.__chatCall.pc()), null, 'the peer connection is gone');
  }
  const ended = await frame(bob.frames.received, (f) => f.type === 'callEnded', 'callEnded for Bob');
  assert.equal(ended.call.outcome, 'answered');

  // Both conversations show the call with its duration, also after a reload (history).
  for (const who of [alice, bob]) {
    assert.match(await entryText(who.page, 'answered'), /^Video call · \d+:\d\d$/);
    await who.page.reload();
    await waitOnline(who.page);
    await openChannel(who.page, who === alice ? bob.username : alice.username);
    assert.match(await entryText(who.page, 'answered'), /^Video call · \d+:\d\d$/);
    await waitForTexts(who.page, ['hello', 'hi']);
  }
  assert.equal(await callEntry(alice.page, 'answered').getAttribute('data-author'), alice.username);
});

browserTest('a call rings on every device of the callee and stops where it was not answered', async ({ person }) => {
  const { alice, bob } = await contacts(person);
  const bob2 = await someone(person, 'bob', { username: bob.username });

  await alice.page.getByTestId('call-audio').click();
  await bob.page.getByTestId('incoming-call').waitFor();
  await bob2.page.getByTestId('incoming-call').waitFor();
  assert.equal(await bob2.page.getByTestId('incoming-media').textContent(), 'Incoming voice call');

  await bob.page.getByTestId('call-accept').click();
  await bob2.page.getByTestId('incoming-call').waitFor({ state: 'hidden' });
  await bob2.page.getByTestId('toast').filter({ hasText: 'Answered on another device' }).waitFor();
  await Promise.all([inCall(alice.page, 'connected').waitFor(), inCall(bob.page, 'connected').waitFor()]);
  await Promise.all([assertMediaFlows(alice.page, ['audio']), assertMediaFlows(bob.page, ['audio'])]);
  // The other device stays out of it: no call screen, no peer connection, no signalling.
  assert.equal(await inCall(bob2.page).isVisible(), false);
  assert.equal(await bob2.page.evaluate(() => window.__chatCall.pc()), null);
  assert.equal(bob2.frames.received.filter((f) => f.type === 'callSignal').length, 0);
  assert.equal(bob2.frames.sent.filter((f) => f.action && f.action.endsWith('Call')).length, 0);

  await bob.page.getByTestId('call-hangup').click();
  await inCall(alice.page).waitFor({ state: 'hidden' });
  await inCall(bob.page).waitFor({ state: 'hidden' });
  assert.match(await entryText(alice.page, 'answered'), /^Voice call · \d+:\d\d$/);
  assert.match(await entryText(bob.page, 'answered'), /^Voice call · \d+:\d\d$/);
  await openChannel(bob2.page, alice.username);
  assert.match(await entryText(bob2.page, 'answered'), /^Voice call · \d+:\d\d$/);
});

browserTest('an unanswered call rings until its time is up and is missed on both sides', async ({ person }) => {
  const { alice, bob } = await contacts(person);

  await alice.page.getByTestId('call-audio').click();
  const ringing = bob.page.getByTestId('incoming-call');
  await ringing.waitFor();
  await alice.page.getByTestId('outgoing-call').waitFor();
  const { call } = await frame(alice.frames.received, (f) => f.type === 'callStarted', 'callStarted');
  // scripts/web-test.sh sets CALL_RING_SECONDS=8.
  const ringMs = call.ringUntil - call.startedAt;
  assert.ok(ringMs >= 5000 && ringMs <= 10_000, `the call rings for ${ringMs} ms (CALL_RING_SECONDS=8?)`);

  await ringing.waitFor({ state: 'hidden', timeout: ringMs + TIMEOUT });
  assert.ok(Date.now() >= call.ringUntil - 1000, 'it rang until ringUntil');
  await alice.page.getByTestId('outgoing-call').waitFor({ state: 'hidden' });
  // The caller's page ended the call itself; nobody got into it.
  await frame(alice.frames.sent, (f) => f.action === 'endCall' && f.callId === call.callId, 'endCall from Alice');
  assert.equal(await inCall(bob.page).isVisible(), false);

  assert.equal(await entryText(alice.page, 'missed'), 'Missed voice call');
  assert.equal(await entryText(bob.page, 'missed'), 'Missed voice call');
});

browserTest('a declined call and a cancelled one end on both sides', async ({ person }) => {
  const { alice, bob } = await contacts(person);

  await alice.page.getByTestId('call-video').click();
  await bob.page.getByTestId('incoming-call').waitFor();
  await bob.page.getByTestId('call-decline').click();
  await bob.page.getByTestId('incoming-call').waitFor({ state: 'hidden' });
  await alice.page.getByTestId('outgoing-call').waitFor({ state: 'hidden' });
  await alice.page.getByTestId('toast').filter({ hasText: `${bob.username} declined the call` }).waitFor();
  assert.equal(await entryText(alice.page, 'declined'), 'Declined video call');
  assert.equal(await entryText(bob.page, 'declined'), 'Declined video call');

  // Alice calls again and thinks better of it: Bob's page stops ringing.
  await alice.page.locator('[data-testid="call-audio"]:not([disabled])').click();
  await bob.page.getByTestId('incoming-call').waitFor();
  await alice.page.getByTestId('call-cancel').click();
  await alice.page.getByTestId('outgoing-call').waitFor({ state: 'hidden' });
  await bob.page.getByTestId('incoming-call').waitFor({ state: 'hidden' });
  assert.equal(await entryText(alice.page, 'missed'), 'Missed voice call');
  assert.equal(await entryText(bob.page, 'missed'), 'Missed voice call');
  for (const who of [alice, bob]) {
    assert.equal(await inCall(who.page).isVisible(), false);
    assert.equal(await who.page.evaluate(() => window.__chatCall.pc()), null);
  }
});

browserTest('groups have no call buttons; direct chats have both', async ({ person }) => {
  const { alice, bob } = await contacts(person);
  for (const id of ['call-audio', 'call-video']) assert.equal(await alice.page.getByTestId(id).isVisible(), true);
  await createGroup(alice.page, 'Team', [bob.username]);
  for (const id of ['call-audio', 'call-video']) {
    await alice.page.getByTestId(id).waitFor({ state: 'hidden' });
  }
});
