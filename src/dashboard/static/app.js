// jetq dashboard: one small ES module, no framework, no build step.
// Every piece of data reaches the page through textContent or attributes set with setAttribute
// (never innerHTML), so a payload, header or error message that contains markup stays text.

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.getAttribute("content") ?? "";
const BASE = meta("jetq-base");
const CSRF = meta("jetq-csrf");
const READ_ONLY = meta("jetq-read-only") === "true";
const app = document.getElementById("app");
const crumbs = document.getElementById("crumbs");
const notice = document.getElementById("notice");
const liveBadge = document.getElementById("live");
const SVG_NS = "http://www.w3.org/2000/svg";

/** Creates an element; strings and numbers among the children become text nodes. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "onclick") el.addEventListener("click", v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`, skipping null/false ones (replaceChildren would print "null"). */
function render(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs ?? {})) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

const url = {
  overview: () => `${BASE}/`,
  queue: (q) => `${BASE}/queues/${encodeURIComponent(q)}`,
  dlq: (q, from) => `${BASE}/queues/${encodeURIComponent(q)}/dead-letters${from ? `?from=${from}` : ""}`,
  entry: (q, seq) => `${BASE}/queues/${encodeURIComponent(q)}/dead-letters/${seq}`,
  job: (q, id) => `${BASE}/queues/${encodeURIComponent(q)}/jobs/${encodeURIComponent(id)}`,
  jobs: (q, state, after) => `${BASE}/queues/${encodeURIComponent(q)}/jobs?state=${state}${after ? `&after=${after}` : ""}`,
  workers: (q) => `${BASE}/workers${q ? `?queue=${encodeURIComponent(q)}` : ""}`,
};
const api = (q) => `/api/queues/${encodeURIComponent(q)}`;

const int = (n) => (typeof n === "number" && Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–");
const rate = (n) => (typeof n !== "number" || !Number.isFinite(n) ? "–" : n < 10 ? n.toFixed(1) : Math.round(n).toLocaleString("en-US"));
const time = (iso) => (iso ? `${iso.replace("T", " ").slice(0, 19)} UTC` : "–");
const bytes = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);

function setCrumbs(...all) {
  const items = all.filter(Boolean);
  render(crumbs, items.map((it, i) => [i > 0 ? h("span", { class: "sep" }, "›") : null, it]));
}

function say(text, kind = "ok") {
  notice.hidden = false;
  notice.className = `notice ${kind}`;
  notice.textContent = text;
}

