import { describe, expect, it } from "vitest";
import { VigilError } from "../../src/errors.js";
import { CountWindow } from "../../src/window/count-window.js";
import type { EmittedWindow } from "../../src/window/types.js";

/** Pushes rows ts = 1..n with values [ts, 10·ts]; returns the rows (1-based) that emitted, and the windows. */
function run(size: number, hop: number, n: number): { at: number[]; windows: EmittedWindow[] } {
  const w = new CountWindow({ size, hop }, 2);
  const at: number[] = [];
  const windows: EmittedWindow[] = [];
  for (let ts = 1; ts <= n; ts++) {
    const r = w.push(ts, [ts, 10 * ts]);
    if (r.window) {
      at.push(ts);
      windows.push(r.window);
    }
  }
  return { at, windows };
}

describe("CountWindow", () => {
  it("emits first at the S-th row, then every H rows", () => {
    const { at, windows } = run(3, 2, 8);
    expect(at).toEqual([3, 5, 7]);
    expect(windows[0]).toEqual({
      windowStartMs: 1,
      windowEndMs: 3,
      tsMs: 3,
      matrix: [
        [1, 2, 3],
        [10, 20, 30],
      ],
    });
    expect(windows[1]).toEqual({
      windowStartMs: 3,
      windowEndMs: 5,
      tsMs: 5,
      matrix: [
        [3, 4, 5],
        [30, 40, 50],
      ],
    });
    expect(windows[2]?.matrix).toEqual([
      [5, 6, 7],
      [50, 60, 70],
    ]);
  });

  it("hop 1 emits at every row from the S-th", () => {
    const { at, windows } = run(4, 1, 7);
    expect(at).toEqual([4, 5, 6, 7]);
    expect(windows.map((w) => [w.windowStartMs, w.windowEndMs])).toEqual([
      [1, 4],
      [2, 5],
      [3, 6],
      [4, 7],
    ]);
  });

  it("hop larger than size leaves rows out", () => {
    const { at, windows } = run(2, 3, 9);
    expect(at).toEqual([2, 5, 8]);
    expect(windows.map((w) => w.matrix[0])).toEqual([
      [1, 2],
      [4, 5],
      [7, 8],
    ]);
  });

  it("size 1", () => {
    const { at, windows } = run(1, 1, 3);
    expect(at).toEqual([1, 2, 3]);
    expect(windows[2]).toEqual({ windowStartMs: 3, windowEndMs: 3, tsMs: 3, matrix: [[3], [30]] });
  });

  it("rejects duplicate and out-of-order rows without changing state", () => {
    const w = new CountWindow({ size: 2, hop: 1 }, 1);
    expect(w.push(1000, [1])).toEqual({});
    expect(w.push(1000, [99])).toEqual({ reject: "duplicate" });
    expect(w.push(500, [99])).toEqual({ reject: "out_of_order" });
    expect(w.rowsHeld).toBe(1);
    expect(w.rowsAccepted).toBe(1);
    expect(w.lastRowTsMs).toBe(1000);
    const r = w.push(2000, [2]);
    expect(r.window).toEqual({ windowStartMs: 1000, windowEndMs: 2000, tsMs: 2000, matrix: [[1, 2]] });
    expect(w.push(1999, [3])).toEqual({ reject: "out_of_order" });
    expect(w.stats.rejected).toEqual({ duplicate: 1, late: 0, out_of_order: 2, incomplete_row: 0 });
    expect(w.stats.accepted).toBe(2);
    expect(w.stats.emitted).toBe(1);
  });

  it("holds at most S rows and emits fresh copies", () => {
    const w = new CountWindow({ size: 3, hop: 1 }, 1);
    const got: number[][] = [];
    for (let ts = 1; ts <= 5; ts++) {
      const m = w.push(ts, [ts]).window?.matrix;
      if (m) {
        got.push(m[0] as number[]);
        (m[0] as number[])[0] = -1; // mutating an emitted window must not affect the next
      }
    }
    expect(w.rowsHeld).toBe(3);
    expect(got).toEqual([
      [-1, 2, 3],
      [-1, 3, 4],
      [-1, 4, 5],
    ]);
  });

  it("throws on programming errors", () => {
    expect(() => new CountWindow({ size: 0, hop: 1 }, 1)).toThrow(VigilError);
    expect(() => new CountWindow({ size: 2, hop: 1.5 }, 1)).toThrow(VigilError);
    expect(() => new CountWindow({ size: 2, hop: 1 }, 0)).toThrow(VigilError);
    const w = new CountWindow({ size: 2, hop: 1 }, 2);
    expect(() => w.push(1, [1])).toThrow(/expected 2/);
    expect(() => w.push(Number.NaN, [1, 2])).toThrow(VigilError);
  });
});
