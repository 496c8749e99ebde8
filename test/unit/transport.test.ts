import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NatsConnection, Status } from "@nats-io/transport-node";
import { ConfigError, ConnectionError, QueueNotFoundError } from "../../src/errors.ts";
import { mapNatsError, noResponders } from "../../src/natserr.ts";
import { apiPrefix, domainOf, jsOptions } from "../../src/transport/api.ts";
import { ConnectionHub, type TransportUser } from "../../src/transport/hub.ts";
import { Inbox } from "../../src/transport/inbox.ts";
import { ReplyTable } from "../../src/transport/replies.ts";
import { defineQueue } from "../../src/queue/define.ts";
import { NoRespondersError } from "@nats-io/transport-node";

// The table and the inbox's subjects need no connection until the inbox subscribes.
const noConnection = {} as NatsConnection;

describe("ReplyTable", () => {
  it("reuses the subject of an answered request, never one that expired", () => {
    const inbox = new Inbox(noConnection, "_INBOX", () => {});
    const t = new ReplyTable<{ deadline: number; n: number }>(inbox);
    const a = t.add({ deadline: 100, n: 1 });
    const b = t.add({ deadline: 200, n: 2 });
    assert.notEqual(a, b);
    assert.ok(a.startsWith(`${inbox.prefix}.`));
    assert.equal(t.take(a)?.n, 1);
    assert.equal(t.take(a), undefined, "answered once");
    const expired: number[] = [];
    t.expire(250, (p) => expired.push(p.n));
    assert.deepEqual(expired, [2]);
    assert.equal(t.take(b), undefined, "a late answer to an expired request settles nothing");
    const c = t.add({ deadline: 300, n: 3 });
    assert.equal(c, a, "the answered subject carries the next request");
    const d = t.add({ deadline: 400, n: 4 });
    assert.notEqual(d, b, "the expired subject is retired");
  });

  it("expires in deadline order and stops at the first live request", () => {
    const t = new ReplyTable<{ deadline: number; n: number }>(new Inbox(noConnection, undefined, () => {}));
    for (let n = 1; n <= 5; n++) t.add({ deadline: n * 10, n });
    const out: number[] = [];
    t.expire(30, (p) => out.push(p.n));
    assert.deepEqual(out, [1, 2, 3]);
    assert.equal(t.size, 2);
    t.drain((p) => out.push(p.n));
    assert.deepEqual(out, [1, 2, 3, 4, 5]);
    assert.equal(t.size, 0);
  });

  it("after a rekey, no request gets a subject of the old prefix, even one answered later", () => {
    const inbox = new Inbox(noConnection, "_INBOX", () => {});
    const t = new ReplyTable<{ deadline: number }>(inbox);
    const answered = t.add({ deadline: 1 });
    const inFlight = t.add({ deadline: 2 });
    t.take(answered);
    const oldPrefix = inbox.prefix;
    inbox.rekey(1_000);
    t.rekeyed();
    assert.notEqual(inbox.prefix, oldPrefix);
    assert.ok(t.take(inFlight), "a request of the old prefix still gets its own answer");
    const next = t.add({ deadline: 3 });
    const after = t.add({ deadline: 4 });
    for (const s of [next, after]) assert.ok(s.startsWith(`${inbox.prefix}.`) && inbox.current(s), s);
    assert.equal(t.free, 0);
    assert.ok(!inbox.current(answered));
  });

  it("settles nothing for a subject it did not make: another prefix, a retired slot, a token that is not a slot", () => {
    const inbox = new Inbox(noConnection, "_INBOX", () => {});
    const t = new ReplyTable<{ deadline: number; n: number }>(inbox);
    const a = t.add({ deadline: 10, n: 1 });
    const slot = a.slice(a.lastIndexOf(".") + 1);
    assert.equal(t.take(`_INBOX.other.${slot}`), undefined, "same slot digits, another prefix");
    assert.equal(t.take(`${inbox.prefix}.${slot}g0`), undefined, "a generation this slot never had");
    assert.equal(t.take(`${inbox.prefix}.x`), undefined);
    assert.equal(t.take(`${inbox.prefix}.`), undefined);
    assert.equal(t.take("no-dot"), undefined);
    assert.equal(t.size, 1, "the request still waits for its own answer");
    t.expire(10, () => {});
    const b = t.add({ deadline: 20, n: 2 });
    assert.notEqual(b, a, "the expired slot came back with a fresh subject");
    assert.equal(t.take(a), undefined, "a late answer to the retired subject settles nothing");
    assert.equal(t.take(b)?.n, 2);
  });

  it("keeps at most as many slots as requests were open at once", () => {
    const t = new ReplyTable<{ deadline: number }>(new Inbox(noConnection, undefined, () => {}));
    const seen = new Set<string>();
    for (let round = 0; round < 100; round++) {
      const open = Array.from({ length: 8 }, (_, k) => t.add({ deadline: round * 10 + k }));
      for (const s of open) seen.add(s);
      for (const s of open) assert.ok(t.take(s));
    }
    assert.equal(seen.size, 8);
    assert.equal(t.free, 8);
  });

  it("gives a cancelled (never sent) request's subject to the next one", () => {
    const t = new ReplyTable<{ deadline: number }>(new Inbox(noConnection, undefined, () => {}));
    const s = t.add({ deadline: 1 });
    assert.ok(t.cancel(s));
    assert.equal(t.add({ deadline: 2 }), s);
  });
});

