/**
 * ONNX Runtime behind our own interface. The only importer of `onnxruntime-node`.
 *
 * Contract: `OrtBackend.createSession` loads a model file on ONE execution provider (the first
 * of `executionProviders`; "auto" means cpu here — choosing among several, gated by the
 * package's self-test, is `providers.ts`'s job) and returns a `ModelSession` whose `run` is
 * async and batch-shaped — one call takes `batch` inputs concatenated in one Float32Array and
 * returns every output tensor for the whole batch. Callers never see ORT types.
 * onnxruntime-node (1.30) creates sessions and runs them synchronously on the calling thread
 * (deferred by one `setImmediate`), which is why the gateway runs sessions in worker threads
 * (`pool.ts`); this module works the same on the main thread and in a worker.
 *
 * Session tuning: graph optimisation level, intra- and inter-op threads, and, for the CPU
 * provider, an optimised-model cache (the graph ORT optimised on the first start, written to
 * `optimizedModelCacheDir` under a key of the model's SHA-256, the ORT version, the level and
 * the CPU model, and loaded with optimisation off on the next start; a cache file that
 * fails to load is deleted and the model is loaded from its package). TensorRT is pointed at
 * `tensorrtCacheDir` for its engine cache.
 * Failures are `InferenceError`s (`retriable: false`: the same input fails again).
 */

import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import ort from "onnxruntime-node";
import { InferenceError, errorMessage } from "../errors.js";
import type { PlaceAnswer, PlaceRequest } from "./placement.js";

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

/** How a session was loaded (for status and logs). */
export interface SessionDetails {
  /** Wall time of ORT's session creation, ms. */
  loadMs: number;
  /** Optimised-model cache: `hit` (loaded from it), `written` (created now), `off`, or why it was not used. */
  optimizedModelCache: string;
}

export interface BenchmarkResult {
  runs: number;
  /** Wall time of the timed runs (after the warm-up runs), ms. */
  ms: number;
  /**
   * Median computing time of one timed run, ms (`lastRunMs`: without the event-loop turns
   * between runs, so what else the thread does meanwhile does not count); absent when unknown.
   */
  medianRunMs?: number;
}

export interface ModelSession {
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  /** Execution provider the session runs on. */
  readonly provider: string;
  readonly details?: SessionDetails;
  run(inputName: string, data: Float32Array, dims: readonly number[]): Promise<Map<string, OutputTensor>>;
  /**
   * `warmupRuns` untimed runs, then `runs` back-to-back runs of one input, timed where the
   * session runs (no messaging or event-loop wait counted). Used for warm-up before serving and
   * for the provider benchmark; a session without it is served unwarmed and not benchmarked.
   */
  benchmark?(
    inputName: string,
    data: Float32Array,
    dims: readonly number[],
    runs: number,
    warmupRuns: number,
  ): Promise<BenchmarkResult>;
  /**
   * How long the last `run` computed, in ms, without the time its promise waited for the
   * event loop (which includes whatever else the process did meanwhile). Undefined when the
   * backend cannot tell. With the worker pool, several runs may be in flight: read it right
   * after `await run(...)`, when it is that call's computing time in its worker.
   */
  readonly lastRunMs?: number;
  release(): Promise<void>;
}

export type GraphOptimizationLevel = "disabled" | "basic" | "extended" | "all";

export interface SessionOptions {
  /** Ordered providers to try ("auto": see providers.ts). `createSession` uses the first. */
  executionProviders: "auto" | readonly string[];
  /** ORT intra-op threads; 0 = ORT's default (one per core). */
  intraOpThreads: number;
  graphOptimizationLevel: GraphOptimizationLevel;
  /** ORT inter-op threads (only used by parallel execution mode); 0 = ORT's default. Default 1. */
  interOpThreads?: number;
  /** Folder for the CPU provider's optimised-model cache; absent or "" = off. */
  optimizedModelCacheDir?: string;
  /** Folder for TensorRT's engine cache; absent or "" = TensorRT's default (none). */
  tensorrtCacheDir?: string;
  /** Provider choice and warm-up before a model serves (providers.ts); absent: first that passes, no warm-up. */
  serving?: ServingOptions;
}

export interface ServingOptions {
  /** Benchmark every provider that passes the self-test and serve the fastest. */
  providerBenchmark: boolean;
  /** Batch size of the warm-up and the benchmark (the serving batch; capped by the model's). */
  batch: number;
  /** Untimed runs before serving (and before the timed benchmark runs). */
  warmupRuns: number;
  /** Timed runs per provider in the benchmark (also timed on the serving provider after warm-up). */
  benchmarkRuns: number;
}

