/**
 * Time windows for one (asset, model) (contract §4, `{"type":"time","sizeMs","hopMs",
 * "sampleMs","fill"}`), driven by event time only: time is the readings' `tsMs`, no timers.
 *
 * Input: readings of the model's signals for one asset, `push({signal, tsMs, value})`, in
 * any order, or `pushMany([...])` for readings that arrived together (one message: all are
 * applied before any window closes); optionally `advanceTo(watermarkMs)` to move event time
 * without a reading.
 * Output: the windows each call closed, oldest first: `windowStartMs` = start,
 * `windowEndMs` = `tsMs` = start + sizeMs, `matrix[signal][slot]` with sizeMs/sampleMs slots.
 *
 * Windows: half-open [start, start + sizeMs), start a multiple of hopMs since the epoch
 * (hopMs > sizeMs leaves gaps between windows; hopMs < sizeMs overlaps them). The candidate
 * windows begin with the earliest one whose end is after the first reading ever accepted.
 * Slots: the global grid, slot index floor(tsMs / sampleMs), slot [i·sampleMs, (i+1)·sampleMs);
 * a slot's value is the mean of its readings. An empty slot is filled by
 *   previous: the value of the last filled slot before it (also from before the window);
 *   linear:   vb + (va − vb)/(ia − ib) · (i − ib) between the nearest filled slots before (ib, vb)
 *             and after (ia, va), either possibly outside the window, as known at emission.
 * A window with an empty slot that has no filled slot before it (or, for linear, none known
 * after it) is skipped: `signals_missing` while some signal has never been seen, else
 * `unfillable`.
 * Emission: watermark = the largest ts accepted (or given to `advanceTo`). A window is due
 * when watermark − allowedLatenessMs >= its end. If one advance makes more than
 * `maxCatchUpWindows` windows due, only the newest `maxCatchUpWindows` are built; the older
 * ones are counted `gap` (their readings still serve as fill context).
 * Rejects (counted; the reading changes nothing, neither slots nor fill state nor watermark):
 *   late       ts before the next window's start, except that when hopMs > sizeMs a reading
 *              in the gap before the next window (at or after the previous window's end) is
 *              kept, because it is fill context for that window (as it would be offline);
 *   duplicate  a reading with the same (signal, ts) as one already held (first value kept).
 * Accepted readings older than the watermark are counted `reordered` (informational).
 * Memory: slots before the late boundary are dropped; per signal the last filled one among
 * them is kept (index and value) for previous/linear fill. What is held is bounded by
 * (sizeMs + allowedLatenessMs + max(0, hopMs − sizeMs)) / sampleMs slots per signal.
 * Readings of signals not in the model's list are ignored (`ignored: true`), uncounted.
 * Not thread-safe (single event loop).
 * Failure: data problems are rejected and counted, never thrown; an invalid spec (sizeMs or
 * hopMs not a multiple of sampleMs, non-positive values) or a non-finite ts/value is a
 * programming error and throws `VigilError`.
 */

import { VigilError } from "../errors.js";
import type { FillPolicy, TimeWindowSpec } from "../models/manifest-types.js";
import { newWindowStats, type EmittedWindow, type WindowSkipReason, type WindowStats } from "./types.js";

export interface TimeWindowOptions {
  /** How long after a window's end (event time) it stays open; default 0. */
  allowedLatenessMs?: number;
  /** Most windows one watermark advance may build; older due ones are skipped as `gap`. Default 1000. */
  maxCatchUpWindows?: number;
}

export interface TimeSample {
  signal: string;
  tsMs: number;
  value: number;
}

export interface TimePushResult {
  /** Set when the reading was rejected. */
  reject?: "late" | "duplicate";
  /** True when the signal is not one of the model's (nothing changed, nothing counted). */
  ignored?: boolean;
  /** Windows closed by this call, oldest first. */
  windows: EmittedWindow[];
}

export const DEFAULT_MAX_CATCH_UP_WINDOWS = 1000;

