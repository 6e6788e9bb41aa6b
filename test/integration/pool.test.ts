/**
 * The worker pool (src/inference/pool.ts) with real worker threads and real ONNX Runtime on the
 * shipped pump-health model: results equal the main thread's; calls spread over the workers;
 * an ORT error fails its call and the worker keeps serving; a worker that dies fails the call
 * it had (retriable) and is replaced with the session reloaded, and the runner counts that
 * batch as failed and goes on predicting. The dying worker is the real worker plus an injected
 * fault (test/fixtures/workers/crashing-worker.ts).
 */

import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { InferenceError } from "../../src/errors.js";
import { OrtBackend, type ModelSession, type SessionOptions } from "../../src/inference/ort.js";
import { WorkerPool, defaultPoolSize } from "../../src/inference/pool.js";
import { loadPackage } from "../../src/models/package.js";
import { ModelRunner, type PendingWindow } from "../../src/pipeline/runner.js";
import { MemoryStore } from "../../src/store/memory.js";
import type { StoredRecord } from "../../src/store/types.js";
import { silentLogger } from "../../src/system/logger.js";
import { CRASH_SENTINEL } from "../fixtures/workers/sentinel.js";

const PUMP = path.resolve(import.meta.dirname, "../../models/pump-health/1.0.0");
const MODEL = path.join(PUMP, "model.onnx");
const CRASHING = new URL("../fixtures/workers/crashing-worker.ts", import.meta.url);
const OPTIONS: SessionOptions = {
  executionProviders: ["cpu"],
  intraOpThreads: 1,
  graphOptimizationLevel: "all",
};
const FEATURES = 16;

function input(batch: number, seed = 1): Float32Array {
  return Float32Array.from({ length: batch * FEATURES }, (_, i) => Math.sin(i * 0.37 + seed));
}

const pools: WorkerPool[] = [];
function pool(size: number, workerUrl?: URL): WorkerPool {
  const p = new WorkerPool({
    size,
    ...(workerUrl ? { workerUrl } : {}),
    restartBackoffMs: { initial: 10, max: 50 },
  });
  pools.push(p);
  return p;
}

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

