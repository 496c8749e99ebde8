// Child side of the "results" scenario (bench/scenarios/results.ts): one worker drains a prefilled
// queue, with or without job state (`results`), and counts what its connection sent per job.
import type { NatsConnection } from "@nats-io/transport-node";
import type { Queue } from "../../src/index.ts";
import { epochMs, sleep } from "../lib/common.ts";

/**
 * Times one drain, jetq's and raw's alike: from `start()` until `finished` (at most 120 s), with
 * the messages the worker's connection sent and this process's CPU meanwhile.
 */
async function timedDrain(wc: NatsConnection, finished: Promise<void>, start: () => Promise<unknown>): Promise<{ seconds: number; outMsgs: number; cpuSec: number }> {
  const out0 = wc.stats().outMsgs;
  const cpu0 = process.cpuUsage();
  const t0 = epochMs();
  await start();
  await Promise.race([finished, sleep(120_000)]);
  const t1 = epochMs();
  const cpu = process.cpuUsage(cpu0);
  return { seconds: (t1 - t0) / 1000, outMsgs: wc.stats().outMsgs - out0, cpuSec: (cpu.user + cpu.system) / 1e6 };
}

/** What the state stream holds after a drain: records stored and bytes per record (checked, not assumed). */
async function storedRecords(nc: NatsConnection, q: Queue<unknown, unknown>): Promise<{ storedRecords: number; storedBytesPerRecord: number }> {
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const st = (await (await jetstreamManager(nc)).streams.info(q.names.stateStream)).state;
  return { storedRecords: st.messages, storedBytesPerRecord: st.bytes / Math.max(1, st.messages) };
}

/**
 * - `off`: a queue without `results`; the handler returns a value (thrown away).
 * - `off-progress`: the same, and the handler also calls `job.progress()`: an unused feature, which
 *   must cost nothing (the same messages per job as `off`).
 * - `on`: the queue keeps results; the handler's value is stored before each ack.
 * - `on-events`: `on`, and a `Jobs.events()` reader (own connection, same process) follows every change.
 * - `off-1ms`, `on-1ms`: `off` and `on` with a handler that awaits a 1 ms timer (a job that does I/O).
 * - `raw-off`, `raw-on`: the floor, plain @nats-io/jetstream on the same provisioned queue and
 *   backlog (see {@link prepareRawResults}): `raw-off` acks each job (fire and forget), `raw-on`
 *   first stores a record of the size of jetq's `completed` record under a subject of its own in a
 *   stream provisioned as jetq's job state stream, and acks the job once its PubAck came back;
 *   `raw-on-batch` the same, with one PubAck per event-loop turn confirming the turn's records.
 */
export type ResultsVariant = "off" | "off-progress" | "on" | "on-events" | "off-1ms" | "on-1ms" | "raw-off" | "raw-on" | "raw-on-batch";

export interface ResultsTask {
  kind: "results";
  variant: ResultsVariant;
  endpoints: { nats?: string };
  queue: string;
  jobs: number;
  concurrency: number;
}

