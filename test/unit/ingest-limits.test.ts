import { describe, expect, it } from "vitest";

import { IngestLimits, type IngestLimitsOptions } from "../../src/ingest/limits.js";
import { ManualClock } from "../../src/system/clock.js";
import type { Reading } from "../../src/types.js";

const T0 = 1_800_000_000_000;

const OFF: IngestLimitsOptions = {
  maxAssets: 0,
  maxSignalsPerAsset: 0,
  maxReadingsPerSecond: 0,
  maxReadingsPerSecondPerAsset: 0,
  maxFutureMs: 0,
};

function setup(over: Partial<IngestLimitsOptions>) {
  const clock = new ManualClock(T0);
  const limits = new IngestLimits(clock, { ...OFF, ...over });
  const admit = (asset: string, signal = "s", tsMs = clock.nowMs()) =>
    limits.admit({ asset, signal, tsMs, value: 1 } satisfies Reading, clock.nowMs());
  return { clock, limits, admit };
}

describe("IngestLimits", () => {
  it("with every limit off, admits everything", () => {
    const { limits, admit } = setup({});
    for (let i = 0; i < 5000; i++) expect(admit(`a${i % 50}`, `s${i % 7}`, T0 + 1e12)).toBeNull();
    expect(limits.stats()).toEqual({ assets: 50, signals: 350 });
  });

  it("future_ts beyond maxFutureMs", () => {
    const { admit } = setup({ maxFutureMs: 5000 });
    expect(admit("a", "s", T0 + 5000)).toBeNull();
    expect(admit("a", "s", T0 + 5001)).toBe("future_ts");
    expect(admit("a", "s", T0 - 1e9)).toBeNull();
  });

  it("future_ts is measured from arrival, not the clock", () => {
    const clock = new ManualClock(T0);
    const limits = new IngestLimits(clock, { ...OFF, maxFutureMs: 1000 });
    const r: Reading = { asset: "a", signal: "s", tsMs: T0 + 10_000, value: 1 };
    expect(limits.admit(r, T0)).toBe("future_ts");
    expect(limits.admit(r, T0 + 9000)).toBeNull();
  });

  it("too_many_assets: known assets keep flowing, new ones are refused", () => {
    const { limits, admit } = setup({ maxAssets: 2 });
    expect(admit("a")).toBeNull();
    expect(admit("b")).toBeNull();
    expect(admit("c")).toBe("too_many_assets");
    expect(admit("a", "other")).toBeNull();
    expect(limits.assetCount).toBe(2);
    expect(limits.knowsAsset("c")).toBe(false);
  });

  it("too_many_signals per asset", () => {
    const { limits, admit } = setup({ maxSignalsPerAsset: 2 });
    expect(admit("a", "s1")).toBeNull();
    expect(admit("a", "s2")).toBeNull();
    expect(admit("a", "s3")).toBe("too_many_signals");
    expect(admit("a", "s1")).toBeNull();
    expect(admit("b", "s3")).toBeNull();
    expect(limits.signalCount("a")).toBe(2);
    expect(limits.signalCount("b")).toBe(1);
    expect(limits.signalCount("zzz")).toBe(0);
    expect(limits.stats()).toEqual({ assets: 2, signals: 3 });
  });

  it("global rate: a full second's burst, then continuous refill", () => {
    const { clock, admit } = setup({ maxReadingsPerSecond: 10 });
    for (let i = 0; i < 10; i++) expect(admit(`a${i}`)).toBeNull();
    expect(admit("a0")).toBe("rate_limited");
    clock.advance(99);
    expect(admit("a0")).toBe("rate_limited");
    clock.advance(1); // 100 ms = 1 token at 10/s
    expect(admit("a0")).toBeNull();
    expect(admit("a0")).toBe("rate_limited");
    clock.advance(60_000); // refill caps at one second's worth
    let admitted = 0;
    for (let i = 0; i < 50; i++) if (admit("a0") === null) admitted++;
    expect(admitted).toBe(10);
  });

  it("per-asset rate limits one asset without starving others", () => {
    const { clock, admit } = setup({ maxReadingsPerSecondPerAsset: 3 });
    expect([admit("a"), admit("a"), admit("a"), admit("a")]).toEqual([null, null, null, "rate_limited"]);
    expect([admit("b"), admit("b"), admit("b"), admit("b")]).toEqual([null, null, null, "rate_limited"]);
    clock.advance(500); // 1.5 tokens each
    expect([admit("a"), admit("a")]).toEqual([null, "rate_limited"]);
    clock.advance(500); // a: 0.5 + 1.5 = 2; b: 1.5 + 1.5 = 3
    expect([admit("a"), admit("a"), admit("a")]).toEqual([null, null, "rate_limited"]);
    expect([admit("b"), admit("b"), admit("b"), admit("b")]).toEqual([null, null, null, "rate_limited"]);
  });

  it("rejected readings consume no tokens", () => {
    const { clock, limits, admit } = setup({ maxReadingsPerSecond: 2, maxAssets: 1, maxFutureMs: 1000 });
    expect(admit("a")).toBeNull();
    for (let i = 0; i < 100; i++) {
      expect(admit("intruder")).toBe("too_many_assets");
      expect(admit("a", "s", clock.nowMs() + 1e6)).toBe("future_ts");
    }
    expect(admit("a")).toBeNull();
    expect(admit("a")).toBe("rate_limited");
    expect(limits.stats()).toEqual({ assets: 1, signals: 1 });
  });

  it("a rate-limited reading does not register its asset or signal", () => {
    const { clock, limits, admit } = setup({ maxReadingsPerSecond: 1, maxAssets: 1 });
    expect(admit("a")).toBeNull();
    expect(admit("b")).toBe("too_many_assets");
    expect(admit("a", "new")).toBe("rate_limited");
    expect(limits.signalCount("a")).toBe(1);
    clock.advance(1000);
    expect(admit("a", "new")).toBeNull();
    expect(limits.signalCount("a")).toBe(2);
  });

  it("an empty per-asset bucket spends no global token", () => {
    const { clock, admit } = setup({ maxReadingsPerSecond: 4, maxReadingsPerSecondPerAsset: 2 });
    expect([admit("a"), admit("a"), admit("a"), admit("a")]).toEqual([
      null,
      null,
      "rate_limited",
      "rate_limited",
    ]);
    // The global bucket still holds 2 of 4.
    expect([admit("b"), admit("b"), admit("c")]).toEqual([null, null, "rate_limited"]);
    clock.advance(250); // global +1, per-asset +0.5
    expect([admit("c"), admit("c")]).toEqual([null, "rate_limited"]);
  });

  it("rates below one per second still admit one reading at a time", () => {
    const { clock, admit } = setup({ maxReadingsPerSecond: 0.5 });
    expect(admit("a")).toBeNull();
    expect(admit("a")).toBe("rate_limited");
    clock.advance(1999);
    expect(admit("a")).toBe("rate_limited");
    clock.advance(1);
    expect(admit("a")).toBeNull();
  });

  it("a clock going backwards refills nothing", () => {
    const { clock, admit } = setup({ maxReadingsPerSecond: 1 });
    expect(admit("a")).toBeNull();
    clock.advance(-10_000);
    expect(admit("a")).toBe("rate_limited");
    clock.advance(10_000);
    expect(admit("a")).toBe("rate_limited");
    clock.advance(1000);
    expect(admit("a")).toBeNull();
  });

  it("check order: future_ts, then caps, then rate", () => {
    const { admit } = setup({ maxAssets: 1, maxReadingsPerSecond: 1, maxFutureMs: 1 });
    expect(admit("a")).toBeNull();
    expect(admit("b", "s", T0 + 10)).toBe("future_ts");
    expect(admit("b")).toBe("too_many_assets");
    expect(admit("a")).toBe("rate_limited");
  });

  it("refuses invalid options", () => {
    const clock = new ManualClock();
    expect(() => new IngestLimits(clock, { ...OFF, maxAssets: -1, maxFutureMs: Number.NaN })).toThrow(
      /ingest limits must be finite and >= 0: maxAssets, maxFutureMs/,
    );
  });
});
