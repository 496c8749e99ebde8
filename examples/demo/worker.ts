/**
 * A thumbnail worker process.
 *
 * Started by the demo (examples/demo/main.ts) as a child process, it reports every job to the
 * parent over IPC. Started on its own (docker-compose, Kubernetes), it reads its settings from
 * the environment, provisions the queue (idempotent), serves Prometheus metrics when
 * METRICS_PORT is set, and drains on SIGTERM:
 *
 *   NATS_URL=nats://127.0.0.1:4222 JETQ_QUEUE=thumbnails node examples/demo/worker.ts
 *
 * Environment: NATS_URL (comma-separated URLs), NATS_USER/NATS_PASSWORD or NATS_CREDS,
 * JETQ_QUEUE (default thumbnails), JETQ_CONCURRENCY (default 8), JETQ_REPLICAS (default 1),
 * METRICS_PORT (unset: no metrics endpoint), JETQ_STOP_TIMEOUT_MS (default 20000).
 */
import { readFileSync } from "node:fs";
import { credsAuthenticator } from "@nats-io/transport-node";
import { connect, PermanentError, provisionQueue, Worker, type TelemetryOptions } from "jetq";
import { demoQueue, fateOf, workMs } from "./workload.ts";

/** Messages a worker sends to the demo. */
export type WorkerReport =
  | { t: "ready" }
  | { t: "start"; id: string; attempt: number }
  | { t: "done"; id: string; attempt: number }
  | { t: "retry"; id: string; attempt: number }
  | { t: "dead"; id: string; attempt: number; reason: string; error: string };

const ipc = typeof process.send === "function";
const send = (m: WorkerReport): void => {
  if (ipc) process.send!(m);
};
const log = (msg: string): void => {
  if (!ipc) process.stdout.write(`${new Date().toISOString()} worker ${process.pid}: ${msg}\n`);
};

const env = process.env;
const queue = demoQueue(env.JETQ_QUEUE ?? "thumbnails", Number(env.JETQ_REPLICAS ?? 1));
const concurrency = Number(env.JETQ_CONCURRENCY ?? 8);

const nc = await connect({
  servers: (env.NATS_URL ?? "nats://127.0.0.1:4222").split(","),
  name: `jetq-demo-worker-${process.pid}`,
  ...(env.NATS_USER ? { user: env.NATS_USER, pass: env.NATS_PASSWORD } : {}),
  ...(env.NATS_CREDS ? { authenticator: credsAuthenticator(readFileSync(env.NATS_CREDS)) } : {}),
  // In a cluster, keep trying other nodes through a leader election or a rolling restart.
  maxReconnectAttempts: -1,
});

let telemetry: TelemetryOptions | undefined;
if (env.METRICS_PORT) {
  // Optional: the Prometheus exporter is a dev dependency of jetq, installed in the example image.
  const { MeterProvider } = await import("@opentelemetry/sdk-metrics");
  const { PrometheusExporter } = await import("@opentelemetry/exporter-prometheus");
  const exporter = new PrometheusExporter({ port: Number(env.METRICS_PORT), host: "0.0.0.0" });
  telemetry = { meterProvider: new MeterProvider({ readers: [exporter] }), traces: false };
  log(`metrics on :${env.METRICS_PORT}/metrics`);
}

if (!ipc) {
  // Standalone: every replica may provision at start; it is idempotent and detects drift.
  await provisionQueue(nc, queue);
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
    }, { once: true });
  });

const worker = new Worker(
  nc,
  queue,
  async (job) => {
    send({ t: "start", id: job.id, attempt: job.attempt });
    const { imageId } = job.data;
    await sleep(workMs(job.data), job.signal);
    const fate = fateOf(imageId);
    if (fate.kind === "corrupt") throw new PermanentError("corrupt JPEG: invalid SOI marker");
    if (fate.kind === "origin-down") throw new Error("origin storage answered HTTP 500");
    if (fate.kind === "flaky" && job.attempt <= fate.failures) throw new Error("timed out fetching the original (ETIMEDOUT)");
  },
  { concurrency, ...(telemetry ? { telemetry } : {}) },
);
worker.on("completed", (j) => send({ t: "done", id: j.id, attempt: j.attempt }));
worker.on("retrying", (j, err, delay) => {
  send({ t: "retry", id: j.id, attempt: j.attempt });
  log(`job ${j.id} attempt ${j.attempt} failed (${err.message}); retry in ${delay} ms`);
});
worker.on("dead", (j, reason, err) => {
  send({ t: "dead", id: j.id, attempt: j.attempt, reason, error: `${err.name}: ${err.message}` });
  log(`job ${j.id} dead-lettered (${reason}): ${err.message}`);
});
worker.on("error", (err) => process.stderr.write(`worker ${process.pid}: ${err.message}\n`));

await worker.start();
send({ t: "ready" });
log(`serving queue ${queue.name} with concurrency ${concurrency}`);

let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  log("draining");
  await worker.stop({ timeoutMs: Number(env.JETQ_STOP_TIMEOUT_MS ?? 20_000) });
  await nc.drain().catch(() => {});
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown());
process.on("SIGINT", () => void shutdown());
// The demo closing its end of the IPC channel means it is gone: do not linger as an orphan.
process.on("disconnect", () => void shutdown());
