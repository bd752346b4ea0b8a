// The survey page in Debian's Chromium at phone width: answered by mouse, then by keyboard only,
// against a real `closeloop up --demo`. Screenshots land in artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { artifacts, freePort, launchChromium, startDemo } from './support.mjs';

let server, browser, base, links;

async function outbox() {
  return (await fetch(`${base}/outbox.json`)).json();
}

before(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'closeloop-browser-'));
  server = await startDemo(dataDir, port);
  const messages = await outbox();
  links = messages.filter((m) => m.kind === 'invitation' && m.channel === 'email')
    .map((m) => m.text.match(/http:\/\/127\.0\.0\.1:\d+\/s\/[A-Za-z0-9]{22}/)[0]);
  assert.ok(links.length >= 2);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.kill();
});

async function phonePage() {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const page = await context.newPage();
  const foreign = [];
  page.on('request', (r) => { if (!r.url().startsWith(base)) foreign.push(r.url()); });
  return { page, foreign };
}

test('a respondent answers by mouse on a phone and lands on the thank-you page', async () => {
  const { page, foreign } = await phonePage();
  await page.goto(links[0]);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(overflow, 0, 'no sideways scrolling at 360 px');
  await page.click('label.opt:has(input[name=score][value="9"])');
  const followUp = await page.textContent('#follow-up');
  assert.match(followUp, /rekommendera|anbefale|recommend/);
  assert.ok(!/inte vill|ikke vil|unwilling/.test(followUp), 'the promoter wording replaced the generic one');
  await page.fill('#comment', 'Snabb service, tack!');
  await page.click('label.opt:has(input[name="rating.quality"][value="5"])');
  await page.check('input[name=contact_ok]');
  await page.screenshot({ path: join(artifacts, 'survey-mouse.png'), fullPage: true });
  await Promise.all([page.waitForURL(/\/thanks$/), page.click('button[type=submit]')]);
  assert.match(await page.textContent('h1'), /Tack|Tak|Thank/);
  assert.equal(await page.locator('a.button').count(), 2, 'both review sites are offered to a promoter');
  await page.screenshot({ path: join(artifacts, 'thanks.png'), fullPage: true });
  assert.deepEqual(foreign, [], 'the page made no external requests');
});

test('a respondent answers with the keyboard alone', async () => {
  const { page } = await phonePage();
  await page.goto(links[1]);
  const active = () => page.evaluate(() => {
    const el = document.activeElement;
    return el ? `${el.tagName}:${el.getAttribute('name') ?? el.getAttribute('type') ?? ''}` : '';
  });
  for (let i = 0; i < 5 && (await active()) !== 'INPUT:score'; i++) await page.keyboard.press('Tab');
  assert.equal(await active(), 'INPUT:score', 'the scale is reachable with Tab');
  // Arrow keys move the choice within the radio group: 0 → 3.
  for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowRight');
  assert.equal(await page.inputValue('input[name=score]:checked'), '3');
  await page.keyboard.press('Tab');
  assert.equal(await active(), 'TEXTAREA:comment');
  await page.keyboard.type('Väntade för länge.');
  for (let i = 0; i < 10 && (await active()) !== 'INPUT:contact_ok'; i++) await page.keyboard.press('Tab');
  await page.keyboard.press('Space');
  for (let i = 0; i < 5 && (await active()) !== 'BUTTON:submit'; i++) await page.keyboard.press('Tab');
  assert.equal(await active(), 'BUTTON:submit');
  await page.screenshot({ path: join(artifacts, 'survey-keyboard.png'), fullPage: true });
  await Promise.all([page.waitForURL(/\/thanks$/), page.keyboard.press('Enter')]);
  assert.match(await page.textContent('h1'), /Tack|Tak|Thank/);
});

test('both answers were recorded and thanked, the detractor raised an alert', async () => {
  let messages = [];
  for (let i = 0; i < 50; i++) {
    messages = await outbox();
    if (messages.filter((m) => m.kind === 'thank_you').length >= 2 && messages.some((m) => m.kind === 'alert')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(messages.filter((m) => m.kind === 'thank_you').length, 2);
  const alerts = messages.filter((m) => m.kind === 'alert');
  assert.equal(alerts.length, 2, 'the detractor, and the promoter who asked to be contacted');
  assert.ok(alerts.some((m) => m.text.includes('Väntade för länge.')));
});
