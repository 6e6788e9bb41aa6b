/**
 * Vigil's inference stage alone, off the machine's other load: the gateway's own backend
 * (src/inference/placement.ts) on the thread the gateway placed the shipped model on — the main
 * thread, or the worker pool with one worker — fed batches of the size the
 * gateway formed, `depth` calls outstanding at a time (as the runner keeps up to 4 per worker),
 * for a fixed time. Beside the raw ONNX Runtime ceiling at the same batch, it says what the
 * worker hop costs per call: messaging both ways, the worker's event-loop turn and the output copy.
 */

import path from "node:path";
import type { InferenceThread } from "../src/inference/placement.js";
import { PlacingBackend } from "../src/inference/placement.js";
import { nowMs } from "./lib/clock.js";
import type { Workload } from "./lib/workload.js";

export interface StageFigure {
  thread: InferenceThread;
  batch: number;
  depth: number;
  calls: number;
  windowsPerSec: number;
  /** Wall time per call, µs. */
  usPerCall: number;
}

export async function measureInferenceStage(
  workload: Workload,
  batches: readonly number[],
  thread: InferenceThread = "pool",
  durationMs = 700,
): Promise<StageFigure[]> {
  const pool = new PlacingBackend({
    workers: thread === "main" ? 0 : 1,
    poolSize: 1,
    mainThreadMaxBatchMs: 0.25,
  });
  await pool.start();
  const session = await pool.createSession(path.join(workload.packageDir, "model.onnx"), {
    executionProviders: ["cpu"],
    intraOpThreads: 1,
    graphOptimizationLevel: "all",
  });
  const out: StageFigure[] = [];
  try {
    for (const batch of batches) {
      const dims = workload.inputDims(batch);
      const data = Float32Array.from(
        { length: dims.reduce((a, b) => a * b, 1) },
        (_, i) => Math.sin(i) * 1.5,
      );
      await session.benchmark?.(workload.manifest.input.tensor, data, dims, 0, 200);
      for (const depth of [1, 4]) {
        let calls = 0;
        const started = nowMs();
        const until = started + durationMs;
        const loop = async (): Promise<void> => {
          while (nowMs() < until) {
            await session.run(workload.manifest.input.tensor, data, dims);
            calls++;
          }
        };
        await Promise.all(Array.from({ length: depth }, loop));
        const seconds = (nowMs() - started) / 1000;
        out.push({
          thread,
          batch,
          depth,
          calls,
          windowsPerSec: (calls * batch) / seconds,
          usPerCall: (seconds * 1e6) / calls,
        });
      }
    }
  } finally {
    await session.release();
    await pool.close();
  }
  return out;
}
