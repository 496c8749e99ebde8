// Turns a BenchResult into the console ratio table, BENCHMARKS.md and an SVG bar chart.
import { resultsSection } from "./scenarios/results.ts";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { BenchResult, LatencyRow, Row } from "./harness.ts";
import { fmt } from "./harness.ts";
import { median } from "./lib/common.ts";
import { scheduleSection } from "./scenarios/schedule.ts";

const NOTES = fileURLToPath(new URL("./notes.md", import.meta.url));

const LABELS: Record<string, string> = {
  "jetq.publishMany": "jetq publishMany (all jobs in one call)",
  "jetq.publishMany.chunked": "jetq publishMany (1000 × 4 in flight)",
  "jetq.publishMany.validateAll": "jetq publishMany, chunkSize Infinity (whole batch validated first)",
  "jetq.publish": "jetq publish() loop (1024 callers)",
  "raw.async": "raw PublishAsync-style, the fastest variant: reply subjects reused (window 1024)",
  "raw.async.fresh": "raw variant: a new reply subject per publish, numeric tokens (window 1024)",
  "raw.async.bytes": "raw variant: reused subjects, payload encoded to bytes first (window 1024)",
  "raw.async.w4096": "raw variant: reused subjects, window 4096",
  "raw.async.promise": "raw publish loop: the fastest raw core with a promise per publish (1024 callers)",
  "raw.async.textbook": "raw variant: textbook (string tokens in a Map, PubAck JSON.parse'd)",
  "raw.floor": "the floor: no work per job (context)",
  "raw.js.publish": "raw js.publish() (1024 in flight)",
  "bullmq.addBulk": "BullMQ addBulk (1000 × 4 in flight)",
  "bullmq.add": "BullMQ add() loop (1024 callers)",
  "pgboss.insert": "pg-boss insert (1000 × 4 in flight)",
  jetq: "jetq Worker (ack)",
  "jetq.confirmed": "jetq Worker, ackMode confirmed",
  "jetq.confirmed.plain": "jetq Worker, confirmed, on the NATS client's connect() (async traces on)",
  "raw.ack": "raw consume() + ack()",
  "raw.ackAck": "raw consume() + ackAck()",
  bullmq: "BullMQ Worker",
  pgboss: "pg-boss fetch/complete",
  raw: "raw (PublishAsync-style + consume/ack)",
};

export function label(c: string): string {
  return LABELS[c] ?? c;
}

function x(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? "–" : `${v.toFixed(2)}×`;
}

function ms(v: number): string {
  return Number.isFinite(v) ? v.toFixed(2) : "–";
}

/** The raw row a jetq row is held against (same ack mode / same headers). */
function rawPeer(rows: Row[], r: Row): Row | undefined {
  const peer: Record<string, string> = {
    "jetq.publishMany": "raw.async",
    "jetq.publishMany.chunked": "raw.async",
    "jetq.publishMany.validateAll": "raw.async",
    "jetq.publish": "raw.async",
    jetq: "raw.ack",
    "jetq.confirmed": "raw.ackAck",
    "jetq.confirmed.plain": "raw.ackAck",
  };
  const c = peer[r.contender];
  return c ? rows.find((o) => o.scenario === r.scenario && o.group === r.group && o.contender === c) : undefined;
}

function bullPeer(rows: Row[], r: Row): Row | undefined {
  const c = r.scenario === "publish" ? "bullmq.addBulk" : "bullmq";
  return rows.find((o) => o.scenario === r.scenario && o.group === r.group && o.contender === c);
}

/**
 * A target jetq misses on nats-server 2.9 beside the same ratio for plain nats.js on the same
 * queue layout in the same run: when the raw floor misses the goal too, the limit is the server.
 */
export interface FloorRatio {
  target: string;
  /** jetq's ratio (numerator ÷ denominator, medians over the rounds; or the median of back-to-back pairs' ratios, see `paired`). */
  jetq: number;
  goal: number;
  /** The raw floor's ratio of the same two drains. */
  floor: number;
  /** jetq's numerator ÷ the floor's (with results on, with 3 levels): how close jetq gets to raw there. */
  vsRaw: number;
  jetqRows: string;
  floorRows: string;
  /** nats-server CPU per 1,000 jobs of the four drains (jetq with / without, raw with / without), where measured: steadier than throughput on shared cores. */
  serverCpu?: string;
  /** The ratios are medians of back-to-back pairs' ratios (this many pairs each), not ratios of medians. */
  paired?: number;
  why: string;
}

/**
 * The median of per-pair ratios of two rows recorded pairwise (value i of each row from the same
 * back-to-back pair of runs); undefined when the rows do not pair up.
 */
