// Chaos 7b: the role permissions of test/chaos/permissions.ts (README "Security") are minimal.
// Each role does its whole job with exactly its list; with any one publish permission removed, the
// job fails (a permission violation). The worker's job includes the crash-loop path: a job
// delivered maxAttempts times without an ack is moved to the dead-letter queue by the worker.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { connect, ConnectionError, DeadLetterQueue, defineQueue, listJobs, listWorkers, PermanentError, Producer, provisionQueue, type Queue, type QueueOptions, Schedules, TimeoutError, Worker } from "../../src/index.ts";
import { loadQueue } from "../../src/cli/connect.ts";
import { startLocalNats } from "../support/nats-server.ts";
import { uniqueName } from "../support/ctx.ts";
import { extraPermissions, rolePermissions } from "./permissions.ts";
import { pause, record } from "./report.ts";

type Role = "producer" | "worker" | "operator";
interface Perms {
  publish: { allow: string[] };
  subscribe: { allow: string[] };
}

/** Polls `ok` until it holds, `failed` holds, or the deadline passes. */
async function settle(ok: () => boolean | Promise<boolean>, failed: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end && !failed()) {
    if (await ok()) return true;
    await pause(50);
  }
  return false;
}

/** What a trial's body works with; `errors` collects the role connection's errors, `workers` are stopped after it. */
interface TrialWorld {
  admin: NatsConnection;
  rc: NatsConnection;
  q: Queue<unknown, unknown>;
  adminProducer: Producer;
  errors: string[];
  workers: Worker[];
}

/**
 * A server where user `role` has exactly `perms` (and `admin` everything), the queue provisioned
 * by admin; runs `body` and reports whether it succeeded with no error on the role's connection.
 */
async function withRole(perms: Perms, queue: QueueOptions, body: (w: TrialWorld) => Promise<boolean>): Promise<{ ok: boolean; error: string | undefined }> {
  const srv = await startLocalNats({
    config: `authorization {\n users: [\n { user: admin, password: admin }\n { user: role, password: role, permissions: ${JSON.stringify(perms)} }\n ]\n}\n`,
  });
  const conns: NatsConnection[] = [];
  const errors: string[] = [];
  const workers: Worker[] = [];
  let ok = false;
  try {
    const admin = await connect({ servers: srv.servers, user: "admin", pass: "admin" });
    const rc = await connect({ servers: srv.servers, user: "role", pass: "role" });
    conns.push(admin, rc);
    void (async () => {
      for await (const s of rc.status()) if (s.type === "error") errors.push(String(s.error));
    })();
    const q = defineQueue(queue) as Queue<unknown, unknown>;
    await provisionQueue(admin, q);
    const adminProducer = new Producer(admin, q);
    try {
      ok = await body({ admin, rc, q, adminProducer, errors, workers });
    } finally {
      // A failed trial need not wait for the role's worker to stop cleanly (a forbidden publish
      // leaves a delayed job's move or a tick waiting for its timeout): its connection goes first.
      if (!ok) await rc.close();
      await Promise.allSettled(workers.map((w) => w.stop({ timeoutMs: 500 })));
      await adminProducer.close();
    }
  } finally {
    await Promise.allSettled(conns.map((c) => c.close()));
    await srv.stop();
  }
  return { ok: ok && errors.length === 0, error: errors[0] };
}

