/**
 * The `jetq` command, run as a subprocess against a real server: output, --json shapes,
 * exit codes and error messages.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect as natsConnect } from "@nats-io/transport-node";
import { defineQueue, PermanentError, Producer, provisionQueue, Worker } from "../../src/index.ts";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";
import { CLI, runCli, type CliRun } from "../support/cli.ts";
import { findNatsServerBinary, freePort, startLocalNats, type LocalNatsServer } from "../support/nats-server.ts";
import { formatDuration, parseDuration, parseInteger, table } from "../../src/cli/format.ts";

type Run = CliRun;

/** Runs the CLI with stdin closed (not a TTY) or fed `input`, pointed at `opts.server` if given. */
function jetq(args: string[], opts: { server?: string; input?: string | Buffer; env?: Record<string, string> } = {}): Promise<Run> {
  return runCli(args, { input: opts.input, env: { ...(opts.server !== undefined ? { NATS_URL: opts.server } : {}), ...opts.env } });
}

const nats = useNats();
const url = (): string => nats.server().servers;
const auth = (): string[] => {
  const s = nats.server();
  return s.user ? ["--user", s.user, "--password", s.pass ?? ""] : [];
};

describe("jetq provision", () => {
  it("creates a queue, is idempotent, reports drift with exit 4, and applies it with --update", async () => {
    const q = uniqueName("cli");
    const first = await jetq(["provision", q, "--max-attempts", "3", "--ack-wait", "10s", ...auth()], { server: url() });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /stream\s+JETQ_\S+\s+created/);
    assert.match(first.stdout, /max attempts 3, ack wait 10s/);

    const again = await jetq(["--json", "provision", q, "--max-attempts", "3", "--ack-wait", "10s", ...auth()], { server: url() });
    assert.equal(again.code, 0, again.stderr);
    const j = JSON.parse(again.stdout);
    assert.deepEqual(j.result, { stream: "unchanged", consumer: "unchanged", deadLetterStream: "unchanged", ledgerStream: "unchanged", migrated: false });
    assert.equal(j.names.stream, `JETQ_${q}`);
    assert.equal(j.config.maxAttempts, 3);
    assert.equal(j.config.ackWaitMs, 10_000);

    const drift = await jetq(["provision", q, "--max-attempts", "3", "--ack-wait", "20s", ...auth()], { server: url() });
    assert.equal(drift.code, 4);
    assert.match(drift.stderr, /ack_wait 10s on the server, 20s requested/);
    assert.match(drift.stderr, /--update/);

    const upd = await jetq(["provision", q, "--max-attempts", "3", "--ack-wait", "20s", "--update", "--json", ...auth()], { server: url() });
    assert.equal(upd.code, 0, upd.stderr);
    assert.equal(JSON.parse(upd.stdout).result.consumer, "updated");
  });

  it("rejects bad options with exit 1 before connecting", async () => {
    const r = await jetq(["provision", "q1", "--ack-wait", "soon"], { server: "nats://127.0.0.1:1" });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--ack-wait to be a duration/);
    const bad = await jetq(["provision", "no spaces please"], { server: "nats://127.0.0.1:1" });
    assert.equal(bad.code, 1);
    const unknown = await jetq(["frobnicate"]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown command/);
  });
});

