import type { MsgHdrs } from "@nats-io/transport-node";
import type { JsMsg } from "@nats-io/jetstream";

/**
 * @internal The seam between the queue code and telemetry. The default is a
 * no-op object, so an uninstrumented producer or worker pays one call to an
 * empty function per event.
 */
export interface TelemetryHooks {
  inject(headers: MsgHdrs): void;
  published(queue: string): void;
  rejected(queue: string): void;
  blocked(queue: string, ms: number): void;
}

const noop = (): void => {};

export const noTelemetry: TelemetryHooks = {
  inject: noop,
  published: noop,
  rejected: noop,
  blocked: noop,
};

/** @internal Per-attempt telemetry handle. */
export interface AttemptSpan {
  end(error: Error | undefined): void;
}

/** @internal Worker-side telemetry seam. */
export interface WorkerTelemetry {
  start(queue: string, msg: JsMsg, job: { id: string; seq: number; attempt: number }): AttemptSpan;
  completed(queue: string, durationMs: number): void;
  retried(queue: string): void;
  dead(queue: string, reason: string): void;
}

const noSpan: AttemptSpan = { end: noop };

export const noWorkerTelemetry: WorkerTelemetry = {
  start: () => noSpan,
  completed: noop,
  retried: noop,
  dead: noop,
};
