/**
 * Public API of the window core: pure, synchronous, time as data (no timers, no I/O).
 *
 * readings ─▶ RowAssembler ─▶ CountWindow ─┐
 * readings ─────────────────▶ TimeWindow ──┴─▶ EmittedWindow ─▶ InputBuilder ─▶ Float32Array
 *
 * One CountWindow or TimeWindow per (asset, model); one RowAssembler for all count-window
 * models. Each object keeps a live `WindowStats`; `addWindowStats` sums them for metrics.
 */

export {
  newWindowStats,
  addWindowStats,
  type EmittedWindow,
  type WindowStats,
  type WindowRejectReason,
  type WindowSkipReason,
} from "./types.js";
export {
  AGGREGATE_FUNCTIONS,
  AGGREGATE_TABLE,
  aggregate,
  aggregateMany,
  isAggregateFn,
  summarize,
  type Summary,
} from "./features.js";
export { InputBuilder, buildInput, writeInput, normalizeValue } from "./preprocess.js";
export { CountWindow, type CountPushResult } from "./count-window.js";
export {
  RowAssembler,
  DEFAULT_MAX_PENDING_ROWS,
  type RowConsumer,
  type AssembledRow,
  type AssembleResult,
  type RowAssemblerOptions,
} from "./row-assembler.js";
export {
  TimeWindow,
  DEFAULT_MAX_CATCH_UP_WINDOWS,
  type TimeWindowOptions,
  type TimeSample,
  type TimePushResult,
} from "./time-window.js";
