import { describe, expect, it } from "vitest";
import { VigilError } from "../../src/errors.js";
import type { FillPolicy } from "../../src/models/manifest-types.js";
import { TimeWindow, type TimeWindowOptions } from "../../src/window/time-window.js";
import type { EmittedWindow } from "../../src/window/types.js";

function make(
  sizeMs: number,
  hopMs: number,
  fill: FillPolicy = "previous",
  options: TimeWindowOptions = {},
  signals: string[] = ["s"],
  sampleMs = 1000,
): TimeWindow {
  return new TimeWindow({ sizeMs, hopMs, sampleMs, fill }, signals, options);
}

/** Pushes [tsMs, value] readings of `signal`; returns every window emitted, in order. */
function feed(w: TimeWindow, readings: [number, number][], signal = "s"): EmittedWindow[] {
  const out: EmittedWindow[] = [];
  for (const [tsMs, value] of readings) out.push(...w.push({ signal, tsMs, value }).windows);
  return out;
}

/** Windows as [start, end, ...matrix rows] for compact assertions. */
const brief = (ws: EmittedWindow[]): unknown[] =>
  ws.map((w) => [w.windowStartMs, w.windowEndMs, ...w.matrix]);

describe("TimeWindow: windows and slots", () => {
  it("is half-open: a reading at start + sizeMs belongs to the next window", () => {
    const w = make(4000, 4000);
    expect(
      feed(w, [
        [0, 1],
        [1000, 2],
        [2000, 3],
        [3999, 4],
      ]),
    ).toEqual([]);
    const first = feed(w, [[4000, 5]]);
    expect(first).toEqual([{ windowStartMs: 0, windowEndMs: 4000, tsMs: 4000, matrix: [[1, 2, 3, 4]] }]);
    const second = feed(w, [
      [5000, 6],
      [6000, 7],
      [7000, 8],
      [8000, 9],
    ]);
    expect(brief(second)).toEqual([[4000, 8000, [5, 6, 7, 8]]]);
    expect(w.stats.emitted).toBe(2);
  });

  it("a slot's value is the mean of its readings", () => {
    const w = make(2000, 2000);
    const out = feed(w, [
      [0, 1],
      [500, 3],
      [999, 8],
      [1000, 10],
      [1999, 20],
      [2000, 0],
    ]);
    expect(brief(out)).toEqual([[0, 2000, [4, 15]]]);
  });

  it("aligns windows to multiples of hopMs since the epoch, on the global slot grid", () => {
    const T = 1_700_000_000_000; // a multiple of 10 000
    const w = make(10_000, 10_000);
    feed(w, [[T + 12_345, 1]]);
    expect(w.nextWindowStartMs).toBe(T + 10_000);
    const out = feed(w, [
      [T + 10_500, 2], // reordered, same window, slot 0
      [T + 19_999, 3], // slot 9
      [T + 20_000, 4],
    ]);
    expect(brief(out)).toEqual([[T + 10_000, T + 20_000, [2, 2, 1, 1, 1, 1, 1, 1, 1, 3]]]);
  });

  it("builds one row per signal, in the model's signal order", () => {
    const w = make(2000, 2000, "previous", {}, ["b", "a"]);
    w.push({ signal: "a", tsMs: 0, value: 1 });
    w.push({ signal: "b", tsMs: 0, value: 10 });
    w.push({ signal: "b", tsMs: 1000, value: 20 });
    expect(w.push({ signal: "x", tsMs: 5000, value: 0 })).toEqual({ ignored: true, windows: [] });
    const out = w.push({ signal: "a", tsMs: 2000, value: 3 }).windows;
    expect(brief(out)).toEqual([[0, 2000, [10, 20], [1, 1]]]);
  });
});

