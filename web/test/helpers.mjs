// What the browser tests stand on: Debian's Chromium driven by playwright-core, a gateway
// that scripts/web-test.sh started (GATEWAY_URL), people who sign up through the page, and
// screenshots of every page of a test that failed (web/test-results/, ignored by git).

import { after, test } from 'node:test';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const GATEWAY_URL = process.env.GATEWAY_URL;
if (!GATEWAY_URL) {
  throw new Error('GATEWAY_URL is not set: run the browser tests with scripts/web-test.sh');
}
export const APP_URL = `${GATEWAY_URL}/app/`;
const RESULTS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'test-results');
/** Long enough for moto (a few ms per request, one at a time) under a parallel build. */
export const TIMEOUT = 15_000;
/** Invitations are not pushed: the page asks for them every 10 s (and on connecting). */
export const INVITATION_TIMEOUT = 10_000 + TIMEOUT;

/** The project's rule: Debian's Chromium, never a downloaded browser. */
export const LAUNCH = {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
};

/** Chromium flags a test file adds to LAUNCH's for its own browser (see useBrowserArgs). */
let extraArgs = [];

/** Launches this file's browser with `args` too: call at the top of a test file, before its
 * tests (every test file runs in a process of its own, with a browser of its own). */
export function useBrowserArgs(args) {
  extraArgs = args;
}

const FEATURE_SWITCHES = ['--disable-features=', '--enable-features='];

/** LAUNCH plus the file's own flags. Chromium keeps only the last --disable-features (and
 * --enable-features), and Playwright passes its own lists: a file's features are added to
 * those (read off the command of a browser launched for that alone), not put instead. */
async function launchOptions() {
  const own = extraArgs.filter((arg) => FEATURE_SWITCHES.some((name) => arg.startsWith(name)));
  const args = [...LAUNCH.args, ...extraArgs.filter((arg) => !own.includes(arg))];
  if (own.length === 0) return { ...LAUNCH, args };
  const defaults = await playwrightArgs();
  const replaced = [];
  for (const name of FEATURE_SWITCHES) {
    const added = own.filter((arg) => arg.startsWith(name));
    if (added.length === 0) continue;
    const theirs = defaults.filter((arg) => arg.startsWith(name));
    replaced.push(...theirs);
    const features = [...theirs, ...added].flatMap((arg) => arg.slice(name.length).split(',')).filter(Boolean);
    args.push(name + [...new Set(features)].join(','));
  }
  return { ...LAUNCH, ignoreDefaultArgs: replaced, args };
}

/** The arguments Playwright launches Chromium with (those of a browser server started and
 * stopped for that; it listens on 127.0.0.1 meanwhile). */
async function playwrightArgs() {
  const server = await chromium.launchServer({ ...LAUNCH, host: '127.0.0.1', port: 0 });
  try {
    return server.process().spawnargs;
  } finally {
    await server.close();
  }
}

/** This file's browser, launched by its first test (not in a `before` hook: Node runs a
 * top-level one as soon as it is registered, before the test file said which flags it
 * needs). */
let browser = null;
function theBrowser() {
  browser ??= launchOptions().then((options) => chromium.launch(options));
  return browser;
}
after(async () => {
  // A launch that failed made its test fail already.
  const launched = await browser?.catch(() => null);
  await launched?.close();
});

/** A name nobody has taken yet (usernames are 3-32 of a-z 0-9 _ . -). */
export function uniqueName(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}

export const PASSWORD = 'correct horse battery';

/**
 * A test with browser people in it. `body` gets `person(name, options)`, which opens a new
 * browser context (its own storage, like another device) and signs `name` up in it (or,
 * with `options.username`, signs that existing user in: their other device). When the test
 * fails, every page is photographed into test-results/. `options` go to node:test's test()
 * (`skip`, say).
 */
export function browserTest(name, body, options = {}) {
  test(name, options, async () => {
    const contexts = [];
    const pages = [];
    const person = async (prefix, options = {}) => {
      const context = await (await theBrowser()).newContext({ viewport: { width: 1100, height: 720 } });
      contexts.push(context);
      context.setDefaultTimeout(TIMEOUT);
      const page = await context.newPage();
      pages.push(page);
      if (options.beforeLoad) await options.beforeLoad(page);
      await page.goto(APP_URL);
      const username = options.username ?? uniqueName(prefix);
      if (options.username) await signIn(page, username);
      else await signUp(page, username);
      return { page, username, context };
    };
    try {
      await body({ person });
    } catch (err) {
      await mkdir(RESULTS, { recursive: true });
      const slug = name.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
      for (const [i, page] of pages.entries()) {
        const file = path.join(RESULTS, `${slug}-${i + 1}.png`);
        await page.screenshot({ path: file, fullPage: true }).catch(() => {});
        console.error(`screenshot of page ${i + 1}: ${file}`);
      }
      throw err;
    } finally {
      for (const context of contexts) await context.close().catch(() => {});
    }
  });
}

export async function signUp(page, username, password = PASSWORD) {
  await page.getByTestId('signin-username').fill(username);
  await page.getByTestId('signin-password').fill(password);
  await page.getByTestId('signup-submit').click();
  await page.getByTestId('me').filter({ hasText: username }).waitFor();
  await waitOnline(page);
}

