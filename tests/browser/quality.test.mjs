// The pages' quality against a real `closeloop up --demo`: the 0–10 scale is eleven equal cells in
// one row at every phone width, in the page and in the mail; the page asks for nothing it lacks
// (no /favicon.ico) and logs no error; Lighthouse (mobile) scores Accessibility and Best Practices
// 100 on the survey, thank-you, sign-in and overview pages; and the Nu HTML Checker (vnu) finds no
// error in any page or mail. Performance is printed, not asserted: it depends on the machine.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import lighthouse from 'lighthouse';
import { chromium as playwright } from 'playwright-core';
import { bin, freePort, launchChromium, startDemo } from './support.mjs';

const vnuJar = String(createRequire(import.meta.url)('vnu-jar'));
const CAMPAIGN = 'demo-service-visit';
const WIDTHS = [320, 340, 360, 414];
const LINK = /http:\/\/127\.0\.0\.1:\d+\/s\/[A-Za-z0-9]{22}/;

let server, browser, base, dataDir, adminToken, cookie;
let links = [];

async function outbox() {
  return (await fetch(`${base}/outbox.json`)).json();
}

async function waitFor(what, ready) {
  for (let i = 0; i < 100; i++) {
    if (ready(await outbox())) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function answer(link, fields) {
  const response = await fetch(link, { method: 'POST', body: new URLSearchParams(fields), redirect: 'manual' });
  assert.equal(response.status, 303, `answer to ${link}`);
}

before(async () => {
  const port = await freePort();
  // localhost, not 127.0.0.1: browsers keep `Secure` cookies over plain http only for localhost.
  base = `http://localhost:${port}`;
  dataDir = mkdtempSync(join(tmpdir(), 'closeloop-quality-'));
  const out = execFileSync(bin, ['--data-dir', dataDir, 'account', 'add', '--name', 'Karin Admin', '--role', 'admin'], { encoding: 'utf8' });
  adminToken = out.match(/shown only now: (\S+)/)[1];
  server = await startDemo(dataDir, port);
  links = (await outbox()).filter((m) => m.kind === 'invitation' && m.channel === 'email').map((m) => m.text.match(LINK)[0]);
  assert.ok(links.length >= 6, 'the demo invited enough people');
  // links[0] stays unanswered; links[1] a promoter, links[2] a detractor, so cases and mails exist.
  await answer(links[1], { score: '9', comment: 'Snabb service', 'rating.quality': '5' });
  await answer(links[2], { score: '3', comment: 'Väntade för länge', contact_ok: 'yes' });
  await waitFor('the thank-you mails and the alert', (m) => m.filter((x) => x.kind === 'thank_you').length >= 2 && m.some((x) => x.kind === 'alert'));
  browser = await launchChromium();
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/admin/sign-in`);
  await page.fill('#token', adminToken);
  await Promise.all([page.waitForURL(`${base}/admin`), page.click('button[type=submit]')]);
  const session = (await context.cookies()).find((c) => c.name === 'cl_session');
  cookie = `${session.name}=${session.value}`;
  await context.close();
});

after(async () => {
  await browser?.close();
  server?.kill();
});

/** Every cell's box: [top, left, width] rounded to tenths. */
const boxes = (locator) => locator.evaluateAll((cells) => cells.map((c) => {
  const r = c.getBoundingClientRect();
  return { top: Math.round(r.top * 10) / 10, width: Math.round(r.width * 10) / 10 };
}));

function assertOneEqualRow(cells, where) {
  assert.equal(cells.length, 11, `${where}: eleven cells`);
  assert.equal(new Set(cells.map((c) => c.top)).size, 1, `${where}: one row: ${JSON.stringify(cells)}`);
  const widths = cells.map((c) => c.width);
  assert.ok(Math.max(...widths) - Math.min(...widths) <= 1, `${where}: equal widths ±1 px: ${widths.join(', ')}`);
}

test('the survey page\'s scale is eleven equal cells in one row from 320 px up, its ends read out', async () => {
  for (const width of WIDTHS) {
    const context = await browser.newContext({ viewport: { width, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const page = await context.newPage();
    await page.goto(links[0]);
    const labels = page.locator('label.opt:has(input[name=score])');
    const cells = await labels.evaluateAll((ls) => ls.map((l) => ({ top: l.offsetTop, rect: l.getBoundingClientRect().width })));
    assert.equal(new Set(cells.map((c) => c.top)).size, 1, `${width} px: one row (offsetTop): ${JSON.stringify(cells)}`);
    assertOneEqualRow(await boxes(labels), `survey at ${width} px`);
    const minWidth = Math.min(...cells.map((c) => c.rect));
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.equal(overflow, 0, `${width} px: no sideways scrolling`);
    const height = await labels.first().evaluate((l) => l.getBoundingClientRect().height);
    assert.ok(height >= 44, `${width} px: cells at least 44 px tall (${height})`);
    console.log(`survey scale at ${width} px: cells ${minWidth.toFixed(1)} × ${height.toFixed(1)} px`);
    // The visible end labels are also part of the 0 and 10 radios' names.
    const [low, high] = (await page.locator('fieldset:first-of-type .ends span').allTextContents())
      .map((t) => t.replace(/^\s*\d+\s*=\s*/, '').trim());
    assert.ok(low && high, 'the end labels are visible');
    assert.equal(await page.getByRole('radio', { name: low }).getAttribute('value'), '0');
    assert.equal(await page.getByRole('radio', { name: high }).getAttribute('value'), '10');
    await context.close();
  }
});

test('the invitation mail\'s scale is eleven equal cells in one row at 320 px', async () => {
  const invitation = (await outbox()).find((m) => m.kind === 'invitation' && m.channel === 'email' && m.html);
  const context = await browser.newContext({ viewport: { width: 320, height: 740 }, isMobile: true, deviceScaleFactor: 2 });
  const page = await context.newPage();
  await page.setContent(invitation.html);
  const cells = page.locator('td:has(> a[href*="score="])');
  assertOneEqualRow(await boxes(cells), 'mail at 320 px');
  assert.deepEqual(await cells.allTextContents(), Array.from({ length: 11 }, (_, i) => String(i)));
  await context.close();
});

test('the survey and sign-in pages ask for no /favicon.ico and log no console error', async () => {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true });
  const page = await context.newPage();
  const requests = [];
  const errors = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(links[0], { waitUntil: 'networkidle' });
  await page.click('label.opt:has(input[name=score][value="9"])');
  for (const url of [`${links[0]}?score=9`, `${links[1]}/thanks`, `${base}/admin/sign-in`]) {
    await page.goto(url, { waitUntil: 'networkidle' });
  }
  assert.deepEqual(requests.filter((u) => new URL(u).pathname === '/favicon.ico'), [], 'no request for /favicon.ico');
  assert.deepEqual(errors, [], 'no console errors');
  await context.close();
});

/** Debian's Chromium for Lighthouse, with the flags this offline machine needs. */
async function startChromium() {
  const profile = mkdtempSync(join(tmpdir(), 'closeloop-lighthouse-'));
  const child = spawn(process.env.CHROMIUM_BIN || '/usr/bin/chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    `--user-data-dir=${profile}`, '--remote-debugging-port=0', 'about:blank'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const port = await new Promise((resolve, reject) => {
    let seen = '';
    child.stderr.on('data', (chunk) => {
      seen += chunk;
      const m = seen.match(/DevTools listening on ws:\/\/[^:]+:(\d+)\//);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`chromium exited with ${code}:\n${seen}`)));
  });
  /** Signs in within this browser (its cookie jar), as a person would, for the pages behind it. */
  const signIn = async () => {
    const cdp = await playwright.connectOverCDP(`http://127.0.0.1:${port}`);
    const page = await cdp.contexts()[0].newPage();
    await page.goto(`${base}/admin/sign-in`);
    await page.fill('#token', adminToken);
    await Promise.all([page.waitForURL(`${base}/admin`), page.click('button[type=submit]')]);
    await page.close();
    await cdp.close();
  };
  const stop = async () => {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill();
    await exited;
    rmSync(profile, { recursive: true, force: true });
  };
  return { port, signIn, stop };
}

const METRICS = [['FCP', 'first-contentful-paint'], ['LCP', 'largest-contentful-paint'], ['TBT', 'total-blocking-time'],
  ['CLS', 'cumulative-layout-shift'], ['SI', 'speed-index']];

test('Lighthouse (mobile): Accessibility and Best Practices 100 on every page a person sees', { timeout: 600_000 }, async () => {
  const pages = [
    ['survey', links[0], false],
    ['survey ?score=9', `${links[0]}?score=9`, false],
    ['thanks', `${links[1]}/thanks`, false],
    ['sign-in', `${base}/admin/sign-in`, false],
    ['overview', `${base}/admin/c/${CAMPAIGN}`, true],
  ];
  const chromium = await startChromium();
  const failures = [];
  try {
    for (const [name, url, signedIn] of pages) {
      if (signedIn) await chromium.signIn();
      const result = await lighthouse(url, {
        port: chromium.port, output: 'json', logLevel: 'error',
        onlyCategories: ['performance', 'accessibility', 'best-practices'],
      });
      const { categories, audits, finalDisplayedUrl, runtimeError } = result.lhr;
      assert.equal(runtimeError, undefined, `${name}: ${JSON.stringify(runtimeError)}`);
      assert.equal(new URL(finalDisplayedUrl).pathname, new URL(url).pathname, `${name}: not redirected (signed in)`);
      const score = (id) => Math.round(categories[id].score * 100);
      const metrics = METRICS.map(([short, id]) => `${short} ${audits[id].displayValue}`).join(', ');
      console.log(`lighthouse ${name}: accessibility ${score('accessibility')}, best practices ${score('best-practices')}, performance ${score('performance')} (${metrics})`);
      for (const id of ['accessibility', 'best-practices']) {
        if (categories[id].score === 1) continue;
        for (const ref of categories[id].auditRefs) {
          const audit = audits[ref.id];
          if (ref.weight > 0 && audit.score !== null && audit.score < 1) {
            failures.push(`${name}: ${id}: ${ref.id} (${audit.title}): ${JSON.stringify(audit.details?.items ?? []).slice(0, 800)}`);
          }
        }
      }
    }
  } finally {
    await chromium.stop();
  }
  assert.deepEqual(failures, [], 'Lighthouse audits that failed');
});

/** Runs vnu once over every document; returns its errors by document name. */
function vnuErrors(documents) {
  const dir = mkdtempSync(join(tmpdir(), 'closeloop-vnu-'));
  const files = documents.map(([name, html], i) => {
    const file = join(dir, `${String(i).padStart(3, '0')}.html`);
    writeFileSync(file, html);
    return [file, name];
  });
  let output;
  try {
    execFileSync('java', ['-jar', vnuJar, '--errors-only', '--format', 'json', ...files.map(([f]) => f)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    output = '{"messages":[]}';
  } catch (e) {
    output = e.stderr || e.stdout;
  }
  const names = new Map(files.map(([f, name]) => [f, name]));
  const report = {};
  for (const m of JSON.parse(output).messages) {
    const path = decodeURIComponent(new URL(m.url).pathname);
    const name = names.get(path) ?? path;
    (report[name] ??= []).push(`line ${m.lastLine}: ${m.message}${m.extract ? ` [${m.extract.trim().slice(0, 120)}]` : ''}`);
  }
  rmSync(dir, { recursive: true, force: true });
  return report;
}

async function html(url, { expect = 200, withCookie = false, ...init } = {}) {
  const response = await fetch(url, { redirect: 'manual', ...init, headers: { ...(withCookie ? { Cookie: cookie } : {}), ...init.headers } });
  assert.equal(response.status, expect, `${init.method ?? 'GET'} ${url}`);
  assert.match(response.headers.get('content-type') ?? '', /text\/html/, url);
  return response.text();
}

test('the Nu HTML Checker finds no error in any page or mail', { timeout: 300_000 }, async () => {
  const unsubscribe = (await outbox()).find((m) => m.kind === 'invitation' && m.channel === 'email' && m.text.includes(links[5]))
    .text.match(/http:\/\/127\.0\.0\.1:\d+\/u\/[A-Za-z0-9]{22}/)[0];
  const documents = [
    ['survey', await html(links[0])],
    ['survey ?score=9', await html(`${links[0]}?score=9`)],
    ['survey, answered (the change page)', await html(links[1])],
    ['survey after a bad answer', await html(links[3], { method: 'POST', body: new URLSearchParams({ score: '11', comment: 'x' }), expect: 400 })],
    ['thanks, promoter', await html(`${links[1]}/thanks`)],
    ['thanks, detractor', await html(`${links[2]}/thanks`)],
    ['unsubscribe form', await html(unsubscribe)],
    ['unsubscribed', await html(unsubscribe, { method: 'POST' })],
    ['not found', await html(`${links[0].slice(0, -22)}AAAAAAAAAAAAAAAAAAAAAA`, { expect: 404 })],
    ['sign-in', await html(`${base}/admin/sign-in`)],
  ];
  const admin = ['/admin', `/admin/c/${CAMPAIGN}`, `/admin/c/${CAMPAIGN}?by=store&value=Malm%C3%B6`, `/admin/c/${CAMPAIGN}/segments?by=store`,
    `/admin/c/${CAMPAIGN}/comments`, `/admin/c/${CAMPAIGN}/drivers`, `/admin/c/${CAMPAIGN}/cases?status=all`,
    `/admin/c/${CAMPAIGN}/preview?locale=sv`, `/admin/c/${CAMPAIGN}/changes`, `/admin/c/${CAMPAIGN}/upload`, `/admin/c/${CAMPAIGN}/edit`,
    '/admin/new', '/admin/import', '/admin/people', '/admin/people?email=karl.oberg%40example.se', '/admin/accounts', '/admin/audit'];
  for (const path of admin) documents.push([path, await html(`${base}${path}`, { withCookie: true })]);
  const mails = (await outbox()).filter((m) => m.html);
  assert.ok(mails.length >= 10, `mails with HTML in the outbox: ${mails.length}`);
  const kinds = new Set();
  for (const m of mails) {
    documents.push([`mail ${m.kind} to ${m.to}`, m.html]);
    kinds.add(m.kind);
  }
  const report = vnuErrors(documents);
  const count = Object.values(report).reduce((n, errors) => n + errors.length, 0);
  console.log(`vnu: ${documents.length} documents (${documents.length - mails.length} pages, ${mails.length} mails: ${[...kinds].join(', ')}), ${count} errors`);
  assert.deepEqual(report, {}, 'vnu errors');
});
