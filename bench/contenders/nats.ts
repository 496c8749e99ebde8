// The NATS contenders: jetq through its public API only, and the best hand-written code on the
// raw @nats-io/jetstream client (see ../shared/PERFORMANCE.md for how those were chosen).
import { connect, createInbox, headers as natsHeaders, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { jetstream, type JsMsg } from "@nats-io/jetstream";
import { connect as jetqConnect, Producer, Worker } from "../../src/index.ts";
import { defineQueue, type Queue } from "../../src/queue/define.ts";
import { benchJobSchema, epochMs, forEachConcurrent, makeJob, Slots } from "../lib/common.ts";
import type { PublishContender } from "../lib/tasks.ts";

/** Publish loops (one call per job, awaited) run this many callers at once: jetq's default `maxInFlight`. */
export const LOOP_CALLERS = 1024;
/** The raw PublishAsync-style window: jetq's default `maxInFlight`, so the two send alike. */
export const RAW_WINDOW = 1024;

export function connectRaw(servers: string, name: string): Promise<NatsConnection> {
  // The raw contenders are "the best hand-written code": async traces off, as PERFORMANCE.md measured.
  return connect({ servers, name, noAsyncTraces: true });
}

/**
 * jetq as a user gets it: jetq's `connect()` (which sets `noAsyncTraces: true`), or with `plain`
 * the NATS client's own `connect()` with its defaults (async traces on).
 */
export function connectJetq(servers: string, name: string, plain = false): Promise<NatsConnection> {
  return plain ? connect({ servers, name }) : jetqConnect({ servers, name });
}

export function benchQueue(name: string, schema = false): Queue<unknown, unknown> {
  return (schema ? defineQueue({ name, schema: benchJobSchema }) : defineQueue({ name })) as Queue<unknown, unknown>;
}

/**
 * The PublishAsync pattern of the Go and Java clients, hand-written: core publish with a reply
 * subject on one wildcard inbox subscription, PubAcks matched by token and parsed, a bounded
 * window, and one timer sweeping expired entries.
 */
export class RawAsyncPublisher<M = undefined> {
  readonly #nc: NatsConnection;
  readonly #prefix = createInbox();
  readonly #window: number;
  readonly #timeoutMs: number;
  readonly #pending = new Map<string, { deadline: number; meta: M }>();
  readonly #sub: Subscription;
  readonly #sweeper: NodeJS.Timeout;
  readonly #onAck: ((meta: M, ok: boolean) => void) | undefined;
  #next = 0;
  #wake: (() => void) | undefined;
  acked = 0;
  failed = 0;

  constructor(nc: NatsConnection, window: number, onAck?: (meta: M, ok: boolean) => void, timeoutMs = 5000) {
    this.#nc = nc;
    this.#window = window;
    this.#timeoutMs = timeoutMs;
    this.#onAck = onAck;
    const cut = this.#prefix.length + 1;
    this.#sub = nc.subscribe(`${this.#prefix}.*`, {
      callback: (err, m) => {
        if (err) return;
        const token = m.subject.slice(cut);
        const p = this.#pending.get(token);
        if (!p) return;
        this.#pending.delete(token);
        let ok = !(m.headers && m.headers.hasError);
        if (ok) {
          const ack = JSON.parse(m.string()) as { error?: unknown };
          ok = ack.error === undefined;
        }
        if (ok) this.acked++;
        else this.failed++;
        this.#onAck?.(p.meta, ok);
        this.#wakeUp();
      },
    });
    this.#sweeper = setInterval(() => {
      const now = Date.now();
      for (const [token, p] of this.#pending) {
        if (p.deadline > now) break;
        this.#pending.delete(token);
        this.failed++;
        this.#onAck?.(p.meta, false);
      }
      this.#wakeUp();
    }, 250);
  }

  get full(): boolean {
    return this.#pending.size >= this.#window;
  }
  get inFlight(): number {
    return this.#pending.size;
  }

  /** Resolves when the window has room (one waiter at a time: the single sending loop). */
  room(): Promise<void> {
    if (!this.full) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  send(subject: string, payload: string | Uint8Array, headers: MsgHdrs | undefined, meta: M): void {
    const token = (this.#next++).toString(36);
    this.#pending.set(token, { deadline: Date.now() + this.#timeoutMs, meta });
    this.#nc.publish(subject, payload, headers ? { reply: `${this.#prefix}.${token}`, headers } : { reply: `${this.#prefix}.${token}` });
  }

  /** Waits until every sent publish is confirmed or swept (bounded by the ack timeout). */
  async settle(): Promise<void> {
    const deadline = Date.now() + this.#timeoutMs + 1000;
    while (this.#pending.size > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  }

  close(): void {
    clearInterval(this.#sweeper);
    this.#sub.unsubscribe();
  }

  #wakeUp(): void {
    if (this.#wake && this.#pending.size < this.#window) {
      const w = this.#wake;
      this.#wake = undefined;
      w();
    }
  }
}

/** How a {@link RawFastPublisher} sends: the knobs issue 21 asked to try. */
export interface RawFastConfig {
  /** Reuse an answered publish's reply subject (as jetq does) instead of a fresh token per publish. */
  readonly reuse: boolean;
  /** Encode the payload to bytes (TextEncoder) before `publish`, instead of passing the string. */
  readonly bytes: boolean;
  /** Publishes unconfirmed at once. */
  readonly window: number;
  /**
   * Called once per publish when it is answered (`ok`: the stream stored it) or expires (`ok`
   * false), with the slot {@link RawFastPublisher.send} returned; `reuse` only. Lets a raw loop act
   * on each confirmation without a promise per publish.
   */
  readonly onAnswer?: (slot: number, ok: boolean) => void;
}

/**
 * The fastest PublishAsync loop we could write on the public nats.js API: numeric tokens parsed
 * from the reply subject (no string keys), the PubAck checked for an error from its bytes (a
 * PubAck starts `{"stream"`, an error `{"error"`), one timer sweeping expired entries. With
 * `reuse`, reply subjects live in slots made once: an answered slot carries the next publish, so
 * no subject string is built per publish (one whose publish expired is retired, as jetq does).
 */
export class RawFastPublisher {
  readonly #nc: NatsConnection;
  readonly #prefix = createInbox();
  readonly #cfg: RawFastConfig;
  readonly #timeoutMs: number;
  readonly #enc = new TextEncoder();
  /** Without reuse: deadline by token. */
  readonly #pending = new Map<number, number>();
  /** With reuse: slot → reply subject, deadline (0 = free), and the free slots. */
  readonly #subjects: string[] = [];
  readonly #deadlines: number[] = [];
  readonly #free: number[] = [];
  /** With reuse: slot → the promise of a `request` waiting on it. */
  readonly #waiters: Array<{ resolve: () => void; reject: (e: Error) => void } | undefined> = [];
  #open = 0;
  readonly #sub: Subscription;
  readonly #sweeper: NodeJS.Timeout;
  #next = 0;
  #wake: (() => void) | undefined;
  acked = 0;
  failed = 0;

  constructor(nc: NatsConnection, cfg: RawFastConfig, timeoutMs = 5000) {
    this.#nc = nc;
    this.#cfg = cfg;
    this.#timeoutMs = timeoutMs;
    const cut = this.#prefix.length + 1;
    this.#sub = nc.subscribe(`${this.#prefix}.*`, {
      callback: (err, m) => {
        if (err) return;
        const s = m.subject;
        let token = 0;
        for (let i = cut; i < s.length; i++) token = token * 10 + s.charCodeAt(i) - 48;
        if (cfg.reuse) {
          if (!(this.#deadlines[token]! > 0)) return;
          this.#deadlines[token] = 0;
          this.#free.push(token);
        } else if (!this.#pending.delete(token)) return;
        this.#open--;
        const d = m.data;
        const ok = !((m.headers && m.headers.hasError) || d[2] !== 0x73);
        if (ok) this.acked++;
        else this.failed++;
        if (cfg.reuse) this.#answer(token, ok);
        this.#wakeUp();
      },
    });
    this.#sweeper = setInterval(() => this.#sweep(Date.now()), 250);
  }

  get full(): boolean {
    return this.#open >= this.#cfg.window;
  }

  room(): Promise<void> {
    if (!this.full) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  /** Sends one publish; returns its slot (with `reuse`) or token. */
  send(subject: string, payload: string, headers: MsgHdrs | undefined): number {
    const deadline = Date.now() + this.#timeoutMs;
    let reply: string;
    let token: number;
    if (this.#cfg.reuse) {
      let slot = this.#free.pop();
      if (slot === undefined) {
        slot = this.#next++;
        this.#subjects[slot] = `${this.#prefix}.${slot}`;
      }
      this.#deadlines[slot] = deadline;
      reply = this.#subjects[slot]!;
      token = slot;
    } else {
      token = this.#next++;
      this.#pending.set(token, deadline);
      reply = `${this.#prefix}.${token}`;
    }
    this.#open++;
    const data = this.#cfg.bytes ? this.#enc.encode(payload) : payload;
    this.#nc.publish(subject, data, headers ? { reply, headers } : { reply });
    return token;
  }

  /**
   * One publish as a promise, settled by its PubAck (the form a "publish in a loop" needs); `reuse`
   * only, and the caller keeps at most `window` open (one loop lane per slot).
   */
  request(subject: string, payload: string, headers: MsgHdrs | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#waiters[this.send(subject, payload, headers)] = { resolve, reject };
    });
  }

  #answer(slot: number, ok: boolean): void {
    this.#cfg.onAnswer?.(slot, ok);
    const w = this.#waiters[slot];
    if (w === undefined) return;
    this.#waiters[slot] = undefined;
    if (ok) w.resolve();
    else w.reject(new Error("publish failed"));
  }

  async settle(): Promise<void> {
    const deadline = Date.now() + this.#timeoutMs + 1000;
    while (this.#open > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  }

  close(): void {
    clearInterval(this.#sweeper);
    this.#sub.unsubscribe();
  }

  #sweep(now: number): void {
    if (this.#cfg.reuse) {
      for (let slot = 0; slot < this.#deadlines.length; slot++) {
        const d = this.#deadlines[slot]!;
        if (d > 0 && d <= now) {
          // Retired: a late answer must not confirm a later publish, so the slot gets a fresh subject.
          this.#deadlines[slot] = 0;
          this.#answer(slot, false);
          const fresh = this.#next++;
          this.#subjects[fresh] = `${this.#prefix}.${fresh}`;
          this.#free.push(fresh);
          this.#open--;
          this.failed++;
        }
      }
    } else {
      for (const [token, d] of this.#pending) {
        if (d > now) break;
        this.#pending.delete(token);
        this.#open--;
        this.failed++;
      }
    }
    this.#wakeUp();
  }

  #wakeUp(): void {
    if (this.#wake && this.#open < this.#cfg.window) {
      const w = this.#wake;
      this.#wake = undefined;
      w();
    }
  }
}

/** The raw variants the publish scenario measures; `raw.async` is the fastest of them (BENCHMARKS.md shows all). */
export const RAW_VARIANTS: Readonly<Record<string, RawFastConfig>> = {
  "raw.async": { reuse: true, bytes: false, window: RAW_WINDOW },
  "raw.async.fresh": { reuse: false, bytes: false, window: RAW_WINDOW },
  "raw.async.bytes": { reuse: true, bytes: true, window: RAW_WINDOW },
  "raw.async.w4096": { reuse: true, bytes: false, window: 4096 },
};

/** The headers jetq sends: `Nats-Msg-Id` when the caller gives an id, else none. */
export function jetqLikeHeaders(id: string | undefined): MsgHdrs | undefined {
  if (id === undefined) return undefined;
  const h = natsHeaders();
  h.set("Nats-Msg-Id", id);
  return h;
}

/** Fills a queue's subject fast (for drain backlogs): the raw async path, jetq's headers. */
export async function prefill(nc: NatsConnection, subject: string, jobs: number): Promise<void> {
  const pub = new RawAsyncPublisher(nc, 4096, undefined, 30_000);
  try {
    for (let i = 0; i < jobs; i++) {
      if (pub.full) await pub.room();
      pub.send(subject, JSON.stringify(makeJob(i)), jetqLikeHeaders(undefined), undefined);
    }
    await pub.settle();
    if (pub.failed > 0) throw new Error(`prefill: ${pub.failed} of ${jobs} publishes failed`);
  } finally {
    pub.close();
  }
}

/**
 * The floor of confirmed publishing on this machine, not a way anyone should publish: payloads (and,
 * with ids, their `Nats-Msg-Id` headers) are encoded before the clock starts, every publish carries
 * the same reply subject, and PubAcks are only counted (one byte checked for an error), not parsed
 * or matched. No producer can do less per job, so its rate is the ceiling the server and the NATS
 * client's own publish and receive paths put on any client code here. Returns the timed part,
 * which resolves with the number of failed or unconfirmed publishes.
 */
export function prepareFloor(nc: NatsConnection, subject: string, jobs: number, ids: boolean, tag: string, window = RAW_WINDOW): () => Promise<number> {
  const enc = new TextEncoder();
  const payloads = Array.from({ length: jobs }, (_, i) => enc.encode(JSON.stringify(makeJob(i))));
  const hdrs = ids ? Array.from({ length: jobs }, (_, i) => jetqLikeHeaders(`${tag}-${i}`)!) : undefined;
  const reply = createInbox();
  const OPEN_BRACE = 0x7b;
  const S = 0x73; // a PubAck starts {"stream": ...; an error {"error": ...
  return async () => {
    let sent = 0;
    let answered = 0;
    let failed = 0;
    let wake: (() => void) | undefined;
    const sub = nc.subscribe(reply, {
      callback: (err, m) => {
        answered++;
        const d = m.data;
        if (err || (m.headers && m.headers.hasError) || d[0] !== OPEN_BRACE || d[2] !== S) failed++;
        if (wake && sent - answered < window) {
          const w = wake;
          wake = undefined;
          w();
        }
      },
    });
    // One timer for the whole run bounds every wait below; the callback does the waking.
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      wake?.();
    }, 30_000 + jobs);
    const sleep = (): Promise<void> =>
      new Promise((resolve) => {
        wake = resolve;
      });
    try {
      for (let i = 0; i < jobs && !expired; i++) {
        while (sent - answered >= window && !expired) await sleep();
        if (expired) break;
        if (hdrs) nc.publish(subject, payloads[i]!, { reply, headers: hdrs[i]! });
        else nc.publish(subject, payloads[i]!, { reply });
        sent++;
      }
      while (answered < sent && !expired) await sleep();
      return failed + (jobs - answered);
    } finally {
      clearTimeout(timer);
      sub.unsubscribe();
    }
  };
}

/** The publish contenders this file runs: every one but the floor (prepareFloor) and the other systems'. */
export type NatsPublishContender = Exclude<PublishContender, "raw.floor" | "bullmq.addBulk" | "bullmq.add" | "pgboss.insert">;

/** Publishes `jobs` jobs; resolves when every one is confirmed. Returns how many failed. */
export async function natsPublish(
  contender: NatsPublishContender,
  nc: NatsConnection,
  queue: Queue<unknown, unknown>,
  jobs: number,
  ids: boolean,
  tag: string,
): Promise<number> {
  const subject = queue.names.subject;
  const idOf = (n: number): string => `${tag}-${n}`;
  switch (contender) {
    case "jetq.publishMany": {
      const producer = new Producer(nc, queue);
      const items = Array.from({ length: jobs }, (_, i) => makeJob(i));
      await producer.publishMany(items, ids ? { id: (x) => idOf((x as { n: number }).n) } : {});
      await producer.close();
      return 0;
    }
    case "jetq.publishMany.validateAll": {
      // The all-or-nothing option: every item validated and encoded before the first is sent.
      const producer = new Producer(nc, queue);
      const items = Array.from({ length: jobs }, (_, i) => makeJob(i));
      await producer.publishMany(items, ids ? { chunkSize: Infinity, id: (x) => idOf((x as { n: number }).n) } : { chunkSize: Infinity });
      await producer.close();
      return 0;
    }
    case "jetq.publishMany.chunked": {
      // How BullMQ's addBulk and pg-boss's insert are driven here: chunks of 1,000, 4 calls in flight.
      const producer = new Producer(nc, queue);
      const chunks = Math.ceil(jobs / 1000);
      await forEachConcurrent(chunks, 4, (c) => {
        const items = [];
        for (let i = c * 1000; i < Math.min(jobs, (c + 1) * 1000); i++) items.push(makeJob(i));
        return producer.publishMany(items, ids ? { id: (x) => idOf((x as { n: number }).n) } : {});
      });
      await producer.close();
      return 0;
    }
    case "jetq.publish": {
      const producer = new Producer(nc, queue);
      let failed = 0;
      await forEachConcurrent(jobs, LOOP_CALLERS, (i) =>
        producer.publish(makeJob(i), ids ? { id: idOf(i) } : {}).catch(() => {
          failed++;
        }),
      );
      await producer.close();
      return failed;
    }
    case "raw.async":
    case "raw.async.fresh":
    case "raw.async.bytes":
    case "raw.async.w4096": {
      // The same input as jetq.publishMany: the batch as an array, built in the timed region.
      const pub = new RawFastPublisher(nc, RAW_VARIANTS[contender]!);
      const items = Array.from({ length: jobs }, (_, i) => makeJob(i));
      for (let i = 0; i < jobs; i++) {
        if (pub.full) await pub.room();
        pub.send(subject, JSON.stringify(items[i]), jetqLikeHeaders(ids ? idOf(i) : undefined));
      }
      await pub.settle();
      pub.close();
      return pub.failed + (jobs - pub.acked - pub.failed);
    }
    case "raw.async.promise": {
      // A publish() loop by hand: the fastest raw core with a promise per publish, 1,024 callers.
      const pub = new RawFastPublisher(nc, RAW_VARIANTS["raw.async"]!);
      let failed = 0;
      await forEachConcurrent(jobs, LOOP_CALLERS, (i) =>
        pub.request(subject, JSON.stringify(makeJob(i)), jetqLikeHeaders(ids ? idOf(i) : undefined)).catch(() => {
          failed++;
        }),
      );
      await pub.settle();
      pub.close();
      return failed;
    }
    case "raw.async.textbook": {
      // The textbook form: string tokens in a Map, every PubAck decoded and JSON.parse'd.
      const pub = new RawAsyncPublisher(nc, RAW_WINDOW);
      const items = Array.from({ length: jobs }, (_, i) => makeJob(i));
      for (let i = 0; i < jobs; i++) {
        if (pub.full) await pub.room();
        pub.send(subject, JSON.stringify(items[i]), jetqLikeHeaders(ids ? idOf(i) : undefined), undefined);
      }
      await pub.settle();
      pub.close();
      return pub.failed + (jobs - pub.acked - pub.failed);
    }
    case "raw.js.publish": {
      const js = jetstream(nc);
      let failed = 0;
      await forEachConcurrent(jobs, LOOP_CALLERS, (i) =>
        js.publish(subject, JSON.stringify(makeJob(i)), ids ? { msgID: idOf(i) } : {}).catch(() => {
          failed++;
        }),
      );
      return failed;
    }
  }
}

export type NatsDrainContender = "jetq" | "jetq.confirmed" | "jetq.confirmed.plain" | "raw.ack" | "raw.ackAck";

export interface DrainHandle {
  start(): void;
  stop(): Promise<void>;
}

/**
 * A draining worker with a no-op handler at concurrency 64. `onDone` runs once per job when it
 * is complete: after `ack()` (fire) or once the server confirmed the ack.
 */
export async function natsDrainWorker(
  contender: NatsDrainContender,
  nc: NatsConnection,
  queue: Queue<unknown, unknown>,
  concurrency: number,
  onDone: (t?: number) => void,
  onStart?: (data: { t: number }) => void,
  workerOptions: Record<string, unknown> = {},
): Promise<DrainHandle> {
  if (contender.startsWith("jetq")) {
    // Latency runs need each job's publish time at completion; the event carries only the id.
    const times = new Map<string, number>();
    const worker = new Worker(
      nc,
      queue,
      onStart
        ? (job) => {
            const data = job.data as { t: number };
            times.set(job.id, data.t);
            onStart(data);
          }
        : () => {},
      { concurrency, ackMode: contender === "jetq" ? "fire" : "confirmed", ...workerOptions },
    );
    if (onStart) {
      worker.on("completed", (ev) => {
        const t = times.get(ev.id);
        times.delete(ev.id);
        onDone(t);
      });
    } else worker.on("completed", () => onDone());
    worker.on("error", () => {});
    return {
      start: () => {
        void worker.start();
      },
      stop: () => worker.stop({ timeoutMs: 5000 }),
    };
  }
  const js = jetstream(nc);
  const confirmed = contender === "raw.ackAck";
  const slots = new Slots(concurrency);
  let stopped = false;
  let iter: Awaited<ReturnType<Awaited<ReturnType<typeof js.consumers.get>>["consume"]>> | undefined;
  const handle = async (m: JsMsg): Promise<void> => {
    try {
      const data = m.json<{ t: number }>();
      onStart?.(data);
      await Promise.resolve(); // the no-op async handler
      if (confirmed) await m.ackAck();
      else m.ack();
      onDone(data.t);
    } catch {
      // a failed ackAck: the job will be redelivered; not counted
    } finally {
      slots.give();
    }
  };
  const loop = async (): Promise<void> => {
    // Looked up at start, as jetq's Worker.start() does, so both pay it inside the timed window.
    const consumer = await js.consumers.get(queue.names.stream, queue.names.consumer);
    iter = await consumer.consume({ max_messages: concurrency });
    if (stopped) iter.stop();
    for await (const m of iter) {
      const wait = slots.take();
      if (wait) await wait;
      void handle(m);
    }
  };
  return {
    start: () => {
      void loop();
    },
    stop: async () => {
      stopped = true;
      iter?.stop();
      await nc.flush().catch(() => {});
    },
  };
}

/** Publishes one job per call for the latency runs; `onAck` gets the publish's start time. */
export interface LatencyPublisher {
  publish(n: number, t: number): void;
  inFlight(): number;
  close(): Promise<void>;
}

export function natsLatencyPublisher(
  kind: "jetq" | "raw",
  nc: NatsConnection,
  queue: Queue<unknown, unknown>,
  onAck: (t: number, ok: boolean) => void,
): LatencyPublisher {
  if (kind === "jetq") {
    const producer = new Producer(nc, queue);
    let inFlight = 0;
    return {
      publish: (n, t) => {
        inFlight++;
        producer.publish(makeJob(n, t)).then(
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
      close: () => producer.close(),
    };
  }
  const pub = new RawAsyncPublisher<number>(nc, RAW_WINDOW, onAck);
  return {
    publish: (n, t) => pub.send(queue.names.subject, JSON.stringify(makeJob(n, t)), jetqLikeHeaders(undefined), t),
    inFlight: () => pub.inFlight,
    close: async () => {
      await pub.settle();
      pub.close();
    },
  };
}

export { epochMs };
