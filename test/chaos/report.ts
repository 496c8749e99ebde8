/**
 * Figures of one chaos scenario: printed as one line when it ends, appended to a JSON-lines file
 * that test/chaos/run.ts turns into the summary table.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface ScenarioFigures {
  scenario: string;
  /** Publishes attempted (jobs the test tried to enqueue, malformed ones included). */
  published: number;
  /** Publishes the server confirmed (PubAck). */
  acked: number;
  /** Distinct job ids whose handler completed (or, for malformed input, that reached the DLQ). */
  completed: number;
  /** Acknowledged jobs that never completed. A scenario fails when this is not 0. */
  lost: number;
  /** Extra completions of an id that already completed (at-least-once redeliveries). */
  duplicates: number;
  /** Faults injected (kills, restarts, malformed messages, rejected publishes ...). */
  faults: number;
  /** Longest recovery (ms) after a fault, as the scenario defines it; undefined when not applicable. */
  recoveryMs: number | undefined;
  /** The scenario's one-line figure. */
  note: string;
  ok: boolean;
}

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Where rows go: JETQ_CHAOS_RESULTS, else test-artifacts/chaos/results.jsonl (gitignored). */
export function resultsFile(): string {
  return process.env.JETQ_CHAOS_RESULTS ?? join(repoRoot, "test-artifacts", "chaos", "results.jsonl");
}

/** Prints the scenario's one-line figure and records its row. */
export function record(f: ScenarioFigures): void {
  const rec = f.recoveryMs === undefined ? "n/a" : `${Math.round(f.recoveryMs)} ms`;
  console.log(
    `[chaos] ${f.scenario}: published=${f.published} acked=${f.acked} completed=${f.completed} lost=${f.lost} ` +
      `duplicates=${f.duplicates} faults=${f.faults} recovery=${rec} ${f.ok ? "OK" : "FAIL"} | ${f.note}`,
  );
  const file = resultsFile();
  mkdirSync(dirname(file), { recursive: true });
  appendFileSync(file, `${JSON.stringify({ ...f, at: new Date().toISOString() })}\n`);
}

