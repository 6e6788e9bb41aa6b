/**
 * Readers of recorded data (`vigil replay` / `vigil batch`): C-MAPSS text and CSV.
 * All inputs are synthesised here in the real formats; no data set is copied in.
 */

import { describe, expect, it } from "vitest";
import { CMAPSS_COLUMNS, parseCmapss, parseCsv, parseTimeCell } from "../../src/tools/formats.js";

const SIGNALS = ["op1", "op2", "op3", ...Array.from({ length: 21 }, (_, i) => `s${i + 1}`)];

/** One C-MAPSS line: unit, cycle, 24 values, written the way the NASA files are (two trailing spaces). */
function cmapssLine(unit: number, cycle: number, values: readonly number[]): string {
  return `${unit} ${cycle} ${values.map((v) => String(v)).join(" ")}  `;
}

/** 24 distinct values for a (unit, cycle): value k is unit*1000 + cycle + k/100. */
function valuesFor(unit: number, cycle: number): number[] {
  return SIGNALS.map((_, k) => unit * 1000 + cycle + k / 100);
}

describe("parseCmapss", () => {
  it("knows the 26 columns: unit, cycle, op1..op3, s1..s21", () => {
    expect([...CMAPSS_COLUMNS]).toEqual(["unit", "cycle", ...SIGNALS]);
  });

  it("reads one row per line: asset engine-<unit>, ts = start + cycle × 1000, cycle and 24 named values", () => {
    const text = [
      cmapssLine(1, 1, valuesFor(1, 1)),
      cmapssLine(1, 2, valuesFor(1, 2)),
      cmapssLine(2, 1, valuesFor(2, 1)),
      "",
    ].join("\n");
    const start = 1_700_000_000_000;
    const r = parseCmapss(text, start);
    expect(r.skipped).toBe(0);
    expect(r.problems).toEqual([]);
    expect(r.rows.map((x) => [x.asset, x.tsMs])).toEqual([
      ["engine-1", start + 1000],
      ["engine-1", start + 2000],
      ["engine-2", start + 1000],
    ]);
    const first = r.rows[0];
    expect(Object.keys(first?.values ?? {})).toEqual(["cycle", ...SIGNALS]);
    SIGNALS.forEach((s, k) => expect(first?.values[s]).toBe(1000 + 1 + k / 100));
    // The cycle column is also a value: the engine's age, an input of turbofan-rul 2.x.
    expect(r.rows.map((x) => x.values.cycle)).toEqual([1, 2, 1]);
  });

  it("takes C-MAPSS-shaped lines (made-up values: decimals, negatives, integers, CRLF, tabs)", () => {
    const line =
      "3 17 -0.0012 -0.0003 100.0 511.25 633.40 1575.10 1391.35 12.50 20.02 550.75 2381.10 9031.40 1.25 46.10 517.30 2381.20 8120.45 8.3021 0.02 390 2380 100.00 38.75 23.2705  ";
    const r = parseCmapss(`${line}\r\n${line.replace(/ /g, "\t")}\r\n`, 0);
    expect(r.skipped).toBe(0);
    expect(r.rows).toHaveLength(2);
    const row = r.rows[0];
    expect(row?.asset).toBe("engine-3");
    expect(row?.tsMs).toBe(17_000);
    expect(row?.values.cycle).toBe(17);
    expect(row?.values.op1).toBe(-0.0012);
    expect(row?.values.op3).toBe(100);
    expect(row?.values.s1).toBe(511.25);
    expect(row?.values.s17).toBe(390);
    expect(row?.values.s21).toBe(23.2705);
    expect(r.rows[1]).toEqual(row);
  });

  it("counts bad lines (too few columns, not numbers) with their line numbers, skips blank ones, keeps going", () => {
    const good = cmapssLine(1, 1, valuesFor(1, 1));
    const short = cmapssLine(1, 2, valuesFor(1, 2).slice(0, 20));
    const word = cmapssLine(1, 3, valuesFor(1, 3)).replace(" 1003.05 ", " abc ");
    const nan = cmapssLine(1, 4, valuesFor(1, 4)).replace(" 1004.05 ", " NaN ");
    const text = [good, short, "", "   ", word, nan, cmapssLine(1, 5, valuesFor(1, 5))].join("\n");
    const r = parseCmapss(text, 0);
    expect(r.rows.map((x) => x.tsMs)).toEqual([1000, 5000]);
    expect(r.skipped).toBe(3);
    expect(r.problems).toHaveLength(3);
    expect(r.problems[0]).toMatch(/line 2\b/);
    expect(r.problems[1]).toMatch(/line 5\b/);
    expect(r.problems[2]).toMatch(/line 6\b/);
  });

  it("keeps at most a few problem texts but counts every bad line", () => {
    const text = Array.from({ length: 20 }, () => "garbage").join("\n");
    const r = parseCmapss(text, 0);
    expect(r.rows).toEqual([]);
    expect(r.skipped).toBe(20);
    expect(r.problems.length).toBeGreaterThan(0);
    expect(r.problems.length).toBeLessThanOrEqual(10);
  });

  it("returns nothing for empty text", () => {
    expect(parseCmapss("", 0)).toEqual({ rows: [], skipped: 0, problems: [] });
  });
});

