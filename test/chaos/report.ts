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
