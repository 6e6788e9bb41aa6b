/**
 * RUL metrics used by `npm run eval:cmapss`: RMSE, the PHM08 score, the RUL file reader,
 * the "last window per engine" rule, the batch CSV reader and the live-vs-batch window
 * comparison. Values checked against hand computations.
 */

import { describe, expect, it } from "vitest";
import {
  compareWindows,
  engineUnit,
  lastPerEngine,
  parseRulFile,
  phm08Score,
  readBatchCsv,
  rmse,
  scoreEngines,
} from "../../src/tools/rul-metrics.js";

describe("rmse and the PHM08 score", () => {
  it("rmse is the root of the mean squared difference", () => {
    expect(rmse([1, 2, 3], [1, 2, 3])).toBe(0);
    expect(rmse([3, 0], [0, 4])).toBeCloseTo(Math.sqrt((9 + 16) / 2), 12);
    expect(rmse([], [])).toBeNaN();
    expect(() => rmse([1], [1, 2])).toThrow(RangeError);
  });

  it("the score punishes late predictions (e^(d/10) − 1) more than early ones (e^(−d/13) − 1)", () => {
    expect(phm08Score([10], [10])).toBe(0);
    const late = phm08Score([20], [10]); // d = +10
    const early = phm08Score([0], [10]); // d = −10
    expect(late).toBeCloseTo(Math.E - 1, 12);
    expect(early).toBeCloseTo(Math.exp(10 / 13) - 1, 12);
    expect(late).toBeGreaterThan(early);
    expect(phm08Score([20, 0], [10, 10])).toBeCloseTo(late + early, 12);
  });
});

describe("RUL file and engines", () => {
  it("reads one number per line, ignoring blank lines and trailing spaces", () => {
    expect(parseRulFile("112 \n98\r\n\n69\n")).toEqual([112, 98, 69]);
    expect(() => parseRulFile("12\nabc\n")).toThrow(/line 2/);
  });

  it("engine-<unit> names map to units; other assets do not", () => {
    expect(engineUnit("engine-7")).toBe(7);
    expect(engineUnit("engine-100")).toBe(100);
    expect(engineUnit("pump-01")).toBeUndefined();
    expect(engineUnit("engine-7b")).toBeUndefined();
  });

  it("takes each engine's last window, whatever the order, and reports engines without one", () => {
    const last = lastPerEngine([
      { asset: "engine-1", windowEnd: 31_000, value: 50 },
      { asset: "engine-2", windowEnd: 40_000, value: 20 },
      { asset: "engine-1", windowEnd: 33_000, value: 40 },
      { asset: "engine-1", windowEnd: 32_000, value: 45 },
      { asset: "pump-01", windowEnd: 99_000, value: 1 },
    ]);
    expect([...last.keys()].sort()).toEqual([1, 2]);
    expect(last.get(1)?.value).toBe(40);
    const s = scoreEngines(last, [30, 20, 130]);
    expect(s.engines).toBe(3);
    expect(s.predicted).toBe(2);
    expect(s.missing).toEqual([3]);
    expect(s.rmse).toBeCloseTo(Math.sqrt((100 + 0) / 2), 12);
    expect(s.score).toBeCloseTo(Math.exp(1) - 1, 12);
  });

  it("the capped-truth figures compare against min(truth, 125)", () => {
    const last = lastPerEngine([{ asset: "engine-1", windowEnd: 1, value: 125 }]);
    const s = scoreEngines(last, [140]);
    expect(s.rmse).toBeCloseTo(15, 12);
    expect(s.rmseCappedTruth).toBe(0);
    expect(s.scoreCappedTruth).toBe(0);
  });
});

describe("batch CSV and the live-vs-batch comparison", () => {
  it("reads one output column by name; an empty cell (non-finite output) reads as NaN", () => {
    const csv =
      "asset,windowStart,windowEnd,health,rul\r\nengine-1,1000,30000,0.5,88.25\nengine-2,1000,30000,0.1,\n";
    expect(readBatchCsv(csv, "rul")).toEqual([
      { asset: "engine-1", windowEnd: 30_000, value: 88.25 },
      { asset: "engine-2", windowEnd: 30_000, value: NaN },
    ]);
    expect(() => readBatchCsv(csv, "p_fail")).toThrow(/p_fail/);
    expect(() => readBatchCsv("asset,windowStart,windowEnd,rul\nengine-1,0,soon,1\n", "rul")).toThrow(
      /line 2/,
    );
    expect(readBatchCsv("asset,windowStart,windowEnd,rul\n", "rul")).toEqual([]);
  });

  const w = (
    unit: number,
    cycle: number,
    value: number,
  ): { asset: string; windowEnd: number; value: number } => ({
    asset: `engine-${unit}`,
    windowEnd: cycle * 1000,
    value,
  });

  it("matches windows by asset and window end, whatever the arrival order, and finds the largest difference", () => {
    const offline = [w(1, 30, 100), w(1, 31, 99), w(2, 30, 50)];
    const live = [w(2, 30, 50.00002), w(1, 31, 99), w(1, 30, 100.00005)];
    const c = compareWindows(offline, live, [98, 40, 7]);
    expect(c).toMatchObject({ compared: 3, missingLive: 0, extraLive: 0, firstMissing: "" });
    expect(c.maxAbsDiff).toBeCloseTo(5e-5, 9);
    expect(c.worst).toMatch(/^engine-1 window ending 30000: live 100.00005, batch 100$/);
    // Per engine: its last window on both sides; engine 3 (in the RUL file, no window) is listed empty.
    expect(c.engines.map((e) => [e.unit, e.truth, e.batch, e.live, e.windows])).toEqual([
      [1, 98, 99, 99, 2],
      [2, 40, 50, 50.00002, 1],
      [3, 7, undefined, undefined, 0],
    ]);
  });

  it("counts windows missing live and windows only live has; NaN against a number is an infinite difference", () => {
    const offline = [w(1, 30, 100), w(1, 31, 99), w(1, 32, 98)];
    const live = [w(1, 30, 100), w(1, 32, NaN), w(1, 33, 97), w(4, 30, 1)];
    const c = compareWindows(offline, live, [90]);
    expect(c.compared).toBe(2);
    expect(c.missingLive).toBe(1);
    expect(c.firstMissing).toBe("engine-1 window ending 31000: not received live");
    expect(c.extraLive).toBe(2);
    expect(c.maxAbsDiff).toBe(Infinity);
    expect(c.engines.find((e) => e.unit === 1)).toMatchObject({ batch: 98, live: 97, windows: 3 });
    expect(c.engines.find((e) => e.unit === 4)).toMatchObject({
      truth: NaN,
      batch: undefined,
      live: 1,
      windows: 0,
    });
  });
});
