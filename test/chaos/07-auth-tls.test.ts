// Chaos 7: auth and TLS. A server with TLS (CA and certificate generated here with the system's
// openssl) and users with per-user subject permissions: a producer that may only publish to the
// queue, a worker that may consume it, an outsider that may do neither, and an admin that
// provisions. jetq must work over TLS with credentials; every forbidden operation must fail fast
// with a typed PermissionError naming the problem; no password may appear in an error or a log.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  AuthenticationError,
  connect,
  DeadLetterQueue,
  defineQueue,
  PermanentError,
  PermissionError,
  Producer,
  provisionQueue,
  Worker,
  type Logger,
} from "../../src/index.ts";
import { startLocalNats, type LocalNatsServer } from "../support/nats-server.ts";
import { uniqueName, waitFor } from "../support/ctx.ts";
import { rolePermissions } from "./permissions.ts";
import { record } from "./report.ts";

const FAST_MS = 2_000; // "fails fast": well under the producer's 5 s PubAck timeout

function openssl(args: string[], cwd: string): void {
  const r = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr}`);
}

/** A throwaway CA and a server certificate for 127.0.0.1 / localhost. */
function makeCerts(dir: string): { ca: string; cert: string; key: string } {
  const v = spawnSync("openssl", ["version"], { encoding: "utf8" });
  assert.equal(v.status, 0, "this scenario needs the openssl command (apt-get install openssl)");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=jetq-chaos-ca"], dir);
  openssl(["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"], dir);
  writeFileSync(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "ext.cnf"], dir);
  return { ca: join(dir, "ca.pem"), cert: join(dir, "server.pem"), key: join(dir, "server.key") };
}

describe("auth and TLS", () => {
  const name = uniqueName("secure");
  const other = uniqueName("other");
  const pw = {
    admin: randomBytes(12).toString("hex"),
    producer: randomBytes(12).toString("hex"),
    worker: randomBytes(12).toString("hex"),
    outsider: randomBytes(12).toString("hex"),
    operator: randomBytes(12).toString("hex"),
  };
  const secrets = Object.values(pw);
  let dir: string;
  let srv: LocalNatsServer;
  let tlsOpts: { caFile: string };
  const conns: NatsConnection[] = [];
  /** Every error message, stack and log line produced in this scenario: checked for secrets. */
  const seen: string[] = [];
  const logger: Logger = {
    warn: (o, m) => seen.push(JSON.stringify(o, errorReplacer), String(m)),
    error: (o, m) => seen.push(JSON.stringify(o, errorReplacer), String(m)),
    info: (o, m) => seen.push(JSON.stringify(o, errorReplacer), String(m)),
    debug: (o, m) => seen.push(JSON.stringify(o, errorReplacer), String(m)),
  };
  const figures = { published: 0, acked: 0, completed: 0, faults: 0, forbidden: [] as string[], problems: [] as string[], example: "" };

  function errorReplacer(_k: string, v: unknown): unknown {
    return v instanceof Error ? { name: v.name, message: v.message, stack: v.stack, cause: v.cause } : v;
  }
  function remember(err: unknown): void {
    for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
      seen.push(String(e), (e as Error).stack ?? "", JSON.stringify(e, errorReplacer) ?? "");
    }
  }
  async function as(user: keyof typeof pw): Promise<NatsConnection> {
    const nc = await connect({ servers: srv.servers, user, pass: pw[user], tls: tlsOpts, maxReconnectAttempts: 2 });
    conns.push(nc);
    return nc;
  }
  /** Runs a forbidden operation: it must reject with PermissionError within FAST_MS. */
  async function forbidden(label: string, op: () => Promise<unknown>): Promise<void> {
    figures.faults++;
    const t0 = performance.now();
    let err: unknown;
    try {
      await op();
    } catch (e) {
      err = e;
    }
    const ms = Math.round(performance.now() - t0);
    remember(err);
    const what = err === undefined ? "succeeded" : `${(err as Error).name}: ${(err as Error).message}`;
    figures.forbidden.push(`${label} -> ${err === undefined ? "ALLOWED" : (err as Error).name} in ${ms} ms`);
    if (err instanceof PermissionError && !figures.example) figures.example = err.message;
    if (err instanceof PermissionError && !/permission|\$JS|jetq\.|_INBOX/i.test(err.message)) {
      figures.problems.push(`${label}: the PermissionError does not name the subject: ${err.message}`);
    }
    if (!(err instanceof PermissionError) || ms > FAST_MS) {
      figures.problems.push(`${label}: expected PermissionError within ${FAST_MS} ms, got ${what} after ${ms} ms`);
    }
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "jetq-tls-"));
    const certs = makeCerts(dir);
    tlsOpts = { caFile: certs.ca };
    const perms = rolePermissions(name);
    const config = `
