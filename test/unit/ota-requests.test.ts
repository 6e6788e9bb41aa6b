/**
 * Model-update requests and trial criteria (src/models/ota/requests.ts): valid requests parse
 * to typed values with defaults; invalid ones list every problem and keep the transaction
 * when it is usable, so the error answer can echo it.
 */

import { describe, expect, it } from "vitest";
import {
  TRIAL_DEFAULTS,
  manifestTrial,
  parseCancel,
  parseDeploy,
  parseRollback,
  parseTrial,
} from "../../src/models/ota/requests.js";

const SHA = "A".repeat(64);

describe("deploy requests", () => {
  it("parse with defaults; the hash is lower-cased", () => {
    expect(parseDeploy({ transaction: "t-1", url: "https://x/p.tgz", sha256: SHA, size: 10 })).toEqual({
      ok: true,
      value: {
        transaction: "t-1",
        url: "https://x/p.tgz",
        sha256: "a".repeat(64),
        size: 10,
        allowDowngrade: false,
      },
    });
  });

  it("take a trial: true for the defaults, an object to override, false for none", () => {
    const base = { transaction: "t", url: "http://x/p.tgz", sha256: SHA };
    expect(parseDeploy({ ...base, trial: true })).toMatchObject({
      ok: true,
      value: { trial: TRIAL_DEFAULTS },
    });
    expect(parseDeploy({ ...base, trial: { windows: 7, promote: "manual" } })).toMatchObject({
      ok: true,
      value: { trial: { ...TRIAL_DEFAULTS, windows: 7, promote: "manual" } },
    });
    expect(parseDeploy({ ...base, trial: false })).toMatchObject({ ok: true, value: { trial: false } });
  });

  it("list every problem, with the transaction when it is usable", () => {
    const r = parseDeploy({
      transaction: "t-2",
      url: "file:///etc/passwd",
      sha256: "xyz",
      size: 1.5,
      allowDowngrade: "yes",
      extra: 1,
      trial: { windows: 0, minAgreement: 2, foo: 1 },
    });
    expect(r).toEqual({
      ok: false,
      transaction: "t-2",
      errors: [
        "extra: not a known field (expected: transaction, url, sha256, size, allowDowngrade, trial)",
        "url: must be http: or https:, got file:",
        "sha256: required, the SHA-256 of the .tgz as 64 hex digits",
        "size: must be a positive integer (bytes of the .tgz), got 1.5",
        "allowDowngrade: must be true or false",
        "trial.windows: must be a positive integer, got 0",
        "trial.minAgreement: is a fraction, must be ≤ 1, got 2",
        "trial.foo: not a known criterion (expected: windows, durationMs, promote, minAgreement, absTolerance, relTolerance, maxErrorRate, maxNonFiniteRate, maxLatencyRatio, latencyToleranceMs)",
      ],
    });
    expect(parseDeploy("nope")).toEqual({
      ok: false,
      transaction: null,
      errors: ["the request must be a JSON object"],
    });
    expect(parseDeploy({ url: "http://x/y", sha256: SHA })).toMatchObject({ ok: false, transaction: null });
  });
});

describe("rollback, cancel and trial criteria", () => {
  it("rollback needs a package name; cancel needs a target or a name", () => {
    expect(parseRollback({ transaction: "r", name: "pump-health" })).toEqual({
      ok: true,
      value: { transaction: "r", name: "pump-health" },
    });
    expect(parseRollback({ transaction: "r", name: "../x" })).toMatchObject({
      ok: false,
      errors: ['name: not a package name, got "../x"'],
    });
    expect(parseCancel({ transaction: "c" })).toMatchObject({
      ok: false,
      errors: ["target or name: say which deploy or trial to cancel"],
    });
    expect(parseCancel({ transaction: "c", target: "t-1" })).toEqual({
      ok: true,
      value: { transaction: "c", target: "t-1" },
    });
  });

  it("a package's own trial comes from its manifest; a bad one is reported", () => {
    expect(manifestTrial(Buffer.from(JSON.stringify({ name: "x" })))).toEqual({ errors: [] });
    expect(manifestTrial(Buffer.from(JSON.stringify({ trial: { windows: 20 } })))).toEqual({
      trial: { ...TRIAL_DEFAULTS, windows: 20 },
      errors: [],
    });
    expect(manifestTrial(Buffer.from(JSON.stringify({ trial: "soon" })))).toEqual({
      errors: ["trial: must be true, false or an object of criteria"],
    });
    expect(parseTrial({ promote: "later" }, "trial")).toBeUndefined();
  });
});