interface Slot {
  sum: number;
  count: number;
  /** The first reading's timestamp: one reading per slot is the common case, kept without a Set. */
  firstTsMs: number;
  /** Timestamps of further readings in the slot, created on the second one (duplicate check). */
  moreTsMs: Set<number> | undefined;
}

interface FilledSlot {
  index: number;
  value: number;
}

interface SignalState {
  name: string;
  slots: Map<number, Slot>;
  /** The last filled slot before the retained range. */
  lastBefore: FilledSlot | undefined;
  seen: boolean;
}

type Assembled = { matrix: number[][] } | { skip: WindowSkipReason };

export class TimeWindow {
  readonly stats: WindowStats = newWindowStats();
  readonly sizeMs: number;
  readonly hopMs: number;
  readonly sampleMs: number;
  readonly fill: FillPolicy;
  /** Slots per window: sizeMs / sampleMs. */
  readonly steps: number;
  readonly allowedLatenessMs: number;
  readonly maxCatchUpWindows: number;
  private readonly signals: SignalState[];
  private readonly byName = new Map<string, SignalState>();
  private unseen: number;
  private watermark: number | undefined;
  private nextStart: number | undefined;

  constructor(
    spec: Omit<TimeWindowSpec, "type">,
    signals: readonly string[],
    options: TimeWindowOptions = {},
  ) {
    const { sizeMs, hopMs, sampleMs, fill } = spec;
    for (const [name, v] of [
      ["sizeMs", sizeMs],
      ["hopMs", hopMs],
      ["sampleMs", sampleMs],
    ] as const) {
      if (!Number.isSafeInteger(v) || v < 1) {
        throw new VigilError("WINDOW_SPEC", `time window ${name} must be a positive integer, got ${v}`);
      }
    }
    if (sizeMs % sampleMs !== 0 || hopMs % sampleMs !== 0) {
      // Otherwise windows would not start on the global slot grid.
      throw new VigilError(
        "WINDOW_SPEC",
        `sizeMs ${sizeMs} and hopMs ${hopMs} must be multiples of sampleMs ${sampleMs}`,
      );
    }
    if (fill !== "previous" && fill !== "linear") {
      throw new VigilError("WINDOW_SPEC", `unknown fill "${String(fill)}"`);
    }
    const lateness = options.allowedLatenessMs ?? 0;
    const maxCatchUp = options.maxCatchUpWindows ?? DEFAULT_MAX_CATCH_UP_WINDOWS;
    if (!Number.isFinite(lateness) || lateness < 0) {
      throw new VigilError("WINDOW_SPEC", `allowedLatenessMs must be >= 0, got ${lateness}`);
    }
    if (!Number.isSafeInteger(maxCatchUp) || maxCatchUp < 1) {
      throw new VigilError("WINDOW_SPEC", `maxCatchUpWindows must be a positive integer, got ${maxCatchUp}`);
    }
    if (signals.length === 0 || new Set(signals).size !== signals.length) {
      throw new VigilError("WINDOW_SPEC", `time window needs distinct signals, got [${signals.join(", ")}]`);
    }
    this.sizeMs = sizeMs;
    this.hopMs = hopMs;
    this.sampleMs = sampleMs;
    this.fill = fill;
    this.steps = sizeMs / sampleMs;
    this.allowedLatenessMs = lateness;
    this.maxCatchUpWindows = maxCatchUp;
    this.signals = signals.map((name) => ({ name, slots: new Map(), lastBefore: undefined, seen: false }));
    for (const s of this.signals) this.byName.set(s.name, s);
    this.unseen = signals.length;
  }

  /** The largest event time seen; undefined before the first reading. */
  get watermarkMs(): number | undefined {
    return this.watermark;
  }

  /** Start of the next window to be emitted or skipped; undefined before the first reading. */
  get nextWindowStartMs(): number | undefined {
    return this.nextStart;
  }

  /** Readings before this ts are rejected as late; undefined before the first reading. */
  get lateBeforeMs(): number | undefined {
    return this.nextStart === undefined ? undefined : this.nextStart - Math.max(0, this.hopMs - this.sizeMs);
  }

  /** Whether every signal of the model has had at least one accepted reading. */
  get allSignalsSeen(): boolean {
    return this.unseen === 0;
  }

