/**
 * OpenTelemetry traces and metrics for producers and workers, on
 * `@opentelemetry/api` only: the application installs and configures the SDK.
 *
 * Cost without an SDK: the global tracer provider is a proxy whose delegate is
 * the API's no-op until an SDK registers; each publish and attempt checks that
 * delegate (a pointer comparison) and skips span creation and header injection
 * entirely. The global meter is then the API's no-op meter, and instruments
 * are fed pre-built attribute objects, so a no-SDK hot path allocates nothing
 * for telemetry.
 * @module
 */
import type { Delivered } from "../consumer/pull.ts";
import type { MsgHdrs } from "@nats-io/transport-node";
import {
  type Attributes,
  type Context,
  context,
  createNoopMeter,
  createTraceState,
  isSpanContextValid,
  type Meter,
  type MeterProvider,
  metrics,
  propagation,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  trace,
  type Tracer,
  type TracerProvider,
  ValueType,
} from "@opentelemetry/api";
import type { DeadLetterReason } from "../dlq/route.ts";
import { ConfigError } from "../errors.ts";
import { describe, type Queue } from "../queue/define.ts";
import {
  type AttemptOutcome,
  type AttemptSpan,
  noAttemptSpan,
  noPublishSpan,
  noTelemetry,
  noWorkerTelemetry,
  type PublishSpan,
  type RejectReason,
  type TelemetryHooks,
  type ThrottleLimit,
  type WorkerTelemetry,
} from "./hooks.ts";

/**
 * Where a producer's or worker's spans and metrics go. Pass `false` instead to
 * turn telemetry off for that producer or worker.
 */
export interface TelemetryOptions {
  /**
   * Source of the tracer. Spans are created only while this provider records:
   * the global provider records once an SDK registers one (even after the
   * producer or worker was created).
   * @default the global tracer provider, `trace.getTracerProvider()`
   */
  tracerProvider?: TracerProvider;
  /**
   * Source of the meter. The global meter provider is read when the producer
   * or worker is created, so register the SDK's meter provider first.
   * @default the global meter provider, `metrics.getMeterProvider()`
   */
  meterProvider?: MeterProvider;
  /**
   * Writes trace context into job headers and reads it back.
   * @default the global propagator, or W3C Trace Context (`traceparent`, `tracestate`) when none is registered
   */
  propagator?: TextMapPropagator;
  /** Record spans. @default true */
  traces?: boolean;
  /** Record metrics. @default true */
  metrics?: boolean;
}

/** Instrumentation scope name of every jetq tracer and meter. */
export const INSTRUMENTATION_SCOPE = "jetq";

// ---------------------------------------------------------------- attribute names

/** @internal Span and metric attribute names (OpenTelemetry messaging conventions plus jetq's own). */
export const ATTR = {
  system: "messaging.system",
  destination: "messaging.destination.name",
  operationType: "messaging.operation.type",
  operationName: "messaging.operation.name",
  messageId: "messaging.message.id",
  bodySize: "messaging.message.body.size",
  consumerGroup: "messaging.consumer.group.name",
  errorType: "error.type",
  queue: "jetq.queue",
  attempt: "jetq.attempt",
  seq: "jetq.seq",
  duplicate: "jetq.duplicate",
  outcome: "jetq.outcome",
  redelivery: "jetq.redelivery",
  rejectReason: "jetq.reject.reason",
  deadLetterReason: "jetq.dead_letter.reason",
  retryDelay: "jetq.retry.delay_ms",
} as const;

/** Span event names. */
export const EVENT = {
  retry: "jetq.retry",
  deadLetter: "jetq.dead_letter",
  released: "jetq.released",
} as const;

// ---------------------------------------------------------------- propagation

const headerSetter: TextMapSetter<MsgHdrs> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};

const headerGetter: TextMapGetter<MsgHdrs | undefined> = {
  get(carrier, key) {
    if (!carrier) return undefined;
    // NATS header names keep their case; another client may have written "Traceparent".
    const v = carrier.get(key) || carrier.get(key, "insensitive");
    return v === "" ? undefined : v;
  },
  keys(carrier) {
    return carrier ? carrier.keys() : [];
  },
};

