import { Cron } from "croner";
import { ConfigError } from "../errors.ts";
import { describe } from "../queue/define.ts";

/** When a repeatable job's ticks fall: a cron expression (in a time zone) or a fixed period. */
export type ScheduleSpec = ({ cron: string; tz?: string } | { everyMs: number }) & {
  /** No tick before this time. With `everyMs`, ticks are `startAt + k × everyMs`. @default none (with `everyMs`, ticks fall on multiples of `everyMs` since the epoch) */
  startAt?: Date | number;
  /** No tick after this time. @default none */
  endAt?: Date | number;
  /** Jobs to run in all; the schedule stops after this many. @default unlimited */
  limit?: number;
  /**
   * Ticks that passed while no process ran the schedule: `"once"` runs one catch-up job (for the
   * latest missed tick), `"skip"` runs none and waits for the next tick. @default "once"
   */
  missed?: "skip" | "once";
};

/** @internal A {@link ScheduleSpec} checked, with times as epoch ms. */
export interface ResolvedSpec {
  readonly cron: string | undefined;
  readonly tz: string | undefined;
  readonly everyMs: number | undefined;
  readonly startAt: number | undefined;
  readonly endAt: number | undefined;
  readonly limit: number | undefined;
  readonly missed: "skip" | "once";
}

const NAME_RE = /^[A-Za-z0-9_-]{1,128}$/;
/** Longest walk through cron ticks in one computation (a minutely cron missed for ~70 days). */
const MAX_STEPS = 100_000;

/** @internal Checks a schedule name: one subject token. */
export function checkScheduleName(name: unknown): string {
  if (typeof name !== "string" || !NAME_RE.test(name)) {
    throw new ConfigError(`Expected the schedule \`name\` to be 1-128 letters, digits, "-" or "_", got ${describe(name)}`);
  }
  return name;
}

function time(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const t = v instanceof Date ? v.getTime() : v;
  if (typeof t !== "number" || !Number.isFinite(t) || t < 0) throw new ConfigError(`Expected \`${name}\` to be a valid Date or epoch milliseconds, got ${describe(v instanceof Date ? String(v) : v)}`);
  return Math.ceil(t);
}

/**
 * @internal Checks a spec (the cron expression and time zone through croner).
 * @throws {@link ConfigError} naming the field and the value.
 */
export function resolveSpec(spec: unknown): ResolvedSpec {
  if (typeof spec !== "object" || spec === null) throw new ConfigError(`Expected the schedule spec to be { cron, tz? } or { everyMs }, got ${describe(spec)}`);
  const s = spec as Record<string, unknown>;
  const hasCron = s.cron !== undefined;
  const hasEvery = s.everyMs !== undefined;
  if (hasCron === hasEvery) throw new ConfigError(`Expected the schedule spec to have exactly one of \`cron\` and \`everyMs\`, got ${describe(spec)}`);
  let cron: string | undefined;
  let tz: string | undefined;
  let everyMs: number | undefined;
  if (hasCron) {
    if (typeof s.cron !== "string") throw new ConfigError(`Expected \`cron\` to be a cron expression such as "0 3 * * *", got ${describe(s.cron)}`);
    if (s.tz !== undefined && typeof s.tz !== "string") throw new ConfigError(`Expected \`tz\` to be an IANA time zone such as "Europe/Berlin", got ${describe(s.tz)}`);
    cron = s.cron;
    tz = s.tz as string | undefined;
    if (tz !== undefined) {
      try {
        new Intl.DateTimeFormat("en-US", { timeZone: tz });
      } catch {
        throw new ConfigError(`Expected \`tz\` to be an IANA time zone such as "Europe/Berlin", got ${describe(tz)}`);
      }
    }
    try {
      new Cron(cron, { paused: true, ...(tz !== undefined ? { timezone: tz } : {}) });
    } catch (err) {
      throw new ConfigError(`Expected \`cron\` to be a cron expression such as "0 3 * * *", got ${describe(cron)}: ${(err as Error).message}`, { cause: err });
    }
  } else {
    if (s.tz !== undefined) throw new ConfigError("`tz` applies to `cron` only, not to `everyMs`");
    const e = s.everyMs;
    if (typeof e !== "number" || !Number.isInteger(e) || e < 100 || e > 366 * 24 * 3600 * 1000) {
      throw new ConfigError(`Expected \`everyMs\` to be an integer number of milliseconds from 100 to one year, got ${describe(e)}`);
    }
    everyMs = e;
  }
  const startAt = time("startAt", s.startAt);
  const endAt = time("endAt", s.endAt);
  if (startAt !== undefined && endAt !== undefined && endAt < startAt) throw new ConfigError(`Expected \`endAt\` not to be before \`startAt\``);
  let limit: number | undefined;
  if (s.limit !== undefined) {
    if (typeof s.limit !== "number" || !Number.isInteger(s.limit) || s.limit < 1) throw new ConfigError(`Expected \`limit\` to be a positive integer (jobs in all), got ${describe(s.limit)}`);
    limit = s.limit;
  }
  const missed = s.missed ?? "once";
  if (missed !== "skip" && missed !== "once") throw new ConfigError(`Expected \`missed\` to be "skip" or "once", got ${describe(missed)}`);
  return { cron, tz, everyMs, startAt, endAt, limit, missed };
}