async function getJson(path) {
  const r = await fetch(`${BASE}${path}`, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

async function post(path, payload) {
  const headers = { "X-Jetq-Csrf": CSRF };
  if (payload !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(`${BASE}${path}`, { method: "POST", headers, credentials: "same-origin", body: payload === undefined ? undefined : JSON.stringify(payload) });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

// One live connection per page, opened at start on every page (an error page too): the badge
// shows whether the dashboard is reachable and, from its snapshots, whether NATS is.
const listeners = new Set();
let lastSnapshot = null;
function setBadge(text, kind) {
  liveBadge.textContent = text;
  liveBadge.className = `live ${kind}`;
  liveBadge.dataset.state = kind;
}
function startLive() {
  const es = new EventSource(`${BASE}/api/events`);
  es.onerror = () => setBadge("dashboard unreachable, reconnecting…", "off");
  es.onmessage = (ev) => {
    let snap;
    try {
      snap = JSON.parse(ev.data);
    } catch {
      return;
    }
    lastSnapshot = snap;
    if (snap.nats === "down") setBadge("NATS down", "down");
    else if (snap.nats === "stale" || snap.stale) setBadge("NATS not answering", "off");
    else setBadge("live", "on");
    for (const fn of listeners) fn(snap);
    document.body.dataset.updatedAt = String(snap.at);
  };
  window.addEventListener("pagehide", () => es.close());
}

/** Calls `onSnapshot` with every snapshot (and at once with the last one, if any). */
function live(onSnapshot) {
  listeners.add(onSnapshot);
  if (lastSnapshot) onSnapshot(lastSnapshot);
}

const SERIES = [
  { key: "published", label: "published/s", cls: "s-pub" },
  { key: "completed", label: "completed/s", cls: "s-ok" },
  { key: "failed", label: "failed/s", cls: "s-fail" },
];

/**
 * A line chart of `history` as inline SVG; `small` draws a sparkline without labels. A point with
 * `gap` (or an interval much longer than the others) starts a new line: a gap is drawn as a gap.
 */
function chart(history, { width, height, small, series = SERIES, fmt = rate, from, to }) {
  const pts = history ?? [];
  let max = 1;
  for (const p of pts) for (const se of series) max = Math.max(max, p[se.key] ?? 0);
  // Room on the left for the widest label (10 px font: about 6.2 px a character).
  const maxLabel = fmt(max);
  const padL = small ? 2 : Math.max(28, Math.ceil(maxLabel.length * 6.2) + 10);
  const pad = small ? 2 : 18;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: small ? "spark" : "chart", role: "img", preserveAspectRatio: "none" });
  const t0 = from ?? pts[0]?.t ?? 0;
  const t1 = to ?? pts.at(-1)?.t ?? 1;
  const x = (t) => padL + ((t - t0) / Math.max(1, t1 - t0)) * (width - padL - pad);
  const y = (v) => height - pad - (v / max) * (height - pad * 2);
  if (!small) {
    svg.append(s("line", { x1: padL, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis" }));
    svg.append(s("line", { x1: padL, y1: pad, x2: padL, y2: height - pad, class: "axis" }));
    svg.append(s("text", { x: padL - 4, y: pad + 4, "text-anchor": "end", class: "tick", "data-field": "max" }, maxLabel));
    svg.append(s("text", { x: padL - 4, y: height - pad, "text-anchor": "end", class: "tick" }, "0"));
    const span = Math.round((t1 - t0) / 1000);
    const label = from !== undefined ? "" : pts.length > 1 ? `last ${span} s` : "collecting…";
    if (label) svg.append(s("text", { x: width - pad, y: height - 4, "text-anchor": "end", class: "tick" }, label));
  }
  // Typical interval: a much longer one is a gap (the page was asleep, nobody recorded).
  const steps = [];
  for (let i = 1; i < pts.length; i++) steps.push(pts[i].t - pts[i - 1].t);
  steps.sort((a, b) => a - b);
  const step = steps[Math.floor(steps.length / 2)] ?? 0;
  const segments = [];
  let cur = [];
  for (let i = 0; i < pts.length; i++) {
    const p = pts[i];
    const broken = i > 0 && (p.gap || (step > 0 && p.t - pts[i - 1].t > step * 2.5));
    if (broken && cur.length) {
      segments.push(cur);
      cur = [];
    }
    cur.push(p);
  }
  if (cur.length) segments.push(cur);
  let gaps = 0;
  for (const seg of segments) {
    for (const se of series) {
      // A value that is not known (null) breaks this series' line too: unknown is not zero.
      const runs = [];
      let run = [];
      for (const p of seg) {
        if (typeof p[se.key] !== "number") {
          if (run.length) runs.push(run);
          run = [];
        } else run.push(p);
      }
      if (run.length) runs.push(run);
      for (const r of runs) {
        if (r.length === 1) {
          svg.append(s("circle", { cx: x(r[0].t).toFixed(1), cy: y(r[0][se.key]).toFixed(1), r: 1.5, class: `dot ${se.cls}` }));
        } else {
          const d = r.map((p) => `${x(p.t).toFixed(1)},${y(p[se.key]).toFixed(1)}`).join(" ");
          svg.append(s("polyline", { points: d, class: `line ${se.cls}` }));
        }
      }
    }
  }
  gaps = Math.max(0, segments.length - 1);
  svg.dataset.segments = String(segments.length);
  svg.setAttribute("aria-label", `${series.map((se) => se.label).join(", ")}${gaps ? ` (${gaps} gap${gaps > 1 ? "s" : ""})` : ""}`);
  return svg;
}

function legend(series = SERIES) {
  return h("div", { class: "legend" }, series.map((se) => h("span", { class: `key ${se.cls}` }, se.label)));
}

// ---- shared pieces -----------------------------------------------------------------------

const duration = (ms) => {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) {
    const sec = Math.round((ms % 60_000) / 1000);
    return `${Math.floor(ms / 60_000)} min${sec ? ` ${sec} s` : ""}`;
  }
  return `${(ms / 3_600_000).toFixed(1)} h`;
};

/** A job id on one line: never broken mid-token; the full id in the tooltip when cut. */
const jobId = (id, href) => (href ? h("a", { href, class: "mono id", title: id }, id) : h("span", { class: "mono id", title: id }, id));

async function act(what, question, path, after, body) {
  if (!window.confirm(question)) return;
  try {
    const r = await post(path, body);
    after(r);
  } catch (err) {
    say(`${what} failed: ${err.message}`, "err");
  }
}

/** The job lookup: an id or a stream sequence of `queue` (or of the queue picked in `queues`). */
function lookupBox(queue, queues) {
  const input = h("input", { type: "search", name: "job", placeholder: "Job id or sequence", "aria-label": "Job id or sequence", required: true, maxlength: 512 });
  const pick = queue ? null : h("select", { name: "queue", "aria-label": "Queue" }, (queues ?? []).map((q) => h("option", { value: q }, q)));
  const form = h("form", { class: "lookup", id: "lookup" }, pick, input, h("button", { type: "submit" }, "Find job"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = queue ?? pick.value;
    const id = input.value.trim();
    if (q && id) location.href = url.job(q, id);
  });
  return { form, setQueues: (names) => {
    if (!pick) return;
    const was = pick.value;
    pick.replaceChildren(...names.map((q) => h("option", { value: q }, q)));
    if (names.includes(was)) pick.value = was;
  } };
}

// ---- overview ----------------------------------------------------------------------------

const COLUMNS = [
  ["pending", "Pending", (q) => int(q.stats?.pending)],
  ["inFlight", "In flight", (q) => int(q.stats?.inFlight)],
  ["waitingPulls", "Waiting pulls", (q) => int(q.stats?.waitingPulls)],
  ["deadLetters", "Dead letters", null],
  ["published", "Published/s", (q) => rate(q.rates?.published)],
  ["completed", "Completed/s", (q) => rate(q.rates?.completed)],
  ["failed", "Failed/s", (q) => rate(q.rates?.failed)],
];

function overview() {
  setCrumbs(h("span", {}, "Queues"));
  const tbody = h("tbody");
  const empty = h("p", { class: "muted", hidden: true }, "No jetq queues found on this server yet. Provision one (provisionQueue or `jetq provision`) and it appears here.");
  const error = h("p", { class: "notice err", hidden: true });
  const lookup = lookupBox(null, []);
  render(app,
    h("div", { class: "title-row" }, h("h1", {}, "Queues"), lookup.form),
    error,
    h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "queues" },
      h("thead", {}, h("tr", {}, h("th", {}, "Queue"), COLUMNS.map(([key, label]) => h("th", { class: `num col-${key}` }, label)), h("th", { class: "col-chart" }, "Throughput"))),
      tbody)),
    empty,
    legend(),
  );
  const rows = new Map();
  live((snap) => {
    error.hidden = !snap.error;
    error.textContent = snap.error ?? "";
    empty.hidden = snap.queues.length > 0 || Boolean(snap.error);
    lookup.setQueues(snap.queues.map((q) => q.name));
    const seen = new Set();
    for (const q of snap.queues) {
      seen.add(q.name);
      let row = rows.get(q.name);
      if (!row) {
        row = h("tr", { "data-queue": q.name },
          h("td", {}, h("a", { href: url.queue(q.name) }, q.name), " ", h("span", { class: "tag paused", "data-field": "paused", hidden: true }, "paused"),
            h("div", { class: "row-error", "data-field": "error" })),
          COLUMNS.map(([key]) => h("td", { class: `num col-${key}`, "data-field": key })),
          h("td", { "data-field": "chart", class: "col-chart" }));
        rows.set(q.name, row);
      }
      for (const [key, , fmt] of COLUMNS) {
        const cell = row.querySelector(`[data-field="${key}"]`);
        if (key === "deadLetters") {
          const n = q.stats?.deadLetters;
          cell.replaceChildren(h("a", { href: url.dlq(q.name), class: n > 0 ? "bad" : "" }, int(n)));
        } else {
          cell.textContent = fmt(q);
        }
      }
      row.querySelector('[data-field="paused"]').hidden = !q.stats?.paused;
      row.querySelector('[data-field="error"]').textContent = q.error ?? "";
      row.querySelector('[data-field="chart"]').replaceChildren(chart(q.history, { width: 160, height: 32, small: true }));
    }
    for (const [name, row] of rows) {
      if (!seen.has(name)) {
        row.remove();
        rows.delete(name);
      }
    }
    // Keep the table in the server's (sorted) order.
    tbody.replaceChildren(...snap.queues.map((q) => rows.get(q.name)));
  });
}

// ---- one queue ---------------------------------------------------------------------------

const HISTORY_SERIES = {
  rates: SERIES,
  depth: [{ key: "depth", label: "pending", cls: "s-depth" }],
  age: [{ key: "oldestWaitingMs", label: "age of the oldest waiting job", cls: "s-fail" }],
  util: [{ key: "busy", label: "workers busy", cls: "s-pub" }, { key: "utilisation", label: "credit window in use", cls: "s-ok" }],
};

function historySection(name) {
  const box = h("div", { id: "history" });
  const buttons = ["15m", "1h", "24h", "7d"].map((r) => h("button", { type: "button", class: "range", "data-range": r, onclick: () => load(r) }, r));
  let timer;
  async function load(range) {
    clearTimeout(timer);
    for (const b of buttons) b.classList.toggle("active", b.dataset.range === range);
    let data;
    try {
      data = await getJson(`${api(name)}/history?range=${range}`);
    } catch (err) {
      render(box, h("p", { class: "notice err" }, err.message));
      return;
    }
    const pts = data.points;
    const opts = (height) => ({ width: 720, height, from: data.from, to: data.to });
    box.dataset.points = String(pts.length);
    box.dataset.range = range;
    render(box,
      pts.length === 0
        ? h("p", { class: "muted", id: "history-empty" }, data.recording
          ? "No history recorded for this range yet: a roll-up is written every minute."
          : "No history recorded for this range. `jetq dashboard` records it (per-minute roll-ups in the stream JETQ_HISTORY).")
        : null,
      h("h3", {}, "Throughput (per second)"),
      h("div", { class: "chart-box", "data-chart": "rates" }, chart(pts, { ...opts(160), series: HISTORY_SERIES.rates })),
      legend(),
      h("div", { class: "chart-row" },
        h("div", {}, h("h3", {}, "Depth (pending jobs)"), h("div", { class: "chart-box", "data-chart": "depth" }, chart(pts, { ...opts(110), width: 350, series: HISTORY_SERIES.depth, fmt: int }))),
        h("div", {}, h("h3", {}, "Age of the oldest waiting job"), h("div", { class: "chart-box", "data-chart": "age" }, chart(pts, { ...opts(110), width: 350, series: HISTORY_SERIES.age, fmt: duration }))),
        h("div", {}, h("h3", {}, "Utilisation"), h("div", { class: "chart-box", "data-chart": "util" }, chart(pts, { ...opts(110), width: 350, series: HISTORY_SERIES.util, fmt: (v) => `${Math.round(v * 100)}%` })), legend(HISTORY_SERIES.util))),
    );
    timer = setTimeout(() => load(range), 60_000);
  }
  load("1h");
  return h("section", {}, h("h2", {}, "History ", h("span", { class: "ranges" }, buttons)), box);
}

function specText(spec) {
  if (!spec) return "–";
  const base = spec.cron ? `cron ${spec.cron}${spec.tz ? ` (${spec.tz})` : ""}` : `every ${duration(spec.everyMs)}`;
  return `${base}${spec.limit ? `, ${spec.limit} runs` : ""}`;
}

async function queueExtras(name, holder) {
  let d;
  try {
    d = await getJson(`${api(name)}/details`);
  } catch (err) {
    render(holder, h("p", { class: "notice err" }, err.message));
    return;
  }
  const parts = [];
  if (d.scheduling) {
    const del = d.delayed;
    parts.push(h("h2", {}, "Delayed jobs"),
      del?.error ? h("p", { class: "notice err" }, del.error)
        : h("dl", { class: "figures", id: "delayed" },
          h("div", { class: "figure" }, h("dt", {}, "Delayed"), h("dd", { "data-field": "delayed" }, int(del?.count))),
          h("div", { class: "figure" }, h("dt", {}, "Next due (UTC)"), h("dd", { "data-field": "nextDue" }, del?.nextDue ? time(del.nextDue).replace(" UTC", "") : "–"))));
    const list = Array.isArray(d.schedules) ? d.schedules : [];
    parts.push(h("h2", {}, "Schedules"),
      d.schedules?.error ? h("p", { class: "notice err" }, d.schedules.error)
        : list.length === 0 ? h("p", { class: "muted", id: "no-schedules" }, "No schedules.")
        : h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "schedules" },
          h("thead", {}, h("tr", {}, ["Name", "Spec", "Next tick (UTC)", "Last tick (UTC)", "Runs"].map((t) => h("th", {}, t)), READ_ONLY ? null : h("th", {}, ""))),
          h("tbody", {}, list.map((sc) => h("tr", { "data-schedule": sc.name },
            h("td", { class: "mono" }, sc.name),
            h("td", { "data-field": "spec" }, specText(sc.spec)),
            h("td", { class: "nowrap", "data-field": "nextTick" }, sc.nextTick ? time(sc.nextTick).replace(" UTC", "") : "ended"),
            h("td", { class: "nowrap", "data-field": "lastTick" }, sc.lastTick ? time(sc.lastTick).replace(" UTC", "") : "–"),
            h("td", { class: "num" }, int(sc.runs)),
            READ_ONLY ? null : h("td", { class: "row-actions" }, h("button", {
              type: "button", class: "danger", "data-action": "remove-schedule",
              onclick: () => act("Remove", `Remove schedule "${sc.name}" of "${name}"? No more jobs are made for it.`,
                `${api(name)}/schedules/${encodeURIComponent(sc.name)}/remove`, () => {
                  say(`Removed schedule "${sc.name}".`);
                  queueExtras(name, holder);
                }),
            }, "Remove"))))))));
  }
  if (d.keepsState) {
    parts.push(h("h2", {}, "Recent jobs"), h("div", { id: "recent" }, h("p", { class: "muted" }, "Loading…")));
  }
  render(holder, parts);
  if (d.keepsState) loadRecent(name, holder.querySelector("#recent"));
}