/** Runs `role`'s whole job with its permissions minus publish permission `drop` (-1: none). */
async function trial(role: Role, drop: number): Promise<{ ok: boolean; error: string | undefined }> {
  const name = uniqueName("perm");
  const mine = structuredClone((rolePermissions(name) as Record<Role, Perms>)[role]);
  mine.publish.allow = mine.publish.allow.filter((_p, i) => i !== drop);
  // An empty allow list means "no restriction" to nats-server: keep one harmless entry instead.
  if (mine.publish.allow.length === 0) mine.publish.allow = ["jetq.chaos.nothing"];
  return withRole(mine, { name, maxAttempts: 2, ackWaitMs: 300, backoff: [50] }, async ({ admin, rc, q, adminProducer, errors, workers }) => {
    let ok = false;
    if (role === "producer") {
      const p = new Producer(rc, q, { ackTimeoutMs: 2_000 });
      try {
        await p.publish({ n: 1 });
        ok = true;
      } catch (err) {
        errors.push(String(err));
      } finally {
        await p.close();
      }
    } else if (role === "worker") {
      // A job whose process died twice while it held it: delivered twice by a raw consumer, never acked.
      await adminProducer.publish({ crash: true }, { id: "crash" });
      const raw = await jetstream(admin).consumers.get(q.names.stream, q.names.consumer);
      for (let d = 0; d < 2; d++) {
        const m = await raw.next({ expires: 2_000 });
        assert.ok(m, "raw delivery");
        await pause(q.ackWaitMs + 200); // let its ack wait expire: a crash, as the server sees it
      }
      await adminProducer.publish({ ok: true });
      await adminProducer.publish({ poison: true });
      let done = 0;
      let dead = 0;
      const w = new Worker(rc, q, async (job) => {
        if ((job.data as { poison?: boolean }).poison) throw new PermanentError("poison");
        done++;
      });
      workers.push(w);
      w.on("dead", () => dead++);
      w.on("error", (e) => errors.push(e.message));
      try {
        await w.start();
        // The crashed job runs alone (ledger read and write) and completes; the poison is dead-lettered.
        ok = await settle(() => done === 2 && dead === 1, () => errors.length > 0, 10_000);
      } catch (err) {
        errors.push(String(err));
      }
    } else {
      // Operator: two dead letters; list, get, replay one (it dies again), purge.
      const w = new Worker(admin, q, async () => {
        throw new PermanentError("poison");
      });
      workers.push(w);
      await w.start();
      await adminProducer.publish({ v: 1 });
      await adminProducer.publish({ v: 2 });
      const asAdmin = new DeadLetterQueue(admin, q);
      assert.ok(await settle(async () => (await asAdmin.count()) === 2, () => false, 10_000), "two dead letters");
      const dlq = new DeadLetterQueue(rc, q);
      try {
        const entries = await dlq.list();
        assert.equal(entries.length, 2);
        assert.equal((await dlq.get(entries[0]!.seq))?.reason, "permanent");
        await dlq.replay(entries[0]!.seq);
        const back = await settle(async () => (await asAdmin.count()) === 2 && (await asAdmin.list())[1]?.seq !== entries[1]!.seq, () => errors.length > 0, 10_000);
        ok = back && (await dlq.count()) === 2 && (await dlq.purge()) === 2 && errors.length === 0;
      } catch (err) {
        errors.push(String(err));
      }
    }
    return ok;
  });
}

const extras = ["prioProducer", "prioWorker", "prioOperator", "groupWorker", "schedWorker", "schedPrioWorker", "lister", "cliLister"] as const;
type Extra = (typeof extras)[number];

/** The whole list of an extra role (README "in addition" rows): its base role's list, the inherited entries, then its own. */
function extraList(name: string, kind: Extra): { perms: Perms; baseLength: number } {
  const x = extraPermissions(name)[kind];
  const base = x.base === undefined ? { publish: { allow: [] as string[] }, subscribe: { allow: [] as string[] } } : structuredClone((rolePermissions(name) as Record<Role, Perms>)[x.base]);
  const before = [...base.publish.allow, ...(x.inherited ?? [])];
  return {
    perms: { publish: { allow: [...before, ...x.publish] }, subscribe: { allow: [...new Set([...base.subscribe.allow, ...x.subscribe])] } },
    baseLength: before.length,
  };
}

/**
 * Runs an extra role's whole job with its list minus the extra publish permission `drop` (-1: none):
 * a producer of a prioritised queue (a job at level 0 and one at the default level), a dead-letter
 * operator replaying a level-0 dead letter, a worker of a prioritised queue (a job at each level), of a grouped queue (three jobs of one group
 * at concurrency 1 and one start per 500 ms: hand-backs at both limits), of a scheduling queue (a delayed
 * job moved and a schedule's tick fired, both at level 0 on a prioritised one), a lister (waiting, delayed,
 * active, workers).
 */
