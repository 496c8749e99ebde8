// The dashboard's overview during a NATS outage: it must say that its figures are old or
// missing, never serve the last ones as if they were current (each test owns its server).
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createDashboard, defineQueue, provisionQueue, type DashboardHandler } from "../../src/index.ts";
import { startLocalNats, type LocalNatsServer } from "../support/nats-server.ts";
import { uniqueName, waitFor } from "../support/ctx.ts";

interface Overview {
  at: number;
  error: string | null;
  stale?: boolean;
  queues: Array<{ name: string; error: string | null; stats: { pending: number } | null }>;
}

const cleanups: Array<() => Promise<unknown> | unknown> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function serve(nats: LocalNatsServer, reconnect: boolean): Promise<{ overview: () => Promise<Overview>; nc: NatsConnection; name: string }> {
  const nc = await connect({ servers: nats.servers, noAsyncTraces: true, reconnect, timeout: 2_000 });
  cleanups.push(() => nc.close().catch(() => {}));
  const q = defineQueue({ name: uniqueName("outage") });
  await provisionQueue(nc, q);
  const dashboard: DashboardHandler = createDashboard(nc, { queues: [q], refreshMs: 200 });
  const http: Server = createServer(dashboard);
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  cleanups.push(() => {
    dashboard.close();
    http.closeAllConnections();
    return new Promise((r) => http.close(r));
  });
  const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  return { nc, name: q.name, overview: async () => (await (await fetch(`${base}/api/overview`)).json()) as Overview };
}

describe("the dashboard during a NATS outage", () => {
  it("serves the last figures marked stale, at once, while the server does not answer", async () => {
    const nats = await startLocalNats();
    cleanups.push(() => nats.stop());
    const { overview, name } = await serve(nats, true);
    const before = await overview();
    assert.equal(before.error, null);
    assert.equal(before.queues[0]!.stats!.pending, 0);

    await nats.pause(); // frozen: connections stay open, nothing answers
    cleanups.push(() => nats.resume());
    // Past two rounds the cached figures are due for a refresh that cannot come.
    await new Promise((r) => setTimeout(r, 600));
    const t0 = Date.now();
    const during = await overview();
    const took = Date.now() - t0;
    assert.ok(took < 3_000, `the overview took ${took} ms to answer`);
    assert.equal(during.stale, true, JSON.stringify(during));
    assert.match(during.error ?? "", /NATS has not answered; these figures are \d+ s old \(read at /);
    assert.equal(during.queues[0]!.name, name);
    assert.equal(during.queues[0]!.stats!.pending, 0, "the last figures are still shown");
    assert.ok(during.at <= t0 - 500, "`at` is when the figures were read, not now");

    nats.resume();
    await waitFor(async () => {
      const o = await overview();
      return o.error === null && o.stale === false && o.queues[0]!.stats !== null;
    }, "fresh figures once the server answers again", 15_000);
  });

  it("says the connection is closed when it is, instead of error: null", async () => {
    const nats = await startLocalNats();
    cleanups.push(() => nats.stop());
    const { overview, nc } = await serve(nats, false);
    assert.equal((await overview()).error, null);
    await nats.kill();
    await nc.closed();
    const o = await overview();
    assert.match(o.error ?? "", /NATS connection is closed/, JSON.stringify(o));
    assert.equal(o.queues[0]!.stats, null);
  });
});
