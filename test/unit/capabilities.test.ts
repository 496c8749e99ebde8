import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { atLeast, capabilitiesOf, parseVersion } from "../../src/server/capabilities.ts";

describe("server capabilities (version → features)", () => {
  it("reads versions as servers report them, and nothing else", () => {
    assert.deepEqual(parseVersion("2.9.10"), { major: 2, minor: 9, patch: 10, pre: undefined });
    assert.deepEqual(parseVersion("2.11.0-RC.2"), { major: 2, minor: 11, patch: 0, pre: "RC.2" });
    assert.deepEqual(parseVersion("v2.12.1+build.7"), { major: 2, minor: 12, patch: 1, pre: undefined });
    for (const bad of [undefined, "", "2.10", "2.x.1", "latest", "2.10.0 beta", "-1.2.3"]) {
      assert.equal(parseVersion(bad), undefined, String(bad));
    }
  });

  it("compares major, then minor, then patch; a pre-release counts as its release", () => {
    const v = parseVersion("2.10.4")!;
    assert.ok(atLeast(v, 2, 10, 4));
    assert.ok(atLeast(v, 2, 9, 99));
    assert.ok(atLeast(v, 1, 99));
    assert.ok(!atLeast(v, 2, 10, 5));
    assert.ok(!atLeast(v, 2, 11));
    assert.ok(!atLeast(v, 3, 0));
    assert.ok(atLeast(parseVersion("2.11.0-RC.1"), 2, 11));
    assert.ok(!atLeast(undefined, 0, 0));
  });

  it("gives the 2.9 baseline nothing and each release its features", () => {
    const none = {
      consumerCreateAction: false,
      multipleFilters: false,
      syncInterval: false,
      termWithReason: false,
      perMessageTtl: false,
      priorityGroups: false,
      consumerPause: false,
      scheduledMessages: false,
      atomicBatchPublish: false,
      cronSchedules: false,
    };
    const features = (version: string | undefined) => {
      const { version: _v, ...flags } = capabilitiesOf(version);
      return flags;
    };
    assert.deepEqual(features("2.9.10"), none);
    assert.deepEqual(features(undefined), none, "an unknown server gets the paths that work everywhere");
    assert.deepEqual(features("garbage"), none);
    assert.deepEqual(features("2.10.0"), { ...none, consumerCreateAction: true, multipleFilters: true, syncInterval: true });
    assert.deepEqual(features("2.10.4"), { ...none, consumerCreateAction: true, multipleFilters: true, syncInterval: true, termWithReason: true });
    const v211 = { ...none, consumerCreateAction: true, multipleFilters: true, syncInterval: true, termWithReason: true, perMessageTtl: true, priorityGroups: true, consumerPause: true };
    assert.deepEqual(features("2.11.0"), v211);
    const v212 = { ...v211, scheduledMessages: true, atomicBatchPublish: true };
    assert.deepEqual(features("2.12.1"), v212);
    assert.deepEqual(features("2.13.5"), v212);
    assert.deepEqual(features("2.14.0"), { ...v212, cronSchedules: true });
    assert.deepEqual(features("3.0.0"), { ...v212, cronSchedules: true });
    assert.ok(Object.isFrozen(capabilitiesOf("2.11.0")));
  });
});
