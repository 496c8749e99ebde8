/**
 * The demo's producer process: publishes `DEMO_JOBS` thumbnail jobs at about `DEMO_RATE` per
 * second, each with its image id as idempotency key, and reports progress to the demo over IPC.
 * A few jobs are published without validation on purpose (a zero width): the workers
 * dead-letter them as invalid, the way a payload from an older producer would be.
 */
import { connect, Producer } from "jetq";
import { demoQueue, fateOf, jobFor, type ThumbnailJob } from "./workload.ts";

export type ProducerReport = { t: "published"; count: number } | { t: "finished"; count: number; duplicates: number } | { t: "failed"; error: string };

const send = (m: ProducerReport): void => {
  if (typeof process.send === "function") process.send(m);
};

const env = process.env;
const total = Number(env.DEMO_JOBS ?? 2000);
const rate = Number(env.DEMO_RATE ?? 400);
const queue = demoQueue(env.JETQ_QUEUE ?? "thumbnails");

const nc = await connect({ servers: (env.NATS_URL ?? "nats://127.0.0.1:4222").split(",") });
const producer = new Producer(nc, queue, { maxInFlight: 256 });
const unchecked = new Producer(nc, queue, { validate: false });

let count = 0;
let duplicates = 0;
try {
  const tickMs = 50;
  const perTick = Math.max(1, Math.round((rate * tickMs) / 1000));
  const started = performance.now();
  for (let i = 0; i < total; i += perTick) {
    // publishMany pipelines a batch through the producer's bounded window (256 unconfirmed).
    const jobs = Array.from({ length: Math.min(total, i + perTick) - i }, (_, k) => jobFor(i + k));
    const byId = { id: (j: ThumbnailJob) => j.imageId };
    const receipts = await Promise.all([
      producer.publishMany(jobs.filter((j) => fateOf(j.imageId).kind !== "invalid"), byId),
      unchecked.publishMany(jobs.filter((j) => fateOf(j.imageId).kind === "invalid"), byId),
    ]);
    for (const r of receipts.flat()) {
      if (r.duplicate) duplicates++;
      count++;
    }
    send({ t: "published", count });
    // Pace against the clock, not per batch, so slow acks do not stretch the run.
    const due = started + ((i + perTick) / rate) * 1000;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  send({ t: "finished", count, duplicates });
} catch (err) {
  send({ t: "failed", error: (err as Error).message });
  process.exitCode = 1;
} finally {
  await producer.close();
  await unchecked.close();
  await nc.drain().catch(() => {});
}
