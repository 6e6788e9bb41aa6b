/**
 * Where each model's inference runs: on the main thread or on the worker pool.
 *
 * Contract:
 * - `decidePlacement` is pure. With `inference.workers` a number the answer is fixed (0: the
 *   main thread, N: the pool). With `auto`, a model whose measured time per batch (its warm-up
 *   before serving, at the serving batch, timed where it ran: no messaging counted) is below
 *   `inference.mainThreadMaxBatchMs` runs on the main thread — for such a model the hop to a
 *   worker (0.1–0.3 ms per call measured, docs/benchmarks.md) costs more than the inference —
 *   and every other model on the pool, where it cannot stall MQTT handling. A model whose cost
 *   was not measured (no timed runs, or a failed warm-up) goes to the pool.
 * - `PlacingBackend` is the gateway's `InferenceBackend`. Its constructor does no I/O; the
 *   pool spawns its workers when a session first needs them. A model is first opened where
 *   measuring it cannot hurt: on the main thread while the gateway starts (nothing is served
 *   yet, so a model placed there costs no worker at all), in the pool once `beginServing()` was
 *   called (a slow model's load, self-test and warm-up then never run on the main thread).
 *   `place()` decides; when the model belongs on the other side, the caller opens it there
 *   again (every check and the warm-up again) and releases the first session. In `auto`, pool
 *   workers that hold no session are stopped after `idleStopMs` and started again when needed.
 */

import { OrtBackend, type InferenceBackend, type ModelSession, type SessionOptions } from "./ort.js";
import { WorkerPool, type PoolStats } from "./pool.js";
import type { ProviderSelection } from "./providers.js";

export type InferenceThread = "main" | "pool";

export interface PlacementDecision {
  thread: InferenceThread;
  /** One line: why this thread. */
  reason: string;
  /** `auto` (decided per model) or `fixed` (`inference.workers` is a number). */
  mode: "auto" | "fixed";
  /** Measured time of one batch where the model was first opened, ms; null when not measured. */
  msPerBatch: number | null;
  /** The batch size it was measured at (the serving batch, capped by the model). */
  batch: number | null;
  /** `inference.mainThreadMaxBatchMs` in `auto`; null when fixed. */
  thresholdMs: number | null;
  /** Where the measurement was taken. */
  measuredOn?: InferenceThread;
  /** When the model was opened again on `thread`: its load and warm-up there. */
  moved?: { loadMs: number | null; msPerBatch: number | null } | { error: string };
}

export interface PlacementInput {
  workers: "auto" | number;
  thresholdMs: number;
  /** Measured time per batch, ms (undefined or NaN: not measured). */
  msPerBatch: number | undefined;
  batch: number | undefined;
  /** Why it was not measured (for the reason), e.g. the warm-up's error. */
  unmeasured?: string;
}

const msText = (ms: number): string => (ms >= 1 ? ms.toFixed(2) : ms >= 0.01 ? ms.toFixed(3) : ms.toFixed(4));

/** Main thread or pool for one model; see the module header. */
export function decidePlacement(input: PlacementInput): PlacementDecision {
  const measured = input.msPerBatch !== undefined && Number.isFinite(input.msPerBatch);
  const msPerBatch = measured ? (input.msPerBatch as number) : null;
  const batch = input.batch ?? null;
  if (input.workers !== "auto") {
    const thread: InferenceThread = input.workers === 0 ? "main" : "pool";
    return {
      thread,
      mode: "fixed",
      msPerBatch,
      batch,
      thresholdMs: null,
      reason:
        thread === "main"
          ? "inference.workers = 0: every model runs on the main thread"
          : `inference.workers = ${input.workers}: every model runs on the worker pool`,
    };
  }
  const threshold = input.thresholdMs;
  const base = { mode: "auto" as const, msPerBatch, batch, thresholdMs: threshold };
  if (msPerBatch === null) {
    return {
      ...base,
      thread: "pool",
      reason: `time per batch not measured (${input.unmeasured ?? "no timed warm-up runs: inference.benchmarkRuns = 0"}); on the worker pool, where a slow model cannot stall MQTT handling`,
    };
  }
  const at = `${msText(msPerBatch)} ms per batch of ${batch ?? "?"}`;
  if (msPerBatch < threshold) {
    return {
      ...base,
      thread: "main",
      reason: `${at} < ${msText(threshold)} ms (inference.mainThreadMaxBatchMs): on the main thread, where no hop to a worker costs more than the inference`,
    };
  }
  return {
    ...base,
    thread: "pool",
    reason: `${at} ≥ ${msText(threshold)} ms (inference.mainThreadMaxBatchMs): on the worker pool, so that its batches cannot stall MQTT handling`,
  };
}

