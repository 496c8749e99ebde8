// The child side of the `flow` scenario (bench/scenarios/flow.ts): one jetq worker in a fresh
// process. argv[2]: JSON { servers, queue (defineQueue options), concurrency, mode }.
// mode "drain": on "go", drains `jobs` jobs and reports the seconds it took.
// mode "rate": on "go", runs until "stop" and reports every handler start time (bounded by the
// limit × the run's length).
import { connect } from "@nats-io/transport-node";
import { defineQueue, Worker } from "../../src/index.ts";

interface FlowChildTask {
  servers: string;
  queue: Parameters<typeof defineQueue>[0];
  concurrency: number;
  mode: "drain" | "rate";
  jobs?: number;
}

const task = JSON.parse(process.argv[2]!) as FlowChildTask;
const nc = await connect({ servers: task.servers, noAsyncTraces: true });
const q = defineQueue(task.queue);
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
const worker = new Worker(nc, q, () => {
  if (task.mode === "rate") starts.push(Date.now());
}, { concurrency: task.concurrency, telemetry: false });
worker.on("completed", () => {
  if (++done === task.jobs) finished();
});
await started;
const t0 = performance.now();
await worker.start();
if (task.mode === "drain") {
  await allDone;
  const seconds = (performance.now() - t0) / 1000;
  await worker.stop();
  process.send!({ type: "result", result: { seconds, jobs: done } });
} else {
  process.send!({ type: "started" });
  await stopped;
  await worker.stop({ timeoutMs: 2_000 });
  process.send!({ type: "result", result: { starts } });
}
await nc.close();
