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
};

const int = (n) => (typeof n === "number" && Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–");
const rate = (n) => (typeof n !== "number" || !Number.isFinite(n) ? "–" : n < 10 ? n.toFixed(1) : Math.round(n).toLocaleString("en-US"));
const time = (iso) => (iso ? `${iso.replace("T", " ").slice(0, 19)} UTC` : "–");
const bytes = (n) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);

function setCrumbs(...items) {
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

async function post(path) {
  const r = await fetch(`${BASE}${path}`, { method: "POST", headers: { "X-Jetq-Csrf": CSRF }, credentials: "same-origin" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

/** Subscribes to the server's snapshots (server-sent events; the browser reconnects by itself). */
function live(onSnapshot) {
  const es = new EventSource(`${BASE}/api/events`);
  es.onopen = () => {
    liveBadge.textContent = "live";
    liveBadge.className = "live on";
  };
  es.onerror = () => {
    liveBadge.textContent = "reconnecting…";
    liveBadge.className = "live off";
  };
  es.onmessage = (ev) => {
    let snap;
    try {
      snap = JSON.parse(ev.data);
    } catch {
      return;
    }
    onSnapshot(snap);
    document.body.dataset.updatedAt = String(snap.at);
  };
  window.addEventListener("pagehide", () => es.close());
}

const SERIES = [
  { key: "published", label: "published/s", cls: "s-pub" },
  { key: "completed", label: "completed/s", cls: "s-ok" },
  { key: "failed", label: "failed/s", cls: "s-fail" },
];

/** A line chart of `history` as inline SVG; `small` draws a sparkline without labels. */
function chart(history, { width, height, small, series = SERIES }) {
  const pad = small ? 2 : 28;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: small ? "spark" : "chart", role: "img" });
  const pts = history ?? [];
  let max = 1;
  for (const p of pts) for (const se of series) max = Math.max(max, p[se.key] ?? 0);
  const t0 = pts[0]?.t ?? 0;
  const t1 = pts.at(-1)?.t ?? 1;
  const x = (t) => pad + ((t - t0) / Math.max(1, t1 - t0)) * (width - pad * 2);
  const y = (v) => height - pad - (v / max) * (height - pad * 2);
  if (!small) {
    svg.append(s("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis" }));
    svg.append(s("line", { x1: pad, y1: pad, x2: pad, y2: height - pad, class: "axis" }));
    svg.append(s("text", { x: pad - 4, y: pad + 4, "text-anchor": "end", class: "tick" }, rate(max)));
    svg.append(s("text", { x: pad - 4, y: height - pad, "text-anchor": "end", class: "tick" }, "0"));
    const span = Math.round((t1 - t0) / 1000);
    svg.append(s("text", { x: width - pad, y: height - 8, "text-anchor": "end", class: "tick" }, pts.length > 1 ? `last ${span} s` : "collecting…"));
  }
  if (pts.length > 1) {
    for (const se of series) {
      const d = pts.map((p) => `${x(p.t).toFixed(1)},${y(p[se.key] ?? 0).toFixed(1)}`).join(" ");
      svg.append(s("polyline", { points: d, class: `line ${se.cls}` }));
    }
  }
  svg.setAttribute("aria-label", series.map((se) => se.label).join(", "));
  return svg;
}

function legend(series = SERIES) {
  return h("div", { class: "legend" }, series.map((se) => h("span", { class: `key ${se.cls}` }, se.label)));
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
  render(app,
    h("h1", {}, "Queues"),
    error,
    h("table", { class: "grid", id: "queues" },
      h("thead", {}, h("tr", {}, h("th", {}, "Queue"), COLUMNS.map(([, label]) => h("th", { class: "num" }, label)), h("th", {}, "Throughput"))),
      tbody),
    empty,
    legend(),
  );
  const rows = new Map();
  live((snap) => {
    error.hidden = !snap.error;
    error.textContent = snap.error ?? "";
    empty.hidden = snap.queues.length > 0 || Boolean(snap.error);
    const seen = new Set();
    for (const q of snap.queues) {
      seen.add(q.name);
      let row = rows.get(q.name);
      if (!row) {
        row = h("tr", { "data-queue": q.name },
          h("td", {}, h("a", { href: url.queue(q.name) }, q.name), h("div", { class: "row-error", "data-field": "error" })),
          COLUMNS.map(([key]) => h("td", { class: "num", "data-field": key })),
          h("td", { "data-field": "chart" }));
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

function queuePage(name) {
  setCrumbs(h("a", { href: url.overview() }, "Queues"), h("span", {}, name));
  const figures = h("dl", { class: "figures" });
  const rateChart = h("div", { class: "chart-box" });
  const depthChart = h("div", { class: "chart-box" });
  const error = h("p", { class: "notice err", hidden: true });
  render(app,
    h("h1", {}, name),
    error,
    figures,
    h("h2", {}, "Throughput"),
    rateChart,
    legend(),
    h("h2", {}, "Depth (pending jobs)"),
    depthChart,
    h("p", {}, h("a", { href: url.dlq(name), class: "button" }, "Dead letters →")),
  );
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
    figures.replaceChildren(
      fig("Pending", int(st.pending), "pending"),
      fig("In flight", int(st.inFlight), "inFlight"),
      fig("Redelivered, un-acked", int(st.redelivered), "redelivered"),
      fig("Stored jobs", int(st.stored), "stored"),
      fig("Stored bytes", typeof st.bytes === "number" ? bytes(st.bytes) : "–", "bytes"),
      fig("Dead letters", int(st.deadLetters), "deadLetters", url.dlq(name)),
      fig("Waiting pulls", int(st.waitingPulls), "waitingPulls"),
      fig("Credit window in use", `${int(st.inFlight)} / ${int(st.maxAckPending)}`, "maxAckPending"),
      fig("Bound", st.maxMessages > 0 ? `${int(st.maxMessages)} jobs` : "unbounded", "maxMessages"),
      fig("Published/s", rate(q.rates?.published), "published"),
      fig("Completed/s", rate(q.rates?.completed), "completed"),
      fig("Failed/s", rate(q.rates?.failed), "failed"),
    );
    rateChart.replaceChildren(chart(q.history, { width: 720, height: 180 }));
    depthChart.replaceChildren(chart(q.history, { width: 720, height: 120, series: [{ key: "depth", label: "pending", cls: "s-depth" }] }));
  });
}

// ---- dead letters ------------------------------------------------------------------------

async function act(what, question, path, after) {
  if (!window.confirm(question)) return;
  try {
    const r = await post(path);
    after(r);
  } catch (err) {
    say(`${what} failed: ${err.message}`, "err");
  }
}

async function dlqPage(name) {
  setCrumbs(h("a", { href: url.overview() }, "Queues"), h("a", { href: url.queue(name) }, name), h("span", {}, "Dead letters"));
  const from = new URLSearchParams(location.search).get("from");
  let data;
  try {
    data = await getJson(`/api/queues/${encodeURIComponent(name)}/dead-letters${from ? `?from=${encodeURIComponent(from)}` : ""}`);
  } catch (err) {
    render(app, h("h1", {}, "Dead letters"), h("p", { class: "notice err" }, err.message));
    return;
  }
  liveBadge.textContent = "";
  const base = `/api/queues/${encodeURIComponent(name)}/dead-letters`;
  const bulk = READ_ONLY || data.count === 0
    ? null
    : h("div", { class: "actions" },
        h("button", {
          type: "button", "data-action": "replay-all",
          onclick: () => act("Replay", `Replay all ${data.count} dead letters of "${name}" back to the queue?`, `${base}/replay-all`, (r) => {
            say(`Replayed ${r.replayed} dead letters.${r.alreadyGone > 0 ? ` ${r.alreadyGone} were taken meanwhile by another replay or purge.` : ""}`);
            dlqPage(name);
          }),
        }, "Replay all"),
        h("button", {
          type: "button", class: "danger", "data-action": "purge",
          onclick: () => act("Purge", `Delete all ${data.count} dead letters of "${name}"? This cannot be undone.`, `${base}/purge`, (r) => {
            say(`Purged ${r.purged} dead letters.`);
            dlqPage(name);
          }),
        }, "Purge all"));
  const rows = data.entries.map((e) =>
    h("tr", { "data-seq": e.seq },
      h("td", { class: "num" }, h("a", { href: url.entry(name, e.seq), "data-field": "open" }, `#${e.seq}`)),
      h("td", { class: "mono", "data-field": "id" }, e.id),
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
            dlqPage(name);
          }),
        }, "Replay"),
        h("button", {
          type: "button", class: "danger", "data-action": "delete",
          onclick: () => act("Delete", `Delete dead letter #${e.seq} (job ${e.id})? This cannot be undone.`, `${base}/${e.seq}/delete`, () => {
            say(`Deleted #${e.seq}.`);
            dlqPage(name);
          }),
        }, "Delete"))));
  const pager = h("p", { class: "pager" },
    from ? h("a", { href: url.dlq(name) }, "← First page") : null,
    data.next ? h("a", { href: url.dlq(name, data.next) }, "Next page →") : null);
  render(app,
    h("h1", {}, "Dead letters of ", h("span", { class: "mono" }, name), " ", h("span", { class: "count", "data-field": "count" }, int(data.count))),
    bulk,
    data.entries.length === 0
      ? h("p", { class: "muted", id: "empty" }, "No dead letters.")
      : h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "dead-letters" },
          h("thead", {}, h("tr", {},
            ["Seq", "Job id", "Reason", "Last error", "Attempts", "Failed at (UTC)", "Payload"].map((t) => h("th", {}, t)),
            READ_ONLY ? null : h("th", {}, ""))),
          h("tbody", {}, rows))),
    pager,
  );
}