export async function prepareResults(task: ResultsTask): Promise<{ run(): Promise<Record<string, unknown>>; close(): Promise<void> }> {
  if (task.variant.startsWith("raw-")) return prepareRawResults(task);
  const nats = await import("../contenders/nats.ts");
  const jetq = await import("../../src/index.ts");
  const { makeJob } = await import("../lib/common.ts");
  const v = task.variant;
  const on = v.startsWith("on");
  const nc = await nats.connectJetq(task.endpoints.nats!, "bench-results");
  const q = jetq.defineQueue({ name: task.queue, ...(on ? { results: { keepMs: 600_000 } } : {}) }) as Queue<unknown, unknown>;
  await jetq.provisionQueue(nc, q);
  const producer = new jetq.Producer(nc, q, { telemetry: false });
  await producer.publishMany(Array.from({ length: task.jobs }, (_, i) => makeJob(i)));
  const wc = await nats.connectJetq(task.endpoints.nats!, "bench-results-worker");
  let done = 0;
  let allDone: (() => void) | undefined;
  const worker = new jetq.Worker(
    wc,
    q,
    v.endsWith("-1ms")
      ? async (job) => {
          await sleep(1);
          return { n: (job.data as { n: number }).n, ok: true };
        }
      : (job) => {
          if (v === "off-progress") job.progress(0.5);
          return { n: (job.data as { n: number }).n, ok: true };
        },
    { concurrency: task.concurrency, telemetry: false },
  );
  worker.on("completed", () => {
    if (++done >= task.jobs) allDone?.();
  });
  worker.on("error", () => {});
  let ec: NatsConnection | undefined;
  const ac = new AbortController();
  let events = 0;
  let gaps = 0;
  let reading: Promise<void> | undefined;
  if (v === "on-events") {
    ec = await nats.connectJetq(task.endpoints.nats!, "bench-results-events");
    const it = new jetq.Jobs(ec, q).events({ signal: ac.signal })[Symbol.asyncIterator]();
    // The reader is live once its first next() is pending and the consumer exists: give it a moment.
    reading = (async () => {
      for (let r = await it.next(); !r.done; r = await it.next()) {
        if (r.value.type === "gap") gaps += r.value.missed;
        else events++;
      }
    })();
    await sleep(300);
  }
  return {
    run: async () => {
      const finished = new Promise<void>((r) => (allDone = r));
      const d = await timedDrain(wc, finished, () => worker.start());
      await worker.stop();
      return {
        drainSeconds: d.seconds,
        drained: done,
        jobs: task.jobs,
        outMsgsPerJob: d.outMsgs / task.jobs,
        drainCpuSec: d.cpuSec,
        // What one stored record takes in the state stream (the raw floor's must match it).
        ...(on ? await storedRecords(nc, q as Queue<unknown, unknown>) : {}),
        ...(v === "on-events" ? { events, gaps } : {}),
      };
    },
    close: async () => {
      ac.abort();
      await Promise.race([reading, sleep(2000)]);
      await producer.close();
      await nc.close();
      await wc.close();
      await ec?.close();
    },
  };
}

/**
 * The raw floor of the results pair: the fastest drain we could write on the public nats.js API,
 * on a queue provisioned and filled by jetq exactly as for the jetq rows (with `results` for
 * `raw-on`, so the state stream is jetq's own: same storage, `max_msgs_per_subject` 1, `max_age`,
 * discard old, the default duplicate window). `consume()` with a callback (no async iterator; the
 * consumer's `max_ack_pending` bounds what is un-acked), and acks fire and forget. `raw-on` stores
 * one record per job, built like jetq's `completed` record and of its byte length, on
 * `<stateSubject>.<22-character token>` (one subject per job, as jetq's hashed key), pipelined
 * through {@link RawFastPublisher} (one wildcard reply inbox, reply subjects reused, PubAcks
 * matched by numeric slot and checked from their bytes), and acks each job from its record's
 * PubAck: the guarantee jetq gives (the result is stored before the ack). Nothing is decoded and
 * no handler runs: the ratio raw-on / raw-off is what the extra stored message costs the server
 * and the client at the least.
 */
