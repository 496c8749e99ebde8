// The dashboard in a real headless Chromium against a real NATS server: live depth, dead letters
// replayed from the page, inert hostile payloads, read-only mode, CSRF, and the standalone
// server's authentication. Screenshots of each page land in test-artifacts/ (gitignored).
import assert from "node:assert/strict";
import { request } from "node:http";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { Page } from "playwright-core";
import { z } from "zod";
import {
  createDashboard,
  DeadLetterQueue,
  defineQueue,
  PermanentError,
  Producer,
  provisionQueue,
  Worker,
} from "../../src/index.ts";
import { startDashboardServer } from "../../src/dashboard/server.ts";
import { jsErrors, noBrowser, shot as screenshot, textOf, useBrowser, waitText } from "../support/browser.ts";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";

const nats = useNats();
const ui = useBrowser(() => nats.connect());
const cleanups = { push: (...fns: Array<() => unknown>): void => fns.forEach((f) => ui.cleanup(f)) };
const { listen, dashboard } = ui;
const newPage = (): Promise<Page> => ui.newPage();

async function shot(page: Page, name: string): Promise<void> {
  await screenshot(page, name);
  // The README's screenshot: UPDATE_SCREENSHOTS=1 node scripts/test.ts test/e2e/dashboard.test.ts
  if (name === "overview" && process.env.UPDATE_SCREENSHOTS === "1") await page.screenshot({ path: "docs/dashboard.png" });
}

const pwned = (page: Page): Promise<unknown> => page.evaluate(() => (globalThis as Record<string, unknown>).__pwned);