  /** Signals that have never had an accepted reading, in model order. */
  missingSignals(): string[] {
    return this.signals.filter((s) => !s.seen).map((s) => s.name);
  }

  /** Slots currently held, over all signals (memory inspection). */
  heldSlotCount(): number {
    let n = 0;
    for (const s of this.signals) n += s.slots.size;
    return n;
  }

  push(sample: TimeSample): TimePushResult {
    const accepted = this.accept(sample);
    if (accepted.reject !== undefined || accepted.ignored === true || !accepted.advanced) {
      return {
        ...(accepted.reject ? { reject: accepted.reject } : {}),
        ...(accepted.ignored ? { ignored: true } : {}),
        windows: [],
      };
    }
    return { windows: this.emitDue() };
  }

  /**
   * Several readings that arrived together (one message): all are applied first, then the
   * windows they close are emitted once. So a row's signals are all in place before any
   * window closes, whatever the order of keys in the message. Returns one reject per
   * refused reading (in order) and the windows closed.
   */
  pushMany(samples: readonly TimeSample[]): { rejects: ("late" | "duplicate")[]; windows: EmittedWindow[] } {
    const rejects: ("late" | "duplicate")[] = [];
    let advanced = false;
    for (const sample of samples) {
      const r = this.accept(sample);
      if (r.reject !== undefined) rejects.push(r.reject);
      if (r.advanced) advanced = true;
    }
    return { rejects, windows: advanced ? this.emitDue() : [] };
  }

  /** Applies one reading without emitting; says whether it moved the watermark. */
  private accept(sample: TimeSample): {
    reject?: "late" | "duplicate";
    ignored?: boolean;
    advanced: boolean;
  } {
    const sig = this.byName.get(sample.signal);
    if (sig === undefined) return { ignored: true, advanced: false };
    const { tsMs, value } = sample;
    if (!Number.isFinite(tsMs) || !Number.isFinite(value)) {
      throw new VigilError("WINDOW_READING", `reading ${sample.signal} has a non-finite ts or value`);
    }

    if (this.nextStart === undefined) {
      // The earliest aligned window whose end is after this first reading.
      this.nextStart = (Math.floor((tsMs - this.sizeMs) / this.hopMs) + 1) * this.hopMs;
    } else if (tsMs < (this.lateBeforeMs as number)) {
      this.stats.rejected.late++;
      return { reject: "late", advanced: false };
    }

    const index = Math.floor(tsMs / this.sampleMs);
    const slot = sig.slots.get(index);
    if (slot === undefined) {
      sig.slots.set(index, { sum: value, count: 1, firstTsMs: tsMs, moreTsMs: undefined });
    } else if (slot.firstTsMs === tsMs || slot.moreTsMs?.has(tsMs) === true) {
      this.stats.rejected.duplicate++;
      return { reject: "duplicate", advanced: false };
    } else {
      slot.sum += value;
      slot.count++;
      (slot.moreTsMs ??= new Set()).add(tsMs);
    }
    if (!sig.seen) {
      sig.seen = true;
      this.unseen--;
    }
    this.stats.accepted++;

    if (this.watermark !== undefined && tsMs <= this.watermark) {
      if (tsMs < this.watermark) this.stats.reordered++;
      return { advanced: false };
    }
    this.watermark = tsMs;
    return { advanced: true };
  }

  /**
   * Moves event time to `watermarkMs` without a reading (e.g. when the caller knows the source
   * has moved on) and returns the windows that closed. No effect before the first reading or
   * when not ahead of the current watermark.
   */
  advanceTo(watermarkMs: number): EmittedWindow[] {
    if (!Number.isFinite(watermarkMs))
      throw new VigilError("WINDOW_READING", `watermark ${watermarkMs} is not finite`);
    if (this.nextStart === undefined || this.watermark === undefined || watermarkMs <= this.watermark)
      return [];
    this.watermark = watermarkMs;
    return this.emitDue();
  }