async function extraTrial(kind: Extra, drop: number): Promise<{ ok: boolean; error: string | undefined }> {
  const name = uniqueName("perm");
  const { perms: mine, baseLength } = extraList(name, kind);
  if (drop >= 0) mine.publish.allow.splice(baseLength + drop, 1);
  return withRole(mine, {
      name,
      maxAttempts: 2,
      ackWaitMs: 2_000,
      ...(kind.startsWith("prio") || kind === "schedPrioWorker" ? { priorities: 2 } : {}),
      ...(kind === "groupWorker" ? { group: { concurrency: 1, rateLimit: { max: 1, perMs: 500 } } } : {}),
      ...(kind.startsWith("sched") || kind === "lister" || kind === "cliLister" ? { scheduling: true } : {}),
    }, async ({ admin, rc, q, adminProducer, errors, workers }) => {
    let ok = false;
    if (kind === "prioProducer") {
      const p = new Producer(rc, q, { ackTimeoutMs: 2_000 });
      try {
        await p.publish({ urgent: true }, { priority: 0 });
        await p.publish({ plain: true });
        ok = true;
      } catch (err) {
        errors.push(String(err));
      } finally {
        await p.close();
      }
    } else if (kind === "prioOperator") {
      const w = new Worker(admin, q, async () => {
        throw new PermanentError("poison");
      });
      workers.push(w);
      await w.start();
      await adminProducer.publish({ urgent: true }, { priority: 0 });
      const asAdmin = new DeadLetterQueue(admin, q);
      assert.ok(await settle(async () => (await asAdmin.count()) === 1, () => false, 10_000), "a dead letter of level 0");
      try {
        const dlq = new DeadLetterQueue(rc, q);
        const [e] = await dlq.list();
        await dlq.replay(e!.seq);
        // It dies again: back in the dead-letter queue as a new entry.
        ok = await settle(async () => (await asAdmin.list()).some((x) => x.seq > e!.seq), () => errors.length > 0, 10_000);
      } catch (err) {
        errors.push(String(err));
      }
    } else if (kind === "prioWorker" || kind === "groupWorker") {
      const jobs = kind === "prioWorker" ? [{ priority: 0 }, { priority: 1 }, {}] : [{ group: "g" }, { group: "g" }, { group: "g" }];
      for (const [i, o] of jobs.entries()) await adminProducer.publish({ i }, o);
      let done = 0;
      const w = new Worker(rc, q, async () => {
        await pause(50);
        done++;
      }, { concurrency: 2 });
      workers.push(w);
      w.on("error", (e) => errors.push(e.message));
      try {
        await w.start();
        ok = await settle(() => done === jobs.length, () => errors.length > 0, 15_000);
      } catch (err) {
        errors.push(String(err));
      }
    } else if (kind === "schedWorker" || kind === "schedPrioWorker") {
      // A delayed job and a one-tick schedule, both of level 0 on the prioritised queue: the role's
      // worker moves the one (mover), fires the other (ticker) and runs both jobs. Then the ticker's
      // consumer is deleted while the connection is away (as across a server restart): after the
      // reconnect the watch finds it missing (INFO), deletes it and makes a new one, and a schedule
      // upserted afterwards fires too.
      const level = kind === "schedPrioWorker" ? { priority: 0 } : {};
      const schedules = new Schedules(admin, q);
      await adminProducer.publish({ delayed: true }, { delayMs: 200, ...level });
      await schedules.upsert("tick", { everyMs: 300, limit: 1 }, { tick: true }, level);
      let moved = 0;
      const ticks = new Set<string>();
      const w = new Worker(rc, q, async (job) => {
        if (job.schedule) ticks.add(job.schedule.name);
        else if ((job.data as { delayed?: boolean }).delayed) moved++;
      });
      workers.push(w);
      // Requests in flight when the connection drops time out or are cut at the end; a missing
      // permission still shows as the server's violation error on the connection (withRole collects those).
      let away = false;
      w.on("error", (e) => {
        if (!(away && (e instanceof TimeoutError || e instanceof ConnectionError))) errors.push(e.message);
      });
      try {
        await w.start();
        // The tick recorded (limit reached): the ticker is idle when the connection drops.
        ok = await settle(async () => moved === 1 && ticks.has("tick") && (await schedules.get("tick"))?.runs === 1, () => errors.length > 0, 10_000);
        if (ok) {
          const jsm = await jetstreamManager(admin);
          const watching = async (): Promise<string[]> => (await jsm.consumers.list(q.names.scheduleStream).next()).map((c) => c.name);
          const [gone] = await watching();
          assert.ok(gone, "the ticker's consumer");
          await jsm.consumers.delete(q.names.scheduleStream, gone);
          away = true;
          await rc.reconnect();
          ok = await settle(async () => (await watching()).some((c) => c !== gone), () => errors.length > 0, 10_000);
          await schedules.upsert("again", { everyMs: 300, limit: 1 }, { again: true }, level);
          ok &&= await settle(() => ticks.has("again"), () => errors.length > 0, 10_000);
        }
      } catch (err) {
        errors.push(String(err));
      }
    } else {
      await adminProducer.publish({ waiting: 1 });
      await adminProducer.publish({ waiting: 2 });
      await adminProducer.publish({ later: true }, { delayMs: 600_000 });
      let release = (): void => {};
      const held = new Promise<void>((r) => (release = r));
      try {
        if (kind === "cliLister") await loadQueue(rc, name);
        const waiting = await listJobs(rc, q, { state: "waiting" });
        const delayed = await listJobs(rc, q, { state: "delayed" });
        let running = 0;
        const w = new Worker(admin, q, async () => {
          running++;
          await held;
        });
        workers.push(w);
        await w.start();
        await settle(() => running > 0, () => false, 10_000);
        const seen = await settle(async () => (await listWorkers(rc, { queue: q })).total === 1, () => errors.length > 0, 10_000);
        const active = await listJobs(rc, q, { state: "active" });
        ok = waiting.total === 2 && delayed.total === 1 && seen && active.state === "active";
        if (!ok) errors.push(`listed waiting ${waiting.total}, delayed ${delayed.total}, worker seen ${seen}`);
      } catch (err) {
        errors.push(String(err));
      } finally {
        release();
      }
    }
    return ok;
  });
}

