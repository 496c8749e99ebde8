import type { NatsConnection } from "@nats-io/transport-node";
import type { Queue } from "../queue/define.ts";
import { schedulingTelemetry, type TelemetryOptions } from "../telemetry/otel.ts";
import { ServerClock } from "./clock.ts";
import { Mover } from "./mover.ts";
import { Ticker } from "./ticker.ts";

/** @internal What a process runs for a queue with `scheduling: true`: the mover and the ticker. */
export interface Scheduling {
  /** Stops both; waits for a move or tick in progress. Idempotent. */
  stop(): Promise<void>;
}

/**
 * @internal Starts moving the queue's delayed jobs and firing its schedules, sharing one server
 * clock. Run by every worker (unless `schedules: false`) and by `jetq schedules run`.
 * @throws {@link QueueNotFoundError} the queue was not provisioned with `scheduling: true`.
 */
export async function startScheduling(
  nc: NatsConnection,
  queue: Queue<unknown, unknown>,
  hooks: { error(err: Error): void },
  telemetry?: TelemetryOptions | false,
): Promise<Scheduling> {
  const clock = new ServerClock();
  const lateness = schedulingTelemetry(queue, telemetry);
  const mover = new Mover(nc, queue, { error: hooks.error, moved: (ms) => lateness("delayed", ms) }, clock);
  const ticker = new Ticker(nc, queue, { error: hooks.error, fired: (_n, _t, ms, duplicate) => {
      if (!duplicate) lateness("tick", ms);
    } }, clock);
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopping ??= Promise.allSettled([mover.stop(), ticker.stop()]).then(() => {}));
  try {
    await mover.start();
    await ticker.start();
  } catch (err) {
    await stop();
    throw err;
  }
  return { stop };
}
