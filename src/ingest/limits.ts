/**
 * Admission limits for decoded readings: caps on cardinality, rate and future timestamps.
 *
 * Contract: `admit(reading, arrivalMs)` returns null (accepted, and remembered) or the reason
 * the reading is refused. Checks run in this order and the first failure wins:
 * 1. `future_ts`: `reading.tsMs > arrivalMs + maxFutureMs` (skipped when maxFutureMs = 0).
 * 2. `too_many_assets`: the asset is new and `maxAssets` are already known.
 * 3. `too_many_signals`: the signal is new for its asset and `maxSignalsPerAsset` are known.
 * 4. `rate_limited`: the global or the asset's token bucket holds less than one token.
 * Every limit is off when 0. A refused reading consumes no tokens and registers no asset or
 * signal (so a flood of refused junk cannot lock out real assets or spend their rate); an
 * accepted one takes one token from both buckets and is remembered for the life of this
 * object (restart to forget). Token buckets: capacity = one second's worth (at least 1
 * token), start full, refill continuously from the injected clock; a clock going backwards
 * refills nothing. Synchronous and single-threaded; not shared across workers.
 */

import { VigilError } from "../errors.js";
import type { Clock } from "../system/clock.js";
import type { Reading, RejectReason } from "../types.js";

export interface IngestLimitsOptions {
  /** Most distinct assets ever accepted; 0 = unlimited. */
  maxAssets: number;
  /** Most distinct signals accepted per asset; 0 = unlimited. */
  maxSignalsPerAsset: number;
  /** Readings per second over all assets; 0 = unlimited. */
  maxReadingsPerSecond: number;
  /** Readings per second for each asset; 0 = unlimited. */
  maxReadingsPerSecondPerAsset: number;
  /** Refuse readings whose ts is more than this ahead of arrival, ms; 0 = off. */
  maxFutureMs: number;
}

export interface IngestLimitsStats {
  assets: number;
  signals: number;
}

class TokenBucket {
  private tokens: number;
  private readonly capacity: number;

  constructor(
    private readonly perSecond: number,
    private lastMs: number,
  ) {
    this.capacity = Math.max(1, perSecond);
    this.tokens = this.capacity;
  }

  /** Refills up to `nowMs`, then says whether one token is available (does not take it). */
  ready(nowMs: number): boolean {
    if (nowMs > this.lastMs) {
      this.tokens = Math.min(this.capacity, this.tokens + ((nowMs - this.lastMs) * this.perSecond) / 1000);
      this.lastMs = nowMs;
    }
    return this.tokens >= 1;
  }

  take(): void {
    this.tokens -= 1;
  }
}

interface AssetState {
  signals: Set<string>;
  bucket: TokenBucket | null;
}

const OPTION_KEYS = [
  "maxAssets",
  "maxSignalsPerAsset",
  "maxReadingsPerSecond",
  "maxReadingsPerSecondPerAsset",
  "maxFutureMs",
] as const satisfies readonly (keyof IngestLimitsOptions)[];

export class IngestLimits {
  private readonly assets = new Map<string, AssetState>();
  private globalBucket: TokenBucket | null = null;
  private signalTotal = 0;

  /** Throws `VigilError` `LIMITS_INVALID` if an option is negative or not finite. */
  constructor(
    private readonly clock: Clock,
    private readonly options: IngestLimitsOptions,
  ) {
    const bad = OPTION_KEYS.filter((k) => !Number.isFinite(options[k]) || options[k] < 0);
    if (bad.length > 0) {
      throw new VigilError("LIMITS_INVALID", `ingest limits must be finite and >= 0: ${bad.join(", ")}`);
    }
  }

  admit(reading: Reading, arrivalMs: number): RejectReason | null {
    const o = this.options;
    if (o.maxFutureMs > 0 && reading.tsMs > arrivalMs + o.maxFutureMs) return "future_ts";

    const known = this.assets.get(reading.asset);
    if (known === undefined && o.maxAssets > 0 && this.assets.size >= o.maxAssets) return "too_many_assets";
    const newSignal = known === undefined || !known.signals.has(reading.signal);
    const signalCount = known?.signals.size ?? 0;
    if (newSignal && o.maxSignalsPerAsset > 0 && signalCount >= o.maxSignalsPerAsset)
      return "too_many_signals";

    const nowMs = this.clock.nowMs();
    if (o.maxReadingsPerSecond > 0 && this.globalBucket === null) {
      this.globalBucket = new TokenBucket(o.maxReadingsPerSecond, nowMs);
    }
    // A new asset's bucket is built here but kept only if the reading is accepted.
    const assetBucket =
      known?.bucket ??
      (o.maxReadingsPerSecondPerAsset > 0 ? new TokenBucket(o.maxReadingsPerSecondPerAsset, nowMs) : null);
    // Evaluate both so each refills to now; refuse if either is empty.
    const globalReady = this.globalBucket?.ready(nowMs) ?? true;
    const assetReady = assetBucket?.ready(nowMs) ?? true;
    if (!globalReady || !assetReady) return "rate_limited";
    this.globalBucket?.take();
    assetBucket?.take();

    if (known === undefined) {
      this.assets.set(reading.asset, { signals: new Set([reading.signal]), bucket: assetBucket });
      this.signalTotal += 1;
    } else if (newSignal) {
      known.signals.add(reading.signal);
      this.signalTotal += 1;
    }
    return null;
  }

  /** Number of distinct assets accepted so far. */
  get assetCount(): number {
    return this.assets.size;
  }

  /** Number of distinct signals accepted so far for `asset` (0 if unknown). */
  signalCount(asset: string): number {
    return this.assets.get(asset)?.signals.size ?? 0;
  }

  /** Whether the asset has been accepted before. */
  knowsAsset(asset: string): boolean {
    return this.assets.has(asset);
  }

  stats(): IngestLimitsStats {
    return { assets: this.assets.size, signals: this.signalTotal };
  }
}
