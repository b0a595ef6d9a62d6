// Reactions, replies and mentions in the web client against the real backend: what each
// person sees live, after a reload, and after a dropped connection.

import assert from 'node:assert/strict';
import {
  acceptInvitation,
  browserTest,
  chatWith,
  openChannel,
  send,
  waitForTexts,
  waitOnline,
} from './helpers.mjs';

const THUMBS_UP = '\u{1F44D}';
const HEART = '\u2764\uFE0F';

/** The stored message of the open conversation whose own text is `text` (a reply quoting
 * it is another message). */
function message(page, text) {
  return page
    .locator('[data-testid="message"][data-state="stored"]')
    .filter({ has: page.locator('.text', { hasText: new RegExp(`^${escape(text)}$`) }) });
}

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The count of `emoji` under the message `text`; `count` and `mine` narrow it to that
 * state (`mine`: highlighted as ours). */
function reaction(page, text, emoji, { count, mine } = {}) {
  let selector = `[data-testid="reaction"][data-emoji="${emoji}"]`;
  if (count !== undefined) selector += `[data-count="${count}"]`;
  if (mine === true) selector += '[data-mine="true"]';
  if (mine === false) selector += ':not([data-mine])';
  return message(page, text).locator(selector);
}

/** Reacts to the message `text` with `emoji` through its picker. */
async function react(page, text, emoji) {
  const node = message(page, text);
  await node.hover();
  await node.getByTestId('react').click();
  await node.locator(`[data-testid="reaction-option"][data-emoji="${emoji}"]`).click();
}

/** A reload that ends with `channel` open again. */
async function reloadInto(page, channel) {
  await page.reload();
  await waitOnline(page);
  await openChannel(page, channel);
}

/** Cuts the page's WebSockets (set up before it loads), as a network would; `relay.up()`
 * lets it connect again. */
function relayed() {
  const relay = { offline: false, sockets: [] };
  relay.beforeLoad = (page) =>
    page.routeWebSocket(/\/local\?token=/, (ws) => {
      if (relay.offline) return ws.close({ code: 1011, reason: 'test: network down' });
      relay.sockets.push({ ws, server: ws.connectToServer() });
    });
  relay.cut = () => {
    relay.offline = true;
    for (const { ws, server } of relay.sockets.splice(0)) {
      server.close();
      ws.close({ code: 4000, reason: 'test: connection lost' });
    }
  };
  relay.up = async (page) => {
    relay.offline = false;
    await page.getByRole('button', { name: 'Reconnect now' }).click({ timeout: 1000 }).catch(() => {});
    await waitOnline(page);
  };
  return relay;
}

browserTest('two people react with the same emoji, one takes it back, and a reload keeps the counts', async ({ person }) => {
  const alice = await person('alice');
  const bob = await person('bob');
  await chatWith(alice.page, bob.username);
  await send(alice.page, 'lunch at noon?');
  await acceptInvitation(bob.page, alice.username);
  await waitForTexts(bob.page, ['lunch at noon?']);
  const text = 'lunch at noon?';

  await react(alice.page, text, THUMBS_UP);
  await reaction(alice.page, text, THUMBS_UP, { count: 1, mine: true }).waitFor();
  await reaction(bob.page, text, THUMBS_UP, { count: 1, mine: false }).waitFor();

  await react(bob.page, text, THUMBS_UP);
  await react(bob.page, text, HEART);
  for (const page of [alice.page, bob.page]) {
    // Each sees both reactions, and their own highlighted.
    await reaction(page, text, THUMBS_UP, { count: 2, mine: true }).waitFor();
    await reaction(page, text, HEART, { count: 1, mine: page === bob.page }).waitFor();
  }

  // Bob clicks his own count: his reaction is taken back.
  await reaction(bob.page, text, THUMBS_UP).click();
  await reaction(bob.page, text, THUMBS_UP, { count: 1, mine: false }).waitFor();
  await reaction(alice.page, text, THUMBS_UP, { count: 1, mine: true }).waitFor();
  await reaction(alice.page, text, HEART, { count: 1, mine: false }).waitFor();

  // The counts, and whose they are, come from the server after a reload.
  await reloadInto(alice.page, bob.username);
  await reloadInto(bob.page, alice.username);
  for (const [page, mine] of [
    [alice.page, { [THUMBS_UP]: true, [HEART]: false }],
    [bob.page, { [THUMBS_UP]: false, [HEART]: true }],
  ]) {
    await reaction(page, text, THUMBS_UP, { count: 1, mine: mine[THUMBS_UP] }).waitFor();
    await reaction(page, text, HEART, { count: 1, mine: mine[HEART] }).waitFor();
    // Nothing else: one count per emoji.
    const chips = await message(page, text)
      .getByTestId('reaction')
      .evaluateAll((nodes) => nodes.map((c) => [c.dataset.emoji, c.dataset.count, c.dataset.mine ?? null]));
    assert.deepEqual(chips.sort(), [
      [THUMBS_UP, '1', mine[THUMBS_UP] ? 'true' : null],
      [HEART, '1', mine[HEART] ? 'true' : null],
    ].sort());
  }

  // Taking back the last one leaves no count at all.
  await reaction(alice.page, text, THUMBS_UP).click();
  await reaction(bob.page, text, THUMBS_UP).waitFor({ state: 'detached' });
  await reaction(alice.page, text, THUMBS_UP).waitFor({ state: 'detached' });
});

