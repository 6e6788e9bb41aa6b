/** The dashboard's live feed: bounded history per asset and model, alert events, subscribers. */

import { describe, expect, it } from "vitest";
import { LiveFeed, type FeedUpdate } from "../../src/api/feed.js";
import type { RecordSink } from "../../src/pipeline/runner.js";
import { silentLogger } from "../../src/system/logger.js";
import type { StoredRecord } from "../../src/store/types.js";

let seq = 0;
function prediction(asset: string, ts: number, outputs: Record<string, unknown>, model = "m"): StoredRecord {
  seq++;
  return {
    id: `id-${seq}`,
    seq,
    kind: "prediction",
    asset,
    tsMs: ts,
    createdMs: ts,
    data: { asset, model, modelVersion: "1.0.0", ts, outputs },
  };
}
function alert(asset: string, ts: number, state: "raised" | "cleared"): StoredRecord {
  seq++;
  return {
    id: `id-${seq}`,
    seq,
    kind: "alert",
    asset,
    tsMs: ts,
    createdMs: ts,
    data: {
      asset,
      model: "m",
      modelVersion: "1.0.0",
      rule: "r",
      severity: "critical",
      state,
      value: 0.9,
      ts,
    },
  };
}

function sinkRecorder(): RecordSink & { got: StoredRecord[][] } {
  const got: StoredRecord[][] = [];
  return { got, publish: (records) => void got.push([...records]) };
}

describe("LiveFeed", () => {
  it("passes records to the next sink first, then records and announces them", () => {
    const next = sinkRecorder();
    const feed = new LiveFeed(next, { historyPoints: 3 }, silentLogger());
    const updates: FeedUpdate[] = [];
    feed.subscribe((u) => updates.push(u));
    const batch = [prediction("a", 1000, { p: 0.1, label: "ok" }), alert("a", 1000, "raised")];
    feed.publish(batch);
    expect(next.got).toEqual([batch]);
    expect(updates).toHaveLength(1);
    expect(updates[0]?.predictions[0]).toMatchObject({
      asset: "a",
      model: "m",
      outputs: { p: 0.1, label: "ok" },
    });
    expect(updates[0]?.alerts[0]).toMatchObject({
      asset: "a",
      rule: "r",
      severity: "critical",
      state: "raised",
    });
  });

  it("keeps at most historyPoints per asset and model, numeric outputs only in the points", () => {
    const feed = new LiveFeed(sinkRecorder(), { historyPoints: 3 }, silentLogger());
    for (let i = 0; i < 5; i++) feed.publish([prediction("a", i * 1000, { p: i / 10, label: "x" })]);
    feed.publish([prediction("b", 9000, { p: 0.5 }, "other")]);
    const snap = feed.snapshot();
    expect(snap.historyPoints).toBe(3);
    expect(snap.assets.map((a) => a.asset)).toEqual(["a", "b"]);
    const series = snap.assets[0]?.series[0];
    expect(series?.outputs).toEqual(["p"]);
    expect(series?.points).toEqual([
      { ts: 2000, values: [0.2] },
      { ts: 3000, values: [0.3] },
      { ts: 4000, values: [0.4] },
    ]);
    expect(series?.latest.outputs).toEqual({ p: 0.4, label: "x" });
    expect(snap.lastSeq).toBe(seq);
  });

  it("a non-finite output is a gap (null), not a point at zero", () => {
    const feed = new LiveFeed(sinkRecorder(), { historyPoints: 10 }, silentLogger());
    feed.publish([prediction("a", 1, { p: 0.1 }), prediction("a", 2, { p: null })]);
    expect(feed.snapshot().assets[0]?.series[0]?.points.map((p) => p.values)).toEqual([[0.1], [null]]);
  });

  it("bounds alert events and assets; forgets the least recently updated asset", () => {
    const feed = new LiveFeed(
      sinkRecorder(),
      { historyPoints: 5, maxAlertEvents: 2, maxAssets: 2 },
      silentLogger(),
    );
    feed.publish([alert("a", 1, "raised"), alert("a", 2, "cleared"), alert("a", 3, "raised")]);
    expect(feed.snapshot().alertEvents.map((e) => e.ts)).toEqual([2, 3]);
    feed.publish([
      prediction("old", 1, { p: 1 }),
      prediction("mid", 5, { p: 1 }),
      prediction("new", 9, { p: 1 }),
    ]);
    expect(feed.snapshot().assets.map((a) => a.asset)).toEqual(["mid", "new"]);
  });

  it("a subscriber that throws is dropped; the others and the next sink still get everything", () => {
    const next = sinkRecorder();
    const feed = new LiveFeed(next, { historyPoints: 5 }, silentLogger());
    let good = 0;
    feed.subscribe(() => {
      throw new Error("closed socket");
    });
    feed.subscribe(() => good++);
    feed.publish([prediction("a", 1, { p: 1 })]);
    feed.publish([prediction("a", 2, { p: 1 })]);
    expect(good).toBe(2);
    expect(feed.subscribers).toBe(1);
    expect(next.got).toHaveLength(2);
  });

  it("seed fills history without announcing; unsubscribe stops updates", () => {
    const feed = new LiveFeed(sinkRecorder(), { historyPoints: 5 }, silentLogger());
    let calls = 0;
    const off = feed.subscribe(() => calls++);
    feed.seed([prediction("a", 1, { p: 1 })]);
    expect(calls).toBe(0);
    expect(feed.snapshot().assets).toHaveLength(1);
    off();
    feed.publish([prediction("a", 2, { p: 1 })]);
    expect(calls).toBe(0);
  });
});