export interface InferenceBackend {
  createSession(modelPath: string, options: SessionOptions): Promise<ModelSession>;
  /** Providers this build of ONNX Runtime knows (some need libraries installed beside it, see docs/accelerators.md). */
  availableProviders(): string[];
  /** Why `provider` cannot run on this machine, known without trying it; undefined if it may. */
  unavailableReason?(provider: string): string | undefined;
  /** Starts what the backend needs (worker threads) before the first session. */
  start?(): Promise<void>;
  /** Where sessions run and how much they did (worker pool), for the status. */
  stats?(): unknown;
  /** Stops what the backend started (worker threads); sessions must be released first. */
  close?(): Promise<void>;
  /**
   * Where a model opened (and warmed up) on this backend should serve: main thread or worker
   * pool (src/inference/placement.ts). With `reopenOn`, the caller opens it again there.
   */
  place?(request: PlaceRequest): PlaceAnswer;
  /** The process now handles live traffic (models loaded later must not stall it). */
  beginServing?(): void;
}

/** The provider a `createSession` call runs on. */
export function firstProvider(requested: SessionOptions["executionProviders"]): string {
  return requested === "auto" ? "cpu" : (requested[0] ?? "cpu");
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
    readonly details: SessionDetails,
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

  async benchmark(
    inputName: string,
    data: Float32Array,
    dims: readonly number[],
    runs: number,
    warmupRuns: number,
  ): Promise<BenchmarkResult> {
    for (let i = 0; i < warmupRuns; i++) await this.run(inputName, data, dims);
    const started = performance.now();
    const each: number[] = [];
    for (let i = 0; i < runs; i++) {
      await this.run(inputName, data, dims);
      if (this.lastRunMs !== undefined) each.push(this.lastRunMs);
    }
    const ms = performance.now() - started;
    each.sort((a, b) => a - b);
    const median = each.length > 0 ? each[Math.floor(each.length / 2)] : undefined;
    return { runs, ms, ...(median !== undefined ? { medianRunMs: median } : {}) };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Folder of the native binding (where the CUDA/TensorRT provider libraries must be). */
function bindingDir(): string | undefined {
  try {
    const entry = createRequire(import.meta.url).resolve("onnxruntime-node");
    return path.join(path.dirname(entry), "..", "bin", "napi-v6", process.platform, process.arch);
  } catch {
    return undefined;
  }
}

const PROVIDER_LIBRARIES: Record<string, string> = {
  cuda: "libonnxruntime_providers_cuda",
  tensorrt: "libonnxruntime_providers_tensorrt",
};

/** ORT's messages may start with its source location and a C++ signature; keep what a user reads. */
export function cleanOrtMessage(message: string): string {
  const m = /^\/onnxruntime_src\/\S+:\d+ .*?(?:was false\. |\] )(.*)$/s.exec(message.trim());
  return (m?.[1] ?? message).trim();
}

/** ORT says only "Failed to load shared library"; say which file, and where it should be. */
function explainLoadFailure(provider: string, message: string): string {
  const lib = PROVIDER_LIBRARIES[provider];
  if (!lib || !/Failed to load shared library/i.test(message)) return message;
  const dir = bindingDir();
  const ext = process.platform === "win32" ? ".dll" : ".so";
  if (!dir) return message;
  const file = path.join(dir, `${lib}${ext}`);
  if (!fs.existsSync(file)) {
    return `${message} (${lib}${ext} is not installed beside onnxruntime-node in ${dir}: install it with ONNXRUNTIME_NODE_INSTALL=cuda12, see docs/accelerators.md)`;
  }
  // The library is there: load it ourselves to learn which of its dependencies is missing
  // (ONNX Runtime only logs that). Loading it is what ONNX Runtime just tried to do.
  try {
    process.dlopen({ exports: {} }, file);
  } catch (err) {
    const why = errorMessage(err);
    if (!/did not self-register|Module did not/i.test(why)) return `${message} (${lib}${ext}: ${why})`;
  }
  return `${message} (${lib}${ext} loads; the CUDA 12 runtime, cuDNN 9${provider === "tensorrt" ? ", TensorRT 10" : ""} or the NVIDIA driver may be missing or mismatched)`;
}

let vulkanMissing: string | undefined | null = null;

/**
 * Why a provider cannot run here, found without creating a session (a failed WebGPU attempt
 * makes Dawn print a warning on stderr and costs ~35 ms): on Linux, WebGPU needs the Vulkan
 * loader (`libvulkan.so.1`) and a GPU driver behind it. Undefined when the provider may run.
 */
export function providerPrecheck(provider: string): string | undefined {
  if (provider !== "webgpu" || process.platform !== "linux") return undefined;
  if (vulkanMissing === null) {
    vulkanMissing = undefined;
    try {
      process.dlopen({ exports: {} }, "libvulkan.so.1");
    } catch (err) {
      // Found but not a Node addon ("did not self-register") means it is there.
      if (/cannot open shared object|no such file/i.test(errorMessage(err)))
        vulkanMissing =
          "no Vulkan loader (libvulkan.so.1) on this machine: WebGPU on Linux needs a GPU and its Vulkan driver";
    }
  }
  return vulkanMissing;
}

/**
 * Cache file for an optimised model: one per model content, ORT version, level, and CPU (a graph
 * optimised at level `all` may hold kernels laid out for this CPU's instruction set, so a data
 * folder copied to another machine must not reuse it).
 */
function optimizedModelFile(dir: string, modelPath: string, level: GraphOptimizationLevel): string {
  const version = ort.env.versions.node ?? ort.env.versions.common ?? "unknown";
  const cpu = `${process.arch}:${os.cpus()[0]?.model ?? "unknown"}`;
  const digest = createHash("sha256")
    .update(fs.readFileSync(modelPath))
    .update(`\0${version}\0${level}\0${cpu}`)
    .digest("hex")
    .slice(0, 32);
  return path.join(dir, `${digest}-${level}.onnx`);
}

export interface OrtBackendOptions {
  /** ONNX Runtime's own log level (its messages go to stderr). Default "fatal": its errors reach us as exceptions, explained. */
  logLevel?: "verbose" | "info" | "warning" | "error" | "fatal";
}

export class OrtBackend implements InferenceBackend {
  constructor(options: OrtBackendOptions = {}) {
    // The environment is created once per process, at the first session; later values are ignored.
    ort.env.logLevel = options.logLevel ?? "fatal";
  }

  availableProviders(): string[] {
    return ort.listSupportedBackends().map((b) => b.name);
  }

  unavailableReason(provider: string): string | undefined {
    return providerPrecheck(provider);
  }

  async createSession(modelPath: string, options: SessionOptions): Promise<ModelSession> {
    const provider = firstProvider(options.executionProviders);
    const base: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: options.graphOptimizationLevel,
      ...(options.intraOpThreads > 0 ? { intraOpNumThreads: options.intraOpThreads } : {}),
      ...((options.interOpThreads ?? 1) > 0 ? { interOpNumThreads: options.interOpThreads ?? 1 } : {}),
      executionMode: "sequential",
      logSeverityLevel: 3,
    };
    if (provider === "tensorrt" && options.tensorrtCacheDir) {
      fs.mkdirSync(options.tensorrtCacheDir, { recursive: true });
      // Builds that read TensorRT settings from the environment (provider options V1) use these;
      // the session config entries reach builds that take them as "ep.<provider>." entries.
      process.env.ORT_TENSORRT_ENGINE_CACHE_ENABLE ??= "1";
      process.env.ORT_TENSORRT_CACHE_PATH ??= options.tensorrtCacheDir;
      base.extra = {
        ep: {
          tensorrtexecutionprovider: {
            trt_engine_cache_enable: "1",
            trt_engine_cache_path: options.tensorrtCacheDir,
            trt_timing_cache_enable: "1",
            trt_timing_cache_path: options.tensorrtCacheDir,
          },
        },
      };
    }
    const eps: ort.InferenceSession.ExecutionProviderConfig[] = [provider];
    const create = async (
      file: string,
      extra: ort.InferenceSession.SessionOptions,
    ): Promise<ModelSession> => {
      const started = performance.now();
      const session = await ort.InferenceSession.create(file, {
        ...base,
        ...extra,
        executionProviders: eps,
      });
      return new OrtModelSession(session, provider, {
        loadMs: performance.now() - started,
        optimizedModelCache: "off",
      });
    };
    const fail = (err: unknown): InferenceError =>
      new InferenceError(
        "MODEL_LOAD_FAILED",
        `ONNX Runtime could not load ${modelPath} on ${provider}: ${explainLoadFailure(provider, cleanOrtMessage(errorMessage(err)))}`,
        { cause: err },
      );

    const cacheDir = options.optimizedModelCacheDir ?? "";
    if (provider !== "cpu" || cacheDir === "") {
      try {
        return await create(modelPath, {});
      } catch (err) {
        throw fail(err);
      }
    }
    // Optimised-model cache (CPU only: graphs compiled for an accelerator cannot be saved).
    let cached: string;
    try {
      fs.mkdirSync(cacheDir, { recursive: true });
      cached = optimizedModelFile(cacheDir, modelPath, options.graphOptimizationLevel);
    } catch (err) {
      try {
        const s = await create(modelPath, {});
        return withCache(s, `unavailable: ${errorMessage(err)}`);
      } catch (loadErr) {
        throw fail(loadErr);
      }
    }
    if (fs.existsSync(cached)) {
      try {
        return withCache(await create(cached, { graphOptimizationLevel: "disabled" }), "hit");
      } catch (err) {
        fs.rmSync(cached, { force: true });
        try {
          const s = await create(modelPath, {});
          return withCache(s, `discarded (${errorMessage(err)})`);
        } catch (loadErr) {
          throw fail(loadErr);
        }
      }
    }
    const tmp = `${cached}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    let session: ModelSession;
    try {
      session = await create(modelPath, { optimizedModelFilePath: tmp });
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw fail(err);
    }
    try {
      fs.renameSync(tmp, cached);
      return withCache(session, "written");
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      return withCache(session, `not written: ${errorMessage(err)}`);
    }
  }
}

function withCache(session: ModelSession, state: string): ModelSession {
  if (session.details) session.details.optimizedModelCache = state;
  return session;
}
