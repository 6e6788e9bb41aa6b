/**
 * Probation (src/models/ota/probation.ts): the reasons that roll a newly active version back,
 * and when probation has passed.
 */

import { describe, expect, it } from "vitest";
import { Probation, type ProbationLimits } from "../../src/models/ota/probation.js";

const LIMITS: ProbationLimits = {
  windows: 10,
  durationMs: 60_000,
  maxErrors: 1,
  maxNonFinite: 0,
  latencyFactor: 20,
  minLatencyMs: 50,
  slowBatches: 2,
};

describe("probation", () => {
  it("passes after its windows or its time", () => {
    const p = new Probation(LIMITS, 0.1, 0);
    expect(p.batch(9, 0, 0.5)).toBeUndefined();
    expect(p.done(1)).toBe(false);
    expect(p.batch(1, 0, 0.5)).toBeUndefined();
    expect(p.done(1)).toBe(true);
    expect(new Probation(LIMITS, 0.1, 0).done(60_000)).toBe(true);
  });

  it("non-finite outputs and errors beyond their allowance give a reason, once and for good", () => {
    expect(new Probation(LIMITS, 0.1, 0).batch(3, 1, 1)).toBe(
      "1 window(s) with NaN or infinite outputs in probation (allowed: 0)",
    );
    const p = new Probation(LIMITS, 0.1, 0);
    expect(p.failed(1, "boom")).toBeUndefined();
    expect(p.failed(2, "bad\n  shape")).toBe(
      "inference failed on 3 window(s) in probation (allowed: 1): bad shape",
    );
    expect(p.batch(1, 0, 0.1)).toMatch(/^inference failed/);
    expect(p.done(1e9)).toBe(false);
  });

  it("slow means beyond both the factor and the floor, for several batches in a row", () => {
    const p = new Probation(LIMITS, 1, 0); // bound: 20 ms per window, floor 50 ms
    expect(p.batch(4, 0, 70)).toBeUndefined(); // under 4 × 20 ms
    expect(p.batch(1, 0, 45)).toBeUndefined(); // over 20 ms, under the floor
    expect(p.batch(1, 0, 60)).toBeUndefined(); // slow: one in a row
    expect(p.batch(1, 0, 1)).toBeUndefined(); // the run breaks
    expect(p.batch(1, 0, 60)).toBeUndefined();
    expect(p.batch(2, 0, 90)).toMatch(
      /^2 batches in a row took longer than 20× the self-test time \(last: 90\.0 ms for 2 window\(s\); self-test 1\.000 ms per window\)$/,
    );
  });
});