export function pairedRatio(num: Row, den: Row): number | undefined {
  if (num.values.length !== den.values.length || num.values.length === 0) return undefined;
  return median(num.values.map((v, i) => v / den.values[i]!));
}

/** The raw floors of the results (issue 19) and priority (issue 18) targets, from the rows of this run. */
export function floorRatios(res: BenchResult): FloorRatio[] {
  const out: FloorRatio[] = [];
  const find = (scenario: string, group: string, contender: string): Row | undefined => res.rows.find((r) => r.scenario === scenario && r.group === group && r.contender === contender);
  const add = (target: string, goal: number, why: string, j: [Row | undefined, Row | undefined], f: [Row | undefined, Row | undefined], cpu?: Array<Row | undefined>, paired = false): void => {
    const [jn, jd] = j;
    const [fn, fd] = f;
    if (!jn || !jd || !fn || !fd || !(jd.median > 0) || !(fd.median > 0)) return;
    const pj = paired ? pairedRatio(jn, jd) : undefined;
    const pf = paired ? pairedRatio(fn, fd) : undefined;
    const pairs = pj !== undefined && pf !== undefined ? jn.values.length : undefined;
    out.push({
      target,
      jetq: pairs !== undefined ? pj! : jn.median / jd.median,
      goal,
      floor: pairs !== undefined ? pf! : fn.median / fd.median,
      ...(pairs !== undefined ? { paired: pairs } : {}),
      vsRaw: jn.median / fn.median,
      jetqRows: `${fmt(jn.median)} / ${fmt(jd.median)} ${jn.unit}${pairs !== undefined ? `; median of ${pairs} back-to-back pairs' ratios (ratio of the medians: ${(jn.median / jd.median).toFixed(2)}, floor ${(fn.median / fd.median).toFixed(2)})` : ""}`,
      floorRows: `${fmt(fn.median)} / ${fmt(fd.median)} ${fn.unit}`,
      ...(cpu?.every((r) => r !== undefined) ? { serverCpu: `jetq ${fmt(cpu[0]!.median)} / ${fmt(cpu[1]!.median)}, raw ${fmt(cpu[2]!.median)} / ${fmt(cpu[3]!.median)} ms per 1k jobs` } : {}),
      why,
    });
  };
  for (const g of [...new Set(res.rows.filter((r) => r.scenario === "results" && r.unit === "jobs/s").map((r) => r.group))]) {
    const cg = g.replace(/: drain$/, ": server CPU");
    const cpu = (n: string): Array<Row | undefined> => ["jetq results on", "jetq results off", `raw results ${n}`, "raw results off"].map((c) => find("results", cg, c));
    add(
      `drain with results vs without (${g})`,
      0.7,
      "raw consume() + ack(), then the same with one record per job (jetq's completed record's size, own subject, jetq's state stream) acked after its PubAck: the server stores a second message per job",
      [find("results", g, "jetq results on"), find("results", g, "jetq results off")],
      [find("results", g, "raw results on"), find("results", g, "raw results off")],
      cpu("on"),
    );
    add(
      `drain with results vs without, floor confirming a turn's records by one PubAck (${g})`,
      0.7,
      "the same, with the records of one event-loop turn confirmed by the PubAck of the last (as jetq does): fewer answers from the server",
      [find("results", g, "jetq results on"), find("results", g, "jetq results off")],
      [find("results", g, "raw results on-batch"), find("results", g, "raw results off")],
      cpu("on-batch"),
    );
  }
  const flow = "flow: drain, 1 worker process, concurrency 64";
  add(
    "drain with 3 priority levels vs a single level",
    0.9,
    "raw consume() + ack() on the same provisioned queue, each level's consumer in turn: the cost of the 3-level layout on the server",
    [find("flow", flow, "jetq 3 priority levels"), find("flow", flow, "jetq single level")],
    [find("flow", flow, "raw 3 priority levels"), find("flow", flow, "raw single level")],
    undefined,
    true,
  );
  return out;
}

const FLOOR_NOTE =
  "The raw floor is plain nats.js doing the same work on the same server in the same rounds, with nothing per job beyond it; where it misses the goal too, the limit is the server's work per job on this machine, not jetq's client code (it is the fastest loop we could write on the public API, not a proof that none is faster). jetq ÷ raw compares the two numerators (with results, with 3 levels).";

