// Signing out ends the session on the server too: this device's, or every device's. Each
// person here has two devices (browser contexts). Until the backend has POST /auth/signout
// (it answers 404 then) these tests are skipped, found out when they run.

import assert from 'node:assert/strict';
import { GATEWAY_URL, browserTest, storedSession, waitOnline } from './helpers.mjs';

const probe = await fetch(`${GATEWAY_URL}/auth/signout`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: '{"everywhere":false}',
});
const skip = probe.status === 404 ? 'server route pending (POST /auth/signout answers 404)' : false;

/** Trades a refresh token as the page would; answers the HTTP status. */
async function refreshStatus(refreshToken) {
  const response = await fetch(`${GATEWAY_URL}/auth/refresh`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refreshToken }),
  });
  return response.status;
}

browserTest(
  'signing out everywhere ends the session of every device',
  async ({ person }) => {
    const sockets = [];
    const alice = await person('alice', { beforeLoad: (page) => page.on('websocket', (ws) => sockets.push(ws)) });
    const closed = [];
    const phone = await person('alice', {
      username: alice.username,
      beforeLoad: (page) => page.on('websocket', (ws) => ws.on('close', () => closed.push(ws.url()))),
    });
    const session = await storedSession(alice.page);
    assert.notEqual(session.refreshToken, (await storedSession(phone.page)).refreshToken, 'two sessions');

    const opened = sockets.length;
    await alice.page.getByTestId('signout-everywhere').click();
    await alice.page.getByTestId('signin-submit').waitFor();
    assert.equal(await storedSession(alice.page), null);
    assert.equal(await alice.page.getByTestId('signin-error').textContent(), '');

    // The other device: the server closed its connection, and its session is over.
    await phone.page.getByTestId('signin-error').filter({ hasText: 'session has ended' }).waitFor();
    assert.equal(await storedSession(phone.page), null);
    assert.ok(closed.length >= 1, "the other device's WebSocket was closed");

    // The server refuses this device's refresh token (not merely forgotten by the page)...
    assert.equal(await refreshStatus(session.refreshToken), 401);
    // ...and the page did not connect again after its WebSocket was closed.
    await alice.page.waitForTimeout(1500);
    assert.equal(sockets.length, opened, 'no WebSocket opened after signing out');
    await alice.page.getByTestId('signin-submit').waitFor();
  },
  { skip },
);

browserTest(
  'signing out on one device leaves the others signed in',
  async ({ person }) => {
    const alice = await person('alice');
    const closed = [];
    const phone = await person('alice', {
      username: alice.username,
      beforeLoad: (page) => page.on('websocket', (ws) => ws.on('close', () => closed.push(ws.url()))),
    });
    const session = await storedSession(alice.page);

    await alice.page.getByTestId('signout').click();
    await alice.page.getByTestId('signin-submit').waitFor();
    assert.equal(await storedSession(alice.page), null);
    assert.equal(await refreshStatus(session.refreshToken), 401);

    // The phone keeps its connection, and its session survives a reload.
    await phone.page.waitForTimeout(1500);
    assert.deepEqual(closed, []);
    await waitOnline(phone.page);
    await phone.page.reload();
    await phone.page.getByTestId('me').filter({ hasText: alice.username }).waitFor();
    await waitOnline(phone.page);
    assert.notEqual(await storedSession(phone.page), null);
  },
  { skip },
);
