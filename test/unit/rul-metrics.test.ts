/**
 * RUL metrics used by `npm run eval:cmapss`: RMSE, the PHM08 score, the RUL file reader and
 * the "last window per engine" rule. Values checked against hand computations.
 */

import { describe, expect, it } from "vitest";
import {
  engineUnit,
  lastPerEngine,
  parseRulFile,
  phm08Score,
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
