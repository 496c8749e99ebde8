import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { DataPointType, MeterProvider, MetricReader, type MetricData } from "@opentelemetry/sdk-metrics";
import {
  defineQueue,
  observeQueues,
  PermanentError,
  Producer,
  provisionQueue,
  QueueFullError,
  queueStats,
  Worker,
  type Job,
  type TelemetryOptions,
} from "../../src/index.ts";
import { w3cTraceContext } from "../../src/telemetry/otel.ts";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";

const nats = useNats();

// Handlers must run inside their attempt's span for user spans to nest; that needs a context manager.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

/** A metric reader the test pulls from. */
class PullReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

interface Sdk {
  spans: InMemorySpanExporter;
  tracerProvider: BasicTracerProvider;
  meterProvider: MeterProvider;
  telemetry: TelemetryOptions;
  metrics(): Promise<MetricData[]>;
  /** Counter/gauge value, or histogram count, of the point whose attributes include `attrs`. */
  value(name: string, attrs: Attributes): Promise<number | undefined>;
  finished(name: string): ReadableSpan[];
}

function sdk(): Sdk {
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const reader = new PullReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const metrics = async (): Promise<MetricData[]> => {
    const { resourceMetrics, errors } = await reader.collect();
    assert.deepEqual(errors, []);
    return resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
  };
  return {
    spans,
    tracerProvider,
    meterProvider,
    telemetry: { tracerProvider, meterProvider },
    metrics,
    async value(name, attrs) {
      const m = (await metrics()).find((x) => x.descriptor.name === name);
      if (!m) return undefined;
      const point = m.dataPoints.find((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v));
      if (!point) return undefined;
      if (m.dataPointType === DataPointType.HISTOGRAM) return (point.value as { count: number }).count;
      return point.value as number;
    },
    finished: (name) => spans.getFinishedSpans().filter((s) => s.name === name),
  };
}

const idOf = (s: ReadableSpan): string => s.spanContext().spanId;