// The recent jobs refresh every 5 s (one timer per page, however often the section is redrawn).
let recentTimer;
async function loadRecent(name, box) {
  clearTimeout(recentTimer);
  let r;
  try {
    r = await getJson(`${api(name)}/recent`);
  } catch (err) {
    render(box, h("p", { class: "notice err" }, err.message));
    return;
  } finally {
    if (box.isConnected) recentTimer = setTimeout(() => loadRecent(name, box), 5_000);
  }
  const table = (id, title, rows, failed) => [
    h("h3", {}, title, " ", h("span", { class: "count" }, int(rows.length))),
    rows.length === 0 ? h("p", { class: "muted" }, "None recently.")
      : h("div", { class: "table-wrap" }, h("table", { class: "grid", id },
        h("thead", {}, h("tr", {}, ["Job id", failed ? "State" : "Duration", "Finished (UTC)", failed ? "Error" : "Result"].map((t) => h("th", {}, t)))),
        h("tbody", {}, rows.map((j) => h("tr", { "data-id": j.id },
          h("td", {}, jobId(j.id, url.job(name, j.id))),
          h("td", { class: failed ? "" : "num" }, failed ? `${j.state} (attempt ${j.attempt})` : duration(j.durationMs)),
          h("td", { class: "nowrap" }, j.finishedAt ? time(j.finishedAt).replace(" UTC", "") : "–"),
          h("td", { class: "mono preview" }, failed ? j.error ?? "" : j.preview ?? "(none)")))))),
  ];
  render(box, table("recent-completed", "Completed", r.completed, false), table("recent-failed", "Failed", r.failed, true));
}

