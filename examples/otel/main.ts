/**
 * jetq with OpenTelemetry: metrics for Prometheus at http://127.0.0.1:9464/metrics and spans on
 * the console, for a small workload that completes most jobs, retries some and dead-letters a few.
 *
 *   node examples/otel/main.ts                        # starts its own nats-server (like the tests)
 *   NATS_URL=nats://127.0.0.1:4222 node examples/otel/main.ts
 *   curl -s http://127.0.0.1:9464/metrics | grep jetq_
 *
 * Environment: NATS_URL (else a local nats-server on a free port), METRICS_PORT (9464),
 * JOBS (jobs to publish, then idle until stopped; default 500), RATE (jobs per second, 20),
 * QUEUE (queue name, "otel_example"), SPANS ("console" or "none"; "console").
 * Ctrl-C (SIGINT) or SIGTERM stops it gracefully: workers drain, exporters flush.
 *
 * The SDK is set up before any producer or worker exists: jetq reads the global meter
 * provider when they are created (the tracer provider is looked up on every publish).
 */
import { context, metrics, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, BatchSpanProcessor, ConsoleSpanExporter } from "@opentelemetry/sdk-trace-base";
import { connect, defineQueue, observeQueues, PermanentError, Producer, provisionQueue, Worker } from "jetq";
import { startExampleServer } from "../lib/nats-server.ts";

const env = process.env;
const metricsPort = Number(env.METRICS_PORT ?? 9464);
const totalJobs = Number(env.JOBS ?? 500);
const rate = Math.max(1, Number(env.RATE ?? 20));

// ---- OpenTelemetry SDK: this part belongs to the application, not to jetq.
const resource = resourceFromAttributes({ "service.name": "jetq-otel-example" });
const prometheus = new PrometheusExporter({ host: "127.0.0.1", port: metricsPort });
const meterProvider = new MeterProvider({ resource, readers: [prometheus] });
metrics.setGlobalMeterProvider(meterProvider);
const tracerProvider = new BasicTracerProvider({
  resource,
  spanProcessors: env.SPANS === "none" ? [] : [new BatchSpanProcessor(new ConsoleSpanExporter(), { scheduledDelayMillis: 1000 })],
});
trace.setGlobalTracerProvider(tracerProvider);
// Lets spans started inside a handler nest under the job's process span.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

// ---- jetq: nothing telemetry-specific beyond observeQueues; producers and workers use the globals.
const server = await startExampleServer();
const publisherConn = await connect({ servers: server.servers, user: server.user, pass: server.pass, name: "otel-example-producer" });
const workerConn = await connect({ servers: server.servers, user: server.user, pass: server.pass, name: "otel-example-worker" });

const queue = defineQueue({ name: env.QUEUE ?? "otel_example", maxAttempts: 3, backoff: [200, 400] });
await provisionQueue(publisherConn, queue);

const producer = new Producer(publisherConn, queue);
const app = trace.getTracer("otel-example");
const worker = new Worker(
  workerConn,
  queue,
  async (job) => {
    const d = job.data as { n: number };
    // A span of the application's own, a child of jetq's process span.
    await app.startActiveSpan("resize-image", async (span) => {
      await new Promise((r) => setTimeout(r, 5 + (d.n % 7) * 5));
      span.end();
    });
    if (d.n % 50 === 7) throw new PermanentError(`image ${d.n} is corrupt`);
    if (d.n % 10 === 3 && job.attempt === 1) throw new Error(`storage timeout for image ${d.n}`);
  },
  { concurrency: 8 },
);
worker.on("error", (err) => console.error("worker error:", err.message));
await worker.start();
const observer = observeQueues(publisherConn, [queue], { refreshMs: 2000, onError: (err) => console.error("stats:", err.message) });

console.log(`jetq otel example: metrics at http://127.0.0.1:${metricsPort}/metrics (queue "${queue.name}", NATS ${server.servers})`);

const stopping = new AbortController();
let published = 0;
const publishing = (async () => {
  const every = 1000 / rate;
  while (published < totalJobs && !stopping.signal.aborted) {
    const n = published++;
    await app.startActiveSpan("http POST /images", async (span) => {
      try {
        await producer.publish({ n }, { signal: stopping.signal });
      } catch (err) {
        if (!stopping.signal.aborted) console.error("publish failed:", (err as Error).message);
      } finally {
        span.end();
      }
    });
    await new Promise((r) => setTimeout(r, every));
  }
})();

let shuttingDown = false;
async function shutdown(signal: string): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  console.log(`${signal}: stopping`);
  stopping.abort();
  await publishing;
  await producer.close();
  await worker.stop({ timeoutMs: 5000 });
  observer.close();
  await Promise.allSettled([publisherConn.close(), workerConn.close()]);
  await Promise.allSettled([tracerProvider.shutdown(), meterProvider.shutdown()]);
  await server.stop();
  console.log("stopped");
}
process.once("SIGINT", () => void shutdown("SIGINT").then(() => process.exit(0)));
process.once("SIGTERM", () => void shutdown("SIGTERM").then(() => process.exit(0)));
