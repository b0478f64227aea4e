// The web page of `convnext serve` in a real browser: Debian's chromium, headless, driven by
// puppeteer-core (tests/web/package.json; tests/web/setup.sh installs it). Run by page_test.sh,
// which starts the server and writes what `convnext classify --json` says of each image.
//
//   node tests/web/page_test.js --url http://127.0.0.1:PORT --chromium /usr/bin/chromium
//        --expected classify.jsonl --screenshot page.png [--browser-pid-file F]
//        --choose IMG --drop IMG --keyboard IMG --click IMG --shot IMG --not-an-image FILE
//
// It opens the page, records every request the page makes (any other origin fails the test),
// then classifies one image each way a person can give it: set on the file input, dropped on the
// drop zone (a DataTransfer holding the file), and chosen through the file chooser, opened with
// the keyboard (Tab to the "choose an image" button, Enter) and with a click on the drop zone.
// After each it checks that five bars appear, the first bar's label is classify's top-1 label, the
// scores lie in [0, 1], descend, match classify's to the three decimals shown, and each bar's
// width is its score; and that the status line gives the time in ms. A file that is no image must give an error in the status line and
// no bars. Last it classifies --shot and saves a screenshot of the 900x700 viewport.
'use strict';
const fs = require('fs');
const path = require('path');
const puppeteer = require('puppeteer-core');

const TIMEOUT_MS = 60000;  // each wait: generous, for slow shared machines

function parseArgs(argv) {
  const a = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) throw new Error('bad argument ' + argv[i]);
    a[argv[i].slice(2)] = argv[i + 1];
  }
  for (const k of ['url', 'chromium', 'expected', 'screenshot', 'choose', 'drop', 'keyboard', 'click', 'shot', 'not-an-image'])
    if (!a[k]) throw new Error('missing --' + k);
  return a;
}

const failures = [];
function check(ok, what) {
  if (ok) { console.log('ok   ' + what); } else { console.log('FAIL ' + what); failures.push(what); }
}

// classify --json: one object per image and line, keyed here by the file's base name.
function readExpected(file) {
  const m = new Map();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const o = JSON.parse(line);
    m.set(path.basename(o.image), o.predictions);
  }
  return m;
}

// What the page shows after a classification: the status line and each row's label, score text
// and bar width (a share of its track).
async function readResults(page) {
  return page.evaluate(() => ({
    status: document.getElementById('status').textContent,
    statusIsError: document.getElementById('status').classList.contains('error'),
    rows: [...document.querySelectorAll('#results .row')].map(r => {
      const bar = r.querySelector('.track > .bar'), track = r.querySelector('.track');
      return {
        label: r.querySelector('.label').textContent,
        score: r.querySelector('.score').textContent,
        barShare: bar && track ? bar.getBoundingClientRect().width / track.getBoundingClientRect().width : NaN,
      };
    }),
  }));
}

// Waits until the classification of `name` has finished (the status line names it, then a colon:
// the time taken or the error), then returns what the page shows.
async function waitForResult(page, name) {
  await page.waitForFunction(n => document.getElementById('status').textContent.startsWith(n + ':'),
                             {timeout: TIMEOUT_MS}, name);
  return readResults(page);
}

function checkResult(how, name, shown, expected) {
  const want = expected.get(name);
  if (!want) throw new Error('classify gave nothing for ' + name);
  check(!shown.statusIsError, `${how} ${name}: no error (status "${shown.status}")`);
  check(/^\S.*: \d+ ms on \S/.test(shown.status), `${how} ${name}: the status gives the time in ms ("${shown.status}")`);
  check(shown.rows.length === 5, `${how} ${name}: 5 bars (${shown.rows.length})`);
  if (!shown.rows.length) return;
  check(shown.rows[0].label === want[0].label,
        `${how} ${name}: first bar "${shown.rows[0].label}" is classify's top-1 "${want[0].label}"`);
  const scores = shown.rows.map(r => Number(r.score));
  check(scores.every(s => Number.isFinite(s) && s >= 0 && s <= 1), `${how} ${name}: scores in [0, 1] (${scores})`);
  check(scores.every((s, i) => i === 0 || s <= scores[i - 1]), `${how} ${name}: scores descend`);
  const byLabel = new Map(want.map(p => [p.label, p.score]));
  const off = shown.rows.filter(r => byLabel.has(r.label) && Math.abs(Number(r.score) - byLabel.get(r.label)) > 6e-4);
  check(off.length === 0, `${how} ${name}: scores are classify's to 3 decimals` +
                          (off.length ? ` (off: ${off.map(r => r.label + ' ' + r.score).join(', ')})` : ''));
  const bars = shown.rows.filter(r => Math.abs(r.barShare - Number(r.score)) > 0.01);
  check(bars.length === 0, `${how} ${name}: each bar's width is its score` +
                           (bars.length ? ` (off: ${bars.map(r => r.label + ' ' + r.barShare.toFixed(3)).join(', ')})` : ''));
}