function queuePage(name) {
  setCrumbs(h("a", { href: url.overview() }, "Queues"), h("span", {}, name));
  const figures = h("dl", { class: "figures" });
  const totals = h("p", { class: "muted", id: "totals" });
  const rateChart = h("div", { class: "chart-box" });
  const depthChart = h("div", { class: "chart-box" });
  const error = h("p", { class: "notice err", hidden: true });
  const pauseState = h("span", { class: "tag", id: "pause-state", hidden: true });
  let paused = null;
  const pauseButton = READ_ONLY ? null : h("button", {
    type: "button", "data-action": "pause", hidden: true,
    onclick: () => {
      const resume = paused === true;
      act(resume ? "Resume" : "Pause",
        resume ? `Resume "${name}"? Its workers start jobs again.` : `Pause "${name}"? Its workers finish running jobs and start no new ones until it is resumed.`,
        `${api(name)}/${resume ? "resume" : "pause"}`, () => say(resume ? `Resumed "${name}".` : `Paused "${name}".`));
    },
  });
  const extras = h("div", { id: "extras" });
  render(app,
    h("div", { class: "title-row" }, h("h1", {}, name, " ", pauseState), lookupBox(name).form),
    error,
    h("div", { class: "actions" }, pauseButton,
      h("a", { href: url.jobs(name, "waiting"), class: "button", id: "open-jobs" }, "Jobs →"),
      h("a", { href: url.workers(name), class: "button", id: "open-workers" }, "Workers →"),
      h("a", { href: url.dlq(name), class: "button" }, "Dead letters →")),
    figures,
    totals,
    extras,
    h("h2", {}, "Live throughput"),
    rateChart,
    legend(),
    h("h2", {}, "Live depth (pending jobs)"),
    depthChart,
    historySection(name),
  );
  queueExtras(name, extras);
  const fig = (label, value, field, href) =>
    h("div", { class: "figure" }, h("dt", {}, label), h("dd", { "data-field": field }, href ? h("a", { href }, value) : value));
  live((snap) => {
    const q = snap.queues.find((x) => x.name === name);
    if (!q) {
      error.hidden = false;
      error.textContent = snap.error ?? `No queue "${name}" on this dashboard.`;
      return;
    }
    // A stale overview (NATS not answering) says so here too, not only on the overview page.
    error.hidden = !(q.error || snap.error);
    error.textContent = q.error ?? snap.error ?? "";
    const st = q.stats ?? {};
    if (q.stats) {
      paused = st.paused === true;
      pauseState.hidden = !paused;
      pauseState.className = `tag${paused ? " paused" : ""}`;
      pauseState.textContent = paused ? (st.pausedUntilMs ? `paused until ${time(new Date(st.pausedUntilMs).toISOString())}` : "paused") : "";
      if (pauseButton) {
        pauseButton.hidden = false;
        pauseButton.textContent = paused ? "Resume" : "Pause";
        pauseButton.dataset.action = paused ? "resume" : "pause";
        pauseButton.className = paused ? "" : "danger";
      }
    }
    render(figures,
      fig("Pending", int(st.pending), "pending"),
      fig("In flight", int(st.inFlight), "inFlight"),
      fig("Redelivered, un-acked", int(st.redelivered), "redelivered"),
      fig("Stored jobs", int(st.stored), "stored"),
      fig("Stored bytes", typeof st.bytes === "number" ? bytes(st.bytes) : "–", "bytes"),
      fig("Dead letters", int(st.deadLetters), "deadLetters", url.dlq(name)),
      fig("Waiting pulls", int(st.waitingPulls), "waitingPulls"),
      fig("Credit window in use", `${int(st.inFlight)} / ${int(st.maxAckPending)}`, "maxAckPending"),
      fig("Bound", st.maxMessages > 0 ? `${int(st.maxMessages)} jobs` : "unbounded", "maxMessages"),
      typeof st.delayed === "number" ? fig("Delayed", int(st.delayed), "delayedLive") : null,
      fig("Published/s", rate(q.rates?.published), "published"),
      fig("Completed/s", rate(q.rates?.completed), "completed"),
      fig("Failed/s", rate(q.rates?.failed), "failed"),
    );
    totals.textContent = q.totals
      ? `All time (since the stream was created): ${int(q.totals.published)} published, ${int(q.totals.completed)} completed or removed, ${int(q.totals.deadLettered)} dead-lettered.`
      : "";
    rateChart.replaceChildren(chart(q.history, { width: 720, height: 180 }));
    depthChart.replaceChildren(chart(q.history, { width: 720, height: 120, series: [{ key: "depth", label: "pending", cls: "s-depth" }], fmt: int }));
  });
}