export async function signIn(page, username, password = PASSWORD) {
  await page.getByTestId('signin-username').fill(username);
  await page.getByTestId('signin-password').fill(password);
  await page.getByTestId('signin-submit').click();
  await page.getByTestId('me').filter({ hasText: username }).waitFor();
  await waitOnline(page);
}

export async function waitOnline(page) {
  await page.locator('[data-testid="status"][data-state="open"]').waitFor();
}

/** Opens (or creates) the direct chat with `username`, who is invited to it unless they
 * opened it first. */
export async function chatWith(page, username) {
  await page.getByTestId('new-direct-input').fill(username);
  await page.getByTestId('new-direct-submit').click();
  await page.getByTestId('channel-title').filter({ hasText: username }).waitFor();
}

/** Creates a group of `page`'s user, inviting `members`, and waits until it is open. */
export async function createGroup(page, name, members) {
  await page.getByTestId('new-group-toggle').click();
  await page.getByTestId('group-name').fill(name);
  await page.getByTestId('group-members').fill(members.join(', '));
  await page.getByTestId('group-create').click();
  await page.getByTestId('channel-title').filter({ hasText: name }).waitFor();
}

/** The invitations `from` sent that `page` lists: to a direct chat, or to the group `group`. */
export function invitation(page, from, group) {
  const kind = group ? 'group' : 'direct';
  const found = page.locator(`[data-testid="invitation"][data-invited-by="${from}"][data-kind="${kind}"]`);
  return group ? found.filter({ hasText: group }) : found;
}

/** Accepts in `page` the invitation of `from` (to the group `group`, or else to a direct
 * chat) once the page's polling shows it; the chat opens. */
export async function acceptInvitation(page, from, group) {
  const offer = invitation(page, from, group);
  await offer.getByTestId('invitation-accept').click({ timeout: INVITATION_TIMEOUT });
  await page.getByTestId('channel-title').filter({ hasText: group ?? from }).waitFor();
  await offer.waitFor({ state: 'detached' });
}

/** Declines in `page` the invitation of `from` (see acceptInvitation). */
export async function declineInvitation(page, from, group) {
  const offer = invitation(page, from, group);
  await offer.getByTestId('invitation-decline').click({ timeout: INVITATION_TIMEOUT });
  await offer.waitFor({ state: 'detached' });
}

/** The time on `page`'s clock (ms), for waitForInvitationPoll(). */
export function pageNow(page) {
  return page.evaluate(() => Date.now());
}

/** Waits until `page` shows invitations it asked the server for after `since` (its clock). */
export async function waitForInvitationPoll(page, since) {
  await page.waitForFunction(
    (t) => Number(document.querySelector('[data-testid="invitations"]')?.dataset.polledAt ?? 0) > t,
    since,
    { timeout: INVITATION_TIMEOUT },
  );
}

/** The session the page keeps in its storage (null when signed out). */
export function storedSession(page) {
  return page.evaluate(() => JSON.parse(localStorage.getItem('chat.session') ?? 'null'));
}

/** Opens the channel listed under `title` in the sidebar. The list is drawn anew whenever
 * the channels or someone's presence change (often right after a page loads): a click whose
 * button was replaced between pressing and releasing is lost, and is made again. */
export async function openChannel(page, title) {
  const opened = page.getByTestId('channel-title').filter({ hasText: title });
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    await page.getByTestId('channel-item').filter({ hasText: title }).click();
    try {
      return await opened.waitFor({ timeout: 2000 });
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
  }
}

export async function send(page, text) {
  await page.getByTestId('composer-input').fill(text);
  await page.getByTestId('composer-input').press('Enter');
}

/** The texts of the open conversation as the page shows them, top to bottom. */
export async function texts(page) {
  return page.locator('[data-testid="message"] .text').allTextContents();
}

/** Waits until the open conversation shows exactly `expected` (stored, in that order). */
export async function waitForTexts(page, expected, { stored = true } = {}) {
  const selector = stored ? '[data-testid="message"][data-state="stored"] .text' : '[data-testid="message"] .text';
  const deadline = Date.now() + TIMEOUT;
  let seen;
  while (Date.now() < deadline) {
    seen = await page.locator(selector).allTextContents();
    if (JSON.stringify(seen) === JSON.stringify(expected)) {
      if (!stored || (await page.locator('[data-testid="message"]').count()) === expected.length) return seen;
    }
    await page.waitForTimeout(100);
  }
  throw new Error(`expected messages ${JSON.stringify(expected)}, the page shows ${JSON.stringify(seen)}`);
}

/**
 * A network between a page and the gateway that a test can cut: pass `beforeLoad` to
 * person(); `cut()` closes every open WebSocket and refuses new ones until `restore()`;
 * `relays` are the connections carried so far.
 */
export function cuttableNetwork() {
  let offline = false;
  const relays = [];
  return {
    relays,
    beforeLoad: (page) =>
      page.routeWebSocket(/\/local\?token=/, (ws) => {
        if (offline) return ws.close({ code: 1011, reason: 'test: network down' });
        relays.push({ ws, server: ws.connectToServer() });
      }),
    cut() {
      offline = true;
      for (const { ws, server } of relays.splice(0)) {
        server.close();
        ws.close({ code: 4000, reason: 'test: connection lost' });
      }
    },
    restore() {
      offline = false;
    },
  };
}
