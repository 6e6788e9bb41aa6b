/**
 * Simulated turbofan engines for `vigil demo`: a degradation generator whose few parameters
 * were fitted to NASA C-MAPSS FD001 training engines (training/cmapss_generator.py writes
 * them to turbofan-params.ts; no data row is stored), so that the shipped `turbofan-rul`
 * model, trained on the real data, sees readings it recognises.
 *
 * Contract:
 * - Pure and seeded: `engineRow(engine, k)` and `engineTruth(engine, k)` depend only on the
 *   seed, the parameters and the global cycle index `k` (any integer, any order, same answer
 *   every time). No clock, no I/O; time is the caller's (`cycleMs` per cycle).
 * - An engine lives through successive lives (a run to failure, then an overhaul at once):
 *   life i lasts T_i cycles, T_i ~ lognormal(lifeLogMean, lifeLogSd) within [lifeMin, lifeMax];
 *   life 0 is already `initialWear` × T_0 cycles old at k = 0, so a fleet does not fail in step.
 * - A row carries every C-MAPSS column but the unit: `cycle`, the engine's age counter t = 1..T
 *   (operating cycles since it was new; an overhaul at failure makes it new again, and the
 *   counter restarts at 1), then op1..op3 and s1..s21, each
 *     mean + offset_i + degradation · e^(−(T − t)/tau) + drift · z_i · (t/T − ½) + noise · ε
 *   rounded to the column's recorded decimals, where offset_i ~ N(0, offsetSd²) and
 *   z_i ~ N(0, 1) are drawn per life, ε per (cycle, column).
 * - `engineTruth` gives what a sensor cannot: the life, its length and the true RUL (T − t,
 *   0 at the last cycle before failure, as in the C-MAPSS training files), and t again.
 * - The only mutable state is a private memo of life boundaries; it never changes answers.
 */

import { hashNormal, hashUniform } from "./plant-physics.js";

export interface TurbofanColumn {
  name: string;
  mean: number;
  degradation: number;
  offsetSd: number;
  drift: number;
  noise: number;
  decimals: number;
}

export interface TurbofanParams {
  source: string;
  data: Record<string, string>;
  tauCycles: number;
  meanR2Informative: number;
  lifeLogMean: number;
  lifeLogSd: number;
  lifeMin: number;
  lifeMax: number;
  columns: readonly TurbofanColumn[];
}

export interface TurbofanOptions {
  /** Fraction of life 0 already used at k = 0, in [0, 1). Default: drawn in [0.2, 0.95). */
  initialWear?: number;
  /** Multiplies every random term: offsets, drift and noise (0: the mean trajectory). Default 1. */
  noiseScale?: number;
}

interface Life {
  index: number;
  /** Global cycle index of the life's first cycle (t = 1). */
  firstK: number;
  cycles: number;
}

export interface Turbofan {
  readonly seed: number;
  readonly params: TurbofanParams;
  readonly initialWear: number;
  readonly noiseScale: number;
  readonly lives: Life[];
}

export interface TurbofanTruth {
  lifeIndex: number;
  /** Cycle within the life, 1..cycles. */
  cycle: number;
  cycles: number;
  /** True remaining useful life in cycles: cycles − cycle. */
  rul: number;
}

const SALT = { wear: 11, life: 12, offset: 13, factor: 14, noise: 200 } as const;

export function createTurbofan(
  seed: number,
  params: TurbofanParams,
  options: TurbofanOptions = {},
): Turbofan {
  const initialWear = options.initialWear ?? 0.2 + 0.75 * hashUniform(seed, SALT.wear);
  if (!(initialWear >= 0 && initialWear < 1)) throw new RangeError("initialWear must be in [0, 1)");
  return { seed, params, initialWear, noiseScale: options.noiseScale ?? 1, lives: [] };
}

function lifeLength(e: Turbofan, index: number): number {
  const p = e.params;
  const z = hashNormal(e.seed, SALT.life, index, 0);
  const t = Math.round(Math.exp(p.lifeLogMean + p.lifeLogSd * z));
  return Math.min(p.lifeMax, Math.max(p.lifeMin, t));
}

function lifeAt(e: Turbofan, k: number): Life {
  const lives = e.lives;
  if (lives.length === 0) {
    const cycles = lifeLength(e, 0);
    lives.push({ index: 0, firstK: -Math.floor(e.initialWear * cycles), cycles });
  }
  const first = lives[0] as Life;
  if (k < first.firstK) return first; // before the observed history: the first life, extrapolated
  let last = lives[lives.length - 1] as Life;
  while (k >= last.firstK + last.cycles) {
    last = {
      index: last.index + 1,
      firstK: last.firstK + last.cycles,
      cycles: lifeLength(e, last.index + 1),
    };
    lives.push(last);
  }
  let lo = 0;
  let hi = lives.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((lives[mid] as Life).firstK <= k) lo = mid;
    else hi = mid - 1;
  }
  return lives[lo] as Life;
}

export function engineTruth(e: Turbofan, k: number): TurbofanTruth {
  const life = lifeAt(e, k);
  const cycle = Math.max(1, k - life.firstK + 1);
  return { lifeIndex: life.index, cycle, cycles: life.cycles, rul: life.cycles - cycle };
}

function roundTo(v: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(v * f) / f;
}

/** The row of global cycle `k`: the age counter and every column's value, named as in the C-MAPSS files. */
export function engineRow(e: Turbofan, k: number): Record<string, number> {
  const life = lifeAt(e, k);
  const cycle = Math.max(1, k - life.firstK + 1);
  const p = e.params;
  const wear = Math.exp(-(life.cycles - cycle) / p.tauCycles);
  const factor = hashNormal(e.seed, SALT.factor, life.index, 0);
  const phase = cycle / life.cycles - 0.5;
  // Split k into two 32-bit halves so that far-apart cycles never share a noise draw.
  const lo = k | 0;
  const hi = Math.floor(k / 4294967296);
  const values: Record<string, number> = { cycle };
  p.columns.forEach((c, j) => {
    const offset = c.offsetSd * hashNormal(e.seed, SALT.offset + j * 1000, life.index, 1);
    const noise = e.noiseScale * c.noise * hashNormal(e.seed, SALT.noise + j, lo, hi);
    const v =
      c.mean + e.noiseScale * offset + c.degradation * wear + e.noiseScale * c.drift * factor * phase + noise;
    values[c.name] = roundTo(v, c.decimals);
  });
  return values;
}