const TRACEPARENT = "traceparent";
const TRACESTATE = "tracestate";
const TRACEPARENT_RE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * W3C Trace Context, used when the application registered no global
 * propagator (a bare `BasicTracerProvider` does not), so that a job's
 * processing span still joins its publishing span.
 */
export const w3cTraceContext: TextMapPropagator = {
  inject(ctx, carrier, setter) {
    const sc = trace.getSpanContext(ctx);
    if (!sc || !isSpanContextValid(sc)) return;
    setter.set(carrier, TRACEPARENT, `00-${sc.traceId}-${sc.spanId}-0${Number(sc.traceFlags || 0).toString(16)}`);
    const ts = sc.traceState?.serialize();
    if (ts) setter.set(carrier, TRACESTATE, ts);
  },
  extract(ctx, carrier, getter) {
    const raw = getter.get(carrier, TRACEPARENT);
    const tp = Array.isArray(raw) ? raw[0] : raw;
    if (!tp) return ctx;
    const m = TRACEPARENT_RE.exec(tp.trim());
    if (!m || m[1] === "ff" || (m[1] === "00" && m[5] !== undefined)) return ctx;
    const sc = { traceId: m[2]!, spanId: m[3]!, traceFlags: parseInt(m[4]!, 16) & 1, isRemote: true };
    if (!isSpanContextValid(sc)) return ctx;
    const rawState = getter.get(carrier, TRACESTATE);
    const state = Array.isArray(rawState) ? rawState.join(",") : rawState;
    return trace.setSpanContext(ctx, state ? { ...sc, traceState: createTraceState(state) } : sc);
  },
  fields() {
    return [TRACEPARENT, TRACESTATE];
  },
};

function propagatorOf(explicit: TextMapPropagator | undefined): () => TextMapPropagator {
  if (explicit) return () => explicit;
  // Read per use: the application may register its propagator after creating producers.
  return () => (propagation.fields().length > 0 ? propagation : w3cTraceContext);
}

// ---------------------------------------------------------------- providers

const NOOP_METER = createNoopMeter();
// ProxyTracerProvider hands out the API's shared no-op provider until an SDK sets a delegate.
const NOOP_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();

function isRecordingProvider(tp: TracerProvider): boolean {
  return tp instanceof ProxyTracerProvider ? tp.getDelegate() !== NOOP_TRACER_PROVIDER : true;
}

interface Resolved {
  tracing: (() => boolean) | undefined;
  tracer: Tracer | undefined;
  propagator: () => TextMapPropagator;
  meter: Meter;
}

function resolve(options: TelemetryOptions | false | undefined, what: string): Resolved | undefined {
  if (options === false) return undefined;
  if (options !== undefined && (typeof options !== "object" || options === null)) {
    throw new ConfigError(`Expected \`telemetry\` of ${what} to be false or an object, got ${describe(options)}`);
  }
  const o = options ?? {};
  const tracesOn = o.traces ?? true;
  const metricsOn = o.metrics ?? true;
  if (!tracesOn && !metricsOn) return undefined;
  const tp = o.tracerProvider ?? trace.getTracerProvider();
  return {
    tracing: tracesOn ? () => isRecordingProvider(tp) : undefined,
    tracer: tracesOn ? tp.getTracer(INSTRUMENTATION_SCOPE) : undefined,
    propagator: propagatorOf(o.propagator),
    meter: metricsOn ? (o.meterProvider ?? metrics.getMeterProvider()).getMeter(INSTRUMENTATION_SCOPE) : NOOP_METER,
  };
}

// ---------------------------------------------------------------- instruments

/** Histogram buckets in seconds, from a millisecond to five minutes. */
const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** @internal A worker as the in-flight and utilisation gauges see it. */
export interface WorkerSource {
  readonly inFlight: number;
  readonly concurrency: number;
}

