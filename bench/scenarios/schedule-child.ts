// Child side of the `schedule` scenario (orchestrated by ./schedule.ts): one process publishes
// delayed jobs, one works them and records how late each started, one idles beside schedules or
// held jobs and reports its CPU and memory.
import type { NatsConnection } from "@nats-io/transport-node";
import { connect as jetqConnect, defineQueue, Producer, Worker } from "../../src/index.ts";
import { epochMs, makeJob, mib, Samples, sleep } from "../lib/common.ts";
import type { Endpoints, FromChild } from "../lib/tasks.ts";

export type DelayContender = "jetq" | "bullmq";

/** What the orchestrator asks one child of the scenario to do. */
export type ScheduleTask = { kind: "schedule"; endpoints: Endpoints; queue: string } & (
  | {
      /** Publish `jobs` jobs delayed by {@link delayOf}: jetq publishMany or BullMQ addBulk. */
      role: "publish";
      contender: DelayContender;
      jobs: number;
      spreadMs: number;
    }
  | {
      /** Work the delayed jobs (jetq: the worker also moves them), recording due → handler start. */
      role: "work";
      contender: DelayContender;
      jobs: number;
      concurrency: number;
    }
  | {
      /** A jetq worker that has nothing to run: report CPU and memory from "go" to "stop". */
      role: "idle";
      scheduling: boolean;
    }
);

/** What a child of this scenario needs from bench/child.ts. */
export interface ChildIo {
  stopped: Promise<void>;
  send(msg: FromChild): void;
}

/** Same delays for both contenders: a fixed pseudo-random permutation of [1, spreadMs]. */
export function delayOf(i: number, jobs: number, spreadMs: number): number {
  // 7919 is prime and (for the sizes used) coprime with `jobs`: each slot once, in scrambled order.
  // At least 1 ms: a delay of 0 is no delay (jetq would publish straight into the queue).
  return 1 + Math.floor((((i * 7919) % jobs) * spreadMs) / jobs);
}

const CHUNK = 1000;

export async function prepareSchedule(task: ScheduleTask, io: ChildIo): Promise<{ run(): Promise<Record<string, unknown>>; close(): Promise<void> }> {
  if (task.role === "publish") return preparePublish(task, io);
  if (task.role === "work") return prepareWork(task, io);
  return prepareIdle(task, io);
}

async function preparePublish(task: Extract<ScheduleTask, { role: "publish" }>, _io: ChildIo): Promise<{ run(): Promise<Record<string, unknown>>; close(): Promise<void> }> {
  const { jobs, spreadMs } = task;
  if (task.contender === "bullmq") {
    const { bullQueue } = await import("../contenders/bullmq.ts");
    const q = bullQueue(task.endpoints.redis!, task.queue);
    await q.waitUntilReady();
    return {
      run: async () => {
        const t0 = epochMs();
        // addBulk in chunks of 1,000 with 4 in flight, as in the publish scenario.
        let next = 0;
        const lane = async (): Promise<void> => {
          while (next < jobs) {
            const from = next;
            next = Math.min(jobs, next + CHUNK);
            const batch = [];
            for (let i = from; i < next; i++) batch.push({ name: "job", data: makeJob(i), opts: { delay: delayOf(i, jobs, spreadMs) } });
            await q.addBulk(batch);
          }
        };
        await Promise.all([lane(), lane(), lane(), lane()]);
        return { seconds: (epochMs() - t0) / 1000, jobs };
      },
      close: () => q.close(),
    };
  }
  const nc = await jetqConnect({ servers: task.endpoints.nats!, name: "bench-delay-publish" });
  const q = defineQueue({ name: task.queue, scheduling: true });
  const producer = new Producer(nc, q);
  return {
    run: async () => {
      const t0 = epochMs();
      // Chunks of 1,000 items, 4 in flight: the same shape as BullMQ's.
      let next = 0;
      const lane = async (): Promise<void> => {
        while (next < jobs) {
          const from = next;
          next = Math.min(jobs, next + CHUNK);
          const items = [];
          for (let i = from; i < next; i++) items.push(makeJob(i));
          await producer.publishMany(items, { delayMs: (_, k) => delayOf(from + k, jobs, spreadMs) });
        }
      };
      await Promise.all([lane(), lane(), lane(), lane()]);
      return { seconds: (epochMs() - t0) / 1000, jobs };
    },
    close: async () => {
      await producer.close();
      await nc.close();
    },
  };
}

