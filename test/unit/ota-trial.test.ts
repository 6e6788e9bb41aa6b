/**
 * The shadow-trial comparison (src/models/ota/trial.ts): windows pair on (asset, window end)
 * whichever side reports first; numbers agree within the tolerances, labels when equal, arrays
 * element by element, a non-finite value never; the verdict names every criterion missed.
 */

import { describe, expect, it } from "vitest";
import { TRIAL_DEFAULTS, type TrialCriteria } from "../../src/models/ota/requests.js";
import { TrialComparison } from "../../src/models/ota/trial.js";

const w = (asset: string, end: number): { asset: string; window: { windowEndMs: number } } => ({
  asset,
  window: { windowEndMs: end },
});

function comparison(criteria: Partial<TrialCriteria> = {}, shared = ["rul"]): TrialComparison {
  return new TrialComparison(
    { ...TRIAL_DEFAULTS, ...criteria },
    { active: "m@1", candidate: "m@2" },
    shared,
    1_000,
  );
}

describe("trial comparison", () => {
  it("pairs windows whichever side comes first and measures agreement per output", () => {
    const c = comparison({ windows: 3 });
    c.candidate([w("a", 1), w("a", 2)], [{ rul: 10.1 }, { rul: 30 }], 0.2);
    c.active([w("a", 1), w("a", 2), w("a", 3)], [{ rul: 10 }, { rul: 20 }, { rul: 5 }], 0.1);
    expect(c.done(1_000)).toBe(false);
    c.candidate([w("a", 3)], [{ rul: 5 }], 0.1);
    expect(c.done(1_000)).toBe(true);
    const r = c.report(1_500);
    expect(r).toMatchObject({
      compared: 3,
      durationMs: 500,
      outputs: { rul: { compared: 3, agreed: 2, maxAbsDiff: 10 } },
    });
    expect(r.agreement).toBeCloseTo(2 / 3, 9);
    expect(r.outputs.rul?.meanAbsDiff).toBeCloseTo(10.1 / 3, 9);
    expect(r.passed).toBe(false);
    expect(r.reasons).toEqual(["agreement 0.6667 is below minAgreement 0.9 over 3 windows"]);
  });

  it("a window counts once both versions have finished it, whichever comes first; N windows asked, N judged", () => {
    // The candidate runs ahead (separate runners, separate batches): four of its windows are
    // in, the serving version's fourth is still being inferred. Not done, nothing judged on
    // one side alone.
    const c = comparison({ windows: 4 });
    c.active([w("a", 0)], [{ rul: 7 }], 0.1); // emitted before the trial: never pairs
    c.candidate(
      [w("a", 1), w("a", 2), w("a", 3), w("a", 4)],
      [{ rul: 1 }, { rul: 2 }, { rul: 3 }, { rul: 4 }],
      0.4,
    );
    c.active([w("a", 1), w("a", 2), w("a", 3)], [{ rul: 1 }, { rul: 2 }, { rul: 3 }], 0.3);
    expect(c.windows).toBe(3);
    expect(c.done(1_000)).toBe(false);
    // The serving version's fourth arrives with a fifth: the fourth completes the trial, the
    // fifth (and anything later, of either side) is beyond it.
    c.active([w("a", 4), w("a", 5)], [{ rul: 4 }, { rul: 5 }], 0.2);
    expect(c.done(1_000)).toBe(true);
    c.candidate([w("a", 5)], [{ rul: 500 }], 0.1);
    c.candidateFailed([w("a", 6)]);
    c.activeFailed([w("a", 6)]);
    expect(c.report(1_200)).toMatchObject({
      windows: 4,
      compared: 4,
      agreement: 1,
      activeStats: { windows: 4, errors: 0 },
      candidateStats: { windows: 4, errors: 0 },
      outputs: { rul: { compared: 4, agreed: 4, maxAbsDiff: 0 } },
      passed: true,
    });
  });

  it("a failure on either side judges the window without comparing it", () => {
    const c = comparison({ windows: 3, maxErrorRate: 1 });
    c.candidateFailed([w("a", 1)]);
    expect(c.windows).toBe(0);
    c.active([w("a", 1), w("a", 2), w("a", 3)], [{ rul: 1 }, { rul: 2 }, { rul: 3 }], 0.3);
    c.activeFailed([w("a", 4)]);
    c.candidate([w("a", 2)], [{ rul: 2 }], 0.1);
    expect(c.done(1_000)).toBe(false);
    c.candidate([w("a", 3)], [{ rul: 3 }], 0.1);
    expect(c.done(1_000)).toBe(true);
    expect(c.report(1_000)).toMatchObject({
      windows: 3,
      compared: 2,
      agreement: 1,
      activeStats: { windows: 3, errors: 0 },
      candidateStats: { windows: 3, errors: 1 },
    });
    // The serving version failing is judged too; the candidate is not blamed for it.
    const d = comparison({ windows: 1 });
    d.candidate([w("a", 1)], [{ rul: 1 }], 0.1);
    d.activeFailed([w("a", 1)]);
    expect(d.done(1_000)).toBe(true);
    expect(d.report(1_000)).toMatchObject({
      windows: 1,
      compared: 0,
      activeStats: { errors: 1 },
      candidateStats: { errors: 0, errorRate: 0 },
      reasons: ["no window was predicted by both versions"],
    });
  });

  it("labels must be equal, arrays agree element by element, a NaN never agrees and counts", () => {
    const c = comparison({}, ["state", "probs", "rul"]);
    c.active(
      [w("a", 1), w("b", 1)],
      [
        { state: "ok", probs: [0.2, 0.8], rul: 1 },
        { state: "ok", probs: [0.5, 0.5], rul: 1 },
      ],
      1,
    );
    c.candidate(
      [w("a", 1), w("b", 1)],
      [
        { state: "ok", probs: [0.2, 0.8], rul: 1 },
        { state: "worn", probs: [0.5, 0.9], rul: null },
      ],
      1,
    );
    const r = c.report(1_000);
    expect(r.outputs).toMatchObject({ state: { agreed: 1 }, probs: { agreed: 1 }, rul: { agreed: 1 } });
    expect(r.agreement).toBe(0.5);
    expect(r.candidateStats.nonFinite).toBe(1);
    expect(r.reasons).toContain("candidate gave NaN/Inf on 1 of 2 windows (rate 0.5 > maxNonFiniteRate 0)");
  });

  it("errors, slowness beyond the noise floor, and nothing to compare are reasons; time ends a trial", () => {
    const slow = comparison({ maxErrorRate: 0.5, maxLatencyRatio: 2, latencyToleranceMs: 1 });
    slow.active([w("a", 1), w("a", 2)], [{ rul: 1 }, { rul: 2 }], 1);
    slow.candidate([w("a", 1)], [{ rul: 1 }], 5);
    slow.candidateFailed([w("a", 2)]);
    const r = slow.report(2_000);
    expect(r.reasons).toEqual(["candidate is 10× slower per window (maxLatencyRatio 2)"]);
    expect(r.candidateStats).toMatchObject({ errors: 1, windows: 2, errorRate: 0.5 });
    // Ten times slower but within a millisecond: timer noise, not a reason.
    const fast = comparison({ maxLatencyRatio: 2, latencyToleranceMs: 1 });
    fast.active([w("a", 1)], [{ rul: 1 }], 0.01);
    fast.candidate([w("a", 1)], [{ rul: 1 }], 0.1);
    expect(fast.report(1_000)).toMatchObject({ passed: true, reasons: [] });
    const none = comparison({ durationMs: 60_000 }, []);
    expect(none.report(1_000).reasons).toEqual([
      "the two versions have no output name in common, so nothing can be compared",
    ]);
    expect(comparison({ durationMs: 60_000 }).report(1_000).reasons).toEqual([
      "no window was predicted by both versions",
    ]);
    expect(none.done(60_999)).toBe(false);
    expect(none.done(61_000)).toBe(true);
  });
});