describe("jetq publish and stats", () => {
  it("publishes one job, drops a duplicate id, streams NDJSON from stdin, and counts them in stats", async () => {
    const q = uniqueName("cli");
    assert.equal((await jetq(["provision", q, ...auth()], { server: url() })).code, 0);

    const one = await jetq(["publish", q, '{"to":"ada@example.com"}', "--id", "welcome-ada", "--json", ...auth()], { server: url() });
    assert.equal(one.code, 0, one.stderr);
    assert.deepEqual(JSON.parse(one.stdout), { queue: q, id: "welcome-ada", seq: 1, duplicate: false });
    const dup = await jetq(["publish", q, '{"to":"ada@example.com"}', "--id", "welcome-ada", ...auth()], { server: url() });
    assert.equal(dup.code, 0);
    assert.match(dup.stdout, /duplicate was dropped/);

    const lines = await jetq(["publish", q, "--json", ...auth()], { server: url(), input: '{"n":1}\n{"n":2}\n\n{"n":3}\n' });
    assert.equal(lines.code, 0, lines.stderr);
    assert.deepEqual(JSON.parse(lines.stdout), { queue: q, published: 3, duplicates: 0, firstSeq: 2, lastSeq: 4 });

    const badJson = await jetq(["publish", q, "{not json", ...auth()], { server: url() });
    assert.equal(badJson.code, 1);
    assert.match(badJson.stderr, /not valid JSON/);

    const stats = await jetq(["stats", q, "--json", ...auth()], { server: url() });
    assert.equal(stats.code, 0, stats.stderr);
    const s = JSON.parse(stats.stdout);
    assert.equal(s.queue, q);
    assert.equal(s.pending, 4);
    assert.equal(s.inFlight, 0);
    assert.equal(s.deadLetters, 0);
    assert.equal(s.published, 4);
    assert.equal(s.maxAttempts, 5);
    assert.equal(typeof s.at, "string");

    const human = await jetq(["stats", q, ...auth()], { server: url() });
    assert.equal(human.code, 0);
    assert.match(human.stdout, /pending\s+4/);

    const all = await jetq(["stats", "--json", ...auth()], { server: url() });
    assert.equal(all.code, 0, all.stderr);
    const row = (JSON.parse(all.stdout) as Array<{ queue: string; pending: number }>).find((x) => x.queue === q);
    assert.equal(row?.pending, 4);

    const watch = await jetq(["stats", q, "--watch", "--count", "2", "--interval", "100ms", "--json", ...auth()], { server: url() });
    assert.equal(watch.code, 0, watch.stderr);
    const samples = watch.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(samples.length, 2);
    assert.equal(samples[1].pending, 4);
    assert.equal(typeof samples[1].completedPerSec, "number", "the second sample carries rates");
  });
});

describe("jetq publish to a bounded queue", () => {
  it("exits 5 when the queue is full and says how many jobs made it", async () => {
    const q = uniqueName("cli");
    assert.equal((await jetq(["provision", q, "--max-messages", "2", ...auth()], { server: url() })).code, 0);
    const r = await jetq(["publish", q, ...auth()], { server: url(), input: '{"n":1}\n{"n":2}\n{"n":3}\n{"n":4}\n{"n":5}\n' });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /full/);
    assert.match(r.stderr, /line 3/);
    assert.match(r.stderr, /2 job\(s\) were published to queue "[^"]+": every line before line 3\./);
    assert.match(r.stderr, /Resume from line 3/);
    // Lines pipelined behind line 3 were refused as well, and the report says so rather than
    // claiming they were never sent.
    const last = Number(/nothing after line (\d+) was sent/.exec(r.stderr)?.[1]);
    if (last > 3) assert.match(r.stderr, new RegExp(`line\\(s\\) 4${last > 4 ? `-${last}` : ""} were refused too`), r.stderr);
  });
});

/** Resolves when `w` drained, closed or failed (a CLI that stopped reading), or the process exited. */
function drained(w: NodeJS.WritableStream, exited: Promise<unknown>): Promise<unknown> {
  return Promise.race([
    new Promise<void>((resolve) => {
      const done = (): void => {
        w.off("drain", done);
        w.off("close", done);
        w.off("error", done);
        resolve();
      };
      w.on("drain", done);
      w.on("close", done);
      w.on("error", done);
    }),
    exited,
  ]);
}

