/**
 * Raw ONNX Runtime ceiling: the workload's shipped model run by onnxruntime-node directly,
 * with the session options Vigil uses (CPU, 1 intra-op thread, sequential, all graph
 * optimisations), so the only difference from Vigil's inference stage is Vigil itself.
 * A bench file may import onnxruntime-node directly: this is the ceiling, not the product.
 *
 * Each figure: warm-up runs first, then back-to-back `session.run` calls (a fresh input
 * tensor each call, outputs read) for a fixed time; windows/s = batch × runs / seconds.
 */

import path from "node:path";
import ort from "onnxruntime-node";
import { nowMs } from "./lib/clock.js";
import type { Workload } from "./lib/workload.js";

export interface OrtFigure {
  batch: number;
  runs: number;
  seconds: number;
  windowsPerSec: number;
  msPerRun: number;
}

export class OrtCeiling {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly provider: string,
    private readonly workload: Workload,
  ) {}

  static async open(workload: Workload): Promise<OrtCeiling> {
    const session = await ort.InferenceSession.create(path.join(workload.packageDir, "model.onnx"), {
      executionProviders: ["cpu"],
      graphOptimizationLevel: "all",
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: "sequential",
      logSeverityLevel: 3,
    });
    return new OrtCeiling(session, "cpu", workload);
  }

  /** Windows/s at `batch`, after `warmupMs` of runs, over about `durationMs` (at most `maxRuns` runs). */
  async measure(batch: number, durationMs = 1_000, warmupMs = 300, maxRuns = 1_000_000): Promise<OrtFigure> {
    const dims = this.workload.inputDims(batch);
    const input = new Float32Array(dims.reduce((a, b) => a * b, 1));
    for (let i = 0; i < input.length; i++) input[i] = Math.sin(i) * 1.5; // z-scored-like values
    const name = this.session.inputNames[0] ?? "input";
    let sink = 0;
    const once = async (): Promise<void> => {
      const out = await this.session.run({ [name]: new ort.Tensor("float32", input, dims) });
      for (const t of Object.values(out)) sink += Number((t.data as Float32Array)[0] ?? 0);
    };
    // The first few thousand runs are up to 2x slower (V8 and ORT warming up): time-based warm-up.
    const warmUntil = nowMs() + warmupMs;
    for (let i = 0; i < maxRuns && nowMs() < warmUntil; i++) await once();
    let runs = 0;
    const started = nowMs();
    const until = started + durationMs;
    while (runs < maxRuns && (runs % 16 !== 0 || nowMs() < until)) {
      await once();
      runs++;
    }
    const seconds = (nowMs() - started) / 1000;
    if (!Number.isFinite(sink)) throw new Error("non-finite model output");
    return {
      batch,
      runs,
      seconds,
      windowsPerSec: (batch * runs) / seconds,
      msPerRun: (seconds * 1000) / runs,
    };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