describe("traces", () => {
  it("follows a job from publish to processing across two connections, with the handler's spans nested", async () => {
    const pubConn = await nats.connect();
    const workConn = await nats.connect();
    const t = sdk();
    const q = defineQueue({ name: uniqueName("otel"), schema: z.object({ n: z.number() }) });
    await provisionQueue(pubConn, q);
    const producer = new Producer(pubConn, q, { telemetry: t.telemetry });
    const app = t.tracerProvider.getTracer("app");
    let seen: Job<{ n: number }> | undefined;
    const worker = new Worker(
      workConn,
      q,
      (job) => {
        seen = job;
        app.startSpan("handler-work").end();
      },
      {
        telemetry: t.telemetry,
        // User middleware runs inside the attempt's span, like the handler.
        use: [
          async (_job, next) => {
            app.startSpan("middleware-work").end();
            return next();
          },
        ],
      },
    );
    await worker.start();
    const receipt = await app.startActiveSpan("http-request", async (s) => {
      try {
        return await producer.publish({ n: 1 });
      } finally {
        s.end();
      }
    });
    const process = `process ${q.names.subject}`;
    const [consumer] = await waitFor(() => (t.finished(process).length === 1 ? t.finished(process) : undefined), "process span");
    await worker.stop();
    await producer.close();

    const [request] = t.finished("http-request");
    const [publish] = t.finished(`publish ${q.names.subject}`);
    const [work] = t.finished("handler-work");
    assert.ok(request && publish && consumer && work);

    assert.equal(publish.kind, SpanKind.PRODUCER);
    assert.equal(publish.parentSpanContext?.spanId, idOf(request), "publish span is a child of the caller's span");
    assert.deepEqual(
      { ...publish.attributes },
      {
        "messaging.system": "nats",
        "messaging.destination.name": q.names.subject,
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.message.id": receipt.id,
        "jetq.queue": q.name,
        "jetq.seq": receipt.seq,
        "jetq.duplicate": false,
      },
    );
    assert.equal(publish.status.code, SpanStatusCode.UNSET);

    assert.equal(consumer.kind, SpanKind.CONSUMER);
    assert.equal(consumer.spanContext().traceId, publish.spanContext().traceId, "one trace from publish to processing");
    assert.equal(consumer.parentSpanContext?.spanId, idOf(publish), "process span is a child of the publish span");
    assert.equal(consumer.parentSpanContext?.isRemote, true, "the parent came through the message headers");
    assert.deepEqual(
      { ...consumer.attributes },
      {
        "messaging.system": "nats",
        "messaging.destination.name": q.names.subject,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.consumer.group.name": q.names.consumer,
        "messaging.message.id": receipt.id,
        "messaging.message.body.size": JSON.stringify({ n: 1 }).length,
        "jetq.queue": q.name,
        "jetq.attempt": 1,
        "jetq.seq": receipt.seq,
      },
    );
    assert.equal(consumer.status.code, SpanStatusCode.UNSET);
    assert.equal(work.parentSpanContext?.spanId, idOf(consumer), "spans started in the handler are children of the process span");
    const [mw] = t.finished("middleware-work");
    assert.equal(mw?.parentSpanContext?.spanId, idOf(consumer), "spans started in middleware are children of the process span");
    assert.equal(seen?.headers.traceparent, `00-${publish.spanContext().traceId}-${idOf(publish)}-01`);
  });

  it("records a retry and the dead-lettering as events on the attempt spans, with the error", async () => {
    const nc = await nats.connect();
    const t = sdk();
    const q = defineQueue({ name: uniqueName("otel"), maxAttempts: 2, backoff: [20] });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q, { telemetry: t.telemetry });
    const worker = new Worker(nc, q, () => {
      throw new RangeError("boom");
    }, { telemetry: t.telemetry });
    const dead = new Promise((resolve) => worker.once("dead", resolve));
    await worker.start();
    await producer.publish({ x: 1 });
    await dead;
    const process = `process ${q.names.subject}`;
    const attempts = await waitFor(() => (t.finished(process).length === 2 ? t.finished(process) : undefined), "two process spans");
    await worker.stop();
    await producer.close();

    const [publish] = t.finished(`publish ${q.names.subject}`);
    assert.ok(publish);
    const [first, second] = attempts.sort((a, b) => Number(a.attributes["jetq.attempt"]) - Number(b.attributes["jetq.attempt"]));
    assert.ok(first && second);
    for (const s of [first, second]) {
      assert.equal(s.parentSpanContext?.spanId, idOf(publish), "every attempt is a child of the publish span");
      assert.equal(s.status.code, SpanStatusCode.ERROR);
      assert.equal(s.status.message, "boom");
      assert.equal(s.attributes["error.type"], "RangeError");
      const exception = s.events.find((e) => e.name === "exception");
      assert.equal(exception?.attributes?.["exception.type"], "RangeError");
      assert.equal(exception?.attributes?.["exception.message"], "boom");
    }
    assert.equal(first.attributes["jetq.attempt"], 1);
    const retry = first.events.find((e) => e.name === "jetq.retry");
    assert.deepEqual(retry?.attributes, { "jetq.retry.delay_ms": 20, "jetq.attempt": 1, "exception.type": "RangeError", "exception.message": "boom" });
    assert.equal(second.attributes["jetq.attempt"], 2);
    const deadEvent = second.events.find((e) => e.name === "jetq.dead_letter");
    assert.deepEqual(deadEvent?.attributes, {
      "jetq.dead_letter.reason": "max_attempts",
      "jetq.attempt": 2,
      "exception.type": "RangeError",
      "exception.message": "boom",
    });
    assert.equal(second.events.some((e) => e.name === "jetq.retry"), false);
  });

  it("adds no trace headers without an SDK or with telemetry off, and does with a provider", async () => {
    const nc = await nats.connect();
    const t = sdk();
    const q = defineQueue({ name: uniqueName("otel") });
    await provisionQueue(nc, q);
    const headers: Array<Record<string, string>> = [];
    const worker = new Worker(nc, q, (job) => void headers.push({ ...job.headers }), { telemetry: false });
    await worker.start();
    const global = new Producer(nc, q); // the global API: no SDK registered in this process
    const off = new Producer(nc, q, { telemetry: false });
    const on = new Producer(nc, q, { telemetry: { tracerProvider: t.tracerProvider } });
    await global.publish({ via: "global" });
    await off.publish({ via: "off" });
    await on.publish({ via: "on" });
    await waitFor(() => headers.length === 3, "three jobs handled");
    await worker.stop();
    await Promise.all([global.close(), off.close(), on.close()]);
    assert.equal(headers.filter((h) => "traceparent" in h).length, 1, JSON.stringify(headers));
    assert.equal(t.spans.getFinishedSpans().length, 1, "only the producer with a provider made a span (the worker has telemetry off)");
  });

  it("starts a new trace for a job without trace headers, whatever context the worker was started in", async () => {
    const nc = await nats.connect();
    const t = sdk();
    const q = defineQueue({ name: uniqueName("otel") });
    await provisionQueue(nc, q);
    const worker = new Worker(nc, q, () => {}, { telemetry: t.telemetry });
    await t.tracerProvider.getTracer("app").startActiveSpan("startup", async (s) => {
      await worker.start();
      s.end();
    });
    const producer = new Producer(nc, q, { telemetry: false });
    await producer.publish({});
    const process = `process ${q.names.subject}`;
    const [span] = await waitFor(() => (t.finished(process).length === 1 ? t.finished(process) : undefined), "process span");
    assert.equal(span?.parentSpanContext, undefined, "a root span, not a child of the worker's start-up span");
    await worker.stop();
    await producer.close();
  });

  it("validates the telemetry option and keeps traces or metrics alone when asked", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("otel") });
    await provisionQueue(nc, q);
    assert.throws(() => new Producer(nc, q, { telemetry: "on" as never }), (e: Error) => e.name === "ConfigError" && /`telemetry`/.test(e.message));
    assert.throws(() => new Worker(nc, q, () => {}, { telemetry: 1 as never }), (e: Error) => e.name === "ConfigError");
    const tracesOnly = sdk();
    const metricsOnly = sdk();
    const a = new Producer(nc, q, { telemetry: { ...tracesOnly.telemetry, metrics: false } });
    const b = new Producer(nc, q, { telemetry: { ...metricsOnly.telemetry, traces: false } });
    await a.publish({});
    await b.publish({});
    assert.equal(tracesOnly.spans.getFinishedSpans().length, 1);
    assert.equal(await tracesOnly.value("jetq.jobs.published", { "jetq.queue": q.name }), undefined);
    assert.equal(metricsOnly.spans.getFinishedSpans().length, 0);
    assert.equal(await metricsOnly.value("jetq.jobs.published", { "jetq.queue": q.name }), 1);
    await Promise.all([a.close(), b.close()]);
  });

  it("reads W3C trace context and ignores a malformed one", () => {
    const carrier = new Map<string, string>();
    const getter = { get: (c: Map<string, string>, k: string) => c.get(k), keys: (c: Map<string, string>) => [...c.keys()] };
    const setter = { set: (c: Map<string, string>, k: string, v: string) => void c.set(k, v) };
    carrier.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    carrier.set("tracestate", "vendor=abc,other=1");
    const ctx = w3cTraceContext.extract(ROOT_CONTEXT, carrier, getter);
    const sc = trace.getSpanContext(ctx);
    assert.equal(sc?.traceId, "0af7651916cd43dd8448eb211c80319c");
    assert.equal(sc?.spanId, "b7ad6b7169203331");
    assert.equal(sc?.traceFlags, 1);
    assert.equal(sc?.isRemote, true);
    const out = new Map<string, string>();
    w3cTraceContext.inject(ctx, out, setter);
    assert.equal(out.get("traceparent"), carrier.get("traceparent"));
    assert.equal(out.get("tracestate"), "vendor=abc,other=1");
    for (const bad of ["garbage", "00-00000000000000000000000000000000-b7ad6b7169203331-01", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]) {
      const c = new Map([["traceparent", bad]]);
      assert.equal(trace.getSpanContext(w3cTraceContext.extract(ROOT_CONTEXT, c, getter)), undefined, bad);
    }
  });
});