describe("jetq publish from NDJSON: an exact report of what was stored", () => {
  /** The payloads stored in queue `name`'s stream, in order. */
  async function stored(name: string): Promise<unknown[]> {
    const nc = await nats.connect();
    const q = defineQueue({ name });
    const jsm = await jetstreamManager(nc);
    const n = (await jsm.streams.info(q.names.stream)).state.messages;
    const out: unknown[] = [];
    for (let seq = 1; out.length < n; seq++) {
      const m = await jsm.streams.getMessage(q.names.stream, { seq }).catch(() => null);
      if (m) out.push(JSON.parse(new TextDecoder().decode(m.data)));
    }
    return out;
  }
  async function provisioned(): Promise<string> {
    const q = uniqueName("cli");
    assert.equal((await jetq(["provision", q, ...auth()], { server: url() })).code, 0);
    return q;
  }

  it("stops at a line too large for the server: lines 1-2 stored, line 4 not sent, resume from 3", async () => {
    const q = await provisioned();
    const big = JSON.stringify({ n: 3, pad: "x".repeat(1024 * 1024 - 600) }); // under max_payload, over what a job may be
    const r = await jetq(["publish", q, ...auth()], { server: url(), input: `{"n":1}\n{"n":2}\n${big}\n{"n":4}\n` });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /2 job\(s\) were published to queue "[^"]+": every line before line 3\./);
    assert.match(r.stderr, /line 3 was not stored; nothing after line 3 was sent\. Resume from line 3/);
    assert.match(r.stderr, /line 3: Job for queue "[^"]+" is too large/);
    assert.deepEqual(await stored(q), [{ n: 1 }, { n: 2 }]);
  });

  it("says how many earlier lines were stored when a line is not JSON", async () => {
    const q = await provisioned();
    const r = await jetq(["publish", q, ...auth()], { server: url(), input: '{"n":1}\n\n{"n":2}\n{oops\n{"n":5}\n' });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /2 job\(s\) were published to queue "[^"]+": every line before line 4\./);
    assert.match(r.stderr, /Line 4 of stdin is not valid JSON/);
    assert.deepEqual(await stored(q), [{ n: 1 }, { n: 2 }]);
  });

  it("accepts a UTF-8 byte order mark and CRLF line ends", async () => {
    const q = await provisioned();
    const r = await jetq(["publish", q, "--json", ...auth()], { server: url(), input: '\uFEFF{"n":1}\r\n{"s":"é"}\r\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).published, 2);
    assert.deepEqual(await stored(q), [{ n: 1 }, { s: "é" }]);
  });

  it("refuses invalid UTF-8 with its line number instead of storing U+FFFD", async () => {
    const q = await provisioned();
    const input = Buffer.concat([Buffer.from('{"n":1}\n{"s":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n{"n":3}\n')]);
    const r = await jetq(["publish", q, ...auth()], { server: url(), input });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /Line 2 of stdin is not valid UTF-8/);
    assert.match(r.stderr, /1 job\(s\) were published/);
    assert.deepEqual(await stored(q), [{ n: 1 }]);
  });

  it("refuses a line longer than max_payload without reading all of it", async () => {
    const q = await provisioned();
    const p = spawn(process.execPath, [CLI, "publish", q, ...auth()], { env: { ...process.env, NATS_URL: url() }, stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    p.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => p.on("exit", (code) => resolve(code)));
    const kill = setTimeout(() => p.kill("SIGKILL"), 30_000);
    // One 64 MiB line, written as the pipe takes it: the CLI must stop reading long before its end.
    const chunk = Buffer.alloc(64 * 1024, "a");
    let written = 0;
    p.stdin.on("error", () => {});
    p.stdin.write('{"n":1}\n["');
    while (written < 64 * 1024 * 1024 && p.exitCode === null && p.stdin.writable) {
      if (!p.stdin.write(chunk)) await drained(p.stdin, exited);
      written += chunk.length;
    }
    p.stdin.destroy();
    const code = await exited;
    clearTimeout(kill);
    assert.equal(code, 1, stderr);
    assert.match(stderr, /Line 2 of stdin is longer than \d+ bytes/);
    assert.match(stderr, /1 job\(s\) were published/);
    assert.ok(written < 16 * 1024 * 1024, `the CLI took ${written} bytes of the line before refusing it`);
    assert.deepEqual(await stored(q), [{ n: 1 }]);
  });
});

