// Full-text search in the web client, against the real backend (GET /search): words,
// "quoted phrases" and prefixes, newest first, a page at a time; a hit opens its chat at
// the message, loaded with the history around it; only the caller's channels are searched.
// The index is written asynchronously (within seconds of a send): a search that has to
// find something new is repeated until it does, never after a fixed sleep.

import assert from 'node:assert/strict';
import { APP_URL, acceptInvitation, browserTest, createGroup, send, waitForTexts, waitOnline } from './helpers.mjs';

/** How long a search is repeated until the index shows what was sent. */
const INDEX_TIMEOUT = 15_000;

/** A word nobody else writes: letters only, and no vowel or `s` or `y`, so that no
 * stemmer changes it. */
function randomWord(length = 8) {
  const letters = 'bcdfghjklmnpqrtvwxz';
  let word = 'zq';
  while (word.length < length) word += letters[Math.floor(Math.random() * letters.length)];
  return word;
}

/** The results panel as the page shows it. */
function results(page) {
  return page.evaluate(() => {
    const panel = document.querySelector('[data-testid="search-results"]');
    const shown = (testid) => {
      const node = panel.querySelector(`[data-testid="${testid}"]`);
      return node && !node.hidden ? node : null;
    };
    return {
      open: !panel.hidden,
      state: panel.dataset.state,
      error: shown('search-error')?.textContent ?? null,
      errorCode: shown('search-error')?.dataset.code ?? null,
      empty: Boolean(shown('search-empty')),
      more: Boolean(shown('search-more')),
      hits: [...panel.querySelectorAll('[data-testid="search-hit"]')].map((hit) => ({
        channelId: hit.dataset.channelId,
        messageId: hit.dataset.messageId,
        author: hit.dataset.author,
        channel: hit.querySelector('[data-testid="search-hit-channel"]').textContent,
        shownAuthor: hit.querySelector('[data-testid="search-hit-author"]').textContent,
        snippet: hit.querySelector('[data-testid="search-hit-snippet"]').textContent,
        marks: [...hit.querySelectorAll('[data-testid="search-hit-snippet"] mark')].map((mark) => mark.textContent),
      })),
    };
  });
}

/** How many answers the panel has shown so far. */
async function answers(page) {
  await page.waitForFunction(() => document.querySelector('[data-testid="search-results"]').dataset.state !== 'loading');
  return Number(await page.getByTestId('search-results').getAttribute('data-answers'));
}

/** Waits for an answer after the `before`th. */
async function nextAnswer(page, before) {
  await page.waitForFunction((n) => {
    const panel = document.querySelector('[data-testid="search-results"]');
    return Number(panel.dataset.answers) > n && panel.dataset.state !== 'loading';
  }, before);
  return results(page);
}

/** Types `query` into the search box, presses Enter and answers what the panel shows. */
async function submitSearch(page, query) {
  const before = await answers(page);
  await page.getByTestId('search-input').fill(query);
  await page.getByTestId('search-input').press('Enter');
  return nextAnswer(page, before);
}

/** Searches `query` again and again until `done(results)` (the index catches up within
 * seconds); fails with what the page showed last. A rate-limited search waits as long as
 * the page says, which does not count against the index's time. */
async function searchUntil(page, query, done, expected) {
  let deadline = Date.now() + INDEX_TIMEOUT;
  for (;;) {
    const seen = await submitSearch(page, query);
    if (done(seen)) return seen;
    if (seen.errorCode === 'rate_limited') {
      const wait = 1000 * Number(/in (\d+) s/.exec(seen.error)?.[1] ?? 5);
      deadline += wait;
      await page.waitForTimeout(wait);
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`search ${JSON.stringify(query)}: expected ${expected}; the page shows ${JSON.stringify(seen, null, 1)}`);
    }
    await page.waitForTimeout(1000);
  }
}

/** Clicks "More results" and answers the panel with the next page added. */
async function moreResults(page) {
  const before = await answers(page);
  await page.getByTestId('search-more').click();
  return nextAnswer(page, before);
}