describe("dashboard in a browser", { skip: noBrowser }, () => {
  it("shows a queue's depth rising as jobs are published and falling as they are processed", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("orders"), schema: z.object({ i: z.number() }) });
    await provisionQueue(nc, q);
    const { url } = await dashboard({ historySize: 1000 }); // discovers the queue from the server
    const page = await newPage();
    await page.goto(url);
    const row = `tr[data-queue="${q.name}"]`;
    await waitText(page, `${row} [data-field="pending"]`, "0");

    const producer = new Producer(nc, q);
    await producer.publishMany(Array.from({ length: 7 }, (_, i) => ({ i })));
    await waitText(page, `${row} [data-field="pending"]`, "7");
    assert.equal(await textOf(page, "#crumbs"), "Queues");
    await shot(page, "overview");

    const done = new Set<number>();
    const worker = new Worker(nc, q, async (job) => {
      done.add(job.data.i);
    }, { concurrency: 4 });
    await worker.start();
    await waitFor(() => done.size === 7, "7 jobs processed");
    await waitText(page, `${row} [data-field="pending"]`, "0");
    await waitText(page, `${row} [data-field="inFlight"]`, "0");
    await worker.stop();
    await producer.close();

    // The throughput history accounts for every job: 7 published, 7 completed, none failed.
    // (Sampling began with the page, before the first publish, and the history outlasts the test.)
    type Point = { ms: number; published: number; completed: number; failed: number };
    const totals = async (): Promise<Record<"published" | "completed" | "failed", number>> => {
      const snap = (await (await fetch(`${url}/api/overview`)).json()) as { queues: Array<{ name: string; history: Point[] }> };
      const hist = snap.queues.find((x) => x.name === q.name)!.history;
      const sum = { published: 0, completed: 0, failed: 0 };
      for (const p of hist) for (const k of ["published", "completed", "failed"] as const) sum[k] += (p[k] * p.ms) / 1000;
      for (const k of ["published", "completed", "failed"] as const) sum[k] = Math.round(sum[k]);
      return sum;
    };
    let last = {};
    await waitFor(async () => {
      last = await totals();
      return JSON.stringify(last) === JSON.stringify({ published: 7, completed: 7, failed: 0 });
    }, "history totals of 7 published and 7 completed").catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(last)}`);
    });
    assert.ok(await page.locator(`${row} svg.spark polyline`).count() >= 3, "sparkline drawn");
    assert.deepEqual(jsErrors(page), []);
  });

  it("lists a dead letter, opens it, and replays it from the page; a worker then completes it", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("payments"), schema: z.object({ order: z.number(), amount: z.string() }), maxAttempts: 2, backoff: [50] });
    await provisionQueue(nc, q);
    let fail = true;
    const completed: string[] = [];
    const worker = new Worker(nc, q, async (job) => {
      if (fail) throw new Error(`card declined for order ${job.data.order}`);
      completed.push(`${job.id}@${job.attempt}`);
    });
    await worker.start();
    const producer = new Producer(nc, q);
    await producer.publish({ order: 42, amount: "19.99" }, { id: "order-42", headers: { "X-Tenant": "acme" } });
    const dlq = new DeadLetterQueue(nc, q);
    await waitFor(async () => (await dlq.count()) === 1, "a dead letter");
    fail = false;

    const { url } = await dashboard();
    const page = await newPage();
    await page.goto(`${url}/queues/${q.name}`);
    await waitText(page, '[data-field="deadLetters"]', "1");
    await shot(page, "queue");

    await page.goto(`${url}/queues/${q.name}/dead-letters`);
    const row = page.locator("#dead-letters tbody tr").first();
    assert.equal(await textOf(page, '#dead-letters [data-field="id"]'), "order-42");
    assert.equal(await textOf(page, '#dead-letters [data-field="error"]'), "Error: card declined for order 42");
    assert.equal(await textOf(page, '#dead-letters [data-field="attempts"]'), "2");
    assert.equal(await textOf(page, '#dead-letters [data-field="reason"]'), "max_attempts");
    await shot(page, "dead-letters");

    await row.locator('[data-field="open"]').click();
    await page.waitForURL(/\/dead-letters\/\d+$/);
    await waitText(page, "#payload", /"order": 42/);
    assert.equal(await textOf(page, "#payload"), JSON.stringify({ order: 42, amount: "19.99" }, null, 2));
    assert.equal(await textOf(page, '[data-field="attempts"]'), "2");
    assert.match(await textOf(page, "#headers"), /X-Tenant\s*acme/);
    assert.match(await textOf(page, '[data-field="failedAt"]'), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    assert.doesNotMatch(await textOf(page, "body"), /\bnull\b|\bundefined\b|NaN|\[object /, "no placeholder leaked into the page");
    assert.equal(await textOf(page, "#crumbs"), `Queues›${q.name}›Dead letters›#${page.url().split("/").at(-1)}`);
    await shot(page, "dead-letter");

    let question = "";
    page.once("dialog", (d) => {
      question = d.message();
      void d.accept();
    });
    await page.locator('#entry-actions [data-action="replay"]').click();
    await waitText(page, "#notice", /^Replayed as job order-42/);
    assert.match(question, /Replay dead letter #\d+ \(job order-42\)/);
    await waitFor(() => completed.length === 1, "the replayed job completes");
    assert.deepEqual(completed, ["order-42@1"], "a fresh attempt count");
    assert.equal(await dlq.count(), 0);

    await page.goto(`${url}/queues/${q.name}/dead-letters`);
    await waitText(page, "#empty", "No dead letters.");
    await worker.stop();
    await producer.close();
    assert.deepEqual(jsErrors(page), []);
  });

  it("renders HTML and script in payloads, headers, ids and errors as inert text", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("xss"), maxAttempts: 1 });
    await provisionQueue(nc, q);
    const evil = {
      payload: `<script>window.__pwned="payload"</script><img src=x onerror="window.__pwned='img'">`,
      header: `<script>window.__pwned="header"</script>`,
      error: `<img src=x onerror="window.__pwned='error'">`,
      id: `<svg/onload=window.__pwned=1>`,
      raw: `<script>window.__pwned="raw"</script>`,
    };
    const worker = new Worker(nc, q, async () => {
      throw new PermanentError(evil.error);
    });
    await worker.start();
    const producer = new Producer(nc, q);
    await producer.publish({ html: evil.payload }, { id: evil.id, headers: { "X-Evil": evil.header } });
    nc.publish(q.names.subject, evil.raw); // not JSON: dead-lettered as undecodable
    const dlq = new DeadLetterQueue(nc, q);
    await waitFor(async () => (await dlq.count()) === 2, "two dead letters");
    await worker.stop();
    await producer.close();
    const [jsonEntry, rawEntry] = await dlq.list();

    const { url } = await dashboard();
    const page = await newPage();
    const res = await page.goto(`${url}/queues/${q.name}/dead-letters`);
    assert.match(res!.headers()["content-security-policy"] ?? "", /script-src 'self'/);
    await page.locator("#dead-letters").waitFor();
    assert.equal(await textOf(page, `tr[data-seq="${jsonEntry!.seq}"] [data-field="id"]`), evil.id);
    assert.equal(await textOf(page, `tr[data-seq="${jsonEntry!.seq}"] [data-field="error"]`), `PermanentError: ${evil.error}`);
    assert.equal(await textOf(page, `tr[data-seq="${rawEntry!.seq}"] [data-field="payload"]`), evil.raw);
    assert.equal(await page.locator("main img, main script, main svg").count(), 0, "no element was made from the data");
    assert.equal(await pwned(page), undefined);
    await shot(page, "xss-list");

    await page.goto(`${url}/queues/${q.name}/dead-letters/${jsonEntry!.seq}`);
    await page.locator("#payload").waitFor();
    assert.equal(await textOf(page, "#payload"), JSON.stringify({ html: evil.payload }, null, 2));
    assert.match(await textOf(page, "#headers"), new RegExp(`X-Evil\\s*${evil.header.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}`));
    assert.equal(await textOf(page, '[data-field="error"]'), `PermanentError: ${evil.error}`);
    assert.equal(await page.locator("main img, main script, main svg").count(), 0);
    assert.ok(await page.getByText("<script>window.__pwned=").first().isVisible(), "the markup is visible literally");
    await shot(page, "xss-detail");

    await page.goto(`${url}/queues/${q.name}/dead-letters/${rawEntry!.seq}`);
    await waitText(page, "#payload", evil.raw);
    assert.match(await textOf(page, "h2"), /not JSON/);
    assert.equal(await pwned(page), undefined);
    assert.deepEqual(jsErrors(page), []);
  });

  it("in read-only mode shows no actions and refuses them with 403 (mounted under a base path)", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("readonly"), maxAttempts: 1 });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    await producer.publish({ keep: true });
    const worker = new Worker(nc, q, async () => {
      throw new Error("nope");
    });
    await worker.start();
    const dlq = new DeadLetterQueue(nc, q);
    await waitFor(async () => (await dlq.count()) === 1, "a dead letter");
    await worker.stop();
    await producer.close();
    const [entry] = await dlq.list();

    const nc2 = await nats.connect();
    const handler = createDashboard(nc2, { readOnly: true, queues: [q], basePath: "/ops/jobs", refreshMs: 250 });
    cleanups.push(() => handler.close());
    const { url } = await listen((req, res) => handler(req, res));
    const page = await newPage();
    await page.goto(`${url}/ops/jobs/`);
    await waitText(page, `tr[data-queue="${q.name}"] [data-field="deadLetters"]`, "1");
    assert.equal(await textOf(page, ".badge"), "read-only");
    await page.locator(`tr[data-queue="${q.name}"] [data-field="deadLetters"] a`).click();
    await page.waitForURL(`${url}/ops/jobs/queues/${q.name}/dead-letters`);
    await page.locator("#dead-letters").waitFor();
    assert.equal(await page.locator("button").count(), 0, "no action buttons on the list");
    await shot(page, "read-only");
    await page.goto(`${url}/ops/jobs/queues/${q.name}/dead-letters/${entry!.seq}`);
    await page.locator("#payload").waitFor();
    assert.equal(await page.locator("button").count(), 0, "no action buttons on the detail page");
    assert.doesNotMatch(await textOf(page, "body"), /\bnull\b|\bundefined\b|NaN|\[object /);

    // Even a request carrying a valid CSRF token, from the page itself, is refused.
    const outcomes = await page.evaluate(async (paths) => {
      const doc = (globalThis as unknown as { document: { querySelector(s: string): { getAttribute(n: string): string | null } | null } }).document;
      const token = doc.querySelector('meta[name="jetq-csrf"]')?.getAttribute("content") ?? "";
      const out: Array<[number, string]> = [];
      for (const p of paths) {
        const r = await fetch(p, { method: "POST", headers: { "X-Jetq-Csrf": token } });
        out.push([r.status, ((await r.json()) as { error: string }).error]);
      }
      return out;
    }, [`/ops/jobs/api/queues/${q.name}/dead-letters/${entry!.seq}/replay`, `/ops/jobs/api/queues/${q.name}/dead-letters/purge`]);
    for (const [status, error] of outcomes) {
      assert.equal(status, 403);
      assert.match(error, /read-only/);
    }
    assert.equal(await dlq.count(), 1, "nothing was replayed or purged");
    // A queue outside `queues` does not exist for this dashboard.
    assert.equal((await fetch(`${url}/ops/jobs/api/queues/someone_else/dead-letters`)).status, 404);
    assert.equal((await fetch(`${url}/elsewhere`)).status, 404);
    assert.deepEqual(jsErrors(page), []);
  });

  it("refuses a POST without the CSRF token, with a forged one, and from another site", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("csrf"), maxAttempts: 1 });
    await provisionQueue(nc, q);
    const worker = new Worker(nc, q, async () => {
      throw new PermanentError("kept");
    });
    await worker.start();
    const producer = new Producer(nc, q);
    await producer.publish({ victim: true });
    const dlq = new DeadLetterQueue(nc, q);
    await waitFor(async () => (await dlq.count()) === 1, "a dead letter");
    await worker.stop();
    await producer.close();
    const [entry] = await dlq.list();
    const { url } = await dashboard();
    const action = `${url}/api/queues/${q.name}/dead-letters/${entry!.seq}/delete`;

    // The page hands out the token and its cookie; each request below lacks one part.
    const shell = await fetch(`${url}/`);
    const cookie = shell.headers.get("set-cookie")!.split(";")[0]!;
    const token = /name="jetq-csrf" content="([^"]+)"/.exec(await shell.text())![1]!;
    assert.match(shell.headers.get("set-cookie")!, /SameSite=Strict/);
    assert.match(shell.headers.get("set-cookie")!, /HttpOnly/);
    const attempts: Array<[string, Record<string, string>]> = [
      ["no token", { cookie }],
      ["token without cookie", { "x-jetq-csrf": token }],
      ["forged token", { "x-jetq-csrf": `${token.slice(0, -2)}xx`, cookie }],
      ["cross-site", { "x-jetq-csrf": token, cookie, "sec-fetch-site": "cross-site" }],
    ];
    for (const [what, headers] of attempts) {
      const r = await fetch(action, { method: "POST", headers });
      assert.equal(r.status, 403, what);
      assert.match(((await r.json()) as { error: string }).error, /CSRF/, what);
    }
    assert.equal((await fetch(action, { method: "GET" })).status, 404, "actions are POST only");

    // A page on another origin submitting a form at the dashboard: refused, nothing deleted.
    const evil = await listen((_req, res) => {
      res.setHeader("Content-Type", "text/html");
      res.end(`<form id="f" method="POST" action="${action}"></form><script>document.getElementById("f").submit()</script>`);
    });
    const page = await newPage();
    const refused = page.waitForResponse((r) => r.url() === action);
    await page.goto(evil.url);
    assert.equal((await refused).status(), 403);
    assert.equal(await dlq.count(), 1, "the dead letter survived every forged request");

    // The same request with both parts goes through (the checks above are not refusing everything).
    const ok = await fetch(action, { method: "POST", headers: { "x-jetq-csrf": token, cookie } });
    assert.equal(ok.status, 200);
    assert.equal(await dlq.count(), 0);
  });
});

