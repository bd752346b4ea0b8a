// The dashboard in Debian's Chromium against a real `closeloop up --demo`: sign in, read the
// overview, filter a segment, close a case, export; axe-core on every page a person sees.
// Screenshots land in artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { artifacts, bin, freePort, launchChromium, startDemo } from './support.mjs';

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const CAMPAIGN = 'demo-service-visit';

let server, browser, base, dataDir;
const tokens = {};

function addAccount(name, role, email) {
  const args = ['--data-dir', dataDir, 'account', 'add', '--name', name, '--role', role];
  if (email) args.push('--email', email);
  const out = execFileSync(bin, args, { encoding: 'utf8' });
  return out.match(/shown only now: (\S+)/)[1];
}

async function outbox() {
  return (await fetch(`${base}/outbox.json`)).json();
}

/** Answers one invitation over plain HTTP, as a respondent's browser would post the form. */
async function answer(link, fields) {
  const response = await fetch(link, { method: 'POST', body: new URLSearchParams(fields), redirect: 'manual' });
  assert.equal(response.status, 303, `answer to ${link}`);
}

before(async () => {
  const port = await freePort();
  // localhost, not 127.0.0.1: browsers keep `Secure` cookies over plain http only for localhost.
  base = `http://localhost:${port}`;
  dataDir = mkdtempSync(join(tmpdir(), 'closeloop-dashboard-'));
  tokens.admin = addAccount('Karin Admin', 'admin');
  tokens.viewer = addAccount('Vera Viewer', 'viewer');
  tokens.editor = addAccount('Eda Editor', 'editor');
  tokens.jonas = addAccount('Jonas Berg', 'owner', 'jonas.berg@nordhavn-cykler.example');
  server = await startDemo(dataDir, port);
  // Malmö contacts belong to Jonas; the others to other owners. A mix of answers and comments.
  const invitations = (await outbox()).filter((m) => m.kind === 'invitation' && m.channel === 'email');
  const link = (name) => {
    const m = invitations.find((x) => x.text.includes(name));
    return m.text.match(/http:\/\/127\.0\.0\.1:\d+\/s\/[A-Za-z0-9]{22}/)[0];
  };
  await answer(link('Åsa'), { score: '2', comment: 'Priset var för högt och jag fick vänta <b>länge</b>.', 'rating.ease': '2', 'rating.quality': '3' });
  await answer(link('Björn'), { score: '9', comment: 'Trevlig personal!', 'rating.ease': '4', 'rating.quality': '5' });
  await answer(link('Freja'), { score: '10', comment: 'Hurtig reparation', 'rating.ease': '5', 'rating.quality': '5' });
  await answer(link('Karl'), { score: '7', comment: 'OK men dyrt', 'rating.ease': '3', 'rating.quality': '4' });
  // Cases are opened by the background dispatcher: wait until the detractor's alert is out.
  for (let i = 0; i < 50 && !(await outbox()).some((m) => m.kind === 'alert'); i++) await new Promise((r) => setTimeout(r, 100));
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.kill();
});

async function signedIn(token) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const foreign = [];
  page.on('request', (r) => { if (!r.url().startsWith(base)) foreign.push(r.url()); });
  await page.goto(`${base}/admin/c/${CAMPAIGN}`);
  assert.match(page.url(), /\/admin\/sign-in$/, 'no page without signing in');
  await page.fill('#token', token);
  await Promise.all([page.waitForURL(`${base}/admin`), page.click('button[type=submit]')]);
  return { page, context, foreign };
}

