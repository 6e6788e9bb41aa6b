/**
 * The benchmark's traffic (bench/lib/workload.ts): which rows close windows, the payloads the
 * publisher sends and the model input shapes, for both workloads, read from the shipped
 * manifests. The measuring side counts expected outputs from these numbers, so they must be
 * right for the bench to wait for the right number of predictions.
 */

import { describe, expect, it } from "vitest";
import { PayloadSource, assetIndex, assetName, windowsClosed, workload } from "../../bench/lib/workload.js";

describe("bench workload: turbofan (turbofan-rul's count window)", () => {
  const w = workload("turbofan");

  it("serves the shipped turbofan-rul package, 15 inputs, count window of 30 rows, hop 1", () => {
    expect(w.model).toBe("turbofan-rul");
    expect(w.modelSignals).toBe(15);
    expect(w.defaultSignals).toBe(15);
    expect(w.inputDims(64)).toEqual([64, 30, 15]);
    expect([28, 29, 30, 31].map((r) => w.closes(r))).toEqual([false, true, true, true]);
    expect(windowsClosed(0, 50, w)).toBe(21);
    expect(assetName(w, 41)).toBe("engine-0042");
    expect(assetIndex("engine-0042")).toBe(41);
  });

  it("rows carry the model's 14 sensors and cycle; more signals add further C-MAPSS columns", () => {
    const t0 = 1_700_000_000_000;
    const exact = JSON.parse(new PayloadSource("turbofan", 3, t0, 15).payload(2, 5)) as {
      ts: number;
      values: Record<string, number>;
    };
    expect(exact.ts).toBe(t0 + 5_000);
    expect(Object.keys(exact.values).sort()).toEqual([...w.manifest.input.signals].sort());
    expect(exact.values.cycle).toBeGreaterThanOrEqual(1);
    const wider = JSON.parse(new PayloadSource("turbofan", 3, t0, 18).payload(2, 5)) as {
      values: Record<string, number>;
    };
    expect(Object.keys(wider.values)).toHaveLength(18);
    for (const s of w.manifest.input.signals) expect(wider.values[s]).toBe(exact.values[s]);
    expect(() => new PayloadSource("turbofan", 1, t0, 14)).toThrow(/at least 15/);
  });
});

describe("bench workload: pump (pump-health's time window)", () => {
  const w = workload("pump");

  it("time window 10 s, hop 2 s: row 10 closes the first window, then every second row", () => {
    expect(w.model).toBe("pump-health");
    expect(w.inputDims(8)).toEqual([8, 16]);
    expect(windowsClosed(0, 12, w)).toBe(1);
    expect(windowsClosed(10, 20, w)).toBe(5);
    expect(assetName(w, 0)).toBe("pump-0001");
  });

  it("rows carry the model's four signals and S − 4 others", () => {
    const p = JSON.parse(new PayloadSource("pump", 2, 0, 14).payload(1, 3)) as {
      values: Record<string, number>;
    };
    expect(Object.keys(p.values)).toHaveLength(14);
    for (const s of w.manifest.input.signals) expect(typeof p.values[s]).toBe("number");
  });
});
