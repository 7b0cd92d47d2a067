// pgfleet UI: fleet overview and a live metric chart for one instance.
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
  const WINDOW_SECONDS = 3600;
  const FETCH_TIMEOUT_MS = 4500;
  const DEFAULT_METRIC = 'host.cpu.utilization';
  const CHART_HEIGHT = 380;
  const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563',
    '#65a30d', '#9333ea'];

  const $ = (id) => document.getElementById(id);
  const el = {
    conn: $('conn'), rows: $('instance-rows'), count: $('instance-count'), instancesEmpty: $('instances-empty'),
    title: $('detail-title'), meta: $('detail-meta'), controls: $('controls'), select: $('metric-select'),
    hint: $('metric-hint'), chart: $('chart'), chartEmpty: $('chart-empty'), foot: $('chart-foot'),
  };

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
  };

  // Fetches a gateway JSON endpoint with a timeout; throws Error("error: detail") on failure.
  async function api(path) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const res = await fetch(path, { signal: ctl.signal, headers: { Accept: 'application/json' } });
      const body = await res.json().catch(() => null);
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
  }

  // Writes the selection into the URL hash without adding history entries.
  function writeHash() {
    const params = new URLSearchParams();
    if (state.selectedId !== null) params.set('instance', String(state.selectedId));
    if (state.metric) params.set('metric', state.metric);
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
    for (const inst of state.instances) {
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
    el.count.textContent = state.instances.length ? String(state.instances.length) : '';
    el.instancesEmpty.hidden = state.instances.length > 0;
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
        { stroke: '#475569', grid: { stroke: '#eef2f7' }, ticks: { stroke: '#e2e8f0' } },
        {
          stroke: '#475569', size: 80, grid: { stroke: '#eef2f7' }, ticks: { stroke: '#e2e8f0' },
          values: (u, splits) => splits.map((v) => formatValue(v, unit)),
        },
      ],
    };
    state.plot = new uPlot(opts, data, el.chart);
    state.plotKey = metric + '|' + series.map((s) => JSON.stringify(s.labels)).join('|');
  }

  // Loads and draws the selected metric over the last WINDOW_SECONDS.
  async function refreshChart(generation) {
    const m = currentMetric();
    if (state.selectedId === null) return showChartMessage('Choose an instance on the left to see its metrics.');
    if (!m) return showChartMessage('No metrics have been recorded for this instance yet.');
    const to = Date.now() / 1000;
    const from = to - WINDOW_SECONDS;
    const params = new URLSearchParams({
      metric: m.metric, from: new Date(from * 1000).toISOString(), to: new Date(to * 1000).toISOString(),
    });
    if (m.kind === 'counter') params.set('rate', '1');
    const body = await api('/api/instances/' + encodeURIComponent(state.selectedId) + '/series?' + params);
    if (generation !== state.generation) return;  // the selection changed meanwhile
    const series = (body.series || []).filter((s) => s.ts.length > 0);
    const points = series.reduce((n, s) => n + s.values.filter((v) => v !== null).length, 0);
    state.refreshes++;
    el.chart.dataset.refreshes = String(state.refreshes);
    if (points === 0) {
      return showChartMessage('No data for ' + m.metric + ' in the last hour yet' +
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
    el.foot.textContent = 'Last hour · ' + points + ' points · newest sample ' +
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
    await refreshMetrics(generation);
    await refreshChart(generation);
    writeHash();
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

  // Entry point.
  function main() {
    if (typeof uPlot === 'undefined') {
      setStatus(false, 'error: uPlot did not load');
      return;
    }
    readHash();
    el.select.addEventListener('change', () => {
      state.metric = el.select.value;
      state.generation++;
      destroyPlot();
      renderMetricSelect();
      loop();
    });
    watchSize();
    loop();
  }

  main();
})();