browserTest('a reply shows its quote for both people, after a reload too, and a deleted original shows as deleted', async ({ person }) => {
  const alice = await person('alice');
  const bob = await person('bob');
  await chatWith(alice.page, bob.username);
  await send(alice.page, 'who brings the cake?');
  await acceptInvitation(bob.page, alice.username);
  await waitForTexts(bob.page, ['who brings the cake?']);

  // Bob answers: the composer shows what he answers, and Cancel drops it.
  const original = message(bob.page, 'who brings the cake?');
  await original.hover();
  await original.getByTestId('reply').click();
  const replying = bob.page.getByTestId('replying');
  await replying.getByTestId('quote').filter({ hasText: alice.username }).filter({ hasText: 'who brings the cake?' }).waitFor();
  await bob.page.getByTestId('cancel-reply').click();
  await replying.waitFor({ state: 'hidden' });
  await original.hover();
  await original.getByTestId('reply').click();
  await replying.waitFor();
  await send(bob.page, 'I do');
  await replying.waitFor({ state: 'hidden' });

  const quoteIn = (page) => message(page, 'I do').getByTestId('quote');
  for (const page of [alice.page, bob.page]) {
    await waitForTexts(page, ['who brings the cake?', 'I do']);
    await quoteIn(page).filter({ hasText: alice.username }).filter({ hasText: 'who brings the cake?' }).waitFor();
    // The original is no reply.
    assert.equal(await message(page, 'who brings the cake?').getByTestId('quote').count(), 0);
  }

  await reloadInto(alice.page, bob.username);
  await waitForTexts(alice.page, ['who brings the cake?', 'I do']);
  await quoteIn(alice.page).filter({ hasText: 'who brings the cake?' }).waitFor();

  // Alice deletes her question: the quote of Bob's answer shows it deleted, live.
  const question = message(alice.page, 'who brings the cake?');
  await question.hover();
  await question.getByTestId('delete').click();
  await question.hover();
  await question.getByTestId('delete').filter({ hasText: 'Delete?' }).click();
  for (const page of [alice.page, bob.page]) {
    await waitForTexts(page, ['This message was deleted', 'I do']);
    await quoteIn(page).and(page.locator('[data-deleted="true"]')).filter({ hasText: 'Deleted message' }).waitFor();
    assert.equal(await page.getByText('who brings the cake?').count(), 0);
  }

  // And so does history after a reload.
  await reloadInto(bob.page, alice.username);
  await waitForTexts(bob.page, ['This message was deleted', 'I do']);
  await quoteIn(bob.page).and(bob.page.locator('[data-deleted="true"]')).filter({ hasText: alice.username }).waitFor();
  assert.equal(await bob.page.getByText('who brings the cake?').count(), 0);
  // A deleted message cannot be answered.
  assert.equal(await message(bob.page, 'This message was deleted').getByTestId('reply').count(), 0);
});

