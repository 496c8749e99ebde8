import { ConfigError } from "../errors.ts";

/**
 * Exponential backoff between attempts: `initialMs * multiplier^(attempt-1)`,
 * capped at `maxMs`, then spread by ±`jitter` (a fraction) so that jobs that
 * failed together do not retry together.
 */
export interface ExponentialBackoff {
  /** Delay before the second attempt. @default 1000 */
  initialMs?: number;
  /** Upper bound of any delay, jitter included. @default 60000 */
  maxMs?: number;
  /** Growth factor per attempt. @default 2 */
  multiplier?: number;
  /** Random spread as a fraction of the delay, 0 to 1. @default 0.2 */
  jitter?: number;
}

/**
 * Computes the delay before the next attempt. `attempt` is the attempt that just failed (1-based),
 * `error` what it failed with. Must return a number of milliseconds from 0 to 7 days; anything
 * else (or a throw) is reported and the default exponential policy is used for that retry.
 */
export type BackoffFunction = (attempt: number, error: Error) => number;

/**
 * Retry delays: an exponential policy, an explicit list of delays in
 * milliseconds (the last one repeats for later attempts), or a function.
 */
export type BackoffOptions = ExponentialBackoff | readonly number[] | BackoffFunction;

/** A validated backoff policy, with every default filled in: a queue's `backoff`. */
export type ResolvedBackoff =
  | { kind: "exponential"; initialMs: number; maxMs: number; multiplier: number; jitter: number }
  | { kind: "fixed"; delays: readonly number[] }
  | { kind: "function"; fn: BackoffFunction };

/** @internal The longest delay any backoff may ask for. */
export const MAX_DELAY_MS = 7 * 24 * 3600 * 1000;

function checkDelay(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > MAX_DELAY_MS) {
    throw new ConfigError(
      `Expected \`${name}\` to be a number of milliseconds between 0 and ${MAX_DELAY_MS}, got ${String(v)}`,
    );
  }
  return v;
}

/** Validates a backoff option and fills in defaults. */
export function resolveBackoff(opts: BackoffOptions | undefined): ResolvedBackoff {
  if (typeof opts === "function") return { kind: "function", fn: opts as BackoffFunction };
  if (Array.isArray(opts)) {
    if (opts.length === 0) throw new ConfigError("Expected `backoff` to list at least one delay, got []");
    // An index loop, not map(): map() skips the holes of a sparse array ([1000, , 5000]).
    const delays: number[] = [];
    for (let i = 0; i < opts.length; i++) delays.push(checkDelay(`backoff[${i}]`, (opts as readonly unknown[])[i]));
    return { kind: "fixed", delays };
  }
  if (opts !== undefined && (typeof opts !== "object" || opts === null)) {
    throw new ConfigError(`Expected \`backoff\` to be an object or an array of delays, got ${String(opts)}`);
  }
  const o = (opts ?? {}) as ExponentialBackoff;
  const initialMs = checkDelay("backoff.initialMs", o.initialMs ?? 1000);
  const maxMs = checkDelay("backoff.maxMs", o.maxMs ?? 60_000);
  const multiplier = o.multiplier ?? 2;
  const jitter = o.jitter ?? 0.2;
  if (typeof multiplier !== "number" || !Number.isFinite(multiplier) || multiplier < 1 || multiplier > 100) {
    throw new ConfigError(`Expected \`backoff.multiplier\` to be a number from 1 to 100, got ${String(multiplier)}`);
  }
  if (typeof jitter !== "number" || !Number.isFinite(jitter) || jitter < 0 || jitter > 1) {
    throw new ConfigError(`Expected \`backoff.jitter\` to be a fraction from 0 to 1, got ${String(jitter)}`);
  }
  if (maxMs < initialMs) {
    throw new ConfigError(`Expected \`backoff.maxMs\` (${maxMs}) to be at least \`backoff.initialMs\` (${initialMs})`);
  }
  return { kind: "exponential", initialMs, maxMs, multiplier, jitter };
}

/** @internal The policy used when no backoff is given, and for a backoff function that failed. */
export const DEFAULT_BACKOFF: ResolvedBackoff = resolveBackoff(undefined);

/**
 * The delay before the attempt after `attempt` (1-based: `attempt` is the one
 * that just failed). `random` is injectable for tests; it returns [0, 1).
 * @throws {ConfigError} a backoff function threw or returned something that is not a delay.
 */
export function backoffDelay(
  policy: ResolvedBackoff,
  attempt: number,
  random: () => number = Math.random,
  error: Error = new Error("unknown"),
): number {
  const n = Math.max(1, Math.floor(attempt));
  if (policy.kind === "function") {
    let v: unknown;
    try {
      v = policy.fn(n, error);
    } catch (err) {
      throw new ConfigError(`the \`backoff\` function threw for attempt ${n}`, { cause: err });
    }
    return Math.round(checkDelay(`backoff(${n}, error)`, v));
  }
  if (policy.kind === "fixed") {
    return policy.delays[Math.min(n, policy.delays.length) - 1] ?? 0;
  }
  // initialMs 0 would make 0 × Infinity = NaN once multiplier^(n-1) overflows.
  const base = policy.initialMs === 0 ? 0 : Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** (n - 1));
  const spread = base * policy.jitter * (2 * random() - 1);
  return Math.round(Math.min(policy.maxMs, Math.max(0, base + spread)));
}