describe("worker pool", () => {
  it("sizes itself from the core count: cores − 1, at least 1, at most 4", () => {
    expect([1, 2, 3, 8, 64].map((c) => defaultPoolSize(c))).toEqual([1, 1, 2, 4, 4]);
  });

  it("runs a session in its workers with the same results as the main thread, spread over the workers", async () => {
    const p = pool(2);
    await p.start();
    expect(p.availableProviders()).toContain("cpu");
    const pooled = await p.createSession(MODEL, OPTIONS);
    const local = await new OrtBackend().createSession(MODEL, OPTIONS);
    try {
      expect(pooled.provider).toBe("cpu");
      expect(pooled.inputs).toEqual(local.inputs);
      const batches = Array.from({ length: 8 }, (_, k) => input(5, k));
      const remote = await Promise.all(batches.map((b) => pooled.run("input", b, [5, FEATURES])));
      for (const [k, b] of batches.entries()) {
        const mine = await local.run("input", b, [5, FEATURES]);
        for (const [name, t] of mine)
          expect(Array.from(remote[k]?.get(name)?.data ?? [])).toEqual(Array.from(t.data));
      }
      const stats = p.stats();
      expect(stats).toMatchObject({ size: 2, workersUp: 2, restarts: 0, outstanding: 0 });
      expect(stats.callsPerWorker).toEqual([4, 4]);
      expect(stats.sessions[0]).toMatchObject({
        replicas: 2,
        replicasUp: 2,
        calls: 8,
        items: 40,
        failures: 0,
      });
      expect(stats.sessions[0]?.runMs).toBeGreaterThan(0);
    } finally {
      await pooled.release();
      await local.release();
    }
    expect(p.stats().sessions).toEqual([]);
  });

  it("fails a call that ONNX Runtime rejects, and the worker keeps serving", async () => {
    const p = pool(1);
    const s = await p.createSession(MODEL, OPTIONS);
    const err = await s.run("input", input(1), [1, FEATURES + 1]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InferenceError);
    expect((err as InferenceError).code).toBe("INFERENCE_FAILED");
    const ok = await s.run("input", input(2), [2, FEATURES]);
    expect(ok.get("rul")?.data).toHaveLength(2);
    expect(p.stats()).toMatchObject({ restarts: 0, workersUp: 1 });
  });

  it("fails a session that cannot load with ONNX Runtime's reason, and releases the replicas that did", async () => {
    const p = pool(2);
    const err = await p.createSession(path.join(PUMP, "manifest.json"), OPTIONS).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InferenceError);
    expect((err as InferenceError).code).toBe("MODEL_LOAD_FAILED");
    expect((err as Error).message).toMatch(/manifest\.json on cpu/);
    expect(p.stats().sessions).toEqual([]);
  });

  it("replaces a worker that dies: its call fails (retriable), the session is reloaded and serves again", async () => {
    const p = pool(1, CRASHING);
    const s = await p.createSession(MODEL, OPTIONS);
    await s.benchmark?.("input", input(4), [4, FEATURES], 1, 1); // becomes the replica's warm-up
    const poison = input(3);
    poison[0] = CRASH_SENTINEL;
    const [crashed, queued] = await Promise.allSettled([
      s.run("input", poison, [3, FEATURES]),
      // Sent to the same worker behind the poison call: lost with it.
      s.run("input", input(2), [2, FEATURES]),
    ]);
    for (const r of [crashed, queued]) {
      expect(r.status).toBe("rejected");
      const e = (r as PromiseRejectedResult).reason as InferenceError;
      expect(e).toBeInstanceOf(InferenceError);
      expect(e.code).toBe("INFERENCE_WORKER_EXITED");
      expect(e.retriable).toBe(true);
      expect(e.message).toMatch(/injected fault/);
    }
    // The next call waits for the replacement, which reloads the session.
    const after = await s.run("input", input(2, 7), [2, FEATURES]);
    expect(after.get("failure_probability")?.data).toHaveLength(2);
    expect(p.stats()).toMatchObject({ restarts: 1, workersUp: 1 });
    expect(p.stats().sessions[0]).toMatchObject({ replicasUp: 1, failures: 2 });
  });

  it("fails waiting and new calls once closed", async () => {
    const p = pool(1);
    const s = await p.createSession(MODEL, OPTIONS);
    await p.close();
    await expect(s.run("input", input(1), [1, FEATURES])).rejects.toMatchObject({
      code: "INFERENCE_POOL_CLOSED",
    });
    await expect(p.createSession(MODEL, OPTIONS)).rejects.toMatchObject({ code: "INFERENCE_POOL_CLOSED" });
  });

  it("a runner on a dying worker counts the lost batch, commits nothing of it, and goes on predicting", async () => {
    const p = pool(1, CRASHING);
    await p.start();
    const model = await loadPackage(PUMP, p, OPTIONS);
    const store = new MemoryStore();
    const published: StoredRecord[] = [];
    const runner = new ModelRunner(
      model,
      store,
      { publish: (records) => published.push(...records) },
      { gatewayId: "gw", maxBatch: 4, maxQueued: 100, maxInFlight: 2 },
      silentLogger(),
    );
    const window = (asset: string, n: number, poison = false): PendingWindow => {
      const data = input(1, n);
      if (poison) data[0] = CRASH_SENTINEL;
      return {
        asset,
        input: data,
        window: { windowStartMs: n * 1000, windowEndMs: n * 1000 + 1000, tsMs: n * 1000 + 1000, matrix: [] },
      } as unknown as PendingWindow;
    };
    runner.enqueue(window("a", 1));
    runner.enqueue(window("b", 2));
    await runner.drain();
    runner.enqueue(window("a", 3, true)); // this batch kills the worker
    runner.enqueue(window("b", 4));
    await runner.drain();
    runner.enqueue(window("a", 5));
    runner.enqueue(window("b", 6));
    await runner.drain();
    expect(runner.counters).toMatchObject({ inferenceErrors: 1, predictions: 4, batches: 2, storeErrors: 0 });
    const ts = published.filter((r) => r.kind === "prediction").map((r) => r.tsMs);
    expect(ts).toEqual([2000, 3000, 6000, 7000]);
    expect(p.stats().restarts).toBe(1);
    await (model.session as ModelSession).release();
  });
});
