/* The agents console: overview, timeline and agent page, live (SSE) or from a report's embedded board.
 * Everything an agent wrote is untrusted: it only ever reaches the DOM as textContent or attribute values. */
(function () {
  'use strict';

  const SVGNS = 'http://www.w3.org/2000/svg';
  const ROW_H = 20, BAR_H = 12, AXIS_H = 24, LABEL_W = 210;
  const STATES = ['waiting', 'queued', 'starting', 'running', 'completed', 'failed', 'timeout',
    'memory_exceeded', 'killed', 'skipped', 'lost'];
  const STATE_RANK = Object.fromEntries(STATES.map((s, i) => [s, i]));
  const PHASE_KEY = { running: 'run_s', queued: 'queued_s', starting: 'queued_s', waiting: 'waiting_s' };
  const TICK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

  // ---- state ------------------------------------------------------------------------------
  const S = {
    mode: 'live', csrf: '',
    agents: new Map(),         // name -> AGENT, plus _ver (bumped on change) and _base (server time it describes)
    totals: null, totalsBase: 0, unreadable: [], root: '', generated: '',
    boardNow: 0, offset: 0,    // server clock = Date.now()/1000 + offset
    details: null,             // report mode: board.details
    sort: { key: 'name', dir: 1 }, filter: '',
    fit: true, pps: 1, byStart: false,         // timeline scale: pixels per second (when not fit)
    view: null,                // null: overview; otherwise the agent name shown
    detail: null, detailErr: '',
    list: [],                  // agents shown (filtered, sorted), in row order
  };

  // ---- small helpers ------------------------------------------------------------------------
  const $ = (sel) => document.querySelector(sel);
  function h(tag, props, kids) {
    const e = document.createElement(tag);
    for (const k in props || {}) {
      const v = props[k];
      if (v == null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of kids || []) if (c != null) e.append(c);   // strings become text nodes
    return e;
  }
  function sv(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs || {}) if (attrs[k] != null) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function setText(e, text) { if (e.textContent !== text) e.textContent = text; }   // untouched nodes stay clean
  const pad = (n) => String(n).padStart(2, '0');
  function fmtDur(s) {
    if (s == null || !isFinite(s)) return '-';
    s = Math.max(0, s);
    const r = Math.round(s);
    if (r < 60) return s < 10 ? s.toFixed(1) + 's' : r + 's';
    if (r < 3600) return Math.floor(r / 60) + 'm' + pad(r % 60) + 's';
    return Math.floor(r / 3600) + 'h' + pad(Math.floor(r % 3600 / 60)) + 'm';
  }
  const fmtCost = (c) => (c == null ? '-' : '$' + Number(c).toFixed(4));
  function fmtNum(n) {
    if (n == null) return '-';
    if (n < 1000) return String(n);
    if (n < 1e6) return (n / 1e3).toFixed(n < 1e4 ? 1 : 0) + 'k';
    return (n / 1e6).toFixed(n < 1e7 ? 2 : 1) + 'M';
  }
  function fmtClock(t) {
    const d = new Date(t * 1000);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  function fmtDate(t) {
    if (t == null) return '-';
    const d = new Date(t * 1000);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + fmtClock(t);
  }
  function fmtTick(s) {
    const hh = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), sec = Math.round(s % 60);
    if (hh) return hh + 'h' + (m ? pad(m) + 'm' : '');
    if (m) return m + 'm' + (sec ? pad(sec) + 's' : '');
    return sec + 's';
  }
  const agentHref = (name) => '#/agent/' + encodeURIComponent(name);
  const tokTotal = (a) => (a.tokens ? (a.tokens.input || 0) + (a.tokens.output || 0) : null);

  // ---- clock and live figures -----------------------------------------------------------------
  const now = () => (S.mode === 'live' ? Date.now() / 1000 + S.offset : S.boardNow);
  function lastRun(a) { return a.runs && a.runs.length ? a.runs[a.runs.length - 1] : null; }
  function openPhase(a) {                     // the phase the agent is in now, if it is open-ended
    const r = a.active && lastRun(a);
    const seg = r && r.segments && r.segments[r.segments.length - 1];
    return seg && seg.end == null ? seg.phase : null;
  }
  function elapsed(a) {
    const t0 = a.started || a.created;
    return a.active && t0 ? now() - t0 : a.elapsed_s;
  }
  function phaseTime(a, key) {               // run_s / queued_s / waiting_s, moved on while that phase is open
    let v = a[key];
    const p = openPhase(a);
    if (p && PHASE_KEY[p] === key) v = (v || 0) + Math.max(0, now() - (a._base || now()));
    return v;
  }

  // ---- data: board load and event merge -------------------------------------------------------
  // server clock offset: a message is late by its transit, so the largest sample is the best (unless the clock jumped)
  let clockSet = false;
  function syncClock(serverNow) {
    const sample = serverNow - Date.now() / 1000;
    if (!clockSet || sample > S.offset || S.offset - sample > 5) S.offset = sample;
    clockSet = true;
  }
  function put(a, base) {
    const old = S.agents.get(a.name);
    a._base = base;
    a._ver = (old ? old._ver : 0) + 1;
    S.agents.set(a.name, a);
  }
  function loadBoard(b) {
    S.boardNow = b.now;
    syncClock(b.now);
    const seen = new Set();
    for (const a of b.agents || []) { put(a, b.now); seen.add(a.name); }
    for (const name of [...S.agents.keys()]) if (!seen.has(name)) S.agents.delete(name);
    S.totals = b.totals; S.totalsBase = b.now;
    S.unreadable = b.unreadable || [];
    S.root = b.root || ''; S.generated = b.generated_at || '';
    schedule();
    if (S.view) requestDetail();
  }
  function applyEvent(ev) {
    if (ev.now != null && ev.now < S.boardNow) return;      // older than the board we hold
    if (ev.now != null) syncClock(ev.now);
    let touched = false;
    for (const a of ev.agents || []) { put(a, ev.now); touched = touched || a.name === S.view; }
    for (const n of ev.removed || []) { S.agents.delete(n); touched = touched || n === S.view; }
    if (ev.totals) { S.totals = ev.totals; S.totalsBase = ev.now; }
    if (ev.unreadable) S.unreadable = ev.unreadable;
    schedule();
    if (touched) {
      requestDetail();
      // and once more when things settle: the transcript file may be written just after the record changed
      clearTimeout(settleTimer);
      settleTimer = setTimeout(requestDetail, 1500);
    }
  }
  let settleTimer = 0;

  // ---- rendering: at most one per animation frame ---------------------------------------------
  let frame = 0;
  function schedule() { if (!frame) frame = requestAnimationFrame(render); }
  function render() {
    frame = 0;
    $('#root').textContent = S.root;
    if (S.view == null) {
      // read the layout before writing anything, so the browser lays out once per frame
      TL.avail = Math.max(200, $('#tl-scroll').clientWidth - LABEL_W - 12);
      S.list = visibleAgents();
      renderTotals();
      renderUnreadable();
      renderTable();
      renderTimeline();
    } else {
      renderAgent();
    }
  }

  // ---- overview: totals ---------------------------------------------------------------------
  let totalsFor = null, totalsV = {};
  function renderTotals() {
    const box = $('#totals');
    const t = S.totals;
    if (!t) { box.replaceChildren(h('span', { class: 'dim', text: 'no data yet' })); return; }
    if (totalsFor !== t) {                    // new totals: rebuild the bar; the tick only updates its texts
      totalsFor = t; totalsV = {};
      const item = (key, label, cls) => {
        totalsV[key] = h('span', { class: 'tot-v' });
        return h('span', { class: 'tot ' + (cls || '') }, [totalsV[key], h('span', { class: 'tot-l', text: label })]);
      };
      const counts = h('span', { class: 'counts' });
      for (const s of STATES) {
        const n = (t.counts || {})[s];
        if (n) counts.append(h('span', { class: 'pill state-' + s, text: n + ' ' + s.replace('_', ' ') }));
      }
      box.replaceChildren(item('agents', 'agents', 'big'), counts, item('cost', 'cost'), item('tokens', 'tokens in / out'),
        item('run', 'sum of run times'), item('busy', 'wall time running'), item('speed', 'speed-up', 'speed'),
        item('queued', 'queued', 'apart'), item('waiting', 'waiting', 'apart'));
    }
    // move the summed times on by what is open now (the board's values are as of totalsBase)
    const dt = S.mode === 'live' ? Math.max(0, now() - S.totalsBase) : 0;
    const open = { run_s: 0, queued_s: 0, waiting_s: 0 };
    for (const a of S.agents.values()) { const p = openPhase(a); if (p) open[PHASE_KEY[p]]++; }
    const run = (t.run_s || 0) + open.run_s * dt;
    const busy = (t.busy_s || 0) + (open.run_s ? dt : 0);
    const speed = busy > 0 ? run / busy : t.speedup;
    const v = totalsV;
    setText(v.agents, String(t.agents));
    setText(v.cost, fmtCost(t.cost_usd));
    setText(v.tokens, fmtNum(t.tokens_in) + ' / ' + fmtNum(t.tokens_out));
    setText(v.run, fmtDur(run));
    setText(v.busy, fmtDur(busy));
    setText(v.speed, speed == null ? '-' : speed.toFixed(1) + 'x');
    setText(v.queued, fmtDur((t.queued_s || 0) + open.queued_s * dt));
    setText(v.waiting, fmtDur((t.waiting_s || 0) + open.waiting_s * dt));
  }
  function renderUnreadable() {
    const box = $('#unreadable');
    box.hidden = !S.unreadable.length;
    box.replaceChildren(h('strong', { text: S.unreadable.length + ' unreadable record(s): ' }),
      ...S.unreadable.map((u) => h('span', { class: 'mono', text: u.name + ': ' + u.error + '  ' })));
  }

  // ---- overview: filter and sort --------------------------------------------------------------
  const SORTERS = {
    name: (a) => a.name, status: (a) => STATE_RANK[a.status] ?? 99, run_id: (a) => a.run_id || '',
    executor: (a) => (a.executor || '') + ' ' + (a.executor_ref || ''), elapsed: (a) => elapsed(a) ?? -1,
    run_s: (a) => phaseTime(a, 'run_s') ?? -1, queued_s: (a) => phaseTime(a, 'queued_s') ?? -1,
    waiting_s: (a) => phaseTime(a, 'waiting_s') ?? -1, cost: (a) => a.cost_usd ?? -1,
    tokens: (a) => tokTotal(a) ?? -1, turns: (a) => a.turns || 0, task: (a) => (a.question ? '\0' : '') + (a.task || ''),
  };
  const cmp = (x, y) => (x < y ? -1 : x > y ? 1 : 0);   // by code point, as the server sorts names
  function visibleAgents() {
    const words = S.filter.toLowerCase().split(/\s+/).filter(Boolean);
    let list = [...S.agents.values()];
    if (words.length) {
      list = list.filter((a) => {
        const hay = [a.name, a.shown, a.status, a.task, a.run_id, a.executor_ref].join(' ').toLowerCase();
        return words.every((w) => hay.includes(w));
      });
    }
    const key = SORTERS[S.sort.key] || SORTERS.name, dir = S.sort.dir;
    const keyed = list.map((a) => [key(a), a]);
    keyed.sort((x, y) => {
      const c = typeof x[0] === 'number' && typeof y[0] === 'number' ? x[0] - y[0] : cmp(String(x[0]), String(y[0]));
      return c * dir || (x[1].name < y[1].name ? -1 : 1);
    });
    return keyed.map((k) => k[1]);
  }

  // ---- overview: the table, rows reused by name ---------------------------------------------
  const rows = new Map();   // name -> {tr, ver, c: cells}
  const CELLS = ['name', 'status', 'run', 'executor', 'elapsed', 'run-s', 'queued', 'waiting', 'cost', 'tokens', 'turns', 'task'];
  const TIMES = ['elapsed', 'run-s', 'queued', 'waiting'];
  function makeRow(name) {
    const c = {};
    const tr = h('tr', { 'data-agent': name });
    for (const k of CELLS) { c[k] = h('td', { class: k }); tr.append(c[k]); }
    // the times change each second: each in a box of fixed size, so the browser re-lays out only that box
    for (const k of TIMES) { const box = h('span', { class: 'tbox' }); c[k].append(box); c[k] = box; }
    return { tr, c, ver: -1 };
  }
  function fillRow(r, a) {
    const c = r.c;
    r.tr.className = 'state-' + a.status + (a.question ? ' asks' : '') + (a.idle ? ' idle' : '');
    c.name.replaceChildren(h('a', { href: agentHref(a.name), class: 'mono', text: a.name }));
    c.status.replaceChildren(h('span', { class: 'pill state-' + a.status, text: a.shown || a.status }));
    c.run.textContent = a.run_id || '';
    c.run.title = a.run_id || '';
    c.executor.textContent = a.executor === 'slurm' && a.executor_ref ? 'slurm ' + a.executor_ref : (a.executor || '');
    c.cost.textContent = fmtCost(a.cost_usd);
    c.tokens.textContent = a.tokens ? fmtNum(a.tokens.input) + ' / ' + fmtNum(a.tokens.output) : '-';
    c.turns.textContent = a.turns ? String(a.turns) : '-';
    const kids = [];
    if (a.question) {
      kids.push(h('span', { class: 'asks-chip' }, ['asks: ' + (a.question.tool_name || '?') + ' ',
        h('code', { text: a.question.input || '' })]), ' ');
    }
    if (a.error && !a.active) kids.push(h('span', { class: 'err-chip', text: a.error }), ' ');
    kids.push(h('span', { class: 'task-text', text: a.task || '' }));
    c.task.replaceChildren(...kids);
    c.task.title = (a.question ? 'asks: ' + a.question.tool_name + ' ' + a.question.input + '\n\n' : '') +
      (a.task || '') + (a.error ? '\n\nerror: ' + a.error : '');
    fillTimes(r, a);
    r.ver = a._ver;
  }
  function fillTimes(r, a) {
    setText(r.c.elapsed, fmtDur(elapsed(a)));
    setText(r.c['run-s'], fmtDur(phaseTime(a, 'run_s')));
    const q = phaseTime(a, 'queued_s'), w = phaseTime(a, 'waiting_s');
    setText(r.c.queued, q ? fmtDur(q) : '-');
    setText(r.c.waiting, w ? fmtDur(w) : '-');
  }
  // rows on screen: only those get their times moved each second (a row coming into view is brought up to date)
  const onScreen = new Set();
  const rowObserver = 'IntersectionObserver' in window ? new IntersectionObserver((entries) => {
    for (const e of entries) {
      const name = e.target.getAttribute('data-agent');
      if (!e.isIntersecting) { onScreen.delete(name); continue; }
      onScreen.add(name);
      const r = rows.get(name), a = S.agents.get(name);
      if (r && a && a.active) fillTimes(r, a);
    }
  }) : null;
  function renderTable() {
    const tbody = $('#overview tbody');
    for (const [n, r] of rows) {
      if (!S.agents.has(n)) { if (rowObserver) rowObserver.unobserve(r.tr); r.tr.remove(); rows.delete(n); onScreen.delete(n); }
    }
    let i = 0;
    for (const a of S.list) {
      let r = rows.get(a.name);
      if (!r) {
        r = makeRow(a.name); rows.set(a.name, r);
        if (rowObserver) rowObserver.observe(r.tr); else onScreen.add(a.name);
      }
      if (r.ver !== a._ver) fillRow(r, a);
      const at = tbody.children[i];
      if (at !== r.tr) tbody.insertBefore(r.tr, at || null);
      i++;
    }
    while (tbody.children.length > i) tbody.lastElementChild.remove();
    if (!S.list.length) {
      tbody.append(h('tr', { class: 'empty' }, [h('td', { colspan: CELLS.length,
        text: S.agents.size ? 'no agent matches the filter' : 'no agents yet' })]));
    }
    $('#shown-count').textContent = S.list.length === S.agents.size ? S.agents.size + ' agents'
      : S.list.length + ' of ' + S.agents.size + ' agents';
    for (const th of document.querySelectorAll('#overview th[data-sort]')) {
      th.classList.toggle('sorted-asc', th.dataset.sort === S.sort.key && S.sort.dir > 0);
      th.classList.toggle('sorted-desc', th.dataset.sort === S.sort.key && S.sort.dir < 0);
    }
  }

  // ---- overview: the timeline -----------------------------------------------------------------
  const TL = { t0: 0, t1: 1, pps: 1, width: 0, height: 0, key: '', rows: new Map(), built: false, view: { top: 0, height: 0 } };
  const X = (t) => (t - TL.t0) * TL.pps;

  function span() {                          // [first start, last end or now]
    let t0 = Infinity, t1 = -Infinity, active = false;
    for (const a of S.agents.values()) {
      if (a.active) active = true;
      for (const r of a.runs || []) for (const s of r.segments || []) {
        t0 = Math.min(t0, s.start);
        t1 = Math.max(t1, s.end == null ? now() : s.end);
      }
    }
    if (active) t1 = Math.max(t1, now());
    if (!isFinite(t0)) { t0 = now() - 60; t1 = now(); }
    return { t0, t1: Math.max(t1, t0 + 10), active };
  }
  function scaleTimeline(avail) {
    const sp = span();
    let t1 = sp.t1;
    if (sp.active && S.mode === 'live') {
      // leave headroom so the scale need not change every second; keep the old end while now is inside it
      const keep = TL.active && TL.t0 === sp.t0 && TL.keptAvail === avail && sp.t1 <= TL.t1;
      t1 = keep ? TL.t1 : sp.t1 + Math.max(30, (sp.t1 - sp.t0) * 0.06);
    }
    TL.t0 = sp.t0; TL.t1 = t1; TL.active = sp.active; TL.keptAvail = avail;
    TL.fitPps = avail / (TL.t1 - TL.t0);
    TL.pps = S.fit ? TL.fitPps : Math.max(S.pps, TL.fitPps);
    TL.width = Math.max(avail, Math.ceil((TL.t1 - TL.t0) * TL.pps));
  }
  function initTimeline() {
    const svg = $('#timeline');
    const defs = sv('defs');
    const hatch = sv('pattern', { id: 'hatch', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' });
    hatch.append(sv('rect', { width: 6, height: 6, fill: '#e5e7eb' }), sv('line', { x1: 0, y1: 0, x2: 0, y2: 6, stroke: '#9ca3af', 'stroke-width': 2 }));
    const arrow = sv('marker', { id: 'arrow', viewBox: '0 0 8 8', refX: 7, refY: 4, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
    arrow.append(sv('path', { d: 'M0,0 L8,4 L0,8 z', class: 'arrow-head' }));
    defs.append(hatch, arrow);
    TL.grid = sv('g', { class: 'grid' });
    TL.rowsG = sv('g', { class: 'rows' });
    TL.deps = sv('g', { class: 'deps' });
    TL.nowLine = sv('line', { id: 'now-line', class: 'now-line' });
    svg.append(defs, TL.grid, TL.rowsG, TL.deps);
    TL.built = true;
    // legend
    const legend = $('#legend');
    for (const [cls, label] of [['waiting', 'waiting'], ['queued', 'queued'], ['starting', 'starting'], ['running', 'running'],
      ['completed', 'completed'], ['failed', 'failed / lost'], ['timeout', 'timeout / memory'], ['killed', 'killed'], ['skipped', 'skipped']]) {
      legend.append(h('span', { class: 'lg' }, [h('span', { class: 'sw sw-' + cls }), label]));
    }
  }
  function renderTimeline() {
    if (!TL.built) initTimeline();
    const prev = TL.t0 + ':' + TL.t1 + ':' + TL.pps;
    scaleTimeline(TL.avail);
    const key = TL.t0 + ':' + TL.t1 + ':' + TL.pps;
    const rescaled = key !== prev;
    const list = S.byStart ? [...S.list].sort((a, b) => firstStart(a) - firstStart(b) || (a.name < b.name ? -1 : 1)) : S.list;
    TL.height = Math.max(list.length, 1) * ROW_H;
    const svg = $('#timeline');
    svg.setAttribute('width', TL.width);
    svg.setAttribute('height', TL.height);
    if (rescaled) drawAxis();
    // rows, reused by name; rebuilt when the agent or the scale changed
    const labels = $('#tl-labels');
    const seen = new Set();
    list.forEach((a, i) => {
      let r = TL.rows.get(a.name);
      if (!r) {
        r = { g: sv('g', { class: 'tl-row' }), label: h('a', { class: 'tl-label mono', href: agentHref(a.name) }), ver: -1, key: '', y: -1 };
        TL.rows.set(a.name, r);
      }
      if (r.ver !== a._ver || r.key !== key) buildRow(r, a);
      if (r.y !== i) { r.g.setAttribute('transform', 'translate(0,' + i * ROW_H + ')'); r.y = i; }
      if (TL.rowsG.children[i] !== r.g) TL.rowsG.insertBefore(r.g, TL.rowsG.children[i] || null);
      if (labels.children[i] !== r.label) labels.insertBefore(r.label, labels.children[i] || null);
      seen.add(a.name);
    });
    for (const [n, r] of TL.rows) if (!seen.has(n)) { r.g.remove(); r.label.remove(); TL.rows.delete(n); }
    drawDeps(list);
    moveNow();
    $('#zoom-label').textContent = S.fit ? 'whole span ' + fmtDur(TL.t1 - TL.t0)
      : fmtDur(TL.avail / TL.pps) + ' visible';
  }
  function drawAxis() {
    const axis = $('#tl-axis');
    axis.setAttribute('width', TL.width);
    axis.setAttribute('height', AXIS_H);
    let step = TICK_STEPS[TICK_STEPS.length - 1];
    for (const s of TICK_STEPS) if (s * TL.pps >= 80) { step = s; break; }
    const ak = [], gk = [];
    for (let s = 0; s <= TL.t1 - TL.t0; s += step) {
      const x = Math.round(s * TL.pps) + 0.5;
      const tx = sv('text', { x: x + 3, y: 15, class: 'tick' });
      tx.textContent = fmtTick(s);
      const tt = sv('title'); tt.textContent = fmtDate(TL.t0 + s); tx.append(tt);
      ak.push(sv('line', { x1: x, x2: x, y1: AXIS_H - 6, y2: AXIS_H, class: 'tick-mark' }), tx);
      gk.push(sv('line', { x1: x, x2: x, y1: 0, y2: '100%', class: 'grid-line' }));
    }
    axis.replaceChildren(...ak);
    TL.grid.replaceChildren(...gk);
    $('#tl-corner').textContent = 'from ' + fmtDate(TL.t0).slice(5, 16);
  }
  function runTitle(a, run) {
    const lines = [a.name + ' · ' + run.run_id + ' · ' + run.status];
    for (const s of run.segments || []) {
      const end = s.end == null ? now() : s.end;
      lines.push(s.phase + ' ' + fmtDur(end - s.start) + '  (' + fmtClock(s.start) + ' → ' + (s.end == null ? 'now' : fmtClock(s.end)) + ')');
    }
    if (run === lastRun(a) && a.question) lines.push('asks: ' + a.question.tool_name + ' ' + a.question.input);
    return lines.join('\n');
  }
  function buildRow(r, a) {
    const y = (ROW_H - BAR_H) / 2, kids = [];
    r.open = [];
    r.label.textContent = a.name;
    r.label.className = 'tl-label mono state-' + a.status;
    r.label.title = a.shown + ' · ' + (a.task || '');
    for (const run of a.runs || []) {
      const g = sv('g', { class: 'run status-' + run.status + (run === lastRun(a) && a.idle ? ' idle' : '') + (run === lastRun(a) && a.question ? ' asks' : ''),
        'data-agent': a.name, 'data-run': run.run_id });
      const segs = run.segments || [];
      let x0 = Infinity, x1 = -Infinity;
      for (const s of segs) {
        const a0 = X(s.start), a1 = X(s.end == null ? now() : s.end);
        const rect = sv('rect', { class: 'seg ' + s.phase, x: a0.toFixed(1), y, width: Math.max(1.5, a1 - a0).toFixed(1), height: BAR_H });
        g.append(rect);
        if (s.end == null) r.open.push({ rect, start: s.start });
        x0 = Math.min(x0, a0); x1 = Math.max(x1, a0 + Math.max(1.5, a1 - a0));
      }
      if (!segs.length) {       // a run with no timed phase: a small mark where it happened
        const t = a.finished || a.created;
        if (t == null) continue;
        x0 = X(t); x1 = x0 + 3;
        g.append(sv('rect', { class: 'seg none', x: x0.toFixed(1), y, width: 3, height: BAR_H }));
      }
      if (run.status === 'skipped') g.append(sv('rect', { class: 'hatch', x: x0.toFixed(1), y, width: (x1 - x0).toFixed(1), height: BAR_H, fill: 'url(#hatch)' }));
      const title = sv('title'); title.textContent = runTitle(a, run);
      g.append(title);
      kids.push(g);
    }
    r.g.replaceChildren(...kids);
    r.ver = a._ver; r.key = TL.t0 + ':' + TL.t1 + ':' + TL.pps;
  }
  function firstStart(a) {
    const seg = a.runs && a.runs[0] && a.runs[0].segments && a.runs[0].segments[0];
    return seg ? seg.start : (a.created || Infinity);
  }
  function barEnds(a) {         // when the first run started and was released (left waiting); when each run ended
    const runs = (a.runs || []).filter((r) => r.segments && r.segments.length);
    if (!runs.length) return null;
    const first = runs[0].segments, left = first.find((s) => s.phase !== 'waiting');
    const ends = runs.map((r) => { const e = r.segments[r.segments.length - 1].end; return e == null ? now() : e; });
    // still waiting (or skipped): the end of its waiting phase, which is now while it waits
    const released = left ? left.start : (first[first.length - 1].end ?? now());
    return { start: first[0].start, ends, released };
  }
  function drawDeps(list) {
    const index = new Map(list.map((a, i) => [a.name, i]));
    const paths = [];
    for (const a of list) {
      const to = barEnds(a);
      if (!to || !a.after) continue;
      for (const d of a.after) {
        const dep = S.agents.get(d), from = dep && index.has(d) && barEnds(dep);
        if (!from) continue;
        // from the end of the dependency's run that ended before the dependent left waiting (resumes come later)
        const before = from.ends.filter((e) => e <= to.released + 1);
        const x1 = X(before.length ? Math.max(...before) : from.ends[0]), y1 = index.get(d) * ROW_H + ROW_H / 2;
        const x2 = X(to.released), y2 = index.get(a.name) * ROW_H + ROW_H / 2;
        const dx = Math.max(12, (x2 - x1) / 2);
        const d2 = x2 >= x1 - 1   // forward: an S-curve; backward (data out of order): a straight line
          ? 'M' + x1.toFixed(1) + ',' + y1 + ' C' + (x1 + dx).toFixed(1) + ',' + y1 + ' ' + (x2 - dx).toFixed(1) + ',' + y2 + ' ' + x2.toFixed(1) + ',' + y2
          : 'M' + x1.toFixed(1) + ',' + y1 + ' L' + x2.toFixed(1) + ',' + y2;
        const p = sv('path', { class: 'dep', 'data-from': d, 'data-to': a.name, 'marker-end': 'url(#arrow)', d: d2 });
        const t = sv('title'); t.textContent = a.name + ' ran after ' + d;
        p.append(t);
        paths.push(p);
      }
    }
    TL.deps.replaceChildren(...paths);
  }
  function moveNow() {
    const svg = $('#timeline');
    if (!TL.active) { TL.nowLine.remove(); return; }
    const x = X(now()).toFixed(1);
    for (const [k, v] of [['x1', x], ['x2', x], ['y1', 0], ['y2', TL.height]]) TL.nowLine.setAttribute(k, v);
    if (TL.nowLine.parentNode !== svg) svg.append(TL.nowLine);
  }
  function readView() {        // read before any write, so reading does not force a layout
    const scroll = $('#tl-scroll');
    TL.view = { top: scroll.scrollTop, height: scroll.clientHeight };
  }
  function tickTimeline() {
    if (now() > TL.t1) { schedule(); return; }       // ran past the drawn span: rescale
    const top = TL.view.top / ROW_H - 2, bottom = (TL.view.top + TL.view.height) / ROW_H + 2;   // rows on screen only
    for (const r of TL.rows.values()) {
      if (!r.open || !r.open.length || r.y < top || r.y > bottom) continue;
      for (const o of r.open) o.rect.setAttribute('width', Math.max(1.5, X(now()) - X(o.start)).toFixed(1));
    }
    moveNow();
  }
  function zoomAt(factor, ax) {                 // ax: x in the scroll box where the time stays put
    const scroll = $('#tl-scroll');
    const t = TL.t0 + (scroll.scrollLeft + ax - LABEL_W) / TL.pps;
    const pps = Math.min(50, TL.pps * factor);
    if (pps <= TL.fitPps * 1.001) { zoomFit(); return; }
    S.fit = false; S.pps = pps;
    render();                                   // synchronously, so the scroll lands on the new width
    scroll.scrollLeft = (t - TL.t0) * TL.pps - (ax - LABEL_W);
  }
  function zoomFit() { S.fit = true; render(); $('#tl-scroll').scrollLeft = 0; }

  // ---- agent page ---------------------------------------------------------------------------
  let trState = { name: null, count: 0, last: null };
  let questionId = null, countdown = null, lastRecord = '';
  function openAgent(name) {
    if (S.view !== name) {
      S.view = name; S.detailErr = '';
      forgetDetail();
      $('#action-status').textContent = '';
      $('#message-text').value = ''; $('#resume-text').value = '';
      figVer = null;
    }
    $('#overview-page').hidden = true;
    $('#agent').hidden = false;
    window.scrollTo(0, 0);
    if (S.mode === 'report') {
      const a = S.agents.get(name), d = (S.details || {})[name] || {};
      S.detail = { agent: a, record: d.record || a, transcript: d.transcript || [], transcript_truncated: !!d.transcript_truncated,
        result: d.result ?? null, diffstat: d.diffstat ?? null };
      renderDetail();
    } else requestDetail();
    schedule();
  }
  function renderAgent() {
    const name = S.view;
    const a = S.agents.get(name) || (S.detail && S.detail.agent);
    document.title = name + ' · agents';
    $('#agent-name').textContent = name;
    const st = $('#agent-status');
    $('#actions').hidden = S.mode !== 'live' || !a;   // nothing to act on for an agent that is not there
    if (!a) {
      st.textContent = S.detailErr || (S.mode === 'live' && !S.detail ? 'loading' : 'unknown agent');
      st.className = 'pill';
      $('#agent-figures').replaceChildren();
      figVer = null;
      return;
    }
    st.textContent = a.shown || a.status;
    st.className = 'pill state-' + a.status;
    // what the state allows: kill a run, clear or resume an ended one (a message works for both: it resumes an ended one)
    $('#kill').disabled = !a.active;
    $('#clear').disabled = !!a.active;
    $('#resume').disabled = !!a.active;
    renderFigures(a);
    renderQuestion(a);
    $('#agent-loading').textContent = S.detailErr;
  }
  // the figures are rebuilt when the agent changes (so a selection survives the clock); the tick updates the moving ones
  let figVer = null, figLive = [];
  function renderFigures(a) {
    if (figVer === a) { for (const [el, fn] of figLive) setText(el, fn()); return; }
    figVer = a; figLive = [];
    const f = [];
    const add = (k, v, cls) => {
      if (v == null || v === '') return;
      const dd = h('dd', null, [typeof v === 'function' ? v() : v]);
      if (typeof v === 'function') figLive.push([dd, v]);
      f.push(h('div', { class: 'fig ' + (cls || '') }, [h('dt', { text: k }), dd]));
    };
    add('run id', a.run_id, 'mono');
    add('executor', a.executor + (a.executor_ref ? ' (job ' + a.executor_ref + ')' : ''));
    add('model', a.model, 'mono');
    add('created', a.created && fmtDate(a.created));
    add('started', a.started && fmtDate(a.started));
    add('finished', a.finished && fmtDate(a.finished));
    add('elapsed', () => fmtDur(elapsed(a)));
    add('run time', () => fmtDur(phaseTime(a, 'run_s')));
    add('queued', () => fmtDur(phaseTime(a, 'queued_s')));
    add('waiting', () => fmtDur(phaseTime(a, 'waiting_s')));
    add('cost', fmtCost(a.cost_usd));
    add('tokens in / out', a.tokens ? fmtNum(a.tokens.input) + ' / ' + fmtNum(a.tokens.output) : null);
    add('turns', String(a.turns || 0));
    add('peak RSS', a.peak_rss_mb != null ? a.peak_rss_mb.toFixed(0) + ' MiB' : null);
    add('exit code', a.exit_code != null ? String(a.exit_code) : null);
    if (a.messages) add('messages', a.messages.delivered + ' of ' + a.messages.received + ' delivered');
    if (a.idle && a.keep_open_until) add('kept open until', fmtClock(a.keep_open_until));
    add('session', a.session_id, 'mono');
    add('cwd', a.cwd, 'mono wide');
    if (a.after && a.after.length) {
      const span = h('span');
      a.after.forEach((d, i) => { if (i) span.append(', '); span.append(h('a', { href: agentHref(d), class: 'mono', text: d })); });
      add('after', span, 'wide');
    }
    if (a.runs && a.runs.length) {       // each run: its status and phases, oldest first
      const list = h('div', { class: 'runs' });
      for (const run of a.runs) {
        const segs = run.segments || [];
        const phases = () => segs.map((x) => x.phase + ' ' + fmtDur((x.end == null ? now() : x.end) - x.start)).join(' · ');
        const last = segs[segs.length - 1];
        const when = segs.length ? '  (' + fmtDate(segs[0].start) + (last.end ? ' → ' + fmtClock(last.end) : '') + ')' : '';
        const text = h('span', { text: phases() });
        if (last && last.end == null) figLive.push([text, phases]);
        list.append(h('div', null, [h('span', { class: 'pill state-' + run.status, text: run.status }), ' ',
          h('span', { class: 'mono', text: run.run_id }), '  ', text, when]));
      }
      add(a.runs.length === 1 ? 'run' : a.runs.length + ' runs', list, 'wide');
    }
    add('task', a.task, 'wide pre');
    if (a.error) add('error', a.error, 'wide pre err');
    $('#agent-figures').replaceChildren(...f);
  }
  function renderQuestion(a) {
    const slot = $('#question-slot'), q = a.question;
    if (!q) { if (questionId) { slot.replaceChildren(); questionId = null; countdown = null; } return; }
    if (q.id !== questionId) {
      questionId = q.id;
      countdown = h('span', { class: 'dim small' });
      const box = h('div', { id: 'question', class: 'question' }, [
        h('div', { class: 'q-head' }, [h('strong', { text: 'asks to use ' + (q.tool_name || '?') }), ' ', countdown]),
        h('pre', { class: 'q-input', text: q.input || '' })]);
      if (S.mode === 'live') {
        const always = h('input', { type: 'checkbox', id: 'always' });
        const msg = h('input', { type: 'text', id: 'deny-message', placeholder: 'why not (sent with deny)' });
        const allow = h('button', { type: 'button', id: 'allow', class: 'ok', text: 'Allow' });
        const deny = h('button', { type: 'button', id: 'deny', class: 'danger', text: 'Deny' });
        allow.addEventListener('click', () => act('answer', { decision: 'allow', message: '', always: always.checked }, allow));
        deny.addEventListener('click', () => act('answer', { decision: 'deny', message: msg.value, always: always.checked }, deny));
        box.append(h('div', { class: 'q-actions' }, [allow, deny, h('label', null, [always, ' always (for this tool)']), msg]));
      }
      slot.replaceChildren(box);
    }
    countdown.textContent = 'asked ' + fmtDur(now() - q.asked_at) + ' ago' +
      (q.timeout_at ? ' · times out in ' + fmtDur(Math.max(0, q.timeout_at - now())) : '');
  }
  function renderDetail() {
    const d = S.detail;
    if (!d) return;
    // transcript: append what is new when the old entries are a prefix, else rebuild
    const box = $('#transcript'), list = d.transcript || [];
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 30;
    let from = 0;
    if (trState.name === S.view && trState.count > 0) {
      if (list.length >= trState.count && list[trState.count - 1].text === trState.last) from = trState.count;   // it grew
      else if (d.transcript_truncated) {        // a window over a longer transcript slid on: drop what left it
        let j = list.length - 1;
        while (j >= 0 && list[j].text !== trState.last) j--;
        if (j >= 0 && trState.count >= j + 1) {
          for (let k = trState.count - (j + 1); k > 0; k--) box.firstElementChild.remove();
          from = j + 1;
        }
      }
    }
    if (!from) box.replaceChildren();
    const frag = document.createDocumentFragment();
    for (let i = from; i < list.length; i++) {
      const ev = list[i];
      const kind = /^[a-z_]+$/.test(ev.kind || '') ? ev.kind : 'other';
      frag.append(h('div', { class: 'ev ' + kind, text: ev.text }));
    }
    box.append(frag);
    if (!list.length) box.replaceChildren(h('div', { class: 'dim', text: 'no transcript yet' }));
    const first = trState.name !== S.view;
    trState = { name: S.view, count: list.length, last: list.length ? list[list.length - 1].text : null };
    if (atBottom || (first && d.agent && d.agent.active)) box.scrollTop = box.scrollHeight;
    $('#transcript-note').textContent = list.length + ' events' + (d.transcript_truncated ? ' (the latest only; the transcript is longer)' : '');
    const a = S.agents.get(S.view) || d.agent || {};
    const res = d.result ?? a.result_preview;
    $('#result').textContent = res == null ? (a.active ? '(no result yet)' : '(no result)') : res;
    $('#result').classList.toggle('empty', res == null);
    $('#worktree-panel').hidden = !a.worktree;
    if (a.worktree) {
      $('#worktree-branch').textContent = a.worktree.branch + '  ' + a.worktree.path;
      $('#diffstat').textContent = d.diffstat || '(no changes)';
    }
    const rec = JSON.stringify(d.record ?? null, (k, v) => (k === '_ver' || k === '_base' ? undefined : v), 2);
    if (rec !== lastRecord) { $('#record').textContent = rec; lastRecord = rec; }
    schedule();
  }

  // ---- live: detail fetches (at most 2 a second) and actions ------------------------------------
  let detailTimer = 0, detailLast = 0, detailBusy = false, detailAgain = false;
  // why a request failed, in words a person can act on
  function failure(status) {
    if (status === 404) return 'no such agent (cleared?)';
    if (status === 401 || status === 403) return 'the console no longer knows this page (restarted?): open the URL it printed';
    return 'HTTP ' + status;
  }
  function forgetDetail() {
    S.detail = null;
    trState = { name: null, count: 0, last: null };
    questionId = null; lastRecord = '';
    $('#transcript').replaceChildren();
    $('#transcript-note').textContent = '';
    $('#result').textContent = '';
    $('#record').textContent = '';
    $('#question-slot').replaceChildren();
    $('#worktree-panel').hidden = true;
  }
  function requestDetail() {
    if (S.mode !== 'live' || S.view == null) return;
    if (detailBusy) { detailAgain = true; return; }
    const wait = detailLast + 500 - Date.now();
    if (wait > 0) { if (!detailTimer) detailTimer = setTimeout(() => { detailTimer = 0; requestDetail(); }, wait); return; }
    const name = S.view;
    detailBusy = true; detailLast = Date.now();
    if (!S.detail) $('#agent-loading').textContent = 'loading…';
    fetch('/api/agents/' + encodeURIComponent(name), { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then((r) => (r.ok ? r.json() : Promise.reject(Object.assign(new Error(failure(r.status)), { gone: r.status === 404 }))))
      .then((d) => { if (S.view === name) { S.detail = d; S.detailErr = ''; renderDetail(); } })
      .catch((e) => {
        if (S.view !== name) return;
        S.detailErr = String(e.message || e);
        if (e.gone) forgetDetail();   // cleared (or never was): show nothing of what it was
        schedule();
      })
      .finally(() => {
        detailBusy = false;
        if (S.view === name) $('#agent-loading').textContent = S.detailErr;
        if (detailAgain) { detailAgain = false; requestDetail(); }
      });
  }
  async function act(verb, body, button) {
    const name = S.view, status = $('#action-status');
    if (S.mode !== 'live' || name == null) return false;
    status.className = 'action-status busy';
    status.textContent = verb + ' ' + name + '…';
    button.disabled = true;
    let ok = false;
    try {
      const res = await fetch('/api/agents/' + encodeURIComponent(name) + '/' + verb, {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': S.csrf, Accept: 'application/json' },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      let data = null;
      try { data = JSON.parse(text); } catch (e) { /* plain-text error */ }
      ok = res.ok && !!data && data.ok !== false;
      status.textContent = ok ? (data.message || verb + ': done')
        : (data && (data.error || data.message)) || ('HTTP ' + res.status + ': ' + text.slice(0, 300));
    } catch (e) {
      status.textContent = verb + ' failed: ' + (e.message || e);
    }
    status.className = 'action-status ' + (ok ? 'ok' : 'err');
    button.disabled = false;
    detailLast = 0;
    requestDetail();
    return ok;
  }
  function wireActions() {
    const name = () => S.view;
    $('#send-message').addEventListener('click', async (e) => {
      const t = $('#message-text');
      if (!t.value.trim()) { t.focus(); return; }
      if (await act('message', { text: t.value }, e.currentTarget)) t.value = '';
    });
    $('#resume').addEventListener('click', async (e) => {
      const t = $('#resume-text');
      if (!t.value.trim()) { t.focus(); return; }
      if (await act('resume', { text: t.value }, e.currentTarget)) t.value = '';
    });
    $('#kill').addEventListener('click', (e) => {
      if (confirm('Kill agent ' + name() + '?')) act('kill', {}, e.currentTarget);
    });
    $('#clear').addEventListener('click', (e) => {
      if (confirm('Clear agent ' + name() + ' (its record and outputs)?')) act('clear', {}, e.currentTarget);
    });
    $('#message-text').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) $('#send-message').click();
    });
  }

  // ---- live: board and server-sent events ----------------------------------------------------
  function setLive(text, cls) {
    const el = $('#live-status');
    el.textContent = text;
    el.className = 'live-status ' + (cls || '');
  }
  function startLive() {
    // The stream's first event is the whole board ("full": true); the later ones carry what changed.
    // A reconnect gets the whole board again, so nothing that changed while away is missed.
    const connect = () => {
      const es = new EventSource('/api/events');
      es.addEventListener('board', (m) => {
        let ev;
        try { ev = JSON.parse(m.data); } catch (e) { return; }
        if (ev.full) loadBoard(ev); else applyEvent(ev);
      });
      es.onopen = () => setLive('live', 'ok');
      es.onerror = () => {
        setLive('reconnecting', 'warn');
        // EventSource does not say why; a restarted console has a new token, and this page's cookie is refused
        fetch('/api/board', { method: 'HEAD', credentials: 'same-origin' }).then((r) => {
          if (r.status === 401 || r.status === 403) { es.close(); setLive(failure(r.status), 'bad'); }
          else if (es.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
        }, () => { if (es.readyState === EventSource.CLOSED) setTimeout(connect, 3000); });
      };
    };
    setLive('connecting', 'warn');
    connect();
  }


  // ---- routing and controls ------------------------------------------------------------------
  function route() {
    const m = /^#\/agent\/(.+)$/.exec(location.hash);
    if (m) {
      let name;
      try { name = decodeURIComponent(m[1]); } catch (e) { name = m[1]; }
      openAgent(name);
    } else {
      S.view = null;
      document.title = 'Agents · claude orchestrator';
      $('#agent').hidden = true;
      $('#overview-page').hidden = false;
      render();
    }
  }
  function wireOverview() {
    const filter = $('#filter');
    filter.addEventListener('input', () => { S.filter = filter.value; schedule(); });
    $('#overview thead').addEventListener('click', (e) => {
      const th = e.target.closest('th[data-sort]');
      if (!th) return;
      const k = th.dataset.sort;
      if (S.sort.key === k) S.sort.dir = -S.sort.dir;
      else S.sort = { key: k, dir: ['name', 'status', 'run_id', 'executor', 'task'].includes(k) ? 1 : -1 };
      schedule();
    });
    const scroll = $('#tl-scroll');
    $('#zoom-in').addEventListener('click', () => zoomAt(2, LABEL_W + (scroll.clientWidth - LABEL_W) / 2));
    $('#zoom-out').addEventListener('click', () => zoomAt(0.5, LABEL_W + (scroll.clientWidth - LABEL_W) / 2));
    $('#zoom-fit').addEventListener('click', zoomFit);
    $('#tl-order').addEventListener('click', (e) => {
      S.byStart = !S.byStart;
      e.currentTarget.textContent = S.byStart ? 'order: start' : 'order: table';
      schedule();
    });
    scroll.addEventListener('wheel', (e) => {
      if (!e.ctrlKey) return;
      e.preventDefault();
      const ax = e.clientX - scroll.getBoundingClientRect().left;
      zoomAt(e.deltaY < 0 ? 1.25 : 0.8, Math.max(LABEL_W, ax));
    }, { passive: false });
    $('#timeline').addEventListener('click', (e) => {
      const g = e.target.closest && e.target.closest('g.run');
      if (g) location.hash = agentHref(g.getAttribute('data-agent'));
    });
    // hovering a bar lights its dependency arrows
    $('#timeline').addEventListener('mouseover', (e) => {
      const g = e.target.closest && e.target.closest('g.run');
      const name = g && g.getAttribute('data-agent');
      for (const p of TL.deps.children) p.classList.toggle('hot', !!name && (p.dataset.from === name || p.dataset.to === name));
    });
    window.addEventListener('resize', () => { if (S.view == null) schedule(); });
    let scrollFrame = 0;   // bars scrolled into view catch up with the clock
    scroll.addEventListener('scroll', () => {
      if (!scrollFrame && S.mode === 'live') scrollFrame = requestAnimationFrame(() => { scrollFrame = 0; readView(); tickTimeline(); });
    }, { passive: true });
  }
  function tick() {                      // once a second: move the times on screen, no requests
    if (S.mode !== 'live') return;
    let active = false;
    for (const a of S.agents.values()) if (a.active) { active = true; break; }
    if (!active) return;
    if (S.view == null) {
      readView();
      for (const n of onScreen) { const a = S.agents.get(n), r = rows.get(n); if (a && r && a.active) fillTimes(r, a); }
      renderTotals();
      tickTimeline();
    } else {
      const a = S.agents.get(S.view);
      if (a && a.active) { renderFigures(a); renderQuestion(a); }
    }
  }

  function main() {
    const meta = (n) => { const m = document.querySelector('meta[name="' + n + '"]'); return m ? m.getAttribute('content') : ''; };
    S.csrf = meta('csrf-token');
    const data = document.getElementById('board-data');
    S.mode = data || meta('orch-mode') === 'report' ? 'report' : 'live';
    document.body.classList.add('mode-' + S.mode);
    wireOverview();
    if (S.mode === 'report') {
      $('#actions').hidden = true;
      let b = null;
      try { b = JSON.parse(data.textContent); } catch (e) { setLive('report: unreadable data', 'bad'); }
      if (b) {
        S.details = b.details || {};
        loadBoard(b);
        setLive('report, generated ' + (b.generated_at || fmtDate(b.now)), 'report');
      }
    } else {
      wireActions();
      startLive();
    }
    window.addEventListener('hashchange', route);
    route();
    setInterval(tick, 1000);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', main);
  else main();
})();
