// What only a container makes natural: the NATS server's container is stopped and started
// (`docker stop`: SIGTERM, a clean shutdown), killed and started (`docker kill`), and frozen
// (`docker pause`: every thread stopped by the cgroup freezer, connections left open) while
// producers publish and a worker consumes. The chaos suite's accounting applies: every publish
// either got its PubAck or failed visibly for its caller with a typed error, and no acknowledged
// job is lost.
//
// Runs only where Docker is asked for: `.ci/run`, `npm run test:containers`, `JETQ_DOCKER=1 npm test`
// (all through scripts/docker.sh). Plain `npm test` leaves it out; run without an engine it fails
// with a message that says how to get one.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { defineQueue, JetqError, Producer, provisionQueue, Worker, type Queue } from "../../src/index.ts";
import { uniqueName, waitFor } from "../support/ctx.ts";
import { requireDocker } from "../support/docker.ts";
import { ContainerNatsServer } from "../support/nats-container.ts";
import { reportServerPath } from "../support/nats-server.ts";
import { connectChaos, missing } from "../chaos/common.ts";
import { pause, record } from "../chaos/report.ts";
import type { NatsConnection } from "@nats-io/transport-node";

const MAX_JOBS = 60_000;
const PUBLISHERS = 4;
const ACK_TIMEOUT_MS = 2_000;

/** Producers and a worker on one queue, with the loss accounting of test/chaos. */
class Load {
  readonly acked = new Set<string>();
  readonly completed = new Set<string>();
  readonly failed: Array<{ id: string; err: unknown }> = [];
  attempted = 0;
  records = 0;
  lastAckAt = 0;
  lastCompletionAt = 0;
  #publishing = true;
  #pubs: Array<Promise<void>> = [];
  readonly #producer: Producer;
  readonly #worker: Worker;
  readonly workerErrors = new Map<string, number>();

  constructor(pnc: NatsConnection, wnc: NatsConnection, q: Queue, prefix: string) {
    this.#producer = new Producer(pnc, q, { maxInFlight: 256, ackTimeoutMs: ACK_TIMEOUT_MS });
    this.#worker = new Worker(wnc, q, async (job) => {
      this.records++;
      this.completed.add(job.id);
      this.lastCompletionAt = Date.now();
    }, { concurrency: 32 });
    this.#worker.on("error", (e) => this.workerErrors.set(e.name, (this.workerErrors.get(e.name) ?? 0) + 1));
    this.#pubs = Array.from({ length: PUBLISHERS }, (_, p) => this.#publisher(`${prefix}-${p}`));
  }

  async start(): Promise<void> {
    await this.#worker.start();
  }

  async #publisher(prefix: string): Promise<void> {
    await Promise.resolve();
    for (let k = 0; this.#publishing && this.attempted < MAX_JOBS; k++) {
      const id = `${prefix}-${k}`;
      this.attempted++;
      try {
        await this.#producer.publish({ k }, { id });
        this.acked.add(id);
        this.lastAckAt = Date.now();
      } catch (err) {
        this.failed.push({ id, err });
      }
    }
  }

  /** Waits until publishing and consuming both resumed after `since` (a fault's end). */
  async resumed(since: number, what: string): Promise<number> {
    const ack = await waitFor(() => this.lastAckAt > since && this.lastAckAt, `a PubAck after ${what}`, 30_000);
    const done = await waitFor(() => this.lastCompletionAt > since && this.lastCompletionAt, `a completion after ${what}`, 30_000);
    return Math.max(Number(ack), Number(done));
  }

  /** Stops publishing, waits for every acknowledged job, and returns the accounting. */
  async finish(): Promise<{ lost: string[]; errors: string }> {
    this.#publishing = false;
    await Promise.all(this.#pubs);
    await waitFor(() => [...this.acked].every((id) => this.completed.has(id)), `all ${this.acked.size} acked jobs completed`, 60_000, 200)
      .catch(() => {}); // the assertions below fail with the figures
    await this.#producer.close();
    await this.#worker.stop({ timeoutMs: 5_000 });
    const byName = new Map<string, number>();
    for (const f of this.failed) {
      const name = f.err instanceof Error ? f.err.name : typeof f.err;
      byName.set(name, (byName.get(name) ?? 0) + 1);
    }
    return { lost: missing(this.acked, this.completed), errors: [...byName].map(([n, c]) => `${n} ${c}`).join(", ") || "none" };
  }

  assertAccounting(lost: string[]): void {
    assert.equal(this.attempted, this.acked.size + this.failed.length, "every publish either got its PubAck or failed for the caller");
    for (const f of this.failed) assert.ok(f.err instanceof JetqError, `publish errors are typed jetq errors: ${String(f.err)}`);
    assert.deepEqual(lost.slice(0, 10), [], `no acknowledged job lost (${lost.length} missing)`);
    assert.ok(this.acked.size > 0 && this.completed.size > 0, "traffic flowed");
  }
}