function floorTable(res: BenchResult): string[] {
  const f = floorRatios(res);
  if (f.length === 0) return [];
  const lines = ["", "server floors: the same ratio for raw nats.js in this run (context for jetq's targets)", `${"target".padEnd(72)} jetq  goal    raw floor  floor met  jetq ÷ raw (numerators)`, "-".repeat(110)];
  for (const r of f) {
    lines.push(`${r.target.padEnd(72)}${r.jetq.toFixed(2).padStart(5)}  ${`>= ${r.goal}`.padEnd(8)}${r.floor.toFixed(2).padStart(9)}  ${(r.floor >= r.goal ? "yes" : "NO").padEnd(9)}  ${r.vsRaw.toFixed(2).padStart(10)}`);
    lines.push(`  floor: ${r.why}`);
    if (r.paired !== undefined) lines.push(`  jetq and floor: ${r.jetqRows}`);
    if (r.serverCpu) lines.push(`  nats-server CPU, with / without: ${r.serverCpu}`);
  }
  lines.push(FLOOR_NOTE);
  return lines;
}

function floorMarkdown(res: BenchResult): string[] {
  const f = floorRatios(res);
  if (f.length === 0) return [];
  return [
    "",
    "**Server floors.** " + FLOOR_NOTE,
    "",
    "| target | jetq | goal | raw floor | floor meets the goal | jetq ÷ raw, numerators | jetq (rows) | raw floor (rows) | nats-server CPU, with / without | the floor |",
    "|---|---:|---|---:|---|---:|---|---|---|---|",
    ...f.map((r) => `| ${r.target} | ${r.jetq.toFixed(2)} | >= ${r.goal} | ${r.floor.toFixed(2)} | ${r.floor >= r.goal ? "yes" : "no"} | ${r.vsRaw.toFixed(2)} | ${r.jetqRows} | ${r.floorRows} | ${r.serverCpu ?? "–"} | ${r.why} |`),
  ];
}

export function ratioTable(res: BenchResult): string {
  const lines = [`${"target".padEnd(72)}ratio  goal                 met  cpu/job`, "-".repeat(110)];
  for (const r of res.ratios) {
    lines.push(`${r.target.padEnd(72)}${r.value.toFixed(2).padStart(5)}  ${r.goal.padEnd(21)}${(r.context ? "–" : r.met ? "yes" : "NO").padEnd(5)}${r.cpuPerJob === undefined ? "" : r.cpuPerJob.toFixed(2).padStart(7)}`);
  }
  if (res.ratios.length === 0) lines.push("(no ratios: not enough scenarios or contenders ran)");
  for (const s of res.skipped) lines.push(`note: ${s}`);
  lines.push(...floorTable(res));
  return lines.join("\n");
}

function throughputTable(res: BenchResult, scenario: "publish" | "drain"): string {
  const groups = [...new Set(res.rows.filter((r) => r.scenario === scenario).map((r) => r.group))];
  const out: string[] = [];
  for (const g of groups) {
    const rows = res.rows.filter((r) => r.scenario === scenario && r.group === g).sort((a, b) => b.median - a.median);
    out.push(`**${g}**`, "");
    out.push("| contender | median jobs/s | min – max | × raw (same headers / ack mode) | × BullMQ | client CPU µs/job | nats-server CPU µs/job |");
    out.push("|---|---:|---:|---:|---:|---:|---:|");
    for (const r of rows) {
      const raw = rawPeer(res.rows, r);
      const bull = bullPeer(res.rows, r);
      // CPU per job is steadier than throughput on a shared machine: medians over rounds.
      const cpu = (k: string): string => {
        const v = r.runs
          .map((run) => (typeof run[k] === "number" ? ((run[k] as number) * 1e6) / ((run.handled as number | undefined) ?? res.config.publishJobs) : undefined))
          .filter((n): n is number => n !== undefined && Number.isFinite(n));
        return v.length ? median(v).toFixed(1) : "–";
      };
      out.push(
        `| ${label(r.contender)} | ${fmt(r.median)} | ${fmt(r.min)} – ${fmt(r.max)} | ${raw ? x(r.median / raw.median) : ""} | ${bull && r.system !== "bullmq" ? x(r.median / bull.median) : ""} | ${cpu("clientCpuSec")} | ${cpu("serverCpuSec")} |`,
      );
    }
    out.push("");
  }
  return out.join("\n");
}

function latencyTable(rows: LatencyRow[]): string {
  const out = [
    "| offered rate | contender | publish → handler start p50 / p99 / max (ms) | publish → ack p50 / p99 / max (ms) | publish → PubAck p50 / p99 (ms) | kept up (runs) |",
    "|---:|---|---:|---:|---:|---|",
  ];
  for (const r of [...rows].sort((a, b) => a.rate - b.rate || a.contender.localeCompare(b.contender))) {
    out.push(
      `| ${fmt(r.rate)}/s | ${r.contender} | ${ms(r.start.p50)} / ${ms(r.start.p99)} / ${ms(r.start.max)} | ${ms(r.ack.p50)} / ${ms(r.ack.p99)} / ${ms(r.ack.max)} | ${ms(r.pubAck.p50)} / ${ms(r.pubAck.p99)} | ${r.keptUp.filter(Boolean).length} of ${r.keptUp.length} |`,
    );
  }
  return out.join("\n");
}

