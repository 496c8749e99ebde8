/**
 * `npm run demo`: jetq's guarantees, watched live.
 *
 * Starts a local nats-server (unless NATS_URL is set), provisions a queue, runs a producer and
 * several worker processes on a thumbnail workload where some jobs fail and are retried and a
 * few are poison (dead-lettered), kills one worker with SIGKILL halfway through, and shows that
 * its jobs come back after ackWait and are finished by the others. Ends with a summary in which
 * every job is accounted for, and the `jetq dlq list` of the dead letters.
 *
 * Options: --jobs N (2000), --workers N (4), --concurrency N (8 per worker), --rate N (jobs/s
 * published, 400), --keep (keep the server and the queue after the run, to try the CLI on them),
 * --summary-json FILE (also write the summary as JSON).
 */
import { fork, spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { connect, provisionQueue, queueStats, type QueueStats } from "jetq";
import { startExampleServer } from "../lib/nats-server.ts";
import type { ProducerReport } from "./producer.ts";
import { Display, bold, dim, green, red, yellow } from "./ui.ts";
import type { WorkerReport } from "./worker.ts";
import { DEMO_ACK_WAIT_MS, DEMO_MAX_ATTEMPTS, demoQueue, imageId } from "./workload.ts";

const here = dirname(fileURLToPath(import.meta.url));
const DEADLINE_MS = 55_000;

const { values: args } = parseArgs({
  options: {
    jobs: { type: "string", default: "2000" },
    workers: { type: "string", default: "4" },
    concurrency: { type: "string", default: "8" },
    rate: { type: "string", default: "400" },
    keep: { type: "boolean", default: false },
    "summary-json": { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (args.help) {
  process.stdout.write(
    "Usage: npm run demo -- [--jobs 2000] [--workers 4] [--concurrency 8] [--rate 400] [--keep] [--summary-json file]\n",
  );
  process.exit(0);
}
const positive = (name: string, v: string | undefined, max: number): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    process.stderr.write(`demo: --${name} must be an integer from 1 to ${max}, got ${v}\n`);
    process.exit(1);
  }
  return n;
};
const TOTAL = positive("jobs", args.jobs, 100_000);
const WORKERS = positive("workers", args.workers, 16);
const CONCURRENCY = positive("concurrency", args.concurrency, 256);
const RATE = positive("rate", args.rate, 100_000);
if (WORKERS < 2) {
  process.stderr.write("demo: --workers must be at least 2 (one of them gets killed)\n");
  process.exit(1);
}

const ui = new Display();

// ---- the server -------------------------------------------------------------------------------
interface Server {
  url: string;
  kind: string;
  ours: boolean;
  stop(): Promise<void>;
}

async function startServer(): Promise<Server> {
  try {
    const s = await startExampleServer();
    return { url: s.servers, kind: s.kind, ours: s.ours, stop: () => s.stop() };
  } catch (err) {
    process.stderr.write(`The demo needs a NATS server with JetStream.\n${(err as Error).message}\n`);
    process.exit(1);
  }
}

// ---- state ------------------------------------------------------------------------------------
interface WorkerProc {
  label: string;
  proc: ChildProcess;
  state: "starting" | "running" | "killed" | "stopped";
  inFlight: Map<string, number>;
  done: number;
  stderr: string;
}

const completedBy = new Map<string, string>();
let completions = 0;
const dead = new Map<string, { reason: string; error: string }>();
let retries = 0;
const retriedIds = new Set<string>();
let published = 0;
let producerFinished = false;
let producerError: string | undefined;
const workers: WorkerProc[] = [];
let victim: WorkerProc | undefined;
let orphans: Map<string, number> | undefined;
let killedAt = 0;
const rescuedBy = new Map<string, string>();
let orphansReported = false;
let stats: QueueStats | undefined;
let startedAt = 0;
let finishedAt = 0;
let shuttingDown = false;

const accounted = (): number => completedBy.size + dead.size;

function onWorkerReport(w: WorkerProc, m: WorkerReport): void {
  switch (m.t) {
    case "ready":
      w.state = "running";
      break;
    case "start":
      w.inFlight.set(m.id, m.attempt);
      if (orphans?.has(m.id) && w !== victim && !rescuedBy.has(m.id)) rescuedBy.set(m.id, w.label);
      break;
    case "done":
      w.inFlight.delete(m.id);
      w.done++;
      completions++;
      if (!completedBy.has(m.id)) completedBy.set(m.id, w.label);
      break;
    case "retry":
      w.inFlight.delete(m.id);
      retries++;
      retriedIds.add(m.id);
      break;
    case "dead":
      w.inFlight.delete(m.id);
      if (!dead.has(m.id)) dead.set(m.id, { reason: m.reason, error: m.error });
      break;
  }
}

function spawnWorker(i: number, url: string, queueName: string): WorkerProc {
  const proc = fork(join(here, "worker.ts"), [], {
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    env: { ...process.env, NATS_URL: url, JETQ_QUEUE: queueName, JETQ_CONCURRENCY: String(CONCURRENCY), METRICS_PORT: "" },
  });
  const w: WorkerProc = { label: `w${i + 1}`, proc, state: "starting", inFlight: new Map(), done: 0, stderr: "" };
  proc.stderr!.on("data", (b: Buffer) => {
    w.stderr = (w.stderr + b.toString()).slice(-4000);
  });
  proc.stdout!.resume();
  proc.on("message", (m: WorkerReport) => onWorkerReport(w, m));
  proc.on("exit", (code, signal) => {
    if (w.state === "killed" || shuttingDown) {
      if (w.state !== "killed") w.state = "stopped";
      return;
    }
    w.state = "stopped";
    ui.event(red(`worker ${w.label} exited unexpectedly (${signal ?? code})${w.stderr ? `:\n${w.stderr}` : ""}`));
  });
  return w;
}

function maybeKill(): void {
  if (victim || accounted() < TOTAL * 0.4) return;
  const alive = workers.filter((w) => w.state === "running");
  if (alive.length < 2) return;
  victim = alive.reduce((a, b) => (b.inFlight.size > a.inFlight.size ? b : a));
  orphans = new Map(victim.inFlight);
  victim.state = "killed";
  killedAt = Date.now();
  victim.proc.kill("SIGKILL");
  ui.event(
    `${red("✖ SIGKILL")} worker ${bold(victim.label)} (pid ${victim.proc.pid}) with ${bold(String(orphans.size))} jobs in flight: ` +
      `no ack will come for them, so NATS redelivers them after ackWait (${DEMO_ACK_WAIT_MS / 1000}s) to the other workers`,
  );
}

/** Orphans the killed worker had in flight, split by what became of them. */
function orphanOutcome(): { finishedElsewhere: Map<string, string>; ackedBeforeKill: string[]; open: string[] } {
  const finishedElsewhere = new Map<string, string>();
  const ackedBeforeKill: string[] = [];
  const open: string[] = [];
  for (const id of orphans?.keys() ?? []) {
    const by = completedBy.get(id);
    if (by === victim!.label) ackedBeforeKill.push(id);
    else if (by !== undefined || dead.has(id)) finishedElsewhere.set(id, rescuedBy.get(id) ?? by ?? "?");
    else open.push(id);
  }
  return { finishedElsewhere, ackedBeforeKill, open };
}

function maybeReportOrphans(): void {
  if (!orphans || orphansReported) return;
  const o = orphanOutcome();
  if (o.open.length > 0) return;
  orphansReported = true;
  const byWorker = new Map<string, number>();
  for (const w of o.finishedElsewhere.values()) byWorker.set(w, (byWorker.get(w) ?? 0) + 1);
  const list = [...byWorker].sort().map(([w, n]) => `${w} (${n})`).join(", ");
  const secsAfter = ((Date.now() - killedAt) / 1000).toFixed(1);
  ui.event(
    `${green("✔")} the ${o.finishedElsewhere.size} jobs in flight on ${victim!.label} were redelivered and finished by ${list || "nobody"}, ` +
      `${secsAfter}s after the kill${o.ackedBeforeKill.length ? ` (${o.ackedBeforeKill.length} more had finished just before the kill)` : ""}`,
  );
}

function progress(force = false): void {
  const running = workers.reduce((n, w) => n + (w.state === "running" ? w.inFlight.size : 0), 0);
  ui.progress(
    {
      total: TOTAL,
      published,
      waiting: stats?.pending ?? 0,
      inFlight: running,
      awaiting: Math.max(0, (stats?.inFlight ?? 0) - running),
      slots: WORKERS * CONCURRENCY,
      completed: completedBy.size,
      retried: retries,
      deadLettered: dead.size,
      workers: workers.map((w) => ({ label: w.label, state: w.state, done: w.done, running: w.inFlight.size })),
      elapsedMs: startedAt ? Date.now() - startedAt : 0,
    },
    force,
  );
}

async function pollStats(nc: NatsConnection, queue: ReturnType<typeof demoQueue>, stop: AbortSignal): Promise<void> {
  while (!stop.aborted) {
    try {
      stats = await queueStats(nc, queue);
    } catch {
      // A missed sample only delays the display.
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Every job is completed or dead-lettered, and the server holds nothing more for the queue. */
function isComplete(): { done: boolean; unseen: string[] } {
  if (!producerFinished || !stats || stats.stored !== 0 || stats.inFlight !== 0) return { done: false, unseen: [] };
  if (accounted() >= TOTAL) return { done: true, unseen: [] };
  // A job the killed worker finished and acked in its last instant, before it could tell us: the
  // server no longer has it (stored is 0), so it was acked. Only those may be missing, and only
  // once their redelivery would have happened.
  const missing: string[] = [];
  for (let i = 0; i < TOTAL && missing.length <= (orphans?.size ?? 0); i++) {
    const id = imageId(i);
    if (!completedBy.has(id) && !dead.has(id)) missing.push(id);
  }
  const onlyOrphans = orphans !== undefined && missing.every((id) => orphans!.has(id));
  if (onlyOrphans && Date.now() - killedAt > DEMO_ACK_WAIT_MS + 2000) return { done: true, unseen: missing };
  return { done: false, unseen: [] };
}

async function stopChildren(producer: ChildProcess | undefined): Promise<void> {
  shuttingDown = true;
  const procs = [...workers.filter((w) => w.state !== "killed").map((w) => w.proc), ...(producer ? [producer] : [])];
  await Promise.all(
    procs.map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve();
          const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
          p.once("exit", () => {
            clearTimeout(t);
            resolve();
          });
          p.kill("SIGTERM");
        }),
    ),
  );
}

// ---- the run ----------------------------------------------------------------------------------
const server = await startServer();
const queueName = server.ours ? "thumbnails" : `thumbnails-demo-${randomBytes(3).toString("hex")}`;
const queue = demoQueue(queueName);
let producer: ChildProcess | undefined;
let nc: NatsConnection | undefined;
let exitCode = 1;
const stopPolling = new AbortController();

const onSignal = (): void => {
  ui.event(yellow("\ninterrupted: stopping workers and the server"));
  void cleanup().then(() => process.exit(130));
};
process.once("SIGINT", onSignal);
process.once("SIGTERM", onSignal);

let cleaned: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaned ??= (async () => {
    stopPolling.abort();
    await stopChildren(producer);
    if (nc && !server.ours && !args.keep) {
      // A guest on someone else's server: remove the demo's queue (pass --keep to inspect it).
      const jsm = await jetstreamManager(nc).catch(() => undefined);
      for (const s of [queue.names.stream, queue.names.dlqStream, queue.names.ledgerStream]) await jsm?.streams.delete(s).catch(() => {});
    }
    await nc?.close().catch(() => {});
    await server.stop().catch(() => {});
  })();
  return cleaned;
}

try {
  nc = await connect({ servers: server.url.split(",") });
  await provisionQueue(nc, queue);
  ui.event(
    `${bold("jetq demo")}: ${TOTAL} thumbnail jobs, ${WORKERS} worker processes × ${CONCURRENCY} concurrent handlers\n` +
      dim(`  server ${server.url} (${server.kind}); queue "${queueName}": maxAttempts ${DEMO_MAX_ATTEMPTS}, ackWait ${DEMO_ACK_WAIT_MS / 1000}s, backoff 250ms×2\n`) +
      dim(`  ~13% of jobs fail once or twice and are retried; ~1.5% are poison (corrupt image, origin always down, invalid payload)\n`) +
      dim(`  midway one worker is killed with SIGKILL; its jobs must be finished by the others\n`),
  );
  for (let i = 0; i < WORKERS; i++) workers.push(spawnWorker(i, server.url, queueName));
  const readyBy = Date.now() + 20_000;
  while (workers.some((w) => w.state === "starting")) {
    if (Date.now() > readyBy || workers.some((w) => w.state === "stopped")) throw new Error("workers did not start within 20 s");
    await new Promise((r) => setTimeout(r, 20));
  }
  void pollStats(nc, queue, stopPolling.signal);

  startedAt = Date.now();
  producer = fork(join(here, "producer.ts"), [], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env: { ...process.env, NATS_URL: server.url, JETQ_QUEUE: queueName, DEMO_JOBS: String(TOTAL), DEMO_RATE: String(RATE) },
  });
  producer.on("message", (m: ProducerReport) => {
    if (m.t === "published") published = m.count;
    else if (m.t === "finished") {
      published = m.count;
      producerFinished = true;
    } else producerError = m.error;
  });

  let unseen: string[] = [];
  for (;;) {
    maybeKill();
    maybeReportOrphans();
    progress();
    if (producerError) throw new Error(`the producer failed: ${producerError}`);
    const c = isComplete();
    if (c.done) {
      unseen = c.unseen;
      break;
    }
    if (Date.now() - startedAt > DEADLINE_MS) throw new Error(`not finished after ${DEADLINE_MS / 1000}s`);
    await new Promise((r) => setTimeout(r, ui.tty ? 100 : 250));
  }
  finishedAt = Date.now();
  maybeReportOrphans();
  progress(true);
  ui.freeze();

  // ---- summary --------------------------------------------------------------------------------
  const finalStats = await queueStats(nc, queue);
  const completedCount = completedBy.size + unseen.length;
  const byReason = new Map<string, number>();
  for (const d of dead.values()) byReason.set(d.reason, (byReason.get(d.reason) ?? 0) + 1);
  const reasons = [...byReason].sort().map(([r, n]) => `${r} ${n}`).join(", ");
  const retriedThenCompleted = [...retriedIds].filter((id) => completedBy.has(id)).length;
  const duplicates = completions - completedBy.size;
  const elapsed = finishedAt - startedAt;
  const jobsPerSecond = Math.round(TOTAL / (elapsed / 1000));
  const o = orphans ? orphanOutcome() : undefined;
  const balanced = completedCount + dead.size === published && published === TOTAL;
  const dlqMatches = finalStats.deadLetters === dead.size;
  const ok = balanced && dlqMatches && finalStats.stored === 0 && (o?.open.length ?? 0) === 0;
  const mark = (good: boolean): string => (good ? green("✔") : red("✘"));
  const rows: Array<[string, string, string]> = [
    ["published", String(published), ""],
    ["completed", String(completedCount), `${retriedThenCompleted} of them after one or more retries`],
    ["dead-lettered", String(dead.size), reasons],
    ["completed + dead-lettered", String(completedCount + dead.size), `${mark(balanced)} ${balanced ? "= published: every job accounted for" : "≠ published"}`],
    ["retries", String(retries), "failed attempts sent back with a backoff delay"],
  ];
  if (o && victim) {
    rows.push([
      `jobs on killed worker ${victim.label}`,
      String(orphans!.size),
      `${mark(o.open.length === 0)} ${o.finishedElsewhere.size} redelivered after ackWait and finished by other workers` +
        (o.ackedBeforeKill.length + unseen.length > 0 ? `; ${o.ackedBeforeKill.length + unseen.length} had finished just before the kill` : ""),
    ]);
  }
  rows.push(
    ["duplicate completions", String(duplicates), "at-least-once: a job can run twice if its worker dies after the work, before the ack"],
    ["left in the queue", String(finalStats.stored), `${mark(finalStats.stored === 0)} server: ${finalStats.stored} stored, ${finalStats.inFlight} in flight`],
    ["dead letters on the server", String(finalStats.deadLetters), `${mark(dlqMatches)} ${dlqMatches ? "matches the dead-lettered jobs" : "does not match"}`],
    ["time", `${(elapsed / 1000).toFixed(1)}s`, `${jobsPerSecond} jobs/s end to end (handlers sleep 20-200 ms to simulate work)`],
  );
  const w1 = Math.max(...rows.map((r) => r[0].length));
  const w2 = Math.max(...rows.map((r) => r[1].length));
  ui.event(`\n${bold("Summary")}\n${rows.map(([a, b, c]) => `  ${a.padEnd(w1)}  ${b.padStart(w2)}  ${dim(c)}`).join("\n")}\n`);

  if (args["summary-json"]) {
    writeFileSync(
      args["summary-json"],
      JSON.stringify(
        {
          ok,
          queue: queueName,
          published,
          completed: completedCount,
          deadLettered: dead.size,
          deadLetterReasons: Object.fromEntries(byReason),
          retries,
          duplicates,
          killed: victim ? { worker: victim.label, inFlight: orphans!.size, finishedElsewhere: o!.finishedElsewhere.size, ackedBeforeKill: o!.ackedBeforeKill.length + unseen.length } : null,
          leftInQueue: finalStats.stored,
          deadLettersOnServer: finalStats.deadLetters,
          elapsedMs: elapsed,
          jobsPerSecond,
        },
        null,
        2,
      ),
    );
  }

  // ---- the dead letters, as an operator sees them ------------------------------------------------
  ui.event(bold(`$ jetq dlq list ${queueName}`));
  // `npx jetq dlq list` in your project; here the `jetq` command of the jetq package this demo imports.
  const jetqEntry = fileURLToPath(import.meta.resolve("jetq"));
  const jetqCli = join(dirname(jetqEntry), "cli", basename(jetqEntry).replace(/^index/, "main"));
  const cli = spawnSync(process.execPath, [jetqCli, "dlq", "list", queueName, "--limit", "100"], {
    encoding: "utf8",
    env: { ...process.env, NATS_URL: server.url },
    timeout: 20_000,
  });
  ui.event(`${cli.stdout}${cli.stderr}`.trimEnd());
  ui.event(
    ok
      ? green(`\nAll ${TOTAL} jobs accounted for: ${completedCount} completed, ${dead.size} dead-lettered, none lost.`)
      : red(`\nSomething does not add up (see the marks above).`),
  );
  exitCode = ok ? 0 : 1;

  if (args.keep) {
    ui.event(
      `\nThe server keeps running with the queue "${queueName}". In another terminal, try:\n` +
        `  export NATS_URL=${server.url}\n` +
        `  npm run jetq -- stats ${queueName}\n` +
        `  npm run jetq -- dlq list ${queueName}\n` +
        `  npm run jetq -- dlq show ${queueName} 1\n` +
        `  npm run jetq -- dlq replay ${queueName} --reason max_attempts --yes\n` +
        `The workers keep running, so replayed jobs are processed again (watch: npm run jetq -- stats ${queueName} --watch).\n` +
        `Press Ctrl-C here to stop them${server.ours ? " and the server" : ""}.`,
    );
    stopPolling.abort();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", () => resolve());
      process.once("SIGTERM", () => resolve());
    });
  }
} catch (err) {
  ui.freeze();
  ui.event(red(`\ndemo failed: ${(err as Error).message}`));
  for (const w of workers) if (w.stderr) ui.event(dim(`${w.label} stderr:\n${w.stderr}`));
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