tls {
  cert_file: "${certs.cert}"
  key_file: "${certs.key}"
  ca_file: "${certs.ca}"
  timeout: 2
}
authorization {
  users: [
    { user: admin, password: "${pw.admin}" }
    { user: producer, password: "${pw.producer}", permissions: ${JSON.stringify(perms.producer)} }
    { user: worker, password: "${pw.worker}", permissions: ${JSON.stringify(perms.worker)} }
    { user: operator, password: "${pw.operator}", permissions: ${JSON.stringify(perms.operator)} }
    { user: outsider, password: "${pw.outsider}", permissions: { publish: { allow: ["other.>"] }, subscribe: { allow: ["other.>", "_INBOX.>"] } } }
  ]
}
`;
    srv = await startLocalNats({ config });
  });

  after(async () => {
    await Promise.allSettled(conns.map((c) => c.close()));
    await srv?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    const leaks = secrets.filter((s) => seen.some((t) => t.includes(s)));
    record({
      scenario: "7 auth and TLS",
      published: figures.published,
      acked: figures.acked,
      completed: figures.completed,
      lost: figures.acked - figures.completed,
      duplicates: 0,
      faults: figures.faults,
      recoveryMs: undefined,
      note: `TLS + users; forbidden: ${figures.forbidden.join("; ")}; e.g. "${figures.example}"; ${leaks.length} passwords leaked in ${seen.length} error/log strings` +
        (figures.problems.length ? `; PROBLEMS: ${figures.problems.join(" | ")}` : ""),
      ok: figures.problems.length === 0 && leaks.length === 0 && figures.completed === figures.acked && figures.acked > 0,
    });
  });

  it("works over TLS with per-role credentials: admin provisions, producer publishes, worker consumes and dead-letters", { timeout: 60_000 }, async () => {
    const admin = await as("admin");
    const q = defineQueue({ name, maxAttempts: 2, backoff: [50] });
    await provisionQueue(admin, q);
    await provisionQueue(admin, defineQueue({ name: other }));

    const pnc = await as("producer");
    const wnc = await as("worker");
    const violations: string[] = [];
    for (const nc of [pnc, wnc]) {
      void (async () => {
        for await (const s of nc.status()) if (s.type === "error") violations.push(String(s.error));
      })();
    }
    const producer = new Producer(pnc, q);
    const JOBS = 200;
    const receipts = await producer.publishMany(Array.from({ length: JOBS }, (_, i) => ({ i })), { id: (_x, i) => `sec-${i}` });
    await producer.publish({ poison: true }, { id: "sec-poison" });
    figures.published += JOBS + 1;
    figures.acked += receipts.length + 1;
    const done = new Set<string>();
    const dead: string[] = [];
    const worker = new Worker(wnc, q, async (job) => {
      if ((job.data as { poison?: boolean }).poison) throw new PermanentError("poison");
      done.add(job.id);
    }, { concurrency: 8, logger });
    worker.on("dead", (ev) => dead.push(ev.id));
    worker.on("error", (e) => {
      remember(e);
      violations.push(`worker error: ${e.message}`);
    });
    await worker.start();
    let replayed = false;
    try {
      await waitFor(() => done.size === JOBS && dead.length === 1, "all jobs completed and the poison dead-lettered", 30_000);
      assert.equal(await new DeadLetterQueue(admin, q).count(), 1, "the dead letter was stored with the worker's permissions");

      // The operator inspects and replays it with the operator's permissions only; the worker runs it again.
      const onc = await as("operator");
      for (const nc of [onc]) {
        void (async () => {
          for await (const s of nc.status()) if (s.type === "error") violations.push(`operator: ${String(s.error)}`);
        })();
      }
      const dlq = new DeadLetterQueue(onc, q);
      assert.equal(await dlq.count(), 1);
      const [entry] = await dlq.list();
      assert.equal(entry?.id, "sec-poison");
      assert.equal((await dlq.get(entry.seq))?.reason, "permanent");
      await dlq.replay(entry.seq);
      await waitFor(() => dead.length === 2, "the replayed job ran (and was dead-lettered again)", 10_000);
      assert.equal(await dlq.purge(), 1, "the operator purges");
      assert.equal(await dlq.count(), 0);
      replayed = true;
    } finally {
      await worker.stop({ timeoutMs: 2_000 });
      await producer.close();
    }
    figures.completed += done.size + 1;
    assert.ok(replayed);
    assert.deepEqual(violations, [], "the documented permissions are enough: no permission violation on the happy path");
    assert.equal(pnc.info?.tls_required ?? true, true);
  });

  it("refuses every forbidden operation fast, with a PermissionError that names the problem", { timeout: 120_000 }, async () => {
    const q = defineQueue({ name });
    const q2 = defineQueue({ name: other });
    const pnc = await as("producer");
    const wnc = await as("worker");
    const onc = await as("outsider");

    await forbidden("producer consumes (Worker.start)", async () => {
      const w = new Worker(pnc, q, async () => {}, { logger });
      await w.start();
      await w.stop();
    });
    await forbidden("producer reads dead letters", () => new DeadLetterQueue(pnc, q).count());
    await forbidden("producer publishes to another queue", async () => {
      const p = new Producer(pnc, q2);
      try {
        await p.publish({ x: 1 });
      } finally {
        await p.close();
      }
    });
    await forbidden("worker publishes to the queue", async () => {
      const p = new Producer(wnc, q);
      try {
        await p.publish({ x: 1 });
      } finally {
        await p.close();
      }
    });
    await forbidden("worker consumes another queue", async () => {
      const w = new Worker(wnc, q2, async () => {}, { logger });
      await w.start();
      await w.stop();
    });
    await forbidden("outsider publishes", async () => {
      const p = new Producer(onc, q);
      try {
        await p.publish({ x: 1 });
      } finally {
        await p.close();
      }
    });
    await forbidden("outsider consumes", async () => {
      const w = new Worker(onc, q, async () => {}, { logger });
      await w.start();
      await w.stop();
    });
    await forbidden("outsider provisions", () => provisionQueue(onc, defineQueue({ name: uniqueName("nope") })));

    // A wrong password is refused with a typed error that does not repeat it.
    const wrong = `wrong-${randomBytes(8).toString("hex")}`;
    secrets.push(wrong);
    const authErr = await connect({ servers: srv.servers, user: "producer", pass: wrong, tls: tlsOpts, maxReconnectAttempts: 0 }).catch((e: unknown) => e);
    remember(authErr);
    const urlErr = await connect({ servers: srv.servers.replace("nats://", `nats://producer:${wrong}@`), tls: tlsOpts, maxReconnectAttempts: 0 }).catch((e: unknown) => e);
    remember(urlErr);
    figures.faults += 2;

    const leaks = secrets.filter((s) => seen.some((t) => t.includes(s)));
    console.log(`[chaos] auth: ${figures.forbidden.join("; ")}`);
    assert.ok(authErr instanceof AuthenticationError, `wrong password -> AuthenticationError, got ${String(authErr)}`);
    assert.ok(urlErr instanceof AuthenticationError, `wrong password in the URL -> AuthenticationError, got ${String(urlErr)}`);
    assert.deepEqual(leaks.map((s) => `${s.slice(0, 4)}…`), [], "no password appears in any error message, stack or log line");
    assert.deepEqual(figures.problems, [], "every forbidden operation failed fast with PermissionError");
  });
});