describe("TimeWindow: fill", () => {
  it("previous fills from the last filled slot, also from before the window", () => {
    const w = make(3000, 3000);
    const out = feed(w, [
      [0, 1],
      [1000, 2],
      [2000, 3],
      [4000, 5],
      [6000, 7],
    ]);
    // Window 2: slot 3 empty → 3 (slot 2, previous window); slot 5 empty → 5.
    expect(brief(out)).toEqual([
      [0, 3000, [1, 2, 3]],
      [3000, 6000, [3, 5, 5]],
    ]);
  });

  it("linear interpolates by slot position, using slots outside the window", () => {
    const w = make(4000, 4000, "linear");
    // Window [0, 4000): slots 0 = 0, 3 = 6 → 0, 2, 4, 6.
    expect(
      brief(
        feed(w, [
          [0, 0],
          [3000, 6],
          [4000, 100],
        ]),
      ),
    ).toEqual([[0, 4000, [0, 2, 4, 6]]]);
    // Window [4000, 8000): slot 4 = 100, nothing until slot 9 = 200 (after the window).
    expect(brief(feed(w, [[9000, 200]]))).toEqual([[4000, 8000, [100, 120, 140, 160]]]);
    // Window [8000, 12000): slot 8 between slot 4 (before the window) and 9; 10, 11 between 9 and 12.
    const third = feed(w, [[12_000, 300]]);
    expect(third).toHaveLength(1);
    const m = third[0]?.matrix[0] ?? [];
    expect(m[0]).toBe(180);
    expect(m[1]).toBe(200);
    expect(m[2]).toBeCloseTo(200 + 100 / 3, 12);
    expect(m[3]).toBeCloseTo(200 + 200 / 3, 12);
  });

  it("linear with nothing known after a trailing empty slot is unfillable", () => {
    const w = make(4000, 4000, "linear");
    feed(w, [
      [0, 0],
      [1000, 1],
    ]);
    expect(w.advanceTo(4000)).toEqual([]);
    expect(w.stats.skipped).toEqual({ unfillable: 1, gap: 0, signals_missing: 0 });
    expect(w.nextWindowStartMs).toBe(4000);
  });

  it("skips and counts windows with a leading empty slot and nothing before", () => {
    const w = make(4000, 4000);
    const out = feed(w, [
      [2000, 1],
      [3000, 2],
      [4000, 3],
    ]);
    expect(out).toEqual([]);
    expect(w.stats.skipped.unfillable).toBe(1);
    const next = feed(w, [[8000, 4]]);
    expect(brief(next)).toEqual([[4000, 8000, [3, 3, 3, 3]]]);
  });

  it("counts signals_missing while some signal has never been seen", () => {
    const w = make(2000, 2000, "previous", {}, ["s1", "s2"]);
    feed(
      w,
      [
        [0, 1],
        [1000, 1],
        [2000, 1],
        [4000, 1],
      ],
      "s1",
    );
    expect(w.allSignalsSeen).toBe(false);
    expect(w.missingSignals()).toEqual(["s2"]);
    expect(w.stats.skipped).toEqual({ unfillable: 0, gap: 0, signals_missing: 2 });
    // s2 appears: the next window can be filled for s1, not for s2 (nothing before slot 4).
    w.push({ signal: "s2", tsMs: 5000, value: 2 });
    expect(w.allSignalsSeen).toBe(true);
    expect(w.missingSignals()).toEqual([]);
    const out = feed(w, [[6000, 1]], "s1");
    expect(out).toEqual([]);
    expect(w.stats.skipped).toEqual({ unfillable: 1, gap: 0, signals_missing: 2 });
    expect(brief(feed(w, [[8000, 1]], "s1"))).toEqual([[6000, 8000, [1, 1], [2, 2]]]);
  });
});

