/**
 * Shadow-trial comparison: the serving version's and the candidate's outputs on the same live
 * windows, compared. Pure: no timers, no I/O; time comes in as arguments.
 *
 * Contract: feed every batch of both sides (`active`/`candidate` with the windows, decoded
 * outputs and batch latency, or `activeFailed`/`candidateFailed`), in any order: the two
 * versions run in separate runners, so either side's result for a window may come first.
 * Windows pair on (asset, window end); a window is *judged* once both sides have finished it
 * (predicted or failed), and *compared* when both predicted it (at most `maxPending` windows
 * waiting for the other side are kept per side, oldest dropped). Each side's windows, errors and
 * NaN/Inf counts are over the judged windows, so a window only one side has finished counts
 * nowhere yet (the serving version's windows from before the trial never pair). Once
 * `criteria.windows` windows are judged the comparison is full: later results are ignored, so
 * a trial asked to run N windows reports exactly N. Outputs are compared by name over the outputs the
 * two manifests share: numbers agree when |a − c| ≤ absTolerance + relTolerance·|a| (a: the
 * serving version), labels when equal, arrays element by element; a non-finite value on
 * either side disagrees. Latency is the median time per window over recent batches; the
 * candidate is too slow only when its median exceeds `maxLatencyRatio` × the serving
 * version's AND by more than `latencyToleranceMs` (below that, a ratio is timer noise).
 * `done(nowMs)` says whether the trial has run its course (judged windows ≥ `windows`, or
 * time ≥ `durationMs`); `report(nowMs)` gives the figures and the verdict against the
 * criteria, with one reason per criterion missed.
 */

import type { OutputValue } from "../package.js";
import type { TrialCriteria } from "./requests.js";

export interface WindowRef {
  asset: string;
  window: { windowEndMs: number };
}

interface SideStats {
  windows: number;
  errors: number;
  nonFinite: number;
  latencyMsTotal: number;
  /** Per-window time of recent batches (for the median). */
  perWindowMs: number[];
}

export interface OutputComparison {
  compared: number;
  agreed: number;
  /** Numeric outputs only. */
  meanAbsDiff: number | null;
  maxAbsDiff: number | null;
}

export interface TrialReport {
  active: string;
  candidate: string;
  startedAtMs: number;
  durationMs: number;
  /** Windows judged: both sides predicted or failed on them (at most `criteria.windows`). */
  windows: number;
  /** Windows compared (both sides predicted them). */
  compared: number;
  agreement: number | null;
  outputs: Record<string, OutputComparison>;
  activeStats: Omit<SideStats, "perWindowMs"> & { medianLatencyMs: number | null };
  candidateStats: Omit<SideStats, "perWindowMs"> & {
    medianLatencyMs: number | null;
    errorRate: number | null;
    nonFiniteRate: number | null;
  };
  latencyRatio: number | null;
  criteria: TrialCriteria;
  passed: boolean;
  reasons: string[];
}

type Outputs = Readonly<Record<string, OutputValue>>;
/** One side's result for one window: its outputs, or null when its inference failed. */
type Result = Outputs | null;

export class TrialComparison {
  private readonly activeStats: SideStats = {
    windows: 0,
    errors: 0,
    nonFinite: 0,
    latencyMsTotal: 0,
    perWindowMs: [],
  };
  private readonly candidateStats: SideStats = {
    windows: 0,
    errors: 0,
    nonFinite: 0,
    latencyMsTotal: 0,
    perWindowMs: [],
  };
  private readonly pendingActive = new Map<string, Result>();
  private readonly pendingCandidate = new Map<string, Result>();
  private readonly perOutput = new Map<
    string,
    { compared: number; agreed: number; n: number; sum: number; max: number }
  >();
  /** Windows both sides have finished (see the header). */
  private judged = 0;
  private compared = 0;
  private agreed = 0;

