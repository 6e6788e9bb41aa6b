/**
 * Data shapes shared by the window modules: the emitted window and the counters the gateway
 * turns into metrics.
 *
 * Contract: pure data and two pure helpers. Every window object (CountWindow, RowAssembler,
 * TimeWindow) owns one live `WindowStats` that only grows; callers read it, sum several with
 * `addWindowStats`, and never write it.
 */

import type { RejectReason } from "../types.js";

/** One window ready for preprocessing (contract §4, "each emitted window yields one prediction"). */
export interface EmittedWindow {
  /** Count window: ts of its first row. Time window: its start (a multiple of hopMs). */
  windowStartMs: number;
  /** Count window: ts of its last row. Time window: start + sizeMs (exclusive end). */
  windowEndMs: number;
  /** The prediction's event time: the last row's ts (count) or start + sizeMs (time). */
  tsMs: number;
  /** `matrix[signalIndex][step]`, signals in the model's `input.signals` order, oldest step first. */
  matrix: number[][];
}

/** Reject reasons the window modules produce (a subset of the gateway-wide `RejectReason`). */
export type WindowRejectReason = Extract<
  RejectReason,
  "duplicate" | "late" | "out_of_order" | "incomplete_row"
>;

/**
 * Why a due window was not emitted.
 * - `unfillable`: an empty slot could not be filled (nothing before it; for `linear`, nothing
 *   known after it either).
 * - `signals_missing`: as `unfillable`, while some signal of the model has never been seen.
 * - `gap`: dropped by the catch-up limit after a jump in event time.
 */
export type WindowSkipReason = "unfillable" | "gap" | "signals_missing";

export interface WindowStats {
  /** Inputs accepted: readings (time windows, row assembler) or rows (count windows). */
  accepted: number;
  /** Inputs rejected, by reason; each count is one reading (or one row, or one evicted pending row). */
  rejected: Record<WindowRejectReason, number>;
  /** Readings accepted although older than the newest seen (time windows); informational, not a reject. */
  reordered: number;
  /** Windows emitted (count and time windows), or rows delivered to a model (row assembler). */
  emitted: number;
  /** Due windows that were not emitted, by reason (time windows). */
  skipped: Record<WindowSkipReason, number>;
}

export function newWindowStats(): WindowStats {
  return {
    accepted: 0,
    rejected: { duplicate: 0, late: 0, out_of_order: 0, incomplete_row: 0 },
    reordered: 0,
    emitted: 0,
    skipped: { unfillable: 0, gap: 0, signals_missing: 0 },
  };
}

/** Adds `from` into `into` (for totals over assets and models); returns `into`. */
export function addWindowStats(into: WindowStats, from: Readonly<WindowStats>): WindowStats {
  into.accepted += from.accepted;
  into.reordered += from.reordered;
  into.emitted += from.emitted;
  for (const k of Object.keys(into.rejected) as WindowRejectReason[]) into.rejected[k] += from.rejected[k];
  for (const k of Object.keys(into.skipped) as WindowSkipReason[]) into.skipped[k] += from.skipped[k];
  return into;
}
