// The handler path: middleware, and what must never disable a worker or lose a job (issue 22's
// hostile-input findings), against a real server.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import { AckPolicy, DeliverPolicy, DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { z } from "zod";
import {
  ConfigError,
  DeadLetterQueue,
  defineQueue,
  JetqError,
  type Middleware,
  Producer,
  ProvisionConflictError,
  provisionQueue,
  RetryError,
  Worker,
} from "../../src/index.ts";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";

const nats = useNats();

async function setup(opts: Parameters<typeof defineQueue>[0]) {
  const nc = await nats.connect();
  const q = defineQueue(opts);
  await provisionQueue(nc, q);
  return { nc, q, producer: new Producer(nc, q), dlq: new DeadLetterQueue(nc, q) };
}

describe("middleware", () => {
  it("runs outermost first around the handler, with the handler's value flowing back out", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("mw") });
    const trail: string[] = [];
    const results: unknown[] = [];
    const outer: Middleware<unknown> = async (job, next) => {
      trail.push(`outer>${job.attempt}`);
      const v = await next();
      results.push(v);
      trail.push("outer<");
      return v;
    };
    const inner: Middleware<unknown> = async (_job, next) => {
      trail.push("inner>");
      const v = (await next()) as number;
      trail.push("inner<");
      return v * 2;
    };
    const w = new Worker(nc, q, () => {
      trail.push("handler");
      return 21;
    }, { use: [outer] });
    w.use(inner);
    await w.start();
    let done = 0;
    w.on("completed", () => done++);
    await producer.publish({});
    await waitFor(() => done === 1, "completed");
    assert.deepEqual(trail, ["outer>1", "inner>", "handler", "inner<", "outer<"]);
    assert.deepEqual(results, [42]);
    assert.throws(() => w.use(inner), ConfigError, "no middleware after start()");
    await w.stop();
    await producer.close();
  });

  it("treats a middleware error as a failed attempt, lets a middleware settle the job without the handler, and refuses next() twice", async () => {
    const { nc, q, producer, dlq } = await setup({ name: uniqueName("mwerr"), maxAttempts: 2, backoff: [10] });
    let handled = 0;
    const seen: string[] = [];
    const w = new Worker<{ kind: string }>(nc, q as never, () => {
      handled++;
    }, {
      use: [
        async (job, next) => {
          seen.push(`${job.data.kind}:${job.attempt}`);
          if (job.data.kind === "skip") return "skipped"; // short-circuit: acked, handler not run
          if (job.data.kind === "throw" && job.attempt === 1) throw new RetryError("not yet", { delayMs: 20 });
          if (job.data.kind === "twice") {
            await next();
            return next();
          }
          return next();
        },
      ],
    });
    const completed: string[] = [];
    const retrying: Array<[string, number]> = [];
    w.on("completed", (ev) => completed.push(ev.id));
    w.on("retrying", (ev, _e, delay) => retrying.push([ev.id, delay]));
    await w.start();
    await producer.publish({ kind: "skip" }, { id: "skip" });
    await producer.publish({ kind: "throw" }, { id: "throw" });
    await producer.publish({ kind: "twice" }, { id: "twice" });
    await waitFor(async () => completed.length === 2 && (await dlq.count()) === 1, "two completed, one dead letter");
    assert.deepEqual(completed.sort(), ["skip", "throw"]);
    assert.deepEqual(retrying.filter(([id]) => id === "throw"), [["throw", 20]], "RetryError's delay, not the backoff");
    const [dead] = await dlq.list();
    assert.equal(dead?.id, "twice");
    assert.match(dead!.error.message, /next\(\) more than once/);
    assert.equal(handled, 1 + 2, "the handler ran for 'throw' once and for 'twice' once per attempt, never for 'skip'");
    await w.stop();
    await producer.close();
  });
});

