/**
 * The runner publishes a commit only once the store says it is durable (`Store.afterDurable`),
 * in commit order, and `drain()` waits for those publishes; a failed sync is counted and the
 * committed records still go out. Real ONNX Runtime (pump-health, main thread), a store whose
 * sync the test releases by hand, and the real SQLite group commit.
 */

import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { StoreError } from "../../src/errors.js";
import { OrtBackend, type ModelSession, type SessionOptions } from "../../src/inference/ort.js";
import { loadPackage, type LoadedModel } from "../../src/models/package.js";
import { ModelRunner, type PendingWindow } from "../../src/pipeline/runner.js";
import { MemoryStore } from "../../src/store/memory.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { Store, StoredRecord } from "../../src/store/types.js";
import { silentLogger } from "../../src/system/logger.js";
import { tempDir } from "../support/harness.js";

const PUMP = path.resolve(import.meta.dirname, "../../models/pump-health/1.0.0");
const OPTIONS: SessionOptions = {
  executionProviders: ["cpu"],
  intraOpThreads: 1,
  graphOptimizationLevel: "all",
};
const FEATURES = 16;

/** A MemoryStore whose syncs complete only when the test says so. */
class GatedStore extends MemoryStore {
  readonly waiting: ((err: Error | undefined) => void)[] = [];
  override afterDurable(fn: (err: Error | undefined) => void): void {
    this.waiting.push(fn);
  }
  release(err?: Error): void {
    for (const fn of this.waiting.splice(0)) fn(err);
  }
}

function window(asset: string, n: number): PendingWindow {
  return {
    asset,
    input: Float32Array.from({ length: FEATURES }, (_, i) => Math.sin(i * 0.37 + n)),
    window: { windowStartMs: n * 1000, windowEndMs: n * 1000 + 1000, tsMs: n * 1000 + 1000, matrix: [] },
  } as unknown as PendingWindow;
}

const models: LoadedModel[] = [];
async function model(): Promise<LoadedModel> {
  const m = await loadPackage(PUMP, new OrtBackend(), OPTIONS);
  models.push(m);
  return m;
}
afterEach(async () => {
  for (const m of models.splice(0)) await (m.session as ModelSession).release();
});

function runner(m: LoadedModel, store: Store, published: StoredRecord[]): ModelRunner {
  return new ModelRunner(
    m,
    store,
    { publish: (records) => published.push(...records) },
    { gatewayId: "gw", maxBatch: 2, maxQueued: 100, maxInFlight: 1 },
    silentLogger(),
  );
}

/** Lets the batcher run its batches (inference resolves on a later turn). */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !check(); i++) await new Promise((resolve) => setImmediate(resolve));
  expect(check()).toBe(true);
}

describe("publishing after the store's sync", () => {
  it("holds committed records until the sync returns, publishes in commit order, and drain waits for it", async () => {
    const store = new GatedStore();
    const published: StoredRecord[] = [];
    const r = runner(await model(), store, published);
    for (let n = 1; n <= 5; n++) r.enqueue(window(`a${n % 2}`, n));
    await until(() => store.lastSeq() === 5);
    // Committed (seq 1–5 issued) but nothing published before the sync.
    expect(published).toEqual([]);
    expect(r.counters.predictions).toBe(5);
    let drained = false;
    const drain = r.drain().then(() => (drained = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(drained).toBe(false);
    store.release();
    await drain;
    expect(published.map((p) => p.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it("a failed commit goes out locally only after the earlier commits still waiting for their sync", async () => {
    const store = new GatedStore();
    const order: string[] = [];
    const m = await model();
    const r = new ModelRunner(
      m,
      store,
      {
        publish: (records) => order.push(...records.map((x) => `committed ${x.tsMs}`)),
        uncommitted: (records) => order.push(...records.map((x) => `uncommitted ${x.tsMs}`)),
      },
      { gatewayId: "gw", maxBatch: 1, maxQueued: 100, maxInFlight: 1 },
      silentLogger(),
    );
    r.enqueue(window("a", 1));
    await until(() => store.lastSeq() === 1);
    const commit = store.commit.bind(store);
    store.commit = () => {
      throw new StoreError("SQLITE_FULL", "store commit failed: database or disk is full", {
        retriable: true,
      });
    };
    r.enqueue(window("a", 2));
    await until(() => r.counters.storeErrors === 1);
    expect(order).toEqual([]);
    store.commit = commit;
    store.release();
    await r.drain();
    expect(order).toEqual(["committed 2000", "uncommitted 3000"]);
  });

  it("a failed sync is counted and the committed records are still published", async () => {
    const store = new GatedStore();
    const published: StoredRecord[] = [];
    const r = runner(await model(), store, published);
    r.enqueue(window("a", 1));
    await until(() => store.lastSeq() === 1);
    store.release(new StoreError("EIO", "store sync failed: EIO"));
    await r.drain();
    expect(r.counters.storeSyncErrors).toBe(1);
    expect(published.map((p) => p.seq)).toEqual([1]);
  });

  it("on SQLite with synchronous full, every window is committed, synced and published in order", async () => {
    const store = new SqliteStore({ file: path.join(tempDir("vigil-durable-"), "vigil.db") });
    try {
      const published: StoredRecord[] = [];
      const r = runner(await model(), store, published);
      for (let n = 1; n <= 40; n++) r.enqueue(window(`a${n % 3}`, n));
      await r.drain();
      expect(published.map((p) => p.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      expect(r.counters).toMatchObject({ predictions: 40, storeErrors: 0, storeSyncErrors: 0 });
      expect(store.readAfter(0, 100)).toHaveLength(40);
    } finally {
      store.close();
    }
  });
});
