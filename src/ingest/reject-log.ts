/**
 * Counting and rate-limited logging of rejected input (pure apart from calling the logger).
 *
 * Contract:
 * - `RejectCounter` sums `Reject.count` by reason (so it counts readings, or payloads for
 *   payload-level reasons) and by asset. `snapshot()` has every reason, zeros included, so
 *   metrics exist before the first reject. At most `maxTrackedAssets` assets (default 1000)
 *   are counted by name; rejects of further assets go to `untrackedAssetCount`, so hostile
 *   topics cannot grow memory without bound.
 * - `RejectLogger` writes at most one line per reason per `intervalMs` (default 10 s). The
 *   first reject of a reason is logged at once; later ones within the interval are
 *   suppressed and summed; the next line for that reason (a later reject, or `flush()` once
 *   the interval has passed) carries `suppressed`: how many readings were dropped without a
 *   line since the previous one, and the latest detail. No timers inside: call `flush()`
 *   periodically (and with `force` at shutdown) so that the tail of a burst is reported. A
 *   clock that goes backwards makes the next line due at once.
 */

import type { Clock } from "../system/clock.js";
import type { Reject, RejectReason } from "../types.js";

/** Every reject reason, in a stable order (for metrics and snapshots). */
export const REJECT_REASONS = [
  "unknown_topic",
  "own_topic",
  "payload_too_large",
  "not_json",
  "bad_shape",
  "bad_ts",
  "non_finite",
  "bad_name",
  "batch_too_large",
  "future_ts",
  "too_many_assets",
  "too_many_signals",
  "rate_limited",
  "duplicate",
  "late",
  "out_of_order",
  "incomplete_row",
] as const satisfies readonly RejectReason[];

// Compile-time check that REJECT_REASONS lists every RejectReason: add new reasons above.
type AssertNever<T extends never> = T;
export type _AllReasonsListed = AssertNever<Exclude<RejectReason, (typeof REJECT_REASONS)[number]>>;

export interface RejectCounterOptions {
  /** Most assets counted by name; default 1000. */
  maxTrackedAssets?: number;
}

export class RejectCounter {
  private readonly byReason = new Map<RejectReason, number>();
  private readonly byAsset = new Map<string, number>();
  private readonly maxTrackedAssets: number;
  private untracked = 0;

  constructor(options: RejectCounterOptions = {}) {
    this.maxTrackedAssets = options.maxTrackedAssets ?? 1000;
  }

  add(reject: Reject): void {
    const n = reject.count;
    if (!(n > 0) || !Number.isFinite(n)) return;
    this.byReason.set(reject.reason, (this.byReason.get(reject.reason) ?? 0) + n);
    if (reject.asset === undefined) return;
    const prev = this.byAsset.get(reject.asset);
    if (prev !== undefined) this.byAsset.set(reject.asset, prev + n);
    else if (this.byAsset.size < this.maxTrackedAssets) this.byAsset.set(reject.asset, n);
    else this.untracked += n;
  }

  addAll(rejects: Iterable<Reject>): void {
    for (const r of rejects) this.add(r);
  }

  count(reason: RejectReason): number {
    return this.byReason.get(reason) ?? 0;
  }

  total(): number {
    let sum = 0;
    for (const n of this.byReason.values()) sum += n;
    return sum;
  }

  /** Count per reason, every reason present. */
  snapshot(): Record<RejectReason, number> {
    const out = {} as Record<RejectReason, number>;
    for (const reason of REJECT_REASONS) out[reason] = this.byReason.get(reason) ?? 0;
    return out;
  }

  /** The `n` assets with the most rejects, most first (ties by name). */
  topAssets(n: number): { asset: string; count: number }[] {
    return [...this.byAsset]
      .map(([asset, count]) => ({ asset, count }))
      .sort((a, b) => b.count - a.count || (a.asset < b.asset ? -1 : a.asset > b.asset ? 1 : 0))
      .slice(0, Math.max(0, n));
  }

  /** Rejects of assets beyond `maxTrackedAssets`, not counted by name. */
  get untrackedAssetCount(): number {
    return this.untracked;
  }
}

/** The part of a pino-like logger this module uses. */
export interface WarnLogger {
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface RejectLoggerOptions {
  /** Least time between two lines of the same reason, ms; default 10 s. */
  intervalMs?: number;
}

interface ReasonState {
  lastLineMs: number;
  suppressed: number;
  lastDetail: string | undefined;
  lastAsset: string | undefined;
}

export class RejectLogger {
  private readonly state = new Map<RejectReason, ReasonState>();
  private readonly intervalMs: number;

  constructor(
    private readonly logger: WarnLogger,
    private readonly clock: Clock,
    options: RejectLoggerOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 10_000;
  }

  log(reject: Reject): void {
    const nowMs = this.clock.nowMs();
    const st = this.state.get(reject.reason);
    if (st !== undefined && !this.due(st, nowMs)) {
      st.suppressed += reject.count;
      st.lastDetail = reject.detail;
      st.lastAsset = reject.asset;
      return;
    }
    const obj: Record<string, unknown> = {
      reason: reject.reason,
      count: reject.count,
      suppressed: st?.suppressed ?? 0,
    };
    if (reject.detail !== undefined) obj["detail"] = reject.detail;
    if (reject.asset !== undefined) obj["asset"] = reject.asset;
    this.logger.warn(obj, `ingest reject: ${reject.reason}`);
    this.state.set(reject.reason, {
      lastLineMs: nowMs,
      suppressed: 0,
      lastDetail: undefined,
      lastAsset: undefined,
    });
  }

  logAll(rejects: Iterable<Reject>): void {
    for (const r of rejects) this.log(r);
  }

  /**
   * Writes a summary line for each reason with suppressed rejects whose interval has passed
   * (every such reason when `force`, e.g. at shutdown).
   */
  flush(options: { force?: boolean } = {}): void {
    const nowMs = this.clock.nowMs();
    for (const [reason, st] of this.state) {
      if (st.suppressed === 0 || (!options.force && !this.due(st, nowMs))) continue;
      const obj: Record<string, unknown> = { reason, count: 0, suppressed: st.suppressed };
      if (st.lastDetail !== undefined) obj["detail"] = st.lastDetail;
      if (st.lastAsset !== undefined) obj["asset"] = st.lastAsset;
      this.logger.warn(obj, `ingest reject: ${reason}`);
      this.state.set(reason, {
        lastLineMs: nowMs,
        suppressed: 0,
        lastDetail: undefined,
        lastAsset: undefined,
      });
    }
  }

  private due(st: ReasonState, nowMs: number): boolean {
    return nowMs - st.lastLineMs >= this.intervalMs || nowMs < st.lastLineMs;
  }
}