browserTest('typing @ offers the members; a mention is highlighted and counted in the channel list', async ({ person }) => {
  const alice = await person('alice');
  const bob = await person('bob');
  await chatWith(alice.page, bob.username);
  await send(alice.page, 'hello');
  await acceptInvitation(bob.page, alice.username);
  await waitForTexts(bob.page, ['hello']);
  // Alice has no chat open after a reload: her list counts what she has not read.
  await alice.page.reload();
  await waitOnline(alice.page);
  const item = alice.page.getByTestId('channel-item').filter({ hasText: bob.username });
  await item.waitFor();
  assert.equal(await item.getByTestId('mentions').count(), 0);

  // Bob types @ and the first letters of her name: she is offered (he is not), Enter
  // takes her.
  const input = bob.page.getByTestId('composer-input');
  await input.pressSequentially('look @', { delay: 20 });
  const option = bob.page.locator(`[data-testid="mention-option"][data-user-id="${alice.username}"]`);
  await option.waitFor();
  assert.equal(await bob.page.locator(`[data-testid="mention-option"][data-user-id="${bob.username}"]`).count(), 0);
  await input.pressSequentially(alice.username.slice(0, 3), { delay: 20 });
  await option.waitFor();
  await input.press('Enter');
  await bob.page.getByTestId('mention-menu').waitFor({ state: 'hidden' });
  assert.equal(await input.inputValue(), `look @${alice.username} `);
  await input.pressSequentially('at this', { delay: 10 });
  // A name picked with the mouse works the same.
  await input.pressSequentially(' and @', { delay: 20 });
  await option.click();
  assert.equal(await input.inputValue(), `look @${alice.username} at this and @${alice.username} `);
  await input.press('Enter');
  const sent = `look @${alice.username} at this and @${alice.username}`;
  await waitForTexts(bob.page, ['hello', sent]);
  const mentions = (page) => message(page, sent).getByTestId('mention');
  assert.deepEqual(await mentions(bob.page).allTextContents(), [`@${alice.username}`, `@${alice.username}`]);

  // Alice's list shows the mention beside the unread count, live and after a reload.
  await item.getByTestId('mentions').filter({ hasText: '@1' }).waitFor();
  await item.getByTestId('unread').filter({ hasText: '1' }).waitFor();
  await alice.page.reload();
  await waitOnline(alice.page);
  await item.getByTestId('mentions').filter({ hasText: '@1' }).waitFor();

  // Reading the chat clears it; the mention of her shows highlighted.
  await openChannel(alice.page, bob.username);
  await waitForTexts(alice.page, ['hello', sent]);
  await message(alice.page, sent).and(alice.page.locator('[data-mentions-me="true"]')).waitFor();
  assert.equal(await mentions(alice.page).and(alice.page.locator('.mention.of-me')).count(), 2);
  await item.getByTestId('mentions').waitFor({ state: 'detached' });
  // Bob's page says she read it: the server has her read position.
  await message(bob.page, sent).getByTestId('seen').waitFor();
  await alice.page.reload();
  await waitOnline(alice.page);
  await item.waitFor();
  assert.equal(await item.getByTestId('mentions').count(), 0);
  assert.equal(await item.getByTestId('unread').count(), 0);

  // A text that merely looks like a mention mentions nobody.
  await openChannel(alice.page, bob.username);
  await send(bob.page, `mail@${alice.username} is not a mention`);
  await waitForTexts(alice.page, ['hello', sent, `mail@${alice.username} is not a mention`]);
  assert.equal(await message(alice.page, `mail@${alice.username} is not a mention`).getByTestId('mention').count(), 0);
});

browserTest('reactions and a reply made while a device was offline reach it when it is back', async ({ person }) => {
  const relay = relayed();
  const alice = await person('alice');
  const bob = await person('bob', { beforeLoad: relay.beforeLoad });
  await chatWith(alice.page, bob.username);
  await send(alice.page, 'the train is late');
  await send(alice.page, 'twenty minutes');
  await acceptInvitation(bob.page, alice.username);
  await waitForTexts(bob.page, ['the train is late', 'twenty minutes']);
  await react(bob.page, 'the train is late', THUMBS_UP);
  await react(alice.page, 'the train is late', THUMBS_UP);
  await reaction(bob.page, 'the train is late', THUMBS_UP, { count: 2, mine: true }).waitFor();

  relay.cut();
  await bob.page.locator('[data-testid="status"]:not([data-state="open"])').waitFor();

  // While Bob is away, Alice takes her 👍 back, adds ❤️ to both messages, and answers
  // the second one.
  await reaction(alice.page, 'the train is late', THUMBS_UP, { mine: true }).click();
  await reaction(alice.page, 'the train is late', THUMBS_UP, { count: 1, mine: false }).waitFor();
  await react(alice.page, 'the train is late', HEART);
  await react(alice.page, 'twenty minutes', HEART);
  await reaction(alice.page, 'twenty minutes', HEART, { count: 1, mine: true }).waitFor();
  const twenty = message(alice.page, 'twenty minutes');
  await twenty.hover();
  await twenty.getByTestId('reply').click();
  await send(alice.page, 'make it thirty');
  await waitForTexts(alice.page, ['the train is late', 'twenty minutes', 'make it thirty']);

  await relay.up(bob.page);
  // No reload: the reconnect's sync brings the changed messages as they now are.
  await waitForTexts(bob.page, ['the train is late', 'twenty minutes', 'make it thirty']);
  await reaction(bob.page, 'the train is late', THUMBS_UP, { count: 1, mine: true }).waitFor();
  await reaction(bob.page, 'the train is late', HEART, { count: 1, mine: false }).waitFor();
  await reaction(bob.page, 'twenty minutes', HEART, { count: 1, mine: false }).waitFor();
  await message(bob.page, 'make it thirty').getByTestId('quote').filter({ hasText: 'twenty minutes' }).waitFor();
  assert.ok(relay.sockets.length >= 1, 'Bob reconnected through the relay');
});