describe("TimeWindow: ordering, lateness, duplicates", () => {
  it("rejects late readings without touching fill state", () => {
    const w = make(4000, 4000);
    const first = feed(w, [
      [0, 1],
      [1000, 2],
      [2000, 3],
      [3000, 4],
      [5000, 6],
    ]);
    expect(brief(first)).toEqual([[0, 4000, [1, 2, 3, 4]]]);
    // Slot 3 is fill context for the next window, but a late reading must not change it.
    expect(w.push({ signal: "s", tsMs: 3999, value: 100 })).toEqual({ reject: "late", windows: [] });
    expect(w.stats.rejected.late).toBe(1);
    // [4000, 8000): slot 4 empty → previous = slot 3 = 4 (not (4 + 100)/2); 6, 6, 6 after.
    expect(brief(feed(w, [[8000, 9]]))).toEqual([[4000, 8000, [4, 6, 6, 6]]]);
  });

  it("a reading before the first candidate window is late too", () => {
    const w = make(4000, 4000);
    feed(w, [[4500, 5]]);
    expect(w.nextWindowStartMs).toBe(4000);
    expect(w.push({ signal: "s", tsMs: 3500, value: 1 })).toEqual({ reject: "late", windows: [] });
    // Slot 4 has data; nothing before it was kept.
    expect(brief(feed(w, [[8000, 0]]))).toEqual([[4000, 8000, [5, 5, 5, 5]]]);
  });

  it("rejects a duplicate (signal, ts), keeping the first value", () => {
    const w = make(2000, 2000, "previous", {}, ["s1", "s2"]);
    expect(w.push({ signal: "s1", tsMs: 0, value: 1 }).reject).toBeUndefined();
    expect(w.push({ signal: "s1", tsMs: 0, value: 50 })).toEqual({ reject: "duplicate", windows: [] });
    expect(w.push({ signal: "s2", tsMs: 0, value: 7 }).reject).toBeUndefined(); // same ts, other signal
    expect(w.push({ signal: "s1", tsMs: 500, value: 3 }).reject).toBeUndefined(); // same slot, other ts
    w.push({ signal: "s2", tsMs: 1000, value: 8 });
    const out = w.push({ signal: "s1", tsMs: 2000, value: 0 }).windows;
    expect(brief(out)).toEqual([[0, 2000, [2, 2], [7, 8]]]);
    expect(w.stats.rejected.duplicate).toBe(1);
    expect(w.stats.accepted).toBe(5);
  });

  it("rejects duplicates of any reading in a slot, not only its first (three readings, one slot)", () => {
    const w = make(2000, 2000, "previous", {}, ["s1"]);
    for (const tsMs of [0, 300, 600])
      expect(w.push({ signal: "s1", tsMs, value: tsMs / 100 }).reject).toBeUndefined();
    for (const tsMs of [600, 300, 0]) {
      expect(w.push({ signal: "s1", tsMs, value: 99 })).toEqual({ reject: "duplicate", windows: [] });
    }
    expect(w.push({ signal: "s1", tsMs: 900, value: 9 }).reject).toBeUndefined();
    expect(w.stats.rejected.duplicate).toBe(3);
    // Slot 0 = mean of 0, 3, 6, 9 = 4.5; slot 1 (no reading) takes the previous value.
    expect(brief(w.push({ signal: "s1", tsMs: 2000, value: 0 }).windows)).toEqual([[0, 2000, [4.5, 4.5]]]);
  });

  it("accepts out-of-order readings in open windows and counts them as reordered", () => {
    const w = make(3000, 3000);
    feed(w, [
      [2000, 3],
      [0, 1],
      [1500, 5],
      [1000, 1],
    ]);
    expect(w.stats.reordered).toBe(3);
    expect(w.stats.rejected.late).toBe(0);
    expect(brief(feed(w, [[3000, 0]]))).toEqual([[0, 3000, [1, 3, 3]]]);
  });

  it("allowedLatenessMs holds windows open past their end", () => {
    const w = make(4000, 4000, "previous", { allowedLatenessMs: 2000 });
    feed(w, [
      [0, 1],
      [1000, 2],
      [2000, 3],
      [5000, 9],
    ]);
    // Watermark 5000 < 4000 + 2000: still open, so a reading in slot 3 is accepted.
    expect(w.push({ signal: "s", tsMs: 3000, value: 4 })).toEqual({ windows: [] });
    const out = feed(w, [[6000, 10]]);
    expect(brief(out)).toEqual([[0, 4000, [1, 2, 3, 4]]]);
    // The next window [4000, 8000) accepts a reading at 4000 until watermark 10 000.
    expect(w.push({ signal: "s", tsMs: 3999, value: 0 }).reject).toBe("late");
    expect(w.push({ signal: "s", tsMs: 4000, value: 5 }).reject).toBeUndefined();
    expect(brief(feed(w, [[9999, 0]]))).toEqual([]);
    expect(brief(feed(w, [[10_000, 0]]))).toEqual([[4000, 8000, [5, 9, 10, 10]]]);
  });

  it("advanceTo moves event time without a reading", () => {
    const w = make(2000, 2000);
    expect(w.advanceTo(10_000)).toEqual([]); // nothing seen yet: no effect
    expect(w.watermarkMs).toBeUndefined();
    feed(w, [
      [0, 1],
      [1000, 2],
    ]);
    expect(brief(w.advanceTo(4000))).toEqual([
      [0, 2000, [1, 2]],
      [2000, 4000, [2, 2]],
    ]);
    expect(w.advanceTo(3000)).toEqual([]);
    expect(w.watermarkMs).toBe(4000);
  });
});

