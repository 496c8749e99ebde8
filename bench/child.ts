// One benchmark process: receives a task from the orchestrator (bench/harness.ts) over IPC, sets
// it up, says "ready", runs on "go", reports progress and a result. Every measurement runs in a
// fresh process so contenders never share a heap, a JIT state or an event loop.
import type { NatsConnection } from "@nats-io/transport-node";
import { epochMs, mib, Samples, sleep } from "./lib/common.ts";
import type { DrainTask, ExtraTask, FromChild, LatencyTask, PublishTask, StallTask, Task, ToChild } from "./lib/tasks.ts";

function send(msg: FromChild): void {
  process.send?.(msg);
}

let goResolve: (() => void) | undefined;
const go = new Promise<void>((r) => (goResolve = r));
let stopResolve: (() => void) | undefined;
const stopped = new Promise<void>((r) => (stopResolve = r));
let phase = "before";
let onPhaseEnd: ((name: string) => void) | undefined;

process.on("message", (msg: ToChild) => {
  if (msg.type === "task") void main(msg.task);
  else if (msg.type === "go") goResolve?.();
  else if (msg.type === "stop") stopResolve?.();
  else if (msg.type === "phase") {
    onPhaseEnd?.(phase);
    phase = msg.name;
  }
});
process.on("disconnect", () => process.exit(0));

interface Runner {
  run(): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

async function main(task: Task): Promise<void> {
  let runner: Runner;
  try {
    runner = await prepare(task);
  } catch (err) {
    send({ type: "error", message: `prepare ${describeTask(task)}: ${(err as Error).stack ?? String(err)}` });
    process.exit(1);
  }
  send({ type: "ready" });
  await go;
  const cpu0 = process.cpuUsage();
  let result: Record<string, unknown>;
  try {
    result = await runner.run();
  } catch (err) {
    send({ type: "error", message: `run ${describeTask(task)}: ${(err as Error).stack ?? String(err)}` });
    process.exit(1);
  }
  const cpu = process.cpuUsage(cpu0);
  result.clientCpuSec = (cpu.user + cpu.system) / 1e6;
  result.peakRssMiB = Math.round(process.resourceUsage().maxRSS / 102.4) / 10;
  send({ type: "result", result });
  await Promise.race([runner.close().catch(() => {}), sleep(5000)]);
  process.exit(0);
}

function describeTask(t: Task): string {
  return `${t.kind}${"contender" in t ? ` ${t.contender}` : ""}${"variant" in t ? ` ${t.variant}` : ""}`;
}

async function prepare(task: Task): Promise<Runner> {
  switch (task.kind) {
    case "publish":
      return preparePublish(task);
    case "drain":
      return prepareDrain(task);
    case "latency":
      return prepareLatency(task);
    case "stall":
      return prepareStall(task);
    case "extra":
      return prepareExtra(task);
    case "schedule":
      return (await import("./scenarios/schedule-child.ts")).prepareSchedule(task, { stopped, send });
    case "results":
      return (await import("./scenarios/results-child.ts")).prepareResults(task);
    case "result-rtt":
      return (await import("./scenarios/results-child.ts")).prepareResultRtt(task);
  }
}

async function preparePublish(task: PublishTask): Promise<Runner> {
  if (task.contender.startsWith("bullmq")) {
    const { bullQueue, bullPublish } = await import("./contenders/bullmq.ts");
    const q = bullQueue(task.endpoints.redis!, task.queue);
    await q.waitUntilReady();
    return {
      run: async () => {
        const t0 = epochMs();
        await bullPublish(task.contender as "bullmq.add" | "bullmq.addBulk", q, task.jobs, task.ids, task.tag);
        return { seconds: (epochMs() - t0) / 1000, failed: 0 };
      },
      close: () => q.close(),
    };
  }
  if (task.contender === "pgboss.insert") {
    const { startBoss, bossPublish } = await import("./contenders/pgboss.ts");
    const boss = await startBoss(task.endpoints.pg!);
    return {
      run: async () => {
        const t0 = epochMs();
        await bossPublish(boss, task.queue, task.jobs, task.ids, task.tag);
        return { seconds: (epochMs() - t0) / 1000, failed: 0 };
      },
      close: () => boss.stop({ graceful: false, wait: false } as never),
    };
  }
  const nats = await import("./contenders/nats.ts");
  const jetqSide = task.contender.startsWith("jetq");
  const nc = jetqSide ? await nats.connectJetq(task.endpoints.nats!, "bench-publish") : await nats.connectRaw(task.endpoints.nats!, "bench-publish");
  const q = nats.benchQueue(task.queue);
  if (task.contender === "raw.floor") {
    const timed = nats.prepareFloor(nc, q.names.subject, task.jobs, task.ids, task.tag);
    return {
      run: async () => {
        const t0 = epochMs();
        const failed = await timed();
        return { seconds: (epochMs() - t0) / 1000, failed };
      },
      close: () => nc.close(),
    };
  }
  return {
    run: async () => {
      const t0 = epochMs();
      const failed = await nats.natsPublish(task.contender as Parameters<typeof nats.natsPublish>[0], nc, q, task.jobs, task.ids, task.tag);
      return { seconds: (epochMs() - t0) / 1000, failed };
    },
    close: () => nc.close(),
  };
}

/** Reports progress every 25 ms so the orchestrator can end the clock at the last completion. */
function progressReporter(): { done: () => void; stop: () => number } {
  let count = 0;
  let lastAt = 0;
  let sent = 0;
  const timer = setInterval(() => {
    if (count !== sent) {
      sent = count;
      send({ type: "progress", count, lastAt });
    }
  }, 25);
  return {
    done: () => {
      count++;
      lastAt = epochMs();
    },
    stop: () => {
      clearInterval(timer);
      if (count !== sent) send({ type: "progress", count, lastAt });
      return count;
    },
  };
}

/** Samples memory every 100 ms; reports the sample with the highest RSS, broken down. */
function rssSampler(): { stop: () => Record<string, number> } {
  let peak = process.memoryUsage();
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    if (m.rss > peak.rss) peak = m;
  }, 100);
  return {
    stop: () => {
      clearInterval(timer);
      return { sampledMaxRssMiB: mib(peak.rss), atPeakHeapTotalMiB: mib(peak.heapTotal), atPeakHeapUsedMiB: mib(peak.heapUsed), atPeakExternalMiB: mib(peak.external) };
    },
  };
}

