/**
 * The shared request/reply transport (src/transport) as its three users see it: the producer's
 * PubAcks, the worker's pulls and its confirmed acks. These tests kill, pause and restart servers,
 * so each starts its own.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { connect } from "@nats-io/transport-node";
import { ConnectionError, defineQueue, Producer, provisionQueue, PublishBatchError, Worker } from "../../src/index.ts";
import { FixtureProcess } from "../support/procs.ts";
import { freePort, startLocalNats, type LocalNatsServer } from "../support/nats-server.ts";
import { uniqueName, waitFor } from "../support/ctx.ts";

const servers: LocalNatsServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

async function ownServer(args: string[] = []): Promise<LocalNatsServer> {
  const srv = await startLocalNats({ args });
  servers.push(srv);
  return srv;
}

describe("a producer whose connection closes", () => {
  it("rejects every pending publish at once with a ConnectionError naming how many, and every later one", async () => {
    const srv = await ownServer();
    const nc = await connect({ servers: srv.servers, noAsyncTraces: true, maxReconnectAttempts: 0 });
    const q = defineQueue({ name: uniqueName("closed") });
    await provisionQueue(nc, q);
    // An ack timeout far past the test: only the close can settle these publishes.
    const producer = new Producer(nc, q, { ackTimeoutMs: 120_000 });
    await producer.publish({ warm: true });
    await srv.pause(); // no PubAck comes any more
    const singles = Array.from({ length: 5 }, (_, i) => producer.publish({ i }, { id: `single-${i}` }).catch((e: unknown) => e));
    const batch = producer.publishMany(Array.from({ length: 7 }, (_, i) => ({ b: i }))).catch((e: unknown) => e);
    await waitFor(() => producer.inFlight === 12, "twelve publishes in flight");
    const started = Date.now();
    await srv.kill();
    const errors = await Promise.all(singles);
    const batchErr = await batch;
    assert.ok(Date.now() - started < 10_000, "settled by the close, not by ackTimeoutMs");
    for (const [i, e] of errors.entries()) {
      assert.ok(e instanceof ConnectionError, String(e));
      assert.match(e.message, /connection closed with 12 publishes not confirmed/);
      assert.match(e.message, new RegExp(`job single-${i} may or may not be stored`));
    }
    assert.ok(batchErr instanceof PublishBatchError, String(batchErr));
    assert.equal(batchErr.results.length, 7);
    assert.ok(batchErr.results.every((r) => !r.ok && r.error instanceof ConnectionError));
    assert.equal(producer.inFlight, 0);
    const later = await producer.publish({ late: true }).catch((e: unknown) => e);
    assert.ok(later instanceof ConnectionError, String(later));
    await producer.close();
  });

  it("in a script, fails loudly with the count instead of exiting quietly with publishes unsettled", async () => {
    const srv = await ownServer();
    const nc = await connect({ servers: srv.servers, noAsyncTraces: true });
    const q = defineQueue({ name: uniqueName("script") });
    await provisionQueue(nc, q);
    await nc.close();
    const child = new FixtureProcess("publish-proc.ts", { NATS_URL: srv.servers, QUEUE: q.name, COUNT: "20" });
    try {
      await child.waitFor((e) => e.ev === "ready", "the child's first publish");
      await srv.pause();
      child.proc.kill("SIGUSR2");
      await child.waitFor((e) => e.ev === "sent", "twenty publishes sent");
      await srv.kill();
      const failed = await child.waitFor((e) => e.ev === "failed" || e.ev === "settled", "the publishes to settle");
      assert.equal(failed.ev, "failed", JSON.stringify(failed));
      assert.equal((failed as { name?: string }).name, "ConnectionError");
      assert.match(failed.message ?? "", /20 publishes not confirmed/);
      assert.equal(await child.exited, 2);
    } finally {
      await child.kill9();
    }
  });
});

interface Connz {
  connections: Array<{ subscriptions_list?: string[] }>;
}

/** The wildcard inbox subscriptions the server holds for its clients (jetq's and nats.js's own). */
async function inboxWildcards(monitorPort: number): Promise<Set<string>> {
  const res = await fetch(`http://127.0.0.1:${monitorPort}/connz?subs=1`);
  const body = (await res.json()) as Connz;
  const subs = body.connections.flatMap((c) => c.subscriptions_list ?? []);
  return new Set(subs.filter((s) => s.startsWith("_INBOX.") && s.endsWith(".*")));
}

describe("a reconnect", () => {
  it("moves the producer, the puller and the ack confirmer to fresh inboxes, and everything still works", async () => {
    const monitor = await freePort();
    const srv = await ownServer(["-m", String(monitor)]);
    const nc = await connect({ servers: srv.servers, noAsyncTraces: true, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
    const q = defineQueue({ name: uniqueName("rekey") });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q, { ackTimeoutMs: 1_000 });
    const done = new Set<number>();
    const worker = new Worker(nc, q, async (job) => {
      done.add((job.data as { n: number }).n);
    }, { concurrency: 4, ackMode: "confirmed", pullExpiresMs: 1_000 });
    worker.on("error", () => {}); // the restart makes a pull or an ack fail; the worker goes on
    try {
      await worker.start();
      await producer.publishMany([{ n: 1 }, { n: 2 }]);
      await waitFor(() => done.size === 2, "the first jobs done");
      const before = await inboxWildcards(monitor);
      assert.ok(before.size >= 3, `the producer's, the puller's and the confirmer's inboxes: ${[...before].join(", ")}`);

      await srv.restart();
      await waitFor(() => !nc.isClosed() && nc.info !== undefined, "reconnected");
      await waitFor(async () => {
        try {
          await producer.publish({ n: 3 });
          return true;
        } catch {
          return false; // the stream may still be recovering
        }
      }, "a publish confirmed after the restart");
      await waitFor(() => done.has(3), "a job done after the restart");

      // The old inboxes are dropped (the puller's at once, the others once their requests could no
      // longer be answered), and exactly three fresh ones serve jetq. A component opens its fresh
      // inbox on its next request, and the client may hand over a message before it reports the
      // reconnect (job 3's ack can still be confirmed on the old inbox): keep jobs coming.
      let last = "";
      let n = 3;
      await waitFor(async () => {
        await producer.publish({ n: ++n });
        const job = n;
        await waitFor(() => done.has(job), `job ${job} done`);
        const now = await inboxWildcards(monitor);
        const fresh = [...now].filter((s) => !before.has(s));
        const gone = [...before].filter((s) => !now.has(s));
        last = `before ${[...before].join(" ")}; now ${[...now].join(" ")}`;
        return fresh.length === 3 && gone.length === 3;
      }, "three old inboxes gone and three fresh ones", 20_000, 100).catch((err: Error) => {
        throw new Error(`${err.message} (${last})`);
      });
    } finally {
      await worker.stop();
      await producer.close();
      await nc.close();
    }
  });
});
