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
 * @internal Checks a spec (with `checkCron`, the cron expression and time zone through croner:
 * a stored spec, already checked, skips that, and {@link Ticks} builds its cron once).
 * @throws {@link ConfigError} naming the field and the value.
 */
export function resolveSpec(spec: unknown, checkCron = true): ResolvedSpec {
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
    if (checkCron && tz !== undefined) {
      try {
        new Intl.DateTimeFormat("en-US", { timeZone: tz });
      } catch {
        throw new ConfigError(`Expected \`tz\` to be an IANA time zone such as "Europe/Berlin", got ${describe(tz)}`);
      }
    }
    if (checkCron) {
      try {
        new Cron(cron, { paused: true, ...(tz !== undefined ? { timezone: tz } : {}) });
      } catch (err) {
        throw new ConfigError(`Expected \`cron\` to be a cron expression such as "0 3 * * *", got ${describe(cron)}: ${(err as Error).message}`, { cause: err });
      }
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

/**
 * croner `Cron`s kept for reuse, by expression and time zone. A `Cron` takes about 0.7 ms to build,
 * so a process holding many schedules keeps the most recently used ones, not one per schedule.
 */
const CRON_CACHE = 64;
const crons = new Map<string, Cron>();

/**
 * croner 11 gives every pattern a 10,000-entry table of years (82 KiB of a `Cron`'s 84), and reads
 * it only for a pattern that names years (its `starYear` flag false; jetq's 5-field crons never
 * do). A `Cron` whose table is all years gets this shared one instead: 1,000 schedules of distinct
 * expressions took a worker from 71 to 192 MiB RSS while their next ticks were computed.
 */
const EVERY_YEAR: number[] = new Array<number>(10_000).fill(1);

/** Swaps a pattern's own all-years table for {@link EVERY_YEAR}; leaves anything of another shape alone. */
function shareYears(c: Cron): void {
  const p = (c as unknown as { _states?: { pattern?: { starYear?: unknown; year?: unknown } } })._states?.pattern;
  if (p?.starYear === true && Array.isArray(p.year) && p.year.length === EVERY_YEAR.length) p.year = EVERY_YEAR;
}

/** @internal The `Cron` of an expression in a time zone, from a small LRU cache. */
export function cronFor(cron: string, tz: string | undefined): Cron {
  const key = `${tz ?? ""} ${cron}`;
  let c = crons.get(key);
  if (c) {
    crons.delete(key); // most recently used last
  } else {
    c = new Cron(cron, { paused: true, ...(tz !== undefined ? { timezone: tz } : {}) });
    shareYears(c);
    if (crons.size >= CRON_CACHE) crons.delete(crons.keys().next().value!);
  }
  crons.set(key, c);
  return c;
}

/** @internal A spec's tick computation, through croner for a cron spec. */
export class Ticks {
  readonly spec: ResolvedSpec;

  /** @throws the cron expression or time zone is not croner's (a stored spec written by hand). */
  constructor(spec: ResolvedSpec) {
    this.spec = spec;
    if (spec.cron !== undefined) cronFor(spec.cron, spec.tz);
  }

  get #cron(): Cron | undefined {
    return this.spec.cron === undefined ? undefined : cronFor(this.spec.cron, this.spec.tz);
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
   * The latest tick in (`after`, `now`], and whether more than one tick fell in that span;
   * `undefined` when none is due. Constant work however many ticks were missed.
   */
  latestDue(after: number, now: number): { tick: number; several: boolean } | undefined {
    const first = this.after(after);
    if (first === undefined || first > now) return undefined;
    const { endAt } = this.spec;
    const until = endAt !== undefined && endAt < now ? endAt : now;
    let last = first;
    if (this.spec.everyMs !== undefined) {
      const every = this.spec.everyMs;
      last = first + Math.floor((until - first) / every) * every;
    } else {
      // croner counts a run in the reference's own second as previous: ask from just past `until`
      // and drop anything after it.
      for (const d of this.#cron!.previousRuns(2, new Date(until + 1))) {
        const t = d.getTime();
        if (t <= until) {
          last = Math.max(first, t);
          break;
        }
      }
    }
    return { tick: last, several: last > first };
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