describe("nothing a job does disables its worker", () => {
  it("dead-letters a job whose schema throws or is async, and goes on with the next ones", async () => {
    const schema = z.object({
      n: z.number().transform((n) => {
        if (n === 13) throw new Error("unlucky transform");
        return n;
      }),
      async: z.boolean().optional(),
    }).refine(async (v) => v.async !== true || v.n > 0, { message: "async refine says no" });
    const { nc, q, dlq } = await setup({ name: uniqueName("schema"), schema });
    // A raw publish: the producer validates too, and these payloads must reach the worker.
    const producer = new Producer(nc, defineQueue({ name: q.name }));
    const handled: number[] = [];
    const w = new Worker<{ n: number }>(nc, q as never, (job) => {
      handled.push(job.data.n);
    }, { concurrency: 2 });
    await w.start();
    await producer.publish({ n: 13 }, { id: "throws" });
    await producer.publish({ n: -1, async: true }, { id: "async-no" });
    await producer.publish({ n: 2, async: true }, { id: "async-yes" });
    await producer.publish({ n: 3 }, { id: "after" });
    await waitFor(async () => handled.length === 2 && (await dlq.count()) === 2, "two handled, two dead letters");
    assert.deepEqual(handled.sort(), [2, 3]);
    const dead = await dlq.list();
    assert.deepEqual(dead.map((d) => [d.id, d.reason]).sort(), [["async-no", "validation"], ["throws", "validation"]]);
    assert.match(dead.find((d) => d.id === "throws")!.error.message, /schema threw.*unlucky transform/);
    assert.match(dead.find((d) => d.id === "async-no")!.error.message, /async refine says no/);
    assert.ok(w.isRunning);
    assert.equal(w.inFlight, 0);
    await w.stop();
    await producer.close();
  });

  it("treats a thrown value that cannot be inspected as a failure, with a safe description", async () => {
    const { nc, q, producer, dlq } = await setup({ name: uniqueName("weird"), maxAttempts: 1 });
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown): void => {
      unhandled.push(e);
    };
    process.on("unhandledRejection", onUnhandled);
    try {
      const w = new Worker<{ kind: string }>(nc, q as never, (job) => {
        if (job.data.kind === "name") {
          const e = new Error("m");
          Object.defineProperty(e, "name", { get: () => { throw new Error("getter"); } });
          throw e;
        }
        throw new Proxy({}, { getPrototypeOf: () => { throw new Error("trap"); }, get: () => { throw new Error("trap"); } });
      }, { concurrency: 2 });
      await w.start();
      await producer.publish({ kind: "name" }, { id: "name" });
      await producer.publish({ kind: "proxy" }, { id: "proxy" });
      await waitFor(async () => (await dlq.count()) === 2, "both dead-lettered");
      const dead = await dlq.list();
      for (const d of dead) {
        assert.equal(d.reason, "max_attempts");
        assert.match(d.error.message, /cannot be inspected/);
      }
      assert.equal(w.inFlight, 0, "no slot stays taken");
      await w.stop();
      assert.deepEqual(unhandled, []);
    } finally {
      process.off("unhandledRejection", onUnhandled);
      await producer.close();
    }
  });

  it("a listener or logger that throws does not stop the worker", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("listener") });
    const w = new Worker(nc, q, () => {}, {
      logger: { warn() { throw new Error("logger"); }, error() { throw new Error("logger"); } },
    });
    let done = 0;
    w.on("completed", () => {
      done++;
      throw new Error("listener throws");
    });
    await w.start();
    await producer.publish({}, { id: "a" });
    await producer.publish({}, { id: "b" });
    await waitFor(() => done === 2, "both completed");
    assert.ok(w.isRunning);
    await w.stop();
    await producer.close();
  });

  it("keeps a timed-out handler that ignores its signal in its slot: never more than concurrency alive, its job retried elsewhere", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("stuck"), timeoutMs: 100, backoff: [0], maxAttempts: 100 });
    let alive = 0;
    let maxAlive = 0;
    const releases: Array<() => void> = [];
    const a = new Worker(nc, q, async () => {
      alive++;
      maxAlive = Math.max(maxAlive, alive);
      await new Promise<void>((resolve) => releases.push(resolve)); // ignores job.signal
      alive--;
    }, { concurrency: 2 });
    const stuck: string[] = [];
    a.on("stuck", (ev) => stuck.push(ev.id));
    await a.start();
    for (let i = 0; i < 4; i++) await producer.publish({ i }, { id: `j${i}` });
    await waitFor(() => stuck.length === 2, "two stuck handlers");
    assert.equal(a.inFlight, 2, "the stuck handlers keep their slots");
    // Their attempts failed and were handed back: another worker retries them while they hang here.
    const doneElsewhere: Array<[string, number]> = [];
    const b = new Worker(nc, q, (job) => {
      doneElsewhere.push([job.id, job.attempt]);
    }, { concurrency: 4 });
    await b.start();
    await waitFor(() => doneElsewhere.length === 4, "all four done by the other worker");
    assert.deepEqual(doneElsewhere.filter(([id]) => stuck.includes(id)).map(([, attempt]) => attempt), [2, 2], "the timed-out ones on their second attempt");
    assert.equal(maxAlive, 2, "never more handlers alive than concurrency");
    for (const r of releases.splice(0)) r();
    await waitFor(() => a.inFlight === 0, "slots freed once the handlers settle");
    await Promise.all([a.stop(), b.stop()]);
    await producer.close();
  });

  it("never runs a job beside its own stuck handler in one process: the redelivery is handed back", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("twice"), timeoutMs: 100, backoff: [0], maxAttempts: 100 });
    const starts: number[] = [];
    let release: (() => void) | undefined;
    const w = new Worker(nc, q, async (job) => {
      starts.push(job.attempt);
      if (job.attempt === 1) await new Promise<void>((resolve) => (release = resolve)); // ignores job.signal
    }, { concurrency: 3 });
    let completed = 0;
    w.on("completed", () => completed++);
    await w.start();
    await producer.publish({}, { id: "only" });
    const jsm = await jetstreamManager(nc);
    // The server offers the retry to this worker (it has free slots) again and again.
    await waitFor(async () => (await jsm.consumers.info(q.names.stream, q.names.consumer)).delivered.consumer_seq >= 4, "the retry offered here several times");
    assert.deepEqual(starts, [1], "not started beside its stuck first attempt");
    release!();
    await waitFor(() => completed === 1, "the retry runs once the stuck handler settled");
    assert.deepEqual(starts, [1, 2]);
    await w.stop();
    await producer.close();
  });
});