function memorySection(res: BenchResult): string {
  const out: string[] = [];
  type D = {
    peakRssMiB: number;
    peakRssMinMiB?: number;
    peakRssMaxMiB?: number;
    rate: number;
    atPeakHeapTotalMiB?: number;
    atPeakHeapUsedMiB?: number;
    atPeakExternalMiB?: number;
    liveHeapAfterGcMiB?: number;
  };
  const drains = res.memory.workerDrain as Record<string, D> | undefined;
  const raw = (res.memory.rawWorkerDrain ?? {}) as Record<string, D>;
  if (drains) {
    out.push(
      "One worker process (concurrency 64) draining a backlog, every size in every round; the row is the run with the median peak RSS (from the kernel, `maxRSS`), with the range over rounds; the V8 figures are sampled every 100 ms at the highest RSS, and the live heap is measured after a forced full GC at the end (`--expose-gc`, this process only).",
      "",
      "| worker | backlog | peak RSS (MiB) | range over rounds | V8 heap total / used at the peak (MiB) | external (MiB) | live heap after a full GC (MiB) | jobs/s |",
      "|---|---:|---:|---:|---:|---:|---:|---:|",
    );
    const line = (who: string, n: string, d: D): string =>
      `| ${who} | ${fmt(Number(n))} | ${d.peakRssMiB} | ${d.peakRssMinMiB ?? "–"} – ${d.peakRssMaxMiB ?? "–"} | ${d.atPeakHeapTotalMiB ?? "–"} / ${d.atPeakHeapUsedMiB ?? "–"} | ${d.atPeakExternalMiB ?? "–"} | ${d.liveHeapAfterGcMiB ?? "–"} | ${fmt(d.rate)} |`;
    for (const [n, d] of Object.entries(drains)) out.push(line("jetq Worker", n, d));
    for (const [n, d] of Object.entries(raw)) out.push(line("raw consume() + ack()", n, d));
    out.push("");
  }
  const stall = res.memory.producerStall as
    | { skipped?: string; rate?: number; phasesMs?: number[]; phases?: Record<string, { maxRssMiB: number; maxHeapUsedMiB?: number; liveHeapAfterGcMiB?: number; ok: number; failed: Record<string, number>; inFlightMax: number }> }
    | undefined;
  if (stall?.skipped) out.push(`Producer under a stopped server: ${stall.skipped}.`);
  else if (stall?.phases) {
    out.push(
      `jetq Producer (defaults) offered ${fmt(stall.rate ?? 0)} publishes/s; the bench sent SIGSTOP to its nats-server for ${((stall.phasesMs?.[1] ?? 0) / 1000).toFixed(0)} s, then SIGCONT:`,
      "",
      "| phase | peak RSS (MiB) | peak heap used (MiB) | live heap after a full GC at the phase end (MiB) | confirmed | failed (by error) | most outstanding publish() calls |",
      "|---|---:|---:|---:|---:|---|---:|",
    );
    for (const [name, p] of Object.entries(stall.phases)) {
      const failed = Object.entries(p.failed).map(([k, v]) => `${k} ${fmt(v)}`).join(", ") || "0";
      out.push(`| ${name} | ${p.maxRssMiB} | ${p.maxHeapUsedMiB ?? "–"} | ${p.liveHeapAfterGcMiB ?? "–"} | ${fmt(p.ok)} | ${failed} | ${fmt(p.inFlightMax)} |`);
    }
  }
  return out.join("\n");
}

const EXTRA_LABELS: Record<string, string> = {
  base: "base: no schema, telemetry: false, ack()",
  schema: "+ zod schema (validated on publish and on receipt)",
  "telemetry-api": "+ telemetry on (default), no SDK registered (API only)",
  "telemetry-sdk": "+ telemetry on, an OpenTelemetry SDK registered (tracer + meter providers, async-hooks context)",
  "sdk-only": "an OpenTelemetry SDK registered, jetq telemetry: false (the SDK's own cost to the process)",
  confirmed: "+ ackMode confirmed",
  "lease-off": "ackWaitMs 30 s: no in-progress acks",
  "lease-on": "ackWaitMs 450 ms: an in-progress ack every 150 ms",
};

function extrasTable(res: BenchResult): string {
  const rows = res.rows.filter((r) => r.scenario === "extras");
  if (rows.length === 0) return "(not run)";
  const out: string[] = [];
  for (const g of [...new Set(rows.map((r) => r.group))]) {
    const grp = rows.filter((r) => r.group === g);
    const base = grp.find((r) => r.contender.endsWith(" base") || r.contender.endsWith(" lease-off"));
    out.push(`**${g}**`, "", `| variant | median ${grp[0]!.unit} | min – max | vs base |`, "|---|---:|---:|---:|");
    for (const r of grp) {
      out.push(`| ${EXTRA_LABELS[r.contender.replace(/^jetq /, "")] ?? r.contender} | ${fmt(r.median)} | ${fmt(r.min)} – ${fmt(r.max)} | ${base ? x(r.median / base.median) : ""} |`);
    }
    out.push("");
  }
  return out.join("\n");
}

