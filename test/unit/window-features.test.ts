import { describe, expect, it } from "vitest";
import { VigilError } from "../../src/errors.js";
import type { AggregateFn } from "../../src/models/manifest-types.js";
import {
  AGGREGATE_FUNCTIONS,
  aggregate,
  aggregateMany,
  isAggregateFn,
  summarize,
} from "../../src/window/features.js";

/** Expected values of every function, computed by hand (comments show the working). */
type Expected = Record<AggregateFn, number>;

function expectAll(values: number[], expected: Expected, digits = 12): void {
  for (const fn of AGGREGATE_FUNCTIONS) {
    expect(aggregate(fn, values), fn).toBeCloseTo(expected[fn], digits);
  }
}

describe("aggregate functions", () => {
  it("lists all ten contract functions", () => {
    expect([...AGGREGATE_FUNCTIONS].sort()).toEqual(
      ["crest", "kurtosis", "max", "mean", "min", "p2p", "rms", "skew", "slope", "std"].sort(),
    );
    expect(isAggregateFn("rms")).toBe(true);
    expect(isAggregateFn("median")).toBe(false);
    expect(isAggregateFn("toString")).toBe(false);
  });

  it("[1, 2, 3, 4]", () => {
    // mean 2.5; deviations ±0.5, ±1.5; Σd² = 5 → var 1.25; Σd⁴ = 2·5.0625 + 2·0.0625 = 10.25
    // kurtosis = (10.25/4) / 1.25² − 3 = 1.64 − 3; Σx² = 30 → rms √7.5; slope 1
    expectAll([1, 2, 3, 4], {
      mean: 2.5,
      std: Math.sqrt(1.25),
      min: 1,
      max: 4,
      p2p: 3,
      rms: Math.sqrt(7.5),
      slope: 1,
      skew: 0,
      kurtosis: -1.36,
      crest: 4 / Math.sqrt(7.5),
    });
  });

  it("[0, 0, 0, 4]: a skewed window", () => {
    // mean 1; d = −1, −1, −1, 3; var = 12/4 = 3; m3 = 24/4 = 6 → skew 6/3^1.5 = 2/√3
    // m4 = 84/4 = 21 → kurtosis 21/9 − 3 = −2/3; rms = √(16/4) = 2; crest 4/2
    // slope: Σ(i − 1.5)·x = 1.5·4 = 6, Σ(i − 1.5)² = 5 → 1.2
    expectAll([0, 0, 0, 4], {
      mean: 1,
      std: Math.sqrt(3),
      min: 0,
      max: 4,
      p2p: 4,
      rms: 2,
      slope: 1.2,
      skew: 2 / Math.sqrt(3),
      kurtosis: -2 / 3,
      crest: 2,
    });
  });

  it("[2, −1, 0, 5, −6]: negative values", () => {
    // mean 0; Σx² = 66 → var = rms² = 13.2; Σx³ = 8 − 1 + 125 − 216 = −84; Σx⁴ = 1938
    // slope: Σ(i − 2)·x = −4 + 1 + 0 + 5 − 12 = −10, Σ(i − 2)² = 10 → −1
    expectAll([2, -1, 0, 5, -6], {
      mean: 0,
      std: Math.sqrt(13.2),
      min: -6,
      max: 5,
      p2p: 11,
      rms: Math.sqrt(13.2),
      slope: -1,
      skew: -84 / 5 / Math.pow(13.2, 1.5),
      kurtosis: 1938 / 5 / (13.2 * 13.2) - 3,
      crest: 6 / Math.sqrt(13.2),
    });
  });

  it("all negative: [−4, −2, −3]", () => {
    // mean −3; d = −1, 1, 0; var 2/3; m3 = 0; m4 = 2/3 → kurtosis (2/3)/(4/9) − 3 = −1.5
    // Σx² = 29 → rms √(29/3); max|x| = 4; slope: Σ(i − 1)·x = 4 − 3 = 1, Σ(i − 1)² = 2 → 0.5
    expectAll([-4, -2, -3], {
      mean: -3,
      std: Math.sqrt(2 / 3),
      min: -4,
      max: -2,
      p2p: 2,
      rms: Math.sqrt(29 / 3),
      slope: 0.5,
      skew: 0,
      kurtosis: -1.5,
      crest: 4 / Math.sqrt(29 / 3),
    });
  });

  it("n = 2: [1, 3]", () => {
    expectAll([1, 3], {
      mean: 2,
      std: 1,
      min: 1,
      max: 3,
      p2p: 2,
      rms: Math.sqrt(5),
      slope: 2,
      skew: 0,
      kurtosis: -2,
      crest: 3 / Math.sqrt(5),
    });
  });

  it("n = 1 gives slope, std, skew, kurtosis exactly 0", () => {
    const s = summarize([-7]);
    expect(s).toEqual({
      n: 1,
      mean: -7,
      std: 0,
      min: -7,
      max: -7,
      p2p: 0,
      rms: 7,
      slope: 0,
      skew: 0,
      kurtosis: 0,
      crest: 1,
    });
  });

  it("constant input gives exact results (no rounding residue)", () => {
    // 0.1 × 3 is not exactly 0.3 in float64: a naive sum/n mean would leave tiny deviations.
    const s = summarize([0.1, 0.1, 0.1]);
    expect(s.mean).toBe(0.1);
    expect(s.std).toBe(0);
    expect(s.skew).toBe(0);
    expect(s.kurtosis).toBe(0);
    expect(s.slope).toBe(0);
    expect(s.p2p).toBe(0);
    expect(s.rms).toBe(0.1);
    expect(s.crest).toBe(1);
    const neg = summarize([-2.5, -2.5, -2.5, -2.5]);
    expect([neg.mean, neg.rms, neg.crest, neg.std]).toEqual([-2.5, 2.5, 1, 0]);
  });

  it("all zeros: rms 0 so crest 0", () => {
    const s = summarize([0, 0, 0]);
    expect([s.mean, s.std, s.rms, s.crest, s.skew, s.kurtosis]).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it("keeps full precision on a large offset", () => {
    const big = [1, 2, 3, 4].map((x) => 1e9 + x);
    const s = summarize(big);
    expect(s.mean).toBe(1e9 + 2.5);
    expect(s.std).toBeCloseTo(Math.sqrt(1.25), 9);
    expect(s.slope).toBeCloseTo(1, 9);
    expect(s.skew).toBeCloseTo(0, 9);
    expect(s.kurtosis).toBeCloseTo(-1.36, 9);
  });

  it("nearly-constant data keep their true moments (no threshold)", () => {
    // Two values one ulp apart: the true mean 1 + 2⁻⁵³ is not a float64, but the moments are
    // taken about the extended-precision mean: std 2⁻⁵³, skew 0, kurtosis −2 (as for any pair).
    const s = summarize([1, 1 + 2 ** -52]);
    expect(s.std).toBe(2 ** -53);
    expect(s.skew).toBe(0);
    expect(s.kurtosis).toBe(-2);
    expect(s.slope).toBe(2 ** -52);
  });

  it("does not overflow or underflow on extreme magnitudes", () => {
    const huge = summarize([1e300, -1e300, 1e300, -1e300]);
    expect(huge.rms / 1e300).toBeCloseTo(1, 12);
    expect(huge.std / 1e300).toBeCloseTo(1, 12);
    expect(huge.kurtosis).toBeCloseTo(-2, 12);
    expect(huge.crest).toBeCloseTo(1, 12);
    const tiny = summarize([0, 0, 0, 4e-100]);
    expect(tiny.skew).toBeCloseTo(2 / Math.sqrt(3), 12);
    expect(tiny.kurtosis).toBeCloseTo(-2 / 3, 12);
    expect(tiny.std / 1e-100).toBeCloseTo(Math.sqrt(3), 12);
  });

  it("aggregateMany returns values in the requested order", () => {
    expect(aggregateMany(["max", "mean", "min", "max"], [1, 2, 3, 4])).toEqual([4, 2.5, 1, 4]);
  });

  it("rejects an empty window and unknown function names", () => {
    expect(() => aggregate("mean", [])).toThrow(VigilError);
    expect(() => aggregate("median" as AggregateFn, [1])).toThrow(/unknown aggregate/);
  });

  it("does not mutate its input", () => {
    const v = [3, 1, 2];
    summarize(v);
    expect(v).toEqual([3, 1, 2]);
  });
});
