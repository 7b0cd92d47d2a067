// pgfleet UI: login, fleet overview grouped by namespace (with search and a CPU/TPS sparkline per
// instance), and per-instance pages: a dashboard with a fixed chart set (CPU, memory, transactions,
// connections by state, cache hit ratio, WAL, replication lag, wait events stacked), a metric explorer
// (one chosen metric), top statements, wait events, activity now (latest interval, blocking), settings
// (current values with a filter, change history), tables and indexes (sortable), and a page for data the
// agent does not collect yet. Operators and admins get two buttons that queue a command for the agent
// (ping, collect now) and show its result when it arrives.
//
// Access: the gateway keeps the session (an HttpOnly cookie the page cannot read); the page asks
// GET /api/session at start and shows the login form when it answers 401 (also when any later call
// does: the session expired). Theme: light or dark, from the toggle (localStorage) or the system.
//
// Design: no framework. One `state` object, plain DOM updates with textContent (never innerHTML with
// data from the API), and one refresh loop (setTimeout chain, so requests never overlap) that reloads
// the instance list and the page shown every REFRESH_MS (sparklines every SPARK_REFRESH_MS, tables every
// TABLES_REFRESH_MS, a dashboard over more than an hour every SLOW_REFRESH_MS: rollups change slowly).
// Every request has a timeout (AbortController). The dashboard is one request (GET .../dashboard: every
// chart on one bucket grid, counters already rates); stacked charts are drawn as cumulative sums with
// uPlot bands, the legend showing each series' own value. In the metric explorer counters are requested
// as per-second rates (rate=1), gauges as they are; series of one metric (one per label set) are aligned
// on the union of their timestamps for uPlot, gaps spanned. The selection lives in the URL hash
// (#instance=ID&view=V&metric=NAME&range=S) so a view can be linked. Charts expose data-points /
// data-refreshes / data-last-ts (and dashboard charts data-collected) for browser tests.
'use strict';