describe("mounting", () => {
  it("finds its mount path from req.originalUrl as Express sets it", async () => {
    const nc = await nats.connect();
    const handler = createDashboard(nc, { queues: [] });
    cleanups.push(() => handler.close());
    // What express's app.use("/admin/jobs", handler) does to the request before calling it.
    const { url } = await listen((req, res) => {
      const full = req.url ?? "/";
      if (!full.startsWith("/admin/jobs")) {
        res.statusCode = 418;
        res.end();
        return;
      }
      Object.assign(req, { originalUrl: full, url: full.slice("/admin/jobs".length) || "/" });
      handler(req, res);
    });
    for (const path of ["/admin/jobs", "/admin/jobs/", "/admin/jobs/queues/x/dead-letters"]) {
      const html = await (await fetch(`${url}${path}`)).text();
      assert.match(html, /<meta name="jetq-base" content="\/admin\/jobs">/, path);
      assert.match(html, /src="\/admin\/jobs\/static\/app\.js"/, path);
    }
    const cookie = (await fetch(`${url}/admin/jobs/`)).headers.get("set-cookie") ?? "";
    assert.match(cookie, /Path=\/admin\/jobs;/);
    assert.equal((await fetch(`${url}/admin/jobs/static/app.js`)).status, 200);
    assert.equal((await fetch(`${url}/admin/jobs/nothing/here`)).status, 404);
  });
});