// The requests that went to another origin than the server's.
function elsewhere(requests, origin) {
  return requests.filter(u => {
    if (u.startsWith('data:')) return false;  // inline, fetched from nowhere
    try { return new URL(u).origin !== origin; } catch { return true; }  // blob: URLs carry their origin
  });
}

// Stopped from outside (page_test.sh's timeout, ctest): the browser goes with this process. It
// runs in its own process group (puppeteer starts it detached).
let browserPid = 0;
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(signal, () => {
    console.error(`page_test.js: ${signal}, ending the browser`);
    if (browserPid) { try { process.kill(-browserPid, 'SIGKILL'); } catch (e) { /* gone already */ } }
    process.exit(1);
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const expected = readExpected(args.expected);
  const origin = new URL(args.url).origin;
  const t0 = Date.now();

  const browser = await puppeteer.launch({
    executablePath: args.chromium,
    headless: true,
    // As root in a container: no sandbox; /dev/shm may be small; no GPU.
    args: ['--no-sandbox', '--disable-setuid-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
           '--no-first-run', '--no-default-browser-check', '--disable-extensions',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--disable-features=Translate,MediaRouter,OptimizationHints', '--metrics-recording-only'],
    timeout: TIMEOUT_MS,
    protocolTimeout: TIMEOUT_MS,
    handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false,  // handled below
  });
  browserPid = browser.process() ? browser.process().pid : 0;
  if (args['browser-pid-file'] && browserPid) fs.writeFileSync(args['browser-pid-file'], String(browserPid));
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);
    await page.setViewport({width: 900, height: 700});

    const requests = [], pageErrors = [], consoleErrors = [];
    page.on('request', r => requests.push(r.url()));
    page.on('pageerror', e => pageErrors.push(String(e)));
    page.on('console', m => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    // File chooser interception is turned on by the first waitForFileChooser; turned on only just
    // before a key press it can miss that press's chooser, so it is turned on before the page loads.
    const firstChooser = page.waitForFileChooser({timeout: 10 * TIMEOUT_MS});
    firstChooser.catch(() => {});  // awaited below

    const response = await page.goto(args.url + '/', {waitUntil: 'load', timeout: TIMEOUT_MS});
    check(response && response.status() === 200, `GET / answers 200 (${response && response.status()})`);
    check((await page.title()) === 'convnext serve', 'the page title is "convnext serve"');
    const models = await page.$$eval('#model option', os => os.map(o => o.value));
    check(models.includes('convnext-fashion-mnist'), `the model list holds convnext-fashion-mnist (${models})`);

    // 1. The file input, as a person's choice sets it.
    const input = await page.$('#file');
    await input.uploadFile(args.choose);
    checkResult('file input:', path.basename(args.choose), await waitForResult(page, path.basename(args.choose)), expected);

    // 2. Dropped on the drop zone: the file's bytes in a DataTransfer, with the events a drop sends.
    const bytes = fs.readFileSync(args.drop).toString('base64');
    await page.evaluate((b64, name) => {
      const raw = atob(b64), a = new Uint8Array(raw.length);
      for (let i = 0; i < raw.length; ++i) a[i] = raw.charCodeAt(i);
      const dt = new DataTransfer();
      dt.items.add(new File([a], name, {type: 'image/png'}));
      const zone = document.getElementById('drop');
      for (const type of ['dragenter', 'dragover', 'drop'])
        zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
    }, bytes, path.basename(args.drop));
    checkResult('drop:', path.basename(args.drop), await waitForResult(page, path.basename(args.drop)), expected);
    check(!(await page.$eval('#drop', d => d.classList.contains('over'))), 'drop: the drop zone is no longer highlighted');

    // 3. The keyboard: Tab from the top of the page reaches the "choose an image" button, Enter
    // opens the file chooser.
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    const focusOrder = [];
    for (let i = 0; i < 10 && focusOrder[focusOrder.length - 1] !== 'choose'; ++i) {
      await page.keyboard.press('Tab');
      focusOrder.push(await page.evaluate(() => document.activeElement ? document.activeElement.id : ''));
    }
    check(focusOrder[focusOrder.length - 1] === 'choose', `keyboard: Tab reaches the button (${focusOrder})`);
    await page.keyboard.press('Enter');
    await (await firstChooser).accept([args.keyboard]);
    checkResult('keyboard:', path.basename(args.keyboard), await waitForResult(page, path.basename(args.keyboard)), expected);

    // 4. A click on the drop zone (not on its button) opens the file chooser too.
    const [chooser] = await Promise.all([page.waitForFileChooser({timeout: TIMEOUT_MS}), page.click('#drop small')]);
    await chooser.accept([args.click]);
    checkResult('click:', path.basename(args.click), await waitForResult(page, path.basename(args.click)), expected);

    // 5. A file that is no image: an error in the status line, the server's one-line message, and no bars.
    await input.uploadFile(args['not-an-image']);
    const bad = await waitForResult(page, path.basename(args['not-an-image']));
    check(bad.statusIsError, `not an image: the status shows an error ("${bad.status}")`);
    check(bad.rows.length === 0, `not an image: no bars (${bad.rows.length})`);
    check(!/SyntaxError|JSON/.test(bad.status), 'not an image: the message is the server\'s, not a parse error');

    // 6. The screenshot.
    await input.uploadFile(args.shot);
    checkResult('screenshot:', path.basename(args.shot), await waitForResult(page, path.basename(args.shot)), expected);
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    await page.waitForFunction(() => { const p = document.getElementById('preview'); return p.complete && p.naturalWidth > 0; });
    await page.screenshot({path: args.screenshot, type: 'png'});
    check(fs.statSync(args.screenshot).size > 0, `screenshot saved to ${args.screenshot}`);

    // Nothing but this server: every request the page made, and no script errors.
    const foreign = elsewhere(requests, origin);
    console.log(`     requests: ${[...new Set(requests.map(u => u.replace(/^blob:.*/, 'blob:(the preview)')))].join(' ')}`);
    check(requests.length > 0 && foreign.length === 0,
          `all ${requests.length} requests go to ${origin}` + (foreign.length ? ` (not: ${foreign.join(', ')})` : ''));
    check(pageErrors.length === 0, 'no script errors' + (pageErrors.length ? ` (${pageErrors.join('; ')})` : ''));
    // The 400 of the non-image shows in the console as a failed resource load; anything else is unexpected.
    const unexpected = consoleErrors.filter(t => !/status of 400/.test(t));
    check(unexpected.length === 0, 'no console errors' + (unexpected.length ? ` (${unexpected.join('; ')})` : ''));
    // The recorder sees a request to another origin: the same server named "localhost" is one.
    const other = args.url.replace('//127.0.0.1:', '//localhost:') + '/v2/health/live';
    await page.evaluate(u => new Promise(done => { const i = new Image(); i.onload = i.onerror = done; i.src = u; }), other);
    check(elsewhere(requests, origin).includes(other), `the check catches a request to another origin (${other})`);
  } finally {
    await browser.close();
  }
  console.log(`${failures.length ? 'FAILED' : 'passed'}: browser part took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return failures.length ? 1 : 0;
}

// process.exit: a wait still pending after a failure (the file chooser's) must not keep node alive.
main().then(code => process.exit(code),
            e => { console.error('page_test.js: ' + (e && e.stack || e)); process.exit(1); });