function flowTable(res: BenchResult): string {
  const rows = res.rows.filter((r) => r.scenario === "flow");
  if (rows.length === 0) return "(not run)";
  const out = ["| measurement | contender | median | min – max |", "|---|---|---:|---:|"];
  for (const r of rows) {
    const f = (v: number): string => (r.unit === "ratio" ? v.toFixed(3) : fmt(v));
    out.push(`| ${r.group} | ${r.contender} | ${f(r.median)} ${r.unit === "ratio" ? "" : r.unit} | ${f(r.min)} – ${f(r.max)} |`);
  }
  const single = rows.find((r) => r.contender === "jetq single level");
  const three = rows.find((r) => r.contender === "jetq 3 priority levels");
  if (single && three) out.push("", `3 levels / single level: ${x(three.median / single.median)}`);
  const rSingle = rows.find((r) => r.contender === "raw single level");
  const rThree = rows.find((r) => r.contender === "raw 3 priority levels");
  if (rSingle && rThree) out.push("", `raw floor, 3 levels / single level: ${x(rThree.median / rSingle.median)}`);
  const bSingle = rows.find((r) => r.contender === "BullMQ single level");
  const bThree = rows.find((r) => r.contender === "BullMQ 3 priority levels");
  if (bSingle && bThree) out.push("", `BullMQ 3 priorities / no priority: ${x(bThree.median / bSingle.median)}`);
  if (three && bThree) out.push("", `jetq 3 levels / BullMQ 3 priorities: ${x(three.median / bThree.median)}`);
  return out.join("\n");
}