async function prepareDrain(task: DrainTask): Promise<Runner> {
  const progress = progressReporter();
  let handle: { start(): void; stop(): Promise<void> };
  let close: () => Promise<void>;
  if (task.contender === "bullmq") {
    const { bullDrainWorker } = await import("./contenders/bullmq.ts");
    handle = bullDrainWorker(task.endpoints.redis!, task.queue, task.concurrency, progress.done);
    close = async () => {};
  } else if (task.contender === "pgboss") {
    const { startBoss, bossDrainWorker } = await import("./contenders/pgboss.ts");
    const boss = await startBoss(task.endpoints.pg!);
    handle = bossDrainWorker(boss, task.queue, task.concurrency, progress.done);
    close = () => boss.stop({ graceful: false, wait: false } as never);
  } else {
    const nats = await import("./contenders/nats.ts");
    const jetqSide = task.contender.startsWith("jetq");
    const nc = jetqSide
      ? await nats.connectJetq(task.endpoints.nats!, "bench-drain", task.contender === "jetq.confirmed.plain")
      : await nats.connectRaw(task.endpoints.nats!, "bench-drain");
    handle = await nats.natsDrainWorker(task.contender, nc, nats.benchQueue(task.queue), task.concurrency, progress.done);
    close = () => nc.close();
  }
  return {
    run: async () => {
      const sampler = task.sampleRss ? rssSampler() : undefined;
      handle.start();
      await stopped;
      const handled = progress.stop();
      await handle.stop();
      if (!sampler) return { handled };
      const heapUsedMiB = mib(process.memoryUsage().heapUsed);
      (globalThis as { gc?: () => void }).gc?.();
      return { handled, ...sampler.stop(), heapUsedMiB, liveHeapAfterGcMiB: mib(process.memoryUsage().heapUsed) };
    },
    close,
  };
}

