/**
 * The `jetq` command tells the truth (issue 23 item 6) and shows workers and jobs (items 1 and 3):
 * run as a subprocess against a real server, one test per item.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { describe, it } from "node:test";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { defineQueue, listJobs, Producer, provisionQueue, Worker } from "../../src/index.ts";
import { uniqueName, useNats, waitFor, connectTo } from "../support/ctx.ts";
import { CLI, runCli, type CliRun } from "../support/cli.ts";
import { findNatsServerBinary, freePort } from "../support/nats-server.ts";
import { openConnection } from "../../src/cli/connect.ts";

type Run = CliRun;

/** Runs the CLI with stdin fed `input` (not a TTY), NATS_URL unset unless given. */
function jetq(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return runCli(args, { input: opts.input, env: opts.env, timeoutMs: 40_000 });
}

/**
 * A TCP server that accepts connections and never says a word (a hung or wrong server). It notes
 * when each connection was accepted and when the client closed it: how long the client waited,
 * without Node's own startup time (seconds on a busy machine).
 */
async function silentServer(): Promise<{ port: number; conns: Array<{ accepted: number; closed?: number }>; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const conns: Array<{ accepted: number; closed?: number }> = [];
  const srv: Server = createServer((s) => {
    const c: { accepted: number; closed?: number } = { accepted: Date.now() };
    conns.push(c);
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => {
      c.closed = Date.now();
      sockets.delete(s);
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  return {
    port,
    conns,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

/**
 * A fake NATS server that speaks only the handshake (INFO, then PONG for each PING) and never
 * answers a request: a server whose JetStream is hung. Counts the requests it swallowed.
 */
async function handshakeOnlyServer(): Promise<{
  port: number;
  requests: () => number;
  conns: Array<{ accepted: number; closed?: number }>;
  close: () => Promise<void>;
}> {
  const sockets = new Set<Socket>();
  const conns: Array<{ accepted: number; closed?: number }> = [];
  let requests = 0;
  const srv: Server = createServer((s) => {
    const c: { accepted: number; closed?: number } = { accepted: Date.now() };
    conns.push(c);
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => {
      c.closed = Date.now();
      sockets.delete(s);
    });
    s.write(`INFO ${JSON.stringify({ server_id: "FAKE", server_name: "fake", version: "2.9.10", proto: 1, headers: true, max_payload: 1048576, jetstream: true })}\r\n`);
    let buf = "";
    s.on("data", (b: Buffer) => {
      buf += b.toString("latin1");
      let i: number;
      while ((i = buf.indexOf("\r\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (line === "PING") s.write("PONG\r\n");
        else if (/^H?PUB \$JS\./.test(line)) requests++;
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return {
    port: (srv.address() as { port: number }).port,
    requests: () => requests,
    conns,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

/** From the timeout to the process's exit (which closes its socket): printing the error, and a loaded machine. */
const EXIT_SLACK_MS = 2_000;

const nats = useNats();
const url = (): string => nats.server().servers;
const auth = (): string[] => {
  const s = nats.server();
  return s.user ? ["--user", s.user, "--password", s.pass ?? ""] : [];
};

describe("jetq tells the truth", () => {
  it("honours --timeout against a server that accepts TCP and never answers, and then exits", async () => {
    const silent = await silentServer();
    try {
      for (const [flag, ms] of [["1s", 1_000], ["2500ms", 2_500]] as const) {
        const before = silent.conns.length;
        const r = await jetq(["--server", `nats://127.0.0.1:${silent.port}`, "--timeout", flag, "stats"]);
        assert.equal(r.code, 3, r.stderr);
        assert.match(r.stderr, new RegExp(`No answer from NATS at nats://127\\.0\\.0\\.1:${silent.port} within ${ms} ms`));
        assert.equal(silent.conns.length, before + 1, "one connection attempt");
        const c = silent.conns.at(-1)!;
        // The process has exited; the server hears its socket close a moment later.
        const closed = await waitFor(() => c.closed, "the exited process's connection closed", 2_000, 5);
        const held = closed - c.accepted;
        assert.ok(held >= ms - 50, `gave up after ${held} ms, before its timeout`);
        assert.ok(held < ms + EXIT_SLACK_MS, `--timeout ${flag}: the connection was held ${held} ms`);
        console.log(`--timeout ${flag} against a silent server: connection held ${held} ms, exit ${r.code} (the process ran ${r.ms} ms with Node's startup)`);
      }
    } finally {
      await silent.close();
    }
  });

  it("honours --timeout for the whole command when the server connects but never answers JetStream", async () => {
    const hung = await handshakeOnlyServer();
    try {
      for (const [args, label] of [
        [["stats"], "stats"],
        [["stats", "q"], "stats q"],
        [["dlq", "list", "q"], "dlq list q"],
        [["publish", "q", "{}"], "publish q"],
      ] as const) {
        const r = await jetq(["--server", `nats://127.0.0.1:${hung.port}`, "--timeout", "1500ms", ...args]);
        assert.equal(r.code, 3, `${label}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(`No answer from NATS JetStream at nats://127\\.0\\.0\\.1:${hung.port} within 1500 ms`), label);
        // Timed at the server, without Node's startup: from the connection to its close at the process's exit.
        // Before, each request waited the client's 5 s on its own, and a command makes several.
        const c = hung.conns.at(-1)!;
        const closed = await waitFor(() => c.closed, `${label}: the exited process's connection closed`, 2_000, 5);
        const held = closed - c.accepted;
        assert.ok(held >= 1_000, `${label}: gave up after ${held} ms, well before its timeout`);
        assert.ok(held < 1_500 + EXIT_SLACK_MS, `${label}: the connection was held ${held} ms with --timeout 1500ms`);
        console.log(`--timeout 1500ms, jetq ${label} against a server that never answers JetStream: connection held ${held} ms (the process ran ${r.ms} ms), exit ${r.code}`);
      }
      assert.ok(hung.requests() >= 4, `the commands did send JetStream requests (${hung.requests()})`);
    } finally {
      await hung.close();
    }
  });

  it("closes the socket of every timed-out connect attempt, so retries (the dashboard's reconnects) do not pile them up", async () => {
    const silent = await silentServer();
    try {
      for (let i = 1; i <= 4; i++) {
        await assert.rejects(openConnection({ server: `nats://127.0.0.1:${silent.port}`, timeout: 300 }), /No answer from NATS .* within 300 ms/);
        assert.equal(silent.conns.length, i, "one connection per attempt");
        // Before, each attempt left its socket open for as long as the server kept it: all of them.
        await waitFor(() => (silent.conns.every((c) => c.closed !== undefined) ? true : undefined), `attempt ${i}'s socket closed`, 2_000, 5);
      }
    } finally {
      await silent.close();
    }
  });

  it("the dashboard's reconnect loop keeps at most one socket open to a server gone silent, and reconnects when it answers again", async () => {
    // A proxy in front of the test server that can go silent: it then accepts and never answers.
    const target = new URL(url());
    let silentMode = false;
    const live = new Set<Socket>();
    const silentConns: Array<{ closed: boolean }> = [];
    let maxOpenSilent = 0;
    const proxy = createServer((client) => {
      client.on("error", () => {});
      live.add(client);
      client.on("close", () => live.delete(client));
      if (silentMode) {
        const c = { closed: false };
        silentConns.push(c);
        client.on("close", () => (c.closed = true));
        maxOpenSilent = Math.max(maxOpenSilent, silentConns.filter((x) => !x.closed).length);
        return;
      }
      const upstream = createConnection(Number(target.port), target.hostname);
      upstream.on("error", () => client.destroy());
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const proxyPort = (proxy.address() as { port: number }).port;
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
    delete env.NATS_URL;
    const p = spawn(process.execPath, [CLI, "--server", `nats://127.0.0.1:${proxyPort}`, ...auth(), "--timeout", "300ms", "dashboard", "--port", "0", "--no-history"], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    p.stdout.on("data", (b: Buffer) => (out += b.toString()));
    p.stderr.on("data", (b: Buffer) => (out += b.toString()));
    try {
      await waitFor(() => (/jetq dashboard: http/.test(out) ? true : undefined), "the dashboard started", 15_000, 20);
      silentMode = true;
      for (const s of live) s.destroy();
      await waitFor(() => (/lost the NATS connection/.test(out) ? true : undefined), "the dashboard noticed", 10_000, 20);
      // Attempts at 0.5 s, 1 s, 2 s backoff, each giving up after 300 ms.
      await waitFor(() => (silentConns.length >= 4 ? true : undefined), "four reconnect attempts against the silent server", 15_000, 20);
      assert.ok(maxOpenSilent <= 1, `at most one attempt's socket open at a time, saw ${maxOpenSilent}`);
      await waitFor(() => (silentConns.slice(0, 3).every((c) => c.closed) ? true : undefined), "the failed attempts' sockets closed", 3_000, 20);
      silentMode = false;
      await waitFor(() => (/reconnected to NATS/.test(out) ? true : undefined), "reconnected once the server answered", 20_000, 20);
      console.log(`dashboard vs a silent server: ${silentConns.length} attempts, at most ${maxOpenSilent} open at once`);
    } finally {
      p.kill("SIGTERM");
      await new Promise<void>((r) => (p.exitCode !== null ? r() : p.once("exit", () => r())));
      for (const s of live) s.destroy();
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });

  it("a partial stdin publish says how many lines were stored and where to resume, with the right queue", async () => {
    const q = uniqueName("partial");
    const nc = await nats.connect();
    const queue = defineQueue({ name: q });
    await provisionQueue(nc, queue);
    const r = await jetq(["--server", url(), ...auth(), "publish", q], { input: '{"n":1}\n{"n":2}\n{"n":3\n{"n":4}\n' });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`2 job\\(s\\) were published to queue "${q}": every line before line 3`));
    assert.match(r.stderr, new RegExp(`Resume from line 3 \\(e\\.g\\. tail -n \\+3 jobs\\.ndjson \\| jetq publish ${q}\\)`));
    assert.match(r.stderr, /Line 3 of stdin is not valid JSON/);
    assert.doesNotMatch(r.stderr, /emails/, "no other queue's name");
    assert.equal((await listJobs(nc, queue)).total, 2, "exactly lines 1 and 2 are stored");
    const j = await jetq(["--json", "--server", url(), ...auth(), "publish", q], { input: '{"n":5}\nnot json\n' });
    assert.equal(j.code, 1);
    const err = JSON.parse(j.stderr.trim().split("\n").at(-1)!).error;
    assert.deepEqual(err.partial, { queue: q, stored: 1, duplicates: 0, resumeFromLine: 2, storedAfter: [], unconfirmed: [] });
  });

  it("warns that the CLI cannot check the queue's zod schema", async () => {
    const q = uniqueName("schema");
    await provisionQueue(await nats.connect(), defineQueue({ name: q }));
    const r = await jetq(["--server", url(), ...auth(), "publish", q, '{"to":"ada"}']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`jetq: note: the CLI cannot check queue "${q}"'s zod schema .*dead-lettered by the worker with reason "validation"`));
    assert.match(r.stdout, /published job seq-1/);
  });

  it("strips terminal control characters from every printed field: dlq show headers, ids, errors, job lists", async () => {
    const q = uniqueName("ctrl");
    const nc = await nats.connect();
    const queue = defineQueue({ name: q, maxAttempts: 1 });
    await provisionQueue(nc, queue);
    const evil = "\x1b[2J\x1b[H\x9b31m\u202e";
    // jetq's producer refuses such ids and header values; another client may still publish them.
    const h1 = natsHeaders();
    h1.set("X-Evil", `clear${evil}me`);
    await jetstream(nc).publish(queue.names.subject, JSON.stringify({ v: 1 }), { headers: h1 });
    const hdrs = natsHeaders();
    hdrs.set("Jetq-Id", `id${evil}2`);
    await jetstream(nc).publish(queue.names.subject, JSON.stringify({ v: 2 }), { headers: hdrs });
    // A waiting job with the evil id is listed first; then a worker dead-letters both.
    const jobs = await jetq(["--server", url(), ...auth(), "jobs", q]);
    assert.equal(jobs.code, 0, jobs.stderr);
    assert.match(jobs.stdout, /id\\u001b\[2J\\u001b\[H\\u009b31m\\u202e2/);
    const w = new Worker(nc, queue, () => {
      throw new Error(`boom${evil}\nfake line`);
    });
    await w.start();
    try {
      await waitFor(async () => (await jetq(["--json", "--server", url(), ...auth(), "dlq", "list", q])).stdout.includes('"total": 2'), "two dead letters", 20_000, 200);
    } finally {
      await w.stop();
    }
    for (const args of [["dlq", "show", q, "1"], ["dlq", "list", q]]) {
      const r = await jetq(["--server", url(), ...auth(), ...args]);
      assert.equal(r.code, 0, r.stderr);
      for (const [name, text] of [["stdout", r.stdout], ["stderr", r.stderr]] as const) {
        assert.doesNotMatch(text, /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]/, `${args.join(" ")}: a control character reached ${name}`);
      }
      // (The dead-letter queue itself turns C0 controls in ids and errors into spaces; the rest is the CLI's.)
      assert.match(r.stdout, /\\u009b31m\\u202e/, `${args.join(" ")} shows the escapes instead`);
    }
    const show = await jetq(["--server", url(), ...auth(), "dlq", "show", q, "1"]);
    assert.match(show.stdout, /header X-Evil\s+clear\\u001b\[2J\\u001b\[H\\u009b31m\\u202eme/);
    assert.match(show.stdout, /error\s+Error: boom.*fake line\n/, "a newline in an error stays on its line");
  });

  it("names the server on stderr, and where the address came from", async () => {
    const flag = await jetq(["--server", url(), ...auth(), "stats"]);
    assert.equal(flag.code, 0, flag.stderr);
    assert.match(flag.stderr, new RegExp(`^jetq: NATS at ${url().replace(/[.]/g, "\\.")} \\(nats-server \\d+\\.\\d+\\.\\d+; from --server\\)`));
    const env = await jetq([...auth(), "stats"], { env: { NATS_URL: url() } });
    assert.equal(env.code, 0, env.stderr);
    assert.match(env.stderr, /\(nats-server [\d.]+; from NATS_URL\)/);
    const json = await jetq(["--json", ...auth(), "stats"], { env: { NATS_URL: url() } });
    assert.deepEqual(Object.keys(JSON.parse(json.stderr.trim()).server).sort(), ["connected", "jetstream", "source", "url", "version"]);
    assert.equal(JSON.parse(json.stderr.trim()).server.source, "NATS_URL");
  });

  it("shows rates for every queue in a multi-queue stats --watch, under one name per figure", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("rates") });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const feeding = setInterval(() => void producer.publish({ t: Date.now() }).catch(() => {}), 20);
    try {
      const r = await jetq(["--json", "--server", url(), ...auth(), "stats", "--watch", "--count", "2", "--interval", "500ms"]);
      assert.equal(r.code, 0, r.stderr);
      const samples = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { queues: Array<Record<string, unknown>> });
      assert.equal(samples.length, 2);
      const mine = samples[1]!.queues.find((x) => x.queue === q.name)!;
      for (const k of ["publishedPerSec", "completedPerSec", "deadLetteredPerSec"]) assert.equal(typeof mine[k], "number", `${k} in the second sample`);
      assert.ok((mine.publishedPerSec as number) > 0, `published ${mine.publishedPerSec}/s while jobs were being published`);
      const lines = await jetq(["--server", url(), ...auth(), "stats", "--watch", "--count", "2", "--interval", "300ms"]);
      assert.equal(lines.code, 0, lines.stderr);
      assert.match(lines.stdout, new RegExp(`queue=${q.name} pending=\\d+ inFlight=0 redelivered=0 deadLetters=0 stored=\\d+ publishedPerSec=[\\d.]+ completedPerSec=[\\d.]+ deadLetteredPerSec=[\\d.]+`));
    } finally {
      clearInterval(feeding);
      await producer.close();
    }
  });

  it("refuses server URLs with a scheme NATS does not speak, without echoing credentials", async () => {
    for (const [u, why] of [
      ["http://127.0.0.1:8222", /monitoring or a web port/],
      ["wss://user:secret@example.com", /websocket/],
      ["ftp://x", /nats:\/\/ or tls:\/\//],
      ["nats://", /URLs like nats:\/\/127\.0\.0\.1:4222/],
    ] as const) {
      const r = await jetq(["--server", u, "stats"]);
      assert.equal(r.code, 1, `${u}: ${r.stderr}`);
      assert.match(r.stderr, why);
      assert.doesNotMatch(r.stderr, /secret/);
    }
    const ok = await jetq(["--server", `tls://127.0.0.1:${await freePort()}`, "--timeout", "1s", "stats"]);
    assert.equal(ok.code, 3, "tls:// is accepted (and then unreachable here)");
  });

  it("says what to do when the dashboard's port is taken", async () => {
    const busy = await silentServer();
    try {
      const r = await jetq(["--server", url(), ...auth(), "dashboard", "--port", String(busy.port)]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`Something else already listens on 127\\.0\\.0\\.1:${busy.port}: stop it, or pick another port with --port \\(--port 0 picks a free one\\)`));
    } finally {
      await busy.close();
    }
  });

  it("says how to enable JetStream when the server runs without it", async () => {
    const bin = findNatsServerBinary();
    assert.ok(bin, "a nats-server binary");
    const port = await freePort();
    const proc = spawn(bin, ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
    try {
      await waitFor(async () => {
        try {
          await (await connectTo({ servers: `nats://127.0.0.1:${port}` } as never)).close();
          return true;
        } catch {
          return false;
        }
      }, "the server without JetStream accepts connections");
      const r = await jetq(["--server", `nats://127.0.0.1:${port}`, "stats"]);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /without JetStream; from --server\)/);
      assert.match(r.stderr, new RegExp(`The NATS server at nats://127\\.0\\.0\\.1:${port} runs without JetStream, which jetq needs: start it with -js`));
    } finally {
      proc.kill("SIGKILL");
    }
  });
});

describe("jetq workers and jetq jobs", () => {
  it("lists live workers and a queue's waiting, active and delayed jobs, paged, as tables or JSON", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("ops"), scheduling: true });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const w = new Worker(nc, q, () => gate, { concurrency: 1, announce: { everyMs: 200 }, schedules: false });
    await w.start();
    try {
      const first = await producer.publish({ n: 0 }, { id: "running-one" });
      const waiting: number[] = [];
      for (let i = 1; i <= 3; i++) waiting.push((await producer.publish({ n: i })).seq);
      await producer.publish({ later: true }, { delayMs: 600_000, id: "later-one" });
      await waitFor(async () => (await listJobs(nc, q, { state: "active" })).jobs.length === 1, "the first job running");

      const ws = await jetq(["--json", "--server", url(), ...auth(), "workers", q.name]);
      assert.equal(ws.code, 0, ws.stderr);
      const wl = JSON.parse(ws.stdout);
      assert.equal(wl.total, 1);
      assert.equal(wl.workers[0].id, w.id);
      assert.equal(wl.workers[0].inFlight, 1);
      assert.equal(wl.workers[0].jobs[0].id, "running-one");
      const human = await jetq(["--server", url(), ...auth(), "workers", q.name]);
      assert.match(human.stdout, new RegExp(`${process.pid}\\s+${q.name}\\s+1/1`));
      assert.match(human.stdout, /running-one \(#1, /);
      assert.match(human.stdout, /1 shown of 1 live worker\(s\)/);

      const act = await jetq(["--server", url(), ...auth(), "jobs", q.name, "--state", "active"]);
      assert.equal(act.code, 0, act.stderr);
      assert.match(act.stdout, new RegExp(`${first.seq}\\s+running-one\\s+1\\s+\\S+\\s+${w.id.replace(/[.]/g, "\\.")}`));

      const p1 = await jetq(["--server", url(), ...auth(), "jobs", q.name, "--limit", "2"]);
      assert.equal(p1.code, 0, p1.stderr);
      assert.match(p1.stdout, new RegExp(`2 shown of 3 waiting job\\(s\\) in queue "${q.name}"\\. More: jetq jobs ${q.name} --state waiting --after ${waiting[1]} --limit 2`));
      assert.doesNotMatch(p1.stdout, /running-one/, "a running job is not waiting");
      const p2 = await jetq(["--json", "--server", url(), ...auth(), "jobs", q.name, "--limit", "2", "--after", String(waiting[1])]);
      const page2 = JSON.parse(p2.stdout);
      assert.deepEqual(page2.jobs.map((j: { seq: number }) => j.seq), [waiting[2]]);
      assert.equal(page2.next, undefined);
      assert.equal(page2.jobs[0].preview, '{"n":3}');

      const del = await jetq(["--server", url(), ...auth(), "jobs", q.name, "--state", "delayed"]);
      assert.equal(del.code, 0, del.stderr);
      assert.match(del.stdout, /later-one\s+\S+Z\s+in \d+m(\d+s)?\s+14 B\s+\{"later":true\}/);

      const bad = await jetq(["--server", url(), ...auth(), "jobs", q.name, "--state", "done"]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /Allowed choices are waiting, active, delayed/);
      const missing = await jetq(["--server", url(), ...auth(), "workers", "no_such_queue"]);
      assert.equal(missing.code, 2);
    } finally {
      release();
      await w.stop();
      await producer.close();
    }
    const after = await jetq(["--server", url(), ...auth(), "workers", q.name]);
    assert.match(after.stdout, new RegExp(`No live workers of queue "${q.name}"`));
  });
});