/** @internal The spec as stored and shown (times as epoch ms, defaults filled in). */
export function specRecord(r: ResolvedSpec): ScheduleSpec {
  const base = r.cron !== undefined ? { cron: r.cron, ...(r.tz !== undefined ? { tz: r.tz } : {}) } : { everyMs: r.everyMs! };
  return {
    ...base,
    ...(r.startAt !== undefined ? { startAt: r.startAt } : {}),
    ...(r.endAt !== undefined ? { endAt: r.endAt } : {}),
    ...(r.limit !== undefined ? { limit: r.limit } : {}),
    missed: r.missed,
  };
}

/** @internal A spec's tick computation; croner's `Cron` is built once per spec. */
export class Ticks {
  readonly spec: ResolvedSpec;
  readonly #cron: Cron | undefined;

  constructor(spec: ResolvedSpec) {
    this.spec = spec;
    this.#cron = spec.cron === undefined ? undefined : new Cron(spec.cron, { paused: true, ...(spec.tz !== undefined ? { timezone: spec.tz } : {}) });
  }

  /** The first tick strictly after `after` (epoch ms), within startAt/endAt; `undefined` when there is none. */
  after(after: number): number | undefined {
    const { startAt, endAt } = this.spec;
    const from = startAt !== undefined && after < startAt ? startAt - 1 : after;
    let t: number | undefined;
    if (this.#cron) {
      // croner's resolution is a second: a tick at `from` itself is not "after" it.
      const next = this.#cron.nextRun(new Date(from));
      t = next?.getTime();
    } else {
      const every = this.spec.everyMs!;
      const anchor = startAt ?? 0;
      t = anchor + (Math.floor((from - anchor) / every) + 1) * every;
    }
    if (t === undefined || (endAt !== undefined && t > endAt)) return undefined;
    return t;
  }

  /**
   * The latest tick in (`after`, `now`], and how many ticks fell in that span (capped at
   * {@link MAX_STEPS} for cron); `undefined` when none is due.
   */
  latestDue(after: number, now: number): { tick: number; count: number } | undefined {
    const first = this.after(after);
    if (first === undefined || first > now) return undefined;
    if (this.spec.everyMs !== undefined) {
      const every = this.spec.everyMs;
      let last = first + Math.floor((now - first) / every) * every;
      const { endAt } = this.spec;
      if (endAt !== undefined && last > endAt) last = first + Math.floor((endAt - first) / every) * every;
      return { tick: last, count: (last - first) / every + 1 };
    }
    let tick = first;
    let count = 1;
    for (let i = 0; i < MAX_STEPS; i++) {
      const next = this.after(tick);
      if (next === undefined || next > now) break;
      tick = next;
      count++;
    }
    return { tick, count };
  }
}

/** @internal Headers of a tick's job. */
export const TICK = { schedule: "Jetq-Schedule", tick: "Jetq-Tick" } as const;

/** @internal `job.schedule` from a job's headers. */
export function scheduleOf(h: { get(k: string): string } | undefined): { name: string; tick: Date } | undefined {
  const name = h?.get(TICK.schedule);
  if (!name) return undefined;
  const tick = new Date(h!.get(TICK.tick));
  return Number.isNaN(tick.getTime()) ? undefined : { name, tick };
}

/** @internal The default id template of a tick's job. */
export const DEFAULT_ID_TEMPLATE = "sched:{name}:{tick}";

/**
 * @internal The deterministic id of a tick's job: the template (default `sched:{name}:{tick}`)
 * with `{name}` replaced by the schedule's name and `{tick}` by the tick's ISO time.
 */
export function tickJobId(name: string, tick: number, template = DEFAULT_ID_TEMPLATE): string {
  const iso = new Date(tick).toISOString();
  return template.replaceAll("{name}", name).replaceAll("{tick}", iso);
}

/**
 * @internal Checks a schedule's id template: it must contain `{tick}` (one id per tick, else the
 * duplicate window would drop the ticks after the first), and every id it makes must be a valid
 * job id (1-256 printable ASCII characters; an ISO time always has 24).
 * @throws {@link ConfigError} naming `id` and the value.
 */
export function checkIdTemplate(template: unknown, name: string): string {
  if (typeof template !== "string" || !template.includes("{tick}")) {
    throw new ConfigError(`Expected the schedule option \`id\` to be a template containing "{tick}" (and optionally "{name}"), such as "report-{tick}", got ${describe(template)}`);
  }
  const sample = tickJobId(name, Date.UTC(2000, 0, 1), template);
  if (!/^[\x21-\x7e]{1,256}$/.test(sample)) {
    throw new ConfigError(`Expected the schedule option \`id\` to make ids of 1-256 printable ASCII characters without spaces, got ${describe(template)} (for example ${describe(sample)})`);
  }
  return template;
}