describe("jetq publish when the connection closes under it", { skip: findNatsServerBinary() ? false : "needs a nats-server binary" }, () => {
  it("prints how many lines were confirmed and exits 3, never hanging or exiting 0/13", async () => {
    const srv = await startLocalNats();
    try {
      assert.equal((await jetq(["provision", "cut"], { server: srv.servers })).code, 0);
      const p = spawn(process.execPath, [CLI, "publish", "cut"], { env: { ...process.env, NATS_URL: srv.servers }, stdio: ["pipe", "pipe", "pipe"] });
      let stderr = "";
      p.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
      const exited = new Promise<number | null>((resolve) => p.on("exit", (code) => resolve(code)));
      const kill = setTimeout(() => p.kill("SIGKILL"), 60_000);
      p.stdin.on("error", () => {});
      // Lines keep coming (stdin stays open) until the CLI is gone.
      let n = 0;
      const writing = (async () => {
        while (p.exitCode === null && p.stdin.writable) {
          let batch = "";
          for (let i = 0; i < 500; i++) batch += `{"n":${++n}}\n`;
          if (!p.stdin.write(batch)) await drained(p.stdin, exited);
        }
      })();
      const nc = await natsConnect({ servers: srv.servers, noAsyncTraces: true });
      const jsm = await jetstreamManager(nc);
      await waitFor(async () => (await jsm.streams.info("JETQ_cut")).state.messages >= 2000, "2000 jobs stored", 30_000);
      await nc.close();
      await srv.kill();
      const code = await exited;
      clearTimeout(kill);
      await writing;
      assert.equal(code, 3, stderr);
      const m = /(\d+) job\(s\) were published to queue "cut": every line before line (\d+)/.exec(stderr);
      assert.ok(m, stderr);
      const confirmed = Number(m[1]);
      assert.equal(Number(m[2]), confirmed + 1, "lines are contiguous from line 1");
      assert.match(stderr, /ConnectionError|connection closed/i);
      // What the server holds (after a restart on the same store) is what was confirmed, plus at
      // most the lines reported as sent but unconfirmed.
      await srv.start();
      const nc2 = await natsConnect({ servers: srv.servers, noAsyncTraces: true });
      const held = (await (await jetstreamManager(nc2)).streams.info("JETQ_cut")).state.messages;
      await nc2.close();
      const unknown = /sent but not confirmed/.test(stderr) ? 256 : 0;
      assert.ok(held >= confirmed && held <= confirmed + unknown, `stored ${held}, reported ${confirmed}\n${stderr}`);
    } finally {
      await srv.stop();
    }
  });
});

describe("jetq errors", () => {
  it("says the queue is unknown with exit 2 and how to create it", async () => {
    const q = uniqueName("nope");
    for (const args of [["stats", q], ["dlq", "list", q], ["publish", q, "{}"]]) {
      const r = await jetq([...args, ...auth()], { server: url() });
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`Queue "${q}" not found`));
      assert.match(r.stderr, new RegExp(`jetq provision ${q}`));
    }
  });

  it("refuses a server list with no address instead of connecting to 127.0.0.1:4222", async () => {
    for (const list of [",,,", " , ", ""]) {
      const r = await jetq(["stats", "-s", list]);
      assert.equal(r.code, 1, `-s ${JSON.stringify(list)}: ${r.stderr}`);
      assert.match(r.stderr, /Expected --server \(or NATS_URL\) to name at least one server/);
    }
  });

  it("says the server is unreachable with exit 3, as JSON with --json", async () => {
    const port = await freePort();
    const r = await jetq(["stats", "x", "--server", `nats://127.0.0.1:${port}`]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, new RegExp(`Cannot reach NATS at nats://127.0.0.1:${port}`));
    const j = await jetq(["--json", "stats", "x", "--server", `nats://127.0.0.1:${port}`]);
    assert.equal(j.code, 3);
    assert.deepEqual(Object.keys(JSON.parse(j.stderr).error).sort(), ["exitCode", "message", "name"]);
    assert.equal(JSON.parse(j.stderr).error.name, "ConnectionError");
    assert.equal(j.stdout, "");
  });
});

