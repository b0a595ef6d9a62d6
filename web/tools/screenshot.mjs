// Takes the README's screenshot of the web client (docs/web-client.png): three people, a
// group and a direct chat, through the real page against the gateway at GATEWAY_URL.
// Run by `scripts/web-test.sh --screenshot`.
//
//   GATEWAY_URL=http://127.0.0.1:8080 node tools/screenshot.mjs ../docs/web-client.png

import { chromium } from 'playwright-core';

const gateway = process.env.GATEWAY_URL;
const out = process.argv[2];
if (!gateway || !out) {
  console.error('usage: GATEWAY_URL=http://127.0.0.1:8080 node tools/screenshot.mjs OUT.png');
  process.exit(2);
}
const LAUNCH = {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
};
// Plain names on the fresh backend scripts/web-test.sh starts; SCREENSHOT_SUFFIX avoids
// names taken on a backend that is used for other things.
const suffix = process.env.SCREENSHOT_SUFFIX ?? '';
const name = (n) => `${n}${suffix}`;

const browser = await chromium.launch(LAUNCH);
try {
  const people = {};
  for (const n of ['alice', 'bob', 'carol']) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 640 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    await page.goto(`${gateway}/app/`);
    await page.getByTestId('signin-username').fill(name(n));
    await page.getByTestId('signin-password').fill('correct horse battery');
    await page.getByTestId('signup-submit').click();
    await page.locator('[data-testid="status"][data-state="open"]').waitFor();
    people[n] = page;
  }
  const say = async (page, text) => {
    await page.getByTestId('composer-input').fill(text);
    await page.getByTestId('composer-input').press('Enter');
    await page.locator('[data-testid="message"][data-state="stored"]').filter({ hasText: text }).waitFor();
    await page.waitForTimeout(1100); // stays under the send rate limit of the local backend
  };
  // Invitations are polled every 10 s: accepting one opens its chat.
  const accept = async (page, title) => {
    await page.getByTestId('invitation').filter({ hasText: title }).getByTestId('invitation-accept').click({ timeout: 30_000 });
    await page.getByTestId('channel-title').filter({ hasText: title }).waitFor();
  };

  await people.bob.getByTestId('new-direct-input').fill(name('alice'));
  await people.bob.getByTestId('new-direct-submit').click();
  await say(people.bob, 'Did you push the fix for the login page?');
  await accept(people.alice, name('bob'));

  await people.alice.getByTestId('new-group-toggle').click();
  await people.alice.getByTestId('group-name').fill('Weekend trip');
  await people.alice.getByTestId('group-members').fill(`${name('bob')}, ${name('carol')}`);
  await people.alice.getByTestId('group-create').click();
  await people.alice.getByTestId('channel-title').filter({ hasText: 'Weekend trip' }).waitFor();
  await say(people.alice, 'Train leaves at 9:40 on Saturday!');
  await accept(people.bob, 'Weekend trip');
  await accept(people.carol, 'Weekend trip');
  await say(people.bob, 'I will bring the tent and the stove.');
  await say(people.carol, 'Great! I booked the campsite for two nights.');
  await say(people.alice, 'Perfect. Who has the map?');
  await say(people.carol, 'Me — printed and offline on my phone.');
  await people.alice.locator('[data-testid="message"]').filter({ hasText: 'offline on my phone' }).waitFor();
  await people.bob.getByTestId('composer-input').pressSequentially('Bringing snacks', { delay: 30 });
  await people.alice.getByTestId('typing').filter({ hasText: 'is typing' }).waitFor();
  await people.alice.getByTestId('composer-input').fill('See you at the station');
  await people.alice.screenshot({ path: out });
  console.log(`screenshot: ${out}`);
} finally {
  await browser.close();
}