describe("metrics", () => {
  it("counts published, completed, failed, retried and dead-lettered jobs, with durations and queue wait", async () => {
    const nc = await nats.connect();
    const t = sdk();
    const q = defineQueue({ name: uniqueName("otel"), maxAttempts: 2, backoff: [20] });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q, { telemetry: t.telemetry });
    const worker = new Worker(nc, q, (job: Job<unknown>) => {
      const d = job.data as { kind: string };
      if (d.kind === "fail") throw new TypeError("always fails");
      if (d.kind === "permanent") throw new PermanentError("never works");
    }, { telemetry: t.telemetry });
    let deadCount = 0;
    worker.on("dead", () => deadCount++);
    await worker.start();
    const base = { "jetq.queue": q.name };
    assert.equal(await t.value("jetq.jobs.completed", base), undefined, "nothing before any job");

    await producer.publish({ kind: "ok" });
    await producer.publish({ kind: "ok" }, { id: "same" });
    await producer.publish({ kind: "ok" }, { id: "same" }); // a duplicate
    await waitFor(async () => (await t.value("jetq.jobs.completed", base)) === 2, "2 completed");
    assert.equal(await t.value("jetq.jobs.published", { ...base, "jetq.duplicate": false }), 2);
    assert.equal(await t.value("jetq.jobs.published", { ...base, "jetq.duplicate": true }), 1);
    // The attempt's duration is recorded just after the ack that the counter counts.
    await waitFor(async () => (await t.value("jetq.job.duration", { ...base, "jetq.outcome": "completed" })) === 2, "2 completed durations");
    assert.equal(await t.value("jetq.job.queue_wait", { ...base, "jetq.redelivery": false }), 2);

    await producer.publish({ kind: "fail" });
    await waitFor(() => deadCount === 1, "the failing job dead-lettered");
    await producer.publish({ kind: "permanent" });
    await waitFor(() => deadCount === 2, "the permanent failure dead-lettered");
    await waitFor(async () => (await t.value("jetq.job.duration", { ...base, "jetq.outcome": "dead_lettered" })) === 2, "both dead-letter attempts ended");
    assert.equal(await t.value("jetq.jobs.failed", { ...base, "error.type": "TypeError" }), 2);
    assert.equal(await t.value("jetq.jobs.failed", { ...base, "error.type": "PermanentError" }), 1);
    assert.equal(await t.value("jetq.jobs.retried", base), 1);
    assert.equal(await t.value("jetq.jobs.dead_lettered", { ...base, "jetq.dead_letter.reason": "max_attempts" }), 1);
    assert.equal(await t.value("jetq.jobs.dead_lettered", { ...base, "jetq.dead_letter.reason": "permanent" }), 1);
    assert.equal(await t.value("jetq.job.duration", { ...base, "jetq.outcome": "retried" }), 1);
    assert.equal(await t.value("jetq.job.queue_wait", { ...base, "jetq.redelivery": true }), 1);
    assert.equal(await t.value("jetq.jobs.completed", base), 2, "failures are not completions");

    // The queue wait is measured from the server's timestamp: it is at least the backoff of a retry.
    const wait = (await t.metrics()).find((m) => m.descriptor.name === "jetq.job.queue_wait");
    const again = wait?.dataPoints.find((p) => p.attributes["jetq.redelivery"] === true)?.value as { min?: number } | undefined;
    assert.ok((again?.min ?? 0) >= 0.015, `redelivery waited ${again?.min} s`);
    await worker.stop();
    await producer.close();
  });

  it("counts handlers stuck past their timeout, once each, as the stuck event reports them", async () => {
    const nc = await nats.connect();
    const t = sdk();
    const q = defineQueue({ name: uniqueName("otel"), timeoutMs: 100, backoff: [60_000] });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const releases: Array<() => void> = [];
    const worker = new Worker(nc, q, async (job: Job<unknown>) => {
      if ((job.data as { hang: boolean }).hang) await new Promise<void>((resolve) => releases.push(resolve)); // ignores job.signal
    }, { concurrency: 3, telemetry: t.telemetry });
    const stuck: string[] = [];
    worker.on("stuck", (ev) => stuck.push(ev.id));
    await worker.start();
    const base = { "jetq.queue": q.name };
    await producer.publish({ hang: true }, { id: "h1" });
    await producer.publish({ hang: true }, { id: "h2" });
    await producer.publish({ hang: false }, { id: "ok" });
    await waitFor(() => stuck.length === 2, "two stuck handlers");
    await waitFor(async () => (await t.value("jetq.jobs.completed", base)) === 1, "the other job completed");
    assert.equal(await t.value("jetq.jobs.stuck", base), 2);
    assert.equal(await t.value("jetq.jobs.failed", { ...base, "error.type": "JobTimeoutError" }), 2, "their attempts failed at the timeout");
    for (const r of releases.splice(0)) r();
    await waitFor(() => worker.inFlight === 0, "the stuck handlers settled");
    assert.equal(await t.value("jetq.jobs.stuck", base), 2, "settling late does not count again");
    assert.deepEqual(stuck.sort(), ["h1", "h2"]);
    await worker.stop();
    await producer.close();
  });

  it("counts publish rejects by reason and the time publishes spend blocked on a full window", async () => {
    const nc = await nats.connect();
    const t = sdk();
    const bounded = defineQueue({ name: uniqueName("otel"), maxMessages: 1 });
    const open = defineQueue({ name: uniqueName("otel") });
    await provisionQueue(nc, bounded);
    await provisionQueue(nc, open);

    const full = new Producer(nc, bounded, { telemetry: t.telemetry });
    await full.publish({ i: 1 });
    const err = await full.publish({ i: 2 }).catch((e: unknown) => e);
    assert.ok(err instanceof QueueFullError && err.reason === "stream_full", String(err));
    assert.equal(await t.value("jetq.publish.rejected", { "jetq.queue": bounded.name, "jetq.reject.reason": "stream_full" }), 1);
    const failedSpan = t.finished(`publish ${bounded.names.subject}`).find((s) => s.status.code === SpanStatusCode.ERROR);
    assert.equal(failedSpan?.attributes["error.type"], "QueueFullError");

    const rejecting = new Producer(nc, open, { maxInFlight: 1, overflow: "reject", telemetry: t.telemetry });
    const results = await Promise.allSettled([rejecting.publish({ i: 1 }), rejecting.publish({ i: 2 })]);
    assert.equal(results[0]?.status, "fulfilled");
    assert.equal(results[1]?.status, "rejected");
    assert.equal(await t.value("jetq.publish.rejected", { "jetq.queue": open.name, "jetq.reject.reason": "window_full" }), 1);

    const blocking = new Producer(nc, open, { maxInFlight: 1, overflow: "block", telemetry: t.telemetry });
    await Promise.all([blocking.publish({ i: 1 }), blocking.publish({ i: 2 }), blocking.publish({ i: 3 })]);
    assert.equal(await t.value("jetq.publish.blocked.duration", { "jetq.queue": open.name }), 2, "two publishes waited for the window");
    await Promise.all([full.close(), rejecting.close(), blocking.close()]);
  });

  it("reports worker in-flight and utilisation, and the server-side gauges through observeQueues", async () => {
    const nc = await nats.connect();
    const t = sdk();
    const q = defineQueue({ name: uniqueName("otel") });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q, { telemetry: false });
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let started = 0;
    const worker = new Worker(nc, q, async (job: Job<unknown>) => {
      if ((job.data as { kind: string }).kind === "permanent") throw new PermanentError("no");
      started++;
      await gate;
    }, { concurrency: 2, telemetry: t.telemetry });
    const observer = observeQueues(nc, [q], { meterProvider: t.meterProvider, refreshMs: 0, timeoutMs: 10_000 });
    const base = { "jetq.queue": q.name };
    assert.equal(await t.value("jetq.worker.utilization", base), undefined, "a worker is reported once started");
    await worker.start();
    assert.equal(await t.value("jetq.worker.utilization", base), 0);
    const dead = new Promise((r) => worker.once("dead", r));
    await producer.publish({ kind: "permanent" });
    await dead;
    await producer.publishMany([{ kind: "wait" }, { kind: "wait" }, { kind: "wait" }, { kind: "wait" }, { kind: "wait" }]);
    await waitFor(() => started === 2, "two handlers running");
    assert.equal(await t.value("jetq.worker.in_flight", base), 2);
    assert.equal(await t.value("jetq.worker.concurrency", base), 2);
    assert.equal(await t.value("jetq.worker.utilization", base), 1);
    await waitFor(async () => (await t.value("jetq.queue.depth", base)) === 3, "depth 3 on the server");
    assert.equal(await t.value("jetq.queue.in_flight", base), 2);
    assert.equal(await t.value("jetq.queue.dead_letters", base), 1);
    assert.equal(await t.value("jetq.queue.stored", base), 5);
    assert.equal(await t.value("jetq.queue.redelivered", base), 0);
    assert.equal(await t.value("jetq.queue.credit_window", base), q.maxAckPending);
    open();
    await waitFor(async () => (await t.value("jetq.queue.stored", base)) === 0, "queue drained");
    assert.equal(await t.value("jetq.queue.depth", base), 0);
    await waitFor(async () => (await t.value("jetq.worker.in_flight", base)) === 0, "in flight back to 0");
    assert.equal(await t.value("jetq.worker.utilization", base), 0);
    await worker.stop();
    observer.close();
    await producer.close();
  });

  it("reads the server no more than once per refreshMs, and drops a queue it cannot read", async () => {
    const nc = await nats.connect();
    const t = sdk();
    const q = defineQueue({ name: uniqueName("otel") });
    const missing = defineQueue({ name: uniqueName("missing") });
    await provisionQueue(nc, q);
    const errors: Error[] = [];
    const observer = observeQueues(nc, [q, missing], { meterProvider: t.meterProvider, refreshMs: 60_000, timeoutMs: 10_000, onError: (e) => errors.push(e) });
    assert.equal(await t.value("jetq.queue.depth", { "jetq.queue": q.name }), 0);
    assert.equal(await t.value("jetq.queue.depth", { "jetq.queue": missing.name }), undefined);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.name, "QueueNotFoundError");
    const producer = new Producer(nc, q, { telemetry: false });
    await producer.publish({ i: 1 });
    assert.equal(await t.value("jetq.queue.depth", { "jetq.queue": q.name }), 0, "a collection inside refreshMs reuses the last read");
    assert.equal(errors.length, 1, "and does not read the server again");
    const latest = await observer.refresh();
    assert.equal(latest.find((s) => s.queue === q.name)?.pending, 1);
    assert.equal(await t.value("jetq.queue.depth", { "jetq.queue": q.name }), 1);
    observer.close();
    await producer.close();
  });

  it("gives every metric a unit and a description", async () => {
    const nc = await nats.connect();
    const t = sdk();
    const q = defineQueue({ name: uniqueName("otel") });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q, { telemetry: t.telemetry });
    const worker = new Worker(nc, q, () => {}, { telemetry: t.telemetry });
    const observer = observeQueues(nc, [q], { meterProvider: t.meterProvider, timeoutMs: 10_000 });
    await worker.start();
    await producer.publish({});
    await waitFor(async () => (await t.value("jetq.jobs.completed", { "jetq.queue": q.name })) === 1, "completed");
    const names = (await t.metrics()).map((m) => m.descriptor);
    assert.ok(names.length >= 15, names.map((d) => d.name).join(", "));
    for (const d of names) {
      assert.match(d.name, /^jetq\./);
      assert.ok(d.unit.length > 0, `${d.name} has a unit`);
      assert.ok(d.description.length > 20, `${d.name} has a description`);
    }
    observer.close();
    await worker.stop();
    await producer.close();
  });
});