async function prepareLatency(task: LatencyTask): Promise<Runner> {
  const expected = Math.ceil((task.rate * task.durationMs) / 1000) + 1024;
  const lat = { start: new Samples(expected), pubAck: new Samples(expected), done: new Samples(expected) };
  let t0 = 0;
  let offered = 0;
  let done = 0;
  let failed = 0;
  let measuredFrom = 0;
  const onStart = (data: { t: number }): void => {
    if (data.t >= measuredFrom) lat.start.add(performance.now() - data.t);
  };
  const onDone = (t?: number): void => {
    done++;
    if (t !== undefined && t >= measuredFrom) lat.done.add(performance.now() - t);
  };
  const onAck = (t: number, ok: boolean): void => {
    if (!ok) failed++;
    else if (t >= measuredFrom) lat.pubAck.add(performance.now() - t);
  };
  let publisher: import("./contenders/nats.ts").LatencyPublisher;
  let worker: { start(): void; stop(): Promise<void> };
  let close: () => Promise<void>;
  if (task.contender === "bullmq") {
    const b = await import("./contenders/bullmq.ts");
    const q = b.bullQueue(task.endpoints.redis!, task.queue);
    await q.waitUntilReady();
    publisher = b.bullLatencyPublisher(q, onAck);
    worker = b.bullDrainWorker(task.endpoints.redis!, task.queue, task.concurrency, onDone, onStart);
    close = () => q.close();
  } else {
    const nats = await import("./contenders/nats.ts");
    const jetqSide = task.contender === "jetq";
    // Producer and worker on separate connections, as separate services would have.
    const connectOne = (name: string): Promise<NatsConnection> =>
      jetqSide ? nats.connectJetq(task.endpoints.nats!, name) : nats.connectRaw(task.endpoints.nats!, name);
    const pc = await connectOne("bench-latency-producer");
    const wc = await connectOne("bench-latency-worker");
    const q = nats.benchQueue(task.queue);
    publisher = nats.natsLatencyPublisher(jetqSide ? "jetq" : "raw", pc, q, onAck);
    worker = await nats.natsDrainWorker(jetqSide ? "jetq" : "raw.ack", wc, q, task.concurrency, onDone, onStart);
    close = async () => {
      await pc.close();
      await wc.close();
    };
  }
  return {
    run: async () => {
      worker.start();
      await sleep(200); // let the first pull request reach the server
      const maxInFlight = 1024;
      let capped = 0;
      let maxBacklog = 0;
      t0 = performance.now();
      measuredFrom = t0 + task.warmupMs;
      const end = t0 + task.durationMs;
      // Open loop: every millisecond, offer what the rate says is due (bounded in-flight publishes).
      await new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          const now = performance.now();
          const due = Math.floor((task.rate * (Math.min(now, end) - t0)) / 1000);
          while (offered < due) {
            if (publisher.inFlight() >= maxInFlight) {
              capped++;
              break;
            }
            publisher.publish(offered++, performance.now());
          }
          maxBacklog = Math.max(maxBacklog, offered - done);
          if (now >= end) {
            clearInterval(timer);
            resolve();
          }
        }, 1);
      });
      const offeredEnd = performance.now();
      const backlogAtEnd = offered - done;
      const deadline = offeredEnd + 5000;
      while (done + failed < offered && performance.now() < deadline) await sleep(5);
      const tailMs = performance.now() - offeredEnd;
      const offeredRate = offered / ((offeredEnd - t0) / 1000);
      await publisher.close();
      await worker.stop();
      const keptUp = offeredRate >= task.rate * 0.97 && done === offered && tailMs < 1000;
      return {
        offered,
        done,
        failed,
        offeredRate,
        capped,
        maxBacklog,
        backlogAtEnd,
        tailMs,
        keptUp,
        start: lat.start.summary(),
        pubAck: lat.pubAck.summary(),
        ack: lat.done.summary(),
      };
    },
    close,
  };
}

async function prepareStall(task: StallTask): Promise<Runner> {
  const nats = await import("./contenders/nats.ts");
  const { Producer } = await import("../src/index.ts");
  const { makeJob } = await import("./lib/common.ts");
  const nc = await nats.connectJetq(task.endpoints.nats!, "bench-stall");
  const producer = new Producer(nc, nats.benchQueue(task.queue));
  interface Phase {
    maxRssMiB: number;
    maxHeapUsedMiB: number;
    /** Heap still in use after a full GC at the end of the phase: live data, not GC slack. */
    liveHeapAfterGcMiB?: number;
    ok: number;
    failed: Record<string, number>;
    inFlightMax: number;
  }
  const phases = new Map<string, Phase>();
  const at = (name: string): Phase => {
    let p = phases.get(name);
    if (!p) phases.set(name, (p = { maxRssMiB: 0, maxHeapUsedMiB: 0, ok: 0, failed: {}, inFlightMax: 0 }));
    return p;
  };
  const gc = (globalThis as { gc?: () => void }).gc;
  onPhaseEnd = (name) => {
    if (!gc) return;
    gc();
    at(name).liveHeapAfterGcMiB = mib(process.memoryUsage().heapUsed);
  };
  return {
    run: async () => {
      let n = 0;
      let outstanding = 0;
      const t0 = performance.now();
      const pacer = setInterval(() => {
        const due = Math.floor((task.rate * (performance.now() - t0)) / 1000);
        while (n < due) {
          outstanding++;
          producer.publish(makeJob(n++)).then(
            () => {
              outstanding--;
              at(phase).ok++;
            },
            (err: Error) => {
              outstanding--;
              const f = at(phase).failed;
              f[err.name] = (f[err.name] ?? 0) + 1;
            },
          );
        }
      }, 1);
      const sampler = setInterval(() => {
        const p = at(phase);
        const m = process.memoryUsage();
        p.maxRssMiB = Math.max(p.maxRssMiB, mib(m.rss));
        p.maxHeapUsedMiB = Math.max(p.maxHeapUsedMiB, mib(m.heapUsed));
        p.inFlightMax = Math.max(p.inFlightMax, outstanding);
      }, 100);
      await stopped;
      clearInterval(pacer);
      clearInterval(sampler);
      onPhaseEnd?.(phase);
      const deadline = Date.now() + 8000;
      while (outstanding > 0 && Date.now() < deadline) await sleep(20);
      return { offered: n, phases: Object.fromEntries(phases) };
    },
    close: async () => {
      await producer.close();
      await nc.close();
    },
  };
}

