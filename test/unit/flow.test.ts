// Pure parts of flow control (issue 18): level subjects and consumers, the priority and group
// checks, group key encoding, the level a header names.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, defineQueue } from "../../src/index.ts";
import { levelConsumer, levelOf, levelOfAckSubject, levelOfHeader, levelSubject, levelSubjects, prioritySubject } from "../../src/flow/priority.ts";
import { groupKeyOf, groupNames, groupStreamConfigs, groupToken } from "../../src/flow/group.ts";
import { expectedConfigs } from "../../src/queue/provision.ts";
import { graceMs, windowOfMaxAge } from "../../src/flow/rate.ts";

describe("priority levels", () => {
  const q = defineQueue({ name: "mail", priorities: 3 });
  it("the lowest level is the queue's own subject and consumer; the others get their own", () => {
    assert.equal(levelSubject(q, 2), "jetq.q.mail");
    assert.equal(levelConsumer(q, 2), "workers");
    assert.equal(levelSubject(q, 0), "jetq.q.mail.p.0");
    assert.equal(levelConsumer(q, 1), "workers-p1");
    assert.deepEqual(levelSubjects(q), ["jetq.q.mail", "jetq.q.mail.p.0", "jetq.q.mail.p.1"]);
    const cfg = expectedConfigs(q);
    assert.deepEqual(cfg.stream.subjects, levelSubjects(q));
    assert.equal(cfg.consumer.filter_subject, "jetq.q.mail");
    assert.deepEqual(cfg.levels?.map((c) => [c.durable_name, c.filter_subject]), [["workers-p0", "jetq.q.mail.p.0"], ["workers-p1", "jetq.q.mail.p.1"]]);
  });
  it("a queue without priorities has exactly the old layout: one subject, an unfiltered consumer, no level consumers", () => {
    const cfg = expectedConfigs(defineQueue({ name: "plain" }));
    assert.deepEqual(cfg.stream.subjects, ["jetq.q.plain"]);
    assert.equal("filter_subject" in cfg.consumer, false);
    assert.equal(cfg.levels, undefined);
    assert.equal(cfg.groups, undefined);
  });
  it("prioritySubject: undefined for the lowest level, a ConfigError outside the range or without levels", () => {
    assert.equal(prioritySubject(q, 2), undefined);
    assert.equal(prioritySubject(q, 0), "jetq.q.mail.p.0");
    for (const bad of [3, -1, 0.5, "1", null, Number.POSITIVE_INFINITY]) {
      assert.throws(() => prioritySubject(q, bad), (e: unknown) => e instanceof ConfigError && /0 \(most urgent\) to 2/.test(e.message), String(bad));
    }
    assert.throws(() => prioritySubject(defineQueue({ name: "plain" }), 0), /has no priority levels/);
  });
  it("levelOfHeader: the header's level when it is in range, else the lowest", () => {
    assert.equal(levelOfHeader(q, "0"), 0);
    assert.equal(levelOfHeader(q, "1"), 1);
    for (const bad of [undefined, "", "3", "-1", "x", "1.5"]) assert.equal(levelOfHeader(q, bad), 2, String(bad));
  });
  it("levelOf: a stored priority's level when it is an integer in range, else the lowest; 0 for a queue without levels", () => {
    assert.equal(levelOf(q, 0), 0);
    assert.equal(levelOf(q, 1), 1);
    for (const bad of [undefined, null, 3, -1, 1.5, "1", Number.NaN]) assert.equal(levelOf(q, bad), 2, String(bad));
    assert.equal(levelOf(defineQueue({ name: "plain" }), 1), 0);
  });
  it("levelOfAckSubject: the level of the consumer that delivered a job, with or without a domain in the ack subject", () => {
    const s = q.names.stream;
    assert.equal(levelOfAckSubject(q, `$JS.ACK.${s}.workers-p0.1.7.7.1700000000000000000.3`), 0);
    assert.equal(levelOfAckSubject(q, `$JS.ACK.${s}.workers-p1.1.7.7.1700000000000000000.3`), 1);
    assert.equal(levelOfAckSubject(q, `$JS.ACK.${s}.workers.1.7.7.1700000000000000000.3`), 2);
    assert.equal(levelOfAckSubject(q, `$JS.ACK.hub.ACCHASH.${s}.workers-p1.1.7.7.1700000000000000000.3.tok`), 1);
    for (const bad of ["workers-p2", "workers-p-1", "workers-px", "workers-p01x", "other"]) {
      assert.equal(levelOfAckSubject(q, `$JS.ACK.${s}.${bad}.1.7.7.1700000000000000000.3`), undefined, bad);
    }
    assert.equal(levelOfAckSubject(defineQueue({ name: "plain" }), `$JS.ACK.${s}.workers.1.7.7.1.3`), undefined);
  });
});

describe("group keys", () => {
  const q = defineQueue({ name: "reports", group: { concurrency: 2, rateLimit: { max: 5, perMs: 1000 } } });
  it("any string becomes one subject token and comes back unchanged", () => {
    for (const key of ["tenant-42", "a.b.c", "* >", "ü日本語🙂", "x".repeat(256), " "]) {
      const t = groupToken(q, key);
      assert.match(t, /^[A-Za-z0-9_-]+$/, key);
      assert.equal(groupKeyOf(t), key);
    }
    assert.notEqual(groupToken(q, "a"), groupToken(q, "A"));
  });
  it("bad keys are ConfigErrors naming `group`", () => {
    for (const bad of ["", "x".repeat(257), "\ud800", "a\udc00b", 1, null, {}]) {
      assert.throws(() => groupToken(q, bad), (e: unknown) => e instanceof ConfigError && /`group`/.test(e.message), JSON.stringify(bad));
    }
    assert.throws(() => groupToken(defineQueue({ name: "plain" }), "a"), /has no group limits/);
  });
  it("the limiter streams: one subject per group, per-subject limits, discard new per subject", () => {
    const [c, r] = groupStreamConfigs(q);
    const n = groupNames(q);
    assert.equal(c!.cfg.name, "JETQ_reports_GROUPS");
    assert.deepEqual(c!.cfg.subjects, [`${n.concurrencySubject}.*`]);
    assert.equal(c!.cfg.max_msgs_per_subject, 2);
    assert.equal(c!.cfg.discard_new_per_subject, true);
    assert.equal(c!.cfg.max_age, q.ackWaitMs * 1e6);
    assert.equal(r!.cfg.name, "JETQ_reports_GRATE");
    assert.equal(r!.cfg.max_msgs_per_subject, 5);
    assert.deepEqual(groupStreamConfigs(defineQueue({ name: "plain" })), []);
  });
});

describe("rate limit windows", () => {
  it("windowOfMaxAge reads back the window a limiter stream's max_age was made for", () => {
    for (const perMs of [1, 100, 500, 999, 1000, 1001, 1500, 2000, 60_000, 3_600_000]) {
      assert.equal(windowOfMaxAge(perMs + graceMs({ max: 1, perMs })), perMs, String(perMs));
    }
  });
});
