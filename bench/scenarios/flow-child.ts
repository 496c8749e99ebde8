// The child side of the `flow` scenario (bench/scenarios/flow.ts): one worker in a fresh process.
// argv[2]: JSON { servers, queue (defineQueue options), concurrency, mode, jobs?, bullmq?, warmup? }.
// mode "drain": drains the `warmup` queue first (if given) and says "warm"; on "go", drains
// `jobs` jobs and reports the seconds it took (worker start included).
// mode "rate": on "go", runs until "stop" and reports every handler start time (bounded by the
// limit × the run's length).
// With `bullmq` ({ redis, name, rate? }): a BullMQ Worker on that queue instead (its `limiter`
// `{ max: rate, duration: 1000 }` in mode "rate"), the same concurrency.
// With `raw` ({ stream, consumers: [{ consumer, jobs }] }, mode "drain"): the floor, a plain
// nats.js `consume()` of each of those consumers in turn (a level's jobs, then the next level's),
// parse and ack per job, no jetq.
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { defineQueue, Worker } from "../../src/index.ts";

/** One drain's queue: jetq's options, or BullMQ's queue, or the raw floor's stream and consumers. */
interface DrainTarget {
  queue: Parameters<typeof defineQueue>[0];
  jobs: number;
  bullmq?: { redis: string; name: string; rate?: number };
  raw?: { stream: string; consumers: Array<{ consumer: string; jobs: number }> };
}

interface FlowChildTask extends DrainTarget {
  servers: string;
  concurrency: number;
  mode: "drain" | "rate";
  /**
   * Mode "drain": a queue of the same layout drained first, before "warm" is sent, by the same
   * code on a worker of its own (stopped after it): the timed drain then measures a warmed-up
   * process, as a long-running worker is, not the JIT compiling its code in the first second.
   */
  warmup?: DrainTarget;
}

const task = JSON.parse(process.argv[2]!) as FlowChildTask;
let go!: () => void;
const started = new Promise<void>((r) => (go = r));
let stop!: () => void;
const stopped = new Promise<void>((r) => (stop = r));
process.on("message", (m: { type: string }) => {
  if (m.type === "go") go();
  else if (m.type === "stop") stop();
});
process.on("disconnect", () => process.exit(0));

const starts: number[] = [];

/**
 * Starts a worker of `target` (jetq, BullMQ or the raw floor) that calls `completed` per job;
 * resolves with its stop. `rate`: record each handler's start time (mode "rate").
 */
async function startWorker(target: DrainTarget, completed: () => void, rate: boolean): Promise<() => Promise<void>> {
  if (target.bullmq) {
    const { Worker: BullWorker } = await import("bullmq");
    const { connection, PREFIX } = await import("../contenders/bullmq.ts");
    const b = target.bullmq;
    const w = new BullWorker(b.name, async () => {
      if (rate) starts.push(Date.now());
    }, { connection: connection(b.redis), prefix: PREFIX, concurrency: task.concurrency, autorun: false, ...(rate ? { limiter: { max: b.rate!, duration: 1000 } } : {}) });
    w.on("completed", completed);
    w.on("error", () => {});
    void w.run();
    return () => w.close();
  }
  const nc = await connect({ servers: task.servers, noAsyncTraces: true });
  if (target.raw) {
    const js = jetstream(nc);
    const raw = target.raw;
    let iter: { stop(): void } | undefined;
    void (async () => {
      for (const { consumer, jobs } of raw.consumers) {
        const c = await js.consumers.get(raw.stream, consumer);
        const it = await c.consume({ max_messages: task.concurrency });
        iter = it;
        let left = jobs;
        for await (const m of it) {
          m.json();
          m.ack();
          completed();
          if (--left === 0) break;
        }
      }
    })();
    return async () => {
      iter?.stop();
      await nc.close();
    };
  }
  const worker = new Worker(nc, defineQueue(target.queue), () => {
    if (rate) starts.push(Date.now());
  }, { concurrency: task.concurrency, telemetry: false });
  worker.on("completed", completed);
  await worker.start();
  return async () => {
    await worker.stop({ timeoutMs: 2_000 });
    await nc.close();
  };
}

/**
 * Drains `target` from a standing start (worker start included); resolves with its figures: the
 * seconds from the call, and when the first job and each third completed (ms from the call).
 */
async function drain(target: DrainTarget): Promise<{ seconds: number; jobs: number; startedMs: number; firstMs: number | undefined; thirdsMs: number[]; clientCpuUsPerJob: number }> {
  let done = 0;
  const marks: number[] = [];
  let finished!: () => void;
  const allDone = new Promise<void>((r) => (finished = r));
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const stopWorker = await startWorker(target, () => {
    ++done;
    if (done === 1 || done === Math.floor(target.jobs / 3) || done === Math.floor((2 * target.jobs) / 3)) marks.push(Math.round(performance.now() - t0));
    if (done === target.jobs) finished();
  }, false);
  const startedMs = Math.round(performance.now() - t0);
  await allDone;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await stopWorker();
  return { seconds, jobs: done, startedMs, firstMs: marks[0], thirdsMs: marks.slice(1), clientCpuUsPerJob: (cpu.user + cpu.system) / done };
}

if (task.mode === "drain") {
  if (task.warmup) {
    const w = await drain(task.warmup);
    process.send!({ type: "warm", result: { seconds: w.seconds, jobs: w.jobs } });
  }
  await started;
  process.send!({ type: "result", result: await drain(task) });
} else {
  await started;
  const stopWorker = await startWorker(task, () => {}, true);
  process.send!({ type: "started" });
  await stopped;
  await stopWorker();
  process.send!({ type: "result", result: { starts } });
}
