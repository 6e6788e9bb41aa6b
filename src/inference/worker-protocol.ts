/**
 * Messages between the worker pool (`pool.ts`, main thread) and an inference worker
 * (`worker.ts`). Every request carries an `id` that its one reply echoes. Inputs are copied
 * (structured clone); output buffers are transferred back. Errors cross as their code, message
 * and `retriable`, and are rebuilt as `InferenceError`s on the main thread.
 */

import type { BenchmarkResult, SessionDetails, SessionOptions, TensorInfo } from "./ort.js";

export type ToWorker =
  | { type: "load"; id: number; session: number; modelPath: string; options: SessionOptions }
  | {
      type: "run";
      id: number;
      session: number;
      inputName: string;
      data: Float32Array;
      dims: readonly number[];
    }
  | {
      type: "benchmark";
      id: number;
      session: number;
      inputName: string;
      data: Float32Array;
      dims: readonly number[];
      runs: number;
      warmupRuns: number;
    }
  | { type: "release"; id: number; session: number };

export interface WireTensor {
  name: string;
  data: Float64Array;
  dims: number[];
}

export type FromWorker =
  | { type: "ready"; providers: string[]; unavailable: Record<string, string> }
  | {
      type: "loaded";
      id: number;
      inputs: TensorInfo[];
      outputs: TensorInfo[];
      provider: string;
      details: SessionDetails | undefined;
    }
  | { type: "result"; id: number; outputs: WireTensor[]; runMs: number }
  | ({ type: "benchmarked"; id: number } & BenchmarkResult)
  | { type: "released"; id: number }
  | { type: "error"; id: number; code: string; message: string; retriable: boolean };
