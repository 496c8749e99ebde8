// The child side of the `flow` scenario (bench/scenarios/flow.ts): one worker in a fresh process.
// argv[2]: JSON { servers, queue (defineQueue options), concurrency, mode, jobs?, bullmq? }.
// mode "drain": on "go", drains `jobs` jobs and reports the seconds it took.
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

interface FlowChildTask {
  servers: string;
  queue: Parameters<typeof defineQueue>[0];
  concurrency: number;
  mode: "drain" | "rate";
  jobs?: number;
  bullmq?: { redis: string; name: string; rate?: number };
  raw?: { stream: string; consumers: Array<{ consumer: string; jobs: number }> };
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
let done = 0;
let finished!: () => void;
const allDone = new Promise<void>((r) => (finished = r));
/** When the first job and each third of the drain completed (ms from "go"). */
const marks: number[] = [];
let t0 = 0;
const completed = (): void => {
  ++done;
  if (task.mode === "drain" && (done === 1 || done === Math.floor(task.jobs! / 3) || done === Math.floor((2 * task.jobs!) / 3))) marks.push(Math.round(performance.now() - t0));
  if (done === task.jobs) finished();
};

/** Starts the worker; resolves with its stop. */
async function startWorker(): Promise<() => Promise<void>> {
  if (task.bullmq) {
    const { Worker: BullWorker } = await import("bullmq");
    const { connection, PREFIX } = await import("../contenders/bullmq.ts");
    const b = task.bullmq;
    const w = new BullWorker(b.name, async () => {
      if (task.mode === "rate") starts.push(Date.now());
    }, { connection: connection(b.redis), prefix: PREFIX, concurrency: task.concurrency, autorun: false, ...(task.mode === "rate" ? { limiter: { max: b.rate!, duration: 1000 } } : {}) });
    w.on("completed", completed);
    w.on("error", () => {});
    void w.run();
    return () => w.close();
  }
  const nc = await connect({ servers: task.servers, noAsyncTraces: true });
  if (task.raw) {
    const js = jetstream(nc);
    const raw = task.raw;
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
  const worker = new Worker(nc, defineQueue(task.queue), () => {
    if (task.mode === "rate") starts.push(Date.now());
  }, { concurrency: task.concurrency, telemetry: false });
  worker.on("completed", completed);
  await worker.start();
  return async () => {
    await worker.stop({ timeoutMs: 2_000 });
    await nc.close();
  };
}

await started;
t0 = performance.now();
const stopWorker = await startWorker();
const startedMs = Math.round(performance.now() - t0);
if (task.mode === "drain") {
  await allDone;
  const seconds = (performance.now() - t0) / 1000;
  process.send!({ type: "result", result: { seconds, jobs: done, startedMs, firstMs: marks[0], thirdsMs: marks.slice(1) } });
  await stopWorker();
} else {
  process.send!({ type: "started" });
  await stopped;
  await stopWorker();
  process.send!({ type: "result", result: { starts } });
}