// ---- job lists and workers ---------------------------------------------------------------

/** Re-runs `fn` every 5 s while the page is open (one timer; a slow answer delays the next). */
function every5s(fn) {
  let timer;
  const run = async () => {
    clearTimeout(timer);
    await fn();
    timer = setTimeout(run, 5_000);
  };
  run();
  window.addEventListener("pagehide", () => clearTimeout(timer));
  return run;
}

function jobsPage(name) {
  const params = new URLSearchParams(location.search);
  const state = ["waiting", "active", "delayed"].includes(params.get("state")) ? params.get("state") : "waiting";
  const after = params.get("after");
  setCrumbs(h("a", { href: url.overview() }, "Queues"), h("a", { href: url.queue(name) }, name), h("span", {}, "Jobs"));
  const tabs = h("nav", { class: "tabs", id: "job-tabs" });
  const body = h("div", { id: "jobs-body" });
  render(app, h("div", { class: "title-row" }, h("h1", {}, "Jobs of ", h("span", { class: "mono" }, name)), lookupBox(name).form), tabs, body);
  every5s(async () => {
    let page;
    try {
      page = await getJson(`${api(name)}/jobs?state=${state}${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    } catch (err) {
      render(body, h("p", { class: "notice err" }, err.message));
      return;
    }
    render(tabs, ["waiting", "active", "delayed"].filter((st) => st !== "delayed" || page.scheduling).map((st) =>
      h("a", { href: url.jobs(name, st), class: st === state ? "tab active" : "tab", "data-state": st }, st)));
    const cols = state === "waiting" ? ["Seq", "Job id", "Age", "Size", "Payload"]
      : state === "active" ? ["Seq", "Job id", "Attempt", "Running for", "Worker"]
      : ["Held seq", "Job id", "Due (UTC)", "Size", "Payload"];
    body.dataset.total = String(page.total);
    render(body,
      h("p", { class: "muted" }, h("span", { "data-field": "total" }, int(page.total)), ` ${state}`,
        state === "active" ? " (as the workers last announced, every few seconds)" : ""),
      page.jobs.length === 0 ? h("p", { class: "muted", id: "no-jobs" }, `No ${state} jobs.`)
        : h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "jobs" },
          h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c)))),
          h("tbody", {}, page.jobs.map((j) => h("tr", { "data-seq": j.seq },
            h("td", { class: "num" }, state === "delayed" ? int(j.seq) : h("a", { href: url.job(name, String(j.seq)) }, int(j.seq))),
            h("td", { "data-field": "id" }, state === "delayed" ? jobId(j.id) : jobId(j.id, url.job(name, String(j.seq)))),
            state === "waiting" ? [h("td", { class: "num" }, duration(j.ageMs)), h("td", { class: "num" }, bytes(j.size ?? 0)), h("td", { class: "mono preview" }, j.preview ?? "")]
              : state === "active" ? [h("td", { class: "num" }, int(j.attempt)), h("td", { class: "num" }, j.since ? duration(Date.now() - Date.parse(j.since)) : "–"), h("td", { class: "mono" }, j.worker ?? "–")]
              : [h("td", { class: "nowrap" }, j.dueAt ? time(j.dueAt).replace(" UTC", "") : "–"), h("td", { class: "num" }, bytes(j.size ?? 0)), h("td", { class: "mono preview" }, j.preview ?? "")]))))),
      h("p", { class: "pager" },
        after ? h("a", { href: url.jobs(name, state) }, "← First page") : null,
        page.next ? h("a", { href: url.jobs(name, state, page.next), id: "next-page" }, "Next page →") : null));
  });
}

function workersPage() {
  const only = new URLSearchParams(location.search).get("queue");
  setCrumbs(h("a", { href: url.overview() }, "Queues"), only ? h("a", { href: url.queue(only) }, only) : null, h("span", {}, "Workers"));
  const body = h("div", { id: "workers-body" });
  render(app, h("h1", {}, "Workers", only ? [" of ", h("span", { class: "mono" }, only)] : null), body);
  every5s(async () => {
    let r;
    try {
      r = await getJson(`/api/workers${only ? `?queue=${encodeURIComponent(only)}` : ""}`);
    } catch (err) {
      render(body, h("p", { class: "notice err" }, err.message));
      return;
    }
    body.dataset.count = String(r.workers.length);
    render(body,
      h("p", { class: "muted" }, `${int(r.workers.length)} live worker${r.workers.length === 1 ? "" : "s"}`,
        r.total > r.shown ? ` shown of ${int(r.total)}` : "", ". A worker that stops leaves at once; one that dies disappears within 15 s."),
      r.workers.length === 0 ? h("p", { class: "muted", id: "no-workers" }, "No live workers.")
        : h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "workers" },
          h("thead", {}, h("tr", {}, ["Queue", "Worker", "Version", "Running", "Utilisation", "Started (UTC)", "Last seen", "Jobs"].map((c) => h("th", {}, c)))),
          h("tbody", {}, r.workers.map((w) => h("tr", { "data-worker": w.id },
            h("td", {}, h("a", { href: url.queue(w.queue) }, w.queue), w.paused ? [" ", h("span", { class: "tag paused" }, "paused")] : null),
            h("td", { class: "mono", "data-field": "id" }, jobId(w.id)),
            h("td", { class: "mono" }, w.version),
            h("td", { class: "num", "data-field": "running" }, `${int(w.inFlight)} / ${int(w.concurrency)}`),
            h("td", { class: "num", "data-field": "utilization" }, `${Math.round(w.utilization * 100)}%`),
            h("td", { class: "nowrap" }, time(w.startedAt).replace(" UTC", "")),
            h("td", { class: "nowrap" }, `${duration(Date.now() - Date.parse(w.lastSeenAt))} ago`),
            h("td", { "data-field": "jobs" }, w.jobs.slice(0, 5).map((j) => h("div", {}, jobId(j.id, url.job(w.queue, String(j.seq))), ` (attempt ${j.attempt})`)),
              w.jobs.length > 5 ? h("div", { class: "muted" }, `and ${w.inFlight - 5} more`) : null)))))));
  });
}

// ---- one job -----------------------------------------------------------------------------

async function jobPage(name, id) {
  setCrumbs(h("a", { href: url.overview() }, "Queues"), h("a", { href: url.queue(name) }, name), h("span", {}, "Job"));
  let j;
  try {
    j = await getJson(`${api(name)}/jobs/${encodeURIComponent(id)}`);
  } catch (err) {
    render(app, h("h1", {}, "Job ", jobId(id)), lookupBox(name).form, h("p", { class: "notice err", id: "job-error" }, err.message),
      h("p", {}, h("a", { href: url.queue(name) }, `← ${name}`)));
    return;
  }
  const row = (label, value, field) => h("div", { class: "figure" }, h("dt", {}, label), h("dd", { "data-field": field }, value));
  const actions = [];
  if (!READ_ONLY && j.removable && j.seq) {
    actions.push(h("button", {
      type: "button", class: "danger", "data-action": "remove-job",
      onclick: () => act("Remove", `Remove waiting job ${j.id} (sequence ${j.seq}) from "${name}"? It will not run. This cannot be undone.`,
        `${api(name)}/jobs/${j.seq}/remove`, () => {
          say(`Removed job ${j.id}.`);
          jobPage(name, id);
        }),
    }, "Remove from queue"));
  }
  if (!READ_ONLY && j.deadLetter?.seq) {
    actions.push(h("button", {
      type: "button", "data-action": "replay-job",
      onclick: () => act("Replay", `Replay dead letter #${j.deadLetter.seq} (job ${j.id}) back to "${name}"?`,
        `${api(name)}/dead-letters/${j.deadLetter.seq}/replay`, (r) => {
          say(`Replayed as job ${r.replayed.id} (sequence ${r.replayed.seq} in the queue).`);
          document.getElementById("job-actions")?.remove();
        }),
    }, "Replay"));
  }
  if (j.deadLetter?.seq) {
    actions.push(h("a", { class: "button", href: url.entry(name, j.deadLetter.seq), "data-action": "open-dead-letter" }, `Dead letter #${j.deadLetter.seq} (replay, delete) →`));
  }
  render(app,
    h("h1", {}, "Job ", h("span", { class: "mono id-full", id: "job-id" }, j.id), " ", h("span", { class: `tag state-${j.state}`, id: "job-state" }, j.state)),
    lookupBox(name).form,
    actions.length ? h("div", { class: "actions", id: "job-actions" }, actions) : null,
    h("dl", { class: "figures wide" },
      row("State", j.state, "state"),
      row("Attempt", j.attempt === null ? "–" : int(j.attempt), "attempt"),
      row("Queue sequence", j.seq === null ? "–" : int(j.seq), "seq"),
      row("Published at", time(j.publishedAt), "publishedAt"),
      row("Started at", time(j.startedAt), "startedAt"),
      row("Finished at", time(j.finishedAt), "finishedAt"),
      row("Duration", duration(j.durationMs), "duration"),
      j.retryAt ? row("Next attempt at", time(j.retryAt), "retryAt") : null,
      j.deadLetter ? row("Dead-letter reason", j.deadLetter.reason, "deadLetterReason") : null,
      j.ledger ? row("Failed attempts so far", int(j.ledger.failures), "failures") : null,
      j.ledger && j.ledger.crashes > 0 ? row("Crashes", int(j.ledger.crashes), "crashes") : null,
      j.ledger?.error ? row("Last failure (ledger)", j.ledger.error, "ledgerError") : null,
      j.ledger?.worker ? row("Last worker", h("span", { class: "mono" }, j.ledger.worker), "ledgerWorker") : null),
    j.error ? [h("h2", {}, "Last error"), h("p", { id: "job-error-text" }, h("strong", {}, j.error.name), ": ", j.error.message),
      j.error.stack ? h("pre", { class: "payload stack", id: "stack" }, j.error.stack) : null] : null,
    j.progress !== null ? [h("h2", {}, "Progress"), h("pre", { class: "payload", id: "progress" }, j.progress)] : null,
    j.result !== null ? [h("h2", {}, "Result"), h("pre", { class: "payload", id: "result" }, j.result)] : null,
    j.payload !== null ? [h("h2", {}, "Payload"), h("pre", { class: "payload", id: "payload" }, j.payload)] : null,
    j.keepsState ? null : h("p", { class: "muted" }, "This queue keeps no job state (define it with `results`): only jobs still in the queue and dead letters can be looked up."),
  );
}