browserTest('search finds words, phrases and prefixes; a hit opens its message in context', async ({ person }) => {
  const alice = await person('alice');
  const bob = await person('bob');
  const word = randomWord();
  const Word = word[0].toUpperCase() + word.slice(1);
  const club = `Club ${randomWord(5)}`;
  const notes = `Notes ${randomWord(5)}`;

  await createGroup(alice.page, club, [bob.username]);
  await acceptInvitation(bob.page, alice.username, club);

  // The message to find first, then one with both words of the phrase but not side by side,
  // then tall ones: the first two end up out of view, and (with 4 messages a page) unloaded.
  const target = `Meet me at the ${Word} café at noon`;
  const other = `The cafe first, then ${word} later`;
  const fillers = Array.from({ length: 7 }, (_, i) => [`filler ${i + 1}`, ...Array(5).fill('nothing to see here')].join('\n'));
  const clubTexts = [target, other, ...fillers];
  const sent = [];
  for (const [i, text] of clubTexts.entries()) {
    const sender = i % 2 === 0 ? bob : alice;
    await send(sender.page, text);
    sent.push(text);
    await waitForTexts(sender.page, sent);
  }
  await waitForTexts(alice.page, clubTexts);

  // A group of Alice alone, with the newest message that has the word.
  const mine = `${Word} notes for myself`;
  await createGroup(alice.page, notes, []);
  await send(alice.page, mine);
  await waitForTexts(alice.page, [mine]);

  // Alice again, loading 4 messages a page and finding 2 hits a page.
  await alice.page.goto(`${APP_URL}?historyPage=4&searchLimit=2`);
  await waitOnline(alice.page);

  // A word: every channel of hers, newest first, a page at a time.
  let seen = await searchUntil(
    alice.page,
    word,
    (r) => r.hits.length === 2 && r.more && r.hits[0].snippet.includes('notes for myself'),
    'the 2 newest of 3 hits, and more',
  );
  assert.equal(seen.error, null);
  assert.deepEqual(
    seen.hits.map((h) => [h.channel, h.author, h.shownAuthor]),
    [
      [notes, alice.username, 'You'],
      [club, alice.username, 'You'],
    ],
  );
  assert.match(seen.hits[1].snippet, /cafe first, then/);
  seen = await moreResults(alice.page);
  assert.equal(seen.hits.length, 3, JSON.stringify(seen));
  assert.equal(seen.more, false, 'the last page has no more');
  const hit = seen.hits[2];
  assert.equal(hit.channel, club);
  assert.equal(hit.author, bob.username);
  assert.equal(hit.shownAuthor, bob.username);
  assert.match(hit.snippet, /Meet me at the/);
  assert.ok(hit.marks.some((mark) => mark.toLowerCase() === word), `${Word} is highlighted: ${JSON.stringify(hit)}`);
  for (const h of seen.hits) assert.ok(h.marks.length > 0, `every hit highlights a match: ${JSON.stringify(h)}`);
  const targetId = hit.messageId;

  // A quoted phrase: adjacent words only (and "cafe" finds "café").
  seen = await searchUntil(
    alice.page,
    `"${word} cafe"`,
    (r) => r.hits.length === 1 && !r.more && r.hits[0].messageId === targetId,
    'only the message with the phrase',
  );
  assert.ok(seen.hits[0].marks.length > 0, JSON.stringify(seen.hits[0]));

  // A prefix (in capitals): the last word is matched as the start of a word.
  const prefix = word.slice(0, 5).toUpperCase();
  seen = await searchUntil(alice.page, prefix, (r) => r.hits.length === 2 && r.more, 'the 2 newest of 3 hits, and more');
  seen = await moreResults(alice.page);
  assert.deepEqual(
    seen.hits.map((h) => h.messageId).slice(2),
    [targetId],
  );
  for (const h of seen.hits) {
    assert.ok(
      h.marks.some((mark) => mark.toLowerCase().startsWith(prefix.toLowerCase())),
      `the word that starts with ${prefix} is highlighted: ${JSON.stringify(h)}`,
    );
  }

  // The hit opens the club at the message, which was not loaded (4 newest only): it is
  // loaded with everything between it and the newest, scrolled into view, highlighted.
  await alice.page.locator(`[data-testid="search-hit"][data-message-id="${targetId}"]`).click();
  await alice.page.getByTestId('channel-title').filter({ hasText: club }).waitFor();
  const shown = alice.page.locator(`[data-testid="message"][data-message-id="${targetId}"]`);
  await alice.page.locator('[data-testid="message"][data-found="true"]').filter({ hasText: 'Meet me at the' }).waitFor();
  assert.match(await shown.getAttribute('class'), /\bfound\b/);
  const inView = await shown.evaluate((node) => {
    const box = document.querySelector('[data-testid="messages"]').getBoundingClientRect();
    const at = node.getBoundingClientRect();
    return { inside: at.top >= box.top - 1 && at.bottom <= box.bottom + 1, box: [box.top, box.bottom], at: [at.top, at.bottom] };
  });
  assert.ok(inView.inside, `the message is in view: ${JSON.stringify(inView)}`);
  await waitForTexts(alice.page, clubTexts);
  // Briefly: the highlight goes by itself.
  await alice.page.locator('[data-testid="message"][data-found="true"]').waitFor({ state: 'detached', timeout: 10_000 });

  // Live messages still arrive, after what was loaded.
  const live = `${Word} is still live`;
  await send(bob.page, live);
  await waitForTexts(alice.page, [...clubTexts, live]);

  // Only the open chat: the newer message in the notes is not among the hits. (Checking
  // the option searches what the box holds again, in the open chat.)
  await alice.page.getByTestId('search-input').fill(word);
  await alice.page.getByTestId('search-channel-only').check();
  seen = await searchUntil(
    alice.page,
    word,
    (r) => r.hits.length === 2 && r.more && r.hits[0].snippet.includes('still live'),
    'the 2 newest of the 3 hits in the club, and more',
  );
  seen = await moreResults(alice.page);
  assert.deepEqual(
    seen.hits.map((h) => h.channel),
    [club, club, club],
  );
  assert.equal(seen.hits[2].messageId, targetId);
  assert.equal(seen.more, false);

  // Nothing matches: said so.
  await alice.page.getByTestId('search-channel-only').uncheck();
  seen = await submitSearch(alice.page, randomWord(10));
  assert.deepEqual([seen.hits.length, seen.empty, seen.error], [0, true, null]);
  await alice.page.getByTestId('search-empty').filter({ hasText: 'No messages found' }).waitFor();

  // Carol is in none of these channels: the indexed word finds nothing for her.
  const carol = await person('carol');
  seen = await submitSearch(carol.page, word);
  assert.deepEqual([seen.hits.length, seen.empty, seen.error], [0, true, null], JSON.stringify(seen));
  seen = await submitSearch(carol.page, `"${word} cafe"`);
  assert.deepEqual([seen.hits.length, seen.empty, seen.error], [0, true, null], JSON.stringify(seen));
});

