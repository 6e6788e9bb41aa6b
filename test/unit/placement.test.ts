/**
 * The placement rule (src/inference/placement.ts `decidePlacement`): fixed settings, the
 * threshold on both sides and at equality, unmeasured models; the warm-up figure it reads;
 * and the one-line text of `vigil status`.
 */

import { describe, expect, it } from "vitest";
import { decidePlacement, describePlacement, warmupMsPerBatch } from "../../src/inference/placement.js";
import { placementText } from "../../src/tools/status.js";

describe("decidePlacement", () => {
  it("a number is fixed for every model, whatever it costs", () => {
    const zero = decidePlacement({ workers: 0, thresholdMs: 0.25, msPerBatch: 50, batch: 64 });
    expect(zero).toMatchObject({ thread: "main", mode: "fixed", thresholdMs: null, msPerBatch: 50 });
    expect(zero.reason).toBe("inference.workers = 0: every model runs on the main thread");
    const three = decidePlacement({ workers: 3, thresholdMs: 0.25, msPerBatch: 0.001, batch: 64 });
    expect(three).toMatchObject({ thread: "pool", mode: "fixed" });
    expect(three.reason).toBe("inference.workers = 3: every model runs on the worker pool");
  });

  it("auto: below the threshold on the main thread, at or above it on the pool, with the figures in the reason", () => {
    const cheap = decidePlacement({ workers: "auto", thresholdMs: 0.25, msPerBatch: 0.031, batch: 64 });
    expect(cheap).toMatchObject({
      thread: "main",
      mode: "auto",
      msPerBatch: 0.031,
      batch: 64,
      thresholdMs: 0.25,
    });
    expect(cheap.reason).toMatch(
      /^0\.031 ms per batch of 64 < 0\.250 ms \(inference\.mainThreadMaxBatchMs\): on the main thread/,
    );
    const equal = decidePlacement({ workers: "auto", thresholdMs: 0.25, msPerBatch: 0.25, batch: 64 });
    expect(equal.thread).toBe("pool");
    const slow = decidePlacement({ workers: "auto", thresholdMs: 0.25, msPerBatch: 12.5, batch: 8 });
    expect(slow).toMatchObject({ thread: "pool", msPerBatch: 12.5, batch: 8 });
    expect(slow.reason).toMatch(/^12\.50 ms per batch of 8 ≥ 0\.250 ms .*cannot stall MQTT handling$/);
    expect(describePlacement(slow)).toBe(`worker pool (${slow.reason})`);
  });

  it("auto: a model whose cost was not measured goes to the pool, and says why", () => {
    for (const msPerBatch of [undefined, Number.NaN]) {
      const p = decidePlacement({ workers: "auto", thresholdMs: 0.25, msPerBatch, batch: 64 });
      expect(p).toMatchObject({ thread: "pool", msPerBatch: null });
      expect(p.reason).toMatch(/not measured \(no timed warm-up runs: inference\.benchmarkRuns = 0\)/);
    }
    const failed = decidePlacement({
      workers: "auto",
      thresholdMs: 0.25,
      msPerBatch: undefined,
      batch: 64,
      unmeasured: "the warm-up failed: boom",
    });
    expect(failed.reason).toMatch(/not measured \(the warm-up failed: boom\)/);
  });
});

describe("warmupMsPerBatch", () => {
  it("prefers the median computing time, then the timed total, then the benchmark's rate", () => {
    expect(warmupMsPerBatch({ batch: 64, runs: 30, ms: 3, windowsPerSec: 640_000, medianRunMs: 0.04 })).toBe(
      0.04,
    );
    expect(warmupMsPerBatch({ batch: 64, runs: 30, ms: 3, windowsPerSec: 640_000 })).toBeCloseTo(0.1);
    expect(warmupMsPerBatch({ batch: 64, runs: 30, ms: Number.NaN, windowsPerSec: 640_000 })).toBeCloseTo(
      0.1,
    );
    expect(warmupMsPerBatch({ batch: 64, runs: 0, ms: 0, windowsPerSec: 0 })).toBeUndefined();
    expect(
      warmupMsPerBatch({ batch: 64, runs: 0, ms: Number.NaN, windowsPerSec: 0, error: "x" }),
    ).toBeUndefined();
    expect(warmupMsPerBatch(undefined)).toBeUndefined();
  });
});

describe("placementText (vigil status)", () => {
  it("says the thread and the figures it was decided on", () => {
    const p = (workers: "auto" | number, msPerBatch: number | undefined) =>
      decidePlacement({ workers, thresholdMs: 0.25, msPerBatch, batch: 64 });
    expect(placementText(p("auto", 0.031))).toBe("main thread (0.031 ms/batch of 64 < 0.250 ms)");
    expect(placementText(p("auto", 3))).toBe("worker pool (3.00 ms/batch of 64 ≥ 0.250 ms)");
    expect(placementText(p("auto", undefined))).toBe("worker pool (time per batch not measured)");
    expect(placementText(p(2, 3))).toBe("worker pool (inference.workers = 2)");
    expect(placementText(p(0, 3))).toBe("main thread (inference.workers = 0)");
  });
});
