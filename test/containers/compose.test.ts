// infra/compose run for real: the 3-node NATS cluster and three example workers of
// docker-compose.yml, on images built on this machine and host networking
// (infra/compose/docker-compose.local.yml, merged by infra/compose/local.ts), driven by
// docker-compose. Checks that the cluster forms, that the workers provision the queue with 3
// replicas, that they process a batch, and that killing the stream leader's container mid-run
// loses no acknowledged job.
//
// How completions are seen from outside the worker containers: a worker acks a job by publishing
// to `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>...`, a core NATS subject any client
// of the account can subscribe to; the test's PubAcks map stream sequences to job ids. A job is
// accounted for when its ack was seen or it is in the dead-letter stream (the demo's workload
// fails some jobs on purpose: examples/demo/workload.ts).
//
// Runs only where Docker is asked for (.ci/run, `npm run test:containers`, `JETQ_DOCKER=1 npm test`);
// without an engine or docker-compose it fails with a message that says how to get them. Host
// networking puts every node on the host's loopback: a Linux engine is needed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { DeadLetterQueue, defineQueue, JetqError, Producer } from "../../src/index.ts";
import { buildLocalWorkerImage } from "../../infra/compose/build-local-worker.ts";
import { localCompose } from "../../infra/compose/local.ts";
import { connectChaos, missing } from "../chaos/common.ts";
import { record } from "../chaos/report.ts";
import { waitFor } from "../support/ctx.ts";
import { docker, requireDocker } from "../support/docker.ts";
import { freePort, reportServerPath } from "../support/nats-server.ts";

const JOBS = 1_500;
const PUBLISHERS = 8;
const NODES = ["nats-1", "nats-2", "nats-3"] as const;
/** server_name of each node, from infra/nats/cluster/node<i>.conf. */
const SERVER_NAME: Record<string, (typeof NODES)[number]> = { n1: "nats-1", n2: "nats-2", n3: "nats-3" };