  constructor(
    private readonly criteria: TrialCriteria,
    private readonly names: { active: string; candidate: string },
    /** Output names both versions have. */
    private readonly shared: readonly string[],
    readonly startedAtMs: number,
    private readonly maxPending = 10_000,
  ) {
    for (const n of shared) this.perOutput.set(n, { compared: 0, agreed: 0, n: 0, sum: 0, max: 0 });
  }

  active(items: readonly WindowRef[], outputs: readonly Outputs[], elapsedMs: number): void {
    if (this.full) return;
    this.latency(this.activeStats, items.length, elapsedMs);
    items.forEach((item, i) => this.side("active", key(item), outputs[i] ?? {}));
  }

  candidate(items: readonly WindowRef[], outputs: readonly Outputs[], elapsedMs: number): void {
    if (this.full) return;
    this.latency(this.candidateStats, items.length, elapsedMs);
    items.forEach((item, i) => this.side("candidate", key(item), outputs[i] ?? {}));
  }

  activeFailed(items: readonly WindowRef[]): void {
    for (const item of items) this.side("active", key(item), null);
  }

  candidateFailed(items: readonly WindowRef[]): void {
    for (const item of items) this.side("candidate", key(item), null);
  }

  /** Windows judged so far: both versions have predicted (or failed on) them. */
  get windows(): number {
    return this.judged;
  }

  /** `criteria.windows` windows are judged: the report will not change any more. */
  get full(): boolean {
    return this.judged >= this.criteria.windows;
  }

  done(nowMs: number): boolean {
    return this.full || nowMs - this.startedAtMs >= this.criteria.durationMs;
  }

  private latency(stats: SideStats, windows: number, elapsedMs: number): void {
    if (windows === 0) return;
    stats.latencyMsTotal += elapsedMs;
    stats.perWindowMs.push(elapsedMs / windows);
    if (stats.perWindowMs.length > MAX_LATENCY_SAMPLES) stats.perWindowMs.shift();
  }

  /** One side's result for window `k`: judged now if the other side has it, else kept waiting. */
  private side(side: "active" | "candidate", k: string, mine: Result): void {
    if (this.full) return;
    const [myPending, theirPending] =
      side === "active"
        ? [this.pendingActive, this.pendingCandidate]
        : [this.pendingCandidate, this.pendingActive];
    const theirs = theirPending.get(k);
    if (theirs === undefined) {
      myPending.set(k, mine);
      if (myPending.size > this.maxPending) {
        const oldest = myPending.keys().next().value;
        if (oldest !== undefined) myPending.delete(oldest);
      }
      return;
    }
    theirPending.delete(k);
    const [a, c] = side === "active" ? [mine, theirs] : [theirs, mine];
    this.judge(a, c);
    if (this.full) {
      this.pendingActive.clear();
      this.pendingCandidate.clear();
    }
  }

  private judge(a: Result, c: Result): void {
    this.judged++;
    count(this.activeStats, a);
    count(this.candidateStats, c);
    if (a !== null && c !== null) this.compare(a, c);
  }

  private compare(a: Outputs, c: Outputs): void {
    this.compared++;
    let all = true;
    for (const name of this.shared) {
      const stats = this.perOutput.get(name);
      if (!stats) continue;
      const va = a[name] ?? null;
      const vc = c[name] ?? null;
      stats.compared++;
      const ok = this.agrees(va, vc, stats);
      if (ok) stats.agreed++;
      else all = false;
    }
    if (all && this.shared.length > 0) this.agreed++;
  }

  private agrees(a: OutputValue, c: OutputValue, stats: { n: number; sum: number; max: number }): boolean {
    if (a === null || c === null) return false;
    if (typeof a === "number" && typeof c === "number") return this.close(a, c, stats);
    if (Array.isArray(a) && Array.isArray(c)) {
      if (a.length !== c.length) return false;
      let ok = true;
      for (let i = 0; i < a.length; i++)
        if (!this.close(a[i] ?? Number.NaN, c[i] ?? Number.NaN, stats)) ok = false;
      return ok;
    }
    return a === c;
  }