/** A server container, two reconnecting connections and a queue; everything removed after `fn`. */
async function withServer(name: string, fn: (srv: ContainerNatsServer, pnc: NatsConnection, wnc: NatsConnection, q: Queue) => Promise<void>): Promise<void> {
  requireDocker();
  const srv = await ContainerNatsServer.start();
  reportServerPath("container", "container-test", srv.describe());
  const pnc = await connectChaos(srv.servers);
  const wnc = await connectChaos(srv.servers);
  try {
    const q = defineQueue({ name: uniqueName(name), ackWaitMs: 2_000, maxAttempts: 1_000, backoff: [100] });
    await provisionQueue(pnc, q);
    await fn(srv, pnc, wnc, q);
  } finally {
    await pnc.close().catch(() => {});
    await wnc.close().catch(() => {});
    await srv.stop();
  }
}

describe("the NATS server's container under load", { timeout: 240_000 }, () => {
  it("docker stop + start, then docker kill + start, on the container's own store: nothing acknowledged is lost", async () => {
    await withServer("ctstop", async (srv, pnc, wnc, q) => {
      const load = new Load(pnc, wnc, q, "stop");
      await load.start();
      const recoveries: string[] = [];
      for (const fault of ["stop", "kill"] as const) {
        await pause(2_000);
        await waitFor(() => load.acked.size > 0 && load.completed.size > 0, `traffic before docker ${fault}`, 20_000);
        const at = Date.now();
        if (fault === "stop") await srv.stopContainer();
        else await srv.kill();
        assert.equal(await srv.status(), "exited", `docker ${fault} ended the container`);
        await pause(1_000);
        const restartAt = Date.now();
        await srv.startContainer();
        const back = await load.resumed(restartAt, `docker ${fault} + start`);
        recoveries.push(`${fault} ${back - at} ms`);
      }
      await pause(1_000);
      const { lost, errors } = await load.finish();
      record({
        scenario: "C1 container stop/kill + start",
        published: load.attempted,
        acked: load.acked.size,
        completed: load.completed.size,
        lost: lost.length,
        duplicates: load.records - load.completed.size,
        faults: 2,
        recoveryMs: undefined,
        note: `docker stop/kill -> first PubAck and completion after the start (down 1 s): ${recoveries.join(", ")}; publish errors seen by callers: ${errors}`,
        ok: lost.length === 0 && load.attempted === load.acked.size + load.failed.length,
      });
      load.assertAccounting(lost);
    });
  });

  it("docker pause longer than the publish timeout, then unpause: publishes time out visibly, nothing acknowledged is lost", async () => {
    await withServer("ctpause", async (srv, pnc, wnc, q) => {
      const load = new Load(pnc, wnc, q, "pause");
      await load.start();
      await pause(2_000);
      await waitFor(() => load.acked.size > 0 && load.completed.size > 0, "traffic before docker pause", 20_000);
      const failedBefore = load.failed.length;
      await srv.pause();
      const pausedAt = Date.now();
      assert.equal(await srv.status(), "paused");
      // Frozen, not gone: the client keeps its connection; publishes wait for PubAcks that
      // cannot come, and fail for their callers once ackTimeoutMs has passed.
      await waitFor(() => load.failed.length > failedBefore, "a publish failing while the server is paused", ACK_TIMEOUT_MS * 5);
      const ackedDuringPause = load.lastAckAt > pausedAt + 200;
      await pause(Math.max(0, pausedAt + ACK_TIMEOUT_MS * 2 - Date.now()));
      const unpausedAt = Date.now();
      await srv.unpause();
      const back = await load.resumed(unpausedAt, "docker unpause");
      await pause(1_000);
      const { lost, errors } = await load.finish();
      record({
        scenario: "C2 container pause/unpause",
        published: load.attempted,
        acked: load.acked.size,
        completed: load.completed.size,
        lost: lost.length,
        duplicates: load.records - load.completed.size,
        faults: 1,
        recoveryMs: back - unpausedAt,
        note: `paused ${unpausedAt - pausedAt} ms (publish timeout ${ACK_TIMEOUT_MS} ms); publish errors seen by callers: ${errors}`,
        ok: lost.length === 0 && load.attempted === load.acked.size + load.failed.length,
      });
      assert.equal(ackedDuringPause, false, "no PubAck arrives from a frozen server");
      load.assertAccounting(lost);
      assert.ok(load.failed.some((f) => f.err instanceof Error && f.err.name === "TimeoutError"), `the pause surfaced as publish timeouts (${errors})`);
    });
  });
});