function composeCli(): string {
  const r = spawnSync("docker-compose", ["version", "--short"], { encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error("This test needs docker-compose (Debian: apt-get install docker-compose; .ci/run installs it).");
  }
  return "docker-compose";
}

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * The demo's batch as its workers see it: job ids, payloads, and whether the workload fails the
 * job on purpose (examples/demo/workload.ts). Asked of a child Node, because the examples import
 * "jetq" by name and only `--conditions=jetq-source` maps that to src without a build.
 */
function demoBatch(n: number): Array<{ id: string; job: unknown; dies: boolean }> {
  const workload = pathToFileURL(join(root, "examples", "demo", "workload.ts")).href;
  const script = `const w = await import(${JSON.stringify(workload)});
    const out = [];
    for (let i = 0; i < ${n}; i++) {
      const id = w.imageId(i);
      out.push({ id, job: w.jobFor(i), dies: ["corrupt", "origin-down", "invalid"].includes(w.fateOf(id).kind) });
    }
    process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ["--conditions=jetq-source", "--input-type=module", "-e", script], { encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) throw new Error(`reading the demo workload failed:\n${r.stderr}`);
  return JSON.parse(r.stdout) as Array<{ id: string; job: unknown; dies: boolean }>;
}

async function distinctPorts(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

async function httpJson(url: string): Promise<Record<string, unknown>> {
  const r = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  return (await r.json()) as Record<string, unknown>;
}

it("infra/compose: the cluster forms, workers provision an R3 queue and process a batch, a NATS container killed mid-run loses nothing", { timeout: 420_000 }, async () => {
  requireDocker();
  if (process.platform !== "linux") throw new Error("The compose run uses host networking, which puts containers on the host's loopback only on Linux.");
  const compose = composeCli();
  const natsImage = process.env.JETQ_LOCAL_NATS_IMAGE;
  if (!natsImage) {
    throw new Error("This test runs the NATS image built from the nats-server binary (it needs bash inside for the healthcheck): " +
      "run it through scripts/docker.sh (npm run test:containers), which builds it and sets JETQ_LOCAL_NATS_IMAGE.");
  }
  const dir = mkdtempSync(join(tmpdir(), "jetq-compose-"));
  const file = join(dir, "docker-compose.yml");
  writeFileSync(file, localCompose());
  const project = `jetqct${process.pid}`;
  const [c1, c2, c3, r1, r2, r3, h1, h2, h3] = await distinctPorts(9);
  const ports = { "nats-1": { client: c1!, http: h1! }, "nats-2": { client: c2!, http: h2! }, "nats-3": { client: c3!, http: h3! } };
  const env = {
    ...process.env,
    JETQ_LOCAL_NATS_IMAGE: natsImage,
    NATS_1_PORT: String(c1), NATS_2_PORT: String(c2), NATS_3_PORT: String(c3),
    NATS_1_ROUTE_PORT: String(r1), NATS_2_ROUTE_PORT: String(r2), NATS_3_ROUTE_PORT: String(r3),
    NATS_1_HTTP_PORT: String(h1), NATS_2_HTTP_PORT: String(h2), NATS_3_HTTP_PORT: String(h3),
  };
  const run = (args: string[], timeoutMs = 180_000): string => {
    const r = spawnSync(compose, ["-p", project, "-f", file, ...args], { encoding: "utf8", env, timeout: timeoutMs });
    if (r.status !== 0) throw new Error(`docker-compose ${args.join(" ")} failed (${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
    return r.stdout + r.stderr;
  };
  const conns: NatsConnection[] = [];
  let started = false;
  try {
    const t0 = Date.now();
    buildLocalWorkerImage();
    const built = Date.now();
    started = true;
    run(["up", "-d", "--no-build", "--scale", "worker=3", ...NODES, "worker"]);
    const up = Date.now();
    reportServerPath("container", "container-test", `docker-compose, 3 × ${natsImage} + 3 × jetq-demo-worker:local, host network`);

    // The cluster forms: every node routes to the two others, and JetStream has a meta leader.
    for (const n of NODES) {
      await waitFor(async () => {
        const routez = await httpJson(`http://127.0.0.1:${ports[n].http}/routez`).catch(() => ({ num_routes: 0 }));
        return routez.num_routes === 2;
      }, `${n} routed to both other nodes`, 30_000, 200);
    }
    const all = NODES.map((n) => `nats://127.0.0.1:${ports[n].client}`).join(",");
    const admin = await connectChaos(all);
    conns.push(admin);
    const jsm = await jetstreamManager(admin);

    // The workers provision the queue (JETQ_REPLICAS 3 in docker-compose.yml) when they start.
    // Names only (stream JETQ_thumbnails, consumer workers): the workers defined and provisioned it.
    const queue = defineQueue({ name: "thumbnails", replicas: 3 });
    const batch = demoBatch(JOBS);
    const dies = new Set(batch.filter((b) => b.dies).map((b) => b.id));
    const info = await waitFor(async () => {
      const si = await jsm.streams.info(queue.names.stream).catch(() => undefined);
      return si && si.cluster?.leader && (si.cluster.replicas ?? []).length === 2 ? si : undefined;
    }, `stream ${queue.names.stream} with a leader and two replicas`, 60_000, 250);
    assert.equal(info.config.num_replicas, 3);
    const consumer = await jsm.consumers.info(queue.names.stream, queue.names.consumer);
    assert.ok((consumer.cluster?.replicas ?? []).length >= 2, `the workers' consumer is replicated too: ${JSON.stringify(consumer.cluster)}`);
    await waitFor(async () => (await jsm.consumers.info(queue.names.stream, queue.names.consumer)).num_waiting >= 3, "three workers pulling", 30_000, 200);

    // The node to kill: the stream leader. Producer and ack observer use the other two nodes.
    const victim = SERVER_NAME[info.cluster!.leader!]!;
    const others = NODES.filter((n) => n !== victim).map((n) => `nats://127.0.0.1:${ports[n].client}`).join(",");
    const pnc = await connectChaos(others);
    conns.push(pnc);
    // One observer per node, each connected to that node alone: a node delivers an ack it reads
    // to its own subscribers in the same step as it forwards it, so an ack the dying node took
    // in is seen by its observer even if it never left that node.
    const ackedSeqs = new Set<number>();
    const subs = [];
    for (const n of NODES) {
      const onc = await connectChaos(`nats://127.0.0.1:${ports[n].client}`, n === victim ? { maxReconnectAttempts: 0 } : {});
      conns.push(onc);
      subs.push(onc.subscribe(`$JS.ACK.${queue.names.stream}.${queue.names.consumer}.>`, {
        callback: (_err, m) => {
          const payload = m.string();
          // v1 ack subject: $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>
          if (payload === "" || payload === "+ACK") ackedSeqs.add(Number(m.subject.split(".")[5]));
        },
      }));
      await onc.flush();
    }

    const producer = new Producer(pnc, queue, { maxInFlight: 256, ackTimeoutMs: 5_000, validate: false });
    const seqOf = new Map<string, number>();
    const failed: Array<{ id: string; err: unknown }> = [];
    let next = 0;
    let killedAt = 0;
    // A publish that fails (no PubAck while the stream leader is re-elected) is retried with the
    // same id, the documented recovery: the server drops a duplicate, so each id is stored once.
    let retries = 0;
    const publisher = async (): Promise<void> => {
      while (next < JOBS) {
        const { id, job } = batch[next++]!;
        const deadline = Date.now() + 60_000;
        for (;;) {
          try {
            const receipt = await producer.publish(job, { id });
            seqOf.set(id, receipt.seq);
            break;
          } catch (err) {
            if (!(err instanceof JetqError) || Date.now() > deadline) {
              failed.push({ id, err });
              break;
            }
            retries++;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      }
    };
    const pubs = Array.from({ length: PUBLISHERS }, publisher);
    await waitFor(() => ackedSeqs.size >= JOBS / 3, `a third of the batch processed`, 60_000, 20);
    killedAt = Date.now();
    run(["kill", "-s", "SIGKILL", victim], 60_000);
    assert.match(docker(["inspect", "-f", "{{.State.Status}}", `${project}_${victim}_1`]), /exited/);
    await Promise.all(pubs);
    const publishedAt = Date.now();

    const dlq = new DeadLetterQueue(pnc, queue);
    const shouldDie = (id: string): boolean => dies.has(id);
    const accounted = async (): Promise<{ done: Set<string>; dead: Set<string> }> => {
      const dead = new Set((await dlq.list({ limit: 10_000 })).map((d) => d.id));
      const done = new Set<string>();
      for (const [id, seq] of seqOf) if (ackedSeqs.has(seq) || dead.has(id)) done.add(id);
      return { done, dead };
    };
    let state = { done: new Set<string>(), dead: new Set<string>() };
    await waitFor(async () => {
      // The JetStream API may not answer while the cluster elects new leaders: ask again.
      state = await accounted().catch(() => state);
      return state.done.size === seqOf.size;
    }, `all ${seqOf.size} acknowledged jobs completed or dead-lettered`, 120_000, 500).catch(() => {}); // asserted below, with figures
    const finishedAt = Date.now();
    for (const sub of subs) sub.unsubscribe();
    await producer.close();

    const lost = missing(seqOf.keys(), state.done);
    // Asked again until it answers: the admin connection may have been on the killed node.
    const after = await waitFor(() => jsm.streams.info(queue.names.stream).catch(() => undefined), "stream info after the kill", 30_000, 250);
    const newLeader = after.cluster?.leader;
    // Publishes that failed for their caller (no PubAck in time) may have been stored anyway:
    // the workers run those too, so the stream empties, a little after the acknowledged ones.
    let remaining = after.state.messages;
    await waitFor(async () => {
      remaining = (await jsm.streams.info(queue.names.stream).catch(() => after)).state.messages;
      return remaining === 0;
    }, "the work-queue stream to empty", 60_000, 250).catch(() => {}); // asserted below
    if (lost.length > 0) {
      // Lost, or stuck in the stream? Say which, with the consumer's view.
      const c = await waitFor(() => jsm.consumers.info(queue.names.stream, queue.names.consumer).catch(() => undefined), "consumer info", 30_000, 250);
      for (const id of lost.slice(0, 5)) {
        const m = await jsm.streams.getMessage(queue.names.stream, { seq: seqOf.get(id)! }).catch((e: Error) => e);
        console.log(`[compose] ${id} (seq ${seqOf.get(id)}): ${m instanceof Error ? `not in the stream (${m.message})` : "still in the stream"}`);
      }
      console.log(`[compose] stream ${JSON.stringify(after.state)}; consumer pending ${c.num_pending}, ack pending ${c.num_ack_pending}, redelivered ${c.num_redelivered}, ack floor ${JSON.stringify(c.ack_floor)}, delivered ${JSON.stringify(c.delivered)}`);
    }
    const wrongDead = [...state.dead].filter((id) => !shouldDie(id));
    const expectedDead = [...seqOf.keys()].filter(shouldDie); // acknowledged ones
    record({
      scenario: "C3 compose cluster, leader container killed",
      published: JOBS,
      acked: seqOf.size,
      completed: state.done.size,
      lost: lost.length,
      duplicates: 0,
      faults: 1,
      recoveryMs: undefined,
      note: `image ${Math.round((built - t0) / 1000)} s, up ${Math.round((up - built) / 1000)} s; killed ${victim} (stream leader), new leader ${newLeader}; ` +
        `batch done ${Math.round((finishedAt - publishedAt) / 1000)} s after the last publish; dead letters ${state.dead.size} (expected ${expectedDead.length}); ` +
        `${retries} publish retries (same id), ${failed.length} given up`,
      ok: lost.length === 0,
    });
    assert.deepEqual(failed.map((f) => `${f.id}: ${String(f.err)}`), [], "every job was acknowledged, retried with its id where a publish failed");
    assert.equal(seqOf.size, JOBS);
    assert.deepEqual(lost.slice(0, 10), [], `no acknowledged job lost (${lost.length} of ${seqOf.size} neither acked by a worker nor dead-lettered)`);
    assert.deepEqual(wrongDead, [], "only jobs the workload fails on purpose are dead-lettered");
    // (Jobs whose publish failed for the caller but was stored anyway may be there too.)
    assert.deepEqual(expectedDead.filter((id) => !state.dead.has(id)), [], "every acknowledged job meant to fail is in the dead-letter queue");
    assert.ok(newLeader && SERVER_NAME[newLeader] !== victim, `a surviving node leads the stream (${newLeader})`);
    assert.equal(remaining, 0, "the work-queue stream is empty");
    assert.ok(killedAt > 0);
  } catch (err) {
    if (started) {
      const logs = spawnSync(compose, ["-p", project, "-f", file, "logs", "--no-color", "--tail", "40"], { encoding: "utf8", env, timeout: 30_000 });
      console.log(`docker-compose logs (last lines per container):\n${logs.stdout}${logs.stderr}`);
    }
    throw err;
  } finally {
    await Promise.allSettled(conns.map((c) => c.close()));
    if (started) spawnSync(compose, ["-p", project, "-f", file, "down", "-v", "--timeout", "25"], { env, timeout: 120_000 });
    rmSync(dir, { recursive: true, force: true });
  }
});
