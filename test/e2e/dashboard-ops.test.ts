// The operator's dashboard pages in a real headless Chromium against real NATS servers: the badge
// telling NATS health, the 420 px layout, pause/resume, schedules and delayed jobs, the job page,
// recent jobs, dead-letter triage (groups, selections, stack, live list), and history that
// outlives the dashboard. UPDATE_SCREENSHOTS=1 also rewrites the README's docs/dashboard-queue.png.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { Page } from "playwright-core";
import {
  createDashboard,
  DeadLetterQueue,
  defineQueue,
  isPaused,
  PermanentError,
  Producer,
  provisionQueue,
  Schedules,
  Worker,
} from "../../src/index.ts";
import { startDashboardServer } from "../../src/dashboard/server.ts";
import { HISTORY, historySubject } from "../../src/history/recorder.ts";
import { startLocalNats } from "../support/nats-server.ts";
import { jsErrors, noBrowser, shot, textOf, useBrowser, waitText } from "../support/browser.ts";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";

const nats = useNats();
const ui = useBrowser(() => nats.connect());
const cleanups = { push: (...fns: Array<() => unknown>): void => fns.forEach((f) => ui.cleanup(f)) };
const { listen, dashboard } = ui;
/** The operator pages keep live streams open: a stream cut by a closing page is not a bug. */
const newPage = (viewport?: { width: number; height: number }): Promise<Page> => ui.newPage({ viewport, ignoreConsole: /Failed to load resource|EventSource|net::ERR/ });

/** Accepts the next confirmation and returns its question. */
function confirmNext(page: Page): Promise<string> {
  return new Promise((resolve) => {
    page.once("dialog", (d) => {
      resolve(d.message());
      void d.accept();
    });
  });
}