/** Renders rows as a fixed-width table. */
export function table(rows: readonly ScenarioFigures[]): string {
  const head = ["scenario", "published", "acked", "completed", "lost", "dups", "faults", "recovery", "result"];
  const body = rows.map((r) => [
    r.scenario,
    String(r.published),
    String(r.acked),
    String(r.completed),
    String(r.lost),
    String(r.duplicates),
    String(r.faults),
    r.recoveryMs === undefined ? "n/a" : `${Math.round(r.recoveryMs)} ms`,
    r.ok ? "ok" : "FAIL",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
  const sep = `|${widths.map((w, i) => (i === 0 ? `:${"-".repeat(w + 1)}` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(head), sep, ...body.map(line)].join("\n");
}

/**
 * What each scenario's row backs: the promise of README "Guarantees" (and "What happens when things
 * go wrong") that fails if the row does. Keyed by the scenario's number, the start of its name.
 */
export const PROMISES: Readonly<Record<string, string>> = {
  "1": "At-least-once across worker crashes: every acknowledged job completes while worker processes are SIGKILLed every 1–3 s; their jobs are redelivered after `ackWaitMs`.",
  "2": "At-least-once across a server process crash, and no silent publish failures: every PubAck'd job completes after the server restarts on its store; every publish without a PubAck failed with a typed error within `ackTimeoutMs`.",
  "3": "No acknowledged job lost when the stream leader of a `replicas: 3` cluster dies; publishing and processing resume by themselves (the recovery column is the pause, not promised to be zero).",
  "4": "Poison goes to the dead-letter queue: malformed bytes, schema failures, forged or oversized headers are dead-lettered with their reason and original bytes; good jobs around them complete; the worker keeps running.",
  "5a": "Bounds hold: a bounded queue stores at most `maxMessages`, every publish beyond it fails at once with `QueueFullError`, and everything accepted is processed.",
  "5b": "A worker's memory does not grow with the backlog: it holds at most `concurrency` jobs while draining 500,000.",
  "6": "Time limits hold: `timeoutMs` aborts a handler and counts a failed attempt; `stop()` returns by its deadline and hands back a job whose handler ignores its signal; a healthy job longer than `ackWaitMs` is not redelivered.",
  "7": "Security: jetq works over TLS with credentials; forbidden operations fail fast with `PermissionError`; no password appears in an error, stack or log line.",
  "7b": "The per-role permissions of README \"Security\" are enough and minimal: each role does its whole job with exactly them and fails without any one.",
};

/** The promise a scenario's row backs ("" when none is listed). */
export function promiseOf(scenario: string): string {
  return PROMISES[/^(\d+[a-z]?)\b/.exec(scenario)?.[1] ?? ""] ?? "";
}

/** Versions and provenance printed at the head of docs/guarantees.md. */
export interface RunInfo {
  /** When the run ended. */
  date: Date;
  wallClockS: number;
  node: string;
  natsServer: string;
  jetqVersion: string;
  /** Commit of the code tested, with "(uncommitted changes)" when the tree was dirty. */
  commit: string;
  machine: string;
}

const cell = (s: string): string => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** docs/guarantees.md: what the latest full chaos run showed, row by row, and the promise each row backs. */
export function guaranteesMarkdown(rows: readonly ScenarioFigures[], info: RunInfo): string {
  const failed = rows.filter((r) => !r.ok).length;
  const rec = (r: ScenarioFigures): string => (r.recoveryMs === undefined ? "n/a" : `${(r.recoveryMs / 1000).toFixed(1)} s`);
  const n = (v: number): string => v.toLocaleString("en-US");
  return [
    "# jetq guarantees: the latest chaos run",
    "",
    "<!-- Written by `npm run test:chaos` (test/chaos/run.ts) after a full run; do not edit by hand. -->",
    "",
    "What [README \"Guarantees\"](../README.md#guarantees) promises, as the chaos suite measured it on real",
    "`nats-server` processes: workers killed with SIGKILL, the server killed and restarted on its store, a",
    "stream leader of a 3-node cluster killed, malformed input, overload, hung handlers, TLS and permissions.",
    "A scenario fails when anything acknowledged is lost or its own checks fail.",
    "",
    "| | |",
    "|:--|:--|",
    `| date | ${info.date.toISOString().replace(/\.\d{3}Z$/, "Z")} |`,
    `| result | ${rows.length} scenario rows, ${failed === 0 ? "all passed" : `**${failed} failed**`}, ${Math.round(info.wallClockS)} s wall clock |`,
    `| jetq | ${info.jetqVersion}, commit ${info.commit} |`,
    `| Node.js | ${info.node} |`,
    `| nats-server | ${info.natsServer} |`,
    `| machine | ${info.machine} |`,
    ...(failed === 0
      ? []
      : [
          "",
          `**This run failed ${failed} scenario${failed === 1 ? "" : "s"}.** A failed row backs nothing: its figures are what the`,
          "test saw when its checks failed (a worker that could not start shows its jobs as lost), and its note",
          "says what went wrong. Fix the cause and run `npm run test:chaos` again.",
        ]),
    "",
    "| scenario | published | acknowledged | completed | lost | duplicates | faults | recovery | result | promise this row backs |",
    "|:--|--:|--:|--:|--:|--:|--:|--:|:--|:--|",
    ...rows.map(
      (r) =>
        `| ${cell(r.scenario)} | ${n(r.published)} | ${n(r.acked)} | ${n(r.completed)} | ${n(r.lost)} | ${n(r.duplicates)} | ${n(r.faults)} | ${rec(r)} | ${r.ok ? "ok" : "**FAIL**"} | ${cell(promiseOf(r.scenario))} |`,
    ),
    "",
    "**Columns.** *published*: publishes attempted, malformed ones included; *acknowledged*: publishes the",
    "server confirmed (PubAck); *completed*: distinct jobs whose handler completed (for malformed input:",
    "that reached the dead-letter queue); *lost*: acknowledged jobs that never completed (must be 0);",
    "*duplicates*: extra completions of a job that had already completed — at-least-once redeliveries, the",
    "reason handlers must be idempotent; *faults*: faults injected (kills, restarts, malformed messages,",
    "rejected publishes, forbidden operations); *recovery*: the longest time to recover from a fault, as",
    "the scenario defines it (its note says how), n/a where no service is interrupted.",
    "",
    "## What each scenario measured",
    "",
    ...rows.flatMap((r) => [`- **${r.scenario}**: ${r.note}`]),
    "",
    "## What this does not show",
    "",
    "The suite kills processes; it does not cut power, crash the kernel or corrupt disks. A PubAck means the",
    "job reached the server's file store, not the disk (nats-server 2.9 flushes about every 60 s): see",
    "README \"Guarantees\", *Not promised*, for what that means and how to configure for power loss.",
    "",
  ].join("\n");
}

/** Deadline-bounded sleep used only to pace fault injection (never as synchronization). */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

/** Resident set size of this process in MiB. */
export function rssMiB(): number {
  return Math.round((process.memoryUsage().rss / 1048576) * 10) / 10;
}
