/**
 * Remaining-useful-life metrics for C-MAPSS-style test sets (pure).
 *
 * Contract: the test set's truth is one number per engine (`RUL_FD00x.txt`: line i holds the
 * true RUL after the last recorded cycle of unit i + 1). The evaluated prediction of an engine
 * is the one of its *last* window (the largest window end). `rmse` and `phm08Score` take
 * predictions and truths in the same order; the PHM08 score sums e^(−d/13) − 1 for early
 * (d = predicted − true < 0) and e^(d/10) − 1 for late predictions, so lateness costs more.
 * `scoreEngines` reports engines without a prediction (e.g. shorter than the window) by unit
 * and leaves them out of the metrics, never silently.
 */

export function rmse(pred: readonly number[], truth: readonly number[]): number {
  if (pred.length !== truth.length) throw new RangeError("rmse: arrays differ in length");
  if (pred.length === 0) return NaN;
  let sum = 0;
  for (let i = 0; i < pred.length; i++) {
    const d = (pred[i] as number) - (truth[i] as number);
    sum += d * d;
  }
  return Math.sqrt(sum / pred.length);
}

export function phm08Score(pred: readonly number[], truth: readonly number[]): number {
  if (pred.length !== truth.length) throw new RangeError("phm08Score: arrays differ in length");
  let sum = 0;
  for (let i = 0; i < pred.length; i++) {
    const d = (pred[i] as number) - (truth[i] as number);
    sum += d < 0 ? Math.exp(-d / 13) - 1 : Math.exp(d / 10) - 1;
  }
  return sum;
}

/** `RUL_FD00x.txt`: one number per non-empty line; throws on anything else. */
export function parseRulFile(text: string): number[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .map((l, i) => {
      const v = Number(l);
      if (!Number.isFinite(v)) throw new RangeError(`RUL file line ${i + 1}: not a number: "${l}"`);
      return v;
    });
}

/** `engine-<unit>` -> unit, or undefined for any other asset name. */
export function engineUnit(asset: string): number | undefined {
  const m = /^engine-(\d+)$/.exec(asset);
  return m ? Number(m[1]) : undefined;
}

export interface WindowPrediction {
  asset: string;
  windowEnd: number;
  value: number;
}

/** The prediction of each engine's last window (largest `windowEnd`), by unit. */
export function lastPerEngine(preds: readonly WindowPrediction[]): Map<number, WindowPrediction> {
  const out = new Map<number, WindowPrediction>();
  for (const p of preds) {
    const unit = engineUnit(p.asset);
    if (unit === undefined) continue;
    const seen = out.get(unit);
    if (!seen || p.windowEnd > seen.windowEnd) out.set(unit, p);
  }
  return out;
}

export interface RulScores {
  engines: number;
  predicted: number;
  /** Units with no prediction at all (fewer rows than the window). */
  missing: number[];
  rmse: number;
  score: number;
  /** The same against min(truth, cap): the habit of most published FD001 results. */
  rmseCappedTruth: number;
  scoreCappedTruth: number;
}

export function scoreEngines(
  last: ReadonlyMap<number, WindowPrediction>,
  truth: readonly number[],
  cap = 125,
): RulScores {
  const pred: number[] = [];
  const t: number[] = [];
  const missing: number[] = [];
  truth.forEach((v, i) => {
    const p = last.get(i + 1);
    if (p === undefined) missing.push(i + 1);
    else {
      pred.push(p.value);
      t.push(v);
    }
  });
  const capped = t.map((v) => Math.min(v, cap));
  return {
    engines: truth.length,
    predicted: pred.length,
    missing,
    rmse: rmse(pred, t),
    score: phm08Score(pred, t),
    rmseCappedTruth: rmse(pred, capped),
    scoreCappedTruth: phm08Score(pred, capped),
  };
}