describe("TimeWindow: catch-up, overlap, gaps, memory", () => {
  it("maxCatchUpWindows emits only the newest windows after a jump and counts the rest as gap", () => {
    const w = make(1000, 1000, "previous", { maxCatchUpWindows: 3 });
    feed(w, [[0, 1]]);
    const out = feed(w, [[10_000, 2]]);
    // Due: [0,1000) .. [9000,10000) = 10 windows; 7 skipped, the newest 3 filled from slot 0.
    expect(brief(out)).toEqual([
      [7000, 8000, [1]],
      [8000, 9000, [1]],
      [9000, 10_000, [1]],
    ]);
    expect(w.stats.skipped.gap).toBe(7);
    expect(w.stats.emitted).toBe(3);
    expect(w.nextWindowStartMs).toBe(10_000);
  });

  it("a huge jump is handled in constant work", () => {
    const w = make(1000, 1000);
    feed(w, [[0, 1]]);
    const out = feed(w, [[1e12, 2]]);
    expect(out).toHaveLength(1000);
    expect(w.stats.skipped.gap).toBe(1e9 - 1000);
    expect(out[999]?.windowStartMs).toBe(1e12 - 1000);
    expect(w.heldSlotCount()).toBe(1);
  });

  it("overlapping windows (hop < size)", () => {
    const w = make(3000, 1000);
    const out = feed(w, [
      [0, 0],
      [1000, 1],
      [2000, 2],
      [3000, 3],
    ]);
    // First candidate: the earliest window ending after ts 0 is [−2000, 1000): two leading
    // empty slots with nothing before → unfillable, as is [−1000, 2000).
    expect(w.stats.skipped.unfillable).toBe(2);
    expect(brief(out)).toEqual([[0, 3000, [0, 1, 2]]]);
    // Next window [1000, 4000) is open: a reading at 1500 joins slot 1; 500 is late.
    expect(w.push({ signal: "s", tsMs: 1500, value: 3 }).reject).toBeUndefined();
    expect(w.push({ signal: "s", tsMs: 500, value: 9 }).reject).toBe("late");
    expect(brief(feed(w, [[4000, 4]]))).toEqual([[1000, 4000, [2, 2, 3]]]);
    expect(brief(feed(w, [[5000, 5]]))).toEqual([[2000, 5000, [2, 3, 4]]]);
  });

  it("gapped windows (hop > size) keep readings between windows as fill context", () => {
    const w = make(2000, 5000);
    const first = feed(w, [
      [0, 1],
      [1000, 2],
      [3000, 3],
    ]);
    expect(brief(first)).toEqual([[0, 2000, [1, 2]]]);
    expect(w.nextWindowStartMs).toBe(5000);
    expect(w.lateBeforeMs).toBe(2000);
    expect(w.push({ signal: "s", tsMs: 4000, value: 4 }).reject).toBeUndefined(); // gap: context
    expect(w.push({ signal: "s", tsMs: 1500, value: 9 }).reject).toBe("late");
    // [5000, 7000): slot 5 empty → previous from slot 4 (gap reading); slot 6 = 6.
    expect(
      brief(
        feed(w, [
          [6000, 6],
          [7000, 7],
        ]),
      ),
    ).toEqual([[5000, 7000, [4, 6]]]);
    expect(brief(feed(w, [[12_000, 0]]))).toEqual([[10_000, 12_000, [7, 7]]]);
  });

  it("with hop > size, the first window is the first aligned one ending after the first reading", () => {
    const w = make(2000, 5000);
    feed(w, [[3000, 1]]);
    expect(w.nextWindowStartMs).toBe(5000);
    expect(w.push({ signal: "s", tsMs: 2500, value: 2 }).reject).toBeUndefined();
    expect(w.push({ signal: "s", tsMs: 1500, value: 2 }).reject).toBe("late");
    expect(
      brief(
        feed(w, [
          [6000, 6],
          [7000, 0],
        ]),
      ),
    ).toEqual([[5000, 7000, [1, 6]]]);
  });

  it("drops slots that can no longer matter, keeping memory bounded", () => {
    const w = make(4000, 1000, "linear", { allowedLatenessMs: 1000 });
    let emitted = 0;
    for (let ts = 0; ts < 100_000; ts += 250) {
      emitted += w.push({ signal: "s", tsMs: ts, value: ts }).windows.length;
      // (4000 + 1000) / 1000 slots, + 1 for the slot being filled.
      expect(w.heldSlotCount()).toBeLessThanOrEqual(6);
    }
    expect(emitted).toBe(95);
    expect(w.stats.skipped.unfillable).toBe(3);
  });

  it("validates its spec", () => {
    expect(() => make(2500, 1000)).toThrow(VigilError); // size not a multiple of sampleMs
    expect(() => make(2000, 1500)).toThrow(/multiples of sampleMs/);
    expect(() => make(0, 1000)).toThrow(VigilError);
    expect(() => make(2000, 1000, "nearest" as FillPolicy)).toThrow(VigilError);
    expect(() => make(2000, 1000, "previous", { maxCatchUpWindows: 0 })).toThrow(VigilError);
    expect(() => make(2000, 1000, "previous", { allowedLatenessMs: -1 })).toThrow(VigilError);
    expect(() => make(2000, 1000, "previous", {}, ["a", "a"])).toThrow(VigilError);
    expect(() => make(2000, 1000).push({ signal: "s", tsMs: Number.NaN, value: 1 })).toThrow(VigilError);
  });
});

