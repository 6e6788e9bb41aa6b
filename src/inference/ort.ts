/**
 * ONNX Runtime behind our own interface. The only importer of `onnxruntime-node`.
 *
 * Contract: `OrtBackend.createSession` loads a model file and returns a `ModelSession` whose
 * `run` is async and batch-shaped — one call takes `batch` inputs concatenated in one
 * Float32Array and returns every output tensor for the whole batch. Callers never see ORT
 * types. Today `run` executes on the calling (main) thread: onnxruntime-node defers
 * the call by one `setImmediate` and then runs it synchronously, so a timer around `run` also
 * counts one turn of the event loop. The interface is what lets a worker pool replace it
 * without changing callers. Failures are `InferenceError`s (`retriable: false`: the same input fails again).
 */

import ort from "onnxruntime-node";
import { InferenceError, errorMessage } from "../errors.js";

export interface TensorInfo {
  name: string;
  /** Element type, e.g. "float32"; "unknown" for non-tensor values. */
  type: string;
  /** Dimensions; a string is a symbolic (dynamic) dimension. Empty when the model does not say. */
  dims: (number | string)[];
}

export interface OutputTensor {
  data: Float64Array;
  dims: number[];
}

export interface ModelSession {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  /** Execution provider the session runs on. */
  readonly provider: string;
  run(inputName: string, data: Float32Array, dims: readonly number[]): Promise<Map<string, OutputTensor>>;
  /**
   * How long the last `run` computed, in ms, without the time its promise waited for the
   * event loop (which includes whatever else the process did meanwhile). Undefined when the
   * backend cannot tell.
   */
  readonly lastRunMs?: number;
  release(): Promise<void>;
}

export interface SessionOptions {
  /** Ordered providers to try; this version resolves "auto" to CPU. */
  executionProviders: "auto" | readonly string[];
  intraOpThreads: number;
  graphOptimizationLevel: "disabled" | "basic" | "extended" | "all";
}

export interface InferenceBackend {
  createSession(modelPath: string, options: SessionOptions): Promise<ModelSession>;
  /** Providers this build of ONNX Runtime can use on this machine. */
  availableProviders(): string[];
}

function toInfo(meta: ort.InferenceSession.ValueMetadata): TensorInfo {
  if (!meta.isTensor) return { name: meta.name, type: "unknown", dims: [] };
  return { name: meta.name, type: meta.type, dims: [...meta.shape] };
}

function toFloat64(data: ort.Tensor["data"]): Float64Array {
  if (data instanceof Float64Array) return data;
  if (data instanceof Float32Array || data instanceof Int32Array || data instanceof Uint8Array)
    return Float64Array.from(data);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array)
    return Float64Array.from(data, (v) => Number(v));
  if (Array.isArray(data)) return Float64Array.from(data as unknown[], (v) => Number(v));
  return Float64Array.from(data as ArrayLike<number>);
}

class OrtModelSession implements ModelSession {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  lastRunMs: number | undefined;

  constructor(
    private readonly session: ort.InferenceSession,
    readonly provider: string,
  ) {
    this.inputs = session.inputMetadata.map(toInfo);
    this.outputs = session.outputMetadata.map(toInfo);
  }

  async run(
    inputName: string,
    data: Float32Array,
    dims: readonly number[],
  ): Promise<Map<string, OutputTensor>> {
    let result: ort.InferenceSession.ReturnType;
    // onnxruntime-node computes in a setImmediate callback it queues synchronously inside
    // run(); ours, queued just before, runs right before it, and the continuation after the
    // await runs in the microtasks right after it. So the difference is the computation.
    let startedAt = performance.now();
    setImmediate(() => {
      startedAt = performance.now();
    });
    try {
      const tensor = new ort.Tensor("float32", data, dims);
      result = await this.session.run({ [inputName]: tensor });
      this.lastRunMs = performance.now() - startedAt;
    } catch (err) {
      throw new InferenceError("INFERENCE_FAILED", `inference failed: ${errorMessage(err)}`, { cause: err });
    }
    const out = new Map<string, OutputTensor>();
    for (const [name, tensor] of Object.entries(result)) {
      out.set(name, { data: toFloat64(tensor.data), dims: tensor.dims.map(Number) });
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

export class OrtBackend implements InferenceBackend {
  availableProviders(): string[] {
    return ort
      .listSupportedBackends()
      .filter((b) => b.bundled)
      .map((b) => b.name);
  }

  async createSession(modelPath: string, options: SessionOptions): Promise<ModelSession> {
    const provider = "cpu";
    try {
      const session = await ort.InferenceSession.create(modelPath, {
        executionProviders: [provider],
        graphOptimizationLevel: options.graphOptimizationLevel,
        ...(options.intraOpThreads > 0 ? { intraOpNumThreads: options.intraOpThreads } : {}),
        interOpNumThreads: 1,
        executionMode: "sequential",
        logSeverityLevel: 3,
      });
      return new OrtModelSession(session, provider);
    } catch (err) {
      throw new InferenceError(
        "MODEL_LOAD_FAILED",
        `ONNX Runtime could not load ${modelPath}: ${errorMessage(err)}`,
        {
          cause: err,
        },
      );
    }
  }
}