/** axe-core in a context that lets the script in (the pages' CSP rightly forbids it). */
async function axeViolations(url, setup) {
  const context = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  if (setup) await setup(page);
  await page.goto(url);
  await page.addScriptTag({ content: axeSource });
  const { violations, passes } = await page.evaluate(async () => {
    const r = await window.axe.run(document);
    return { violations: r.violations, passes: r.passes.length };
  });
  await context.close();
  assert.ok(passes > 10, `axe ran its rules on ${url}`);
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

test('an admin signs in and reads the overview: NPS with margin, funnel, benchmark, weekly trend', async () => {
  const { page, foreign } = await signedIn(tokens.admin);
  await page.click(`a[href="/admin/c/${CAMPAIGN}"]`);
  await page.waitForURL(`${base}/admin/c/${CAMPAIGN}`);
  // 2 promoters, 1 passive, 1 detractor of 4: NPS +25.
  assert.equal((await page.textContent('#nps-value')).trim(), '+25');
  assert.match(await page.textContent('main'), /± \d+/);
  assert.match(await page.textContent('#response-rate'), /20\.0 %/, '4 answers of 20 invited');
  assert.match(await page.textContent('main'), /B2C benchmarks/);
  assert.equal(await page.locator('svg.chart polygon.band, svg.chart rect.band').count(), 1, 'the margin band is drawn');
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'cl_session');
  assert.ok(session.httpOnly && session.secure && session.sameSite === 'Strict', JSON.stringify(session));
  await page.screenshot({ path: join(artifacts, 'dashboard-overview.png'), fullPage: true });
  assert.deepEqual(foreign, [], 'no external requests');
});

test('filtering a segment narrows the overview to that store', async () => {
  const { page } = await signedIn(tokens.admin);
  await page.goto(`${base}/admin/c/${CAMPAIGN}/segments`);
  await page.selectOption('#by', 'store');
  await Promise.all([page.waitForURL(/by=store/), page.click('form[aria-label="Choose a segment field"] button')]);
  const rows = await page.locator('#segments tbody tr').count();
  assert.ok(rows >= 4, 'all contacts plus Malmö, Göteborg, København, Aarhus');
  assert.match(await page.textContent('#segments'), /uncertain: fewer than 30 answers/);
  await page.screenshot({ path: join(artifacts, 'dashboard-segments.png'), fullPage: true });
  await Promise.all([page.waitForURL(/value=Malm/), page.click('#segments a:text("Malmö")')]);
  assert.match(await page.textContent('.scope'), /store = Malmö/);
  // Malmö: Åsa 2 and Björn 9: NPS 0.
  assert.equal((await page.textContent('#nps-value')).trim(), '0');
  await page.screenshot({ path: join(artifacts, 'dashboard-segment-malmo.png'), fullPage: true });
});

test('comments are grouped by theme and searchable', async () => {
  const { page } = await signedIn(tokens.viewer);
  await page.goto(`${base}/admin/c/${CAMPAIGN}/comments`);
  const themes = await page.textContent('main');
  assert.match(themes, /price/);
  await page.selectOption('#theme', 'price');
  await Promise.all([page.waitForURL(/theme=price/), page.click('form[aria-label="Search comments"] button')]);
  const shown = await page.locator('article.case').allTextContents();
  assert.equal(shown.length, 2, `"Priset" and "dyrt" both found by the price theme: ${shown}`);
  assert.ok(shown.some((t) => t.includes('<b>länge</b>')), 'the comment shows its markup as text');
  await page.screenshot({ path: join(artifacts, 'dashboard-comments.png'), fullPage: true });
});

test('an owner closes their case, and the closure shows who and when', async () => {
  const { page } = await signedIn(tokens.jonas);
  await page.goto(`${base}/admin/c/${CAMPAIGN}/cases`);
  const cases = page.locator('article.case');
  assert.equal(await cases.count(), 1, "Jonas sees only his Malmö detractor's case");
  assert.match(await cases.first().textContent(), /Åsa/);
  await page.fill('textarea[name=text]', 'Ringde Åsa, erbjöd rabatt.');
  await Promise.all([page.waitForURL(/status=all/), page.click('form[action$="/notes"] button')]);
  await page.fill('input[name=outcome]', 'Rabatt på nästa service');
  await Promise.all([page.waitForURL(/status=all/), page.click('form[action$="/close"] button')]);
  const text = await page.textContent('article.case');
  assert.match(text, /Closed by Jonas Berg on \d{4}-\d\d-\d\d/);
  assert.match(text, /Ringde Åsa/);
  await page.screenshot({ path: join(artifacts, 'dashboard-case-closed.png'), fullPage: true });
  const viewer = await signedIn(tokens.viewer);
  await viewer.page.goto(`${base}/admin/c/${CAMPAIGN}/cases?status=all`);
  assert.equal(await viewer.page.locator('form[action$="/close"]').count(), 0, 'a viewer gets no forms');
});