// ---- dead letters ------------------------------------------------------------------------

async function groupsView(name, holder, reload) {
  let g;
  try {
    g = await getJson(`${api(name)}/dead-letters/groups`);
  } catch (err) {
    render(holder, h("p", { class: "notice err" }, err.message));
    return;
  }
  if (g.groups.length === 0) {
    render(holder);
    return;
  }
  const base = `${api(name)}/dead-letters`;
  render(holder,
    h("h2", {}, "Grouped by error", g.scanned < g.total ? ` (the first ${int(g.scanned)} of ${int(g.total)})` : ""),
    h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "groups" },
      h("thead", {}, h("tr", {}, ["Count", "Reason", "Error", "Last failed (UTC)"].map((t) => h("th", {}, t)), READ_ONLY ? null : h("th", {}, ""))),
      h("tbody", {}, g.groups.map((gr) => h("tr", { "data-group": gr.key },
        h("td", { class: "num", "data-field": "count" }, int(gr.count)),
        h("td", { "data-field": "reason" }, gr.reason),
        h("td", { "data-field": "error" }, h("strong", {}, gr.name), ": ", gr.message, gr.example !== gr.message ? h("div", { class: "muted small" }, `e.g. ${gr.example}`) : null),
        h("td", { class: "nowrap" }, time(gr.lastFailedAt).replace(" UTC", "")),
        READ_ONLY ? null : h("td", { class: "row-actions" },
          h("button", {
            type: "button", "data-action": "replay-group",
            onclick: () => act("Replay", `Replay ${gr.seqs.length} dead letters of this group back to "${name}"?${gr.seqs.length < gr.count ? ` (the first ${gr.seqs.length} of ${gr.count})` : ""}`,
              `${base}/replay-selected`, (r) => {
                say(`Replayed ${r.replayed} dead letters.${r.alreadyGone ? ` ${r.alreadyGone} were gone already.` : ""}`);
                reload();
              }, { seqs: gr.seqs }),
          }, "Replay group"),
          h("button", {
            type: "button", class: "danger", "data-action": "delete-group",
            onclick: () => act("Delete", `Delete ${gr.seqs.length} dead letters of this group? This cannot be undone.`,
              `${base}/delete-selected`, (r) => {
                say(`Deleted ${r.deleted} dead letters.${r.alreadyGone ? ` ${r.alreadyGone} were gone already.` : ""}`);
                reload();
              }, { seqs: gr.seqs }),
          }, "Delete group"))))))));
}

