/**
 * A queue in a JetStream domain: everything jetq asks JetStream goes to `$JS.<domain>.API`.
 * Two servers on loopback: a hub (`jetstream { domain: hub }`) and a leaf node with JetStream of
 * its own (`domain: leaf`). The application connects to the leaf; its queue lives in the hub. On
 * the leaf `$JS.API` is the leaf's own JetStream, so a single hard-coded `$JS.API` anywhere
 * (provisioning, the worker's pulls, dead-lettering, dead-letter reads, stats) would act on the
 * wrong JetStream: the test checks the streams exist in the hub and nowhere else.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  connect,
  ConnectionError,
  DeadLetterQueue,
  defineQueue,
  PermanentError,
  Producer,
  provisionQueue,
  queueStats,
  type Queue,
  Worker,
} from "../../src/index.ts";
import { freePort, startLocalNats, type LocalNatsServer } from "../support/nats-server.ts";
import { uniqueName, waitFor } from "../support/ctx.ts";

/**
 * A queue definition in `domain`. The field is `defineQueue({ domain })`'s; until define.ts has
 * it, the definition is extended here, which is what jetq reads (transport/api.ts).
 */

async function streamNames(nc: NatsConnection, domain?: string): Promise<string[]> {
  const jsm = await jetstreamManager(nc, domain === undefined ? {} : { domain });
  const names: string[] = [];
  for await (const n of jsm.streams.names()) names.push(n);
  return names.sort();
}

let hub: LocalNatsServer;
let leaf: LocalNatsServer;
let nc: NatsConnection;
before(async () => {
  const leafPort = await freePort();
  hub = await startLocalNats({ config: `jetstream { domain: hub }\nleafnodes { listen: "127.0.0.1:${leafPort}" }\n` });
  leaf = await startLocalNats({ config: `jetstream { domain: leaf }\nleafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:${leafPort}" } ] }\n` });
  nc = await connect({ servers: leaf.servers });
  // The leaf connects to the hub on its own schedule: wait until the hub's JetStream answers.
  await waitFor(() => nc.request("$JS.hub.API.INFO", "", { timeout: 500 }).then(() => true, () => false), "the hub's JetStream reachable from the leaf");
});
after(async () => {
  await nc?.close();
  await leaf?.stop();
  await hub?.stop();
});

describe("a JetStream domain", () => {
  it("provisions, publishes, works, dead-letters and reads through $JS.<domain>.API", async () => {
    const q = defineQueue({ name: uniqueName("dom"), maxAttempts: 2, domain: "hub" });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const receipts = await producer.publishMany([{ n: 1 }, { n: 2 }, { n: 3 }, { poison: true }]);
    assert.deepEqual(receipts.map((r) => r.seq), [1, 2, 3, 4]);
    const done: number[] = [];
    const worker = new Worker(nc, q, async (job) => {
      const data = job.data as { n?: number; poison?: boolean };
      if (data.poison) throw new PermanentError("cannot be done");
      done.push(data.n!);
    }, { concurrency: 4, ackMode: "confirmed" });
    const errors: Error[] = [];
    worker.on("error", (e) => errors.push(e));
    await worker.start();
    const dlq = new DeadLetterQueue(nc, q);
    await waitFor(async () => done.length === 3 && (await dlq.count()) === 1, "three jobs done and one dead letter");
    await worker.stop();
    assert.deepEqual(done.sort(), [1, 2, 3]);
    const [dead] = await dlq.list();
    assert.equal(dead?.reason, "permanent");
    assert.deepEqual(dead?.data, { poison: true });
    const stats = await queueStats(nc, q);
    assert.equal(stats.pending, 0);
    assert.equal(stats.deadLetters, 1);
    assert.deepEqual(errors, []);
    await producer.close();
    // Everything is in the hub; the leaf's own JetStream (what $JS.API reaches here) has nothing.
    const inHub = await streamNames(nc, "hub");
    for (const s of [q.names.stream, q.names.dlqStream]) assert.ok(inHub.includes(s), `${s} in the hub: ${inHub.join(", ")}`);
    assert.deepEqual(await streamNames(nc), [], "no stream in the leaf's own JetStream");
  });

  it("a domain no server serves is a ConnectionError that names the domain", async () => {
    const q = defineQueue({ name: uniqueName("elsewhere"), domain: "elsewhere" });
    const err = await provisionQueue(nc, q).catch((e: unknown) => e);
    assert.ok(err instanceof ConnectionError, String(err));
    assert.match(err.message, /domain/);
  });
});