test('the export downloads as Excel-ready CSV', async () => {
  const { page } = await signedIn(tokens.admin);
  await page.goto(`${base}/admin/c/${CAMPAIGN}`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('a:text("Export CSV")')]);
  const csv = readFileSync(await download.path(), 'utf8');
  assert.ok(csv.startsWith('\uFEFF'), 'UTF-8 with a BOM');
  assert.equal(csv.trim().split('\r\n').length, 5, 'a header and four answers');
  assert.match(csv, /"Priset var för högt/);
});

test('a preview shows the Swedish invitation in its frame and how many segments the SMS takes', async () => {
  const { page } = await signedIn(tokens.admin);
  await page.goto(`${base}/admin/c/${CAMPAIGN}/preview?locale=sv&group=detractor`);
  const mail = page.frameLocator('iframe[title="Invitation mail, HTML"]');
  assert.match(await mail.locator('body').innerText(), /Hur troligt är det att du skulle rekommendera Nordhavn Cykler/);
  const length = await page.locator('section[aria-label="Invitation SMS"] .sms-length').innerText();
  assert.match(length, /^\d+ characters, (GSM-7|UCS-2[^,]*), \d+ segments?$/);
  assert.equal(await page.locator('#locale').inputValue(), 'sv');
});

test('axe-core finds no serious or critical violation on any page a person sees', async () => {
  const invitation = (await outbox()).find((m) => m.kind === 'invitation' && m.channel === 'email' && m.text.includes('Ingrid'));
  const survey = invitation.text.match(/http:\/\/127\.0\.0\.1:\d+\/s\/[A-Za-z0-9]{22}/)[0];
  await answer(survey, { score: '8', comment: 'Bra' });
  const signIn = async (page) => {
    await page.goto(`${base}/admin/sign-in`);
    await page.fill('#token', tokens.admin);
    await Promise.all([page.waitForURL(`${base}/admin`), page.click('button[type=submit]')]);
  };
  const pages = [
    [survey, null],
    [`${survey}/thanks`, null],
    [`${base}/admin/sign-in`, null],
    [`${base}/admin`, signIn],
    [`${base}/admin/c/${CAMPAIGN}`, signIn],
    [`${base}/admin/c/${CAMPAIGN}?by=store&value=Malm%C3%B6`, signIn],
    [`${base}/admin/c/${CAMPAIGN}/segments?by=store`, signIn],
    [`${base}/admin/c/${CAMPAIGN}/comments`, signIn],
    [`${base}/admin/c/${CAMPAIGN}/drivers`, signIn],
    [`${base}/admin/c/${CAMPAIGN}/cases?status=all`, signIn],
    [`${base}/admin/c/${CAMPAIGN}/preview?locale=da`, signIn],
    [`${base}/admin/new`, signIn],
    [`${base}/admin/new?from=${CAMPAIGN}`, signIn],
    [`${base}/admin/import`, signIn],
    [`${base}/admin/c/${CAMPAIGN}/edit`, signIn],
    [`${base}/admin/c/${CAMPAIGN}/changes`, signIn],
    [`${base}/admin/c/${CAMPAIGN}/upload`, signIn],
    [`${base}/admin/people?email=karl.oberg%40example.se`, signIn],
    [`${base}/admin/accounts`, signIn],
    [`${base}/admin/audit`, signIn],
  ];
  const report = {};
  for (const [url, setup] of pages) {
    const violations = await axeViolations(url, setup);
    if (violations.length) report[url] = violations;
  }
  assert.deepEqual(report, {}, 'serious or critical accessibility violations');
});

