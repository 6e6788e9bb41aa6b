import { describe, expect, it } from "vitest";
import { VigilError } from "../../src/errors.js";
import type { Reading } from "../../src/types.js";
import { RowAssembler, type AssembleResult, type RowConsumer } from "../../src/window/row-assembler.js";

const r = (signal: string, tsMs: number, value: number, asset = "a1"): Reading => ({
  asset,
  signal,
  tsMs,
  value,
});
const A: RowConsumer = { key: "A", signals: ["s1", "s2"] };

/** Rows as compact tuples [key, ts, ...values]. */
function rows(res: AssembleResult): (string | number)[][] {
  return res.rows.map((x) => [x.key, x.tsMs, ...x.values]);
}

describe("RowAssembler", () => {
  it("completes a row from a multi-value message, in the consumer's signal order", () => {
    const asm = new RowAssembler();
    const rev: RowConsumer = { key: "R", signals: ["s2", "s1"] };
    expect(rows(asm.add(r("s1", 1000, 1), [A, rev]))).toEqual([]);
    expect(rows(asm.add(r("s2", 1000, 2), [A, rev]))).toEqual([
      ["A", 1000, 1, 2],
      ["R", 1000, 2, 1],
    ]);
    expect(asm.pendingRowCount("a1")).toBe(0);
    expect(asm.stats.accepted).toBe(2);
    expect(asm.stats.emitted).toBe(2);
  });

  it("assembles per-signal readings that interleave across timestamps", () => {
    const asm = new RowAssembler();
    expect(rows(asm.add(r("s1", 1, 10), [A]))).toEqual([]);
    expect(rows(asm.add(r("s1", 2, 11), [A]))).toEqual([]);
    expect(rows(asm.add(r("s1", 3, 12), [A]))).toEqual([]);
    expect(asm.pendingRowTimes("a1")).toEqual([1, 2, 3]);
    expect(rows(asm.add(r("s2", 1, 20), [A]))).toEqual([["A", 1, 10, 20]]);
    expect(rows(asm.add(r("s2", 2, 21), [A]))).toEqual([["A", 2, 11, 21]]);
    expect(asm.pendingRowTimes("a1")).toEqual([3]);
    expect(rows(asm.add(r("s2", 3, 22), [A]))).toEqual([["A", 3, 12, 22]]);
    expect(asm.pendingRowCount("a1")).toBe(0);
    expect(asm.stats.rejected.incomplete_row).toBe(0);
  });

  it("delivers to each model exactly once, when complete for that model", () => {
    const asm = new RowAssembler();
    const B: RowConsumer = { key: "B", signals: ["s1"] };
    const consumers = [A, B];
    expect(rows(asm.add(r("s1", 5, 1), consumers))).toEqual([["B", 5, 1]]);
    expect(asm.pendingRowCount("a1")).toBe(1); // still needed by A
    expect(rows(asm.add(r("s2", 5, 2), consumers))).toEqual([["A", 5, 1, 2]]);
    expect(asm.pendingRowCount("a1")).toBe(0);
    expect(asm.stats.emitted).toBe(2);
  });

  it("ignores signals no model reads", () => {
    const asm = new RowAssembler();
    expect(asm.add(r("s9", 1, 1), [A])).toEqual({ rows: [], rejects: [] });
    expect(asm.add(r("s1", 1, 1), [])).toEqual({ rows: [], rejects: [] });
    expect(asm.pendingRowCount("a1")).toBe(0);
    expect(asm.stats.accepted).toBe(0);
  });

  it("rejects a second value for a pending (signal, ts) and keeps the first", () => {
    const asm = new RowAssembler();
    asm.add(r("s1", 1, 5), [A]);
    const dup = asm.add(r("s1", 1, 6), [A]);
    expect(dup.rows).toEqual([]);
    expect(dup.rejects).toMatchObject([{ reason: "duplicate", count: 1, asset: "a1" }]);
    expect(rows(asm.add(r("s2", 1, 7), [A]))).toEqual([["A", 1, 5, 7]]);
    expect(asm.stats.rejected.duplicate).toBe(1);
  });

  it("rejects a reading for a row already done as duplicate", () => {
    const asm = new RowAssembler();
    asm.add(r("s1", 1, 5), [A]);
    asm.add(r("s2", 1, 6), [A]);
    const again = asm.add(r("s1", 1, 5), [A]);
    expect(again.rows).toEqual([]);
    expect(again.rejects).toMatchObject([{ reason: "duplicate" }]);
    expect(asm.pendingRowCount("a1")).toBe(0);
  });

  it("evicts older pending rows when a newer row is done, then rejects their readings", () => {
    const asm = new RowAssembler();
    asm.add(r("s1", 1, 10), [A]);
    asm.add(r("s1", 2, 11), [A]);
    asm.add(r("s1", 3, 12), [A]);
    const res = asm.add(r("s2", 2, 21), [A]);
    expect(rows(res)).toEqual([["A", 2, 11, 21]]);
    expect(res.rejects).toMatchObject([{ reason: "incomplete_row", count: 1, asset: "a1" }]);
    expect(res.rejects[0]?.detail).toContain("row at 1 ");
    expect(asm.pendingRowTimes("a1")).toEqual([3]);
    const late = asm.add(r("s2", 1, 20), [A]);
    expect(late.rejects).toMatchObject([{ reason: "out_of_order", count: 1, asset: "a1" }]);
    expect(asm.pendingRowTimes("a1")).toEqual([3]);
    expect(asm.stats.rejected).toEqual({ duplicate: 0, late: 0, out_of_order: 1, incomplete_row: 1 });
  });

  it("bounds pending rows per asset, evicting the oldest once each", () => {
    const asm = new RowAssembler({ maxPendingRows: 3 });
    for (let ts = 1; ts <= 3; ts++) expect(asm.add(r("s1", ts, ts), [A]).rejects).toEqual([]);
    const over = asm.add(r("s1", 4, 4), [A]);
    expect(over.rejects).toMatchObject([{ reason: "incomplete_row", count: 1, asset: "a1" }]);
    expect(asm.pendingRowTimes("a1")).toEqual([2, 3, 4]);
    // A new row older than every pending one is itself the oldest: evicted at once.
    const old = asm.add(r("s1", 0, 0), [A]);
    expect(old.rejects[0]?.detail).toContain("row at 0 ");
    expect(asm.pendingRowTimes("a1")).toEqual([2, 3, 4]);
    // Other assets have their own bound.
    asm.add(r("s1", 1, 1, "a2"), [A]);
    expect(asm.pendingRowCount("a2")).toBe(1);
    expect(asm.stats.rejected.incomplete_row).toBe(2);
  });

  it("rowToleranceMs keeps slightly older pending rows alive", () => {
    const asm = new RowAssembler({ rowToleranceMs: 5 });
    asm.add(r("s1", 1, 1), [A]);
    asm.add(r("s1", 7, 7), [A]);
    asm.add(r("s1", 10, 10), [A]);
    const done10 = asm.add(r("s2", 10, 100), [A]);
    expect(rows(done10)).toEqual([["A", 10, 10, 100]]);
    // Horizon 10 − 5 = 5: row 1 is evicted, row 7 is kept.
    expect(done10.rejects.map((x) => x.detail)).toEqual(["row at 1 evicted: older than done row 10"]);
    expect(asm.pendingRowTimes("a1")).toEqual([7]);
    expect(rows(asm.add(r("s2", 7, 70), [A]))).toEqual([["A", 7, 7, 70]]);
    expect(asm.add(r("s1", 4, 4), [A]).rejects).toMatchObject([{ reason: "out_of_order" }]);
    expect(asm.add(r("s1", 7, 7), [A]).rejects).toMatchObject([{ reason: "duplicate" }]);
    expect(asm.add(r("s1", 10, 10), [A]).rejects).toMatchObject([{ reason: "duplicate" }]);
    // A new row within the tolerance is accepted.
    expect(asm.add(r("s1", 6, 6), [A]).rejects).toEqual([]);
    expect(asm.pendingRowTimes("a1")).toEqual([6]);
  });

  it("keeps assets apart", () => {
    const asm = new RowAssembler();
    asm.add(r("s1", 1, 1, "a1"), [A]);
    expect(rows(asm.add(r("s2", 1, 2, "a2"), [A]))).toEqual([]);
    expect(rows(asm.add(r("s2", 1, 3, "a1"), [A]))).toEqual([["A", 1, 1, 3]]);
    expect(asm.add(r("s2", 1, 3, "a1"), [A]).rejects).toMatchObject([{ reason: "duplicate", asset: "a1" }]);
    expect(asm.pendingRowCount("a2")).toBe(1);
    asm.forgetAsset("a2");
    expect(asm.pendingRowCount("a2")).toBe(0);
  });

  it("throws on programming errors", () => {
    expect(() => new RowAssembler({ maxPendingRows: 0 })).toThrow(VigilError);
    expect(() => new RowAssembler({ rowToleranceMs: -1 })).toThrow(VigilError);
    const asm = new RowAssembler();
    expect(() => asm.add(r("s1", Number.NaN, 1), [A])).toThrow(VigilError);
    expect(() => asm.add(r("s1", 1, 1), [{ key: "E", signals: [] }])).toThrow(VigilError);
    expect(() => asm.add(r("s1", 1, 1), [{ key: "D", signals: ["s1", "s1"] }])).toThrow(
      /lists a signal twice/,
    );
  });
});
