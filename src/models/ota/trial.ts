/**
 * Shadow-trial comparison: the serving version's and the candidate's outputs on the same live
 * windows, compared. Pure: no timers, no I/O; time comes in as arguments.
 *
 * Contract: feed every batch of both sides (`active`/`candidate` with the windows, decoded
 * outputs and batch latency, or `activeFailed`/`candidateFailed`). Windows pair on
 * (asset, window end); a pair is compared once both sides have it (at most `maxPending` waiting
 * windows per side are kept, oldest dropped). Outputs are compared by name over the outputs the
 * two manifests share: numbers agree when |a − c| ≤ absTolerance + relTolerance·|a| (a: the
 * serving version), labels when equal, arrays element by element; a non-finite value on
 * either side disagrees. Latency is the median time per window over recent batches; the
 * candidate is too slow only when its median exceeds `maxLatencyRatio` × the serving
 * version's AND by more than `latencyToleranceMs` (below that, a ratio is timer noise).
 * `done(nowMs)` says whether the trial has run its course (candidate
 * windows ≥ `windows` or time ≥ `durationMs`); `report(nowMs)` gives the figures and the
 * verdict against the criteria, with one reason per criterion missed.
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
  private readonly pendingActive = new Map<string, Outputs>();
  private readonly pendingCandidate = new Map<string, Outputs>();
  private readonly perOutput = new Map<
    string,
    { compared: number; agreed: number; n: number; sum: number; max: number }
  >();
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
    this.record(this.activeStats, items, outputs, elapsedMs);
    items.forEach((item, i) =>
      this.pair(key(item), outputs[i] ?? {}, this.pendingActive, this.pendingCandidate, "active"),
    );
  }

  candidate(items: readonly WindowRef[], outputs: readonly Outputs[], elapsedMs: number): void {
    this.record(this.candidateStats, items, outputs, elapsedMs);
    items.forEach((item, i) =>
      this.pair(key(item), outputs[i] ?? {}, this.pendingCandidate, this.pendingActive, "candidate"),
    );
  }

  activeFailed(items: readonly WindowRef[]): void {
    this.activeStats.errors += items.length;
  }

  candidateFailed(items: readonly WindowRef[]): void {
    this.candidateStats.errors += items.length;
    this.candidateStats.windows += items.length;
  }

  /** Candidate windows seen (predicted or failed). */
  get candidateWindows(): number {
    return this.candidateStats.windows;
  }

  done(nowMs: number): boolean {
    return (
      this.candidateStats.windows >= this.criteria.windows ||
      nowMs - this.startedAtMs >= this.criteria.durationMs
    );
  }

  private record(
    stats: SideStats,
    items: readonly WindowRef[],
    outputs: readonly Outputs[],
    elapsedMs: number,
  ): void {
    stats.windows += items.length;
    stats.latencyMsTotal += elapsedMs;
    if (items.length > 0) {
      stats.perWindowMs.push(elapsedMs / items.length);
      if (stats.perWindowMs.length > MAX_LATENCY_SAMPLES) stats.perWindowMs.shift();
    }
    for (const o of outputs) if (Object.values(o).some((v) => v === null)) stats.nonFinite++;
  }

  private pair(
    k: string,
    mine: Outputs,
    myPending: Map<string, Outputs>,
    theirPending: Map<string, Outputs>,
    side: "active" | "candidate",
  ): void {
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
    this.compare(a, c);
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

function sideFigures(s: SideStats): Omit<SideStats, "perWindowMs"> {
  return { windows: s.windows, errors: s.errors, nonFinite: s.nonFinite, latencyMsTotal: s.latencyMsTotal };
}

function key(item: WindowRef): string {
  return `${item.asset}\u0000${item.window.windowEndMs}`;
}

function fmt(x: number): string {
  return Number(x.toPrecision(4)).toString();
}
