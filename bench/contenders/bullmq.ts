// The BullMQ contender: Queue.addBulk / add and a Worker at concurrency 64, finished jobs removed
// (like acked messages leave a work-queue stream). Loaded only when Redis is available.
import { Queue, Worker, type Job } from "bullmq";
import { forEachConcurrent, makeJob } from "../lib/common.ts";
import type { DrainHandle, LatencyPublisher } from "./nats.ts";
import { LOOP_CALLERS } from "./nats.ts";

export const PREFIX = "jetqbench";
const CHUNK = 1000;
const CHUNKS_IN_FLIGHT = 4;

export function connection(url: string): { host: string; port: number; username?: string; password?: string; maxRetriesPerRequest: null } {
  const u = new URL(url);
  return {
    host: u.hostname || "127.0.0.1",
    port: Number(u.port || 6379),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    maxRetriesPerRequest: null,
  };
}

export function bullQueue(url: string, name: string): Queue {
  return new Queue(name, {
    connection: connection(url),
    prefix: PREFIX,
    defaultJobOptions: { removeOnComplete: true, removeOnFail: { count: 1000 } },
  });
}

/** Publishes `jobs` jobs: `addBulk` in chunks of 1,000 with 4 chunks in flight (its fastest path), or one `add` per job. */
export async function bullPublish(kind: "bullmq.addBulk" | "bullmq.add", q: Queue, jobs: number, ids: boolean, tag: string): Promise<void> {
  const opts = (n: number): { jobId: string } | undefined => (ids ? { jobId: `${tag}-${n}` } : undefined);
  if (kind === "bullmq.add") {
    await forEachConcurrent(jobs, LOOP_CALLERS, (i) => q.add("job", makeJob(i), opts(i)));
    return;
  }
  const chunks = Math.ceil(jobs / CHUNK);
  await forEachConcurrent(chunks, CHUNKS_IN_FLIGHT, (c) => {
    const from = c * CHUNK;
    const to = Math.min(jobs, from + CHUNK);
    const batch = [];
    for (let i = from; i < to; i++) {
      const o = opts(i);
      batch.push(o ? { name: "job", data: makeJob(i), opts: o } : { name: "job", data: makeJob(i) });
    }
    return q.addBulk(batch);
  });
}

/** Fills the queue for a drain run. */
export async function bullPrefill(q: Queue, jobs: number): Promise<void> {
  await bullPublish("bullmq.addBulk", q, jobs, false, "");
}

export function bullDrainWorker(
  url: string,
  name: string,
  concurrency: number,
  onDone: (t?: number) => void,
  onStart?: (data: { t: number }) => void,
): DrainHandle {
  const worker = new Worker(
    name,
    onStart
      ? async (job: Job) => {
          onStart(job.data as { t: number });
        }
      : async () => {},
    { connection: connection(url), prefix: PREFIX, concurrency, autorun: false },
  );
  worker.on("completed", onStart ? (job: Job) => onDone((job.data as { t: number }).t) : () => onDone());
  worker.on("error", () => {});
  return {
    start: () => {
      void worker.run();
    },
    stop: () => worker.close(),
  };
}

export function bullLatencyPublisher(q: Queue, onAck: (t: number, ok: boolean) => void): LatencyPublisher {
  let inFlight = 0;
  return {
    publish: (n, t) => {
      inFlight++;
      q.add("job", makeJob(n, t)).then(
        () => {
          inFlight--;
          onAck(t, true);
        },
        () => {
          inFlight--;
          onAck(t, false);
        },
      );
    },
    inFlight: () => inFlight,
    close: async () => {},
  };
}

/** Jobs still waiting or active (0 once drained). */
export async function bullBacklog(q: Queue): Promise<number> {
  const c = await q.getJobCounts("waiting", "active", "delayed", "prioritized");
  return Object.values(c).reduce((a, b) => a + b, 0);
}