/** The warm-up's time per batch, ms, if it was timed. */
export function warmupMsPerBatch(warmup: ProviderSelection["warmup"]): number | undefined {
  if (!warmup || warmup.error !== undefined) return undefined;
  if (warmup.medianRunMs !== undefined && Number.isFinite(warmup.medianRunMs)) return warmup.medianRunMs;
  if (warmup.runs > 0 && Number.isFinite(warmup.ms)) return warmup.ms / warmup.runs;
  // Measured by the provider benchmark (its total is not kept): from its rate.
  if (warmup.windowsPerSec > 0) return (warmup.batch * 1000) / warmup.windowsPerSec;
  return undefined;
}

/** One line for logs and `vigil status`, e.g. "main thread (0.031 ms per batch of 64 < 0.25 ms …)". */
export function describePlacement(p: PlacementDecision): string {
  return `${p.thread === "main" ? "main thread" : "worker pool"} (${p.reason})`;
}

export interface PlacingOptions {
  /** `inference.workers`. */
  workers: "auto" | number;
  /** Pool size when a pool is needed (for "auto": cores − 1, 1–4). */
  poolSize: number;
  /** `inference.mainThreadMaxBatchMs`. */
  mainThreadMaxBatchMs: number;
  /** In `auto`: stop pool workers that hold no session after this long. Default 1,000 ms (a model opened on the pool and moved, or a provider tried after another, reuses them). */
  idleStopMs?: number;
  /** The pool to use (tests); default a `WorkerPool` of `poolSize`. */
  pool?: WorkerPool;
}

/** A measured model to place: its session and its warm-up. */
export interface PlaceRequest {
  session: ModelSession;
  selection: ProviderSelection | undefined;
}

export interface PlaceAnswer {
  decision: PlacementDecision;
  /** Set when the model must be opened again on this backend (and the first session released). */
  reopenOn?: InferenceBackend;
}

export interface PlacingStats extends PoolStats {
  /** `inference.workers` as configured. */
  setting: "auto" | number;
  mainThreadMaxBatchMs: number | null;
  /** Sessions open on the main thread. */
  mainThreadSessions: number;
  /** Times the pool's idle workers were stopped. */
  idleStops: number;
}

/** The main thread and a worker pool behind one backend, with models placed per `decidePlacement`. */
export class PlacingBackend implements InferenceBackend {
  private readonly main = new OrtBackend();
  private readonly pool: WorkerPool | undefined;
  private readonly where = new WeakMap<ModelSession, InferenceThread>();
  private mainSessions = 0;
  private serving = false;

  constructor(private readonly options: PlacingOptions) {
    const auto = options.workers === "auto";
    if (options.workers !== 0)
      this.pool =
        options.pool ??
        new WorkerPool({
          size: options.poolSize,
          ...(auto ? { idleStopMs: options.idleStopMs ?? 1_000 } : {}),
        });
  }

  /** Worker threads a model placed on the pool runs on (0 when every model runs on the main thread). */
  get poolSize(): number {
    return this.pool?.size ?? 0;
  }

  /** With a fixed pool, its workers start now; in `auto`, when a model first needs them. */
  async start(): Promise<void> {
    if (this.options.workers !== "auto") await this.pool?.start();
  }

  /** From now on the gateway handles live traffic: new models are measured in the pool. */
  beginServing(): void {
    this.serving = true;
  }

