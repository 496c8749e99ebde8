// Pure pieces of the CLI's truthfulness (issue 23 item 6): what reaches the terminal, which server
// URLs are accepted, the worker option `announce`.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clean, safeText, table } from "../../src/cli/format.ts";
import { checkServerUrls } from "../../src/cli/connect.ts";
import { announceEvery } from "../../src/fleet/announcer.ts";
import { ConfigError } from "../../src/errors.ts";

describe("CLI output safety", () => {
  it("shows every control character of a field as \\uXXXX, newlines included", () => {
    assert.equal(clean("a\x1b[2Jb\x9b1m\u202ec\nd\te\x7f"), "a\\u001b[2Jb\\u009b1m\\u202ec\\u000ad\\u0009e\\u007f");
    assert.equal(clean("plain text, ünïcode ✓"), "plain text, ünïcode ✓");
    assert.equal(table(["A"], [["x\x1b[Hy"]]), "A\nx\\u001b[Hy");
  });

  it("keeps newlines and tabs of whole text, and JSON meaning the same", () => {
    assert.equal(safeText("line 1\n\tline 2\r\x1b]0;title\x07"), "line 1\n\tline 2\\u000d\\u001b]0;title\\u0007");
    const json = JSON.stringify({ h: "x\x9by\u2066" });
    assert.deepEqual(JSON.parse(safeText(json)), { h: "x\x9by\u2066" });
  });
});

describe("server URLs", () => {
  it("accepts nats://, tls:// and host:port", () => {
    checkServerUrls(["nats://127.0.0.1:4222", "tls://nats.example.com:4443", "127.0.0.1:4222", "nats://user:pw@h:1"]);
  });
  it("refuses other schemes with a hint, never echoing credentials", () => {
    for (const [u, re] of [
      ["http://localhost:8222", /monitoring/],
      ["ws://h:8080", /websocket/],
      ["redis://h", /nats:\/\/ or tls:\/\//],
      ["nats://", /URLs like/],
      ["wss://me:secret@h", /websocket/],
    ] as const) {
      assert.throws(() => checkServerUrls([u]), (e: Error) => e instanceof ConfigError && re.test(e.message) && !e.message.includes("secret"), u);
    }
  });
});

describe("Worker option announce", () => {
  it("is on every 5 s by default, off with false, and checked", () => {
    assert.equal(announceEvery(undefined), 5000);
    assert.equal(announceEvery(true), 5000);
    assert.equal(announceEvery(false), 0);
    assert.equal(announceEvery({ everyMs: 250 }), 250);
    assert.equal(announceEvery({}), 5000);
    for (const bad of [{ everyMs: 50 }, { everyMs: 6000 }, { everyMs: 1.5 }, "yes", 0]) {
      assert.throws(() => announceEvery(bad), (e: Error) => e instanceof ConfigError && /`announce`/.test(e.message));
    }
  });
});