describe("parseCsv", () => {
  it("reads a comma file with asset and epoch-ms ts columns; every other column is a signal", () => {
    const text = [
      "asset,ts,temp,vib",
      "pump-1,1700000000000,20.5,0.1",
      "pump-2,1700000001000,21,-0.2",
      "",
    ].join("\n");
    const r = parseCsv(text, "fallback", 0);
    expect(r.skipped).toBe(0);
    expect(r.rows).toEqual([
      { asset: "pump-1", tsMs: 1_700_000_000_000, values: { temp: 20.5, vib: 0.1 } },
      { asset: "pump-2", tsMs: 1_700_000_001_000, values: { temp: 21, vib: -0.2 } },
    ]);
  });

  it("reads a semicolon file (the separator the header uses more)", () => {
    const text = [
      "asset;timestamp;temp;vib",
      "pump-1;1700000000000;20.5;0.1",
      "pump-1;1700000001000;21;0.2",
    ].join("\r\n");
    const r = parseCsv(text, "fallback", 0);
    expect(r.skipped).toBe(0);
    expect(r.rows).toEqual([
      { asset: "pump-1", tsMs: 1_700_000_000_000, values: { temp: 20.5, vib: 0.1 } },
      { asset: "pump-1", tsMs: 1_700_000_001_000, values: { temp: 21, vib: 0.2 } },
    ]);
  });

  it("honours double quotes: separators and doubled quotes inside a quoted cell", () => {
    const text = ['"asset","ts","temp, C","say ""hi"""', '"pump,1","1700000000000","20.5","7"'].join("\n");
    const r = parseCsv(text, "fallback", 0);
    expect(r.skipped).toBe(0);
    expect(r.rows).toEqual([
      { asset: "pump,1", tsMs: 1_700_000_000_000, values: { "temp, C": 20.5, 'say "hi"': 7 } },
    ]);
  });

  it("uses the default asset without an asset column, and start + index × 1000 without a time column", () => {
    const text = ["temp,vib", "1,2", "3,4", "5,6"].join("\n");
    const r = parseCsv(text, "line-7", 5_000);
    expect(r.rows).toEqual([
      { asset: "line-7", tsMs: 5_000, values: { temp: 1, vib: 2 } },
      { asset: "line-7", tsMs: 6_000, values: { temp: 3, vib: 4 } },
      { asset: "line-7", tsMs: 7_000, values: { temp: 5, vib: 6 } },
    ]);
  });

  it("reads ISO-8601 times and `YYYY-MM-DD hh:mm:ss` as UTC, in ts, timestamp or datetime columns", () => {
    const iso = parseCsv("ts,x\n2026-11-22T10:00:00.123Z,1\n2026-11-22T11:00:00+01:00,2", "a", 0);
    expect(iso.rows.map((r) => r.tsMs)).toEqual([
      Date.UTC(2026, 10, 22, 10, 0, 0, 123),
      Date.UTC(2026, 10, 22, 10),
    ]);

    const naive = parseCsv("datetime,x\n2026-11-22 10:00:00,1\n2026-11-22 10:00:01,2", "a", 0);
    expect(naive.skipped).toBe(0);
    expect(naive.rows.map((r) => r.tsMs)).toEqual([
      Date.UTC(2026, 10, 22, 10, 0, 0),
      Date.UTC(2026, 10, 22, 10, 0, 1),
    ]);
    // the time column is not a signal
    expect(naive.rows[0]?.values).toEqual({ x: 1 });

    const upper = parseCsv("Asset,Timestamp,x\np,1700000000000,1", "a", 0);
    expect(upper.rows).toEqual([{ asset: "p", tsMs: 1_700_000_000_000, values: { x: 1 } }]);
  });

  it("parseTimeCell: epoch ms, ISO, naive UTC; undefined for what is not a time", () => {
    expect(parseTimeCell("1700000000000")).toBe(1_700_000_000_000);
    expect(parseTimeCell("2026-01-02T03:04:05Z")).toBe(Date.UTC(2026, 0, 2, 3, 4, 5));
    expect(parseTimeCell("2026-01-02 03:04:05")).toBe(Date.UTC(2026, 0, 2, 3, 4, 5));
    expect(parseTimeCell("2026-01-02 03:04:05.250")).toBe(Date.UTC(2026, 0, 2, 3, 4, 5, 250));
    expect(parseTimeCell("yesterday")).toBeUndefined();
    expect(parseTimeCell("")).toBeUndefined();
  });

  it("leaves empty and non-numeric cells out of the row, keeps the rest", () => {
    const text = [
      "asset,ts,a,b,c",
      "p,1700000000000,1,,3",
      "p,1700000001000,x,2,NaN",
      "p,1700000002000,4,5",
    ].join("\n");
    const r = parseCsv(text, "fallback", 0);
    expect(r.skipped).toBe(0);
    expect(r.rows.map((x) => x.values)).toEqual([{ a: 1, c: 3 }, { b: 2 }, { a: 4, b: 5 }]);
  });

  it("counts bad lines (bad time, empty asset, no numeric value) and keeps going", () => {
    const text = [
      "asset,ts,a",
      "p,1700000000000,1",
      "p,not-a-time,2",
      ",1700000002000,3",
      "p,1700000003000,",
      "p,1700000004000,oops",
      "",
      "p,1700000005000,6",
    ].join("\n");
    const r = parseCsv(text, "fallback", 0);
    expect(r.rows.map((x) => x.values.a)).toEqual([1, 6]);
    expect(r.skipped).toBe(4);
    expect(r.problems).toHaveLength(4);
    expect(r.problems[0]).toMatch(/line 3\b/);
    expect(r.problems[1]).toMatch(/line 4\b/);
  });

  it("ignores a byte-order mark and a header-only file", () => {
    expect(parseCsv("\uFEFFasset,x\np,1", "d", 0).rows).toEqual([{ asset: "p", tsMs: 0, values: { x: 1 } }]);
    expect(parseCsv("asset,x\n", "d", 0)).toEqual({ rows: [], skipped: 0, problems: [] });
  });
});