browserTest('a refused or rate-limited search says why', async ({ person }) => {
  const dave = await person('dave');

  // Over 200 characters: the server refuses the query (400).
  let seen = await submitSearch(dave.page, 'x'.repeat(201));
  assert.equal(seen.errorCode, 'invalid_request', JSON.stringify(seen));
  assert.ok(seen.error.length > 0);
  assert.deepEqual([seen.hits.length, seen.empty], [0, false]);

  // Rate-limited (429, as the backend words it): how long to wait.
  await dave.page.route(/\/search\?/, (route) =>
    route.fulfill({
      status: 429,
      contentType: 'application/json',
      headers: { 'retry-after': '4' },
      body: JSON.stringify({ code: 'rate_limited', message: 'too many requests; retry in 4000 ms', retryAfterMs: 4000 }),
    }),
  );
  seen = await submitSearch(dave.page, 'hello');
  assert.equal(seen.errorCode, 'rate_limited');
  assert.match(seen.error, /Too fast - try again in 4 s/);
  assert.equal(seen.empty, false);
  await dave.page.unroute(/\/search\?/);

  // The next search that goes through clears the error.
  seen = await submitSearch(dave.page, 'hello');
  assert.deepEqual([seen.error, seen.hits.length, seen.empty], [null, 0, true]);

  // Escape closes the panel.
  await dave.page.getByTestId('search-input').press('Escape');
  await dave.page.getByTestId('search-results').waitFor({ state: 'hidden' });
});