/** A connection whose status stream and close the test drives. */
function fakeConnection() {
  const pushes: Array<(s: Status | undefined) => void> = [];
  const queue: Array<Status | undefined> = [];
  let closeNc!: () => void;
  const closed = new Promise<void>((r) => (closeNc = r));
  let isClosed = false;
  const nc = {
    isClosed: () => isClosed,
    closed: () => closed,
    status: () => ({
      [Symbol.asyncIterator]: () => ({
        next: () =>
          new Promise<IteratorResult<Status>>((resolve) => {
            const deliver = (s: Status | undefined) => resolve(s === undefined ? { done: true, value: undefined } : { done: false, value: s });
            const queued = queue.shift();
            if (queued !== undefined || queue.length > 0) deliver(queued);
            else pushes.push(deliver);
          }),
      }),
    }),
  } as unknown as NatsConnection;
  return {
    nc,
    emit(s: Status) {
      const p = pushes.shift();
      if (p) p(s);
      else queue.push(s);
    },
    close() {
      isClosed = true;
      this.emit({ type: "close" });
      closeNc();
    },
  };
}

function recorder() {
  const events: string[] = [];
  const user: TransportUser = {
    sweep: () => events.push("sweep"),
    reconnected: () => events.push("reconnected"),
    closed: () => events.push("closed"),
    denied: () => events.push("denied"),
  };
  return { user, events };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("ConnectionHub", () => {
  it("is one per connection, sweeps at the shortest period asked for, and stops with the last user", () => {
    const { nc } = fakeConnection();
    const hub = ConnectionHub.of(nc);
    assert.equal(ConnectionHub.of(nc), hub);
    const a = recorder();
    const b = recorder();
    hub.join(a.user, 250);
    hub.join(b.user, 1_000);
    assert.equal(hub.period, 250);
    hub.leave(a.user);
    assert.equal(hub.period, 1_000);
    hub.leave(b.user);
    assert.equal(hub.period, Infinity);
    assert.equal(hub.users, 0);
  });

  it("tells every user of a reconnect, and of the close once", async () => {
    const conn = fakeConnection();
    const hub = ConnectionHub.of(conn.nc);
    const a = recorder();
    const b = recorder();
    hub.join(a.user, 1_000);
    hub.join(b.user, 1_000);
    conn.emit({ type: "reconnect", server: "x" });
    await tick();
    conn.close();
    await tick();
    await tick();
    for (const r of [a, b]) assert.deepEqual(r.events, ["reconnected", "closed"]);
    assert.ok(hub.isClosed);
    hub.leave(a.user);
    hub.leave(b.user);
  });
});

describe("no responders (503): one mapping for every user", () => {
  it("is QueueNotFoundError when a queue's stream or consumer is missing, ConnectionError when JetStream does not answer", () => {
    assert.ok(noResponders("stream", "publish to queue \"q\"") instanceof QueueNotFoundError);
    assert.ok(noResponders("consumer", "confirm the ack") instanceof QueueNotFoundError);
    const api = noResponders("api", "pull jobs");
    assert.ok(api instanceof ConnectionError);
    assert.match(api.message, /^pull jobs: no JetStream server answered \(503\)/);
    const mapped = mapNatsError(new NoRespondersError("$JS.API.INFO"), "read stats");
    assert.ok(mapped instanceof ConnectionError && mapped.message === `read stats: ${api.message.slice("pull jobs: ".length)}`, mapped.message);
  });
});

describe("JetStream domain", () => {
  it("derives the API prefix and nats.js options from the queue's domain", () => {
    const plain = defineQueue({ name: "plain" });
    assert.equal(domainOf(plain), undefined);
    assert.equal(apiPrefix(domainOf(plain)), "$JS.API");
    assert.deepEqual(jsOptions(plain), {});
    const hub = { ...plain, domain: "hub" };
    assert.equal(apiPrefix(domainOf(hub)), "$JS.hub.API");
    const o1 = jsOptions(hub);
    assert.deepEqual(o1, { domain: "hub" });
    assert.notEqual(jsOptions(hub), o1, "a fresh object per call (nats.js deletes `domain` from it)");
    for (const bad of ["a.b", "a b", "*", ">", 7]) assert.throws(() => domainOf({ domain: bad }), ConfigError, String(bad));
  });
});
