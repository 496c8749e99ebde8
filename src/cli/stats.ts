import { Command } from "commander";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { ConnectionError, QueueNotFoundError, TimeoutError } from "../errors.ts";
import { mapNatsError } from "../natserr.ts";
import { defineQueue, type Queue } from "../queue/define.ts";
import { groupNames } from "../flow/group.ts";
import { rateNames, windowOfMaxAge } from "../flow/rate.ts";
import { limitsFromDescription } from "../queue/provision.ts";
import { listQueues } from "../queue/list.ts";
import { type QueueStats, type QueueTotals, ratesBetween, readQueueSample } from "../telemetry/stats.ts";
import { cliJsOptions, loadQueue } from "./connect.ts";
import { UsageError } from "./exit.ts";
import { globals, note, print, stdoutIsTTY, withNats } from "./context.ts";
import { formatBytes, formatDuration, formatLimit, parseDuration, parseInteger, safeText, table } from "./format.ts";

/** One sample of one queue: the stats plus what the CLI derives from the stream. */
export interface StatsSample extends QueueStats {
  /** When the sample was taken (ISO 8601). */
  at: string;
  /** Jobs ever published to the queue (the stream's last sequence). */
  published: number;
  /** Consumer settings read from the server. */
  maxAttempts: number;
  ackWaitMs: number;
  /** Jobs published per second since the previous sample (watch mode only). */
  publishedPerSec?: number;
  /** Jobs completed (a handler resolved and the job was acked) per second since the previous sample (watch mode only). */
  completedPerSec?: number;
  /** Jobs moved to the dead-letter queue per second since the previous sample (watch mode only). */
  deadLetteredPerSec?: number;
}

/** @internal A sample with the totals its rates are computed from (not printed). */
export interface Sampled {
  sample: StatsSample;
  totals: QueueTotals;
}

async function sample(nc: NatsConnection, name: string): Promise<Sampled> {
  const { queue: plain, stream, consumer } = await loadQueue(nc, name);
  let jsm;
  try {
    jsm = await jetstreamManager(nc, cliJsOptions());
  } catch (err) {
    throw mapNatsError(err, `read stats of queue "${name}"`);
  }
  const queue = await withFlowControl(jsm, plain, stream.config.subjects ?? []);
  const { stats, totals } = await readQueueSample(jsm, queue);
  return {
    sample: {
      at: new Date(totals.t).toISOString(),
      ...stats,
      published: totals.published,
      // jetq 0.2+ records its limits in the consumer's description; 0.1 used max_deliver.
      maxAttempts: limitsFromDescription(consumer.config.description)?.maxAttempts ?? consumer.config.max_deliver ?? -1,
      ackWaitMs: Math.round((consumer.config.ack_wait ?? 0) / 1e6),
    },
    totals,
  };
}

/**
 * @internal The CLI knows a queue by name only: its priority levels are read from the stream's subjects
 * (`jetq.q.<q>.p.<level>`), its group concurrency from the group limiter stream, if any.
 */
export async function withFlowControl(jsm: JetStreamManager, queue: Queue<unknown, unknown>, subjects: string[]): Promise<Queue<unknown, unknown>> {
  const levels = subjects.filter((x) => x.startsWith(`${queue.names.subject}.p.`)).length;
  let concurrency: number | undefined;
  try {
    concurrency = (await jsm.streams.info(groupNames(queue).concurrency)).config.max_msgs_per_subject;
  } catch {
    // no group limits
  }
  let rate: { max: number; perMs: number } | undefined;
  try {
    const c = (await jsm.streams.info(rateNames(queue).stream)).config;
    // max_age is the window plus the grace (graceMs): the window is what the stats need least.
    rate = { max: c.max_msgs, perMs: windowOfMaxAge(c.max_age / 1e6) };
  } catch {
    // no rate limit
  }
  if (levels === 0 && concurrency === undefined && rate === undefined) return queue;
  try {
    return defineQueue({
      name: queue.name,
      scheduling: queue.scheduling,
      ...(rate !== undefined && rate.max > 0 ? { rateLimit: rate } : {}),
      ...(levels > 0 ? { priorities: levels + 1 } : {}),
      ...(concurrency !== undefined && concurrency > 0 ? { group: { concurrency } } : {}),
    });
  } catch {
    // Limits jetq would not define (changed by hand): the figures without them.
    return queue;
  }
}

/** @internal Adds the rates since `prev`, by the formula the dashboard uses ({@link ratesBetween}). */
export function withRates(cur: Sampled, prev: Sampled | undefined): StatsSample {
  if (!prev || !(cur.totals.t > prev.totals.t)) return cur.sample;
  const r = ratesBetween(prev.totals, cur.totals);
  return { ...cur.sample, publishedPerSec: r.published, completedPerSec: r.completed, deadLetteredPerSec: r.failed };
}

