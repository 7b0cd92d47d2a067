// pgfleet UI: login, fleet overview grouped by namespace (with search), and per-instance pages: a live
// metric chart, top statements, wait events, activity now (latest interval, blocking), settings (current
// values with a filter, change history), and pages for data the agent does not collect yet.
//
// Access: the gateway keeps the session (an HttpOnly cookie the page cannot read); the page asks
// GET /api/session at start and shows the login form when it answers 401 (also when any later call
// does: the session expired). Theme: light or dark, from the toggle (localStorage) or the system.
//
// Design: no framework. One `state` object, plain DOM updates with textContent (never innerHTML with
// data from the API), and one refresh loop (setTimeout chain, so requests never overlap) that reloads
// the instance list, the selected instance's metric list and the chart every REFRESH_MS. Every request
// has a timeout (AbortController). Counters are requested as per-second rates (rate=1), gauges as they
// are. Series of one metric (one per label set) are aligned on the union of their timestamps for uPlot;
// gaps are spanned. The selection lives in the URL hash (#instance=ID&metric=NAME) so a view can be
// linked. The chart container exposes data-points / data-refreshes / data-last-ts for browser tests.
'use strict';

(function () {
  const REFRESH_MS = 5000;
  const WINDOW_SECONDS = 3600;   // the pages' window and the chart's default range
  const RAW_MAX_SECONDS = 3600;  // longer chart ranges use fleet.rollup buckets (GET .../rollup)
  const RANGES = { 900: '15 min', 3600: '1 h', 21600: '6 h', 86400: '24 h', 604800: '7 d', 2592000: '30 d' };
  const FETCH_TIMEOUT_MS = 4500;
  const DEFAULT_METRIC = 'host.cpu.utilization';
  const CHART_HEIGHT = 380;
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
  };
  const VIEWS = ['metrics', 'statements', 'activity', 'now', 'settings', 'tables', 'replication'];

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
    view: 'metrics',    // the instance page shown (VIEWS)
    search: '',         // instance filter text
    session: null,      // {user, role} once logged in
    settings: null,     // fleet.setting rows of the selected instance (null: not loaded)
    settingsFilter: '', // settings filter text
    range: WINDOW_SECONDS, // chart range in seconds (RANGES)
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
    if (state.view !== 'metrics') params.set('view', state.view);
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
      const seen = make('td', 'seen', ago(inst.last_seen));
      seen.title = inst.last_seen || '';
      tr.append(status, seen);
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
    renderInstances();
    renderDetailHeader();
    renderTabs();
    if (state.view === 'metrics') {
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

  // Runs refresh() now and then every REFRESH_MS; errors are shown, the loop keeps going. A call while a
  // refresh is in flight does not start a second one: it makes the running one repeat right away.
  let running = false;
  let again = false;
  async function loop() {
    if (running) { again = true; return; }
    running = true;
    clearTimeout(state.timer);
    try {
      await refresh();
      setStatus(true, 'live · updated ' + new Date().toLocaleTimeString());
    } catch (e) {
      if (e instanceof LoginRequired) {
        running = false;
        showLogin('Your session has ended; please log in again.');
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
    destroyPlot();
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
  }

  // Applies a theme ('light' or 'dark') and remembers it.
  function setTheme(theme, remember) {
    document.documentElement.dataset.theme = theme;
    el.themeToggle.textContent = theme === 'dark' ? 'Light theme' : 'Dark theme';
    if (remember) { try { localStorage.setItem('pgfleet-theme', theme); } catch (e) { /* private mode */ } }
    if (state.plot) { destroyPlot(); el.chart.dataset.points = '0'; loop(); }  // redraw with the theme's colours
  }

  // Shows the login form (optionally with a message) and stops refreshing.
  function showLogin(message) {
    clearTimeout(state.timer);
    state.session = null;
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