async function dlqPage(name) {
  setCrumbs(h("a", { href: url.overview() }, "Queues"), h("a", { href: url.queue(name) }, name), h("span", {}, "Dead letters"));
  const from = new URLSearchParams(location.search).get("from");
  const selected = new Set();
  const groups = h("div", { id: "groups-box" });
  const body = h("div");
  let shownCount = null;
  let loading = false;
  const base = `${api(name)}/dead-letters`;
  const reload = () => {
    selected.clear();
    load();
  };
  async function load() {
    if (loading) return;
    loading = true;
    let data;
    try {
      data = await getJson(`${base}${from ? `?from=${encodeURIComponent(from)}` : ""}`);
    } catch (err) {
      render(app, h("h1", {}, "Dead letters"), h("p", { class: "notice err" }, err.message));
      return;
    } finally {
      loading = false;
    }
    shownCount = data.count;
    app.dataset.count = String(data.count);
    groupsView(name, groups, reload);
    const selBar = h("span", { class: "muted", "data-field": "selected" });
    const selButtons = READ_ONLY ? [] : [
      h("button", {
        type: "button", "data-action": "replay-selected", disabled: true,
        onclick: () => act("Replay", `Replay the ${selected.size} selected dead letters back to "${name}"?`, `${base}/replay-selected`, (r) => {
          say(`Replayed ${r.replayed} dead letters.${r.alreadyGone ? ` ${r.alreadyGone} were gone already.` : ""}`);
          reload();
        }, { seqs: [...selected] }),
      }, "Replay selected"),
      h("button", {
        type: "button", class: "danger", "data-action": "delete-selected", disabled: true,
        onclick: () => act("Delete", `Delete the ${selected.size} selected dead letters? This cannot be undone.`, `${base}/delete-selected`, (r) => {
          say(`Deleted ${r.deleted} dead letters.${r.alreadyGone ? ` ${r.alreadyGone} were gone already.` : ""}`);
          reload();
        }, { seqs: [...selected] }),
      }, "Delete selected"),
    ];
    const updateSel = () => {
      selBar.textContent = selected.size ? `${selected.size} selected` : "";
      for (const b of selButtons) b.disabled = selected.size === 0;
    };
    const bulk = READ_ONLY || data.count === 0
      ? null
      : h("div", { class: "actions" },
          h("button", {
            type: "button", "data-action": "replay-all",
            onclick: () => act("Replay", `Replay all ${data.count} dead letters of "${name}" back to the queue?`, `${base}/replay-all`, (r) => {
              say(`Replayed ${r.replayed} dead letters.${r.alreadyGone > 0 ? ` ${r.alreadyGone} were taken meanwhile by another replay or purge.` : ""}`);
              reload();
            }),
          }, "Replay all"),
          h("button", {
            type: "button", class: "danger", "data-action": "purge",
            onclick: () => act("Purge", `Delete all ${data.count} dead letters of "${name}"? This cannot be undone.`, `${base}/purge`, (r) => {
              say(`Purged ${r.purged} dead letters.`);
              reload();
            }),
          }, "Purge all"),
          selButtons, selBar);
    const rows = data.entries.map((e) =>
      h("tr", { "data-seq": e.seq },
        READ_ONLY ? null : h("td", {}, (() => {
          const box = h("input", { type: "checkbox", "aria-label": `Select #${e.seq}`, "data-field": "select" });
          box.checked = selected.has(e.seq);
          box.addEventListener("change", () => {
            if (box.checked) selected.add(e.seq);
            else selected.delete(e.seq);
            updateSel();
          });
          return box;
        })()),
        h("td", { class: "num" }, h("a", { href: url.entry(name, e.seq), "data-field": "open" }, `#${e.seq}`)),
        h("td", { "data-field": "id" }, jobId(e.id)),
        h("td", { "data-field": "reason" }, e.reason),
        h("td", { "data-field": "error" }, h("strong", {}, e.error.name), ": ", e.error.message),
        h("td", { class: "num", "data-field": "attempts" }, int(e.attempts)),
        h("td", { class: "nowrap", "data-field": "failedAt" }, time(e.failedAt).replace(" UTC", "")),
        h("td", { class: "mono preview", "data-field": "payload" }, e.payload),
        READ_ONLY ? null : h("td", { class: "row-actions" },
          h("button", {
            type: "button", "data-action": "replay",
            onclick: () => act("Replay", `Replay dead letter #${e.seq} (job ${e.id}) back to "${name}"?`, `${base}/${e.seq}/replay`, (r) => {
              say(`Replayed #${e.seq} as job ${r.replayed.id} (sequence ${r.replayed.seq}).`);
              reload();
            }),
          }, "Replay"),
          h("button", {
            type: "button", class: "danger", "data-action": "delete",
            onclick: () => act("Delete", `Delete dead letter #${e.seq} (job ${e.id})? This cannot be undone.`, `${base}/${e.seq}/delete`, () => {
              say(`Deleted #${e.seq}.`);
              reload();
            }),
          }, "Delete"))));
    const pager = h("p", { class: "pager" },
      from ? h("a", { href: url.dlq(name) }, "← First page") : null,
      data.next ? h("a", { href: url.dlq(name, data.next) }, "Next page →") : null);
    render(body,
      bulk,
      data.entries.length === 0
        ? h("p", { class: "muted", id: "empty" }, "No dead letters.")
        : h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "dead-letters" },
            h("thead", {}, h("tr", {},
              READ_ONLY ? null : h("th", {}, ""),
              ["Seq", "Job id", "Reason", "Last error", "Attempts", "Failed at (UTC)", "Payload"].map((t) => h("th", {}, t)),
              READ_ONLY ? null : h("th", {}, ""))),
            h("tbody", {}, rows))),
      pager);
    updateSel();
    count.textContent = int(data.count);
  }
  const count = h("span", { class: "count", "data-field": "count" }, "");
  render(app, h("h1", {}, "Dead letters of ", h("span", { class: "mono" }, name), " ", count), groups, h("h2", {}, "All dead letters"), body);
  await load();
  // Live: a new or removed dead letter (the count changes) reloads the list, keeping the selection.
  live((snap) => {
    const q = snap.queues.find((x) => x.name === name);
    const n = q?.stats?.deadLetters;
    if (typeof n === "number" && shownCount !== null && n !== shownCount) load();
  });
}