test('an editor creates a campaign with the form, fixes what it points to, and edits it', async () => {
  const { page, foreign } = await signedIn(tokens.editor);
  const started = Date.now();
  await Promise.all([page.waitForURL(`${base}/admin/new`), page.click('a:text("New campaign")')]);
  await page.fill('#id', 'autumn-visit');
  await page.fill('#name', 'Autumn visit');
  await page.fill('#company', 'Nordhavn Cykler');
  await page.fill('#sender_name', 'Karin Lund');
  await page.fill('#sender_email', 'karin');
  await page.fill('#locales', 'sv, en');
  await page.fill('#time_zone', 'Europe/Stockholm');
  // A window that is always open, so the journey below never waits on the clock of the run.
  await page.fill('#window_from', '00:00');
  await page.fill('#window_to', '24:00');
  for (const day of ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']) await page.check(`input[name=day_${day}]`);
  await page.fill('#drivers', 'ease | en: Ease of booking | sv: Hur enkelt det var att boka');
  await page.click('button:text("Save campaign")');
  // The mistake is named at its field and in the summary, and everything typed is still there.
  assert.match(await page.textContent('#sender_email-error'), /karin/);
  assert.equal(await page.locator('#problems a[href="#sender_email"]').count(), 1);
  assert.equal(await page.inputValue('#window_to'), '24:00');
  assert.equal(await page.isChecked('input[name=day_sun]'), true);
  await page.screenshot({ path: join(artifacts, 'workspace-form-error.png'), fullPage: true });
  await page.fill('#sender_email', 'karin.lund@nordhavn-cykler.example');
  await Promise.all([page.waitForURL(`${base}/admin/c/autumn-visit`), page.click('button:text("Save campaign")')]);
  console.log(`workspace: "New campaign" to a saved campaign in ${Date.now() - started} ms (one mistake fixed on the way)`);
  // A new campaign is a draft: contacts uploaded now wait until it starts.
  assert.match(await page.textContent('.state'), /draft/);
  await page.click('nav.campaign a:text("Upload contacts")');
  const contacts = 'email;first_name;locale\r\nmarta.autumn@example.se;Märta;sv\r\nolof.autumn@example.se;Olof;sv\r\n';
  await page.setInputFiles('#file', { name: 'autumn.csv', mimeType: 'text/csv', buffer: Buffer.from(contacts, 'utf8') });
  await Promise.all([page.waitForURL(/\/upload\/[0-9a-f]{32}$/), page.click('button:text("Check the file")')]);
  assert.equal((await page.textContent('#would-invite')).trim(), '2');
  await Promise.all([page.waitForURL(/\/admin\/c\/autumn-visit\?launch=/), page.click('button:text("Launch: invite 2")')]);
  assert.ok(!(await outbox()).some((m) => m.to?.includes('marta.autumn')), 'a draft sends nothing');
  await Promise.all([page.waitForURL(`${base}/admin/c/autumn-visit`), page.click('button:text("Start sending now")')]);
  console.log(`workspace: "New campaign" to a launched, started campaign in ${Date.now() - started} ms (form, one fix, upload, dry run, launch, start)`);
  for (let i = 0; i < 50 && !(await outbox()).some((m) => m.to?.includes('marta.autumn')); i++) await new Promise((r) => setTimeout(r, 200));
  const marta = (await outbox()).find((m) => m.to?.includes('marta.autumn'));
  assert.ok(marta, 'started: the waiting invitations go out');
  assert.match(marta.text, /Hur troligt/);
  await page.goto(`${base}/admin/c/autumn-visit/changes`);
  assert.match(await page.textContent('main'), /Created by Eda Editor, \d{4}-\d\d-\d\d \d\d:\d\d CES?T/);
  await page.click('nav.campaign a:text("Settings")');
  await page.fill('#throttle_days', '30');
  await Promise.all([page.waitForURL(`${base}/admin/c/autumn-visit/changes`), page.click('button:text("Save campaign")')]);
  const log = await page.textContent('main');
  assert.match(log, /Edited by Eda Editor/);
  assert.match(await page.locator('section.case').first().textContent(), /throttle_days\s*90\s*30/);
  await page.screenshot({ path: join(artifacts, 'workspace-change-log.png'), fullPage: true });
  assert.deepEqual(foreign, [], 'no external requests');
});

test('an editor uploads a Windows-1252 HubSpot export, accepts the suggested mapping, reads the dry run, launches, pauses and resumes', async () => {
  const { page, foreign } = await signedIn(tokens.editor);
  // Excel on Windows: "CSV (semicolon delimited)" in Windows-1252; HubSpot's own column names.
  const rows = [
    'First Name;Last Name;Email;Company Name;Preferred language',
    'Maja;Öberg;maja.oberg@example.se;Öbergs Åkeri;Swedish',
    'Søren;Ærø;soren.aero@example.dk;Ærø ApS;Danish',
    'Olle;"Trasig;olle@example.se;Olles AB;svenska',
    'Ella;Ek;ella.ek@example.se;Ek & Co;sv-SE',
  ];
  const file = Buffer.from(rows.join('\r\n') + '\r\n', 'latin1');
  const started = Date.now();
  await page.goto(`${base}/admin/c/${CAMPAIGN}`);
  await Promise.all([page.waitForURL(`${base}/admin/c/${CAMPAIGN}/upload`), page.click('nav.campaign a:text("Upload contacts")')]);
  await page.setInputFiles('#file', { name: 'hubspot-export.csv', mimeType: 'text/csv', buffer: file });
  await Promise.all([page.waitForURL(/\/upload\/[0-9a-f]{32}$/), page.click('button:text("Check the file")')]);
  assert.equal(await page.textContent('#file-format'), 'CSV, Windows-1252, semicolon-separated');
  assert.equal(await page.inputValue('select[name="map:Company Name"]'), 'company');
  assert.equal(await page.inputValue('select[name="map:Preferred language"]'), 'locale');
  assert.equal((await page.textContent('#would-invite')).trim(), '3', 'Maja, Søren and Ella');
  assert.match(await page.textContent('#bad-rows'), /Line\s*Problem\s*4\D/, 'the unterminated quote, at its line');
  await page.screenshot({ path: join(artifacts, 'workspace-dry-run.png'), fullPage: true });
  const dryRun = page.url();
  assert.deepEqual(await axeViolations(dryRun, async (p) => {
    await p.goto(`${base}/admin/sign-in`);
    await p.fill('#token', tokens.editor);
    await Promise.all([p.waitForURL(`${base}/admin`), p.click('button[type=submit]')]);
  }), [], 'the dry-run page: no serious or critical accessibility violation');
  const before = (await outbox()).length;
  await Promise.all([page.waitForURL(new RegExp(`/admin/c/${CAMPAIGN}\\?launch=`)), page.click('button:text("Launch: invite 3")')]);
  console.log(`workspace: upload page to a launched campaign in ${Date.now() - started} ms`);
  // Watch the launch until its rows are written.
  for (let i = 0; i < 50; i++) {
    const progress = page.locator('#launches-h ~ table tbody tr:first-child progress');
    if ((await progress.getAttribute('value')) === (await progress.getAttribute('max'))) break;
    await page.reload();
  }
  const launch = await page.locator('#launches-h ~ table tbody tr:first-child').textContent();
  assert.match(launch, /dashboard upload by Eda Editor\s*done/);
  // The Swedish contact is invited in Swedish, with the company from the export.
  for (let i = 0; i < 50 && !(await outbox()).some((m) => m.to?.includes('maja.oberg')); i++) await new Promise((r) => setTimeout(r, 100));
  const maja = (await outbox()).find((m) => m.to?.includes('maja.oberg'));
  assert.ok(maja, 'the dispatcher sent the new invitations');
  assert.match(maja.subject, /Nordhavn Cykler/);
  assert.match(maja.text, /Hur troligt/, 'in Swedish');
  assert.ok((await outbox()).length >= before + 3);
  // Pause, then resume, from the overview.
  await Promise.all([page.waitForURL(`${base}/admin/c/${CAMPAIGN}`), page.click('button:text("Pause sending")')]);
  assert.match(await page.textContent('main'), /paused/i);
  await Promise.all([page.waitForURL(`${base}/admin/c/${CAMPAIGN}`), page.click('button:text("Resume sending")')]);
  assert.equal(await page.locator('button:text("Pause sending")').count(), 1, 'active again');
  await page.screenshot({ path: join(artifacts, 'workspace-launched.png'), fullPage: true });
  assert.deepEqual(foreign, [], 'no external requests');
  // The mapping is remembered with the campaign, in its change log.
  await page.goto(`${base}/admin/c/${CAMPAIGN}/changes`);
  assert.match(await page.textContent('main'), /Edited by Eda Editor[\s\S]*columns/);
});

test('an admin looks a person up, reads everything held about them, and erases them', async () => {
  const karl = (await outbox()).find((m) => m.kind === 'invitation' && m.text.includes('Karl'));
  const survey = karl.text.match(/http:\/\/127\.0\.0\.1:\d+\/s\/[A-Za-z0-9]{22}/)[0];
  const { page, foreign } = await signedIn(tokens.admin);
  const overview = async () => {
    await page.goto(`${base}/admin/c/${CAMPAIGN}`);
    return `${await page.textContent('#nps-value')} ${await page.textContent('#response-rate')}`;
  };
  const counted = await overview();
  await page.goto(`${base}/admin`);
  await Promise.all([page.waitForURL(`${base}/admin/people`), page.click('a:text("People: access and erasure")')]);
  await page.fill('#email', 'Karl.Oberg@example.se');
  await Promise.all([page.waitForURL(/people\?email=/), page.click('button:text("Look up")')]);
  const held = await page.textContent('main');
  assert.match(held, /Service visit follow-up: invited \d{4}-\d\d-\d\d \d\d:\d\d CES?T by email/, 'times on the campaign clock');
  assert.match(held, /Öberg/);
  assert.match(held, /Bianchi Spillo/, 'the CRM fields');
  assert.match(held, /Version 1, .*: 7 “OK men dyrt”/);
  assert.match(held, /invitation, \d{4}/, 'the messages sent');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('a:text("Download as JSON")')]);
  const exported = JSON.parse(readFileSync(await download.path(), 'utf8'));
  assert.equal(exported.invitations[0].answers[0].comment, 'OK men dyrt');
  await page.screenshot({ path: join(artifacts, 'people-before-erasure.png'), fullPage: true });

  // The box must be ticked: the browser refuses the form without it.
  await page.click('button:text("Erase this person")');
  assert.match(page.url(), /people\?email=/, 'nothing was posted without the tick');
  await page.check('input[name=confirm]');
  await Promise.all([page.waitForURL(`${base}/admin/people/erase`), page.click('button:text("Erase this person")')]);
  assert.match(await page.textContent('[role=status]'), /Erased karl\.oberg@example\.se: 1 invitation\(s\) anonymised/);
  await page.screenshot({ path: join(artifacts, 'people-erased.png'), fullPage: true });

  await page.fill('#email', 'karl.oberg@example.se');
  await Promise.all([page.waitForURL(/people\?email=/), page.click('button:text("Look up")')]);
  const after = await page.textContent('main');
  assert.match(after, /No invitations hold this address/);
  assert.match(after, /a keyed hash of a contact key \(left by an erasure\): erased/);
  assert.doesNotMatch(after, /OK men dyrt|Öberg/);
  assert.equal((await fetch(survey)).status, 404, 'his link answers as an unknown token');
  assert.ok(!(await outbox()).some((m) => m.to?.includes('karl.oberg')), 'no message to him is left in the outbox');
  assert.equal(await overview(), counted, 'the overview still counts his answer');
  assert.deepEqual(foreign, [], 'no external requests');

  const viewer = await signedIn(tokens.viewer);
  const refused = await viewer.page.goto(`${base}/admin/people?email=karl.oberg%40example.se`);
  assert.equal(refused.status(), 403, 'only admins look people up');
});

