/**
 * Count windows for one (asset, model) (contract §4, `{"type":"count","size":S,"hop":H}`).
 *
 * Input: complete rows via `push(tsMs, values)`: `values[signalIndex]` in the model's
 * `input.signals` order, all sharing the event time `tsMs`.
 * Output: at the S-th accepted row, and then at every H-th accepted row after it, one
 * `EmittedWindow` of the last S rows: `matrix[signal][step]` oldest row first,
 * `windowStartMs` = ts of its first row, `windowEndMs` = `tsMs` = ts of its last row.
 * Ordering: rows must have strictly increasing ts. A row whose ts equals the last accepted
 * row's ts is rejected `duplicate`, one with a smaller ts `out_of_order`; a rejected row
 * changes nothing but the counters. Nothing is reordered or buffered beyond the last S rows.
 * State: in memory only; after a restart windows start empty (the first window comes S rows
 * later). Not thread-safe (single event loop).
 * Failure: bad data is rejected and counted, never thrown. A row of the wrong length, a
 * non-finite ts or an invalid spec is a programming error and throws `VigilError`.
 */

import { VigilError } from "../errors.js";
import type { CountWindowSpec } from "../models/manifest-types.js";
import { newWindowStats, type EmittedWindow, type WindowStats } from "./types.js";

export interface CountPushResult {
  /** Set when the row was rejected (and nothing else changed). */
  reject?: "duplicate" | "out_of_order";
  /** The window this row completed, if any. */
  window?: EmittedWindow;
}

export class CountWindow {
  readonly stats: WindowStats = newWindowStats();
  readonly size: number;
  readonly hop: number;
  /** Ring buffers: `values[signal][slot]`, `tsMs[slot]`; slot `head` is written next. */
  private readonly values: Float64Array[];
  private readonly tsMs: Float64Array;
  private head = 0;
  private held = 0;
  private accepted = 0;
  private lastTs: number | undefined;

  constructor(
    spec: Pick<CountWindowSpec, "size" | "hop">,
    readonly signalCount: number,
  ) {
    if (!Number.isSafeInteger(spec.size) || spec.size < 1) {
      throw new VigilError("WINDOW_SPEC", `count window size must be a positive integer, got ${spec.size}`);
    }
    if (!Number.isSafeInteger(spec.hop) || spec.hop < 1) {
      throw new VigilError("WINDOW_SPEC", `count window hop must be a positive integer, got ${spec.hop}`);
    }
    if (!Number.isSafeInteger(signalCount) || signalCount < 1) {
      throw new VigilError("WINDOW_SPEC", `count window needs at least one signal, got ${signalCount}`);
    }
    this.size = spec.size;
    this.hop = spec.hop;
    this.values = Array.from({ length: signalCount }, () => new Float64Array(spec.size));
    this.tsMs = new Float64Array(spec.size);
  }

  /** Rows currently held (at most `size`). */
  get rowsHeld(): number {
    return this.held;
  }

  /** Rows accepted since creation (the S-th and every H-th after it emit). */
  get rowsAccepted(): number {
    return this.accepted;
  }

  /** ts of the last accepted row; undefined before the first. */
  get lastRowTsMs(): number | undefined {
    return this.lastTs;
  }

  push(tsMs: number, values: readonly number[]): CountPushResult {
    if (!Number.isFinite(tsMs)) throw new VigilError("WINDOW_ROW", `row ts ${tsMs} is not finite`);
    if (values.length !== this.signalCount) {
      throw new VigilError("WINDOW_ROW", `row has ${values.length} values, expected ${this.signalCount}`);
    }
    if (this.lastTs !== undefined && tsMs <= this.lastTs) {
      const reason = tsMs === this.lastTs ? "duplicate" : "out_of_order";
      this.stats.rejected[reason]++;
      return { reject: reason };
    }

    for (let c = 0; c < this.signalCount; c++)
      (this.values[c] as Float64Array)[this.head] = values[c] as number;
    this.tsMs[this.head] = tsMs;
    this.head = (this.head + 1) % this.size;
    if (this.held < this.size) this.held++;
    this.lastTs = tsMs;
    this.accepted++;
    this.stats.accepted++;

    if (this.accepted < this.size || (this.accepted - this.size) % this.hop !== 0) return {};
    this.stats.emitted++;
    return { window: this.snapshot() };
  }

  /** The held rows as a window, oldest first (only called when `size` rows are held). */
  private snapshot(): EmittedWindow {
    const s = this.size;
    // When full, the oldest row sits at `head`, the slot to be overwritten next.
    const matrix = this.values.map((buf) => {
      const row = new Array<number>(s);
      for (let k = 0; k < s; k++) row[k] = buf[(this.head + k) % s] as number;
      return row;
    });
    return {
      windowStartMs: this.tsMs[this.head] as number,
      windowEndMs: this.lastTs as number,
      tsMs: this.lastTs as number,
      matrix,
    };
  }
}
