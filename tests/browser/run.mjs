#!/usr/bin/env node
// Browser test of the pgfleet UI, driven through playwright-core with Debian's Chromium.
//
//   node tests/browser/run.mjs --url http://127.0.0.1:PORT --out DIR --user U [--hostname H] [--operator O]
//                              [--table NAME]   (passwords in PGFLEET_UI_PASSWORD, PGFLEET_UI_OPERATOR_PASSWORD)
//
// Design: the gateway (and whatever feeds its database) is already running; this script only drives
// the page. It launches /usr/bin/chromium headless with a fresh temporary profile and the flags that keep
// an offline machine quiet, then runs ordered checks; a check whose prerequisite failed is reported as
// "not ok ... not run". Output is one line per check ("ok N - ..." / "not ok N - ...: why") and a final
// "N passed, N failed"; exit code 0 only when every check passed. A global deadline (240 s) bounds the
// run; every wait has its own timeout.
// The Dashboard, Activity now, Settings and Tables checks need real data: the caller (tests/browser/run)
// keeps a lock holder and a waiter running, has created table --table in the monitored database (and
// waited until the agent sent it), and the stack's agent sends metrics, inventory and activity every
// second. The viewer (--user) must not see the operator buttons; the operator (--operator) pings the
// agent and must see its answer. No fixed ports: the URL is given.
import { createRequire } from 'node:module';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(new URL('../../ui/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const DEADLINE_MS = 240000;
// The dashboard's charts: those that must show data on the test stack, and the one that must say
// "not collected" (a primary without standbys).
const DASH_CHARTS = ['cpu', 'memory', 'tps', 'connections', 'cache', 'wal', 'replication', 'waits'];
const DASH_NOT_COLLECTED = ['replication'];
const DEFAULT_METRIC = 'host.cpu.utilization';

// Parses --url, --out and --hostname; exits 2 with usage on misuse.
function parseArgs(argv) {
  const opts = { url: '', out: '', hostname: '', user: '', password: process.env.PGFLEET_UI_PASSWORD || '',
    operator: '', operatorPassword: process.env.PGFLEET_UI_OPERATOR_PASSWORD || '', table: '' };
  for (let i = 0; i < argv.length; i++) {
    const [key, inline] = argv[i].split(/=(.*)/s, 2);
    const value = inline !== undefined ? inline : argv[++i];
    if (value === undefined) usage(`${key} needs a value`);
    if (key === '--url') opts.url = value.replace(/\/+$/, '');
    else if (key === '--out') opts.out = value;
    else if (key === '--hostname') opts.hostname = value;
    else if (key === '--user') opts.user = value;
    else if (key === '--operator') opts.operator = value;
    else if (key === '--table') opts.table = value;
    else usage(`unknown option ${key}`);
  }
  if (!opts.url || !opts.out || !opts.user || !opts.password) {
    usage('--url, --out and --user are required, and the password in $PGFLEET_UI_PASSWORD');
  }
  if (opts.operator && !opts.operatorPassword) usage('--operator needs the password in $PGFLEET_UI_OPERATOR_PASSWORD');
  return opts;
}

// Prints the usage and exits 2.
function usage(msg) {
  console.error(`run.mjs: ${msg}\nusage: PGFLEET_UI_PASSWORD=... [PGFLEET_UI_OPERATOR_PASSWORD=...] node tests/browser/run.mjs ` +
    '--url http://127.0.0.1:PORT --out DIR --user U [--hostname H] [--operator O] [--table NAME]');
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
mkdirSync(opts.out, { recursive: true });

let passed = 0;
let failed = 0;
let n = 0;
let blocked = '';  // set when a prerequisite failed: later checks are not run

// Runs one numbered check; fn returns a detail string (appended to the description) or throws.
async function check(description, fn) {
  n++;
  if (blocked) {
    failed++;
    console.log(`not ok ${n} - ${description}: not run (${blocked})`);
    return false;
  }
  try {
    const detail = await fn();
    passed++;
    console.log(`ok ${n} - ${description}${detail ? ` (${detail})` : ''}`);
    return true;
  } catch (e) {
    failed++;
    console.log(`not ok ${n} - ${description}: ${String(e && e.message ? e.message : e).split('\n')[0]}`);
    return false;
  }
}

// Like check(), but a failure blocks every later check.
async function require_(description, fn) {
  if (!(await check(description, fn)) && !blocked) blocked = `check ${n} failed`;
}

// Throws msg unless cond.
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const profile = mkdtempSync(join(tmpdir(), 'pgfleet-chromium-'));
let context = null;

// Closes the browser and removes the temporary profile (best effort, bounded).
async function cleanup() {
  if (context) {
    const c = context;
    context = null;
    await Promise.race([c.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  }
  rmSync(profile, { recursive: true, force: true });
}

const deadline = setTimeout(async () => {
  console.log(`not ok ${n + 1} - finished within ${DEADLINE_MS / 1000} s: deadline exceeded`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  await cleanup();
  process.exit(1);
}, DEADLINE_MS);

const problems = [];  // console errors, page errors, failed requests, HTTP errors (recorded once logged in)
let loggedIn = false;  // before the login, the 401 of GET /api/session (and its console line) is expected
let page = null;

// Reads the chart container's test attributes.
function chartState() {
  return page.evaluate(() => {
    const c = document.querySelector('[data-testid=chart]');
    return { points: Number(c.dataset.points || 0), refreshes: Number(c.dataset.refreshes || 0),
      lastTs: Number(c.dataset.lastTs || 0) };
  });
}

// Counts the pixels of the canvas inside the element matching selector (default: the metric explorer's
// chart) that are neither transparent nor white.
function inkedPixels(selector = '[data-testid=chart]') {
  return page.evaluate((sel) => {
    const canvas = document.querySelector(`${sel} canvas`);
    if (!canvas || canvas.width === 0 || canvas.height === 0) return 0;
    const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let inked = 0;
    for (let i = 0; i < px.length; i += 4) {
      if (px[i + 3] > 0 && !(px[i] > 245 && px[i + 1] > 245 && px[i + 2] > 245)) inked++;
    }
    return inked;
  }, selector);
}

// The dashboard's state: per chart id its data-points, data-collected, whether a canvas exists, and the
// note shown instead of a chart; plus the grid's data-refreshes / data-last-ts / data-tier.
function dashState() {
  return page.evaluate(() => {
    const grid = document.querySelector('[data-testid=dash-grid]');
    const charts = {};
    for (const card of document.querySelectorAll('[data-testid=dash-card]')) {
      const id = card.dataset.chart;
      const c = card.querySelector('.dash-chart');
      const note = card.querySelector('.dash-note');
      charts[id] = { points: Number(c.dataset.points || 0), collected: c.dataset.collected, canvas: !!c.querySelector('canvas'),
        note: note && !note.hidden ? note.textContent : '' };
    }
    return { charts, order: Array.from(document.querySelectorAll('[data-testid=dash-card]')).map((x) => x.dataset.chart),
      refreshes: Number(grid.dataset.refreshes || 0), lastTs: Number(grid.dataset.lastTs || 0), tier: grid.dataset.tier || '' };
  });
}

try {
  await require_('chromium starts', async () => {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 800 },
      timeout: 20000,
    });
    page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(20000);
    page.on('console', (msg) => {
      if (msg.type() === 'error' && (loggedIn || !msg.text().includes('401'))) problems.push(`console error: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('requestfailed', (req) => {
      // ERR_ABORTED: a fetch cut short by our own page.reload() (the theme check), not a failure.
      if (req.failure() && req.failure().errorText === 'net::ERR_ABORTED') return;
      problems.push(`request failed: ${req.method()} ${req.url()} ${req.failure() ? req.failure().errorText : ''}`);
    });
    page.on('response', (res) => {
      if (res.status() >= 400 && (loggedIn || res.status() !== 401)) problems.push(`HTTP ${res.status()}: ${res.url()}`);
    });
    return context.browser() ? context.browser().version() : 'persistent context';
  });

  await require_('the page loads', async () => {
    const res = await page.goto(`${opts.url}/`, { waitUntil: 'load', timeout: 15000 });
    assert(res && res.ok(), `GET / answered ${res ? res.status() : 'nothing'}`);
    assert((await page.title()) === 'pgfleet', `unexpected title '${await page.title()}'`);
    return res.headers()['content-type'];
  });

  await require_('without a session the login form is shown', async () => {
    await page.waitForSelector('[data-testid=login-form]', { state: 'visible', timeout: 10000 });
    assert(await page.locator('#app-view').isHidden(), 'the application is visible before the login');
    await page.screenshot({ path: join(opts.out, 'ui-login.png') });
    return 'ui-login.png';
  });

  await check('a wrong password is refused with a message', async () => {
    await page.fill('[data-testid=login-user]', opts.user);
    await page.fill('[data-testid=login-password]', 'certainly-not-the-password');
    await page.click('[data-testid=login-submit]');
    await page.waitForSelector('[data-testid=login-error]', { state: 'visible', timeout: 10000 });
    return await page.textContent('[data-testid=login-error]');
  });

  await require_(`logging in as ${opts.user} shows the fleet`, async () => {
    await page.fill('[data-testid=login-user]', opts.user);
    await page.fill('[data-testid=login-password]', opts.password);
    await page.click('[data-testid=login-submit]');
    await page.waitForSelector('#app-view', { state: 'visible', timeout: 10000 });
    loggedIn = true;
    return await page.textContent('[data-testid=user]');
  });

  const rowSelector = opts.hostname
    ? `[data-testid=instance-row][data-hostname="${opts.hostname.replace(/["\\]/g, '\\$&')}"]`
    : '[data-testid=instance-row]';
  await require_(`the instance list shows ${opts.hostname ? `instance ${opts.hostname}` : 'an instance'}`,
    async () => {
      await page.waitForSelector(rowSelector, { timeout: 30000 });
      return `${await page.locator('[data-testid=instance-row]').count()} instance(s) listed`;
    });

  await require_('selecting the instance shows its details', async () => {
    const row = page.locator(rowSelector).first();
    const hostname = await row.getAttribute('data-hostname');
    await row.click();
    await page.waitForFunction((h) => {
      const sel = document.querySelector('[data-testid=instance-row][aria-selected=true]');
      return sel && sel.dataset.hostname === h &&
        document.querySelector('[data-testid=detail-title]').textContent === h;
    }, hostname, { timeout: 10000 });
    return hostname;
  });

  await check('the viewer does not see the operator buttons', async () => {
    assert(await page.locator('[data-testid=operator-actions]').isHidden(), 'the command buttons are visible to a viewer');
    return '';
  });

  await require_('the dashboard is the default page and shows the fixed chart set with real data', async () => {
    await page.waitForSelector('[data-testid=view-dashboard]', { state: 'visible', timeout: 10000 });
    const want = DASH_CHARTS.filter((c) => !DASH_NOT_COLLECTED.includes(c));
    await page.waitForFunction((w) => {
      const cards = Array.from(document.querySelectorAll('[data-testid=dash-card]'));
      return cards.length === 8 && w.every((id) => {
        const c = document.querySelector(`[data-testid=dash-chart-${id}]`);
        return c && Number(c.dataset.points || 0) >= 2 && c.querySelector('canvas');
      });
    }, want, { timeout: 45000, polling: 500 });
    const st = await dashState();
    assert(JSON.stringify(st.order) === JSON.stringify(DASH_CHARTS), `charts in order ${st.order.join(',')}`);
    const inked = {};
    for (const id of want) {
      inked[id] = await inkedPixels(`[data-testid=dash-chart-${id}]`);
      assert(inked[id] > 200, `the ${id} chart is (nearly) blank: ${inked[id]} inked pixels`);
    }
    return want.map((id) => `${id} ${st.charts[id].points} pts`).join(', ');
  });

  await check('charts without data say so plainly: replication lag is "not collected" on a primary', async () => {
    const st = await dashState();
    for (const id of DASH_NOT_COLLECTED) {
      const c = st.charts[id];
      assert(c && c.collected === 'false' && !c.canvas, `${id}: collected=${c && c.collected}, canvas=${c && c.canvas}`);
      assert(/^Not collected: .*standby/.test(c.note), `${id} says '${c.note}'`);
    }
    await page.screenshot({ path: join(opts.out, 'ui-dashboard.png'), fullPage: true });
    return `${st.charts.replication.note.slice(0, 60)}…, ui-dashboard.png`;
  });

  await check('the dashboard refreshes live: newer buckets arrive', async () => {
    const before = await dashState();
    await page.waitForFunction((b) => {
      const g = document.querySelector('[data-testid=dash-grid]');
      return Number(g.dataset.refreshes) > b.refreshes && Number(g.dataset.lastTs) > b.lastTs;
    }, before, { timeout: 30000, polling: 250 });
    const after = await dashState();
    return `newest bucket +${after.lastTs - before.lastTs} s after ${after.refreshes - before.refreshes} refresh(es)`;
  });

  await check('the range picker switches the dashboard to the 1-minute rollups (6 h) and back', async () => {
    const res = page.waitForResponse((r) => r.url().includes('/dashboard?'), { timeout: 10000 });
    await page.selectOption('[data-testid=range-select]', '21600');
    const r = await res;
    assert(r.status() === 200, `the dashboard API answered ${r.status()}`);
    const body = await r.json();
    assert(body.tier === '1m' && body.step === 120, `tier ${body.tier}, step ${body.step}`);
    await page.waitForFunction(() => document.querySelector('[data-testid=dash-grid]').dataset.tier === '1m' &&
      document.querySelectorAll('[data-testid=dash-card]').length === 8, null, { timeout: 10000 });
    const st = await dashState();
    const back = page.waitForResponse((x) => x.url().includes('/dashboard?'), { timeout: 10000 });
    await page.selectOption('[data-testid=range-select]', '3600');
    assert((await back).status() === 200, 'the dashboard API failed after switching back');
    await page.waitForFunction(() => document.querySelector('[data-testid=dash-grid]').dataset.tier === 'raw', null, { timeout: 10000 });
    return `6 h: ${body.step} s buckets (${body.tier}), cpu ${st.charts.cpu.points} points; back to 1 h`;
  });

  await require_(`the metric explorer lists metrics (${DEFAULT_METRIC} by default)`, async () => {
    await page.click('[data-testid=tab-metrics]');
    await page.waitForFunction(() => document.querySelector('[data-testid=metric-select]').options.length > 0,
      null, { timeout: 15000 });
    const { options, value } = await page.evaluate(() => {
      const s = document.querySelector('[data-testid=metric-select]');
      return { options: Array.from(s.options).map((o) => o.value), value: s.value };
    });
    if (options.includes(DEFAULT_METRIC)) assert(value === DEFAULT_METRIC, `selected ${value}`);
    return `${options.length} metrics, selected ${value}`;
  });

  await require_('the chart draws a line with at least 2 points', async () => {
    await page.waitForFunction(() => {
      const c = document.querySelector('[data-testid=chart]');
      return Number(c.dataset.points || 0) >= 2 && c.querySelector('canvas');
    }, null, { timeout: 20000 });
    const inked = await inkedPixels();
    assert(inked > 500, `the canvas is (nearly) blank: ${inked} inked pixels`);
    return `${(await chartState()).points} points, ${inked} inked pixels`;
  });

  await check('the chart moves: a refresh brings newer samples', async () => {
    const before = await chartState();
    await page.waitForFunction((b) => {
      const c = document.querySelector('[data-testid=chart]');
      return Number(c.dataset.refreshes) > b.refreshes && Number(c.dataset.lastTs) > b.lastTs;
    }, before, { timeout: 30000, polling: 250 });
    const after = await chartState();
    return `newest sample +${(after.lastTs - before.lastTs).toFixed(1)} s, ` +
      `${after.refreshes - before.refreshes} refresh(es), ${before.points} -> ${after.points} points`;
  });

  await check('a screenshot is saved', async () => {
    const file = join(opts.out, 'ui-instance.png');
    await page.screenshot({ path: file, fullPage: true });
    return file;
  });

  await check('a counter metric is drawn as a rate', async () => {
    const counter = await page.evaluate(() => {
      const o = Array.from(document.querySelector('[data-testid=metric-select]').options)
        .find((x) => x.textContent.includes('(rate)'));
      return o ? o.value : null;
    });
    if (!counter) return 'no counter metric on this instance: nothing to check';
    const req = page.waitForRequest((r) => r.url().includes('/series?') && r.url().includes('rate=1') &&
      r.url().includes(`metric=${encodeURIComponent(counter)}`), { timeout: 10000 });
    await page.selectOption('[data-testid=metric-select]', counter);
    await req;
    await page.waitForFunction(() => {
      const c = document.querySelector('[data-testid=chart]');
      return (Number(c.dataset.points || 0) >= 1 && c.querySelector('canvas')) ||
        !document.querySelector('[data-testid=chart-empty]').hidden;
    }, null, { timeout: 10000 });
    const st = await chartState();
    return `${counter}: ${st.points} rate points`;
  });

  await check('the range picker switches long ranges to rollup buckets and back', async () => {
    const req = page.waitForResponse((r) => r.url().includes('/rollup?') && r.url().includes('step=72'), { timeout: 10000 });
    await page.selectOption('[data-testid=range-select]', '21600');
    const res = await req;
    assert(res.status() === 200, `the rollup API answered ${res.status()}`);
    const body = await res.json();
    assert(Array.isArray(body.series), 'no series in the rollup answer');
    await page.waitForFunction(() => {
      const c = document.querySelector('[data-testid=chart]');
      return (Number(c.dataset.points || 0) >= 1 && c.querySelector('canvas')) ||
        !document.querySelector('[data-testid=chart-empty]').hidden;
    }, null, { timeout: 10000 });
    const hash = await page.evaluate(() => location.hash);
    assert(hash.includes('range=21600'), `range not in the URL: ${hash}`);
    const st = await chartState();
    const back = page.waitForResponse((r) => r.url().includes('/series?'), { timeout: 10000 });
    await page.selectOption('[data-testid=range-select]', '3600');
    assert((await back).status() === 200, 'the series API failed after switching back');
    return `6 h: ${body.series.length} label set(s), tier ${body.tier}, ${st.points} points; back to 1 h`;
  });

  await check('instances are grouped by namespace and the search filters them', async () => {
    const groups = await page.locator('[data-testid=namespace-group]').count();
    assert(groups >= 1, 'no namespace heading');
    await page.fill('[data-testid=instance-search]', 'no-such-host-xyz');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=instance-row]').length === 0, null, { timeout: 5000 });
    assert(await page.locator('[data-testid=instances-empty]').isVisible(), 'no "no match" message');
    await page.fill('[data-testid=instance-search]', '');
    await page.waitForSelector('[data-testid=instance-row]', { timeout: 5000 });
    return `${groups} namespace group(s)`;
  });

  for (const [view, file] of [['statements', 'ui-statements.png'], ['activity', 'ui-activity.png']]) {
    await check(`the ${view} page loads (table or a plain "no data" line)`, async () => {
      const req = page.waitForResponse((r) => r.url().includes(view === 'statements' ? '/statements?' : '/wait_profile?'),
        { timeout: 10000 });
      await page.click(`[data-testid=tab-${view}]`);
      const res = await req;
      assert(res.status() === 200, `the API answered ${res.status()}`);
      await page.waitForSelector(`[data-testid=view-${view}]`, { state: 'visible', timeout: 5000 });
      await page.waitForTimeout(300);
      const rows = await page.locator(`[data-testid=${view === 'statements' ? 'statement' : 'activity'}-row]`).count();
      await page.screenshot({ path: join(opts.out, file), fullPage: true });
      return `${rows} row(s), ${file}`;
    });
  }

  await check('the activity now page shows the latest interval, its session groups and the blocking tree', async () => {
    const req = page.waitForResponse((r) => r.url().includes('/activity') && !r.url().includes('wait_profile'), { timeout: 10000 });
    await page.click('[data-testid=tab-now]');
    const res = await req;
    assert(res.status() === 200, `the API answered ${res.status()}`);
    const body = await res.json();
    for (const k of ['ts', 'samples_taken', 'longest_transaction_seconds', 'longest_idle_in_transaction_seconds', 'groups', 'blocking']) {
      assert(k in body, `the API answer has no ${k}`);
    }
    await page.waitForSelector('[data-testid=view-now]', { state: 'visible', timeout: 5000 });
    // The caller keeps a lock holder (active, in a transaction) and a waiter (Lock) running.
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=now-row]').length > 0 &&
      document.querySelectorAll('[data-testid=blocking-row]').length > 0 &&
      !document.querySelector('[data-testid=now-stats]').hidden, null, { timeout: 20000, polling: 250 });
    const { rows, edges, xact, lockRow } = await page.evaluate(() => ({
      rows: document.querySelectorAll('[data-testid=now-row]').length,
      edges: document.querySelectorAll('[data-testid=blocking-row]').length,
      xact: document.querySelector('[data-testid=now-xact]').textContent,
      lockRow: Array.from(document.querySelectorAll('[data-testid=now-row]')).some((r) => r.textContent.includes('Lock')),
    }));
    assert(lockRow, 'no session group waiting on a Lock');
    assert(xact !== '–', 'no longest transaction shown');
    await page.screenshot({ path: join(opts.out, 'ui-activity-now.png'), fullPage: true });
    return `${rows} group(s), ${edges} blocking edge(s), longest transaction ${xact}, ui-activity-now.png`;
  });

  await check('the settings page lists current settings, filters them and shows the change history', async () => {
    const req = page.waitForResponse((r) => r.url().includes('/settings'), { timeout: 10000 });
    const reqChanges = page.waitForResponse((r) => r.url().includes('/setting_changes'), { timeout: 10000 });
    await page.click('[data-testid=tab-settings]');
    const [res, resChanges] = await Promise.all([req, reqChanges]);
    assert(res.status() === 200 && resChanges.status() === 200, `the API answered ${res.status()} / ${resChanges.status()}`);
    await page.waitForSelector('[data-testid=view-settings]', { state: 'visible', timeout: 5000 });
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=setting-row]').length > 50, null,
      { timeout: 20000, polling: 250 });
    const total = await page.locator('[data-testid=setting-row]').count();
    await page.fill('[data-testid=settings-search]', 'shared_buffers');
    await page.waitForFunction(() => {
      const rows = Array.from(document.querySelectorAll('[data-testid=setting-row]'));
      return rows.length >= 1 && rows.every((r) => r.textContent.includes('shared_buffers'));
    }, null, { timeout: 5000 });
    const filtered = await page.locator('[data-testid=setting-row]').count();
    const value = await page.locator('[data-testid=setting-row][data-name=shared_buffers] td').nth(1).textContent();
    await page.fill('[data-testid=settings-search]', 'no-such-setting-xyz');
    await page.waitForSelector('[data-testid=settings-empty]', { state: 'visible', timeout: 5000 });
    await page.fill('[data-testid=settings-search]', '');
    await page.waitForFunction((t) => document.querySelectorAll('[data-testid=setting-row]').length === t, total, { timeout: 5000 });
    // The caller changed work_mem and max_wal_senders (pending restart) with ALTER SYSTEM + reload.
    await page.waitForFunction(() => Array.from(document.querySelectorAll('[data-testid=setting-change-row]'))
      .some((r) => r.textContent.includes('work_mem')), null, { timeout: 15000, polling: 250 });
    const changes = await page.locator('[data-testid=setting-change-row]').count();
    const pending = await page.locator('[data-testid=setting-row].pending-restart').count();
    const pendingName = await page.locator('[data-testid=setting-row][data-name=max_wal_senders]').getAttribute('class');
    assert(pendingName && pendingName.includes('pending-restart'), 'max_wal_senders is not highlighted as pending restart');
    await page.screenshot({ path: join(opts.out, 'ui-settings.png'), fullPage: true });
    return `${total} settings, filter shared_buffers -> ${filtered} (${value}), ${pending} pending restart, ${changes} change(s), ui-settings.png`;
  });

  await check('the tables page lists the real tables and indexes, sorts and filters them', async () => {
    const req = page.waitForResponse((r) => r.url().includes('/tables'), { timeout: 10000 });
    await page.click('[data-testid=tab-tables]');
    const res = await req;
    assert(res.status() === 200, `the API answered ${res.status()}`);
    await page.waitForSelector('[data-testid=view-tables]', { state: 'visible', timeout: 5000 });
    const name = opts.table ? `public.${opts.table}` : '';
    if (name) {
      await page.waitForSelector(`[data-testid=table-row][data-name="${name}"]`, { timeout: 20000 });
    } else {
      await page.waitForSelector('[data-testid=table-row]', { timeout: 20000 });
    }
    const tables = await page.locator('[data-testid=table-row]').count();
    const indexes = await page.locator('[data-testid=index-row]').count();
    const names = () => page.$$eval('[data-testid=table-row]', (rows) => rows.map((r) => r.dataset.name));
    await page.click('#tables-table th[data-key=name]');
    const asc = await names();
    assert(JSON.stringify(asc) === JSON.stringify([...asc].sort((a, b) => a.localeCompare(b))), 'not sorted by name');
    assert((await page.getAttribute('#tables-table th[data-key=name]', 'aria-sort')) === 'ascending', 'no ascending mark');
    await page.click('#tables-table th[data-key=name]');
    const desc = await names();
    assert(JSON.stringify(desc) === JSON.stringify([...asc].reverse()), 'a second click does not reverse the order');
    let live = '';
    if (name) {
      const cells = await page.$$eval(`[data-testid=table-row][data-name="${name}"] td`, (tds) => tds.map((t) => t.textContent));
      live = cells[3];
      assert(live === '500', `live rows of ${name}: ${live}`);
      await page.fill('[data-testid=tables-search]', opts.table);
      await page.waitForFunction(() => document.querySelectorAll('[data-testid=table-row]').length === 1, null, { timeout: 5000 });
      const idx = await page.$$eval('[data-testid=index-row]', (rows) => rows.map((r) => r.dataset.name));
      assert(idx.includes(`public.${opts.table}_pkey`), `index rows: ${idx.join(',')}`);
      await page.screenshot({ path: join(opts.out, 'ui-tables.png'), fullPage: true });
      await page.fill('[data-testid=tables-search]', '');
    } else {
      await page.screenshot({ path: join(opts.out, 'ui-tables.png'), fullPage: true });
    }
    return `${tables} tables, ${indexes} indexes${name ? `, ${name} with ${live} live rows` : ''}, ui-tables.png`;
  });

  for (const view of ['replication']) {
    await check(`the ${view} page says plainly what is not built or collected yet`, async () => {
      await page.click(`[data-testid=tab-${view}]`);
      const pane = page.locator(`[data-testid=view-${view}]`);
      await pane.waitFor({ state: 'visible', timeout: 5000 });
      const text = await pane.textContent();
      assert(/not (collected|built) yet/i.test(text), `text: ${text.slice(0, 80)}`);
      await page.screenshot({ path: join(opts.out, `ui-${view}.png`), fullPage: true });
      return `ui-${view}.png`;
    });
  }

  await check('the fleet overview shows CPU and TPS sparklines per instance', async () => {
    const row = page.locator(rowSelector).first();
    await page.waitForFunction((sel) => {
      const r = document.querySelector(sel);
      const cpu = r && r.querySelector('[data-testid=spark-cpu]');
      return cpu && Number(cpu.dataset.points) >= 1 && cpu.querySelector('path').getAttribute('d').length > 0;
    }, rowSelector, { timeout: 75000, polling: 500 });
    const cpu = await row.locator('[data-testid=spark-cpu]').getAttribute('data-points');
    const tps = await row.locator('[data-testid=spark-tps]').getAttribute('data-points');
    assert(tps !== null, 'no TPS sparkline');
    await page.locator('[data-testid=instance-list]').screenshot({ path: join(opts.out, 'ui-overview.png') });
    return `cpu ${cpu} point(s), tps ${tps} point(s) (complete minutes only), ui-overview.png`;
  });

  await check('the dark theme applies and is remembered', async () => {
    await page.click('[data-testid=tab-metrics]');
    const before = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.click('[data-testid=theme-toggle]');
    await page.waitForFunction(() => document.documentElement.dataset.theme === 'dark', null, { timeout: 5000 });
    const after = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=chart]').dataset.points || 0) >= 1 ||
      !document.querySelector('[data-testid=chart-empty]').hidden, null, { timeout: 15000 });
    await page.screenshot({ path: join(opts.out, 'ui-dark.png'), fullPage: true });
    await page.reload({ waitUntil: 'load' });
    await page.waitForSelector('#app-view', { state: 'visible', timeout: 10000 });
    const kept = await page.evaluate(() => document.documentElement.dataset.theme);
    assert(kept === 'dark', `after a reload the theme is ${kept}`);
    await page.click('[data-testid=theme-toggle]');
    return `background ${before} -> ${after}, ui-dark.png`;
  });

  await check('Swagger UI at /api/docs shows the OpenAPI document', async () => {
    await page.goto(`${opts.url}/api/docs`, { waitUntil: 'load', timeout: 15000 });
    await page.waitForFunction(() => {
      const t = document.querySelector('.swagger-ui .info .title');
      return t && t.textContent.includes('pgfleet gateway API') && document.querySelectorAll('.opblock').length > 5;
    }, null, { timeout: 15000 });
    const ops = await page.locator('.opblock').count();
    await page.screenshot({ path: join(opts.out, 'ui-api-docs.png') });
    await page.goto(`${opts.url}/`, { waitUntil: 'load', timeout: 15000 });
    await page.waitForSelector('#app-view', { state: 'visible', timeout: 10000 });
    return `${ops} operations, ui-api-docs.png`;
  });

  await check('logging out shows the login form again', async () => {
    loggedIn = false;  // a refresh racing the logout may see a 401, which is fine
    await page.click('[data-testid=logout]');
    await page.waitForSelector('[data-testid=login-form]', { state: 'visible', timeout: 10000 });
    return '';
  });

  if (opts.operator) {
    await check(`the operator (${opts.operator}) sees the command buttons and Ping agent shows the agent's answer`, async () => {
      await page.fill('[data-testid=login-user]', opts.operator);
      await page.fill('[data-testid=login-password]', opts.operatorPassword);
      await page.click('[data-testid=login-submit]');
      await page.waitForSelector('#app-view', { state: 'visible', timeout: 10000 });
      loggedIn = true;
      await page.locator(rowSelector).first().click();
      await page.waitForSelector('[data-testid=cmd-ping]', { state: 'visible', timeout: 10000 });
      const req = page.waitForResponse((r) => r.url().includes('/commands') && r.request().method() === 'POST', { timeout: 10000 });
      await page.click('[data-testid=cmd-ping]');
      const res = await req;
      assert(res.status() === 202, `POST .../commands answered ${res.status()}`);
      await page.waitForFunction(() => {
        const s = document.querySelector('[data-testid=command-status]');
        return ['done', 'failed', 'expired', 'error'].includes(s.dataset.state);
      }, null, { timeout: 45000, polling: 250 });
      const st = await page.getAttribute('[data-testid=command-status]', 'data-state');
      const text = await page.textContent('[data-testid=command-status]');
      assert(st === 'done' && text.includes('pong'), `state ${st}: ${text}`);
      await page.screenshot({ path: join(opts.out, 'ui-operator.png'), fullPage: true });
      loggedIn = false;
      await page.click('[data-testid=logout]');
      await page.waitForSelector('[data-testid=login-form]', { state: 'visible', timeout: 10000 });
      return `${text}, ui-operator.png`;
    });
  }

  await check('no console errors, page errors or failed requests', async () => {
    assert(problems.length === 0, `${problems.length}: ${problems.slice(0, 3).join('; ')}`);
    return '';
  });
} finally {
  if (failed > 0 && page) {
    await page.screenshot({ path: join(opts.out, 'ui-failure.png'), fullPage: true }).catch(() => {});
  }
  clearTimeout(deadline);
  await cleanup();
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