async function prepareWork(task: Extract<ScheduleTask, { role: "work" }>, io: ChildIo): Promise<{ run(): Promise<Record<string, unknown>>; close(): Promise<void> }> {
  const lateness = new Samples(task.jobs);
  let count = 0;
  let lastAt = 0;
  const started = (dueMs: number): void => {
    const now = epochMs();
    lateness.add(now - dueMs);
    count++;
    lastAt = now;
  };
  let stop: () => Promise<void>;
  if (task.contender === "bullmq") {
    const { Worker: BullWorker } = await import("bullmq");
    const { PREFIX } = await import("../contenders/bullmq.ts");
    const u = new URL(task.endpoints.redis!);
    const worker = new BullWorker(
      task.queue,
      async (job) => {
        // BullMQ's own due time: the client's clock at add() plus the delay.
        started(job.timestamp + (job.opts.delay ?? 0));
      },
      { connection: { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null }, prefix: PREFIX, concurrency: task.concurrency, removeOnComplete: { count: 0 } },
    );
    worker.on("error", () => {});
    await worker.waitUntilReady();
    stop = () => worker.close();
  } else {
    const nc: NatsConnection = await jetqConnect({ servers: task.endpoints.nats!, name: "bench-delay-work" });
    const q = defineQueue({ name: task.queue, scheduling: true });
    // The due time the mover stamped on the job (server clock, same machine).
    const worker = new Worker(nc, q, (job) => started(Number(job.headers["Jetq-Due"])), { concurrency: task.concurrency });
    worker.on("error", () => {});
    await worker.start();
    stop = async () => {
      await worker.stop();
      await nc.close();
    };
  }
  const timer = setInterval(() => io.send({ type: "progress", count, lastAt }), 25);
  return {
    run: async () => {
      await io.stopped;
      clearInterval(timer);
      io.send({ type: "progress", count, lastAt });
      return { handled: count, lateness: lateness.summary() };
    },
    close: () => stop(),
  };
}

async function prepareIdle(task: Extract<ScheduleTask, { role: "idle" }>, io: ChildIo): Promise<{ run(): Promise<Record<string, unknown>>; close(): Promise<void> }> {
  const nc = await jetqConnect({ servers: task.endpoints.nats!, name: "bench-idle" });
  const q = defineQueue({ name: task.queue, scheduling: task.scheduling });
  const worker = new Worker(nc, q, () => {}, { concurrency: 64 });
  worker.on("error", () => {});
  await worker.start();
  // Let the start-up work (reading and computing the schedules, the first pulls) pass before
  // "ready": at least 1 s, then until a half second uses under 5 % of a core (at most 10 s).
  await sleep(1000);
  for (let i = 0; i < 18; i++) {
    const c0 = process.cpuUsage();
    await sleep(500);
    const c = process.cpuUsage(c0);
    if (c.user + c.system < 25_000) break;
  }
  return {
    run: async () => {
      const cpu0 = process.cpuUsage();
      const t0 = epochMs();
      let peakRss = process.memoryUsage().rss;
      const timer = setInterval(() => {
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
      }, 100);
      await io.stopped;
      clearInterval(timer);
      const seconds = (epochMs() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const rss = process.memoryUsage().rss;
      // peakRssMiB (added by child.ts) is the whole life's, start-up included; this one is from "go".
      return { seconds, cpuMsPerSec: (cpu.user + cpu.system) / 1000 / seconds, sampledMaxRssMiB: mib(Math.max(peakRss, rss)), rssMiB: mib(rss), heapUsedMiB: mib(process.memoryUsage().heapUsed) };
    },
    close: async () => {
      await worker.stop();
      await nc.close();
    },
  };
}
