import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import {
  AuthenticationError,
  type ConnectOptions,
  connect,
  ConnectionError,
  defineQueue,
  Producer,
  PermissionError,
  provisionQueue,
  QueueFullError,
  TimeoutError,
} from "../../src/index.ts";
import { jetstreamManager } from "@nats-io/jetstream";
import { freePort, startLocalNats, type LocalNatsServer } from "../support/nats-server.ts";
import { uniqueName } from "../support/ctx.ts";

// These tests kill and reconfigure servers, so each starts its own.
const servers: LocalNatsServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

/** A server of the test's own (stopped after the file), a connection to it and a provisioned queue. */
async function ownServerWithQueue(prefix: string, options: Omit<ConnectOptions, "servers"> = {}) {
  const srv = await startLocalNats();
  servers.push(srv);
  const nc = await connect({ ...options, servers: srv.servers });
  const q = defineQueue({ name: uniqueName(prefix) });
  await provisionQueue(nc, q);
  return { srv, nc, q };
}

describe("connection errors", () => {
  it("reports an unreachable server as ConnectionError, at once", async () => {
    const port = await freePort();
    const err = await connect({ servers: `nats://127.0.0.1:${port}` }).catch((e: unknown) => e);
    assert.ok(err instanceof ConnectionError, String(err));
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.match(err.message, /Is nats-server running/);
  });

  it("reports refused credentials as AuthenticationError without echoing them", async () => {
    const srv = await startLocalNats({ config: 'authorization { user: "app", password: "s3cret-pw" }\n' });
    servers.push(srv);
    const err = await connect({ servers: srv.servers, user: "app", pass: "wrong-pw-123" }).catch((e: unknown) => e);
    assert.ok(err instanceof AuthenticationError, String(err));
    assert.doesNotMatch(err.message, /wrong-pw-123|s3cret-pw/);
    const urlErr = await connect({ servers: `nats://app:wrong-pw-456@127.0.0.1:${srv.port}` }).catch((e: unknown) => e);
    assert.ok(urlErr instanceof AuthenticationError, String(urlErr));
    assert.doesNotMatch(urlErr.message, /wrong-pw-456/);
    const nc = await connect({ servers: srv.servers, user: "app", pass: "s3cret-pw" });
    await nc.close();
  });

  it("fails a forbidden publish fast with PermissionError naming the subject", async () => {
    const srv = await startLocalNats({
      config: [
        "authorization { users: [",
        '  { user: "admin", password: "admin-pw" }',
        '  { user: "reader", password: "reader-pw", permissions: { publish: { deny: ["jetq.q.>"] } } }',
        "] }",
        "",
      ].join("\n"),
    });
    servers.push(srv);
    const admin = await connect({ servers: srv.servers, user: "admin", pass: "admin-pw" });
    const q = defineQueue({ name: uniqueName("perm") });
    await provisionQueue(admin, q);
    const nc = await connect({ servers: srv.servers, user: "reader", pass: "reader-pw" });
    const producer = new Producer(nc, q, { ackTimeoutMs: 20_000 });
    const started = Date.now();
    const err = await producer.publish({ x: 1 }).catch((e: unknown) => e);
    assert.ok(err instanceof PermissionError, String(err));
    assert.match(err.message, new RegExp(`jetq\\.q\\.${q.name}`));
    assert.doesNotMatch(err.message, /reader-pw/);
    assert.ok(Date.now() - started < 10_000, "failed on the server's refusal, not the 20 s ack timeout");
    await producer.close();
    await nc.close();
    await admin.close();
  });

  it("fails a publish with TimeoutError when the server dies before confirming", async () => {
    const { srv, nc, q } = await ownServerWithQueue("dead", { maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const producer = new Producer(nc, q, { ackTimeoutMs: 500 });
    await producer.publish({ before: true });
    await srv.kill();
    const started = Date.now();
    const err = await producer.publish({ after: true }, { id: "maybe-stored" }).catch((e: unknown) => e);
    assert.ok(err instanceof TimeoutError, String(err));
    assert.match(err.message, /maybe-stored/);
    assert.match(err.message, /same id/);
    assert.ok(Date.now() - started < 5_000, "bounded by ackTimeoutMs, not a hang");
    await producer.close();
    await nc.close();
  });
});

describe("publish window overflow", () => {
  it("blocks when the window is full, honours AbortSignal and the block deadline, and resumes", async () => {
    const { srv, nc, q } = await ownServerWithQueue("block");
    const producer = new Producer(nc, q, { maxInFlight: 1, overflow: "block", blockTimeoutMs: 300, ackTimeoutMs: 20_000 });
    await srv.pause(); // the server stops answering: the first publish holds the only slot
    try {
      const first = producer.publish({ n: 1 });
      assert.equal(producer.inFlight, 1);
      const ac = new AbortController();
      const aborted = producer.publish({ n: 2 }, { signal: ac.signal });
      ac.abort(new Error("caller gave up"));
      await assert.rejects(aborted, /caller gave up/);
      const timedOut = await producer.publish({ n: 3 }).catch((e: unknown) => e);
      assert.ok(timedOut instanceof QueueFullError && timedOut.reason === "window_timeout", JSON.stringify(timedOut));
      const waiting = producer.publish({ n: 4 });
      srv.resume();
      const [a, b] = await Promise.all([first, waiting]);
      assert.ok(b.seq > a.seq, "the blocked publish went through once the slot freed");
    } finally {
      srv.resume();
    }
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(q.names.stream)).state.messages, 2, "only the two confirmed jobs were stored");
    await producer.close();
    await nc.close();
  });
});

describe("late publish acks", () => {
  it("a PubAck that comes after its publish timed out never settles a later publish", async () => {
    // The producer reuses the reply subject of an answered publish; one that timed out must be
    // retired, or the late PubAck (for job a, seq 1) would confirm job b with a's sequence.
    const { srv, nc, q } = await ownServerWithQueue("late");
    const producer = new Producer(nc, q, { maxInFlight: 1, ackTimeoutMs: 1_000 });
    const warm = await producer.publish({ n: "warm" }); // an answered publish: its subject is free again
    await srv.pause();
    let b: Promise<{ seq: number }> | undefined;
    try {
      const a = await producer.publish({ n: "a" }).catch((e: unknown) => e);
      assert.ok(a instanceof TimeoutError, String(a));
      b = producer.publish({ n: "b" }); // sent while the server still holds a
    } finally {
      srv.resume();
    }
    const receipt = await b!;
    const jsm = await jetstreamManager(nc);
    const stored = await jsm.streams.getMessage(q.names.stream, { seq: receipt.seq });
    assert.deepEqual(stored?.json(), { n: "b" }, `receipt seq ${receipt.seq} must hold job b`);
    assert.equal(receipt.seq, warm.seq + 2, "a was stored late, before b");
    await producer.close();
    await nc.close();
  });
});
