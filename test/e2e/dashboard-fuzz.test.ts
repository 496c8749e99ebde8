// `jetq dashboard --token` as exposed on a network: odd request lines, methods, headers, long
// lines and bad %-escapes sent over raw TCP, before and after authentication. The process must
// stay up and answer each with a client error (never crash, never a 500).
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { connect as tcpConnect } from "node:net";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { defineQueue, provisionQueue } from "../../src/index.ts";
import { uniqueName, useNats } from "../support/ctx.ts";

const nats = useNats();
const TOKEN = "fuzz-token-0123456789";
let proc: ChildProcess;
let port: number;
let stderr = "";
let exited: Promise<number | null>;

interface Answer {
  status: number | undefined;
  head: string;
  body: string;
}

/** Sends `bytes` on a fresh TCP connection and reads the first response (deadline 5 s). */
function raw(bytes: string | Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const sock = tcpConnect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    const finish = (): void => {
      clearTimeout(timer);
      sock.destroy();
      const text = buf.toString("latin1");
      const i = text.indexOf("\r\n\r\n");
      const head = i < 0 ? text : text.slice(0, i);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve({ status: m ? Number(m[1]) : undefined, head, body: i < 0 ? "" : text.slice(i + 4) });
    };
    const timer = setTimeout(finish, 5_000);
    sock.on("error", (err: NodeJS.ErrnoException) => {
      // The server may close (or reset) right after answering a request it could not parse.
      if (buf.length > 0 || err.code === "ECONNRESET" || err.code === "EPIPE") finish();
      else reject(err);
    });
    sock.on("data", (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      const text = buf.toString("latin1");
      const i = text.indexOf("\r\n\r\n");
      if (i < 0) return;
      const len = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, i));
      if (!len || buf.length >= i + 4 + Number(len[1])) finish();
    });
    sock.on("end", finish);
    sock.write(bytes);
  });
}

const bearer = `Authorization: Bearer ${TOKEN}\r\n`;
const req = (line: string, headers = ""): string => `${line}\r\nHost: 127.0.0.1\r\n${headers}Connection: close\r\n\r\n`;

function assertUp(): void {
  assert.equal(proc.exitCode, null, `the dashboard exited; stderr:\n${stderr}`);
  assert.equal(proc.signalCode, null, `the dashboard was killed; stderr:\n${stderr}`);
}