function renderOne(s: StatsSample): string {
  const rate = (r: number | undefined): string => (r === undefined ? "" : `${r.toFixed(1)}/s`);
  const rows: string[][] = [
    ["pending", String(s.pending), "jobs waiting for a worker"],
    ["in flight", String(s.inFlight), `delivered, not yet acked (max ${s.maxAckPending})`],
    ["redelivered", String(s.redelivered), "in flight on a second or later attempt"],
    ["dead letters", String(s.deadLetters), s.deadLetters > 0 ? `inspect: jetq dlq list ${s.queue}` : ""],
    ["stored", String(s.stored), `${formatBytes(s.bytes)}; bound ${formatLimit(s.maxMessages)}`],
    ["published", String(s.published), "since the queue was created"],
    ["waiting pulls", String(s.waitingPulls), "idle worker pull requests"],
  ];
  if (s.publishedPerSec !== undefined) {
    rows.splice(
      6,
      0,
      ["published/s", rate(s.publishedPerSec), "since the previous sample"],
      ["completed/s", rate(s.completedPerSec), "handled and acked"],
      ["dead-lettered/s", rate(s.deadLetteredPerSec), "moved to the dead-letter queue"],
    );
  }
  if (s.priorityPending) {
    s.priorityPending.forEach((n, l) => rows.splice(1 + l, 0, [`  priority ${l}`, String(n), l === 0 ? "waiting, most urgent level" : l === s.priorityPending!.length - 1 ? "waiting, least urgent (default) level" : "waiting"]));
  }
  if (s.rateWindow) {
    rows.push(["rate window", `${s.rateWindow.used}/${s.rateWindow.max}`, s.rateWindow.waiting > 0 ? `full: ${s.rateWindow.waiting} jobs wait for it` : "job starts in the current window"]);
  }
  if (s.busiestGroups && s.busiestGroups.length > 0) {
    rows.push(["busiest groups", "", s.busiestGroups.map((b) => `${JSON.stringify(b.group)} ${b.running}`).join(", ")]);
  }
  if (s.groupWaiting !== undefined) rows.push(["group waiting", String(s.groupWaiting), "handed back by a group limit, not started since"]);
  if (s.paused) {
    const until = s.pausedUntilMs === undefined ? "until `jetq resume`" : `until ${new Date(s.pausedUntilMs).toISOString()}`;
    rows.unshift(["paused", "yes", `workers start no jobs ${until}`]);
  }
  const head = `queue ${s.queue}   max attempts ${s.maxAttempts}, ack wait ${formatDuration(s.ackWaitMs)}   ${s.at}`;
  return `${head}\n${table(["", "", ""], rows, new Set([1])).split("\n").slice(1).join("\n")}`;
}

/** One line per sample without a terminal: `name=value` pairs, named as in `--json`. */
function renderLine(s: StatsSample): string {
  const rates =
    s.publishedPerSec === undefined
      ? ""
      : ` publishedPerSec=${s.publishedPerSec.toFixed(1)} completedPerSec=${(s.completedPerSec ?? 0).toFixed(1)} deadLetteredPerSec=${(s.deadLetteredPerSec ?? 0).toFixed(1)}`;
  return `${s.at} queue=${s.queue} pending=${s.pending} inFlight=${s.inFlight} redelivered=${s.redelivered} deadLetters=${s.deadLetters} stored=${s.stored}${s.paused ? " paused=true" : ""}${rates}`;
}

function renderMany(samples: StatsSample[], watching = false): string {
  if (samples.length === 0) return "No jetq queues on this server yet. Create one with: jetq provision <queue>";
  const rate = (r: number | undefined): string => (r === undefined ? "…" : r.toFixed(1));
  const header = ["QUEUE", "PENDING", "IN FLIGHT", "REDELIVERED", "DEAD LETTERS", "STORED", "BYTES"];
  if (watching) header.push("PUBLISHED/S", "COMPLETED/S", "DEAD-LETTERED/S");
  return table(
    header,
    samples.map((s) => {
      const row = [s.queue, String(s.pending), String(s.inFlight), String(s.redelivered), String(s.deadLetters), String(s.stored), formatBytes(s.bytes)];
      if (watching) row.push(rate(s.publishedPerSec), rate(s.completedPerSec), rate(s.deadLetteredPerSec));
      return row;
    }),
    new Set(watching ? [1, 2, 3, 4, 5, 6, 7, 8, 9] : [1, 2, 3, 4, 5, 6]),
  );
}

/**
 * Every queue, each with its rates since `prev` (the previous round, by queue name; replaced by
 * this round's samples, so it holds one entry per queue that still exists).
 */
async function sampleAllWithRates(nc: NatsConnection, prev: Map<string, Sampled>): Promise<StatsSample[]> {
  const cur = await sampleAllRaw(nc);
  const out = cur.map((c) => withRates(c, prev.get(c.sample.queue)));
  prev.clear();
  for (const c of cur) prev.set(c.sample.queue, c);
  return out;
}

async function sampleAll(nc: NatsConnection): Promise<StatsSample[]> {
  return (await sampleAllRaw(nc)).map((c) => c.sample);
}