describe("TimeWindow: readings that arrive together", () => {
  // Window [0, 4000) with linear fill; signal b has no reading in its last slot (3000..4000).
  const rows = [0, 1000, 2000, 3000, 4000].map((t) => ({ t, a: t / 1000, b: 10 + t / 1000 }));

  function feed(order: "ab" | "ba", together: boolean): EmittedWindow[] {
    const tw = new TimeWindow({ sizeMs: 4000, hopMs: 4000, sampleMs: 1000, fill: "linear" }, ["a", "b"]);
    const out: EmittedWindow[] = [];
    for (const r of rows) {
      const samples = [
        { signal: "a", tsMs: r.t, value: r.a },
        { signal: "b", tsMs: r.t, value: r.b },
      ];
      if (r.t === 3000) samples.pop();
      const ordered = order === "ab" ? samples : [...samples].reverse();
      if (together) out.push(...tw.pushMany(ordered).windows);
      else for (const s of ordered) out.push(...tw.push(s).windows);
    }
    return out;
  }

  it("pushMany applies a whole row before closing a window, whatever the key order", () => {
    for (const order of ["ab", "ba"] as const) {
      const windows = feed(order, true);
      expect(windows).toHaveLength(1);
      // b's slot 3 is interpolated between slot 2 (12) and slot 4 (14): 13.
      expect(windows[0]?.matrix).toEqual([
        [0, 1, 2, 3],
        [10, 11, 12, 13],
      ]);
    }
  });

  it("one reading at a time, a row's first key can close the window before its second arrives", () => {
    // a@4000 first closes [0,4000) while b@4000 is unknown: b's last slot cannot be filled.
    expect(feed("ab", false)).toHaveLength(0);
    expect(feed("ba", false)).toHaveLength(1);
  });

  it("pushMany reports each refused reading and counts it", () => {
    const tw = new TimeWindow({ sizeMs: 2000, hopMs: 2000, sampleMs: 1000, fill: "previous" }, ["a"]);
    tw.pushMany([{ signal: "a", tsMs: 0, value: 1 }]);
    tw.pushMany([{ signal: "a", tsMs: 2000, value: 2 }]);
    const res = tw.pushMany([
      { signal: "a", tsMs: 500, value: 9 },
      { signal: "a", tsMs: 2000, value: 9 },
      { signal: "a", tsMs: 4000, value: 3 },
    ]);
    expect(res.rejects).toEqual(["late", "duplicate"]);
    expect(res.windows.map((w) => w.windowStartMs)).toEqual([2000]);
    expect(tw.stats.rejected).toMatchObject({ late: 1, duplicate: 1 });
  });
});
