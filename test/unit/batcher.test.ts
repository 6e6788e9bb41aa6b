/**
 * The dynamic batcher (src/inference/batcher.ts), with fake timers and inference whose
 * completion each test controls: batches form by size, by `maxDelayMs` and by event-loop turn;
 * results come out in dispatch order (per asset in push order) even when later batches finish
 * first, consecutive finished batches in one delivery; overload drops the oldest waiting item
 * (of the asset, or of all) and counts it; a failed batch is delivered as a failure in place.
 */

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DynamicBatcher, type BatcherOptions, type Finished } from "../../src/inference/batcher.js";

interface Item {
  asset: string;
  n: number;
}

/** A batcher whose inference calls wait until the test resolves (or rejects) them. */
function harness(options: Partial<BatcherOptions> = {}) {
  const calls: { items: Item[]; resolve: () => void; reject: (e: Error) => void }[] = [];
  const deliveries: Finished<Item, string>[][] = [];
  const dropped: { item: Item; reason: string }[] = [];
  const batcher = new DynamicBatcher<Item, string>(
    { maxBatch: 4, maxDelayMs: 0, maxQueued: 100, maxQueuedPerAsset: 100, maxInFlight: 1, ...options },
    (i) => i.asset,
    (items) =>
      new Promise<string>((resolve, reject) => {
        calls.push({ items, resolve: () => resolve(items.map((i) => i.n).join(",")), reject });
      }),
    (finished) => {
      deliveries.push(finished);
    },
    { now: () => Date.now(), onDrop: (item, reason) => dropped.push({ item, reason }) },
  );
  const push = (asset: string, n: number): void => batcher.push({ asset, n });
  const delivered = (): number[] => deliveries.flat().flatMap((f) => f.items.map((i) => i.n));
  return { batcher, calls, deliveries, dropped, push, delivered };
}

/** Lets resolved promises and their continuations run. */
const settle = () => vi.advanceTimersByTimeAsync(0);