  private close(a: number, c: number, stats: { n: number; sum: number; max: number }): boolean {
    const d = Math.abs(a - c);
    if (Number.isFinite(d)) {
      stats.n++;
      stats.sum += d;
      stats.max = Math.max(stats.max, d);
    }
    return d <= this.criteria.absTolerance + this.criteria.relTolerance * Math.abs(a);
  }

  report(nowMs: number): TrialReport {
    const k = this.criteria;
    const a = this.activeStats;
    const c = this.candidateStats;
    const aLat = median(a.perWindowMs);
    const cLat = median(c.perWindowMs);
    const latencyRatio = aLat !== null && cLat !== null && aLat > 0 ? cLat / aLat : null;
    const agreement = this.compared > 0 && this.shared.length > 0 ? this.agreed / this.compared : null;
    const errorRate = c.windows > 0 ? c.errors / c.windows : null;
    const nonFiniteRate = c.windows > 0 ? c.nonFinite / c.windows : null;
    const reasons: string[] = [];
    if (this.shared.length === 0)
      reasons.push("the two versions have no output name in common, so nothing can be compared");
    else if (this.compared === 0) reasons.push("no window was predicted by both versions");
    else if (agreement !== null && agreement < k.minAgreement)
      reasons.push(
        `agreement ${fmt(agreement)} is below minAgreement ${k.minAgreement} over ${this.compared} windows`,
      );
    if (errorRate !== null && errorRate > k.maxErrorRate)
      reasons.push(
        `candidate failed on ${c.errors} of ${c.windows} windows (rate ${fmt(errorRate)} > maxErrorRate ${k.maxErrorRate})`,
      );
    if (nonFiniteRate !== null && nonFiniteRate > k.maxNonFiniteRate)
      reasons.push(
        `candidate gave NaN/Inf on ${c.nonFinite} of ${c.windows} windows (rate ${fmt(nonFiniteRate)} > maxNonFiniteRate ${k.maxNonFiniteRate})`,
      );
    // Sub-millisecond models: the ratio of two tiny times is timer noise, so a floor applies.
    if (
      latencyRatio !== null &&
      latencyRatio > k.maxLatencyRatio &&
      (cLat ?? 0) - (aLat ?? 0) > k.latencyToleranceMs
    )
      reasons.push(
        `candidate is ${fmt(latencyRatio)}× slower per window (maxLatencyRatio ${k.maxLatencyRatio})`,
      );
    const outputs: Record<string, OutputComparison> = {};
    for (const [name, s] of this.perOutput) {
      outputs[name] = {
        compared: s.compared,
        agreed: s.agreed,
        meanAbsDiff: s.n > 0 ? s.sum / s.n : null,
        maxAbsDiff: s.n > 0 ? s.max : null,
      };
    }
    return {
      active: this.names.active,
      candidate: this.names.candidate,
      startedAtMs: this.startedAtMs,
      durationMs: nowMs - this.startedAtMs,
      windows: this.judged,
      compared: this.compared,
      agreement,
      outputs,
      activeStats: { ...sideFigures(a), medianLatencyMs: aLat },
      candidateStats: { ...sideFigures(c), medianLatencyMs: cLat, errorRate, nonFiniteRate },
      latencyRatio,
      criteria: { ...k },
      passed: reasons.length === 0,
      reasons,
    };
  }
}

const MAX_LATENCY_SAMPLES = 1024;

function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

function count(stats: SideStats, r: Result): void {
  stats.windows++;
  if (r === null) stats.errors++;
  else if (Object.values(r).some((v) => v === null)) stats.nonFinite++;
}

function sideFigures(s: SideStats): Omit<SideStats, "perWindowMs"> {
  return { windows: s.windows, errors: s.errors, nonFinite: s.nonFinite, latencyMsTotal: s.latencyMsTotal };
}

function key(item: WindowRef): string {
  return `${item.asset}\u0000${item.window.windowEndMs}`;
}

function fmt(x: number): string {
  return Number(x.toPrecision(4)).toString();
}