describe("jetq against a server with users and permissions", { skip: findNatsServerBinary() ? false : "needs a nats-server binary" }, () => {
  let srv: LocalNatsServer;
  before(async () => {
    srv = await startLocalNats({
      config: `
authorization {
  users = [
    { user: admin, password: s3cret }
    { user: viewer, password: s3cret, permissions: { publish: { deny: ["$JS.API.>"] }, subscribe: { allow: ["_INBOX.>"] } } }
  ]
}`,
    });
  });
  after(async () => {
    await srv?.stop();
  });

  it("reports refused credentials with exit 3 without echoing the password", async () => {
    const r = await jetq(["stats", "--user", "admin", "--password", "wrong-pw"], { server: srv.servers });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /rejected the credentials/);
    assert.doesNotMatch(r.stderr, /wrong-pw/);
  });

  it("reports a permission denied with exit 3, naming the subject", async () => {
    const ok = await jetq(["provision", "perm", "--user", "admin", "--password", "s3cret"], { server: srv.servers });
    assert.equal(ok.code, 0, ok.stderr);
    const r = await jetq(["stats", "perm", "--user", "viewer", "--password", "s3cret"], { server: srv.servers });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /[Pp]ermission/);
    assert.match(r.stderr, /\$JS\.API/);
  });
});

describe("jetq stats --watch across a server restart", { skip: findNatsServerBinary() ? false : "needs a nats-server binary" }, () => {
  let srv: LocalNatsServer;
  before(async () => {
    srv = await startLocalNats();
  });
  after(async () => {
    await srv?.stop();
  });

  it("says the connection was lost, reconnects, and keeps sampling", async () => {
    assert.equal((await jetq(["provision", "watched"], { server: srv.servers })).code, 0);
    const p = spawn(process.execPath, [CLI, "stats", "watched", "--watch", "--json", "--interval", "300ms", "--count", "6"], {
      env: { ...process.env, NATS_URL: srv.servers },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    p.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => p.on("exit", (code) => resolve(code)));
    const kill = setTimeout(() => p.kill("SIGKILL"), 30_000);
    // Restart the server once the first sample is out.
    await new Promise<void>((resolve) => {
      p.stdout.on("data", (b: Buffer) => {
        const first = stdout === "";
        stdout += b.toString();
        if (first) resolve();
      });
    });
    await srv.restart();
    const code = await exited;
    clearTimeout(kill);
    assert.equal(code, 0, stderr);
    assert.match(stderr, /lost the connection to NATS; reconnecting/);
    assert.match(stderr, /connection back/);
    const samples = stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.ok(samples.length >= 2, `samples before and after the restart: ${samples.length}`);
    assert.ok(samples.every((x: { queue: string }) => x.queue === "watched"));
  });
});

describe("jetq dlq with a payload that is not JSON", () => {
  it("shows the raw bytes (base64) and the decode reason", async () => {
    const nc = await nats.connect();
    const queue = defineQueue({ name: uniqueName("cli") });
    await provisionQueue(nc, queue);
    await jetstream(nc).publish(queue.names.subject, new TextEncoder().encode("not json"));
    const worker = new Worker(nc, queue, () => {});
    const dead = new Promise<void>((resolve) => worker.once("dead", () => resolve()));
    await worker.start();
    await dead;
    await worker.stop();
    const j = await jetq(["dlq", "list", queue.name, "--json", ...auth()], { server: url() });
    assert.equal(j.code, 0, j.stderr);
    const e = JSON.parse(j.stdout).entries[0];
    assert.equal(e.reason, "decode");
    assert.equal(e.data, null);
    assert.equal(Buffer.from(e.rawBase64, "base64").toString(), "not json");
    const show = await jetq(["dlq", "show", queue.name, String(e.seq), ...auth()], { server: url() });
    assert.match(show.stdout, /\(not JSON; 8 bytes, base64\) bm90IGpzb24=/);
  });
});

const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;

describe("jetq over TLS with a private CA", { skip: findNatsServerBinary() && hasOpenssl ? false : "needs nats-server and openssl" }, () => {
  let srv: LocalNatsServer;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "jetq-cli-tls-"));
    const ssl = (args: string[]): void => {
      const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
    };
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    ssl(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=jetq test CA"]);
    ssl(["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
    writeFileSync(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    ssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "ext.cnf"]);
    srv = await startLocalNats({ config: `tls { cert_file: "${join(dir, "server.pem")}"\n key_file: "${join(dir, "server.key")}" }\n` });
  });
  after(async () => {
    await srv?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("connects with --tls-ca, and without it says the certificate could not be verified (exit 3)", async () => {
    const tlsUrl = srv.servers.replace("nats://", "tls://");
    const ok = await jetq(["stats", "--tls-ca", join(dir, "ca.pem")], { server: tlsUrl });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /No jetq queues on this server yet/);
    const bad = await jetq(["stats"], { server: tlsUrl });
    assert.equal(bad.code, 3);
    assert.match(bad.stderr, /TLS with NATS at .* failed/);
    assert.match(bad.stderr, /--tls-ca/);
    const missing = await jetq(["stats", "--tls-ca", join(dir, "nope.pem")], { server: tlsUrl });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /--tls-ca does not exist/);
  });
});