async function sampleAllRaw(nc: NatsConnection): Promise<Sampled[]> {
  let jsm;
  try {
    jsm = await jetstreamManager(nc, cliJsOptions());
  } catch (err) {
    throw mapNatsError(err, "list queues");
  }
  const names = await listQueues(nc, { jsm });
  const out: Sampled[] = [];
  // One queue at a time: a server with many queues gets a steady trickle of requests, not a burst.
  for (const name of names) {
    try {
      out.push(await sample(nc, name));
    } catch (err) {
      // Deleted since the listing, or half-provisioned right now: not a reason to fail the rest.
      if (!(err instanceof QueueNotFoundError)) throw err;
    }
  }
  return out;
}

interface StatsFlags {
  watch?: boolean;
  interval: string;
  count?: string;
}

export function statsCommand(): Command {
  return new Command("stats")
    .description("show a queue's figures (pending, in flight, redelivered, dead letters), or all queues without a name")
    .argument("[queue]", "queue name; omit to list every jetq queue on the server")
    .option("-w, --watch", "refresh until interrupted (Ctrl-C)")
    .option("--interval <duration>", "refresh interval with --watch", "2s")
    .option("--count <n>", "with --watch: stop after this many samples")
    .addHelpText(
      "after",
      `
With --json, prints one JSON object (an array without a queue name); with --watch --json,
one JSON object per line per sample (NDJSON). With --watch, from the second sample on, each
queue also has publishedPerSec, completedPerSec and deadLetteredPerSec (since the previous sample).`,
    )
    .action(async (name: string | undefined, flags: StatsFlags, cmd: Command) => {
      const g = globals(cmd);
      const intervalMs = parseDuration(flags.interval, "--interval");
      if (intervalMs < 100) throw new UsageError("--interval must be at least 100ms");
      const count = flags.count === undefined ? Infinity : parseInteger(flags.count, "--count", 1);
      if (name !== undefined) defineQueue({ name });
      await withNats(g, async (nc) => {
        if (!flags.watch) {
          if (name === undefined) {
            const all = await sampleAll(nc);
            if (g.json) print(JSON.stringify(all, null, 2));
            else print(renderMany(all));
          } else {
            const s = (await sample(nc, name)).sample;
            if (g.json) print(JSON.stringify(s, null, 2));
            else print(renderOne(s));
          }
          return;
        }
        const stop = new AbortController();
        const onSignal = (): void => stop.abort();
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        const tty = stdoutIsTTY() && !g.json;
        const link = { up: true };
        followStatus(nc, link);
        let prev: Sampled | undefined;
        const prevAll = new Map<string, Sampled>();
        try {
          for (let i = 0; i < count && !stop.signal.aborted; i++) {
            if (i > 0 && !(await nextSample(link, intervalMs, stop.signal))) continue;
            try {
              if (name === undefined) {
                const all = await sampleAllWithRates(nc, prevAll);
                if (g.json) print(JSON.stringify({ at: new Date().toISOString(), queues: all }));
                else if (tty) process.stdout.write(`\x1b[2J\x1b[H${safeText(renderMany(all, true))}\n\n(refreshing every ${formatDuration(intervalMs)}; Ctrl-C to stop)\n`);
                else print(all.map(renderLine).join("\n"));
              } else {
                const cur = await sample(nc, name);
                const s = withRates(cur, prev);
                prev = cur;
                if (g.json) print(JSON.stringify(s));
                else if (tty) process.stdout.write(`\x1b[2J\x1b[H${safeText(renderOne(s))}\n\n(refreshing every ${formatDuration(intervalMs)}; Ctrl-C to stop)\n`);
                else print(renderLine(s));
              }
            } catch (err) {
              // The connection dropped mid-sample: the next round waits for it to come back.
              const transient = err instanceof ConnectionError || err instanceof TimeoutError || !link.up;
              if (!transient || nc.isClosed()) throw err;
              note(`jetq: ${(err as Error).message}`);
              prev = undefined;
              prevAll.clear();
            }
          }
        } finally {
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
        }
      }, flags.watch === true);
    });
}

/**
 * Follows the connection's status for a watch: says on stderr when it is lost and when it is
 * back, and keeps `state.up` current so samples wait for the reconnection instead of failing.
 */
function followStatus(nc: NatsConnection, state: { up: boolean }): void {
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" && state.up) {
        state.up = false;
        process.stderr.write("jetq: lost the connection to NATS; reconnecting (Ctrl-C to stop)\n");
      } else if (s.type === "reconnect" && !state.up) {
        state.up = true;
        process.stderr.write("jetq: connection back\n");
      }
    }
  })().catch(() => {});
}

/** Waits for the next sample time, and while disconnected until the connection is back. @returns false when stopped. */
async function nextSample(state: { up: boolean }, intervalMs: number, signal: AbortSignal): Promise<boolean> {
  await sleep(intervalMs, signal);
  while (!state.up && !signal.aborted) await sleep(200, signal);
  return !signal.aborted;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
