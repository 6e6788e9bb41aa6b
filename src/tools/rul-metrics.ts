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
 *
 * Also the pure halves of the live-vs-batch comparison: `readBatchCsv` reads one output column
 * of a `vigil batch` CSV (an empty cell, i.e. a non-finite output, reads as NaN), and
 * `compareWindows` matches windows by (asset, windowEnd) and reports the largest |live − batch|,
 * the windows only one side has, and per engine its last window on both sides.
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

/** `vigil batch` CSV text -> the window predictions of one output column; throws RangeError. */
export function readBatchCsv(text: string, output: string): WindowPrediction[] {
  const [header = "", ...lines] = text.replace(/\r/g, "").trimEnd().split("\n");
  const cols = header.split(",");
  const a = cols.indexOf("asset");
  const e = cols.indexOf("windowEnd");
  const o = cols.indexOf(output);
  if (a < 0 || e < 0 || o < 0) {
    throw new RangeError(`batch CSV lacks one of the columns asset, windowEnd, ${output}: "${header}"`);
  }
  return lines.map((l, i) => {
    const cells = l.split(",");
    const windowEnd = Number(cells[e]);
    if (!cells[a] || !Number.isFinite(windowEnd)) throw new RangeError(`batch CSV line ${i + 2}: "${l}"`);
    const cell = cells[o] ?? "";
    return { asset: cells[a], windowEnd, value: cell === "" ? NaN : Number(cell) };
  });
}

export interface EngineComparison {
  unit: number;
  /** True RUL after the engine's last cycle (NaN when the RUL file has no line for it). */
  truth: number;
  /** Last window's prediction offline / live (undefined: no window on that side). */
  batch: number | undefined;
  live: number | undefined;
  /** Windows of this engine offline, and the largest |live − batch| over those that arrived live. */
  windows: number;
  maxAbsDiff: number;
}

export interface WindowComparison {
  /** Offline windows that also arrived live. */
  compared: number;
  /** Offline windows that never arrived live, and live windows batch does not have. */
  missingLive: number;
  extraLive: number;
  /** Largest |live − batch| over compared windows (NaN anywhere counts as Infinity). */
  maxAbsDiff: number;
  /** The window where the largest difference occurs, and the first missing one, in words ("" if none). */
  worst: string;
  firstMissing: string;
  engines: EngineComparison[];
}

const key = (asset: string, windowEnd: number): string => `${asset}@${windowEnd}`;

/** Matches live windows to offline ones by (asset, windowEnd); both sides on the same time base. */
export function compareWindows(
  offline: readonly WindowPrediction[],
  live: readonly WindowPrediction[],
  truth: readonly number[],
): WindowComparison {
  const liveByKey = new Map(live.map((p) => [key(p.asset, p.windowEnd), p]));
  const offlineKeys = new Set<string>();
  const perEngine = new Map<number, EngineComparison>();
  const engine = (unit: number): EngineComparison => {
    let e = perEngine.get(unit);
    if (!e) {
      e = {
        unit,
        truth: truth[unit - 1] ?? NaN,
        batch: undefined,
        live: undefined,
        windows: 0,
        maxAbsDiff: 0,
      };
      perEngine.set(unit, e);
    }
    return e;
  };
  let compared = 0;
  let missingLive = 0;
  let maxAbsDiff = 0;
  let worst = "";
  let firstMissing = "";
  for (const o of offline) {
    const k = key(o.asset, o.windowEnd);
    offlineKeys.add(k);
    const unit = engineUnit(o.asset);
    const e = unit === undefined ? undefined : engine(unit);
    if (e) e.windows++;
    const l = liveByKey.get(k);
    if (!l) {
      missingLive++;
      if (firstMissing === "") firstMissing = `${o.asset} window ending ${o.windowEnd}: not received live`;
      continue;
    }
    compared++;
    const raw = Math.abs(l.value - o.value);
    const d = Number.isNaN(raw) ? Infinity : raw;
    if (e) e.maxAbsDiff = Math.max(e.maxAbsDiff, d);
    if (d > maxAbsDiff || worst === "") {
      maxAbsDiff = d;
      worst = `${o.asset} window ending ${o.windowEnd}: live ${l.value}, batch ${o.value}`;
    }
  }
  const extraLive = live.filter((p) => !offlineKeys.has(key(p.asset, p.windowEnd))).length;
  for (const [unit, p] of lastPerEngine(offline)) engine(unit).batch = p.value;
  for (const [unit, p] of lastPerEngine(live)) engine(unit).live = p.value;
  truth.forEach((_, i) => engine(i + 1));
  return {
    compared,
    missingLive,
    extraLive,
    maxAbsDiff,
    worst,
    firstMissing,
    engines: [...perEngine.values()].sort((a, b) => a.unit - b.unit),
  };
}