async function prepareRawResults(task: ResultsTask): Promise<{ run(): Promise<Record<string, unknown>>; close(): Promise<void> }> {
  const nats = await import("../contenders/nats.ts");
  const jetq = await import("../../src/index.ts");
  const { jetstream } = await import("@nats-io/jetstream");
  const { makeJob } = await import("../lib/common.ts");
  const { hostname } = await import("node:os");
  const { randomBytes } = await import("node:crypto");
  const records = task.variant === "raw-on" || task.variant === "raw-on-batch";
  const batched = task.variant === "raw-on-batch";
  const nc = await nats.connectJetq(task.endpoints.nats!, "bench-results");
  const q = jetq.defineQueue({ name: task.queue, ...(records ? { results: { keepMs: 600_000 } } : {}) }) as Queue<unknown, unknown>;
  await jetq.provisionQueue(nc, q);
  const producer = new jetq.Producer(nc, q, { telemetry: false });
  await producer.publishMany(Array.from({ length: task.jobs }, (_, i) => makeJob(i)));
  await producer.close();
  const wc = await nats.connectRaw(task.endpoints.nats!, "bench-results-raw");
  const js = jetstream(wc);
  // The jobs waiting for their record's PubAck, by publisher slot (slots are reused once answered).
  type Ackable = { ack(): void };
  const held: Array<Ackable | Ackable[] | undefined> = [];
  let done = 0;
  let failed = 0;
  let allDone: (() => void) | undefined;
  const finish = (): void => {
    if (++done >= task.jobs) allDone?.();
  };
  const pub = records
    ? new nats.RawFastPublisher(wc, {
        reuse: true,
        bytes: false,
        window: Number.MAX_SAFE_INTEGER,
        onAnswer: (slot, ok) => {
          const m = held[slot];
          held[slot] = undefined;
          if (m === undefined) return;
          // A refused or expired record: the job is not acked and comes back after ack_wait.
          if (!ok) {
            failed += Array.isArray(m) ? m.length : 1;
            return;
          }
          if (Array.isArray(m)) {
            for (const x of m) {
              x.ack();
              finish();
            }
          } else {
            m.ack();
            finish();
          }
        },
      })
    : undefined;
  const prefix = `${q.names.stateSubject}.`;
  // jetq's worker id has this form (host:pid:6 hex digits); the record's fields are jetq's, so the
  // payload has the byte length of jetq's `completed` record for the same job.
  const worker = `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  const publishedAt = Date.now();
  const leaseMs = q.ackWaitMs;
  // The fields jetq writes for a job published without an id (id `seq-<seq>`) whose handler
  // returned { n, ok: true }, in its order; the job's number stands for its stream sequence.
  const recordOf = (i: number, now: number): string =>
    `{"id":"seq-${i}","seq":${i},"ev":"completed","state":"completed","attempt":1,"publishedAt":${publishedAt},"leaseMs":${leaseMs},"worker":"${worker}","startedAt":${now},"finishedAt":${now},"result":{"n":${i - 1},"ok":true}}`;
  let n = 0;
  // raw-on-batch: the records of one event-loop turn go out together and only the last carries a
  // reply subject; a stream stores one connection's messages in order, so its PubAck confirms the
  // turn's records (jetq's StoreConfirmer does the same).
  let turn: Ackable[] = [];
  let last: string | undefined;
  let lastRec: string | undefined;
  const endTurn = (): void => {
    const ms = turn;
    turn = [];
    const [subject, rec] = [last!, lastRec!];
    last = undefined;
    held[pub!.send(subject, rec, undefined)] = ms;
  };
  const onMsg = batched
    ? (m: Ackable): void => {
        const i = ++n;
        if (last !== undefined) wc.publish(last, lastRec!);
        else setImmediate(endTurn);
        last = prefix + String(i).padStart(22, "0");
        lastRec = recordOf(i, Date.now());
        turn.push(m);
      }
    : records
      ? (m: Ackable): void => {
          const i = ++n;
          const slot = pub!.send(prefix + String(i).padStart(22, "0"), recordOf(i, Date.now()), undefined);
          held[slot] = m;
        }
      : (m: Ackable): void => {
          m.ack();
          finish();
        };
  let iter: { stop(): void } | undefined;
  return {
    run: async () => {
      const finished = new Promise<void>((r) => (allDone = r));
      const d = await timedDrain(wc, finished, async () => {
        // Looked up inside the timed window, as jetq's Worker.start() does.
        const consumer = await js.consumers.get(q.names.stream, q.names.consumer);
        iter = await consumer.consume({ max_messages: task.concurrency, callback: onMsg });
      });
      iter?.stop();
      await wc.flush();
      return {
        drainSeconds: d.seconds,
        drained: done,
        jobs: task.jobs,
        failedRecords: failed,
        // Every job's record stored once (one subject per job): checked, not assumed.
        ...(records ? await storedRecords(nc, q) : {}),
        recordBytes: records ? Buffer.byteLength(recordOf(task.jobs, publishedAt)) : 0,
        outMsgsPerJob: d.outMsgs / task.jobs,
        drainCpuSec: d.cpuSec,
      };
    },
    close: async () => {
      iter?.stop();
      pub?.close();
      await nc.close();
      await wc.close();
    },
  };
}

/** Publish → result round trips at a fixed rate: jetq's `receipt.result()` or BullMQ's `job.waitUntilFinished()`. */
export interface ResultRttTask {
  kind: "result-rtt";
  contender: "jetq" | "bullmq";
  endpoints: { nats?: string; redis?: string };
  queue: string;
  rate: number;
  durationMs: number;
}

export async function prepareResultRtt(task: ResultRttTask): Promise<{ run(): Promise<Record<string, unknown>>; close(): Promise<void> }> {
  const { Samples } = await import("../lib/common.ts");
  const lat = new Samples(Math.ceil((task.rate * task.durationMs) / 1000) + 1024);
  let failed = 0;
  let roundTrip: (i: number) => Promise<unknown>;
  let close: () => Promise<void>;
  if (task.contender === "bullmq") {
    const { Queue: BullQueue, QueueEvents, Worker } = await import("bullmq");
    const { PREFIX } = await import("../contenders/bullmq.ts");
    const u = new URL(task.endpoints.redis!);
    const connection = {
      host: u.hostname || "127.0.0.1",
      port: Number(u.port || 6379),
      ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
      ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
      maxRetriesPerRequest: null,
    };
    // Finished jobs kept (the last 1,000): waitUntilFinished() on a job already completed and
    // removed fails with "Missing key", which removeOnComplete: true makes of every fast job.
    const q = new BullQueue(task.queue, { connection, prefix: PREFIX, defaultJobOptions: { removeOnComplete: { count: 1000 }, removeOnFail: { count: 1000 } } });
    const events = new QueueEvents(task.queue, { connection, prefix: PREFIX });
    const worker = new Worker(task.queue, async (job) => ({ n: (job.data as { n: number }).n }), { connection, prefix: PREFIX, concurrency: 64 });
    await Promise.all([q.waitUntilReady(), events.waitUntilReady(), worker.waitUntilReady()]);
    roundTrip = async (i) => (await q.add("job", { n: i })).waitUntilFinished(events, 10_000);
    close = async () => {
      await worker.close();
      await events.close();
      await q.obliterate({ force: true }).catch(() => {});
      await q.close();
    };
  } else {
    const nats = await import("../contenders/nats.ts");
    const jetq = await import("../../src/index.ts");
    const nc = await nats.connectJetq(task.endpoints.nats!, "bench-rtt");
    const q = jetq.defineQueue({ name: task.queue, results: { keepMs: 600_000 } }) as Queue<unknown, unknown>;
    await jetq.provisionQueue(nc, q);
    const producer = new jetq.Producer(nc, q, { telemetry: false });
    const wc = await nats.connectJetq(task.endpoints.nats!, "bench-rtt-worker");
    const worker = new jetq.Worker(wc, q, (job) => ({ n: (job.data as { n: number }).n }), { concurrency: 64, telemetry: false });
    await worker.start();
    roundTrip = async (i) => (await producer.publish({ n: i })).result({ timeoutMs: 10_000 });
    close = async () => {
      await worker.stop();
      await producer.close();
      await nc.close();
      await wc.close();
    };
  }
  // Warm up (connections, the first lookups) before the clock starts.
  for (let i = 0; i < 20; i++) await roundTrip(-1 - i).catch(() => {});
  return {
    run: async () => {
      const inFlight = new Set<Promise<void>>();
      const t0 = performance.now();
      let sent = 0;
      while (performance.now() - t0 < task.durationMs) {
        const due = Math.floor(((performance.now() - t0) * task.rate) / 1000);
        for (; sent < due && inFlight.size < 1024; sent++) {
          const start = performance.now();
          const p = roundTrip(sent).then(
            () => lat.add(performance.now() - start),
            () => void failed++,
          );
          inFlight.add(p);
          void p.finally(() => inFlight.delete(p));
        }
        await sleep(1);
      }
      await Promise.race([Promise.allSettled([...inFlight]), sleep(15_000)]);
      const s = lat.summary();
      return { sent, failed, p50: s.p50, p99: s.p99, max: s.max, count: s.count };
    },
    close,
  };
}
