/**
 * Probation of a newly active model version: watches its batches and says when it misbehaves
 * badly enough to be rolled back. Pure: no timers, no I/O; time comes in as arguments.
 *
 * Contract: `batch(windows, nonFiniteWindows, elapsedMs)` and `failed(windows, error)` return a reason to roll
 * back, or undefined. Reasons: more than `maxErrors` windows lost to inference failures; more
 * than `maxNonFinite` windows with a NaN or infinite output; `slowBatches` batches in a row
 * slower than `latencyFactor` × the self-test time per window AND slower than `minLatencyMs`
 * per batch (the floor keeps timer noise on a fast model from counting as slow). Once a reason
 * is given, it is given again for every later call (the caller rolls back once). `done(nowMs)`
 * says probation has passed: `windows` windows predicted, or `durationMs` since the start.
 */

import type { VigilConfig } from "../../config/types.js";

/** The limits, as `models.ota.probation` in the configuration sets them. */
export type ProbationLimits = VigilConfig["models"]["ota"]["probation"];

export class Probation {
  private windows = 0;
  private errors = 0;
  private nonFinite = 0;
  private slowInARow = 0;
  private verdict: string | undefined;

  constructor(
    private readonly limits: ProbationLimits,
    /** Self-test inference time for one window (ms). */
    private readonly baselineMsPerWindow: number,
    readonly startedAtMs: number,
  ) {}

  batch(windows: number, nonFiniteWindows: number, elapsedMs: number): string | undefined {
    if (this.verdict) return this.verdict;
    this.windows += windows;
    this.nonFinite += nonFiniteWindows;
    if (this.nonFinite > this.limits.maxNonFinite) {
      return this.fail(
        `${this.nonFinite} window(s) with NaN or infinite outputs in probation (allowed: ${this.limits.maxNonFinite})`,
      );
    }
    const bound = this.limits.latencyFactor * this.baselineMsPerWindow * Math.max(1, windows);
    if (elapsedMs > bound && elapsedMs > this.limits.minLatencyMs) {
      this.slowInARow++;
      if (this.slowInARow >= this.limits.slowBatches) {
        return this.fail(
          `${this.slowInARow} batches in a row took longer than ${this.limits.latencyFactor}× the self-test time ` +
            `(last: ${elapsedMs.toFixed(1)} ms for ${windows} window(s); self-test ${this.baselineMsPerWindow.toFixed(3)} ms per window)`,
        );
      }
    } else {
      this.slowInARow = 0;
    }
    return undefined;
  }

  failed(windows: number, error: string): string | undefined {
    if (this.verdict) return this.verdict;
    this.errors += windows;
    if (this.errors > this.limits.maxErrors) {
      return this.fail(
        `inference failed on ${this.errors} window(s) in probation (allowed: ${this.limits.maxErrors}): ${error.replace(/\s+/g, " ").trim()}`,
      );
    }
    return undefined;
  }

  done(nowMs: number): boolean {
    return (
      this.verdict === undefined &&
      (this.windows >= this.limits.windows || nowMs - this.startedAtMs >= this.limits.durationMs)
    );
  }

  summary(): { windows: number; errors: number; nonFinite: number } {
    return { windows: this.windows, errors: this.errors, nonFinite: this.nonFinite };
  }

  private fail(reason: string): string {
    this.verdict = reason;
    return reason;
  }
}