/** mulberry32: a small seeded generator, so a failing case can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("jetq dashboard --token under hostile requests", () => {
  before(async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("fuzz") });
    await provisionQueue(nc, q);
    const s = nats.server();
    const auth = s.user ? ["--user", s.user, "--password", s.pass ?? ""] : [];
    proc = spawn(process.execPath, ["src/cli/main.ts", "--server", s.servers, ...auth, "--json", "dashboard", "--port", "0", "--token", TOKEN], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    proc.stderr!.on("data", (b: Buffer) => (stderr = (stderr + b.toString()).slice(-20_000)));
    exited = new Promise((resolve) => proc.once("exit", (code) => resolve(code)));
    const first = await Promise.race([
      once(createInterface({ input: proc.stdout! }), "line").then(([l]) => JSON.parse(l as string) as { url: string }),
      exited.then((code) => {
        throw new Error(`jetq dashboard exited (${code}); stderr:\n${stderr}`);
      }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`jetq dashboard printed nothing in 15 s:\n${stderr}`)), 15_000).unref()),
    ]);
    port = Number(new URL(first.url).port);
  });

  after(async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      await exited;
    }
  });

  it("answers a target that is not a URL with 400, before and after authentication, and stays up", async () => {
    for (const target of ["//[", "//[::1", "//[/x?token=" + TOKEN, "//user@[/"]) {
      const anon = await raw(req(`GET ${target} HTTP/1.1`));
      assert.equal(anon.status, 400, `GET ${target} without credentials: ${anon.head}`);
      const authed = await raw(req(`GET ${target} HTTP/1.1`, bearer));
      assert.equal(authed.status, 400, `GET ${target} with the token: ${authed.head}`);
      assertUp();
    }
    const ok = await raw(req("GET /api/overview HTTP/1.1", bearer));
    assert.equal(ok.status, 200, ok.head);
  });

  it("answers a page URL with a malformed %-escape with a 400 that says so, not a page that stays blank", async () => {
    for (const path of ["/queues/%E0%A4%A", "/queues/x/dead-letters/%zz", "/%", "/api/queues/%C3%28"]) {
      const r = await raw(req(`GET ${path} HTTP/1.1`, bearer));
      assert.equal(r.status, 400, `${path}: ${r.head}`);
      assert.match(r.body, /malformed %-escape/, path);
    }
  });

  it("trades ?token= for a cookie without redirecting to another host", async () => {
    assert.equal((await raw(req(`GET //evil.example/?token=${TOKEN} HTTP/1.1`))).status, 400);
    for (const target of [`/.//evil.example/?token=${TOKEN}`, `/./%2F/evil.example/?token=${TOKEN}`, `/x/..//evil.example/?token=${TOKEN}`]) {
      const r = await raw(req(`GET ${target} HTTP/1.1`));
      assert.equal(r.status, 303, `${target}: ${r.head}`);
      const location = /\r\nlocation: *([^\r]*)/i.exec(r.head)?.[1] ?? "";
      assert.match(location, /^\/(?!\/)/, `${target} redirected to ${location}`);
    }
  });

  it("survives a fuzz of request lines, methods, headers, long lines and %-escapes", async () => {
    const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
    const rand = prng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "PROPFIND", "FOO", "get", "G\u00e9T", "X".repeat(300)];
    const pieces = ["/", "//", "[", "]", "%", "%zz", "%00", "%ff", "%E0%A4%A", "?", "#", "..", "./", "api", "queues", "dead-letters", "static", "token=", "@", ":", "\\", "*", "\u00e9", "x".repeat(40)];
    const headerNames = ["Host", "Authorization", "Cookie", "X-Jetq-Csrf", "Sec-Fetch-Site", "If-None-Match", "Content-Length", "Transfer-Encoding", "Expect", "Accept", "X-Odd"];
    const headerValues = [
      "",
      "[",
      "[::1",
      "127.0.0.1:99999",
      "Bearer",
      `Bearer ${TOKEN}`,
      "Bearer \u00ff\u00fe",
      "Basic !!!",
      "Basic " + "A".repeat(5000),
      "jetq_auth=; jetq_auth==; =x; ;;",
      "chunked",
      "-1",
      "18446744073709551616",
      "100-continue",
      "\u00e9\u00e8",
      "a".repeat(9000),
    ];
    const statuses = new Map<number, number>();
    const cases = 250;
    for (let i = 0; i < cases; i++) {
      let target = "";
      const n = 1 + Math.floor(rand() * 6);
      for (let k = 0; k < n; k++) target += pick(pieces);
      if (rand() < 0.5 && !target.startsWith("/")) target = `/${target}`;
      if (rand() < 0.03) target = `/${"a".repeat(20_000)}`;
      const method = pick(methods);
      let headers = rand() < 0.5 ? bearer : "";
      const extra = Math.floor(rand() * 4);
      for (let k = 0; k < extra; k++) headers += `${pick(headerNames)}: ${pick(headerValues)}\r\n`;
      if (rand() < 0.05) headers += `X-Long: ${"b".repeat(70_000)}\r\n`;
      if (rand() < 0.05) headers += " folded continuation\r\n";
      const version = rand() < 0.9 ? "HTTP/1.1" : pick(["HTTP/1.0", "HTTP/2.0", "HTTP/9", "HTTX/1.1", ""]);
      const line = `${method} ${target} ${version}`.trimEnd();
      const r = await raw(Buffer.from(`${line}\r\n${headers}Connection: close\r\n\r\n`, "latin1"));
      const where = `case ${i} of seed ${seed}: ${JSON.stringify(line.slice(0, 200))} headers ${JSON.stringify(headers.slice(0, 300))}`;
      assert.notEqual(r.status, undefined, `no HTTP answer to ${where}`);
      assert.ok(r.status! < 500 || r.status === 503, `${r.status} for ${where}\n${r.body.slice(0, 300)}`);
      statuses.set(r.status!, (statuses.get(r.status!) ?? 0) + 1);
      assertUp();
    }
    // The fuzz reached the dashboard itself, not only the parser and the authentication.
    assert.ok((statuses.get(400) ?? 0) > 0 && (statuses.get(401) ?? 0) > 0, `statuses seen: ${JSON.stringify([...statuses])}`);
    const ok = await raw(req("GET /api/overview HTTP/1.1", bearer));
    assert.equal(ok.status, 200, ok.head);
    assertUp();
  });
});