describe("dead-letter decisions in the ledger", () => {
  it("a delivery whose record says it is being dead-lettered finishes that dead letter and never runs the handler", async () => {
    const { nc, q, producer, dlq } = await setup({ name: uniqueName("deadrec"), ackWaitMs: 60_000 });
    const receipt = await producer.publish({ n: 1 }, { id: "doomed" });
    // As if a worker decided to dead-letter it and died after recording that: delivery 1 taken
    // by a raw consumer and handed back, and the decision in the job's ledger record.
    const jsm = await jetstreamManager(nc);
    const js = (await import("@nats-io/jetstream")).jetstream(nc);
    const c = await js.consumers.get(q.names.stream, q.names.consumer);
    const m = await c.next({ expires: 2_000 });
    assert.ok(m);
    const incarnation = Date.parse((await jsm.streams.info(q.names.stream)).created).toString(36);
    await js.publish(`${q.names.ledgerSubject}.${incarnation}.${receipt.seq}`, JSON.stringify({
      failures: 5, crashes: 0, seen: 1, worker: "gone:1:abcdef", error: "the last failure", dead: { reason: "max_attempts", attempts: 5 },
    }));
    m.nak();
    let ran = 0;
    const w = new Worker(nc, q, () => {
      ran++;
    });
    const dead: string[] = [];
    w.on("dead", (ev, reason) => dead.push(`${ev.id}:${reason}:${ev.attempt}`));
    await w.start();
    await waitFor(async () => (await dlq.count()) === 1, "the dead letter finished");
    const [entry] = await dlq.list();
    assert.deepEqual([entry!.id, entry!.reason, entry!.attempts, entry!.error.message], ["doomed", "max_attempts", 5, "the last failure"]);
    assert.deepEqual(dead, ["doomed:max_attempts:5"]);
    assert.equal(ran, 0, "the handler never ran again");
    await waitFor(async () => (await jsm.streams.info(q.names.stream)).state.messages === 0, "the original removed");
    await w.stop();
    await producer.close();
  });
});