describe("queueStats", () => {
  it("reads pending, in flight, redelivered and dead letters from the server", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("stats"), maxAttempts: 3, backoff: [10] });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q, { telemetry: false });
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let secondAttempt = false;
    const worker = new Worker(nc, q, async (job: Job<unknown>) => {
      const kind = (job.data as { kind: string }).kind;
      if (kind === "permanent") throw new PermanentError("no");
      if (kind === "flaky" && job.attempt === 1) throw new Error("first attempt fails");
      if (kind === "flaky") secondAttempt = true;
      await gate;
    }, { concurrency: 1, telemetry: false });
    const dead = new Promise((r) => worker.once("dead", r));
    await worker.start();
    await producer.publish({ kind: "permanent" });
    await dead;
    await producer.publish({ kind: "flaky" });
    await waitFor(() => secondAttempt, "the flaky job's second attempt");
    await producer.publishMany([{ kind: "wait" }, { kind: "wait" }]);
    const s = await waitFor(async () => {
      const st = await queueStats(nc, q);
      return st.pending === 2 ? st : undefined;
    }, "two pending");
    assert.deepEqual(s, {
      queue: q.name,
      pending: 2,
      inFlight: 1,
      redelivered: 1,
      stored: 3,
      bytes: s.bytes,
      deadLetters: 1,
      waitingPulls: 0,
      maxAckPending: q.maxAckPending,
      maxMessages: -1,
      paused: false,
      pausedUntilMs: undefined,
    });
    assert.ok(s.bytes > 0);
    open();
    await waitFor(async () => (await queueStats(nc, q)).stored === 0, "all acked");
    const after = await queueStats(nc, q);
    assert.equal(after.inFlight, 0);
    assert.equal(after.redelivered, 0);
    assert.equal(after.deadLetters, 1);
    await worker.stop();
    await producer.close();
  });

  it("throws QueueNotFoundError for a queue that was not provisioned", async () => {
    const nc = await nats.connect();
    const err = await queueStats(nc, defineQueue({ name: uniqueName("none") })).catch((e: unknown) => e);
    assert.equal((err as Error).name, "QueueNotFoundError");
    assert.match((err as Error).message, /provisionQueue/);
  });
});