describe("operator pages", { skip: noBrowser }, () => {
  it("the badge shows NATS health: live, then NATS down while the server is stopped, and not stuck on an error page", async () => {
    const server = await startLocalNats();
    cleanups.push(() => server.stop());
    const nc = await connect({ servers: server.servers, noAsyncTraces: true, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    cleanups.push(() => nc.close().catch(() => {}));
    const q = defineQueue({ name: uniqueName("badge") });
    await provisionQueue(nc, q);
    const handler = createDashboard(nc, { queues: [q], refreshMs: 200 });
    cleanups.push(() => handler.close());
    const { url } = await listen(handler);

    const page = await newPage();
    await page.goto(url);
    await waitText(page, "#live", "live");
    // An error page (no such job) gets the badge too, instead of "connecting…" for ever.
    const other = await newPage();
    await other.goto(`${url}/queues/${q.name}/jobs/nope`);
    await waitText(other, "#job-error", /No job "nope" found/);
    await waitText(other, "#live", "live");

    await server.kill();
    await waitText(page, "#live", "NATS down");
    assert.equal(await page.locator("#live").getAttribute("data-state"), "down");
    await waitText(other, "#live", "NATS down");
    await shot(page, "nats-down");

    // The dashboard itself stopped: the browser cannot reach it.
    handler.close();
    await waitText(page, "#live", /dashboard unreachable/);
    assert.deepEqual(jsErrors(page), []);
  });

  it("at 420 px the overview fits, chart labels are not clipped, and long job ids stay on one line", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("narrow"), maxAttempts: 1 });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    cleanups.push(() => producer.close());
    const longId = `invoice-${"x".repeat(30)}-2026-12-02T07:00:00.000Z-tenant-acme-corporation`;
    await producer.publish({ n: 1 }, { id: longId });
    await producer.publishMany(Array.from({ length: 1200 }, (_, i) => ({ i })));
    const worker = new Worker(nc, q, async () => {
      throw new Error("nope");
    });
    const { url } = await dashboard({ queues: [q] });
    const page = await newPage({ width: 420, height: 800 });
    await page.goto(url);
    await waitText(page, `tr[data-queue="${q.name}"] [data-field="pending"]`, "1,201");
    const overflow = (await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")) as number;
    assert.ok(overflow <= 0, `the overview is ${overflow} px wider than a 420 px viewport`);
    await shot(page, "overview-420");

    await page.goto(`${url}/queues/${q.name}`);
    await waitText(page, '[data-field="pending"]', "1,201");
    await waitFor(async () => (await page.locator(".chart-box svg.chart text[data-field=max]").count()) >= 2, "charts drawn");
    // The depth chart's largest label ("1,201") lies inside its SVG.
    const clipped = await page.evaluate('[...document.querySelectorAll("svg.chart text[data-field=max]")].filter((t) => t.getBBox().x < 0).map((t) => t.textContent)');
    assert.deepEqual(clipped, []);
    const pageOverflow = (await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")) as number;
    assert.doesNotMatch(await textOf(page, "main"), /\bnull\b|\bundefined\b|NaN/, "no placeholder leaked into the page");
    assert.ok(pageOverflow <= 0, `the queue page is ${pageOverflow} px wider than the viewport`);

    await worker.start();
    const dlq = new DeadLetterQueue(nc, q);
    await waitFor(async () => (await dlq.count()) > 0 && (await dlq.list({ limit: 1 }))[0]?.id === longId, "the long id dead-lettered", 30_000);
    await worker.stop();
    await page.goto(`${url}/queues/${q.name}/dead-letters`);
    const cell = page.locator(`#dead-letters tr:first-child [data-field="id"] .id`);
    await waitFor(async () => (await cell.count()) > 0, "the id cell");
    assert.equal(await cell.getAttribute("title"), longId);
    const lines = (await page.evaluate(
      '(() => { const el = document.querySelector("#dead-letters tr:first-child [data-field=id] .id"); return el.getBoundingClientRect().height / (parseFloat(getComputedStyle(el).lineHeight) || 18); })()',
    )) as number;
    assert.ok(lines < 1.5, `the job id takes ${lines.toFixed(1)} lines`);
    assert.deepEqual(jsErrors(page), []);
  });

  it("pauses and resumes a queue from its page, after a confirmation; read-only hides and refuses it", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("pausable") });
    await provisionQueue(nc, q);
    const { url } = await dashboard({ queues: [q] });
    const page = await newPage();
    await page.goto(`${url}/queues/${q.name}`);
    const button = page.locator('#app .actions button[data-action="pause"]');
    await button.waitFor();
    const asked = confirmNext(page);
    await button.click();
    assert.match(await asked, /^Pause "/);
    await waitFor(() => isPaused(nc, q), "the queue paused");
    await waitText(page, "#pause-state", "paused");
    await shot(page, "paused");
    const resumed = confirmNext(page);
    await page.locator('#app .actions button[data-action="resume"]').click();
    assert.match(await resumed, /^Resume "/);
    await waitFor(async () => !(await isPaused(nc, q)), "the queue resumed");

    // Declined: nothing changes.
    await page.locator('#app .actions button[data-action="pause"]').waitFor();
    page.once("dialog", (d) => void d.dismiss());
    await page.locator('#app .actions button[data-action="pause"]').click();
    await new Promise((r) => setTimeout(r, 300)); // a refused dialog sends nothing; give a wrong POST time to land
    assert.equal(await isPaused(nc, q), false);

    // Without the CSRF token, and read-only: refused.
    assert.equal((await fetch(`${url}/api/queues/${q.name}/pause`, { method: "POST" })).status, 403);
    const ro = await dashboard({ queues: [q], readOnly: true });
    const roPage = await newPage();
    await roPage.goto(`${ro.url}/queues/${q.name}`);
    await waitText(roPage, '[data-field="pending"]', "0");
    assert.equal(await roPage.locator('button[data-action="pause"], button[data-action="resume"]').count(), 0);
    assert.equal(await isPaused(nc, q), false);
    assert.deepEqual(jsErrors(page), []);
  });

  it("shows delayed jobs and schedules, and removes a schedule", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("sched"), scheduling: true });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    cleanups.push(() => producer.close());
    const due = Date.now() + 3600_000;
    await producer.publish({ later: true }, { runAt: due });
    await producer.publish({ later: true }, { delayMs: 7200_000 });
    const schedules = new Schedules(nc, q);
    await schedules.upsert("nightly", { cron: "0 3 * * *", tz: "Europe/Berlin" }, { kind: "daily" });
    await schedules.upsert("often", { everyMs: 60_000 }, { kind: "often" });

    // Discovered by name: the dashboard finds the queue's held stream itself.
    const { url } = await dashboard();
    const page = await newPage();
    await page.goto(`${url}/queues/${q.name}`);
    await waitText(page, '#delayed [data-field="delayed"]', "2");
    assert.equal(await textOf(page, '#delayed [data-field="nextDue"]'), new Date(due).toISOString().replace("T", " ").slice(0, 19));
    await waitText(page, '#schedules tr[data-schedule="nightly"] [data-field="spec"]', "cron 0 3 * * * (Europe/Berlin)");
    assert.match(await textOf(page, '#schedules tr[data-schedule="nightly"] [data-field="nextTick"]'), /^\d{4}-\d\d-\d\d \d\d:00:00$/);
    assert.equal(await textOf(page, '#schedules tr[data-schedule="often"] [data-field="spec"]'), "every 1 min");
    await shot(page, "schedules");

    const asked = confirmNext(page);
    await page.locator('#schedules tr[data-schedule="often"] button[data-action="remove-schedule"]').click();
    assert.match(await asked, /Remove schedule "often"/);
    await waitText(page, "#notice", 'Removed schedule "often".');
    assert.equal(await schedules.get("often"), undefined);
    await waitFor(async () => (await page.locator('#schedules tr[data-schedule="often"]').count()) === 0, "the row gone");
    assert.ok(await schedules.get("nightly"));
    assert.deepEqual(jsErrors(page), []);
  });

  it("finds a job by id or sequence: completed with its result, dead with its stack, waiting and removable; recent jobs listed", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("reports"), results: { keepMs: 600_000 }, maxAttempts: 1 });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    cleanups.push(() => producer.close());
    const worker = new Worker(nc, q, async (job) => {
      const d = job.data as { n: number };
      if (d.n < 0) throw new PermanentError(`report ${-d.n} failed: disk full`);
      job.progress(0.5);
      return { pages: d.n * 10, url: `https://example.test/r/${d.n}` };
    });
    await worker.start();
    await producer.publish({ n: 3 }, { id: "report-3" });
    await producer.publish({ n: -4 }, { id: "report-4" });
    const dlq = new DeadLetterQueue(nc, q);
    await waitFor(async () => (await dlq.count()) === 1, "report-4 dead-lettered");
    const { url } = await dashboard();
    const page = await newPage();
    await page.goto(`${url}/queues/${q.name}`);
    await waitText(page, '#recent-completed tr[data-id="report-3"] td:last-child', /"pages": 30/);
    await waitText(page, '#recent-failed tr[data-id="report-4"] td:last-child', "PermanentError: report 4 failed: disk full");

    // The lookup box opens the job page.
    await page.locator("#lookup input").fill("report-3");
    await page.locator("#lookup button").click();
    await page.waitForURL(/\/jobs\/report-3$/);
    await waitText(page, "#job-state", "completed");
    assert.match(await textOf(page, "#result"), /"pages": 30/);
    assert.equal(await textOf(page, '[data-field="attempt"]'), "1");
    assert.match(await textOf(page, '[data-field="duration"]'), /^\d+ ms$|^\d+\.\d s$/);
    await shot(page, "job");

    await page.goto(`${url}/queues/${q.name}/jobs/report-4`);
    await waitText(page, "#job-state", "dead");
    assert.equal(await textOf(page, "#job-error-text"), "PermanentError: report 4 failed: disk full");
    assert.match(await textOf(page, "#stack"), /PermanentError: report 4 failed: disk full\n\s+at /);
    assert.equal(await page.locator('#job-actions button[data-action="replay-job"]').count(), 1);
    await page.locator('[data-action="open-dead-letter"]').click();
    await page.waitForURL(/\/dead-letters\/\d+$/);
    assert.match(await waitText(page, "#stack", /at /), /^PermanentError: report 4 failed: disk full/);

    // Replayed from the job page (it fails again: the worker still rejects it).
    await worker.stop();
    await page.goto(`${url}/queues/${q.name}/jobs/report-4`);
    const replayAsked = confirmNext(page);
    await page.locator('#job-actions button[data-action="replay-job"]').click();
    assert.match(await replayAsked, /^Replay dead letter #\d+ \(job report-4\)/);
    await waitText(page, "#notice", /^Replayed as job report-4 \(sequence \d+ in the queue\)\.$/);
    await waitFor(async () => (await dlq.count()) === 0, "the dead letter gone");

    // A job nobody runs: found by its stream sequence, removed after a confirmation.
    const receipt = await producer.publish({ n: 5 }, { id: "report-5" });
    await page.goto(`${url}/queues/${q.name}/jobs/${receipt.seq}`);
    await waitText(page, "#job-state", "waiting");
    assert.equal(await textOf(page, "#job-id"), "report-5");
    assert.match(await textOf(page, "#payload"), /"n":5/);
    const asked = confirmNext(page);
    await page.locator('[data-action="remove-job"]').click();
    assert.match(await asked, /Remove waiting job report-5/);
    await waitText(page, "#notice", "Removed job report-5.");
    await waitText(page, "#job-error", /No job/);
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(q.names.stream)).state.messages, 1, "only the replayed report-4 is left");

    // A queue without results: a job waiting out its retry shows its failures from the attempt ledger.
    const plain = defineQueue({ name: uniqueName("flaky"), maxAttempts: 3, backoff: [60_000] });
    await provisionQueue(nc, plain);
    const flaky = new Worker(nc, plain, async () => {
      throw new Error("flaky downstream (503)");
    });
    cleanups.push(() => flaky.stop());
    await flaky.start();
    const plainProducer = new Producer(nc, plain);
    cleanups.push(() => plainProducer.close());
    const r2 = await plainProducer.publish({ x: 1 }, { id: "flaky-1" });
    await waitFor(async () => {
      const j = (await (await fetch(`${url}/api/queues/${plain.name}/jobs/${r2.seq}`)).json()) as { ledger?: { failures: number } | null };
      return j.ledger?.failures === 1;
    }, "the first failure in the ledger");
    await page.goto(`${url}/queues/${plain.name}/jobs/${r2.seq}`);
    await waitText(page, "#job-id", "flaky-1");
    assert.equal(await textOf(page, '[data-field="failures"]'), "1");
    assert.equal(await textOf(page, '[data-field="ledgerError"]'), "flaky downstream (503)");
    assert.equal(await textOf(page, "#job-state"), "delivered");
    assert.equal(await page.locator('[data-action="remove-job"]').count(), 0, "a delivered job cannot be removed");
    assert.deepEqual(jsErrors(page), []);
  });

  it("groups dead letters by error, replays a group, deletes a selection, and lists new ones live", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("triage"), maxAttempts: 1 });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    cleanups.push(() => producer.close());
    let fail = true;
    const done: string[] = [];
    const worker = new Worker(nc, q, async (job) => {
      const d = job.data as { user: number; kind: string };
      if (fail) throw new Error(d.kind === "missing" ? `user ${d.user} not found in "tenant-${d.user}"` : `timeout after ${1000 + d.user} ms`);
      done.push(job.id);
    });
    await worker.start();
    for (let i = 1; i <= 5; i++) await producer.publish({ user: i, kind: "missing" }, { id: `m-${i}` });
    for (let i = 1; i <= 2; i++) await producer.publish({ user: i, kind: "slow" }, { id: `s-${i}` });
    const dlq = new DeadLetterQueue(nc, q);
    await waitFor(async () => (await dlq.count()) === 7, "7 dead letters");

    const { url } = await dashboard({ queues: [q] });
    const page = await newPage();
    await page.goto(`${url}/queues/${q.name}/dead-letters`);
    await waitFor(async () => (await page.locator("#groups tbody tr").count()) === 2, "two groups");
    assert.equal(await textOf(page, '#groups tbody tr:nth-child(1) [data-field="count"]'), "5");
    assert.match(await textOf(page, '#groups tbody tr:nth-child(1) [data-field="error"]'), /^Error: user <n> not found in <text>/);
    assert.equal(await textOf(page, '#groups tbody tr:nth-child(2) [data-field="count"]'), "2");
    await shot(page, "dead-letter-groups");

    // Live: a new dead letter shows up without a reload.
    await producer.publish({ user: 9, kind: "slow" }, { id: "s-9" });
    await waitText(page, '[data-field="count"]', "8");
    await waitFor(async () => (await page.locator('#dead-letters [data-field="id"]', { hasText: "s-9" }).count()) === 1, "s-9 listed live");
    await waitText(page, '#groups tbody tr:nth-child(2) [data-field="count"]', "3");

    // Replay the "not found" group: the five jobs run again and complete.
    fail = false;
    const asked = confirmNext(page);
    await page.locator('#groups tbody tr:nth-child(1) button[data-action="replay-group"]').click();
    assert.match(await asked, /Replay 5 dead letters of this group/);
    await waitText(page, "#notice", "Replayed 5 dead letters.");
    await waitFor(() => done.length === 5, "five replayed jobs completed");
    assert.deepEqual(done.sort(), ["m-1", "m-2", "m-3", "m-4", "m-5"]);
    await waitText(page, 'h1 [data-field="count"]', "3");

    // Select two and delete them.
    const boxes = page.locator('#dead-letters [data-field="select"]');
    await boxes.nth(0).check();
    await boxes.nth(1).check();
    await waitText(page, '[data-field="selected"]', "2 selected");
    const asked2 = confirmNext(page);
    await page.locator('button[data-action="delete-selected"]').click();
    assert.match(await asked2, /Delete the 2 selected dead letters/);
    await waitText(page, "#notice", "Deleted 2 dead letters.");
    await waitFor(async () => (await dlq.count()) === 1, "one dead letter left");

    // A selection is bounded and needs the CSRF token.
    const res = await fetch(`${url}/api/queues/${q.name}/dead-letters/delete-selected`, { method: "POST", body: JSON.stringify({ seqs: [1] }) });
    assert.equal(res.status, 403);
    const tooMany = (await page.evaluate(`fetch(location.pathname.replace(/\\/queues\\/.*/, "") + "/api/queues/${q.name}/dead-letters/delete-selected", {
      method: "POST", credentials: "same-origin",
      headers: { "X-Jetq-Csrf": document.querySelector('meta[name="jetq-csrf"]').content, "Content-Type": "application/json" },
      body: JSON.stringify({ seqs: Array.from({ length: 501 }, (_, i) => i + 1) }),
    }).then(async (r) => [r.status, (await r.json()).error])`)) as [number, string];
    assert.equal(tooMany[0], 400);
    assert.match(tooMany[1], /1 to 500 dead-letter sequences/);
    assert.equal(await dlq.count(), 1, "nothing deleted by the refused request");
    await worker.stop();
    assert.deepEqual(jsErrors(page), []);
  });

  it("lists waiting and active jobs by page, and the live workers with their running jobs", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("lists") });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    cleanups.push(() => producer.close());
    await producer.publish({ n: 0 }, { id: "first-job" });
    await producer.publishMany(Array.from({ length: 59 }, (_, i) => ({ n: i + 1 })));
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const started: string[] = [];
    const worker = new Worker(nc, q, async (job) => {
      started.push(job.id);
      await gate;
    }, { concurrency: 1, announce: { everyMs: 200 } });
    cleanups.push(() => {
      release();
      return worker.stop();
    });
    await worker.start();
    await waitFor(() => started.length === 1, "one job running");

    const { url } = await dashboard();
    const page = await newPage();
    await page.goto(`${url}/queues/${q.name}`);
    await page.locator("#open-jobs").click();
    await page.waitForURL(/\/jobs\?state=waiting$/);
    await waitText(page, '[data-field="total"]', "59");
    assert.equal(await page.locator("#jobs tbody tr").count(), 50);
    assert.match(await textOf(page, "#jobs tbody tr:first-child .preview"), /^\{"n":1\}$/);
    await page.locator("#next-page").click();
    await waitFor(async () => (await page.locator("#jobs tbody tr").count()) === 9, "the second page");
    await shot(page, "jobs-waiting");

    await page.locator('#job-tabs a[data-state="active"]').click();
    await waitFor(async () => (await page.locator("#jobs tbody tr").count()) === 1, "the running job listed");
    assert.equal(await textOf(page, '#jobs [data-field="id"]'), "first-job");
    await page.locator('#jobs [data-field="id"] a').click();
    await page.waitForURL(/\/jobs\/1$/);
    await waitText(page, "#job-id", "first-job");

    await page.locator("#nav-workers").click();
    await page.waitForURL(/\/workers$/);
    const row = page.locator(`#workers tr:has(a:text-is("${q.name}"))`);
    await waitFor(async () => (await row.count()) === 1, "the worker listed");
    assert.equal(await textOf(page, `#workers tr:has(a:text-is("${q.name}")) [data-field="running"]`), "1 / 1");
    assert.match(await textOf(page, `#workers tr:has(a:text-is("${q.name}")) [data-field="jobs"]`), /first-job \(attempt 1\)/);
    await shot(page, "workers");

    // A stopped worker leaves the list (the page refreshes by itself).
    release();
    await worker.stop();
    await waitFor(async () => (await row.count()) === 0, "the stopped worker gone", 15_000);
    assert.deepEqual(jsErrors(page), []);
  });

  it("history outlives the dashboard: roll-ups written once per bucket by two recorders, read back after a restart", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("hist") });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    cleanups.push(() => producer.close());
    const jsm = await jetstreamManager(nc);
    // Two dashboards record at once, as two operators' would.
    const a = await startDashboardServer(await nats.connect(), { port: 0, queues: [q.name], recordHistory: true, historyBucketMs: 500, refreshMs: 200 });
    const b = await startDashboardServer(await nats.connect(), { port: 0, queues: [q.name], recordHistory: true, historyBucketMs: 500, refreshMs: 200 });
    cleanups.push(() => a.close(), () => b.close());
    let published = 0;
    const count = async (): Promise<{ msgs: number; buckets: number; late: number; rising: boolean }> => {
      const msgs: Array<{ b: number; published: number }> = [];
      let late = 0;
      let seq = 1;
      for (;;) {
        const m = await jsm.direct.getMessage(HISTORY.stream, { seq, next_by_subj: historySubject(q.name) }).catch(() => null);
        if (!m) break;
        const r = m.json() as { b: number; bms: number; t: number; published: number };
        msgs.push(r);
        // Every roll-up holds figures read within its own bucket.
        if (r.t < r.b || r.t >= r.b + r.bms) late++;
        seq = m.seq + 1;
      }
      const byBucket = msgs.toSorted((x, y) => x.b - y.b);
      // Buckets alone can all be recorded before the first publish lands (a slow first round of
      // this loop on a loaded machine): rates need the counter to rise between roll-ups.
      const rising = byBucket.length > 1 && byBucket.at(-1)!.published > byBucket[0]!.published;
      return { msgs: msgs.length, buckets: new Set(msgs.map((r) => r.b)).size, late, rising };
    };
    await waitFor(async () => {
      await producer.publish({ n: published++ });
      const c = await count();
      return c.buckets >= 6 && c.rising;
    }, "six buckets recorded, the queue's counter rising across them", 20_000, 100);
    await a.close();
    await b.close();
    const c1 = await count();
    assert.equal(c1.msgs, c1.buckets, `one roll-up per bucket, got ${c1.msgs} for ${c1.buckets} buckets`);
    assert.equal(c1.late, 0, "roll-ups read outside their bucket");

    // A new dashboard that does not record shows what was recorded.
    const d = await startDashboardServer(await nats.connect(), { port: 0, queues: [q.name], recordHistory: false, refreshMs: 200 });
    cleanups.push(() => d.close());
    const r = (await (await fetch(`${d.url}api/queues/${q.name}/history?range=15m`)).json()) as { points: Array<{ published: number; depth: number; gap: boolean }>; recording: boolean };
    assert.equal(r.recording, false);
    assert.ok(r.points.length >= 5, `${r.points.length} points`);
    assert.ok(r.points.some((p) => p.published > 0), "rates from the roll-ups");
    assert.ok(r.points.at(-1)!.depth > 0, "depth recorded");
    assert.equal((await fetch(`${d.url}api/queues/${q.name}/history?range=2w`)).status, 400);

    const page = await newPage();
    await page.goto(`${d.url}queues/${q.name}`);
    await waitFor(async () => Number(await page.locator("#history").getAttribute("data-points")) >= 5, "history drawn");
    await page.locator('button.range[data-range="15m"]').click();
    await waitFor(async () => (await page.locator("#history").getAttribute("data-range")) === "15m", "range switched");
    assert.ok((await page.locator('#history [data-chart="rates"] polyline').count()) >= 3);
    await shot(page, "history");
    assert.deepEqual(jsErrors(page), []);
  });

  it("draws a missing bucket as a gap", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("gaps") });
    await provisionQueue(nc, q);
    const js = (await import("@nats-io/jetstream")).jetstream(nc);
    const { ensureHistoryStream } = await import("../../src/history/recorder.ts");
    await ensureHistoryStream(await jetstreamManager(nc));
    const now = Date.now();
    const bucket = now - (now % 60_000);
    // Fourteen minutes with minutes 4 and 5 (counted back from now) missing.
    const inc = (i: number): number => 60 + Math.round(40 * Math.sin(i / 2));
    let published = 0;
    let dead = 0;
    for (let i = 13; i >= 0; i--) {
      published += inc(i);
      dead += i % 3;
      if (i === 4 || i === 5) continue;
      const b = bucket - i * 60_000;
      const pending = 20 + Math.round(15 * Math.cos(i / 3));
      const r = {
        v: 1, queue: q.name, b, bms: 60_000, t: b + 500, published, deadLettered: dead, stored: pending, pending, inFlight: 3,
        oldestWaitingMs: 400 + 300 * (i % 4), utilisation: 0.3, workers: 2, busy: 0.5 + 0.4 * Math.sin(i / 3),
      };
      await js.publish(historySubject(q.name), JSON.stringify(r), { msgID: `jetq-hist:${q.name}:60000:${b}` });
    }
    const { url } = await dashboard({ queues: [q] });
    const r = (await (await fetch(`${url}/api/queues/${q.name}/history?range=15m`)).json()) as { points: Array<{ t: number; gap: boolean; published: number }> };
    assert.equal(r.points.length, 11);
    assert.deepEqual(r.points.map((p) => p.gap), [false, false, false, false, false, false, false, true, false, false, false]);
    assert.ok(Math.abs(r.points[0]!.published - inc(12) / 60) < 1e-9, `${inc(12)} jobs in a minute, got ${r.points[0]!.published}/s`);
    const page = await newPage();
    await page.goto(`${url}/queues/${q.name}`);
    await page.locator('button.range[data-range="15m"]').click();
    await waitFor(async () => (await page.locator("#history").getAttribute("data-range")) === "15m", "range switched");
    await waitFor(async () => (await page.locator('#history [data-chart="rates"] svg').getAttribute("data-segments")) === "2", "two segments around the gap");
    // The README's screenshot of a queue page: UPDATE_SCREENSHOTS=1 node scripts/test.ts test/e2e/dashboard-ops.test.ts
    if (process.env.UPDATE_SCREENSHOTS === "1") await page.locator("#history").locator("..").screenshot({ path: "docs/dashboard-queue.png" });
    assert.deepEqual(jsErrors(page), []);
  });
});
