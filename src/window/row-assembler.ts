/**
 * Row assembly for count windows: readings -> complete rows, per model (contract §4: "a row
 * = one timestamp carrying every signal").
 *
 * Input: `add(reading, consumers)`, one reading at a time. `consumers` lists every model
 * (`key`, ordered `signals`) that the reading's asset feeds with count windows; the caller
 * knows models and bindings and passes the same list for every reading of an asset (it may
 * change when models change). A multi-value message is simply its readings added one by one
 * (they share a ts); per-signal topics deliver the same ts's signals one by one, interleaved
 * with other timestamps.
 * Output: the rows that became complete with this reading, one per consumer, each with the
 * consumer's signals' values in the consumer's order. A row is complete for a consumer when
 * it holds every one of that consumer's signals; it is delivered to each consumer exactly
 * once, by the `add` call that completes it. Order within one result follows `consumers`.
 * Rejects (returned and counted; the reading changes nothing else):
 *   duplicate      a second value for an (asset, signal, ts) already in a pending row, or
 *                  for the ts of a row already done (first value kept);
 *   out_of_order   ts older than the newest done row's ts minus `rowToleranceMs` (that row
 *                  could only reach a count window behind a newer row, which rejects it);
 *   incomplete_row a pending row evicted before it was done: counted once per row, with the
 *                  asset, `count` = 1.
 * Precisely, per asset:
 *   - A reading whose signal no consumer reads is ignored (no row, no counter).
 *   - A pending row is *done* when it has been delivered to every consumer in the current
 *     `consumers` list; it is then removed, and its ts is remembered (for `duplicate`) while
 *     it is within `rowToleranceMs` of the newest done ts.
 *   - When a row is done with ts D (the newest so far), every pending row with
 *     ts < D − rowToleranceMs is evicted (`incomplete_row`). With the default 0: a pending row
 *     older than a newer done row is evicted when that newer row is done.
 *   - At most `maxPendingRows` rows are pending; adding one more evicts the pending row with
 *     the smallest ts (which may be the new one) as `incomplete_row`, after any delivery the
 *     new reading caused.
 * Consumers must have distinct keys and non-empty signal lists without repeats. An asset whose
 * consumers include a model whose signals it never publishes leaves rows pending forever, each
 * eventually evicted and counted: pass only models the asset actually feeds.
 * State: in memory only. Not thread-safe (single event loop).
 * Failure: data problems are rejected and counted, never thrown; a non-finite ts or value, or
 * a consumer without signals, is a programming error and throws `VigilError`.
 */

import { VigilError } from "../errors.js";
import type { Reading, Reject } from "../types.js";
import { newWindowStats, type WindowStats } from "./types.js";

/** A model fed by an asset's rows: its key (e.g. `name@version`) and ordered `input.signals`. */
export interface RowConsumer {
  readonly key: string;
  readonly signals: readonly string[];
}

/** A row complete for one consumer. */
export interface AssembledRow {
  key: string;
  asset: string;
  tsMs: number;
  /** Values in the consumer's `signals` order. */
  values: number[];
}

export interface AssembleResult {
  rows: AssembledRow[];
  rejects: Reject[];
}

export interface RowAssemblerOptions {
  /** Pending (incomplete) rows kept per asset; default 64. */
  maxPendingRows?: number;
  /** How far (ms) a pending row may lag the newest done row before eviction; default 0. */
  rowToleranceMs?: number;
}

interface PendingRow {
  values: Map<string, number>;
  /** Keys of the consumers this row has been delivered to. */
  delivered: Set<string>;
}

interface AssetRows {
  pending: Map<number, PendingRow>;
  /** ts of done rows not older than newestDoneTsMs − rowToleranceMs. */
  done: Set<number>;
  newestDoneTsMs: number;
}

export const DEFAULT_MAX_PENDING_ROWS = 64;

export class RowAssembler {
  readonly stats: WindowStats = newWindowStats();
  readonly maxPendingRows: number;
  readonly rowToleranceMs: number;
  private readonly assets = new Map<string, AssetRows>();
  /** Signal lists already validated (the same manifest array arrives with every reading). */
  private readonly checkedSignals = new WeakSet<readonly string[]>();

  constructor(options: RowAssemblerOptions = {}) {
    this.maxPendingRows = options.maxPendingRows ?? DEFAULT_MAX_PENDING_ROWS;
    this.rowToleranceMs = options.rowToleranceMs ?? 0;
    if (!Number.isSafeInteger(this.maxPendingRows) || this.maxPendingRows < 1) {
      throw new VigilError(
        "WINDOW_SPEC",
        `maxPendingRows must be a positive integer, got ${this.maxPendingRows}`,
      );
    }
    if (!(this.rowToleranceMs >= 0) || !Number.isFinite(this.rowToleranceMs)) {
      throw new VigilError("WINDOW_SPEC", `rowToleranceMs must be >= 0, got ${this.rowToleranceMs}`);
    }
  }

