/**
 * The demo's display: live bars redrawn in place on a terminal, plain periodic lines otherwise
 * (CI logs, pipes, tests). Events (a worker killed, its jobs finished elsewhere) are printed
 * above the bars so they stay in the scrollback.
 */

export interface Progress {
  total: number;
  published: number;
  waiting: number;
  /** Handlers running on the live workers. */
  inFlight: number;
  /** Jobs the server counts as delivered but not acked beyond those: waiting out a retry backoff or ackWait. */
  awaiting: number;
  slots: number;
  completed: number;
  retried: number;
  deadLettered: number;
  workers: Array<{ label: string; state: "starting" | "running" | "killed" | "stopped"; done: number; running: number }>;
  elapsedMs: number;
}

const useColor = (): boolean => process.stdout.isTTY === true && !process.env.NO_COLOR;
const paint = (code: string) => (s: string): string => (useColor() ? `\x1b[${code}m${s}\x1b[0m` : s);
export const green = paint("32");
export const red = paint("31");
export const yellow = paint("33");
export const cyan = paint("36");
export const bold = paint("1");
export const dim = paint("2");

function bar(value: number, max: number, width: number, color: (s: string) => string): string {
  const f = max > 0 ? Math.max(0, Math.min(1, value / max)) : 0;
  const full = Math.round(f * width);
  return color("█".repeat(full)) + dim("░".repeat(width - full));
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;

export class Display {
  readonly tty: boolean;
  #drawn = 0;
  #lastLine = 0;

  constructor(tty = process.stdout.isTTY === true) {
    this.tty = tty;
  }

  /** Prints a line that stays (above the bars on a terminal). */
  event(text: string): void {
    if (this.tty) this.#erase();
    process.stdout.write(`${text}\n`);
  }

  /** Redraws the bars (terminal), or prints a status line at most once a second (otherwise). */
  progress(p: Progress, force = false): void {
    if (!this.tty) {
      if (!force && p.elapsedMs - this.#lastLine < 1000) return;
      this.#lastLine = p.elapsedMs;
      const workers = p.workers.map((w) => `${w.label}:${w.state === "killed" ? "killed" : w.done}`).join(" ");
      process.stdout.write(
        `[${secs(p.elapsedMs).padStart(6)}] published ${p.published}/${p.total}  in flight ${p.inFlight}  completed ${p.completed}  ` +
          `retried ${p.retried}  dead-lettered ${p.deadLettered}  (${workers})\n`,
      );
      return;
    }
    const w = Math.max(10, Math.min(40, (process.stdout.columns ?? 100) - 60));
    const num = (n: number): string => String(n).padStart(String(p.total).length);
    const finished = p.completed + p.deadLettered;
    const rate = p.elapsedMs > 0 ? Math.round(finished / (p.elapsedMs / 1000)) : 0;
    const lines = [
      `  published      ${bar(p.published, p.total, w, cyan)} ${num(p.published)}/${p.total}  ${dim(`${p.waiting} waiting`)}`,
      `  in flight      ${bar(p.inFlight, p.slots, w, yellow)} ${num(p.inFlight)}  ${dim(`of ${p.slots} handler slots; ${p.awaiting} more awaiting a retry or redelivery`)}`,
      `  completed      ${bar(p.completed, p.total, w, green)} ${num(p.completed)}`,
      `  retried        ${bar(p.retried, p.total, w, yellow)} ${num(p.retried)}  ${dim("failed attempts sent back with backoff")}`,
      `  dead-lettered  ${bar(p.deadLettered, p.total, w, red)} ${num(p.deadLettered)}`,
      `  workers        ${p.workers.map((x) => `${x.label} ${workerMark(x.state)} ${x.state === "killed" ? red("killed") : `${x.done}`}`).join("   ")}`,
      `  ${dim(`elapsed ${secs(p.elapsedMs)}   ${rate} jobs/s finished`)}`,
    ];
    this.#erase();
    process.stdout.write(`${lines.join("\n")}\n`);
    this.#drawn = lines.length;
  }

  /** Leaves the last bars on screen (stops redrawing over them). */
  freeze(): void {
    this.#drawn = 0;
  }

  #erase(): void {
    if (this.#drawn > 0) process.stdout.write(`\x1b[${this.#drawn}A\x1b[J`);
    this.#drawn = 0;
  }
}

function workerMark(state: string): string {
  if (state === "running") return green("●");
  if (state === "killed") return red("✖");
  return dim("○");
}