(function () {
  const REFRESH_MS = 5000;
  const WINDOW_SECONDS = 3600;   // the pages' window and the chart's default range
  const RAW_MAX_SECONDS = 3600;  // longer chart ranges use fleet.rollup buckets (GET .../rollup)
  const RANGES = { 900: '15 min', 3600: '1 h', 21600: '6 h', 86400: '24 h', 604800: '7 d', 2592000: '30 d' };
  const FETCH_TIMEOUT_MS = 4500;
  const DEFAULT_METRIC = 'host.cpu.utilization';
  const CHART_HEIGHT = 380;
  const DASH_HEIGHT = 190;
  const SPARK_REFRESH_MS = 30000;
  const TABLES_REFRESH_MS = 30000;
  const SLOW_REFRESH_MS = 60000;   // dashboards over more than RAW_MAX_SECONDS (rollups)
  const COMMAND_POLL_MS = 1000;
  const COMMAND_WAIT_MS = 60000;
  const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563',
    '#65a30d', '#9333ea'];

  const $ = (id) => document.getElementById(id);
  const el = {
    conn: $('conn'), rows: $('instance-rows'), count: $('instance-count'), instancesEmpty: $('instances-empty'),
    title: $('detail-title'), meta: $('detail-meta'), controls: $('controls'), select: $('metric-select'),
    hint: $('metric-hint'), range: $('range-select'), chart: $('chart'), chartEmpty: $('chart-empty'), foot: $('chart-foot'),
    loginView: $('login-view'), appView: $('app-view'), loginForm: $('login-form'), loginUser: $('login-user'),
    loginPassword: $('login-password'), loginError: $('login-error'), user: $('user'), logout: $('logout'),
    themeToggle: $('theme-toggle'), apiDocs: $('api-docs'), search: $('instance-search'),
    statementsRows: $('statements-rows'), statementsEmpty: $('statements-empty'),
    activityRows: $('activity-rows'), activityEmpty: $('activity-empty'),
    nowNote: $('now-note'), nowStats: $('now-stats'), nowTs: $('now-ts'), nowSamples: $('now-samples'),
    nowXact: $('now-xact'), nowIdle: $('now-idle'), nowRows: $('now-rows'), nowEmpty: $('now-empty'),
    blockingRows: $('blocking-rows'), blockingEmpty: $('blocking-empty'),
    settingsSearch: $('settings-search'), settingsCount: $('settings-count'), settingsRows: $('settings-rows'),
    settingsEmpty: $('settings-empty'), changesRows: $('setting-changes-rows'), changesEmpty: $('setting-changes-empty'),
    rangeControls: $('range-controls'), rangeHint: $('range-hint'),
    dashGrid: $('dash-grid'), dashEmpty: $('dash-empty'), dashFoot: $('dash-foot'),
    tablesSearch: $('tables-search'), tablesCount: $('tables-count'), tablesRows: $('tables-rows'),
    tablesEmpty: $('tables-empty'), indexesRows: $('indexes-rows'), indexesEmpty: $('indexes-empty'),
    operatorActions: $('operator-actions'), commandStatus: $('command-status'),
  };
  const VIEWS = ['dashboard', 'metrics', 'statements', 'activity', 'now', 'settings', 'tables', 'replication'];
  const DEFAULT_VIEW = 'dashboard';

  const state = {
    instances: [],
    selectedId: null,   // instance_id (number) or null
    metrics: [],        // [{metric, kind, unit, labelSets}]
    metric: null,       // selected metric name
    plot: null,         // uPlot instance
    plotKey: '',        // metric + label sets the current plot was built for
    window: [0, 0],     // [from, to] unix seconds of the last series request
    generation: 0,      // bumped on every selection change; stale responses are dropped
    refreshes: 0,
    timer: null,
    view: DEFAULT_VIEW, // the instance page shown (VIEWS)
    search: '',         // instance filter text
    session: null,      // {user, role} once logged in
    settings: null,     // fleet.setting rows of the selected instance (null: not loaded)
    settingsFilter: '', // settings filter text
    range: WINDOW_SECONDS, // chart range in seconds (RANGES)
    dash: { plots: new Map(), fetched: 0, key: '', refreshes: 0 }, // dashboard charts by id, last fetch
    sparks: null,       // {ts, byId: Map(instance_id -> {cpu, tps})} of GET /api/sparklines
    sparksFetched: 0,
    tables: null,       // {tables, indexes} of GET .../tables for tablesKey
    tablesKey: '',
    tablesFetched: 0,
    tablesFilter: '',
    sort: { tables: { key: 'size_bytes', desc: true }, indexes: { key: 'size_bytes', desc: true } },
    command: null,      // {id, kind, instanceId, since} of the command being watched
  };

  // Raised by api() on 401: the session is missing or expired; the login form is shown.
  class LoginRequired extends Error {}

  // Fetches a gateway JSON endpoint with a timeout; throws Error("error: detail") on failure.
  async function api(path, post) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const init = { signal: ctl.signal, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
      if (post !== undefined) {
        init.method = 'POST';
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(post);
      }
      const res = await fetch(path, init);
      const body = res.status === 204 ? null : await res.json().catch(() => null);
      if (res.status === 401 && path !== '/api/login') throw new LoginRequired('not logged in');
      if (!res.ok) {
        const msg = body && body.error ? body.error + (body.detail ? ': ' + body.detail : '') : 'HTTP ' + res.status;
        throw new Error(msg);
      }
      return body;
    } catch (e) {
      if (e.name === 'AbortError') throw new Error('request timed out: ' + path);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  // Creates an element with optional class and text.
  function make(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // "12 s ago" / "5 min ago" / "3 h ago" / a date, for a timestamp string.
  function ago(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return '–';
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 5) return 'just now';
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return Math.round(s / 3600) + ' h ago';
    return new Date(t).toLocaleDateString();
  }

  // Formats a number compactly (3 significant digits, k/M/G/T suffixes, or binary units for bytes).
  function formatValue(v, unit) {
    if (v === null || v === undefined || !Number.isFinite(v)) return '–';
    const abs = Math.abs(v);
    if (unit === 'bytes' || unit === 'bytes/s') {
      const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
      let x = abs, i = 0;
      while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
      return (v < 0 ? '-' : '') + round3(x) + ' ' + units[i] + (unit === 'bytes/s' ? '/s' : '');
    }
    let text;
    if (abs >= 1e12) text = round3(v / 1e12) + 'T';
    else if (abs >= 1e9) text = round3(v / 1e9) + 'G';
    else if (abs >= 1e6) text = round3(v / 1e6) + 'M';
    else if (abs >= 1e4) text = round3(v / 1e3) + 'k';
    else text = round3(v);
    if (unit === 'percent') return text + ' %';
    return unit ? text + ' ' + unit : text;
  }

  // A number with at most 3 significant digits (and no exponent notation for ordinary values).
  function round3(x) {
    if (x === 0) return '0';
    const abs = Math.abs(x);
    if (abs >= 100) return x.toFixed(0);
    if (abs >= 10) return String(Number(x.toFixed(1)));
    if (abs >= 0.01) return String(Number(x.toFixed(2)));
    return x.toPrecision(2);
  }

  // The display unit of a metric as charted (counters are drawn as per-second rates).
  function chartUnit(m) {
    if (!m) return '';
    if (m.kind === 'counter') return m.unit === 'seconds' ? 's/s' : m.unit ? m.unit + '/s' : '/s';
    return m.unit || '';
  }

  // "mode=user, cpu=0", or the metric name for the empty label set.
  function labelText(labels, metric) {
    const keys = Object.keys(labels || {}).sort();
    return keys.length ? keys.map((k) => k + '=' + labels[k]).join(', ') : metric;
  }

  // Reads #instance=ID&metric=NAME into the state.
  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const id = Number(params.get('instance'));
    if (params.has('instance') && Number.isSafeInteger(id)) state.selectedId = id;
    if (params.get('metric')) state.metric = params.get('metric');
    if (RANGES[params.get('range')]) state.range = Number(params.get('range'));
    if (VIEWS.includes(params.get('view'))) state.view = params.get('view');
  }

  // Writes the selection into the URL hash without adding history entries.
  function writeHash() {
    const params = new URLSearchParams();
    if (state.selectedId !== null) params.set('instance', String(state.selectedId));
    if (state.metric) params.set('metric', state.metric);
    if (state.view !== DEFAULT_VIEW) params.set('view', state.view);
    if (state.range !== WINDOW_SECONDS) params.set('range', String(state.range));
    history.replaceState(null, '', '#' + params.toString());
  }

  // Shows the connection status line (ok or an error message).
  function setStatus(ok, text) {
    el.conn.textContent = text;
    el.conn.classList.toggle('error', !ok);
  }

  // Rebuilds the instance table from state.instances, keeping the selection highlighted.
  function renderInstances() {
    const frag = document.createDocumentFragment();
    const q = state.search.trim().toLowerCase();
    const shown = state.instances.filter((i) => !q ||
      [i.hostname, i.agent_id, i.namespace, i.server_version].some((v) => String(v || '').toLowerCase().includes(q)));
    let group = null;
    for (const inst of shown) {
      if (inst.namespace !== group) {  // the API orders by namespace: one heading row per namespace
        group = inst.namespace;
        const head = make('tr', 'group');
        head.dataset.testid = 'namespace-group';
        const td = make('td', null, 'namespace ' + group + ' · ' + shown.filter((i) => i.namespace === group).length);
        td.colSpan = 4;
        head.append(td);
        frag.append(head);
      }
      const tr = make('tr');
      tr.tabIndex = 0;
      tr.dataset.testid = 'instance-row';
      tr.dataset.instanceId = String(inst.instance_id);
      tr.dataset.hostname = inst.hostname || '';
      tr.setAttribute('aria-selected', String(inst.instance_id === state.selectedId));
      if (inst.instance_id === state.selectedId) tr.classList.add('selected');
      const host = make('td', 'host');
      host.append(make('span', 'hostname', inst.hostname || '(unknown host)'));
      if (inst.in_recovery) host.append(make('span', 'tag', 'replica'));
      host.append(make('div', 'sub', 'PostgreSQL ' + (inst.server_version || '?')));
      const where = make('td', 'where', inst.namespace);
      where.append(make('div', 'sub', inst.agent_id));
      tr.append(host, where);
      const status = make('td');
      status.append(make('span', 'badge ' + (inst.status === 'up' ? 'up' : 'stale'), inst.status));
      const seen = make('div', 'sub seen', ago(inst.last_seen));
      seen.title = 'last seen ' + (inst.last_seen || '');
      status.append(seen);
      tr.append(status, sparkCell(inst.instance_id));
      tr.addEventListener('click', () => selectInstance(inst.instance_id));
      tr.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); selectInstance(inst.instance_id); }
      });
      frag.append(tr);
    }
    el.rows.replaceChildren(frag);
    el.count.textContent = state.instances.length
      ? (shown.length === state.instances.length ? String(shown.length) : shown.length + ' of ' + state.instances.length) : '';
    el.instancesEmpty.textContent = state.instances.length ? 'No instance matches the search.' : 'No instances have reported yet.';
    el.instancesEmpty.hidden = shown.length > 0;
  }

  // Shows the selected instance's name and facts above the chart.
  function renderDetailHeader() {
    const inst = state.instances.find((i) => i.instance_id === state.selectedId);
    if (!inst) {
      el.title.textContent = state.selectedId === null ? 'Select an instance' : 'Instance ' + state.selectedId;
      el.meta.textContent = '';
      return;
    }
    el.title.textContent = inst.hostname || 'Instance ' + inst.instance_id;
    el.meta.textContent = [inst.namespace + '/' + inst.agent_id, 'PostgreSQL ' + inst.server_version,
      inst.in_recovery ? 'replica' : 'primary', 'system id ' + inst.system_identifier].join(' · ');
  }

  // Fills the metric selector from state.metrics, keeping the current choice when it still exists.
  function renderMetricSelect() {
    const names = state.metrics.map((m) => m.metric);
    if (!names.includes(state.metric)) state.metric = names.includes(DEFAULT_METRIC) ? DEFAULT_METRIC : names[0] || null;
    const current = Array.from(el.select.options).map((o) => o.value).join('\n');
    if (current !== names.join('\n')) {
      el.select.replaceChildren(...state.metrics.map((m) => {
        const opt = make('option', null, m.metric + (m.kind === 'counter' ? '  (rate)' : ''));
        opt.value = m.metric;
        return opt;
      }));
    }
    if (state.metric) el.select.value = state.metric;
    el.controls.hidden = state.metrics.length === 0;
    const m = currentMetric();
    el.hint.textContent = m ? [m.kind, chartUnit(m), m.labelSets + ' series']
      .filter(Boolean).join(' · ') : '';
  }

  // The metric descriptor currently selected, or undefined.
  function currentMetric() {
    return state.metrics.find((m) => m.metric === state.metric);
  }

  // Shows a text message instead of the chart (and drops the chart).
  function showChartMessage(text) {
    destroyPlot();
    el.chartEmpty.textContent = text;
    el.chartEmpty.hidden = false;
    el.chart.dataset.points = '0';
    el.foot.textContent = '';
  }

  // Destroys the uPlot instance, if any.
  function destroyPlot() {
    if (state.plot) { state.plot.destroy(); state.plot = null; state.plotKey = ''; }
  }

  // Aligns the API's per-label-set series on the union of their timestamps: [xs, ys1, ys2, ...].
  function alignSeries(series) {
    const xsSet = new Set();
    for (const s of series) for (const t of s.ts) xsSet.add(t);
    const xs = Array.from(xsSet).sort((a, b) => a - b);
    const index = new Map(xs.map((t, i) => [t, i]));
    const ys = series.map((s) => {
      const col = new Array(xs.length).fill(null);
      s.ts.forEach((t, i) => { col[index.get(t)] = s.values[i]; });
      return col;
    });
    return [xs, ...ys];
  }

  // Chart colours of the current theme.
  function axisColor() { return getComputedStyle(document.documentElement).getPropertyValue('--muted').trim() || '#475569'; }
  function gridColor() { return getComputedStyle(document.documentElement).getPropertyValue('--border').trim() || '#eef2f7'; }

  // Creates the uPlot chart for the given series (one line per label set).
  function buildPlot(metric, m, series, data) {
    destroyPlot();
    const unit = chartUnit(m);
    const opts = {
      width: Math.max(300, el.chart.clientWidth),
      height: CHART_HEIGHT,
      scales: { x: { time: true, range: () => state.window } },
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      series: [
        { label: 'time' },
        ...series.map((s, i) => ({
          label: labelText(s.labels, metric),
          stroke: COLORS[i % COLORS.length],
          width: 1.5,
          spanGaps: true,
          points: { show: false },
          value: (u, v) => formatValue(v, unit),
        })),
      ],
      axes: [
        { stroke: axisColor(), grid: { stroke: gridColor() }, ticks: { stroke: gridColor() } },
        {
          stroke: axisColor(), size: 80, grid: { stroke: gridColor() }, ticks: { stroke: gridColor() },
          values: (u, splits) => splits.map((v) => formatValue(v, unit)),
        },
      ],
    };
    state.plot = new uPlot(opts, data, el.chart);
    state.plotKey = metric + '|' + series.map((s) => JSON.stringify(s.labels)).join('|');
  }

  // Loads and draws the selected metric over the last state.range seconds: raw samples (GET .../series)
  // up to RAW_MAX_SECONDS, else fleet.rollup buckets of range/300 (GET .../rollup; rate for counters,
  // average for gauges).
  async function refreshChart(generation) {
    const m = currentMetric();
    if (state.selectedId === null) return showChartMessage('Choose an instance on the left to see its metrics.');
    if (!m) return showChartMessage('No metrics have been recorded for this instance yet.');
    const to = Date.now() / 1000;
    const from = to - state.range;
    const params = new URLSearchParams({
      metric: m.metric, from: new Date(from * 1000).toISOString(), to: new Date(to * 1000).toISOString(),
    });
    const rollup = state.range > RAW_MAX_SECONDS;
    const step = Math.max(10, Math.ceil(state.range / 300));
    if (rollup) params.set('step', String(step));
    else if (m.kind === 'counter') params.set('rate', '1');
    const body = await api('/api/instances/' + encodeURIComponent(state.selectedId) + (rollup ? '/rollup?' : '/series?') + params);
    if (generation !== state.generation) return;  // the selection changed meanwhile
    const raw = rollup ? (body.series || []).map((s) => ({ labels: s.labels, ts: s.ts,
      values: m.kind === 'counter' ? s.rate : s.avg })) : (body.series || []);
    const series = raw.filter((s) => s.ts.length > 0);
    const points = series.reduce((n, s) => n + s.values.filter((v) => v !== null).length, 0);
    state.refreshes++;
    el.chart.dataset.refreshes = String(state.refreshes);
    if (points === 0) {
      return showChartMessage('No data for ' + m.metric + ' in the last ' + RANGES[state.range] + ' yet' +
        (m.kind === 'counter' ? ' (a rate needs two samples).' : '.'));
    }
    state.window = [from, to];
    const data = alignSeries(series);
    const key = m.metric + '|' + series.map((s) => JSON.stringify(s.labels)).join('|');
    el.chartEmpty.hidden = true;
    if (state.plot && state.plotKey === key) state.plot.setData(data);
    else buildPlot(m.metric, m, series, data);
    el.chart.dataset.points = String(points);
    el.chart.dataset.lastTs = String(data[0][data[0].length - 1]);
    el.foot.textContent = 'Last ' + RANGES[state.range] + (rollup ? ' · ' + step + ' s buckets (' + (body.tier || 'rollup') + ')' : '') +
      ' · ' + points + ' points · newest sample ' +
      new Date(data[0][data[0].length - 1] * 1000).toLocaleTimeString() +
      (m.kind === 'counter' ? ' · counter shown as per-second rate' : '');
  }

  // Loads the selected instance's metric catalogue (distinct metric names with their label-set count).
  async function refreshMetrics(generation) {
    if (state.selectedId === null) { state.metrics = []; renderMetricSelect(); return; }
    const rows = await api('/api/instances/' + encodeURIComponent(state.selectedId) + '/metrics');
    if (generation !== state.generation) return;
    const byName = new Map();
    for (const r of rows) {
      const m = byName.get(r.metric) || { metric: r.metric, kind: r.kind, unit: r.unit, labelSets: 0 };
      m.labelSets++;
      byName.set(r.metric, m);
    }
    state.metrics = Array.from(byName.values()).sort((a, b) => a.metric.localeCompare(b.metric));
    renderMetricSelect();
  }

  // One refresh cycle: instances, then (if one is selected) its metrics and the chart.
  async function refresh() {
    state.instances = await api('/api/instances');
    const known = state.instances.some((i) => i.instance_id === state.selectedId);
    if (!known && state.instances.length > 0) {
      state.selectedId = state.instances[0].instance_id;  // nothing (or a vanished instance) was selected
      state.generation++;
    }
    const generation = state.generation;
    try {
      await refreshSparklines();
    } catch (e) {  // the overview works without them; the next refresh tries again
      if (e instanceof LoginRequired) throw e;
      state.sparks = null;
      state.sparksFetched = 0;
    }
    renderInstances();
    renderDetailHeader();
    renderTabs();
    renderOperatorActions();
    if (state.view === 'dashboard') {
      await refreshDashboard(generation);
    } else if (state.view === 'tables') {
      await refreshTables(generation);
    } else if (state.view === 'metrics') {
      await refreshMetrics(generation);
      await refreshChart(generation);
    } else if (state.view === 'statements') {
      await refreshStatements(generation);
    } else if (state.view === 'activity') {
      await refreshActivity(generation);
    } else if (state.view === 'now') {
      await refreshNow(generation);
    } else if (state.view === 'settings') {
      await refreshSettings(generation);
    }
    writeHash();
  }

  // Shows the tab and page of state.view.
  function renderTabs() {
    for (const b of document.querySelectorAll('.tabs button')) {
      b.setAttribute('aria-selected', String(b.dataset.view === state.view));
    }
    for (const v of VIEWS) $('view-' + v).hidden = v !== state.view;
    el.rangeControls.hidden = state.view !== 'dashboard' && state.view !== 'metrics';
    el.rangeHint.textContent = state.range > RAW_MAX_SECONDS ? 'from the rollups (1-minute or 1-hour buckets)'
      : 'from raw samples · live';
  }

  // The last hour as from/to query parameters.
  function lastHour() {
    const to = Date.now();
    return new URLSearchParams({ from: new Date(to - WINDOW_SECONDS * 1000).toISOString(), to: new Date(to).toISOString() });
  }

  // A table cell with text (right-aligned when numeric).
  function cell(text, cls) { return make('td', cls, text); }

  // Top statements of the selected instance (fleet.top_statements through the gateway).
  async function refreshStatements(generation) {
    if (state.selectedId === null) return;
    const rows = await api('/api/instances/' + encodeURIComponent(state.selectedId) + '/statements?' + lastHour());
    if (generation !== state.generation) return;
    el.statementsRows.replaceChildren(...rows.map((r) => {
      const tr = make('tr');
      tr.dataset.testid = 'statement-row';
      const q = cell(r.query || '(query text not collected)', 'query');
      tr.append(q, cell((r.datname || r.dbid) + ' / ' + (r.username || r.userid)), cell(r.calls, 'num'),
        cell(round3(r.total_exec_time_ms || 0), 'num'), cell(round3(r.mean_exec_time_ms || 0), 'num'),
        cell(r.rows, 'num'), cell(r.share_of_total_time === null || r.share_of_total_time === undefined ? '–'
          : round3(100 * r.share_of_total_time) + ' %', 'num'));
      return tr;
    }));
    el.statementsEmpty.textContent = 'No statement statistics in the last hour for this instance.';
    el.statementsEmpty.hidden = rows.length > 0;
  }

  // Wait events of the selected instance, summed over the last hour (fleet.wait_profile).
  async function refreshActivity(generation) {
    if (state.selectedId === null) return;
    const rows = await api('/api/instances/' + encodeURIComponent(state.selectedId) + '/wait_profile?' + lastHour());
    if (generation !== state.generation) return;
    const sums = new Map();
    const buckets = new Set();
    for (const r of rows) {
      const key = (r.wait_event_type || 'CPU') + '\u0000' + (r.wait_event || '');
      sums.set(key, (sums.get(key) || 0) + (r.average_active_sessions || 0));
      buckets.add(r.bucket);
    }
    const n = Math.max(1, buckets.size);
    const list = Array.from(sums.entries()).map(([k, v]) => [k.split('\u0000'), v / n]).sort((a, b) => b[1] - a[1]);
    el.activityRows.replaceChildren(...list.map(([[type, event], aas]) => {
      const tr = make('tr');
      tr.dataset.testid = 'activity-row';
      tr.append(cell(type), cell(event || '–'), cell(round3(aas), 'num'));
      return tr;
    }));
    el.activityEmpty.textContent = 'No activity samples in the last hour for this instance.';
    el.activityEmpty.hidden = list.length > 0;
  }

  // "42 s", "3.5 min", "2.1 h" for a duration in seconds ('–' when unknown).
  function duration(sec) {
    if (sec === null || sec === undefined || !Number.isFinite(sec)) return '–';
    if (sec < 120) return round3(sec) + ' s';
    if (sec < 7200) return round3(sec / 60) + ' min';
    return round3(sec / 3600) + ' h';
  }

  // The latest activity interval of the selected instance: session groups, blocking, longest transactions.
  async function refreshNow(generation) {
    if (state.selectedId === null) return;
    const a = await api('/api/instances/' + encodeURIComponent(state.selectedId) + '/activity');
    if (generation !== state.generation) return;
    const have = a.ts !== null && a.ts !== undefined;
    el.nowStats.hidden = !have;
    el.nowNote.textContent = have
      ? 'The latest activity interval sent by the agent (' + ago(a.ts) + '): average sessions = observations / samples.'
      : 'No activity has arrived from this instance yet: the agent sends it every activity interval.';
    if (have) {
      el.nowTs.textContent = new Date(a.ts).toLocaleTimeString();
      el.nowSamples.textContent = String(a.samples_taken);
      el.nowXact.textContent = duration(a.longest_transaction_seconds);
      el.nowIdle.textContent = duration(a.longest_idle_in_transaction_seconds);
    }
    const groups = a.groups || [];
    el.nowRows.replaceChildren(...groups.map((g) => {
      const tr = make('tr');
      tr.dataset.testid = 'now-row';
      const wait = g.wait_event_type ? g.wait_event_type + (g.wait_event ? ': ' + g.wait_event : '') : 'CPU (not waiting)';
      tr.append(cell(g.state), cell(wait), cell(g.datname || '–'), cell(g.usename || '–'), cell(g.application_name || '–'),
        cell(g.backend_type || '–'), cell(round3(g.average_sessions || 0) + ' (' + g.observations + ')', 'num'));
      return tr;
    }));
    el.nowEmpty.textContent = have ? 'No active sessions in the latest interval.' : 'No activity data yet.';
    el.nowEmpty.hidden = groups.length > 0;
    const edges = a.blocking || [];
    el.blockingRows.replaceChildren(...edges.map((b) => {
      const tr = make('tr');
      tr.dataset.testid = 'blocking-row';
      tr.append(cell(b.blocked_pid, 'num'), cell(b.blocking_pid, 'num'), cell(duration(b.blocked_seconds), 'num'),
        cell(b.blocked_queryid === null ? '–' : b.blocked_queryid), cell(b.blocking_queryid === null ? '–' : b.blocking_queryid));
      return tr;
    }));
    el.blockingEmpty.textContent = 'No session was blocked by another at the latest sample.';
    el.blockingEmpty.hidden = edges.length > 0;
  }

  // Current settings (with the filter) and their change history for the selected instance.
  async function refreshSettings(generation) {
    if (state.selectedId === null) return;
    const base = '/api/instances/' + encodeURIComponent(state.selectedId);
    const [rows, changes] = await Promise.all([api(base + '/settings'), api(base + '/setting_changes')]);
    if (generation !== state.generation) return;
    state.settings = rows;
    renderSettings();
    el.changesRows.replaceChildren(...changes.map((c) => {
      const tr = make('tr');
      tr.dataset.testid = 'setting-change-row';
      tr.append(cell(new Date(c.changed_at).toLocaleString()), cell(c.name), cell(c.old_setting === null ? '–' : c.old_setting),
        cell(c.new_setting === null ? '–' : c.new_setting));
      return tr;
    }));
    el.changesEmpty.textContent = rows.length === 0 ? 'No settings have arrived yet, so there is no history either.'
      : 'No setting changed in the last 31 days.';
    el.changesEmpty.hidden = changes.length > 0;
  }

  // Draws state.settings filtered by state.settingsFilter; pending_restart rows come first, highlighted.
  function renderSettings() {
    const rows = state.settings || [];
    const q = state.settingsFilter.trim().toLowerCase();
    const shown = rows.filter((r) => !q ||
      [r.name, r.setting, r.source].some((v) => String(v === null || v === undefined ? '' : v).toLowerCase().includes(q)));
    shown.sort((a, b) => (b.pending_restart ? 1 : 0) - (a.pending_restart ? 1 : 0));  // stable: then by name
    el.settingsRows.replaceChildren(...shown.map((r) => {
      const tr = make('tr', r.pending_restart ? 'pending-restart' : null);
      tr.dataset.testid = 'setting-row';
      tr.dataset.name = r.name;
      tr.append(cell(r.name), cell(r.setting === null ? '–' : r.setting, 'query'), cell(r.unit || ''), cell(r.source || ''),
        cell(r.pending_restart ? 'yes: restart needed' : '', 'flag'));
      return tr;
    }));
    const pending = rows.filter((r) => r.pending_restart).length;
    el.settingsCount.textContent = rows.length === 0 ? '' : shown.length + ' of ' + rows.length + ' settings' +
      (pending ? ' · ' + pending + ' pending restart' : '');
    el.settingsEmpty.textContent = rows.length === 0
      ? 'No settings have arrived from this instance yet: the agent sends them with its inventory.'
      : 'No setting matches the filter.';
    el.settingsEmpty.hidden = shown.length > 0;
  }


  // --- fleet overview sparklines ----------------------------------------------------------------------

  const SVG_NS = 'http://www.w3.org/2000/svg';
  const SPARK_W = 64;
  const SPARK_H = 18;

  // The last finite value of an array, or null.
  function lastValue(values) {
    for (let i = (values || []).length - 1; i >= 0; i--) if (values[i] !== null && Number.isFinite(values[i])) return values[i];
    return null;
  }

  // A small line chart of values (nulls are gaps) as an inline SVG scaled to [0, max(floor, data)].
  function sparkline(values, floor, kind) {
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('width', String(SPARK_W));
    svg.setAttribute('height', String(SPARK_H));
    svg.setAttribute('viewBox', '0 0 ' + SPARK_W + ' ' + SPARK_H);
    svg.setAttribute('class', 'spark spark-' + kind);
    svg.dataset.testid = 'spark-' + kind;
    const vals = values || [];
    const finite = vals.filter((v) => v !== null && Number.isFinite(v));
    svg.dataset.points = String(finite.length);
    const hi = Math.max(floor, ...finite);
    let d = '';
    let pen = false;
    vals.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) { pen = false; return; }
      const x = vals.length > 1 ? 1 + (i / (vals.length - 1)) * (SPARK_W - 2) : SPARK_W / 2;
      const y = SPARK_H - 1.5 - (Math.max(0, v) / hi) * (SPARK_H - 3);
      // a new stroke starts with a zero-length segment, so an isolated point shows as a dot (round caps)
      d += (pen ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1) + (pen ? '' : 'h0.01');
      pen = true;
    });
    const path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', d);
    svg.append(path);
    return svg;
  }

  // The "last hour" cell of an instance row: CPU and TPS sparklines with their latest values.
  function sparkCell(id) {
    const td = make('td', 'sparks');
    td.dataset.testid = 'sparklines';
    const s = state.sparks && state.sparks.byId.get(id);
    if (!s) { td.append(make('span', 'sub', state.sparks ? 'no data' : '…')); return td; }
    for (const [kind, label, floor, unit] of [['cpu', 'CPU', 10, 'percent'], ['tps', 'TPS', 1, '']]) {
      const row = make('div', 'spark-row');
      const last = lastValue(s[kind]);
      row.title = kind === 'cpu' ? 'CPU busy over the last hour (1-minute averages)'
        : 'Transactions per second (commits + rollbacks) over the last hour (complete minutes)';
      row.append(make('span', 'spark-label', label), sparkline(s[kind], floor, kind),
        make('span', 'spark-value', last === null ? '–' : formatValue(last, unit)));
      td.append(row);
    }
    return td;
  }

  // Loads the sparklines of every visible instance (GET /api/sparklines), at most every SPARK_REFRESH_MS
  // unless the set of instances changed.
  async function refreshSparklines() {
    const ids = state.instances.map((i) => i.instance_id).join(',');
    if (state.sparks && state.sparks.ids === ids && Date.now() - state.sparksFetched < SPARK_REFRESH_MS) return;
    if (!ids) { state.sparks = { ids, ts: [], byId: new Map() }; return; }
    const to = Date.now();
    const body = await api('/api/sparklines?' + new URLSearchParams({
      from: new Date(to - 3600 * 1000).toISOString(), to: new Date(to).toISOString() }));
    state.sparks = { ids, ts: body.ts, byId: new Map((body.instances || []).map((i) => [i.instance_id, i])) };
    state.sparksFetched = Date.now();
  }

  // --- instance dashboard -----------------------------------------------------------------------------

  // Colours of well-known series (states, wait event types, commit/rollback); others cycle COLORS.
  const NAMED_COLORS = {
    active: '#16a34a', 'idle in transaction': '#d97706', 'idle in transaction (aborted)': '#dc2626', idle: '#94a3b8',
    'state not sampled': '#cbd5e1', CPU: '#16a34a', Lock: '#dc2626', LWLock: '#7c3aed', IO: '#2563eb', IPC: '#0891b2',
    Client: '#d97706', Timeout: '#65a30d', BufferPin: '#db2777', Activity: '#4b5563', Extension: '#9333ea',
    commit: '#2563eb', rollback: '#dc2626', used: '#2563eb', available: '#94a3b8',
  };
  function seriesColor(name, i) { return NAMED_COLORS[name] || COLORS[i % COLORS.length]; }

  // Cumulative sums for a stacked chart: [xs, s1, s1+s2, ...]; a bucket where every series is null stays a gap.
  function stackData(raw) {
    const n = raw[0].length;
    const any = new Array(n).fill(false);
    for (let k = 1; k < raw.length; k++) for (let i = 0; i < n; i++) if (raw[k][i] !== null) any[i] = true;
    const acc = new Array(n).fill(0);
    const out = [raw[0]];
    for (let k = 1; k < raw.length; k++) out.push(raw[k].map((v, i) => (any[i] ? (acc[i] += v === null ? 0 : v) : null)));
    return out;
  }

  // The card of one dashboard chart, created on first use (in the order of the answer).
  function dashCard(chart) {
    let card = state.dash.plots.get(chart.id);
    if (card) return card;
    const box = make('section', 'dash-card');
    box.dataset.testid = 'dash-card';
    box.dataset.chart = chart.id;
    const head = make('div', 'dash-head');
    const now = make('span', 'dash-now');
    now.dataset.testid = 'dash-now-' + chart.id;
    head.append(make('h3', null, chart.title), now);
    const chartEl = make('div', 'dash-chart');
    chartEl.dataset.testid = 'dash-chart-' + chart.id;
    chartEl.dataset.points = '0';
    const note = make('p', 'dash-note not-collected');
    note.dataset.testid = 'dash-note-' + chart.id;
    note.hidden = true;
    box.append(head, chartEl, note);
    el.dashGrid.append(box);
    card = { box, now, chartEl, note, plot: null, plotKey: '', raw: null, window: [0, 0] };
    state.dash.plots.set(chart.id, card);
    return card;
  }

  // Removes every dashboard card (another instance, theme or login).
  function clearDashboard(message) {
    for (const card of state.dash.plots.values()) if (card.plot) card.plot.destroy();
    state.dash.plots.clear();
    state.dash.key = '';
    el.dashGrid.replaceChildren();
    el.dashFoot.textContent = '';
    el.dashEmpty.textContent = message || '';
    el.dashEmpty.hidden = !message;
  }

  // Draws (or updates) the uPlot chart of one dashboard card.
  function drawDashChart(card, chart, ts, from, to) {
    const raw = [ts, ...chart.series.map((s) => s.values)];
    const data = chart.stacked ? stackData(raw) : raw;
    card.raw = raw;
    card.window = [from, to];
    const key = chart.series.map((s) => s.name).join('|') + '|' + state.dash.key;
    card.note.hidden = true;
    if (card.plot && card.plotKey === key) { card.plot.setData(data); return; }
    if (card.plot) card.plot.destroy();
    const unit = chart.unit;
    // a hit ratio lives near 100 %: from one point below its minimum up to 100; everything else from 0
    const yRange = chart.id === 'cache' ? (u, min, max) => [Math.max(0, Math.floor(min) - 1), 100]
      : (u, min, max) => [0, max > 0 ? max * 1.1 : 1];
    const opts = {
      width: Math.max(240, card.chartEl.clientWidth),
      height: DASH_HEIGHT,
      scales: {
        x: { time: true, range: () => card.window },
        y: { range: yRange },
      },
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      series: [
        { label: 'time' },
        ...chart.series.map((s, i) => {
          const color = seriesColor(s.name, i);
          return {
            label: s.name, stroke: color, width: 1.5, spanGaps: !chart.stacked, points: { show: false },
            fill: chart.stacked ? color + '66' : undefined,
            value: (u, v, si, idx) => (idx === null || idx === undefined ? '–' : formatValue(card.raw[si][idx], unit)),
          };
        }),
      ],
      bands: chart.stacked ? chart.series.slice(1).map((s, i) => ({ series: [i + 2, i + 1] })) : [],
      axes: [
        { stroke: axisColor(), grid: { stroke: gridColor() }, ticks: { stroke: gridColor() } },
        {
          // as wide as the longest label (about 7 px a character, plus the ticks)
          stroke: axisColor(), grid: { stroke: gridColor() }, ticks: { stroke: gridColor() },
          size: (u, values) => (values && values.length ? Math.max(...values.map((v) => String(v).length)) * 7 + 20 : 50),
          values: (u, splits) => splits.map((v) => formatValue(v, unit === 'sessions' ? '' : unit)),
        },
      ],
    };
    card.plot = new uPlot(opts, data, card.chartEl);
    card.plotKey = key;
  }

  // The headline of a card: the latest total of a stacked chart, else the latest value of each series.
  function dashNow(chart) {
    if (chart.id === 'memory') {
      const [used, avail] = chart.series.map((s) => lastValue(s.values));
      return used === null ? '' : 'used ' + formatValue(used, 'bytes') + (avail === null ? '' : ' of ' + formatValue(used + avail, 'bytes'));
    }
    if (chart.stacked) {
      const n = chart.series.length ? chart.series[0].values.length : 0;
      for (let i = n - 1; i >= 0; i--) {
        const vals = chart.series.map((s) => s.values[i]).filter((v) => v !== null);
        if (vals.length) return 'now ' + formatValue(vals.reduce((a, b) => a + b, 0), chart.unit);
      }
      return '';
    }
    const parts = chart.series.slice(0, 3).map((s) => [s.name, lastValue(s.values)]).filter(([, v]) => v !== null);
    if (parts.length === 1) return 'now ' + formatValue(parts[0][1], chart.unit);
    return parts.map(([name, v]) => name + ' ' + formatValue(v, chart.unit)).join(' · ');
  }

  // Shows a dashboard answer: one card per chart, a chart or a plain sentence saying why there is none.
  function renderDashboard(body, from, to) {
    el.dashEmpty.hidden = true;
    const ts = body.ts || [];
    let lastTs = 0;
    for (const chart of body.charts || []) {
      const card = dashCard(chart);
      const points = chart.series.reduce((n, s) => n + s.values.filter((v) => v !== null).length, 0);
      for (const s of chart.series) s.values.forEach((v, i) => { if (v !== null && ts[i] > lastTs) lastTs = ts[i]; });
      card.chartEl.dataset.points = String(points);
      card.chartEl.dataset.collected = String(chart.collected);
      card.box.classList.toggle('empty', !chart.collected || points === 0);
      if (!chart.collected || points === 0) {
        if (card.plot) { card.plot.destroy(); card.plot = null; card.plotKey = ''; }
        card.note.textContent = !chart.collected ? 'Not collected: ' + chart.note
          : chart.id === 'waits' ? 'No session was active in the samples of the last ' + RANGES[state.range] + '.'
            : 'No data in the last ' + RANGES[state.range] + '.';
        card.note.hidden = false;
        card.now.textContent = '';
        continue;
      }
      drawDashChart(card, chart, ts, from, to);
      card.now.textContent = dashNow(chart);
    }
    el.dashGrid.dataset.refreshes = String(state.dash.refreshes);
    el.dashGrid.dataset.lastTs = String(lastTs);
    el.dashGrid.dataset.tier = body.tier || '';
    el.dashFoot.textContent = 'Last ' + RANGES[state.range] + ' · ' + body.step + ' s buckets from ' +
      (body.tier === 'raw' ? 'raw samples' : (body.tier || '?') + ' rollups') +
      ' · counters as per-second rates · updated ' + new Date().toLocaleTimeString();
  }

  // Loads the selected instance's dashboard (GET .../dashboard) over the chosen range: every refresh up to
  // an hour, every SLOW_REFRESH_MS beyond (rollups).
  async function refreshDashboard(generation) {
    if (state.selectedId === null) { clearDashboard('Choose an instance on the left to see its dashboard.'); return; }
    const key = state.selectedId + '|' + state.range;
    if (key !== state.dash.key) clearDashboard('');
    if (key === state.dash.key && state.range > RAW_MAX_SECONDS && Date.now() - state.dash.fetched < SLOW_REFRESH_MS) return;
    const to = Date.now() / 1000;
    const from = to - state.range;
    const body = await api('/api/instances/' + encodeURIComponent(state.selectedId) + '/dashboard?' +
      new URLSearchParams({ from: new Date(from * 1000).toISOString(), to: new Date(to * 1000).toISOString() }));
    if (generation !== state.generation) return;
    state.dash.key = key;
    state.dash.fetched = Date.now();
    state.dash.refreshes++;
    renderDashboard(body, from, to);
  }

  // --- tables and indexes -----------------------------------------------------------------------------

  // Loads the tables and indexes of the selected instance (GET .../tables, the last 15 minutes), at most
  // every TABLES_REFRESH_MS: objects arrive once a minute.
  async function refreshTables(generation) {
    if (state.selectedId === null) return;
    const key = String(state.selectedId);
    if (key === state.tablesKey && Date.now() - state.tablesFetched < TABLES_REFRESH_MS) return;
    const body = await api('/api/instances/' + encodeURIComponent(state.selectedId) + '/tables');
    if (generation !== state.generation) return;
    state.tables = body;
    state.tablesKey = key;
    state.tablesFetched = Date.now();
    renderTables();
  }

  // Compares two rows by state.sort[which] (numbers numerically, nulls last, text alphabetically).
  function rowOrder(which) {
    const { key, desc } = state.sort[which];
    return (a, b) => {
      const x = a[key], y = b[key];
      if (x === null || x === undefined) return (y === null || y === undefined) ? 0 : 1;
      if (y === null || y === undefined) return -1;
      const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return desc ? -c : c;
    };
  }

  // Marks the sorted column of a table's header (aria-sort).
  function markSort(tableId, which) {
    for (const th of document.querySelectorAll('#' + tableId + ' th')) {
      const on = th.dataset.key === state.sort[which].key;
      if (on) th.setAttribute('aria-sort', state.sort[which].desc ? 'descending' : 'ascending');
      else th.removeAttribute('aria-sort');
    }
  }

  // A percentage cell from a ratio.
  function pct(ratio) { return ratio === null || ratio === undefined ? '–' : round3(100 * ratio) + ' %'; }

  // Draws the tables and indexes of state.tables, filtered and sorted.
  function renderTables() {
    const data = state.tables || { tables: [], indexes: [] };
    const q = state.tablesFilter.trim().toLowerCase();
    const hit = (...vals) => !q || vals.some((v) => String(v || '').toLowerCase().includes(q));
    const tables = data.tables.map((r) => Object.assign({ name: r.schema_name + '.' + r.table_name }, r))
      .filter((r) => hit(r.datname, r.schema_name, r.table_name)).sort(rowOrder('tables'));
    el.tablesRows.replaceChildren(...tables.map((r) => {
      const tr = make('tr', r.dead_ratio > 0.2 ? 'warn' : null);
      tr.dataset.testid = 'table-row';
      tr.dataset.name = r.name;
      tr.title = 'sampled ' + ago(r.sampled_at);
      tr.append(cell(r.name, 'query'), cell(r.datname), cell(formatValue(r.size_bytes, 'bytes'), 'num'),
        cell(formatValue(r.n_live_tup, ''), 'num'), cell(formatValue(r.n_dead_tup, ''), 'num'), cell(pct(r.dead_ratio), 'num'),
        cell(formatValue(r.seq_scan, ''), 'num'), cell(formatValue(r.idx_scan, ''), 'num'), cell(pct(r.idx_scan_share), 'num'),
        cell(r.vacuum_age_seconds === null ? 'never' : duration(r.vacuum_age_seconds) + ' ago', 'num'),
        cell(formatValue(r.relfrozenxid_age, ''), 'num'));
      return tr;
    }));
    const indexes = data.indexes.map((r) => Object.assign({ name: r.schema_name + '.' + r.index_name,
      table: r.schema_name + '.' + r.table_name }, r))
      .filter((r) => hit(r.datname, r.schema_name, r.table_name, r.index_name)).sort(rowOrder('indexes'));
    el.indexesRows.replaceChildren(...indexes.map((r) => {
      const tr = make('tr', r.invalid ? 'warn' : null);
      tr.dataset.testid = 'index-row';
      tr.dataset.name = r.name;
      tr.title = 'sampled ' + ago(r.sampled_at);
      tr.append(cell(r.name, 'query'), cell(r.table), cell(r.datname), cell(formatValue(r.size_bytes, 'bytes'), 'num'),
        cell(formatValue(r.idx_scan, ''), 'num'), cell(r.invalid ? 'INVALID' : 'yes', r.invalid ? 'flag' : null));
      return tr;
    }));
    markSort('tables-table', 'tables');
    markSort('indexes-table', 'indexes');
    const none = state.tables === null ? 'Loading…'
      : 'No table statistics from this instance in the last 15 minutes (the agent\u2019s objects collector sends them once a minute).';
    el.tablesEmpty.textContent = data.tables.length ? 'No table matches the filter.' : none;
    el.tablesEmpty.hidden = tables.length > 0;
    el.indexesEmpty.textContent = data.indexes.length ? 'No index matches the filter.' : 'No index statistics in the last 15 minutes.';
    el.indexesEmpty.hidden = indexes.length > 0;
    el.tablesCount.textContent = state.tables === null ? '' : tables.length + ' of ' + data.tables.length + ' tables · ' +
      indexes.length + ' of ' + data.indexes.length + ' indexes';
  }

  // --- operator actions: commands for the selected instance's agent -----------------------------------

  // Shows the buttons to operators and admins (the gateway and the database refuse viewers anyway).
  function renderOperatorActions() {
    const allowed = !!state.session && (state.session.role === 'operator' || state.session.role === 'admin');
    el.operatorActions.hidden = !allowed || state.selectedId === null;
    for (const b of el.operatorActions.querySelectorAll('button')) b.disabled = !!state.command;
  }

  // Sets the command status line: its text and data-state (pending, done, failed, expired, error).
  function setCommandStatus(st, text) {
    el.commandStatus.textContent = text;
    el.commandStatus.dataset.state = st;
    el.commandStatus.className = 'command-status ' + st;
  }

  // One line for a finished command of fleet.commands.
  function describeCommand(row) {
    const took = row.finished_at ? ' in ' + round3(Math.max(0, (Date.parse(row.finished_at) - Date.parse(row.created_at)) / 1000)) + ' s' : '';
    if (row.state === 'done') {
      const out = row.output && Object.keys(row.output).length ? ' · ' + JSON.stringify(row.output) : '';
      return row.kind + ': done' + took + out;
    }
    if (row.state === 'failed') return row.kind + ': failed' + took + (row.message ? ' · ' + row.message : '');
    return row.kind + ': expired before the agent answered';
  }

  // Queues a command (POST .../commands) and watches for its result.
  async function sendCommand(kind) {
    const id = state.selectedId;
    if (id === null || state.command) return;
    state.command = { id: null, kind, instanceId: id, since: Date.now() };
    renderOperatorActions();
    setCommandStatus('pending', kind + ': sending…');
    try {
      const r = await api('/api/instances/' + encodeURIComponent(id) + '/commands', { kind });
      state.command.id = r.command_id;
      setCommandStatus('pending', kind + ': queued, waiting for the agent…');
      pollCommand(state.command);
    } catch (e) {
      state.command = null;
      renderOperatorActions();
      if (e instanceof LoginRequired) { showLogin('Your session has ended; please log in again.'); return; }
      setCommandStatus('error', kind + ': ' + e.message);
    }
  }

  // Polls GET .../commands every COMMAND_POLL_MS until the command c is done, failed or expired (or
  // COMMAND_WAIT_MS passed), then shows the result.
  let commandTimer = null;
  async function pollCommand(c) {
    clearTimeout(commandTimer);
    if (state.command !== c) return;
    let row = null;
    try {
      const rows = await api('/api/instances/' + encodeURIComponent(c.instanceId) + '/commands?limit=20');
      if (state.command !== c) return;
      row = rows.find((r) => r.command_id === c.id) || null;
    } catch (e) {
      if (state.command !== c) return;
      if (e instanceof LoginRequired) { state.command = null; return; }
      setCommandStatus('pending', c.kind + ': ' + e.message + ' (retrying)');
    }
    const finished = row && ['done', 'failed', 'expired'].includes(row.state);
    if (finished || Date.now() - c.since > COMMAND_WAIT_MS) {
      state.command = null;
      renderOperatorActions();
      if (finished) setCommandStatus(row.state, describeCommand(row));
      else setCommandStatus('error', c.kind + ': no answer from the agent within ' + COMMAND_WAIT_MS / 1000 +
        ' s (state ' + (row ? row.state : 'unknown') + '); it may still arrive (fleet.commands)');
      return;
    }
    if (row) setCommandStatus('pending', c.kind + ': ' + row.state + ', waiting for the agent…');
    commandTimer = setTimeout(() => pollCommand(c), COMMAND_POLL_MS);
  }

  // Runs refresh() now and then every REFRESH_MS; errors are shown, the loop keeps going. A call while a
  // refresh is in flight does not start a second one: it makes the running one repeat right away.
  let running = false;
  let again = false;
  async function loop() {
    if (running) { again = true; return; }
    running = true;
    clearTimeout(state.timer);
    const session = state.session;
    try {
      await refresh();
      setStatus(true, 'live · updated ' + new Date().toLocaleTimeString());
    } catch (e) {
      if (e instanceof LoginRequired) {
        running = false;
        // A refresh started under a session that has ended since (logout, then maybe a new login)
        // says nothing of the current one: only this session's own 401 ends it.
        if (state.session === session) showLogin('Your session has ended; please log in again.');
        else if (again && state.session) { again = false; loop(); }
        return;
      }
      setStatus(false, 'error: ' + e.message);
    } finally {
      running = false;
    }
    if (again) { again = false; loop(); return; }
    state.timer = setTimeout(loop, REFRESH_MS);
  }

  // Selects an instance and reloads immediately.
  function selectInstance(id) {
    if (id === state.selectedId) return;
    state.selectedId = id;
    state.generation++;
    state.metrics = [];
    state.settings = null;
    state.tables = null;
    state.tablesKey = '';
    state.command = null;
    clearTimeout(commandTimer);
    setCommandStatus('', '');
    destroyPlot();
    clearDashboard('');
    renderTables();
    renderInstances();
    renderDetailHeader();
    loop();
  }

  // Resizes the chart with its container.
  function watchSize() {
    const ro = new ResizeObserver(() => {
      if (state.plot) state.plot.setSize({ width: Math.max(300, el.chart.clientWidth), height: CHART_HEIGHT });
    });
    ro.observe(el.chart);
    const dash = new ResizeObserver(() => {
      for (const card of state.dash.plots.values()) {
        if (card.plot) card.plot.setSize({ width: Math.max(240, card.chartEl.clientWidth), height: DASH_HEIGHT });
      }
    });
    dash.observe(el.dashGrid);
  }

  // Applies a theme ('light' or 'dark') and remembers it.
  function setTheme(theme, remember) {
    document.documentElement.dataset.theme = theme;
    el.themeToggle.textContent = theme === 'dark' ? 'Light theme' : 'Dark theme';
    if (remember) { try { localStorage.setItem('pgfleet-theme', theme); } catch (e) { /* private mode */ } }
    if (state.plot || state.dash.plots.size) {  // redraw with the theme's colours
      destroyPlot();
      el.chart.dataset.points = '0';
      clearDashboard('');
      loop();
    }
  }

  // Shows the login form (optionally with a message) and stops refreshing.
  function showLogin(message) {
    clearTimeout(state.timer);
    clearTimeout(commandTimer);
    state.session = null;
    state.command = null;
    state.sparks = null;
    setCommandStatus('', '');
    clearDashboard('');
    el.appView.hidden = true;
    el.loginView.hidden = false;
    el.user.hidden = true;
    el.logout.hidden = true;
    el.apiDocs.hidden = true;
    el.loginError.textContent = message || '';
    el.loginError.hidden = !message;
    setStatus(true, 'not logged in');
    el.loginUser.focus();
  }

  // Shows the application for a session and starts the refresh loop.
  function showApp(session) {
    state.session = session;
    el.loginView.hidden = true;
    el.appView.hidden = false;
    el.user.textContent = session.user + ' (' + session.role + ')';
    el.user.hidden = false;
    el.logout.hidden = false;
    el.apiDocs.hidden = false;
    loop();
  }

  // Entry point.
  async function main() {
    if (typeof uPlot === 'undefined') {
      setStatus(false, 'error: uPlot did not load');
      return;
    }
    let theme = null;
    try { theme = localStorage.getItem('pgfleet-theme'); } catch (e) { /* private mode */ }
    if (theme !== 'light' && theme !== 'dark') {
      theme = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
    }
    setTheme(theme, false);
    el.themeToggle.addEventListener('click', () => {
      setTheme(document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark', true);
    });
    el.loginForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      el.loginError.hidden = true;
      try {
        const session = await api('/api/login', { user: el.loginUser.value.trim(), password: el.loginPassword.value });
        el.loginPassword.value = '';
        showApp(session);
      } catch (e) {
        el.loginError.textContent = e.message === 'invalid user or password' ? 'Wrong user or password.' : e.message;
        el.loginError.hidden = false;
      }
    });
    el.logout.addEventListener('click', async () => {
      try { await api('/api/logout', {}); } catch (e) { /* the session is gone either way */ }
      showLogin('');
    });
    el.search.addEventListener('input', () => { state.search = el.search.value; renderInstances(); });
    el.settingsSearch.addEventListener('input', () => { state.settingsFilter = el.settingsSearch.value; renderSettings(); });
    el.tablesSearch.addEventListener('input', () => { state.tablesFilter = el.tablesSearch.value; renderTables(); });
    for (const [tableId, which] of [['tables-table', 'tables'], ['indexes-table', 'indexes']]) {
      for (const th of document.querySelectorAll('#' + tableId + ' th')) {
        th.tabIndex = 0;
        const sortBy = () => {
          const cur = state.sort[which];
          state.sort[which] = cur.key === th.dataset.key ? { key: cur.key, desc: !cur.desc }
            : { key: th.dataset.key, desc: th.classList.contains('num') };
          renderTables();
        };
        th.addEventListener('click', sortBy);
        th.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); sortBy(); } });
      }
    }
    for (const b of el.operatorActions.querySelectorAll('button')) {
      b.addEventListener('click', () => sendCommand(b.dataset.kind));
    }
    for (const b of document.querySelectorAll('.tabs button')) {
      b.addEventListener('click', () => {
        if (state.view === b.dataset.view) return;
        state.view = b.dataset.view;
        state.generation++;
        destroyPlot();
        renderTabs();
        loop();
      });
    }
    readHash();
    el.range.value = String(state.range);
    el.range.addEventListener('change', () => {
      state.range = Number(el.range.value);
      state.generation++;
      destroyPlot();
      loop();
    });
    el.select.addEventListener('change', () => {
      state.metric = el.select.value;
      state.generation++;
      destroyPlot();
      renderMetricSelect();
      loop();
    });
    watchSize();
    renderTabs();
    try {
      showApp(await api('/api/session'));
    } catch (e) {
      if (e instanceof LoginRequired) showLogin('');
      else setStatus(false, 'error: ' + e.message);
    }
  }

  main();
})();
