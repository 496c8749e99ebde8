// Shared pieces of the benchmark: the job payload, statistics, timing and small concurrency helpers.
import { z } from "zod";

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

const ACTIONS = ["send-welcome-email", "resize-avatar", "sync-crm-contact", "charge-invoice"] as const;

/**
 * The job every contender carries: about 200 bytes of JSON, built fresh per job (as an
 * application would) so encoding costs the same for everyone. `t` carries the publish time
 * for the latency runs.
 */
export function makeJob(n: number, t = 0): BenchJob {
  const id = String(n).padStart(8, "0");
  return {
    t,
    n,
    user: `user-${id}`,
    email: `user-${id}@example.com`,
    action: ACTIONS[n & 3]!,
    locale: "en-GB",
    plan: "pro",
    attrs: { source: "signup", campaign: "autumn-2026", ref: "a1b2c3d4e5" },
  };
}

export interface BenchJob {
  t: number;
  n: number;
  user: string;
  email: string;
  action: string;
  locale: string;
  plan: string;
  attrs: { source: string; campaign: string; ref: string };
}

/** The zod schema of {@link BenchJob}, for the "schema validation" extra. */
export const benchJobSchema = z.object({
  t: z.number(),
  n: z.number().int().nonnegative(),
  user: z.string().min(1),
  email: z.email(),
  action: z.enum(ACTIONS),
  locale: z.string(),
  plan: z.enum(["free", "pro", "team"]),
  attrs: z.object({ source: z.string(), campaign: z.string(), ref: z.string() }),
});

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Percentile (0-100) of a sorted array, nearest-rank. */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Fixed-capacity sample recorder: never grows past its capacity (later samples are dropped and counted). */
export class Samples {
  readonly #buf: Float64Array;
  #n = 0;
  dropped = 0;
  constructor(capacity: number) {
    this.#buf = new Float64Array(Math.max(1, capacity));
  }
  add(v: number): void {
    if (this.#n < this.#buf.length) this.#buf[this.#n++] = v;
    else this.dropped++;
  }
  get count(): number {
    return this.#n;
  }
  summary(): { count: number; p50: number; p99: number; max: number } {
    const s = this.#buf.slice(0, this.#n).sort();
    return { count: this.#n, p50: percentileSorted(s, 50), p99: percentileSorted(s, 99), max: this.#n ? s[this.#n - 1]! : Number.NaN };
  }
}

/** Runs `body(i)` for i in [0, n) with at most `concurrency` calls in flight. */
export async function forEachConcurrent(n: number, concurrency: number, body: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) await body(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, lane));
}

/** A counting semaphore for "at most N handlers at once". */
export class Slots {
  #free: number;
  #waiter: (() => void) | undefined;
  constructor(n: number) {
    this.#free = n;
  }
  /** Resolves when a slot is free (only one waiter at a time: the single pull loop). */
  take(): Promise<void> | undefined {
    if (this.#free > 0) {
      this.#free--;
      return undefined;
    }
    return new Promise<void>((resolve) => {
      this.#waiter = () => {
        this.#free--;
        resolve();
      };
    });
  }
  give(): void {
    this.#free++;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function mib(bytes: number): number {
  return Math.round((bytes / 1048576) * 10) / 10;
}
