/**
 * The inference stage as configured: the backend (main thread and worker pool, each model
 * placed per src/inference/placement.ts), the session options every model is loaded with,
 * and the batching the runners use.
 *
 * Contract: pure — builds objects and does no I/O (the pool spawns its workers in `start()`).
 * Caches live under `<dataDir>/cache/`: `ort/` for optimised CPU graphs, `tensorrt/` for
 * TensorRT engines.
 */

import path from "node:path";
import type { VigilConfig } from "../config/types.js";
import type { SessionOptions } from "./ort.js";
import { PlacingBackend } from "./placement.js";
import { defaultPoolSize } from "./pool.js";

export interface BatchingOptions {
  maxDelayMs: number;
  maxQueuedPerAsset: number;
  /**
   * Batches of one model dispatched and not yet committed: 4 per worker (at least 2), so that
   * a worker finds its next batch waiting when it finishes one, and the main thread commits
   * finished batches together, instead of each hand-off between the threads waiting for the
   * other thread to be scheduled (measured: docs/benchmarks.md). A model placed on the main
   * thread runs 1 at a time (the pipeline sets it per model).
   */
  maxInFlight: number;
}

export interface InferenceSetup {
  backend: PlacingBackend;
  /** Worker threads a model placed on the pool runs on (0: every model on the main thread). */
  workers: number;
  sessionOptions: SessionOptions;
  batching: BatchingOptions;
  maxQueuedWindows: number;
  backpressure: { windows: number; maxWaitMs: number };
}

export function workerCount(setting: VigilConfig["inference"]["workers"]): number {
  return setting === "auto" ? defaultPoolSize() : setting;
}

export function inferenceSetup(config: Pick<VigilConfig, "inference" | "dataDir">): InferenceSetup {
  const c = config.inference;
  const workers = workerCount(c.workers);
  return {
    backend: new PlacingBackend({
      workers: c.workers,
      poolSize: workers,
      mainThreadMaxBatchMs: c.mainThreadMaxBatchMs,
    }),
    workers,
    sessionOptions: {
      executionProviders: c.executionProviders,
      intraOpThreads: c.intraOpThreads,
      interOpThreads: c.interOpThreads,
      graphOptimizationLevel: c.graphOptimizationLevel,
      optimizedModelCacheDir: c.optimizedModelCache ? path.resolve(config.dataDir, "cache", "ort") : "",
      tensorrtCacheDir: path.resolve(config.dataDir, "cache", "tensorrt"),
      serving: {
        providerBenchmark: c.providerBenchmark,
        batch: c.maxBatch,
        warmupRuns: c.warmupRuns,
        benchmarkRuns: c.benchmarkRuns,
      },
    },
    batching: {
      maxDelayMs: c.maxDelayMs,
      maxQueuedPerAsset: c.maxQueuedWindowsPerAsset,
      maxInFlight: workers > 0 ? Math.max(2, 4 * workers) : 1,
    },
    maxQueuedWindows: c.maxQueuedWindows,
    backpressure: { windows: c.backpressureWindows, maxWaitMs: c.backpressureMaxWaitMs },
  };
}