describe("jetq dlq", () => {
  it("lists, shows, replays and purges dead letters; destructive commands need --yes without a TTY", async () => {
    const nc = await nats.connect();
    const queue = defineQueue({ name: uniqueName("cli"), maxAttempts: 1 });
    await provisionQueue(nc, queue);
    const producer = new Producer(nc, queue);
    const imgs = ["a", "b", "c"];
    await producer.publishMany(imgs.map((img) => ({ img })), { id: (_x, i) => `job-${imgs[i]}` });
    await producer.close();
    const worker = new Worker(nc, queue, (job) => {
      const { img } = job.data as { img: string };
      throw new PermanentError(`corrupt image ${img === "b" ? "header boom-b" : "boom-x"}`);
    });
    let dead = 0;
    worker.on("dead", () => dead++);
    await worker.start();
    await waitFor(() => dead === 3, "3 dead letters");
    await worker.stop();
    const q = queue.name;
    const S = { server: url() };

    const list = await jetq(["dlq", "list", q, "--json", ...auth()], S);
    assert.equal(list.code, 0, list.stderr);
    const lj = JSON.parse(list.stdout);
    assert.equal(lj.total, 3);
    assert.equal(lj.count, 3);
    assert.equal(lj.more, false);
    const e0 = lj.entries[0];
    assert.deepEqual(Object.keys(e0).sort(), ["attempts", "crashes", "data", "error", "failedAt", "headers", "id", "publishedAt", "reason", "seq", "sourceSeq", "truncatedFrom", "worker"]);
    assert.equal(e0.truncatedFrom, null, "null: the payload is whole");
    assert.equal(e0.reason, "permanent");
    assert.equal(e0.error.name, "PermanentError");
    assert.deepEqual(lj.entries.map((e: { id: string }) => e.id).sort(), ["job-a", "job-b", "job-c"]);

    const human = await jetq(["dlq", "list", q, ...auth()], S);
    assert.match(human.stdout, /^SEQ\s+JOB ID\s+REASON\s+ATTEMPTS\s+FAILED\s+ERROR/);
    assert.match(human.stdout, /job-b\s+permanent\s+1\s+(\S+ ago|just now)\s+PermanentError: corrupt image header boom-b/);

    const filtered = await jetq(["dlq", "list", q, "--error", "BOOM-B", "--json", ...auth()], S);
    assert.deepEqual(JSON.parse(filtered.stdout).entries.map((e: { id: string }) => e.id), ["job-b"]);
    const paged = await jetq(["dlq", "list", q, "--limit", "2", "--json", ...auth()], S);
    assert.equal(JSON.parse(paged.stdout).count, 2);
    assert.equal(JSON.parse(paged.stdout).more, true);

    const seqB: number = lj.entries.find((e: { id: string }) => e.id === "job-b").seq;
    const show = await jetq(["dlq", "show", q, String(seqB), ...auth()], S);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /job id\s+job-b/);
    assert.match(show.stdout, /"img": "b"/);
    const missing = await jetq(["dlq", "show", q, "9999", ...auth()], S);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /does not exist/);
    const missingJson = await jetq(["--json", "dlq", "show", q, "9999", ...auth()], S);
    assert.equal(missingJson.code, 2);
    // stderr with --json: one object per line, the server notice first, the error last.
    const lines = missingJson.stderr.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines[0].server.url, url());
    assert.equal(lines.at(-1).error.name, "DeadLetterNotFoundError", "the library's typed error, not a CLI copy");

    // Not a TTY and no --yes: refused, nothing deleted.
    const refused = await jetq(["dlq", "purge", q, "--all", ...auth()], S);
    assert.equal(refused.code, 6);
    assert.match(refused.stderr, /--yes/);
    const noSelector = await jetq(["dlq", "purge", q, ...auth()], S);
    assert.equal(noSelector.code, 1);

    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(queue.names.dlqStream)).state.messages, 3);

    const replay = await jetq(["dlq", "replay", q, String(seqB), "--json", ...auth()], S);
    assert.equal(replay.code, 0, replay.stderr);
    const rj = JSON.parse(replay.stdout);
    assert.equal(rj.replayed, 1);
    assert.equal(rj.jobs[0].id, "job-b");
    assert.equal((await jsm.streams.info(queue.names.stream)).state.messages, 1, "the job is back on the queue");
    assert.equal((await jsm.streams.info(queue.names.dlqStream)).state.messages, 2);

    const purgeOne = await jetq(["dlq", "purge", q, "--error", "boom-x", "--older-than", "0s", "--yes", "--json", ...auth()], S);
    assert.equal(purgeOne.code, 0, purgeOne.stderr);
    assert.equal(JSON.parse(purgeOne.stdout).purged, 2);
    const empty = await jetq(["dlq", "list", q, ...auth()], S);
    assert.match(empty.stdout, /No dead letters/);
    const nothing = await jetq(["dlq", "purge", q, "--all", ...auth()], S);
    assert.equal(nothing.code, 0, "nothing to purge needs no confirmation");
  });
});