export function markdownReport(res: BenchResult, chartPath: string): string {
  const m = res.machine;
  const notes = existsSync(NOTES) ? readFileSync(NOTES, "utf8").trim() : "";
  const parts = [
    "# Benchmarks",
    "",
    `<!-- Generated by \`npm run bench\` (bench/report.ts) from ${res.mode === "full" ? "bench/results/latest.json" : `a ${res.mode} run`}; edit bench/notes.md, not this file. -->`,
    "",
    `jetq against the best hand-written code on the raw \`@nats-io/jetstream\` client, BullMQ${m.postgres ? " and pg-boss" : ""}, measured side by side in one interleaved run (${res.config.rounds} round${res.config.rounds > 1 ? "s" : ""}; every contender in every round, order rotated; each measurement in a fresh Node process; ${res.mode} mode, ${res.startedAt.slice(0, 16).replace("T", " ")} UTC, ${Math.round(res.durationSec / 60)} min). Payload: a ~200-byte JSON job; concurrency ${res.config.concurrency}. Absolute numbers on a shared 2-core machine drift 25–45 % between runs: **compare ratios within this run**.`,
    "",
    `![throughput and latency](${chartPath})`,
    "",
    "## Machine",
    "",
    `- ${m.cores} cores (${m.cpuModel}), ${fmt(m.memoryMiB)} MiB RAM, ${m.os}; client and servers share the cores`,
    `- Node ${m.node}; nats-server ${m.natsServer} (${m.natsSource}, file storage, R1)`,
    `- Redis ${m.redis ? `${m.redis.version} (${m.redis.source}; ${m.redis.persistence})` : "not available"}; BullMQ 6.7 with ioredis`,
    `- PostgreSQL ${m.postgres ? `${m.postgres.version} (${m.postgres.source}); pg-boss 12` : "not available"}`,
    ...res.skipped.map((s) => `- ${s}`),
    "",
    "## Contenders",
    "",
    "- **jetq**: the public API only, as a user gets it: `connect()` from jetq (which sets `noAsyncTraces: true`, the setting the README recommends, so defaults and tuned settings are the same), `Producer` and `Worker` with default options (window 1,024, `pullBatch` concurrency/4, telemetry on without an SDK, dead-lettering of crash loops on), `concurrency: 64`. One extra row runs the confirmed worker on the NATS client's own `connect()` (async traces on).",
    "- **raw @nats-io/jetstream** (3.4, `noAsyncTraces: true`): `js.publish()` with 1,024 in flight; the PublishAsync-style core publish, the fastest of the variants below (one wildcard reply inbox, reply subjects reused once answered, PubAcks matched by a numeric token and checked for an error, window 1,024 like jetq's, 5 s timeout sweep) sending the same headers as jetq (none, or `Nats-Msg-Id` with ids) and, like `publishMany`, iterating over the batch as an array built in the timed region; `consume({ max_messages: 64 })` with at most 64 handlers, each decoding the job and calling `ack()` or awaiting `ackAck()`. Same stream and durable consumer as jetq (jetq's provisioning: work-queue retention, file storage, R1, explicit ack, `max_ack_pending` 1,000, `ack_wait` 30 s).",
    "- **the floor** (context, not a contender): core publishes of payloads and headers encoded before the clock starts, all on one reply subject, PubAcks counted by one byte, not parsed or matched: no client code can do less per job, so its ratio to BullMQ is the most any NATS client can reach here.",
    "- **BullMQ** 6.7 (ioredis): `addBulk` in chunks of 1,000 with 4 in flight, or `add()` from 1,024 callers; `Worker` at concurrency 64; `removeOnComplete: true`, `removeOnFail: { count: 1000 }`.",
    "- **pg-boss** 12: `insert()` in chunks of 1,000 with 4 in flight; draining with `fetch({ batchSize: 64 })` and an awaited `complete(ids)` per batch (its `work()` loop polls at most every 0.5 s); a smaller backlog, since its fetch query slows with the table.",
    "",
    "## Targets",
    "",
    "Ratios of medians over the rounds. The last column compares client CPU per job the same way (below 1: jetq spends less); on shared cores it moves less than throughput does.",
    "",
    "| target | ratio | goal | met | numerator | denominator | client CPU per job, ratio |",
    "|---|---:|---|---|---|---|---:|",
    ...res.ratios.map(
      (r) => `| ${r.target} | ${r.value.toFixed(2)} | ${r.goal} | ${r.context ? "–" : r.met ? "yes" : "**no**"} | ${r.numerator} | ${r.denominator} | ${r.cpuPerJob === undefined ? "" : r.cpuPerJob.toFixed(2)} |`,
    ),
    ...floorMarkdown(res),
    "",
    "## Durability is not the same",
    "",
    "A confirmed publish means different things here. nats-server 2.9 writes each message to the OS page cache before it sends the PubAck and fsyncs its file store on a timer (about every 60 s in 2.9, with no setting; 2.10 added `sync_interval`, default 2 minutes, `always` to sync before every PubAck): a crash of the server process loses nothing acknowledged, a power loss can lose what was written since the last sync. Redis with AOF `appendfsync everysec` can lose about a second of writes on power loss, and without AOF (how the Redis above is configured, if it says so) everything since the last RDB snapshot. PostgreSQL fsyncs every commit. None of the runs below changes these settings.",
    "",
    "## Publish throughput (confirmed by the server)",
    "",
    `${fmt(res.config.publishJobs)} jobs per run into a fresh queue; timing ends when the last publish is confirmed; **${res.config.publishRounds ?? res.config.rounds} interleaved rounds** (median, and min – max over the rounds). With ids every job carries an idempotency key (\`Nats-Msg-Id\` / BullMQ \`jobId\` / pg-boss \`singletonKey\`); without, jetq and the raw contenders send no headers.`,
    "",
    "The raw baseline is the fastest of several hand-written PublishAsync loops on the public nats.js API (bench/contenders/nats.ts, `RawFastPublisher`), all measured in this run without ids so a reader can check it is not a straw man: every variant uses one wildcard reply subscription, a numeric token parsed from the reply subject, the PubAck checked for an error from its bytes, and the payload passed to `publish` as a string, unless it says otherwise. `raw.async` reuses an answered publish's reply subject (slots made once, as jetq does); `fresh` makes a new subject per publish (as the Go and JS clients' PublishAsync do); `bytes` encodes the payload with a TextEncoder before `publish`; `w4096` has a window of 4,096 instead of 1,024; `textbook` is the previous baseline (string tokens in a `Map`, every PubAck decoded and `JSON.parse`d).",
    "",
    throughputTable(res, "publish"),
    "## Drain a backlog",
    "",
    `A prefilled backlog, no-op handler, concurrency ${res.config.concurrency} per worker process; timing runs from "go" to the last completion (after \`ack()\`, or after the server confirmed the ack). jetq's "confirmed" mode is held against raw \`ackAck()\`, its default against raw \`ack()\`.`,
    "",
    throughputTable(res, "drain"),
    "## End-to-end latency at a fixed offered rate",
    "",
    `Producer and worker in one process on separate connections; an open-loop pacer on a 1 ms timer offers rate × elapsed jobs (at most 1,024 publishes in flight) for ${(res.config.latencyMs / 1000).toFixed(0)} s; the first ${(res.config.latencyWarmupMs / 1000).toFixed(1)} s are not measured. Medians over rounds of each run's percentiles. "Kept up": the pacer reached 97 % of the rate and every job completed within 1 s of the last publish.`,
    "",
    latencyTable(res.latency),
    "",
    "## Memory",
    "",
    memorySection(res),
    "",
    "## What each extra costs alone",
    "",
    `jetq only, ${fmt(res.config.extraJobs)} jobs: \`publishMany\` then a drain by one worker in the same process, each variant changing one thing from "base" (no schema, \`telemetry: false\`, \`ack()\`). In-progress acks: ${fmt(res.config.leaseJobs)} jobs whose handlers each take 300 ms, with \`ackWaitMs\` 30 s (no lease renewals) vs 450 ms (a renewal every 150 ms, 1–2 per job); the cost is client CPU per 1,000 jobs.`,
    "",
    extrasTable(res),
    "",
    "## Delayed and repeatable jobs",
    "",
    scheduleSection(res.rows, res.mode),
    "",
    "## Job state (`results`)",
    "",
    "One worker drains a prefilled queue with a handler that returns a small object: `off` a queue without `results` (the value is thrown away), `on` the same with `results` (each job's `completed` record, with the result, confirmed by the server before its ack), `on-events` with a `Jobs.events()` reader following every change from another connection, `off-progress` a queue without `results` whose handler calls `job.progress()`: an unused feature, which must send as many messages per job as `off`; `off-1ms` and `on-1ms` the same two with a handler that awaits a 1 ms timer (a job that does I/O, held against `off-1ms`). The raw floor, in the same rounds: plain `@nats-io/jetstream` `consume()` (callback, acks fire and forget) on a queue provisioned and filled by jetq the same way, acking each job (`raw off`), or first storing a record built like jetq's `completed` record (the same bytes per record in the stream) under a subject of its own in a stream provisioned as jetq's state stream, pipelined, and acking the job once its PubAck came back (`raw on`; `raw on-batch` confirms a turn's records by the PubAck of the last, as jetq does); no handler, nothing decoded. Client and server CPU are per 1,000 jobs. The round trip: producer and worker (concurrency 64) in one process, one job published every 10 ms and its result awaited, jetq with `receipt.result()` on a queue with `results`, BullMQ with `job.waitUntilFinished(queueEvents)` (finished jobs kept, the last 1,000); latency from the publish call to the result, after 20 warm-up round trips.",
    "",
    resultsSection(res.rows),
    "",
    "## Flow control: priorities and the rate limit",
    "",
    "jetq, and BullMQ beside it when Redis is there (the same job counts and payloads, one process per worker as for jetq). Drain: one worker process (concurrency 64) drains a prefilled backlog of a single-level queue, and of a queue with `priorities: 3` holding a third of the jobs at each level (the issue's target: 3 levels ≥ 0.9 × one level); BullMQ: jobs without `priority`, and with `priority` 1, 2 or 3 (a third each). Each drain's process first drains, untimed, a warm-up queue of the same layout with the same code (a long-running worker's steady state, not the JIT's first second), and each contender's two drains run back to back; the raw floor is plain `consume()` of each level's consumer in turn. Rate limit: `rateLimit: { max, perMs: 1000 }` (BullMQ: a Worker `limiter: { max, duration: 1000 }` in each process; its limiter counts a fixed window, so a sliding 1 s window can hold up to twice `max`), three worker processes of concurrency 16 on a backlog above the limit; the observed rate is the limit over the mean time that `limit` consecutive handler starts took, after the run's first second (a fleet that starts in bursts is not flattered by where a fixed stretch begins; target: within 2 % below the limit, never above), and the busiest sliding 1 s window over the whole run must not exceed the limit (ratio ≤ 1).",
    "",
    flowTable(res),
    notes ? `\n${notes}\n` : "",
    "## Reproduce",
    "",
    "```sh",
    "npm run bench              # full run (~15 min): rewrites BENCHMARKS.md, bench/results/latest.json and chart.svg",
    "npm run bench -- --quick   # under 2 minutes, writes .tmp/bench/",
    "npm run bench -- --only=drain --profile   # one scenario, each child process with --cpu-prof",
    "```",
    "",
    "Servers: a fresh local `nats-server` per scenario unless `NATS_URL` is set; BullMQ uses `REDIS_URL`, else Redis on 127.0.0.1:6379, else a `redis-server` on PATH (started with AOF everysec), else it is skipped with a note; pg-boss uses `DATABASE_URL`, else PostgreSQL on 127.0.0.1:5432 (database `test`), else it is skipped.",
    "",
  ];
  return parts.join("\n");
}

