/**
 * The dashboard's browser tests: one headless Chromium per test file, dashboards served on free
 * loopback ports, pages that collect script errors, and waits with deadlines. What a test makes is
 * closed when it ends, newest first; the browser when the file ends.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, beforeEach } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { createDashboard, type DashboardHandler, type DashboardOptions } from "../../src/index.ts";
import { waitFor } from "./ctx.ts";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
/** Screenshots of each page land here (gitignored). */
export const ARTIFACTS = "test-artifacts";
export const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM_PATH)`);
/** The `skip` option of a browser suite: only where no Chromium is installed (never on CI, above). */
export const noBrowser: string | false = haveChromium ? false : `no Chromium at ${CHROMIUM}: apt-get install -y chromium`;

/** Flags that keep Chromium off the network (this machine's is closed) and quick to start. */
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** Options of {@link BrowserFixture.newPage}. */
export interface PageOptions {
  viewport?: { width: number; height: number };
  /** Console errors that are not bugs (refused requests a test provokes); default: failed resource loads. */
  ignoreConsole?: RegExp;
}

export interface BrowserFixture {
  /** Runs when the current test ends (newest first). */
  cleanup(fn: () => unknown): void;
  /** Serves `listener` on a free loopback port until the test ends. */
  listen(listener: RequestListener): Promise<{ url: string; server: Server }>;
  /** A dashboard on its own connection (from `connect`), served until the test ends. */
  dashboard(options?: DashboardOptions): Promise<{ url: string; handler: DashboardHandler }>;
  /** A new page with a 30 s deadline for each wait; its script errors are kept for {@link jsErrors}. */
  newPage(options?: PageOptions): Promise<Page>;
}

const errorsOf = new WeakMap<Page, string[]>();

/** Script errors (and CSP violations, reported as console errors) a page made since it opened. */
export function jsErrors(page: Page): string[] {
  return errorsOf.get(page) ?? [];
}

/**
 * Starts Chromium before the file's tests (when it is installed) and closes it after them. What a
 * test opens or registers (pages, dashboards, servers, cleanups) is closed when that test ends,
 * newest first, so no test's leftovers (a dashboard polling every 250 ms, a page holding a live
 * stream) load the tests after it. If Chromium exits while a test runs, that test fails on its
 * own, a line on stderr says so, and the next test gets a new Chromium rather than a dead one.
 * `connect` gives each dashboard its connection.
 */
export function useBrowser(connect: () => Promise<NatsConnection>): BrowserFixture {
  let browser: BrowserContext | undefined;
  const profiles: string[] = [];
  let closing = false;
  let current = "(no test)";
  let cleanups: Array<() => unknown> = [];
  const launch = async (): Promise<BrowserContext> => {
    const profile = mkdtempSync(join(tmpdir(), "jetq-chromium-"));
    profiles.push(profile);
    const b = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, viewport: { width: 1280, height: 800 }, args: FLAGS });
    b.on("close", () => {
      if (browser === b) browser = undefined;
      if (!closing) process.stderr.write(`jetq browser tests: Chromium closed unexpectedly during "${current}"; the next test starts a new one\n`);
    });
    return b;
  };
  /** Runs every cleanup of the test, newest first, even when one throws; rethrows the first error. */
  const runCleanups = async (): Promise<void> => {
    const fns = cleanups.reverse();
    cleanups = [];
    let first: unknown;
    for (const c of fns) {
      try {
        await c();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  };
  before(async () => {
    if (!haveChromium) return;
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launch();
  });
  beforeEach((t) => {
    current = t.name;
  });
  afterEach(runCleanups);
  after(async () => {
    closing = true;
    await runCleanups();
    await browser?.close();
    for (const p of profiles) rmSync(p, { recursive: true, force: true });
  });
  const fixture: BrowserFixture = {
    cleanup: (fn) => void cleanups.push(fn),
    async listen(listener) {
      const server = createServer(listener);
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      cleanups.push(
        () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      );
      return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
    },
    async dashboard(options = {}) {
      const handler = createDashboard(await connect(), { refreshMs: 250, ...options });
      cleanups.push(() => handler.close());
      const { url } = await fixture.listen(handler);
      return { url, handler };
    },
    async newPage(options = {}) {
      browser ??= await launch();
      const page = await browser.newPage();
      if (options.viewport) await page.setViewportSize(options.viewport);
      // A deadline for each wait, not a pause: under a full CI run (two test files at once on two
      // cores) a page's first render took more than 10 s once.
      page.setDefaultTimeout(30_000);
      // Any script error on our pages is a bug: collected, and each test asserts there are none.
      const errors: string[] = [];
      const ignore = options.ignoreConsole ?? /Failed to load resource/;
      page.on("pageerror", (e) => errors.push(e.message));
      page.on("console", (m) => {
        if (m.type() === "error" && !ignore.test(m.text())) errors.push(m.text());
      });
      errorsOf.set(page, errors);
      cleanups.push(() => page.close().catch(() => {})); // already gone with a Chromium that exited
      return page;
    },
  };
  return fixture;
}

export async function textOf(page: Page, selector: string): Promise<string> {
  return ((await page.locator(selector).first().textContent()) ?? "").trim();
}

/** Waits until `selector` reads `expected`; the error says what it read last. */
export async function waitText(page: Page, selector: string, expected: string | RegExp, timeoutMs = 15_000): Promise<string> {
  let last = "";
  try {
    return await waitFor(
      async () => {
        last = (await page.locator(selector).count()) > 0 ? await textOf(page, selector) : "";
        return (typeof expected === "string" ? last === expected : expected.test(last)) ? last : undefined;
      },
      `${selector} to read ${String(expected)}`,
      timeoutMs,
      50,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message} (last: ${JSON.stringify(last)})`);
  }
}

/** A full-page screenshot in {@link ARTIFACTS}. */
export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `dashboard-${name}.png`), fullPage: true });
}