  add(reading: Reading, consumers: readonly RowConsumer[]): AssembleResult {
    const { asset, signal, tsMs, value } = reading;
    if (!Number.isFinite(tsMs) || !Number.isFinite(value)) {
      throw new VigilError("WINDOW_READING", `reading ${asset}/${signal} has a non-finite ts or value`);
    }
    for (const c of consumers) {
      if (this.checkedSignals.has(c.signals)) continue;
      if (c.signals.length === 0)
        throw new VigilError("WINDOW_SPEC", `row consumer ${c.key} reads no signal`);
      // Distinct signals: the completeness check below counts distinct signals in a row.
      if (new Set(c.signals).size !== c.signals.length)
        throw new VigilError("WINDOW_SPEC", `row consumer ${c.key} lists a signal twice`);
      this.checkedSignals.add(c.signals);
    }
    if (!consumers.some((c) => c.signals.includes(signal))) return { rows: [], rejects: [] };

    let st = this.assets.get(asset);
    if (st === undefined) {
      st = { pending: new Map(), done: new Set(), newestDoneTsMs: -Infinity };
      this.assets.set(asset, st);
    }

    if (tsMs < st.newestDoneTsMs - this.rowToleranceMs) {
      return this.reject(
        asset,
        "out_of_order",
        `${signal} at ${tsMs} is older than done row ${st.newestDoneTsMs}`,
      );
    }
    if (st.done.has(tsMs)) return this.reject(asset, "duplicate", `${signal} at ${tsMs}: row already done`);
    let row = st.pending.get(tsMs);
    if (row?.values.has(signal)) return this.reject(asset, "duplicate", `${signal} at ${tsMs}`);

    if (row === undefined) {
      row = { values: new Map(), delivered: new Set() };
      st.pending.set(tsMs, row);
    }
    row.values.set(signal, value);
    this.stats.accepted++;

    const rows: AssembledRow[] = [];
    const rejects: Reject[] = [];
    let doneForAll = true;
    for (const c of consumers) {
      if (row.delivered.has(c.key)) continue;
      // Fewer distinct signals than the consumer reads: cannot be complete (no array, no lookups;
      // a 15-signal message would otherwise try 15 times, 120 lookups).
      if (row.values.size < c.signals.length) {
        doneForAll = false;
        continue;
      }
      const values: number[] = [];
      for (const s of c.signals) {
        const v = row.values.get(s);
        if (v === undefined) break;
        values.push(v);
      }
      if (values.length === c.signals.length) {
        row.delivered.add(c.key);
        rows.push({ key: c.key, asset, tsMs, values });
        this.stats.emitted++;
      } else {
        doneForAll = false;
      }
    }

    if (doneForAll) {
      st.pending.delete(tsMs);
      this.markDone(st, asset, tsMs, rejects);
    }
    while (st.pending.size > this.maxPendingRows) {
      let oldest = Infinity;
      for (const ts of st.pending.keys()) if (ts < oldest) oldest = ts;
      st.pending.delete(oldest);
      rejects.push(this.evicted(asset, oldest, `pending rows over ${this.maxPendingRows}`));
    }
    return { rows, rejects };
  }

  /** Pending (incomplete) rows held for `asset`. */
  pendingRowCount(asset: string): number {
    return this.assets.get(asset)?.pending.size ?? 0;
  }

  /** ts of `asset`'s pending rows, ascending (for inspection and tests). */
  pendingRowTimes(asset: string): number[] {
    return [...(this.assets.get(asset)?.pending.keys() ?? [])].sort((a, b) => a - b);
  }

  /** Forgets every pending row of `asset` without counting them (e.g. asset unbound). */
  forgetAsset(asset: string): void {
    this.assets.delete(asset);
  }

  private markDone(st: AssetRows, asset: string, tsMs: number, rejects: Reject[]): void {
    st.done.add(tsMs);
    // Bound the remembered done ts like the pending ones (a huge tolerance must not grow memory).
    while (st.done.size > this.maxPendingRows) {
      let oldest = Infinity;
      for (const ts of st.done) if (ts < oldest) oldest = ts;
      st.done.delete(oldest);
    }
    if (tsMs <= st.newestDoneTsMs) return;
    st.newestDoneTsMs = tsMs;
    const horizon = tsMs - this.rowToleranceMs;
    for (const ts of st.done) if (ts < horizon) st.done.delete(ts);
    if (st.pending.size === 0) return;
    const stale = [...st.pending.keys()].filter((ts) => ts < horizon).sort((a, b) => a - b);
    for (const ts of stale) {
      st.pending.delete(ts);
      rejects.push(this.evicted(asset, ts, `older than done row ${tsMs}`));
    }
  }

  private evicted(asset: string, tsMs: number, why: string): Reject {
    this.stats.rejected.incomplete_row++;
    return { reason: "incomplete_row", count: 1, asset, detail: `row at ${tsMs} evicted: ${why}` };
  }

  private reject(asset: string, reason: "duplicate" | "out_of_order", detail: string): AssembleResult {
    this.stats.rejected[reason]++;
    return { rows: [], rejects: [{ reason, count: 1, asset, detail }] };
  }
}