describe("standalone dashboard server", () => {
  it("binds to loopback and admits a token by header, or by ?token= traded for a cookie", async () => {
    const nc = await nats.connect();
    const token = "s3cret-token-123";
    const srv = await startDashboardServer(nc, { port: 0, auth: { kind: "token", token } });
    cleanups.push(() => srv.close());
    assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal((await fetch(srv.url)).status, 401);
    assert.equal((await fetch(`${srv.url}?token=wrong-token-000`)).status, 401);
    assert.equal((await fetch(srv.url, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    const trade = await fetch(`${srv.url}queues/x?token=${token}`, { redirect: "manual" });
    assert.equal(trade.status, 303);
    assert.equal(trade.headers.get("location"), "/queues/x");
    const cookie = trade.headers.get("set-cookie")!;
    assert.match(cookie, /HttpOnly; SameSite=Strict/);
    assert.ok(!cookie.includes(token), "the cookie holds a digest, not the token");
    assert.equal((await fetch(`${srv.url}api/overview`, { headers: { cookie: cookie.split(";")[0]! } })).status, 200);
  });

  it("on loopback, refuses requests addressed to another host name (DNS rebinding)", async () => {
    const nc = await nats.connect();
    const srv = await startDashboardServer(nc, { port: 0, allowedHosts: ["jobs.internal"] });
    cleanups.push(() => srv.close());
    const port = Number(new URL(srv.url).port);
    const statusFor = (host: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port, path: "/api/overview", headers: { host } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
    assert.equal(await statusFor(`attacker.example:${port}`), 421);
    assert.equal(await statusFor(`127.0.0.1.attacker.example:${port}`), 421);
    assert.equal(await statusFor(`localhost:${port}`), 200);
    assert.equal(await statusFor(`127.0.0.1:${port}`), 200);
    assert.equal(await statusFor(`[::1]:${port}`), 200);
    assert.equal(await statusFor("jobs.internal"), 200, "a name allowed for a local reverse proxy");
  });

  it("admits basic auth and asks for it otherwise", async () => {
    const nc = await nats.connect();
    const srv = await startDashboardServer(nc, { port: 0, auth: { kind: "basic", user: "ops", password: "pa:ss" } });
    cleanups.push(() => srv.close());
    const none = await fetch(srv.url);
    assert.equal(none.status, 401);
    assert.match(none.headers.get("www-authenticate") ?? "", /^Basic realm=/);
    const basic = (u: string, p: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}` });
    assert.equal((await fetch(srv.url, { headers: basic("ops", "wrong") })).status, 401);
    assert.equal((await fetch(srv.url, { headers: basic("ops", "pa:ss") })).status, 200);
  });
});