async function entryPage(name, seqText) {
  setCrumbs(h("a", { href: url.overview() }, "Queues"), h("a", { href: url.queue(name) }, name),
    h("a", { href: url.dlq(name) }, "Dead letters"), h("span", {}, `#${seqText}`));
  liveBadge.textContent = "";
  let e;
  try {
    e = (await getJson(`/api/queues/${encodeURIComponent(name)}/dead-letters/${encodeURIComponent(seqText)}`)).entry;
  } catch (err) {
    render(app, h("h1", {}, `Dead letter #${seqText}`), h("p", { class: "notice err" }, err.message), h("p", {}, h("a", { href: url.dlq(name) }, "← All dead letters")));
    return;
  }
  const base = `/api/queues/${encodeURIComponent(name)}/dead-letters/${e.seq}`;
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
      row("Job id", h("span", { class: "mono" }, e.id), "id"),
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
  if (parts[0] === "queues" && parts.length === 2) return queuePage(parts[1]);
  if (parts[0] === "queues" && parts[2] === "dead-letters" && parts.length === 3) return dlqPage(parts[1]);
  if (parts[0] === "queues" && parts[2] === "dead-letters" && parts.length === 4) return entryPage(parts[1], parts[3]);
  render(app, h("h1", {}, "Not found"), h("p", {}, h("a", { href: url.overview() }, "← Queues")));
}

Promise.resolve(route()).finally(() => {
  document.body.dataset.ready = "true";
});