describe("start and stop", () => {
  it("stop() while start() is pending wins: start rejects, no job is handled; start() after stop() says it was stopped", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("race") });
    await producer.publish({ x: 1 });
    let handled = 0;
    const w = new Worker(nc, q, () => {
      handled++;
    });
    const starting = w.start();
    await w.stop();
    await assert.rejects(starting, (e: unknown) => e instanceof JetqError && /stopped while it was starting/.test(e.message));
    assert.equal(w.isRunning, false);
    await assert.rejects(w.start(), /was stopped; create a new Worker/);
    // The job is still there for a worker that does run.
    let other = 0;
    const w2 = new Worker(nc, q, () => {
      other++;
    });
    await w2.start();
    await waitFor(() => other === 1, "the job handled by another worker");
    assert.equal(handled, 0);
    await w2.stop();
    await producer.close();
  });

  it("a process whose connection closed under a running worker exits by itself", async () => {
    const { q } = await setup({ name: uniqueName("exit") });
    const script = `
      import { connect } from "@nats-io/transport-node";
      import { defineQueue, Worker } from "${new URL("../../src/index.ts", import.meta.url).pathname}";
      const nc = await connect({ servers: process.env.NATS_URL });
      const w = new Worker(nc, defineQueue({ name: process.env.QUEUE }), async () => {});
      await w.start();
      await nc.close();
      console.log("closed");
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      env: { ...process.env, NATS_URL: nats.server().servers, QUEUE: q.name },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (out += b.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => {
        child.kill("SIGKILL");
        resolve(-1);
      }, 15_000);
      child.once("exit", (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    assert.equal(code, 0, `the process exited on its own (output: ${out})`);
    assert.match(out, /closed/);
  });
});

describe("dead letters across stream incarnations", () => {
  it("a job dead-lettered after its queue stream was deleted and provisioned again is kept, not taken for an old duplicate", async () => {
    const { nc, q, producer, dlq } = await setup({ name: uniqueName("reinc"), maxAttempts: 1 });
    const w1 = new Worker(nc, q, () => {
      throw new Error("first incarnation");
    });
    await w1.start();
    const first = await producer.publish({ n: 1 });
    await waitFor(async () => (await dlq.count()) === 1, "first dead letter");
    await w1.stop();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(q.names.stream);
    await provisionQueue(nc, q);
    const second = await producer.publish({ n: 2 });
    assert.equal(second.seq, first.seq, "the new stream restarted its sequences");
    const dead: string[] = [];
    const w2 = new Worker(nc, q, () => {
      throw new Error("second incarnation");
    });
    w2.on("dead", (ev) => dead.push(ev.id));
    await w2.start();
    await waitFor(async () => (await dlq.count()) === 2, "second dead letter stored beside the first");
    const entries = await dlq.list();
    assert.deepEqual(entries.map((e) => e.error.message), ["first incarnation", "second incarnation"]);
    await w2.stop();
    await producer.close();
  });
});

describe("provisioning", () => {
  it("checks everything before creating anything: a conflicting ledger stream leaves no half-provisioned queue", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("half") });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: q.names.ledgerStream, subjects: [`${q.names.ledgerSubject}.>`], storage: StorageType.Memory });
    const err = await provisionQueue(nc, q).catch((e: unknown) => e);
    assert.ok(err instanceof ProvisionConflictError, String(err));
    assert.match(err.message, /ledger stream.*storage.*Nothing was changed/);
    await assert.rejects(jsm.streams.info(q.names.stream), /stream not found/);
    await assert.rejects(jsm.streams.info(q.names.dlqStream), /stream not found/);
    await jsm.streams.delete(q.names.ledgerStream);
  });

  it("migrates a queue provisioned by jetq 0.1: no job lost, one the server gave up on runs again", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("legacy"), ackWaitMs: 300, maxAttempts: 2 });
    const n = q.names;
    const jsm = await jetstreamManager(nc);
    const ns = 1_000_000;
    // The 0.1 layout: max_deliver = maxAttempts, an advisory stream and its consumer.
    await jsm.streams.add({
      name: n.stream, subjects: [n.subject], retention: RetentionPolicy.Workqueue, storage: StorageType.File,
      num_replicas: 1, max_msgs: -1, max_bytes: -1, discard: DiscardPolicy.New, duplicate_window: 120_000 * ns, allow_direct: true,
    });
    await jsm.consumers.add(n.stream, {
      durable_name: n.consumer, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
      ack_wait: 300 * ns, max_deliver: 2, max_ack_pending: 1000,
    });
    const adv = `${n.stream}_ADV`;
    await jsm.streams.add({
      name: adv, subjects: [`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${n.stream}.${n.consumer}`],
      retention: RetentionPolicy.Workqueue, storage: StorageType.File, discard: DiscardPolicy.Old, max_msgs: 1_000_000,
    });
    await jsm.consumers.add(adv, { durable_name: "dlq-mover", ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
    const producer = new Producer(nc, defineQueue({ name: q.name }));
    // A job the old server setup gave up on: delivered max_deliver times, never acked.
    await producer.publish({ n: 0 }, { id: "given-up" });
    const js = (await import("@nats-io/jetstream")).jetstream(nc);
    const c = await js.consumers.get(n.stream, n.consumer);
    for (let i = 0; i < 2; i++) {
      const m = await c.next({ expires: 2_000 });
      assert.ok(m, `delivery ${i + 1}`);
      m.nak();
    }
    assert.equal(await c.next({ expires: 1_000 }), null, "the server gave up on it");
    for (let i = 1; i <= 5; i++) await producer.publish({ n: i }, { id: `job-${i}` });

    const result = await provisionQueue(nc, q);
    assert.equal(result.migrated, true);
    assert.equal(result.ledgerStream, "created");
    assert.equal((await jsm.consumers.info(n.stream, n.consumer)).config.max_deliver, -1);
    await assert.rejects(jsm.streams.info(adv), /stream not found/);

    const done = new Set<string>();
    const w = new Worker(nc, q, (job) => {
      done.add(job.id);
    });
    await w.start();
    await waitFor(() => done.size === 6, "every job, the given-up one too, handled");
    assert.ok(done.has("given-up"));
    assert.deepEqual(await provisionQueue(nc, q), { stream: "unchanged", consumer: "unchanged", deadLetterStream: "unchanged", ledgerStream: "unchanged", migrated: false });
    await w.stop();
    await producer.close();
  });
});