describe("CLI parsing and formatting (pure)", () => {
  it("parses durations and integers, naming the option when it cannot", () => {
    assert.equal(parseDuration("500ms", "--x"), 500);
    assert.equal(parseDuration("30s", "--x"), 30_000);
    assert.equal(parseDuration("1.5m", "--x"), 90_000);
    assert.equal(parseDuration("7d", "--x"), 7 * 86_400_000);
    assert.equal(parseDuration("250", "--x"), 250);
    assert.throws(() => parseDuration("soon", "--ack-wait"), /--ack-wait to be a duration/);
    assert.throws(() => parseDuration("-5s", "--x"), /duration/);
    assert.equal(parseInteger("-1", "--max-messages", 1, true), -1);
    assert.throws(() => parseInteger("-1", "--max-attempts", 1), /--max-attempts to be an integer >= 1/);
    assert.throws(() => parseInteger("2.5", "--n", 1), /integer/);
  });

  it("formats durations and aligns tables", () => {
    assert.equal(formatDuration(1500), "1.5s");
    assert.equal(formatDuration(90_000), "1m30s");
    assert.equal(formatDuration(3 * 86_400_000), "3d");
    assert.equal(table(["A", "NUM", "LAST"], [["x", "1", "end"], ["long", "100", "e"]], new Set([1])), "A     NUM  LAST\nx       1  end\nlong  100  e");
  });
});