describe("minimal permissions", () => {
  it("each role works with exactly its permissions, and fails without any one of them", { timeout: 300_000 }, async () => {
    const lines: string[] = [];
    const problems: string[] = [];
    let trials = 0;
    for (const role of ["producer", "worker", "operator"] as const) {
      const list = (rolePermissions("<q>") as Record<Role, Perms>)[role].publish.allow;
      const all = await trial(role, -1);
      trials++;
      if (!all.ok) problems.push(`${role} fails with its full list: ${all.error}`);
      const unneeded: string[] = [];
      for (let i = 0; i < list.length; i++) {
        const r = await trial(role, i);
        trials++;
        if (r.ok) unneeded.push(list[i]!);
      }
      if (unneeded.length) problems.push(`${role} works without ${unneeded.join(", ")}`);
      lines.push(`${role}: ${list.length} publish permissions, all needed${unneeded.length ? ` except ${unneeded.join(", ")}` : ""}`);
    }
    // The "in addition" rows and the lister: the full list works, each extra entry is needed.
    // Inherited entries (cliLister: the lister's list; schedPrioWorker: the prioWorker and schedWorker
    // extras) are shown needed by their own rows: only a role's own entries are dropped.
    for (const kind of extras) {
      const extra = extraPermissions("<q>")[kind].publish;
      const all = await extraTrial(kind, -1);
      trials++;
      if (!all.ok) problems.push(`${kind} fails with its full list: ${all.error}`);
      const unneeded: string[] = [];
      for (let i = 0; i < extra.length; i++) {
        const r = await extraTrial(kind, i);
        trials++;
        if (r.ok) unneeded.push(extra[i]!);
      }
      if (unneeded.length) problems.push(`${kind} works without ${unneeded.join(", ")}`);
      lines.push(`${kind}: ${extra.length} extra publish permissions, all needed${unneeded.length ? ` except ${unneeded.join(", ")}` : ""}`);
    }
    record({
      scenario: "7b minimal permissions",
      published: 0,
      acked: 0,
      completed: 0,
      lost: 0,
      duplicates: 0,
      faults: trials,
      recoveryMs: undefined,
      note: `${trials} servers, one permission removed at a time: ${lines.join("; ")}${problems.length ? `; PROBLEMS: ${problems.join(" | ")}` : ""}`,
      ok: problems.length === 0,
    });
    assert.deepEqual(problems, []);
  });
});