// ---------------------------------------------------------------- SVG

const COLORS: Record<Row["system"], string> = { jetq: "#2f7d32", raw: "#1f5fa8", bullmq: "#c0392b", pgboss: "#7d5ba6" };

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

interface Bar {
  label: string;
  value: number;
  system: Row["system"];
  text: string;
  /** Drawn lighter: a context figure, not a contender. */
  context?: boolean;
}

/** A self-contained SVG: throughput bars (publish, drain) and latency bars (p99 at each rate). */
export function svgChart(res: BenchResult): string {
  const sections: Array<{ title: string; bars: Bar[] }> = [];
  const pick = (scenario: "publish" | "drain", group: string, contenders: string[]): Bar[] =>
    contenders
      .map((c) => res.rows.find((r) => r.scenario === scenario && r.group === group && r.contender === c))
      .filter((r): r is Row => r !== undefined)
      .map((r) => ({ label: label(r.contender), value: r.median, system: r.system, text: `${fmt(r.median)} jobs/s`, context: r.contender === "raw.floor" }));
  const pubGroup = res.rows.find((r) => r.scenario === "publish" && r.group === "publish, no ids")?.group;
  if (pubGroup) sections.push({ title: "Publish, confirmed (jobs/s, higher is better)", bars: pick("publish", pubGroup, ["jetq.publishMany", "jetq.publishMany.chunked", "raw.async", "raw.floor", "jetq.publish", "raw.js.publish", "bullmq.addBulk", "bullmq.add", "pgboss.insert"]) });
  const drainGroup = res.rows.find((r) => r.scenario === "drain" && r.group.includes("1 worker process") && r.contender === "jetq")?.group;
  if (drainGroup) {
    const bars = pick("drain", drainGroup, ["jetq", "raw.ack", "jetq.confirmed", "raw.ackAck", "bullmq"]);
    const pg = res.rows.find((r) => r.scenario === "drain" && r.contender === "pgboss" && r.group.includes("1 worker process"));
    if (pg) bars.push({ label: `${label("pgboss")} (${pg.group.split(" ")[1]} backlog)`, value: pg.median, system: "pgboss", text: `${fmt(pg.median)} jobs/s` });
    sections.push({ title: `Drain a ${drainGroup.split(" ")[1]} backlog, 1 worker process, concurrency 64 (jobs/s, higher is better)`, bars });
  }
  for (const rate of [...new Set(res.latency.map((l) => l.rate))].sort((a, b) => a - b)) {
    const bars = res.latency
      .filter((l) => l.rate === rate)
      .map((l) => ({
        label: l.contender === "raw" ? "raw NATS" : l.contender === "bullmq" ? "BullMQ" : "jetq",
        value: l.start.p99,
        system: (l.contender === "raw" ? "raw" : l.contender) as Row["system"],
        text: `p99 ${ms(l.start.p99)} ms (p50 ${ms(l.start.p50)})${l.keptUp.every(Boolean) ? "" : " fell behind"}`,
      }));
    sections.push({ title: `Publish → handler start at ${fmt(rate)}/s: p99 ms (lower is better)`, bars });
  }
  const W = 900;
  const labelW = 300;
  const barMax = 380;
  const rowH = 22;
  let y = 40;
  const body: string[] = [];
  for (const s of sections) {
    body.push(`<text x="10" y="${y}" font-size="14" font-weight="bold">${esc(s.title)}</text>`);
    y += 10;
    const max = Math.max(...s.bars.map((b) => b.value).filter(Number.isFinite), 1e-9);
    for (const b of s.bars) {
      const w = Number.isFinite(b.value) ? Math.max(1, (b.value / max) * barMax) : 0;
      body.push(`<text x="${labelW - 8}" y="${y + 15}" font-size="12" text-anchor="end">${esc(b.label)}</text>`);
      body.push(`<rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${COLORS[b.system]}"${b.context ? ' fill-opacity="0.35"' : ""}/>`);
      body.push(`<text x="${labelW + w + 6}" y="${y + 15}" font-size="12">${esc(b.text)}</text>`);
      y += rowH;
    }
    y += 26;
  }
  const legend = (["jetq", "raw", "bullmq", "pgboss"] as const)
    .map((k, i) => `<rect x="${10 + i * 200}" y="${y - 8}" width="12" height="12" fill="${COLORS[k]}"/><text x="${28 + i * 200}" y="${y + 2}" font-size="12">${{ jetq: "jetq", raw: "raw @nats-io/jetstream", bullmq: "BullMQ", pgboss: "pg-boss" }[k]}</text>`)
    .join("");
  const title = `jetq benchmark (${res.mode}, ${res.startedAt.slice(0, 10)}): ${res.machine.cores} cores, Node ${res.machine.node}, nats-server ${res.machine.natsServer}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y + 20}" viewBox="0 0 ${W} ${y + 20}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="13" fill="#555">${esc(title)}</text>`,
    ...body,
    legend,
    "</svg>",
    "",
  ].join("\n");
}
