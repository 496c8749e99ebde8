import type { ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import { JetqError } from "../errors.ts";
import { mapNatsError } from "../natserr.ts";
import type { Queue } from "../queue/define.ts";
import { copyToDeadLetters, jobIdOf } from "./route.ts";

interface MaxDeliveriesAdvisory {
  type?: string;
  stream?: string;
  consumer?: string;
  stream_seq?: number;
  deliveries?: number;
}

/** @internal */
export interface MoverHooks {
  onDead: (ev: { id: string; seq: number; attempt: number }, err: Error) => void;
  onError: (err: Error) => void;
  /** The server's max_payload, to size dead letters. */
  maxPayload: () => number | undefined;
}

/**
 * @internal Moves jobs the server gave up on to the dead-letter queue.
 *
 * When a job reaches the consumer's `max_deliver` without ever being acked (its
 * worker crashed or stalled on every attempt), the server stops delivering it
 * and publishes a MAX_DELIVERIES advisory. `provisionQueue` captures those
 * advisories in a stream, so none is lost while no worker runs; every worker
 * consumes that stream (one durable consumer, so each advisory is handled once),
 * reads the job by sequence, copies it to the dead-letter stream (confirmed)
 * and only then deletes it from the queue.
 */
export class AdvisoryMover {
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #queue: Queue<unknown, unknown>;
  readonly #hooks: MoverHooks;
  #running = false;
  #iter: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;

  constructor(js: JetStreamClient, jsm: JetStreamManager, queue: Queue<unknown, unknown>, hooks: MoverHooks) {
    this.#js = js;
    this.#jsm = jsm;
    this.#queue = queue;
    this.#hooks = hooks;
  }

  start(): void {
    this.#running = true;
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#iter?.stop();
    this.#wake?.();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const n = this.#queue.names;
    let retryMs = 0;
    while (this.#running) {
      try {
        const c = await this.#js.consumers.get(n.advisoryStream, n.advisoryConsumer);
        while (this.#running) {
          this.#iter = await c.fetch({ max_messages: 16, expires: 5_000 });
          if (!this.#running) this.#iter.stop();
          for await (const m of this.#iter) await this.#handle(m);
          retryMs = 0;
        }
      } catch (err) {
        if (!this.#running) break;
        this.#hooks.onError(mapNatsError(err, `read crash-loop advisories of queue "${this.#queue.name}"`));
        retryMs = Math.min(5_000, Math.max(200, retryMs * 2));
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, retryMs);
          this.#wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.#wake = undefined;
      }
    }
  }

  async #handle(m: JsMsg): Promise<void> {
    let adv: MaxDeliveriesAdvisory;
    try {
      adv = m.json<MaxDeliveriesAdvisory>();
    } catch {
      m.term();
      return;
    }
    const n = this.#queue.names;
    const seq = adv.stream_seq;
    if (typeof seq !== "number" || adv.stream !== n.stream) {
      m.ack();
      return;
    }
    try {
      const job = await this.#jsm.direct.getMessage(n.stream, { seq });
      if (job === null || job.seq !== seq) {
        // Already gone: acked late, or moved by a previous attempt of this very step.
        m.ack();
        return;
      }
      const deliveries = adv.deliveries ?? this.#queue.maxAttempts;
      const error = new JetqError(
        `the server gave up after ${deliveries} deliveries without an ack: the job crashed or stalled its worker on every attempt (or outlived ackWaitMs)`,
      );
      error.name = "MaxDeliveriesError";
      await copyToDeadLetters(this.#js, this.#queue, {
        data: job.data,
        headers: job.header,
        sourceSeq: seq,
        attempts: deliveries,
        publishedAtMs: job.time.getTime(),
        reason: "max_deliveries",
        error,
      }, this.#hooks.maxPayload());
      await this.#jsm.streams.deleteMessage(n.stream, seq, false).catch((err: unknown) => {
        // Deleted in the meantime is fine; anything else is retried through the advisory's redelivery.
        if (!/not found|no message/i.test(String(err))) throw err;
      });
      m.ack();
      this.#hooks.onDead({ id: jobIdOf(job.header, seq), seq, attempt: deliveries }, error);
    } catch (err) {
      m.nak(1_000);
      this.#hooks.onError(mapNatsError(err, `dead-letter crash-looping job ${seq} of queue "${this.#queue.name}"`));
    }
  }
}