async function prepareExtra(task: ExtraTask): Promise<Runner> {
  const nats = await import("./contenders/nats.ts");
  const jetq = await import("../src/index.ts");
  const { makeJob, benchJobSchema } = await import("./lib/common.ts");
  const v = task.variant;
  const nc = await nats.connectJetq(task.endpoints.nats!, "bench-extra");
  const q = jetq.defineQueue({
    name: task.queue,
    ...(v === "schema" ? { schema: benchJobSchema } : {}),
    ...(task.ackWaitMs !== undefined ? { ackWaitMs: task.ackWaitMs } : {}),
  }) as import("../src/index.ts").Queue<unknown, unknown>;
  await jetq.provisionQueue(nc, q);
  let sdkShutdown: (() => Promise<void>) | undefined;
  if (v === "telemetry-sdk" || v === "sdk-only") sdkShutdown = await installOtelSdk();
  // Every variant but the telemetry ones turns telemetry off, so each measures one extra alone.
  const telemetryOn = v === "telemetry-api" || v === "telemetry-sdk";
  const producer = new jetq.Producer(nc, q, telemetryOn ? {} : { telemetry: false });
  const wc = await nats.connectJetq(task.endpoints.nats!, "bench-extra-worker");
  const progress = { n: 0 };
  let allDone: (() => void) | undefined;
  const handler =
    task.handlerMs !== undefined
      ? async (): Promise<void> => {
          await sleep(task.handlerMs!);
        }
      : (): void => {};
  const worker = new jetq.Worker(wc, q, handler, {
    concurrency: task.concurrency,
    ackMode: v === "confirmed" ? "confirmed" : "fire",
    ...(telemetryOn ? {} : { telemetry: false }),
  });
  worker.on("completed", () => {
    if (++progress.n >= task.jobs) allDone?.();
  });
  worker.on("error", () => {});
  return {
    run: async () => {
      const cpuA = process.cpuUsage();
      const t0 = epochMs();
      const items = Array.from({ length: task.jobs }, (_, i) => makeJob(i));
      await producer.publishMany(items);
      const t1 = epochMs();
      const cpuB = process.cpuUsage(cpuA);
      const finished = new Promise<void>((r) => (allDone = r));
      const t2 = epochMs();
      await worker.start();
      await Promise.race([finished, sleep(120_000)]);
      const t3 = epochMs();
      const cpuC = process.cpuUsage(cpuA);
      await worker.stop();
      return {
        publishSeconds: (t1 - t0) / 1000,
        drainSeconds: (t3 - t2) / 1000,
        drained: progress.n,
        publishCpuSec: (cpuB.user + cpuB.system) / 1e6,
        drainCpuSec: (cpuC.user + cpuC.system - cpuB.user - cpuB.system) / 1e6,
      };
    },
    close: async () => {
      await producer.close();
      await sdkShutdown?.();
      await nc.close();
      await wc.close();
    },
  };
}

/** Registers an OpenTelemetry SDK (tracer and meter providers, exporting nowhere) for this process. */
async function installOtelSdk(): Promise<() => Promise<void>> {
  const api = await import("@opentelemetry/api");
  const { BasicTracerProvider, BatchSpanProcessor } = await import("@opentelemetry/sdk-trace-base");
  const { MeterProvider, PeriodicExportingMetricReader, AggregationTemporality } = await import("@opentelemetry/sdk-metrics");
  const { AsyncLocalStorageContextManager } = await import("@opentelemetry/context-async-hooks");
  const spanExporter = {
    export: (_spans: unknown[], cb: (r: { code: number }) => void): void => cb({ code: 0 }),
    shutdown: async (): Promise<void> => {},
  };
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(spanExporter as never)] });
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  api.trace.setGlobalTracerProvider(tracerProvider);
  const metricExporter = {
    export: (_m: unknown, cb: (r: { code: number }) => void): void => cb({ code: 0 }),
    shutdown: async (): Promise<void> => {},
    forceFlush: async (): Promise<void> => {},
    selectAggregationTemporality: () => AggregationTemporality.CUMULATIVE,
  };
  const meterProvider = new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter: metricExporter as never, exportIntervalMillis: 10_000 })] });
  api.metrics.setGlobalMeterProvider(meterProvider);
  return async () => {
    await tracerProvider.shutdown();
    await meterProvider.shutdown();
  };
}
