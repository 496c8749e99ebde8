import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { ConfigError, createDashboard } from "../../src/index.ts";
import { parseCookies } from "../../src/dashboard/handler.ts";
import { prettyJson } from "../../src/dashboard/pretty.ts";
import { averageRates, History, type Sample } from "../../src/dashboard/sampler.ts";
import { ratesBetween } from "../../src/telemetry/stats.ts";
import { withRates, type StatsSample } from "../../src/cli/stats.ts";
import { hostnameOf, isLoopback, parseBasicAuth } from "../../src/dashboard/server.ts";

const at = (t: number, published: number, stored: number, deadLettered = 0): Sample => ({ t, published, stored, deadLettered });

describe("dashboard rates", () => {
  it("derives completed from published, stored and dead-lettered", () => {
    // 10 published, 3 more stored, 2 dead-lettered in 2 s: 5 jobs completed.
    const r = ratesBetween(at(1000, 10, 5, 0), at(3000, 20, 8, 2));
    assert.deepEqual(r, { published: 5, completed: 2.5, failed: 1 });
  });

  it("clamps what cannot be negative and ignores empty intervals", () => {
    assert.deepEqual(ratesBetween(at(0, 10, 0), at(1000, 5, 7)), { published: 0, completed: 0, failed: 0 });
    assert.deepEqual(ratesBetween(at(1000, 1, 1), at(1000, 9, 1)), { published: 0, completed: 0, failed: 0 });
  });

  it("averages over the window, weighted by interval length", () => {
    const s = [at(0, 0, 0), at(1000, 10, 0), at(4000, 10, 0)];
    assert.deepEqual(averageRates(s, 5), { published: 2.5, completed: 2.5, failed: 0 });
    assert.deepEqual(averageRates(s, 1), { published: 0, completed: 0, failed: 0 }, "only the last interval");
    assert.equal(averageRates(s.slice(0, 1), 3), null);
  });

  it("is one formula for the CLI and the dashboard", () => {
    const sample = {} as StatsSample;
    const pairs: Array<[Sample, Sample]> = [
      [at(1000, 10, 5, 0), at(3000, 20, 8, 2)],
      [at(0, 10, 0), at(1000, 5, 7)], // a recreated stream: nothing negative
      [at(0, 0, 0, 0), at(500, 100, 0, 40)],
    ];
    for (const [a, b] of pairs) {
      const cli = withRates({ sample, totals: b }, { sample, totals: a });
      const h = new History(2);
      h.push(a, 0);
      h.push(b, 0);
      const dash = h.points()[0] ?? { published: 0, completed: 0, failed: 0 };
      assert.equal(cli.publishedPerSec, dash.published, `${JSON.stringify([a, b])}`);
      assert.equal(cli.completedPerSec, dash.completed, `${JSON.stringify([a, b])}`);
      assert.equal(cli.deadLetteredPerSec, dash.failed, `${JSON.stringify([a, b])}`);
      assert.ok(cli.publishedPerSec! >= 0 && cli.completedPerSec! >= 0 && cli.deadLetteredPerSec! >= 0);
    }
  });

  it("keeps a bounded history and starts over when a stream was recreated", () => {
    const h = new History(3);
    for (let i = 0; i < 10; i++) h.push(at(i * 1000, i * 2, 0), i);
    assert.equal(h.samples.length, 3);
    const points = h.points();
    assert.equal(points.length, 2);
    assert.deepEqual(points[1], { t: 9000, ms: 1000, depth: 9, published: 2, completed: 2, failed: 0 });
    h.push(at(10_000, 1, 1), 1); // sequences went backwards
    assert.equal(h.samples.length, 1);
    assert.deepEqual(h.points(), []);
  });
});

describe("dashboard helpers", () => {
  it("pretty-prints JSON exactly as sent: big numbers, duplicate keys, escapes", () => {
    const raw = '{"id":12345678901234567890,"a":1,"a":2,"s":"x,{\\"y\\":[1]}","e":{},"l":[ ],"n":[1,[2,{"k":null}]],"f":-1.5e+300}';
    const out = prettyJson(raw);
    assert.equal(out, [
      "{",
      '  "id": 12345678901234567890,',
      '  "a": 1,',
      '  "a": 2,',
      '  "s": "x,{\\"y\\":[1]}",',
      '  "e": {},',
      '  "l": [],',
      '  "n": [',
      "    1,",
      "    [",
      "      2,",
      "      {",
      '        "k": null',
      "      }",
      "    ]",
      "  ],",
      '  "f": -1.5e+300',
      "}",
    ].join("\n"));
    // Same document as the standard printer wherever that one is exact.
    const plain = { a: [1, { b: "c d", e: [] }], f: true, g: "\u00e9\n" };
    assert.equal(prettyJson(JSON.stringify(plain)), JSON.stringify(plain, null, 2));
    assert.equal(prettyJson(' "text" '), '"text"');
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    assert.equal(prettyJson(deep), deep, "a hostile nesting is shown as sent, not blown up");
  });

  it("parses user:password with colons in the password", () => {
    assert.deepEqual(parseBasicAuth("ops:pa:ss"), { user: "ops", password: "pa:ss" });
    assert.throws(() => parseBasicAuth("nocolon"), ConfigError);
    assert.throws(() => parseBasicAuth(":secret"), ConfigError);
    assert.throws(() => parseBasicAuth("user:"), ConfigError);
  });

  it("knows loopback addresses", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "::1", "localhost"]) assert.ok(isLoopback(h), h);
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "example.com"]) assert.ok(!isLoopback(h), h);
  });

  it("takes the host name out of a Host header", () => {
    assert.equal(hostnameOf("LocalHost:3000"), "localhost");
    assert.equal(hostnameOf("[::1]:3000"), "[::1]");
    assert.equal(hostnameOf("127.0.0.1"), "127.0.0.1");
    assert.equal(hostnameOf(undefined), "");
  });

  it("reads cookies, keeping the first of a repeated name", () => {
    const c = parseCookies("a=1; b=x=y;a=2; junk");
    assert.equal(c.get("a"), "1");
    assert.equal(c.get("b"), "x=y");
    assert.equal(c.size, 2);
  });

  it("validates its options with messages naming them", () => {
    const nc = {} as NatsConnection;
    assert.throws(() => createDashboard(nc, { basePath: "no slash" }), /`basePath`/);
    assert.throws(() => createDashboard(nc, { refreshMs: 0 }), /`refreshMs`/);
    assert.throws(() => createDashboard(nc, { queues: ["bad name!"] }), /`name`/);
    assert.throws(() => createDashboard(nc, { queues: "emails" as never }), /`queues`/);
    createDashboard(nc, { basePath: "/admin/jobs/", queues: ["emails"] }).close();
  });
});