async function entryPage(name, seqText) {
  setCrumbs(h("a", { href: url.overview() }, "Queues"), h("a", { href: url.queue(name) }, name),
    h("a", { href: url.dlq(name) }, "Dead letters"), h("span", {}, `#${seqText}`));
  let e;
  try {
    e = (await getJson(`${api(name)}/dead-letters/${encodeURIComponent(seqText)}`)).entry;
  } catch (err) {
    render(app, h("h1", {}, `Dead letter #${seqText}`), h("p", { class: "notice err" }, err.message), h("p", {}, h("a", { href: url.dlq(name) }, "← All dead letters")));
    return;
  }
  const base = `${api(name)}/dead-letters/${e.seq}`;
  const row = (label, value, field) => h("div", { class: "figure" }, h("dt", {}, label), h("dd", { "data-field": field }, value));
  const actions = READ_ONLY ? null : h("div", { class: "actions", id: "entry-actions" },
    h("button", {
      type: "button", "data-action": "replay",
      onclick: () => act("Replay", `Replay dead letter #${e.seq} (job ${e.id}) back to "${name}"?`, `${base}/replay`, (r) => {
        say(`Replayed as job ${r.replayed.id} (sequence ${r.replayed.seq} in the queue).`);
        actions.replaceChildren(h("a", { href: url.dlq(name) }, "← All dead letters"));
      }),
    }, "Replay"),
    h("button", {
      type: "button", class: "danger", "data-action": "delete",
      onclick: () => act("Delete", `Delete dead letter #${e.seq} (job ${e.id})? This cannot be undone.`, `${base}/delete`, () => {
        say(`Deleted #${e.seq}.`);
        actions.replaceChildren(h("a", { href: url.dlq(name) }, "← All dead letters"));
      }),
    }, "Delete"));
  const headerNames = Object.keys(e.headers).sort();
  render(app,
    h("h1", {}, `Dead letter #${e.seq}`),
    actions,
    h("dl", { class: "figures wide" },
      row("Job id", h("span", { class: "mono id-full" }, e.id), "id"),
      row("Reason", e.reason, "reason"),
      row("Error", [h("strong", {}, e.error.name), ": ", e.error.message], "error"),
      row("Attempts", int(e.attempts), "attempts"),
      row("Published at", time(e.publishedAt), "publishedAt"),
      row("Failed at", time(e.failedAt), "failedAt"),
      row("Queue sequence", int(e.sourceSeq), "sourceSeq"),
      row("Size", bytes(e.bytes), "bytes")),
    h("h2", {}, e.json ? "Payload (JSON)" : "Payload (not JSON, shown as text)"),
    h("pre", { class: "payload", id: "payload" }, e.payload),
    e.truncated ? h("p", { class: "muted" }, "Only the first MiB is shown.") : null,
    e.truncatedFrom !== null && e.truncatedFrom !== undefined
      ? h("p", { class: "notice err" }, `This payload was cut to fit the dead-letter stream: the job had ${e.truncatedFrom} bytes, ${e.bytes} are kept.`)
      : null,
    e.error.stack ? [h("h2", {}, "Stack of the last error"), h("pre", { class: "payload stack", id: "stack" }, e.error.stack)] : null,
    h("h2", {}, "Headers"),
    headerNames.length === 0
      ? h("p", { class: "muted" }, "No headers besides jetq's own.")
      : h("table", { class: "grid", id: "headers" }, h("tbody", {}, headerNames.map((k) => h("tr", {}, h("th", { class: "mono" }, k), h("td", { class: "mono" }, e.headers[k]))))),
  );
}

// ---- router ------------------------------------------------------------------------------

function route() {
  const path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname;
  let parts;
  try {
    parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    // A malformed %-escape: say so rather than leave the page blank.
    render(app, h("h1", {}, "Bad link"), h("p", {}, "This address has a malformed %-escape. "), h("p", {}, h("a", { href: url.overview() }, "← Queues")));
    return;
  }
  if (parts.length === 0) return overview();
  if (parts[0] === "workers" && parts.length === 1) return workersPage();
  if (parts[0] === "queues" && parts[2] === "jobs" && parts.length === 3) return jobsPage(parts[1]);
  if (parts[0] === "queues" && parts.length === 2) return queuePage(parts[1]);
  if (parts[0] === "queues" && parts[2] === "jobs" && parts.length === 4) return jobPage(parts[1], parts[3]);
  if (parts[0] === "queues" && parts[2] === "dead-letters" && parts.length === 3) return dlqPage(parts[1]);
  if (parts[0] === "queues" && parts[2] === "dead-letters" && parts.length === 4) return entryPage(parts[1], parts[3]);
  render(app, h("h1", {}, "Not found"), h("p", {}, h("a", { href: url.overview() }, "← Queues")));
}

// The badge follows NATS on every page, error pages included.
startLive();
Promise.resolve(route()).finally(() => {
  document.body.dataset.ready = "true";
});
