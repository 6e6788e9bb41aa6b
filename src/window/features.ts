/**
 * Aggregate features over the values of one signal in one window (contract §4).
 *
 * Input: `values`, the n >= 1 values of one signal in window order (float64, finite).
 * Output: float64 numbers; the input is never mutated. Pure and synchronous.
 * Semantics, exactly as the contract fixes them:
 *   mean; std = population standard deviation (divide by n); min; max; p2p = max - min;
 *   rms = sqrt(mean of squares); slope = least-squares slope of the values against the
 *   index 0..n-1 (0 when n = 1); skew and kurtosis = population third and fourth
 *   standardised moments, kurtosis minus 3 (both 0 when std = 0); crest = max|x| / rms
 *   (0 when rms = 0).
 * "std = 0" means: all n values are equal (or the squared deviations underflow to 0). No
 * relative threshold is applied, so nearly-constant data keep their true moments, and exact
 * constants give exactly mean = the constant, std = p2p = slope = skew = kurtosis = 0,
 * rms = |constant| and crest = 1 (0 for all zeros).
 * Numerics: the values are scaled by a power of two near max|x| (exact, so results equal the
 * unscaled computation in the normal range, but squares and fourth powers cannot overflow or
 * underflow); the mean is a compensated sum refined by a second pass (kept to about twice
 * float64 precision), and every moment is taken about that refined mean.
 * Failure: an empty `values` or an unknown function name throws a `VigilError` (a
 * programming error: windows are never empty and manifests are validated before use).
 */

import { VigilError } from "../errors.js";
import { AGGREGATE_FUNCTIONS, type AggregateFn } from "../models/manifest-types.js";

/** Every aggregate of one signal's window, computed together (they share passes over the data). */
export interface Summary {
  n: number;
  mean: number;
  std: number;
  min: number;
  max: number;
  p2p: number;
  rms: number;
  slope: number;
  skew: number;
  kurtosis: number;
  crest: number;
}

/** Table of every aggregate function the contract names; keys are the manifest's spelling. */
export const AGGREGATE_TABLE: Readonly<Record<AggregateFn, (s: Summary) => number>> = {
  mean: (s) => s.mean,
  std: (s) => s.std,
  min: (s) => s.min,
  max: (s) => s.max,
  p2p: (s) => s.p2p,
  rms: (s) => s.rms,
  slope: (s) => s.slope,
  skew: (s) => s.skew,
  kurtosis: (s) => s.kurtosis,
  crest: (s) => s.crest,
};

/** All aggregate function names, in a fixed order (the manifest's list). */
export { AGGREGATE_FUNCTIONS };

export function isAggregateFn(name: string): name is AggregateFn {
  return Object.prototype.hasOwnProperty.call(AGGREGATE_TABLE, name);
}

/** The largest power of two not above `x` (x > 0, finite); dividing by it is exact. */
function powerOfTwoBelow(x: number): number {
  const e = Math.min(1023, Math.max(-1074, Math.floor(Math.log2(x))));
  return 2 ** e;
}

/** Computes every aggregate of `values` (see the module header for the exact definitions). */
export function summarize(values: readonly number[]): Summary {
  const n = values.length;
  if (n === 0) throw new VigilError("WINDOW_EMPTY", "cannot aggregate an empty window");

  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = values[i] as number;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  const maxAbs = Math.max(Math.abs(min), Math.abs(max));

  if (min === max) {
    // Exact constants: no rounding anywhere, so skew/kurtosis are exactly 0 by the contract.
    return {
      n,
      mean: min,
      std: 0,
      min,
      max,
      p2p: 0,
      rms: maxAbs,
      slope: 0,
      skew: 0,
      kurtosis: 0,
      crest: maxAbs === 0 ? 0 : 1,
    };
  }

  const scale = powerOfTwoBelow(maxAbs);

  // Pass 1: compensated (Neumaier) sums of y = x / scale and of y².
  let sum = 0;
  let sumC = 0;
  let sq = 0;
  let sqC = 0;
  for (let i = 0; i < n; i++) {
    const y = (values[i] as number) / scale;
    const t = sum + y;
    sumC += Math.abs(sum) >= Math.abs(y) ? sum - t + y : y - t + sum;
    sum = t;
    const y2 = y * y;
    const u = sq + y2;
    sqC += sq >= y2 ? sq - u + y2 : y2 - u + sq;
    sq = u;
  }
  const meanHi = (sum + sumC) / n;

  // Pass 2: the mean residual; the mean is kept as meanHi + meanLo (more than float64
  // precision), so that deviations from it are exact enough for nearly-constant data.
  let res = 0;
  let resC = 0;
  for (let i = 0; i < n; i++) {
    const d = (values[i] as number) / scale - meanHi;
    const t = res + d;
    resC += Math.abs(res) >= Math.abs(d) ? res - t + d : d - t + res;
    res = t;
  }
  const meanLo = (res + resC) / n;

  // Pass 3: central moments and the slope numerator, about the refined mean.
  const iMean = (n - 1) / 2;
  let m2 = 0;
  let m3 = 0;
  let m4 = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    const d = (values[i] as number) / scale - meanHi - meanLo;
    const d2 = d * d;
    m2 += d2;
    m3 += d2 * d;
    m4 += d2 * d2;
    sxy += (i - iMean) * d;
  }

  const variance = m2 / n;
  const stdY = Math.sqrt(variance);
  let skew = 0;
  let kurtosis = 0;
  if (variance > 0) {
    skew = m3 / n / (variance * stdY);
    kurtosis = m4 / n / (variance * variance) - 3;
  }
  // Σ(i − mean(i))² over i = 0..n−1 is n(n² − 1)/12.
  const slopeY = n > 1 ? sxy / ((n * (n * n - 1)) / 12) : 0;
  const rms = Math.sqrt((sq + sqC) / n) * scale;

  return {
    n,
    mean: (meanHi + meanLo) * scale,
    std: stdY * scale,
    min,
    max,
    p2p: max - min,
    rms,
    slope: slopeY * scale,
    skew,
    kurtosis,
    crest: rms > 0 ? maxAbs / rms : 0,
  };
}

/** One aggregate of `values`. For several functions over the same values use `aggregateMany`. */
export function aggregate(fn: AggregateFn, values: readonly number[]): number {
  return pick(fn, summarize(values));
}

/** The aggregates `fns` of `values`, in `fns` order (one summary pass shared by all). */
export function aggregateMany(fns: readonly AggregateFn[], values: readonly number[]): number[] {
  const s = summarize(values);
  return fns.map((fn) => pick(fn, s));
}

function pick(fn: AggregateFn, s: Summary): number {
  const get = isAggregateFn(fn) ? AGGREGATE_TABLE[fn] : undefined;
  if (get === undefined)
    throw new VigilError("UNKNOWN_AGGREGATE", `unknown aggregate function "${String(fn)}"`);
  return get(s);
}