test('an editor composes "you said, we did", previews it per language with its audience, and sends it once', async () => {
  const { page, foreign } = await signedIn(tokens.editor);
  await page.goto(`${base}/admin/c/${CAMPAIGN}/updates`);
  // Detractors who wrote about waiting: Åsa alone.
  await page.fill('#subject_sv', 'Ni sa, vi gjorde');
  await page.fill('#body_sv', 'Ni sa att ni fick vänta. Nu lagar vi de flesta cyklar samma dag: https://nordhavn.example/nyheter.');
  await page.fill('#subject_en', 'You said, we did');
  await page.fill('#body_en', 'You said you had to wait. We now fix most bikes the same day: https://nordhavn.example/news.');
  await page.check('input[name=group_detractor]');
  await page.check('label:has-text("waiting") input');
  await Promise.all([page.waitForLoadState('load'), page.click('button[value=preview]')]);
  assert.match(await page.textContent('#audience-count'), /Reaches 1 \(1 who answered\)/);
  const exclusions = await page.textContent('#exclusions');
  assert.match(exclusions, /unsubscribed, bounced or complained/);
  assert.match(exclusions, /no email address \(SMS only\)/);
  // One preview per campaign language; Danish has no text of its own and says so.
  const previews = await page.locator('section.preview').allTextContents();
  assert.equal(previews.length, 3, previews.join('\n'));
  assert.ok(previews.some((p) => p.includes('In da') && p.includes('No text in da')), 'the fallback is named');
  const svMail = await page.locator('iframe[title="Update mail in sv, HTML"]').getAttribute('srcdoc');
  assert.match(svMail, /Ni sa att ni fick vänta/);
  assert.match(svMail, /\/n\/[A-Za-z0-9]{22}\/upd_[0-9a-f]{16}\/\d/, 'its link is tracked');
  assert.doesNotMatch(svMail, /<img/, 'no pixel');
  await page.screenshot({ path: join(artifacts, 'updates-preview.png'), fullPage: true });

  // With those who did not answer, it reaches more; the send says how many.
  await page.check('input[name=non_respondents]');
  await Promise.all([page.waitForLoadState('load'), page.click('button[value=preview]')]);
  const reached = Number((await page.textContent('#audience-count')).match(/Reaches (\d+)/)[1]);
  assert.ok(reached > 1, `non-respondents join: ${reached}`);
  await page.uncheck('input[name=non_respondents]');
  await Promise.all([page.waitForLoadState('load'), page.click('button[value=preview]')]);
  const form = await page.evaluate(() => new URLSearchParams(new FormData(document.querySelector('#composer'))).toString());
  await Promise.all([page.waitForURL(/updates\?sent=upd_/), page.click('#send-update')]);
  assert.match(await page.textContent('#update-notice'), /Sent/);

  let mails = [];
  for (let i = 0; i < 50 && mails.length === 0; i++) {
    mails = (await outbox()).filter((m) => m.kind === 'update');
    if (mails.length === 0) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(mails.length, 1, 'one mail: Åsa');
  assert.match(mails[0].subject, /Ni sa, vi gjorde/, 'in her language');
  const tracked = mails[0].text.match(/http:\/\/127\.0\.0\.1:\d+\/n\/[A-Za-z0-9]{22}\/upd_[0-9a-f]{16}\/\d/)[0];
  const hop = await fetch(tracked, { redirect: 'manual' });
  assert.equal(hop.status, 303);
  const go = await fetch(new URL(hop.headers.get('location'), tracked), { redirect: 'manual' });
  assert.equal(go.status, 302);
  assert.equal(go.headers.get('location'), 'https://nordhavn.example/nyheter', 'on to the address written');
  await page.reload();
  const sent = await page.textContent('main');
  assert.match(sent, /nordhavn\.example\/nyheter: 1/, 'the click is counted');

  // The same form posted again (a double click, a back button) is the same update.
  const again = await page.request.post(`${base}/admin/c/${CAMPAIGN}/updates`, {
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base },
    data: `${form}&action=send`,
    maxRedirects: 0,
  });
  assert.equal(again.status(), 303);
  await new Promise((r) => setTimeout(r, 700));
  assert.equal((await outbox()).filter((m) => m.kind === 'update').length, 1, 'once per person');
  await page.reload();
  assert.equal(await page.locator('table tr[id^=upd_]').count(), 1, 'one update listed');
  assert.deepEqual(await axeViolations(`${base}/admin/c/${CAMPAIGN}/updates`, async (p) => {
    await p.goto(`${base}/admin/sign-in`);
    await p.fill('#token', tokens.editor);
    await Promise.all([p.waitForURL(`${base}/admin`), p.click('button[type=submit]')]);
  }), []);
  assert.deepEqual(foreign, [], 'no external requests');
});