describe("dynamic batcher", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setImmediate", "clearImmediate", "Date"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("dispatches a full batch at once and the rest at the end of the event-loop turn (maxDelayMs 0)", async () => {
    const h = harness({ maxBatch: 4, maxInFlight: 2 });
    for (let n = 0; n < 6; n++) h.push(`a${n}`, n);
    expect(h.calls.map((c) => c.items.length)).toEqual([4]);
    await settle();
    expect(h.calls.map((c) => c.items.map((i) => i.n))).toEqual([
      [0, 1, 2, 3],
      [4, 5],
    ]);
    expect(h.batcher.queued).toBe(0);
  });

  it("waits up to maxDelayMs for a batch to fill, measured from the oldest waiting item", async () => {
    const h = harness({ maxBatch: 8, maxDelayMs: 5 });
    h.push("a", 1);
    await vi.advanceTimersByTimeAsync(3);
    h.push("b", 2);
    expect(h.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1); // 5 ms after the first item
    expect(h.calls.map((c) => c.items.map((i) => i.n))).toEqual([[1, 2]]);
  });

  it("grows batches while the in-flight limit is reached, and keeps each asset's order", async () => {
    const h = harness({ maxBatch: 16, maxInFlight: 1 });
    h.push("a", 1);
    await settle();
    expect(h.calls).toHaveLength(1);
    // While batch 1 is being inferred, windows of three assets arrive over several turns.
    for (let n = 2; n <= 10; n++) {
      h.push(["a", "b", "c"][n % 3] as string, n);
      await settle();
    }
    expect(h.calls).toHaveLength(1);
    h.calls[0]?.resolve();
    await settle();
    expect(h.calls.map((c) => c.items.length)).toEqual([1, 9]);
    h.calls[1]?.resolve();
    await settle();
    expect(h.delivered()).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    for (const asset of ["a", "b", "c"]) {
      const mine = h.deliveries
        .flat()
        .flatMap((f) => f.items.filter((i) => i.asset === asset).map((i) => i.n));
      expect(mine).toEqual([...mine].sort((x, y) => x - y));
    }
  });

  it("delivers in dispatch order when a later batch finishes first, both in one delivery", async () => {
    const h = harness({ maxBatch: 2, maxInFlight: 3 });
    for (let n = 1; n <= 6; n++) h.push(n % 2 ? "x" : "y", n);
    expect(h.calls).toHaveLength(3);
    h.calls[2]?.resolve();
    h.calls[1]?.resolve();
    await settle();
    expect(h.deliveries).toHaveLength(0); // batch 1 is not done: nothing may be delivered
    h.calls[0]?.resolve();
    await settle();
    expect(h.deliveries).toHaveLength(1);
    expect(h.deliveries[0]?.map((f) => (f.ok ? f.result : "failed"))).toEqual(["1,2", "3,4", "5,6"]);
    expect(h.batcher.counters).toMatchObject({ batches: 3, deliveries: 1, items: 6, maxBatchSeen: 2 });
  });

  it("hands finished batches over together only up to maxDeliveryItems", async () => {
    const h = harness({ maxBatch: 2, maxInFlight: 4, maxDeliveryItems: 4 });
    for (let n = 1; n <= 7; n++) h.push("a", n);
    await settle();
    expect(h.calls).toHaveLength(4);
    for (const c of h.calls.slice(1)) c.resolve();
    await settle();
    h.calls[0]?.resolve(); // now all four are finished: 8 items, at most 4 per delivery
    await settle();
    expect(h.deliveries.map((d) => d.flatMap((f) => f.items.map((i) => i.n)))).toEqual([
      [1, 2, 3, 4],
      [5, 6, 7],
    ]);
  });

  it("delivers a failed batch as a failure, in its place, and goes on", async () => {
    const h = harness({ maxBatch: 2, maxInFlight: 2 });
    for (let n = 1; n <= 4; n++) h.push("a", n);
    h.calls[0]?.reject(new Error("worker exited"));
    h.calls[1]?.resolve();
    await settle();
    const flat = h.deliveries.flat();
    expect(flat.map((f) => f.ok)).toEqual([false, true]);
    expect(flat[0]?.ok === false && (flat[0].error as Error).message).toBe("worker exited");
    h.push("a", 5);
    await settle();
    h.calls[2]?.resolve();
    await settle();
    expect(h.delivered()).toEqual([1, 2, 3, 4, 5]);
  });

  it("drops the oldest waiting window of an asset beyond maxQueuedPerAsset, and counts it", async () => {
    const h = harness({ maxBatch: 100, maxInFlight: 1, maxQueuedPerAsset: 2 });
    h.push("busy", 0);
    await settle(); // batch [0] in flight: everything else waits
    h.push("busy", 1);
    h.push("quiet", 2);
    h.push("busy", 3);
    h.push("busy", 4); // busy has 1, 3 waiting: 1 goes
    h.push("busy", 5); // 3 goes
    expect(h.dropped).toEqual([
      { item: { asset: "busy", n: 1 }, reason: "asset_backlog" },
      { item: { asset: "busy", n: 3 }, reason: "asset_backlog" },
    ]);
    expect(h.batcher.counters.dropped).toEqual({ asset_backlog: 2, queue_full: 0 });
    h.calls[0]?.resolve();
    await settle();
    h.calls[1]?.resolve();
    await settle();
    expect(h.delivered()).toEqual([0, 2, 4, 5]);
  });

  it("drops the oldest waiting window of all beyond maxQueued, never one already dispatched", async () => {
    const h = harness({ maxBatch: 100, maxInFlight: 1, maxQueued: 3 });
    h.push("a", 0);
    await settle();
    for (let n = 1; n <= 5; n++) h.push(`asset-${n}`, n);
    expect(h.dropped.map((d) => [d.item.n, d.reason])).toEqual([
      [1, "queue_full"],
      [2, "queue_full"],
    ]);
    expect(h.batcher.queued).toBe(3);
    h.calls[0]?.resolve();
    await settle();
    h.calls[1]?.resolve();
    await settle();
    expect(h.delivered()).toEqual([0, 3, 4, 5]);
    expect(h.batcher.counters.pushed).toBe(6);
  });

  it("drain dispatches without waiting for maxDelayMs and resolves when everything is delivered", async () => {
    const h = harness({ maxBatch: 2, maxDelayMs: 60_000, maxInFlight: 1 });
    for (let n = 1; n <= 5; n++) h.push("a", n);
    let drained = false;
    const done = h.batcher.drain().then(() => {
      drained = true;
    });
    for (let i = 0; i < 3; i++) {
      await settle();
      expect(drained).toBe(false);
      h.calls[i]?.resolve();
    }
    await done;
    expect(h.delivered()).toEqual([1, 2, 3, 4, 5]);
  });
});