interface Instruments {
  published: ReturnType<Meter["createCounter"]>;
  rejected: ReturnType<Meter["createCounter"]>;
  blocked: ReturnType<Meter["createHistogram"]>;
  completed: ReturnType<Meter["createCounter"]>;
  failed: ReturnType<Meter["createCounter"]>;
  retried: ReturnType<Meter["createCounter"]>;
  dead: ReturnType<Meter["createCounter"]>;
  throttled: ReturnType<Meter["createCounter"]>;
  stuck: ReturnType<Meter["createCounter"]>;
  duration: ReturnType<Meter["createHistogram"]>;
  wait: ReturnType<Meter["createHistogram"]>;
  /** Started workers of this meter, by queue name; bounded by the workers the application runs. */
  workers: Set<{ queue: string; source: WorkerSource }>;
}

const byMeter = new WeakMap<Meter, Instruments>();

/** One set of instruments (and one observable callback) per meter, however many producers and workers use it. */
function instruments(meter: Meter): Instruments {
  const cached = byMeter.get(meter);
  if (cached) return cached;
  const int = { valueType: ValueType.INT };
  const seconds = { unit: "s", advice: { explicitBucketBoundaries: SECONDS_BUCKETS } };
  const ins: Instruments = {
    published: meter.createCounter("jetq.jobs.published", {
      ...int,
      unit: "{job}",
      description: "Jobs the server confirmed (stored, or recognised as a duplicate when jetq.duplicate is true).",
    }),
    rejected: meter.createCounter("jetq.publish.rejected", {
      ...int,
      unit: "{publish}",
      description: "Publishes turned away with QueueFullError, by jetq.reject.reason (stream_full, window_full, window_timeout).",
    }),
    blocked: meter.createHistogram("jetq.publish.blocked.duration", {
      ...seconds,
      description: "Time a publish waited for a free slot in the producer's full window (overflow \"block\").",
    }),
    completed: meter.createCounter("jetq.jobs.completed", {
      ...int,
      unit: "{job}",
      description: "Jobs whose handler resolved and that were acked.",
    }),
    failed: meter.createCounter("jetq.jobs.failed", {
      ...int,
      unit: "{attempt}",
      description: "Attempts that failed (handler threw or timed out, or the payload could not be decoded or validated), by error.type.",
    }),
    retried: meter.createCounter("jetq.jobs.retried", {
      ...int,
      unit: "{job}",
      description: "Failed jobs handed back to the queue with a backoff delay for another attempt.",
    }),
    dead: meter.createCounter("jetq.jobs.dead_lettered", {
      ...int,
      unit: "{job}",
      description: "Jobs moved to the dead-letter queue, by jetq.dead_letter.reason.",
    }),
    throttled: meter.createCounter("jetq.jobs.throttled", {
      ...int,
      unit: "{job}",
      description: "Job starts held back by a limit and deferred without using an attempt, by jetq.limit (rate, group_concurrency, group_rate).",
    }),
    stuck: meter.createCounter("jetq.jobs.stuck", {
      ...int,
      unit: "{job}",
      description:
        "Handlers still running past their timeoutMs that ignore their abort signal: their attempt failed and their lease is no longer renewed, but they keep their slot until they settle.",
    }),
    duration: meter.createHistogram("jetq.job.duration", {
      ...seconds,
      description: "Processing time of one attempt (handler and settlement), by jetq.outcome.",
    }),
    wait: meter.createHistogram("jetq.job.queue_wait", {
      ...seconds,
      description:
        "Time from the server storing a job to a worker starting it (server clock to worker clock); jetq.redelivery marks attempts after the first, whose wait includes earlier attempts and backoff.",
    }),
    workers: new Set(),
  };
  if (meter !== NOOP_METER) {
    const inFlight = meter.createObservableUpDownCounter("jetq.worker.in_flight", {
      ...int,
      unit: "{job}",
      description: "Jobs this process's workers are handling now.",
    });
    const concurrency = meter.createObservableUpDownCounter("jetq.worker.concurrency", {
      ...int,
      unit: "{job}",
      description: "Handler slots of this process's running workers.",
    });
    const utilization = meter.createObservableGauge("jetq.worker.utilization", {
      unit: "1",
      description: "Busy share of this process's handler slots: in flight / concurrency, 0 to 1.",
    });
    meter.addBatchObservableCallback(
      (result) => {
        const sums = new Map<string, [number, number]>();
        for (const w of ins.workers) {
          const s = sums.get(w.queue) ?? [0, 0];
          s[0] += w.source.inFlight;
          s[1] += w.source.concurrency;
          sums.set(w.queue, s);
        }
        for (const [queue, [busy, slots]] of sums) {
          const attrs = { [ATTR.queue]: queue };
          result.observe(inFlight, busy, attrs);
          result.observe(concurrency, slots, attrs);
          result.observe(utilization, slots > 0 ? busy / slots : 0, attrs);
        }
      },
      [inFlight, concurrency, utilization],
    );
  }
  byMeter.set(meter, ins);
  return ins;
}

