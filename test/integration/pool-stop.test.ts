/**
 * Stopping the worker pool (src/inference/pool.ts) while workers are still coming up: `stopIdle()`
 * during the replacement of a dead worker (booting, or reloading a session), and `stopIdle()` or
 * `close()` during `start()`. Every promise settles: the replacement gives up, `stopIdle()`
 * resolves, a waiting `start()` rejects with a typed error, and the pool serves again afterwards.
 * Real worker threads and ONNX Runtime on the shipped pump-health model; the dying worker is the
 * real one plus an injected fault (test/fixtures/workers/crashing-worker.ts). The replacement's
 * timer is faked, so the test decides exactly when it starts.
 */

import path from "node:path";
import { Worker } from "node:worker_threads";
import { afterEach, describe, expect, it, vi } from "vitest";
import { InferenceError } from "../../src/errors.js";
import type { ModelSession, SessionOptions } from "../../src/inference/ort.js";
import { WorkerPool } from "../../src/inference/pool.js";
import type { ToWorker } from "../../src/inference/worker-protocol.js";
import { CRASH_SENTINEL } from "../fixtures/workers/sentinel.js";

const MODEL = path.resolve(import.meta.dirname, "../../models/pump-health/1.0.0/model.onnx");
const CRASHING = new URL("../fixtures/workers/crashing-worker.ts", import.meta.url);
const OPTIONS: SessionOptions = {
  executionProviders: ["cpu"],
  intraOpThreads: 1,
  graphOptimizationLevel: "all",
};
const FEATURES = 16;

function input(batch: number, poison = false): Float32Array {
  const data = Float32Array.from({ length: batch * FEATURES }, (_, i) => Math.sin(i * 0.37));
  if (poison) data[0] = CRASH_SENTINEL;
  return data;
}

const pools: WorkerPool[] = [];
function pool(size: number, workerUrl?: URL): WorkerPool {
  const p = new WorkerPool({ size, ...(workerUrl ? { workerUrl } : {}) });
  pools.push(p);
  return p;
}

afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

/** What a promise came to: "resolved", or the error it rejected with. */
function outcome(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => "resolved",
    (err: unknown) => err,
  );
}

/** A one-worker pool with a session whose worker just died; its replacement's timer is faked, not run. */
async function sessionOnDeadWorker(): Promise<{ p: WorkerPool; s: ModelSession }> {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
  const p = pool(1, CRASHING);
  const s = await p.createSession(MODEL, OPTIONS);
  await expect(s.run("input", input(1, true), [1, FEATURES])).rejects.toMatchObject({
    code: "INFERENCE_WORKER_EXITED",
  });
  return { p, s };
}

describe("stopping the pool while workers come up", () => {
  it("stopIdle while a dead worker's replacement boots: the replacement gives up and the pool starts afresh", async () => {
    const { p, s } = await sessionOnDeadWorker();
    await s.release(); // no session left: the pool is idle
    expect(vi.getTimerCount()).toBe(1); // the replacement, due at once
    vi.advanceTimersToNextTimer(); // runs it: the new worker is spawned and is booting
    expect(p.stats()).toMatchObject({ restarts: 1, workersUp: 0 });

    await p.stopIdle(); // waits for the replacement to give up (it used to wait forever)
    expect(p.idleStops).toBe(1);
    expect(vi.getTimerCount()).toBe(0); // nothing scheduled to replace the stopped worker
    expect(p.stats()).toMatchObject({ workersUp: 0, outstanding: 0 });

    const again = await p.createSession(MODEL, OPTIONS);
    const out = await again.run("input", input(2), [2, FEATURES]);
    expect(out.get("failure_probability")?.data).toHaveLength(2);
    expect(p.stats()).toMatchObject({ workersUp: 1, restarts: 1 });
  });

  it("stopIdle while a replacement reloads a session that was then released: the reload fails and stopIdle resolves", async () => {
    const { p, s } = await sessionOnDeadWorker();
    // Told the moment the replacement sends the session's reload to its new worker.
    const post = Worker.prototype.postMessage;
    const reloadSent = new Promise<void>((resolve) => {
      vi.spyOn(Worker.prototype, "postMessage").mockImplementation(function (
        this: Worker,
        ...args: Parameters<Worker["postMessage"]>
      ) {
        post.apply(this, args);
        if ((args[0] as ToWorker).type === "load") resolve();
      });
    });
    vi.advanceTimersToNextTimer(); // the replacement boots, then reloads the session
    await reloadSent; // its reply cannot have arrived yet: no event-loop turn has passed
    expect(p.stats()).toMatchObject({ workersUp: 1, outstanding: 1 });
    await s.release(); // the pool is idle while that reload is in flight
    await p.stopIdle();
    expect(p.stats()).toMatchObject({ workersUp: 0, outstanding: 0, sessions: [] });
    await expect(s.run("input", input(1), [1, FEATURES])).rejects.toMatchObject({
      code: "INFERENCE_SESSION_RELEASED",
    });
  });

  it("stopIdle during start(): start rejects with INFERENCE_WORKERS_STOPPED (retriable), and a later start works", async () => {
    const p = pool(2);
    const starting = outcome(p.start());
    await p.stopIdle();
    const err = await starting;
    expect(err).toBeInstanceOf(InferenceError);
    expect(err).toMatchObject({ code: "INFERENCE_WORKERS_STOPPED", retriable: true });
    await p.start();
    expect(p.stats().workersUp).toBe(2);
  });

  it("close() during start(): start rejects with INFERENCE_POOL_CLOSED", async () => {
    const p = pool(2);
    const starting = outcome(p.start());
    await p.close();
    const err = await starting;
    expect(err).toBeInstanceOf(InferenceError);
    expect(err).toMatchObject({ code: "INFERENCE_POOL_CLOSED" });
  });
});