  private emitDue(): EmittedWindow[] {
    const dueMs = (this.watermark as number) - this.allowedLatenessMs;
    let start = this.nextStart as number;
    if (start + this.sizeMs > dueMs) return [];

    const due = Math.floor((dueMs - this.sizeMs - start) / this.hopMs) + 1;
    if (due > this.maxCatchUpWindows) {
      const skipped = due - this.maxCatchUpWindows;
      this.stats.skipped.gap += skipped;
      start += skipped * this.hopMs;
      this.moveTo(start);
    }

    const windows: EmittedWindow[] = [];
    while (start + this.sizeMs <= dueMs) {
      const end = start + this.sizeMs;
      const built = this.assemble(start);
      if ("skip" in built) {
        this.stats.skipped[built.skip]++;
      } else {
        this.stats.emitted++;
        windows.push({ windowStartMs: start, windowEndMs: end, tsMs: end, matrix: built.matrix });
      }
      start += this.hopMs;
      this.moveTo(start);
    }
    return windows;
  }

  /** Sets the next window start and drops the slots that can only serve as fill context now. */
  private moveTo(startMs: number): void {
    this.nextStart = startMs;
    const boundary = Math.floor((this.lateBeforeMs as number) / this.sampleMs);
    for (const sig of this.signals) {
      for (const [index, slot] of sig.slots) {
        if (index >= boundary) continue;
        if (sig.lastBefore === undefined || index > sig.lastBefore.index) {
          sig.lastBefore = { index, value: slot.sum / slot.count };
        }
        sig.slots.delete(index);
      }
    }
  }

  private assemble(startMs: number): Assembled {
    const first = Math.floor(startMs / this.sampleMs);
    const matrix: number[][] = [];
    for (const sig of this.signals) {
      const row = this.fill === "previous" ? this.fillPrevious(sig, first) : this.fillLinear(sig, first);
      if (row === undefined) return { skip: this.unseen > 0 ? "signals_missing" : "unfillable" };
      matrix.push(row);
    }
    return { matrix };
  }

  private fillPrevious(sig: SignalState, first: number): number[] | undefined {
    let prev = this.lastFilledBefore(sig, first)?.value;
    const row = new Array<number>(this.steps);
    for (let k = 0; k < this.steps; k++) {
      const slot = sig.slots.get(first + k);
      if (slot !== undefined) prev = slot.sum / slot.count;
      else if (prev === undefined) return undefined;
      row[k] = prev;
    }
    return row;
  }

  private fillLinear(sig: SignalState, first: number): number[] | undefined {
    const last = first + this.steps - 1;
    let before = this.lastFilledBefore(sig, first);
    let after: FilledSlot | undefined;
    const row = new Array<number>(this.steps);
    for (let k = 0; k < this.steps; k++) {
      const index = first + k;
      const slot = sig.slots.get(index);
      if (slot !== undefined) {
        before = { index, value: slot.sum / slot.count };
        row[k] = before.value;
        continue;
      }
      if (before === undefined) return undefined;
      if (after === undefined || after.index < index) {
        after = this.firstFilledAfter(sig, index, last);
        if (after === undefined) return undefined;
      }
      // Same operation order as numpy.interp: slope first, then offset from the left point.
      row[k] =
        before.value + ((after.value - before.value) / (after.index - before.index)) * (index - before.index);
    }
    return row;
  }

  private lastFilledBefore(sig: SignalState, index: number): FilledSlot | undefined {
    let best = sig.lastBefore;
    for (const [i, slot] of sig.slots) {
      if (i < index && (best === undefined || i > best.index))
        best = { index: i, value: slot.sum / slot.count };
    }
    return best;
  }

  /** The first filled slot after `index`: inside the window if any, else the nearest known beyond `last`. */
  private firstFilledAfter(sig: SignalState, index: number, last: number): FilledSlot | undefined {
    for (let i = index + 1; i <= last; i++) {
      const slot = sig.slots.get(i);
      if (slot !== undefined) return { index: i, value: slot.sum / slot.count };
    }
    let best: FilledSlot | undefined;
    for (const [i, slot] of sig.slots) {
      if (i > last && (best === undefined || i < best.index))
        best = { index: i, value: slot.sum / slot.count };
    }
    return best;
  }
}
