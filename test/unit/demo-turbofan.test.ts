/**
 * The demo's turbofan degradation generator (src/demo/turbofan.ts) with the parameters fitted
 * to C-MAPSS FD001: pure, seeded, C-MAPSS-shaped rows, lives that run to failure and restart,
 * and sensors that drift the way the fitted degradation says.
 */

import { describe, expect, it } from "vitest";
import { CMAPSS_COLUMNS } from "../../src/tools/formats.js";
import { createTurbofan, engineRow, engineTruth } from "../../src/demo/turbofan.js";
import { FD001_PARAMS } from "../../src/demo/turbofan-params.js";

const COLUMNS = CMAPSS_COLUMNS.slice(1); // cycle, op1..op3, s1..s21: all but the unit

describe("turbofan generator", () => {
  it("gives the same rows for the same seed and cycle, in any order, and other rows for another seed", () => {
    const a = createTurbofan(42, FD001_PARAMS);
    const b = createTurbofan(42, FD001_PARAMS);
    const later = engineRow(a, 500);
    expect(engineRow(b, 3)).toEqual(engineRow(a, 3));
    expect(engineRow(b, 500)).toEqual(later);
    expect(engineRow(createTurbofan(43, FD001_PARAMS), 3)).not.toEqual(engineRow(a, 3));
  });

  it("publishes every C-MAPSS column, finite and rounded to the column's recorded decimals", () => {
    const e = createTurbofan(1, FD001_PARAMS);
    for (let k = -30; k < 300; k += 7) {
      const row = engineRow(e, k);
      expect(Object.keys(row)).toEqual(COLUMNS);
      expect(row.cycle).toBe(engineTruth(e, k).cycle); // the age counter: cycle in the current life
      for (const c of FD001_PARAMS.columns) {
        const v = row[c.name] as number;
        expect(Number.isFinite(v), c.name).toBe(true);
        expect(Math.abs(v * 10 ** c.decimals - Math.round(v * 10 ** c.decimals)), c.name).toBeLessThan(1e-6);
      }
    }
  });

  it("runs each life to failure (RUL 0 at its last cycle), then starts a new one at cycle 1", () => {
    const e = createTurbofan(7, FD001_PARAMS, { initialWear: 0.5 });
    const first = engineTruth(e, 0);
    expect(first.lifeIndex).toBe(0);
    expect(first.cycle).toBe(Math.floor(0.5 * first.cycles) + 1);
    let k = 0;
    let t = engineTruth(e, k);
    const lives: number[] = [];
    while (lives.length < 5) {
      const next = engineTruth(e, k + 1);
      if (next.lifeIndex === t.lifeIndex) {
        expect(next.rul).toBe(t.rul - 1);
        expect(next.cycle).toBe(t.cycle + 1);
      } else {
        expect(t.rul).toBe(0);
        expect(next.cycle).toBe(1);
        expect(next.lifeIndex).toBe(t.lifeIndex + 1);
        lives.push(next.cycles);
      }
      k++;
      t = next;
    }
    for (const n of lives) {
      expect(n).toBeGreaterThanOrEqual(FD001_PARAMS.lifeMin);
      expect(n).toBeLessThanOrEqual(FD001_PARAMS.lifeMax);
    }
  });

  it("without noise, each informative sensor moves monotonically by its fitted degradation toward failure", () => {
    const e = createTurbofan(3, FD001_PARAMS, { initialWear: 0, noiseScale: 0 });
    const cycles = engineTruth(e, 0).cycles;
    const start = engineRow(e, 0);
    const end = engineRow(e, cycles - 1);
    for (const c of FD001_PARAMS.columns) {
      const moved = (end[c.name] as number) - (start[c.name] as number);
      const expected = c.degradation * (1 - Math.exp(-(cycles - 1) / FD001_PARAMS.tauCycles));
      expect(Math.abs(moved - expected), c.name).toBeLessThanOrEqual(1.01 * 10 ** -c.decimals);
    }
    // s4 (HPC outlet temperature) rises and s12 (fuel flow ratio) falls as the HPC degrades.
    expect((end.s4 as number) - (start.s4 as number)).toBeGreaterThan(15);
    expect((end.s12 as number) - (start.s12 as number)).toBeLessThan(-1);
  });

  it("noise, offsets and lives have the fitted spread over a fleet", () => {
    const lives = Array.from(
      { length: 400 },
      (_, i) => engineTruth(createTurbofan(i, FD001_PARAMS), 0).cycles,
    );
    const mean = lives.reduce((s, v) => s + v, 0) / lives.length;
    expect(mean).toBeGreaterThan(180);
    expect(mean).toBeLessThan(235); // FD001 training engines: 206 on average
    const e = createTurbofan(11, FD001_PARAMS, { initialWear: 0 });
    const s4 = Array.from({ length: 60 }, (_, k) => engineRow(e, k).s4 as number);
    const m = s4.reduce((s, v) => s + v, 0) / s4.length;
    const sd = Math.sqrt(s4.reduce((s, v) => s + (v - m) ** 2, 0) / s4.length);
    const fitted = FD001_PARAMS.columns.find((c) => c.name === "s4")?.noise ?? 0;
    expect(sd).toBeGreaterThan(0.6 * fitted);
    expect(sd).toBeLessThan(1.6 * fitted);
  });
});