  availableProviders(): string[] {
    return this.main.availableProviders();
  }

  unavailableReason(provider: string): string | undefined {
    return this.main.unavailableReason(provider);
  }

  /** Where a model is opened first (and measured). */
  private probeThread(): InferenceThread {
    if (!this.pool) return "main";
    if (this.options.workers !== "auto") return "pool";
    return this.serving ? "pool" : "main";
  }

  private backendOf(thread: InferenceThread): InferenceBackend {
    return thread === "main" || !this.pool ? this.main : this.pool;
  }

  createSession(modelPath: string, options: SessionOptions): Promise<ModelSession> {
    return this.createOn(this.probeThread(), modelPath, options);
  }

  private async createOn(
    thread: InferenceThread,
    modelPath: string,
    options: SessionOptions,
  ): Promise<ModelSession> {
    const session = await this.backendOf(thread).createSession(modelPath, options);
    if (thread === "pool") {
      this.where.set(session, "pool");
      return session;
    }
    // Counted until released.
    this.mainSessions++;
    const counted = new MainThreadSession(session, () => this.mainSessions--);
    this.where.set(counted, "main");
    return counted;
  }

  /** Decides where a measured session serves; see `PlaceAnswer`. */
  place(request: PlaceRequest): PlaceAnswer {
    const warmup = request.selection?.warmup;
    const measuredOn = this.where.get(request.session) ?? this.probeThread();
    const decision: PlacementDecision = {
      ...decidePlacement({
        workers: this.options.workers,
        thresholdMs: this.options.mainThreadMaxBatchMs,
        msPerBatch: warmupMsPerBatch(warmup),
        batch: warmup?.batch,
        ...(warmup?.error !== undefined ? { unmeasured: `the warm-up failed: ${warmup.error}` } : {}),
      }),
      measuredOn,
    };
    if (decision.thread === measuredOn) return { decision };
    // Opened again on the side it belongs to, through this backend so that it is tracked.
    const thread = decision.thread;
    const reopenOn: InferenceBackend = {
      createSession: (modelPath, options) => this.createOn(thread, modelPath, options),
      availableProviders: () => this.availableProviders(),
      unavailableReason: (p) => this.unavailableReason(p),
    };
    return { decision, reopenOn };
  }

  stats(): PlacingStats {
    const pool: PoolStats = this.pool?.stats() ?? {
      size: 0,
      workersUp: 0,
      restarts: 0,
      outstanding: 0,
      callsPerWorker: [],
      sessions: [],
    };
    return {
      ...pool,
      setting: this.options.workers,
      mainThreadMaxBatchMs: this.options.workers === "auto" ? this.options.mainThreadMaxBatchMs : null,
      mainThreadSessions: this.mainSessions,
      idleStops: this.pool?.idleStops ?? 0,
    };
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }
}

/** A session on the main thread, counted by its backend until released. */
class MainThreadSession implements ModelSession {
  private released = false;

  constructor(
    private readonly inner: ModelSession,
    private readonly onRelease: () => void,
  ) {}

  get inputs(): ModelSession["inputs"] {
    return this.inner.inputs;
  }

  get outputs(): ModelSession["outputs"] {
    return this.inner.outputs;
  }

  get provider(): string {
    return this.inner.provider;
  }

  get details(): ModelSession["details"] {
    return this.inner.details;
  }

  get lastRunMs(): number | undefined {
    return this.inner.lastRunMs;
  }

  run(...args: Parameters<ModelSession["run"]>): ReturnType<ModelSession["run"]> {
    return this.inner.run(...args);
  }

  benchmark(
    ...args: Parameters<NonNullable<ModelSession["benchmark"]>>
  ): ReturnType<NonNullable<ModelSession["benchmark"]>> {
    if (!this.inner.benchmark) return Promise.reject(new Error("this session cannot be benchmarked"));
    return this.inner.benchmark(...args);
  }

  async release(): Promise<void> {
    if (!this.released) {
      this.released = true;
      this.onRelease();
    }
    await this.inner.release();
  }
}