function recordError(span: Span, error: Error): void {
  span.recordException(error);
  span.setAttribute(ATTR.errorType, error.name || "Error");
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
}

// ---------------------------------------------------------------- producer

class ProducerSpan implements PublishSpan {
  readonly #span: Span;
  readonly #idFromSeq: boolean;
  #ended = false;
  constructor(span: Span, idFromSeq: boolean) {
    this.#span = span;
    this.#idFromSeq = idFromSeq;
  }
  end(error: Error | undefined, receipt?: { id: string; seq: number; duplicate: boolean }): void {
    if (this.#ended) return;
    this.#ended = true;
    if (receipt) {
      // A job published without an id gets its id (`seq-<seq>`) with the PubAck.
      if (this.#idFromSeq) this.#span.setAttribute(ATTR.messageId, receipt.id);
      this.#span.setAttribute(ATTR.seq, receipt.seq);
      this.#span.setAttribute(ATTR.duplicate, receipt.duplicate);
    }
    if (error) recordError(this.#span, error);
    this.#span.end();
  }
}

/** @internal Telemetry of one producer (one queue). */
export function producerTelemetry(queue: Queue<unknown, unknown>, options: TelemetryOptions | false | undefined): TelemetryHooks {
  const r = resolve(options, "the producer");
  if (!r) return noTelemetry;
  const ins = instruments(r.meter);
  const subject = queue.names.subject;
  const spanName = `publish ${subject}`;
  const base = { [ATTR.queue]: queue.name };
  const stored = { ...base, [ATTR.duplicate]: false };
  const duplicate = { ...base, [ATTR.duplicate]: true };
  const rejects: Record<RejectReason, Attributes> = {
    stream_full: { ...base, [ATTR.rejectReason]: "stream_full" },
    window_full: { ...base, [ATTR.rejectReason]: "window_full" },
    window_timeout: { ...base, [ATTR.rejectReason]: "window_timeout" },
  };
  const { tracing, tracer, propagator } = r;
  return {
    publish(_queue, id, headers) {
      if (!tracing || !tracing()) return noPublishSpan;
      const parent = context.active();
      const span = tracer!.startSpan(
        spanName,
        {
          kind: SpanKind.PRODUCER,
          attributes: {
            [ATTR.system]: "nats",
            [ATTR.destination]: subject,
            [ATTR.operationType]: "send",
            [ATTR.operationName]: "publish",
            ...(id === undefined ? {} : { [ATTR.messageId]: id }),
            [ATTR.queue]: queue.name,
          },
        },
        parent,
      );
      propagator().inject(trace.setSpan(parent, span), headers, headerSetter);
      return new ProducerSpan(span, id === undefined);
    },
    tracesPublishes() {
      return tracing !== undefined && tracing();
    },
    published(_queue, dup) {
      ins.published.add(1, dup ? duplicate : stored);
    },
    rejected(_queue, reason) {
      ins.rejected.add(1, rejects[reason] ?? base);
    },
    blocked(_queue, ms) {
      ins.blocked.record(ms / 1000, base);
    },
  };
}

// ---------------------------------------------------------------- worker

type OutcomeName = "completed" | "failed" | "retried" | "dead_lettered" | "released";

const MAX_ERROR_TYPES = 64;

class Attempt implements AttemptSpan {
  readonly #w: WorkerState;
  readonly #span: Span | undefined;
  readonly #ctx: Context | undefined;
  readonly #started = performance.now();
  readonly #attempt: number;
  #ended = false;
  constructor(w: WorkerState, span: Span | undefined, ctx: Context | undefined, attempt: number) {
    this.#w = w;
    this.#span = span;
    this.#ctx = ctx;
    this.#attempt = attempt;
  }
  run<R>(fn: () => R): R {
    return this.#ctx ? context.with(this.#ctx, fn) : fn();
  }
  end(error: Error | undefined, outcome?: AttemptOutcome): void {
    if (this.#ended) return;
    this.#ended = true;
    const w = this.#w;
    const name: OutcomeName =
      outcome === undefined ? (error ? "failed" : "completed")
      : outcome.kind === "retry" ? "retried"
      : outcome.kind === "dead" ? "dead_lettered"
      : "released";
    w.ins.duration.record((performance.now() - this.#started) / 1000, w.outcomes[name]);
    if (error && name !== "released") w.ins.failed.add(1, w.errorAttrs(error));
    const span = this.#span;
    if (!span) return;
    if (error) recordError(span, error);
    if (outcome?.kind === "retry") {
      span.addEvent(EVENT.retry, {
        [ATTR.retryDelay]: outcome.delayMs,
        [ATTR.attempt]: this.#attempt,
        ...(error ? { "exception.type": error.name, "exception.message": error.message } : {}),
      });
    } else if (outcome?.kind === "dead") {
      span.addEvent(EVENT.deadLetter, {
        [ATTR.deadLetterReason]: outcome.reason,
        [ATTR.attempt]: this.#attempt,
        ...(error ? { "exception.type": error.name, "exception.message": error.message } : {}),
      });
    } else if (outcome?.kind === "released") {
      span.addEvent(EVENT.released);
    }
    span.end();
  }
}

class WorkerState implements WorkerTelemetry {
  readonly ins: Instruments;
  readonly outcomes: Record<OutcomeName, Attributes>;
  readonly #queue: Queue<unknown, unknown>;
  readonly #entry: { queue: string; source: WorkerSource };
  readonly #base: Attributes;
  readonly #first: Attributes;
  readonly #again: Attributes;
  readonly #errors = new Map<string, Attributes>();
  readonly #dead = new Map<string, Attributes>();
  readonly #r: Resolved;
  readonly #spanName: string;
  readonly #noMeter: boolean;

  constructor(queue: Queue<unknown, unknown>, source: WorkerSource, r: Resolved) {
    this.#queue = queue;
    this.#r = r;
    this.ins = instruments(r.meter);
    this.#entry = { queue: queue.name, source };
    const base = { [ATTR.queue]: queue.name };
    this.#base = base;
    this.#first = { ...base, [ATTR.redelivery]: false };
    this.#again = { ...base, [ATTR.redelivery]: true };
    const o = (n: OutcomeName): Attributes => ({ ...base, [ATTR.outcome]: n });
    this.outcomes = {
      completed: o("completed"),
      failed: o("failed"),
      retried: o("retried"),
      dead_lettered: o("dead_lettered"),
      released: o("released"),
    };
    this.#spanName = `process ${queue.names.subject}`;
    this.#noMeter = r.meter === NOOP_METER;
  }

  errorAttrs(error: Error): Attributes {
    const key = this.#errors.size < MAX_ERROR_TYPES || this.#errors.has(error.name) ? error.name || "Error" : "_OTHER";
    let a = this.#errors.get(key);
    if (!a) {
      a = { ...this.#base, [ATTR.errorType]: key };
      this.#errors.set(key, a);
    }
    return a;
  }

  attach(): void {
    this.ins.workers.add(this.#entry);
  }
  detach(): void {
    this.ins.workers.delete(this.#entry);
  }

  start(_queue: string, msg: Delivered, job: { id: string; seq: number; attempt: number }): AttemptSpan {
    const r = this.#r;
    const tracing = r.tracing !== undefined && r.tracing();
    // Nothing to measure: hand out the shared no-op attempt instead of one object per job.
    if (!tracing && this.#noMeter) return noAttemptSpan;
    const waitMs = Date.now() - msg.storedAtMs;
    this.ins.wait.record(Math.max(0, waitMs) / 1000, job.attempt > 1 ? this.#again : this.#first);
    if (!tracing) return new Attempt(this, undefined, undefined, job.attempt);
    // Not context.active(): the pull loop carries the context worker.start() was called in, and a
    // job without trace headers must start its own trace rather than join the worker's start-up.
    const parent = r.propagator().extract(ROOT_CONTEXT, msg.headers, headerGetter);
    const span = r.tracer!.startSpan(
      this.#spanName,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          [ATTR.system]: "nats",
          [ATTR.destination]: this.#queue.names.subject,
          [ATTR.operationType]: "process",
          [ATTR.operationName]: "process",
          [ATTR.consumerGroup]: this.#queue.names.consumer,
          [ATTR.messageId]: job.id,
          [ATTR.bodySize]: msg.data.length,
          [ATTR.queue]: this.#queue.name,
          [ATTR.attempt]: job.attempt,
          [ATTR.seq]: job.seq,
        },
      },
      parent,
    );
    return new Attempt(this, span, trace.setSpan(parent, span), job.attempt);
  }

  completed(): void {
    this.ins.completed.add(1, this.#base);
  }
  retried(): void {
    this.ins.retried.add(1, this.#base);
  }
  throttled(_queue: string, limit: ThrottleLimit): void {
    this.ins.throttled.add(1, { ...this.#base, "jetq.limit": limit });
  }
  stuck(): void {
    this.ins.stuck.add(1, this.#base);
  }
  dead(_queue: string, reason: DeadLetterReason): void {
    let a = this.#dead.get(reason);
    if (!a) {
      a = { ...this.#base, [ATTR.deadLetterReason]: reason };
      this.#dead.set(reason, a);
    }
    this.ins.dead.add(1, a);
  }
}

/** @internal Telemetry of one worker (one queue). `source` is read when gauges are collected. */
export function workerTelemetry(
  queue: Queue<unknown, unknown>,
  source: WorkerSource,
  options: TelemetryOptions | false | undefined,
): WorkerTelemetry {
  const r = resolve(options, "the worker");
  return r ? new WorkerState(queue, source, r) : noWorkerTelemetry;
}

/**
 * @internal The lateness of delayed jobs and schedule ticks: due time (server clock) to the job
 * entering the queue, as the histogram `jetq.schedule.lateness` with `jetq.schedule.kind`
 * (`delayed` or `tick`). A no-op without an SDK or with `telemetry: false`.
 */
export function schedulingTelemetry(queue: Queue<unknown, unknown>, options: TelemetryOptions | false | undefined): (kind: "delayed" | "tick", ms: number) => void {
  const r = resolve(options, "the worker");
  if (!r || r.meter === NOOP_METER) return () => {};
  const h = r.meter.createHistogram("jetq.schedule.lateness", {
    unit: "s",
    advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
    description: "Time from a delayed job's due time or a schedule's tick (server clock) to the job entering the queue, by jetq.schedule.kind.",
  });
  const attrs = { delayed: { [ATTR.queue]: queue.name, "jetq.schedule.kind": "delayed" }, tick: { [ATTR.queue]: queue.name, "jetq.schedule.kind": "tick" } };
  return (kind, ms) => h.record(Math.max(0, ms) / 1000, attrs[kind]);
}
