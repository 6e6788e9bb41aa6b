import { describe, expect, it } from "vitest";

import { REJECT_REASONS, RejectCounter, RejectLogger } from "../../src/ingest/reject-log.js";
import { ManualClock } from "../../src/system/clock.js";
import type { Reject } from "../../src/types.js";

class FakeLogger {
  readonly lines: { obj: Record<string, unknown>; msg: string }[] = [];
  warn(obj: Record<string, unknown>, msg: string): void {
    this.lines.push({ obj, msg });
  }
}

describe("RejectCounter", () => {
  it("sums counts by reason; snapshot has every reason", () => {
    const c = new RejectCounter();
    c.addAll([
      { reason: "bad_ts", count: 3, asset: "a" },
      { reason: "not_json", count: 1, asset: "b" },
      { reason: "bad_ts", count: 2, asset: "b" },
      { reason: "unknown_topic", count: 1 },
    ]);
    const snap = c.snapshot();
    expect(Object.keys(snap)).toEqual([...REJECT_REASONS]);
    expect(snap.bad_ts).toBe(5);
    expect(snap.not_json).toBe(1);
    expect(snap.unknown_topic).toBe(1);
    expect(snap.rate_limited).toBe(0);
    expect(c.count("bad_ts")).toBe(5);
    expect(c.total()).toBe(7);
  });

  it("ignores zero, negative and non-finite counts", () => {
    const c = new RejectCounter();
    c.add({ reason: "late", count: 0 });
    c.add({ reason: "late", count: -4 });
    c.add({ reason: "late", count: Number.NaN });
    c.add({ reason: "late", count: Number.POSITIVE_INFINITY });
    expect(c.total()).toBe(0);
  });

  it("top assets, most first, ties by name", () => {
    const c = new RejectCounter();
    c.add({ reason: "bad_ts", count: 2, asset: "b" });
    c.add({ reason: "bad_shape", count: 5, asset: "a" });
    c.add({ reason: "bad_shape", count: 2, asset: "c" });
    c.add({ reason: "bad_shape", count: 1, asset: "b" });
    expect(c.topAssets(2)).toEqual([
      { asset: "a", count: 5 },
      { asset: "b", count: 3 },
    ]);
    expect(c.topAssets(0)).toEqual([]);
  });

  it("tracks at most maxTrackedAssets by name", () => {
    const c = new RejectCounter({ maxTrackedAssets: 2 });
    for (const asset of ["a", "b", "c", "d", "a"]) c.add({ reason: "too_many_assets", count: 1, asset });
    expect(c.topAssets(10)).toEqual([
      { asset: "a", count: 2 },
      { asset: "b", count: 1 },
    ]);
    expect(c.untrackedAssetCount).toBe(2);
    expect(c.count("too_many_assets")).toBe(5);
  });

  it("snapshots are copies", () => {
    const c = new RejectCounter();
    const snap = c.snapshot();
    c.add({ reason: "late", count: 1 });
    expect(snap.late).toBe(0);
    expect(c.snapshot().late).toBe(1);
  });
});

describe("RejectLogger", () => {
  const r = (reason: Reject["reason"], count = 1, detail?: string, asset?: string): Reject => {
    const out: Reject = { reason, count };
    if (detail !== undefined) out.detail = detail;
    if (asset !== undefined) out.asset = asset;
    return out;
  };

  it("logs the first reject at once, suppresses the rest within the interval", () => {
    const log = new FakeLogger();
    const clock = new ManualClock(0);
    const rl = new RejectLogger(log, clock);
    rl.log(r("bad_ts", 1, "first", "m1"));
    expect(log.lines).toEqual([
      {
        obj: { reason: "bad_ts", count: 1, suppressed: 0, detail: "first", asset: "m1" },
        msg: "ingest reject: bad_ts",
      },
    ]);
    clock.advance(1000);
    rl.log(r("bad_ts", 2, "second", "m1"));
    clock.advance(8999);
    rl.log(r("bad_ts", 3, "third", "m2"));
    expect(log.lines).toHaveLength(1);
    clock.advance(1); // 10 s after the first line
    rl.log(r("bad_ts", 4, "fourth", "m3"));
    expect(log.lines).toHaveLength(2);
    expect(log.lines[1]).toEqual({
      obj: { reason: "bad_ts", count: 4, suppressed: 5, detail: "fourth", asset: "m3" },
      msg: "ingest reject: bad_ts",
    });
  });

  it("limits each reason separately", () => {
    const log = new FakeLogger();
    const rl = new RejectLogger(log, new ManualClock(0));
    rl.logAll([r("bad_ts"), r("not_json"), r("bad_ts"), r("not_json"), r("rate_limited", 50)]);
    expect(log.lines.map((l) => [l.obj["reason"], l.obj["count"]])).toEqual([
      ["bad_ts", 1],
      ["not_json", 1],
      ["rate_limited", 50],
    ]);
  });

  it("honours a custom interval", () => {
    const log = new FakeLogger();
    const clock = new ManualClock(0);
    const rl = new RejectLogger(log, clock, { intervalMs: 100 });
    for (let t = 0; t < 1000; t += 10) {
      rl.log(r("late"));
      clock.advance(10);
    }
    expect(log.lines).toHaveLength(10);
    expect(log.lines.slice(1).every((l) => l.obj["suppressed"] === 9)).toBe(true);
  });

  it("flush reports the tail of a burst once the interval has passed", () => {
    const log = new FakeLogger();
    const clock = new ManualClock(0);
    const rl = new RejectLogger(log, clock);
    rl.log(r("bad_name", 1, "a", "m1"));
    rl.log(r("bad_name", 2, "b", "m2"));
    rl.log(r("bad_name", 3, "c", "m3"));
    rl.flush();
    expect(log.lines).toHaveLength(1);
    clock.advance(10_000);
    rl.flush();
    expect(log.lines[1]).toEqual({
      obj: { reason: "bad_name", count: 0, suppressed: 5, detail: "c", asset: "m3" },
      msg: "ingest reject: bad_name",
    });
    // Nothing left to report; a new reject right after the summary is suppressed again.
    rl.flush();
    rl.log(r("bad_name"));
    expect(log.lines).toHaveLength(2);
  });

  it("flush with force reports everything pending (shutdown)", () => {
    const log = new FakeLogger();
    const rl = new RejectLogger(log, new ManualClock(0));
    rl.logAll([r("bad_ts"), r("bad_ts", 4), r("not_json")]);
    rl.flush({ force: true });
    expect(log.lines.map((l) => [l.obj["reason"], l.obj["suppressed"]])).toEqual([
      ["bad_ts", 0],
      ["not_json", 0],
      ["bad_ts", 4],
    ]);
  });

  it("a clock going backwards makes the next line due", () => {
    const log = new FakeLogger();
    const clock = new ManualClock(50_000);
    const rl = new RejectLogger(log, clock);
    rl.log(r("late"));
    clock.set(1000);
    rl.log(r("late"));
    expect(log.lines).toHaveLength(2);
  });
});
