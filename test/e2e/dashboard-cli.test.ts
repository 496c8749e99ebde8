// `jetq dashboard` as a user runs it: a child process against a NATS server this file starts
// (it restarts that server, so it never uses a shared one).
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { defineQueue, provisionQueue } from "../../src/index.ts";
import { HISTORY, historySubject } from "../../src/history/recorder.ts";
import { startLocalNats, type LocalNatsServer } from "../support/nats-server.ts";
import { uniqueName, waitFor } from "../support/ctx.ts";

let nats: LocalNatsServer;
let nc: NatsConnection;
const children = new Set<ChildProcess>();

before(async () => {
  nats = await startLocalNats();
  nc = await connect({ servers: nats.servers, noAsyncTraces: true });
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await nc?.close();
  await nats?.stop();
});

interface Started {
  proc: ChildProcess;
  first: Record<string, string>;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts `jetq <args>` and resolves with its first stdout line, parsed as JSON (deadline 15 s). */
async function jetq(args: string[], env: Record<string, string> = {}): Promise<Started> {
  const proc = spawn(process.execPath, ["src/cli/main.ts", "--server", nats.servers, "--json", ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(proc);
  let stderr = "";
  proc.stderr!.on("data", (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-10_000);
  });
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  const lines = createInterface({ input: proc.stdout! });
  const first = await Promise.race([
    once(lines, "line").then(([l]) => JSON.parse(l as string) as Record<string, string>),
    exited.then((code) => {
      throw new Error(`jetq exited (${code}) before printing its address; stderr:\n${stderr}`);
    }),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`jetq printed nothing in 15 s; stderr:\n${stderr}`)), 15_000).unref()),
  ]);
  return { proc, first, stderr: () => stderr, exited };
}

describe("jetq dashboard", () => {
  it("refuses actions with --read-only and requires the generated --token", async () => {
    const q = defineQueue({ name: uniqueName("cli") });
    await provisionQueue(nc, q);
    const { proc, first, exited } = await jetq(["dashboard", q.name, "--port", "0", "--read-only", "--token"]);
    assert.equal(first.auth, "token");
    assert.equal(first.readOnly as unknown, true);
    assert.equal((await fetch(first.url!)).status, 401);
    // The printed address carries the token once; the server trades it for a cookie.
    const trade = await fetch(first.open!, { redirect: "manual" });
    assert.equal(trade.status, 303);
    const cookie = trade.headers.get("set-cookie")!.split(";")[0]!;
    const page = await fetch(first.url!, { headers: { cookie } });
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /name="jetq-read-only" content="true"/);
    const csrf = /name="jetq-csrf" content="([^"]+)"/.exec(html)![1]!;
    const csrfCookie = page.headers.get("set-cookie")!.split(";")[0]!;
    const r = await fetch(`${first.url}api/queues/${q.name}/dead-letters/purge`, {
      method: "POST",
      headers: { cookie: `${cookie}; ${csrfCookie}`, "x-jetq-csrf": csrf },
    });
    assert.equal(r.status, 403);
    proc.kill("SIGINT");
    assert.equal(await exited, 0);
  });

  it("exits with code 2 when a named queue does not exist", async () => {
    const proc = spawn(process.execPath, ["src/cli/main.ts", "--server", nats.servers, "dashboard", "no_such_queue", "--port", "0"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(proc);
    let stderr = "";
    proc.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
    const [code] = (await once(proc, "exit")) as [number | null];
    assert.equal(code, 2, stderr);
    assert.match(stderr, /Queue "no_such_queue" not found/);
  });

  // Last: it restarts the server under the other tests' feet.
  it("serves discovered queues on loopback, survives a NATS restart, and exits cleanly on SIGTERM", async () => {
    const q = defineQueue({ name: uniqueName("cli") });
    await provisionQueue(nc, q);
    const { proc, first, exited, stderr } = await jetq(["dashboard", "--port", "0", "--refresh", "200ms"]);
    assert.match(first.url!, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(first.auth, "none");
    const overview = async (): Promise<{ error: string | null; queues: Array<{ name: string; error: string | null }> }> =>
      (await (await fetch(`${first.url}api/overview`)).json()) as never;
    const names = (await overview()).queues.map((x) => x.name);
    assert.ok(names.includes(q.name), `${q.name} in ${names.join(",")}`);
    // It records history by default, with no page open: a roll-up of the queue in JETQ_HISTORY.
    const jsm = await jetstreamManager(nc);
    const rollup = await waitFor(
      () => jsm.direct.getMessage(HISTORY.stream, { last_by_subj: historySubject(q.name) }).catch(() => null),
      "a history roll-up of the queue",
    );
    assert.equal((rollup.json() as { queue: string }).queue, q.name);

    await nats.restart();
    // The command notices the lost connection, opens a new one, and serves figures again.
    await waitFor(() => /reconnected to NATS/.test(stderr()), "the dashboard to reconnect", 20_000);
    await waitFor(async () => {
      const o = await overview().catch(() => undefined);
      return o && o.error === null && o.queues.some((x) => x.name === q.name && x.error === null);
    }, "figures after the restart", 15_000);

    proc.kill("SIGTERM");
    assert.equal(await exited, 0);
  });
});
