/**
 * A pool of worker threads that own the ONNX Runtime sessions, so that inference never runs on
 * the main thread (where MQTT, windows, the store and the API run).
 *
 * Contract: an `InferenceBackend` whose sessions live in workers. The constructor does no I/O;
 * `start()` spawns `size` workers and resolves when each has loaded ONNX Runtime. A session on
 * the CPU provider is loaded in every worker (any worker can take any batch); a session on an
 * accelerator is loaded in one worker (the device serialises its work anyway, and one session
 * means one CUDA context and one TensorRT engine). `run` goes to the replica with the fewest
 * calls outstanding; each worker runs its calls one at a time, in the order received. Inputs are
 * copied to the worker; outputs are transferred back.
 *
 * Failure: a call that fails in ONNX Runtime rejects with its `InferenceError`, and the worker
 * keeps serving. A worker that dies (an uncaught exception, `process.exit`, out of memory) fails
 * every call it had outstanding with `INFERENCE_WORKER_EXITED` (retriable: the batch itself may
 * be fine) and is replaced: the new worker reloads every session the old one held and replays
 * the session's warm-up (its last `benchmark` call) before it takes calls; calls that find no
 * live replica wait for it. Replacement is immediate the first time and backs off (100 ms
 * doubling to 5 s) while workers keep dying within a minute; a session whose reload fails
 * fails its waiting calls and is retried at the next replacement. A native crash inside
 * ONNX Runtime (a segfault) ends the whole process, threads cannot contain it: the service
 * manager restarts the gateway (systemd unit: Restart=on-failure).
 * With `idleStopMs`, workers are stopped once the pool has held no session for that long (a
 * gateway whose models all run on the main thread keeps no idle threads; src/inference/placement.ts)
 * and started again by the next `createSession`; stopping them fails what they had outstanding and
 * a `start()` still waiting for them with `INFERENCE_WORKERS_STOPPED` (retriable), and abandons a
 * replacement in progress (`stopIdle()` resolves once it has given up).
 * `close()` fails what is outstanding (and a `start()` still waiting) with `INFERENCE_POOL_CLOSED`
 * and terminates the workers. No call is left pending by either.
 */

import os from "node:os";
import { Worker } from "node:worker_threads";
import { InferenceError, errorMessage } from "../errors.js";
import type {
  BenchmarkResult,
  InferenceBackend,
  ModelSession,
  OutputTensor,
  SessionDetails,
  SessionOptions,
  TensorInfo,
} from "./ort.js";
import { firstProvider } from "./ort.js";
import type { FromWorker, ToWorker } from "./worker-protocol.js";

/** Default pool size: the cores left after the main thread, at least 1, at most 4. */
export function defaultPoolSize(cores: number = os.availableParallelism()): number {
  return Math.max(1, Math.min(4, cores - 1));
}

export interface PoolOptions {
  size: number;
  /** The worker's module; default `worker.js` (or `worker.ts` under tsx/vitest) beside this file. */
  workerUrl?: URL;
  /** Restart backoff while workers keep dying: first delay, cap. */
  restartBackoffMs?: { initial: number; max: number };
  /** Stop the workers after this long without any session; absent: they run until `close()`. */
  idleStopMs?: number;
}

export interface SessionStats {
  provider: string;
  modelPath: string;
  replicas: number;
  replicasUp: number;
  calls: number;
  items: number;
  failures: number;
  /** Time inside the worker: ORT's run and the output copy, ms. */
  runMs: number;
  /** From the call on the main thread to its result back on it, ms (adds messaging and queueing). */
  roundTripMs: number;
}

export interface PoolStats {
  size: number;
  workersUp: number;
  /** Workers that died and were replaced. */
  restarts: number;
  outstanding: number;
  /** `run` calls per worker slot. */
  callsPerWorker: number[];
  sessions: SessionStats[];
}

interface Pending {
  resolve: (msg: FromWorker) => void;
  reject: (err: Error) => void;
}

interface Slot {
  index: number;
  worker: Worker | undefined;
  up: boolean;
  outstanding: Map<number, Pending>;
  /** `run` calls sent to this slot (any of its workers). */
  calls: number;
  /** Resolves when the current worker said ready (or rejects if it died first). */
  ready: Promise<void> | undefined;
}

interface SessionEntry {
  id: number;
  modelPath: string;
  options: SessionOptions;
  provider: string;
  /** Slots that should hold this session, and which of them hold it now. */
  slots: number[];
  loaded: Set<number>;
  warmup: { inputName: string; data: Float32Array; dims: readonly number[]; runs: number } | undefined;
  /** Calls waiting for a replica to come up. */
  waiting: (() => void)[];
  /** Worker time of the call whose result was delivered last (see ModelSession.lastRunMs). */
  lastRunMs: number | undefined;
  stats: SessionStats;
  released: boolean;
}

/** Where the worker module is: the compiled .js beside this file, or the .ts source under tsx/vitest. */
function defaultWorkerUrl(): URL {
  const fromSource = import.meta.url.endsWith(".ts");
  return new URL(fromSource ? "./worker.ts" : "./worker.js", import.meta.url);
}

/** A Worker for `url`; TypeScript sources are loaded through tsx (development and tests only). */
function spawn(url: URL): Worker {
  if (!url.pathname.endsWith(".ts")) return new Worker(url);
  const api = import.meta.resolve("tsx/esm/api");
  const code = `const { register } = await import(${JSON.stringify(api)}); register(); await import(${JSON.stringify(url.href)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`));
}

function rebuildError(msg: { code: string; message: string; retriable: boolean }): InferenceError {
  return new InferenceError(msg.code, msg.message, { retriable: msg.retriable });
}

export class WorkerPool implements InferenceBackend {
  private readonly slots: Slot[];
  private readonly sessions = new Map<number, SessionEntry>();
  private providers: string[] = [];
  private unavailable: Record<string, string> = {};
  private nextId = 1;
  private nextSession = 1;
  private restarts = 0;
  private recentDeaths: number[] = [];
  private closed = false;
  private started: Promise<void> | undefined;
  private readonly workerUrl: URL;
  private readonly backoff: { initial: number; max: number };
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly idleStopMs: number | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Times the workers were stopped for want of sessions. */
  idleStops = 0;
  /** `createSession` calls in progress (the workers are not idle while one is). */
  private creating = 0;
  /** Bumped by `stopIdle()`: a replacement begun before it gives up. */
  private generation = 0;
  /** Replacements of dead workers in progress; `stopIdle()` and `close()` wait for them to settle. */
  private readonly replacing = new Set<Promise<void>>();

  constructor(options: PoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) throw new RangeError("pool size must be >= 1");
    this.slots = Array.from({ length: options.size }, (_, index) => ({
      index,
      worker: undefined,
      up: false,
      outstanding: new Map(),
      calls: 0,
      ready: undefined,
    }));
    this.workerUrl = options.workerUrl ?? defaultWorkerUrl();
    this.backoff = options.restartBackoffMs ?? { initial: 100, max: 5_000 };
    this.idleStopMs = options.idleStopMs;
  }

  get size(): number {
    return this.slots.length;
  }

  /** Spawns the workers; resolves when every one has loaded ONNX Runtime. */
  start(): Promise<void> {
    this.started ??= Promise.all(this.slots.map((s) => this.boot(s))).then(() => undefined);
    return this.started;
  }

  private idle(): boolean {
    return this.started !== undefined && this.sessions.size === 0 && this.creating === 0;
  }

  /** With `idleStopMs`: stop the workers once no session has come for that long. */
  private scheduleIdleStop(): void {
    if (this.idleStopMs === undefined || this.closed || !this.idle()) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      void this.stopIdle();
    }, this.idleStopMs);
    this.idleTimer.unref();
  }

  /** Terminates the workers if the pool holds no session; the next `createSession` starts them again. */
  async stopIdle(): Promise<void> {
    if (this.closed || !this.idle()) return;
    this.started = undefined;
    this.idleStops++;
    this.generation++;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.recentDeaths = [];
    const err = this.stoppedError();
    await Promise.all(
      this.slots.map(async (slot) => {
        const worker = slot.worker;
        // Cleared first, so that its exit is not taken for a death to replace.
        slot.worker = undefined;
        slot.up = false;
        const outstanding = [...slot.outstanding.values()];
        slot.outstanding.clear();
        for (const p of outstanding) p.reject(err);
        if (worker) await worker.terminate();
      }),
    );
    // A replacement that was booting or reloading has now failed its step and returns.
    await Promise.all(this.replacing);
  }

  /** Why a worker stopped on purpose (idle stop or close) failed what waited for it. */
  private stoppedError(): InferenceError {
    return this.closed
      ? new InferenceError("INFERENCE_POOL_CLOSED", "the inference pool is closed")
      : new InferenceError(
          "INFERENCE_WORKERS_STOPPED",
          "the inference workers were stopped (the pool held no session); the next session starts them again",
          { retriable: true },
        );
  }

  availableProviders(): string[] {
    return [...this.providers];
  }

  unavailableReason(provider: string): string | undefined {
    return this.unavailable[provider];
  }

  private boot(slot: Slot): Promise<void> {
    const worker = spawn(this.workerUrl);
    slot.worker = worker;
    slot.up = false;
    slot.ready = new Promise<void>((resolve, reject) => {
      worker.on("message", (msg: FromWorker) => {
        if (msg.type === "ready") {
          this.providers = msg.providers;
          this.unavailable = msg.unavailable;
          slot.up = true;
          resolve();
          return;
        }
        const p = slot.outstanding.get(msg.id);
        if (!p) return;
        slot.outstanding.delete(msg.id);
        if (msg.type === "error") p.reject(rebuildError(msg));
        else p.resolve(msg);
      });
      let lastError = "";
      worker.on("error", (err) => {
        lastError = errorMessage(err);
      });
      worker.on("exit", (code) => {
        if (slot.worker !== worker) {
          // Stopped on purpose (stopIdle, close): not a death to replace, but whoever waits for
          // it to be ready (start(), a replacement) must hear. A no-op once it was ready.
          reject(this.stoppedError());
          return;
        }
        const why = lastError !== "" ? lastError : `exit code ${code}`;
        reject(
          new InferenceError(
            "INFERENCE_WORKER_EXITED",
            `inference worker ${slot.index} exited before it was ready: ${why}`,
            { retriable: true },
          ),
        );
        this.onDeath(slot, why);
      });
    });
    return slot.ready;
  }

  private onDeath(slot: Slot, why: string): void {
    slot.up = false;
    slot.worker = undefined;
    const err = new InferenceError(
      "INFERENCE_WORKER_EXITED",
      `inference worker ${slot.index} exited (${why}); the call it was running is lost`,
      { retriable: true },
    );
    const outstanding = [...slot.outstanding.values()];
    slot.outstanding.clear();
    for (const p of outstanding) p.reject(err);
    for (const s of this.sessions.values()) s.loaded.delete(slot.index);
    if (this.closed) return;
    this.restarts++;
    const now = Date.now();
    this.recentDeaths = this.recentDeaths.filter((t) => now - t < 60_000);
    const delay =
      this.recentDeaths.length === 0
        ? 0
        : Math.min(this.backoff.max, this.backoff.initial * 2 ** (this.recentDeaths.length - 1));
    this.recentDeaths.push(now);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      const replacing: Promise<void> = this.replace(slot)
        .catch(() => undefined)
        .finally(() => this.replacing.delete(replacing));
      this.replacing.add(replacing);
    }, delay);
    this.timers.add(timer);
  }

  /** A new worker in `slot`, with every session it held reloaded and warmed up. */
  private async replace(slot: Slot): Promise<void> {
    const generation = this.generation;
    const abandoned = (): boolean => this.closed || this.generation !== generation;
    if (abandoned()) return;
    try {
      await this.boot(slot);
    } catch {
      return; // died: its exit handler has scheduled the next attempt; stopped: nothing to do
    }
    for (const s of this.sessions.values()) {
      if (abandoned()) return;
      if (s.released || !s.slots.includes(slot.index)) continue;
      try {
        await this.loadOn(slot, s);
        if (s.warmup) {
          const w = s.warmup;
          await this.request(slot, {
            type: "benchmark",
            id: 0,
            session: s.id,
            inputName: w.inputName,
            data: w.data,
            dims: w.dims,
            runs: 0,
            warmupRuns: w.runs,
          });
        }
        s.loaded.add(slot.index);
        s.stats.replicasUp = s.loaded.size;
        const waiting = s.waiting.splice(0);
        for (const wake of waiting) wake();
      } catch {
        // Calls waiting for this session fail now; the next replacement tries again.
        const waiting = s.waiting.splice(0);
        for (const wake of waiting) wake();
      }
    }
  }

  private request(slot: Slot, msg: ToWorker): Promise<FromWorker> {
    const worker = slot.worker;
    if (!worker || !slot.up) {
      return Promise.reject(
        new InferenceError("INFERENCE_WORKER_EXITED", `inference worker ${slot.index} is not running`, {
          retriable: true,
        }),
      );
    }
    const id = this.nextId++;
    return new Promise<FromWorker>((resolve, reject) => {
      slot.outstanding.set(id, { resolve, reject });
      worker.postMessage({ ...msg, id });
    });
  }

  private async loadOn(slot: Slot, s: SessionEntry): Promise<FromWorker & { type: "loaded" }> {
    const reply = await this.request(slot, {
      type: "load",
      id: 0,
      session: s.id,
      modelPath: s.modelPath,
      options: s.options,
    });
    if (reply.type !== "loaded")
      throw new InferenceError("INFERENCE_PROTOCOL", `unexpected reply ${reply.type}`);
    return reply;
  }

  async createSession(modelPath: string, options: SessionOptions): Promise<ModelSession> {
    if (this.closed) throw new InferenceError("INFERENCE_POOL_CLOSED", "the inference pool is closed");
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.creating++;
    try {
      return await this.create(modelPath, options);
    } finally {
      this.creating--;
      this.scheduleIdleStop();
    }
  }

  private async create(modelPath: string, options: SessionOptions): Promise<ModelSession> {
    await this.start();
    const provider = firstProvider(options.executionProviders);
    const id = this.nextSession++;
    // CPU: a replica in every worker. An accelerator: one, in the worker holding the fewest sessions.
    const slots =
      provider === "cpu"
        ? this.slots.map((s) => s.index)
        : [
            this.slots
              .map((s) => ({
                i: s.index,
                n: [...this.sessions.values()].filter((e) => e.slots.includes(s.index)).length,
              }))
              .sort((a, b) => a.n - b.n)[0]?.i ?? 0,
          ];
    const entry: SessionEntry = {
      id,
      modelPath,
      options: { ...options, executionProviders: [provider] },
      provider,
      slots,
      loaded: new Set(),
      warmup: undefined,
      waiting: [],
      lastRunMs: undefined,
      released: false,
      stats: {
        provider,
        modelPath,
        replicas: slots.length,
        replicasUp: 0,
        calls: 0,
        items: 0,
        failures: 0,
        runMs: 0,
        roundTripMs: 0,
      },
    };
    const results = await Promise.allSettled(slots.map((i) => this.loadOn(this.slot(i), entry)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) {
      await Promise.allSettled(
        slots.map((i, k) =>
          results[k]?.status === "fulfilled"
            ? this.request(this.slot(i), { type: "release", id: 0, session: id })
            : Promise.resolve(),
        ),
      );
      throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
    }
    const first = (results[0] as PromiseFulfilledResult<FromWorker & { type: "loaded" }>).value;
    for (const i of slots) entry.loaded.add(i);
    entry.stats.replicasUp = entry.loaded.size;
    this.sessions.set(id, entry);
    return new PooledSession(this, entry, first.inputs, first.outputs, first.details);
  }

  private slot(i: number): Slot {
    const s = this.slots[i];
    if (!s) throw new RangeError(`no worker ${i}`);
    return s;
  }

  /** A live replica of `s` with the fewest calls outstanding, if one is up. */
  private available(s: SessionEntry): Slot | undefined {
    let best: Slot | undefined;
    for (const i of s.loaded) {
      const slot = this.slot(i);
      if (slot.up && (!best || slot.outstanding.size < best.outstanding.size)) best = slot;
    }
    return best;
  }

  /**
   * A live replica of `s`, waiting for one if none is up. Synchronous when one is up, so that a
   * burst of calls made in one turn is spread over the replicas (each call counts at once).
   */
  private pick(s: SessionEntry): Slot | Promise<Slot> {
    if (this.closed) throw new InferenceError("INFERENCE_POOL_CLOSED", "the inference pool is closed");
    if (s.released) throw new InferenceError("INFERENCE_SESSION_RELEASED", "the session was released");
    return this.available(s) ?? this.waitForReplica(s);
  }

  private async waitForReplica(s: SessionEntry): Promise<Slot> {
    for (;;) {
      const before = this.restarts;
      await new Promise<void>((resolve) => s.waiting.push(resolve));
      if (this.closed) throw new InferenceError("INFERENCE_POOL_CLOSED", "the inference pool is closed");
      if (s.released) throw new InferenceError("INFERENCE_SESSION_RELEASED", "the session was released");
      const slot = this.available(s);
      if (slot) return slot;
      // Woken without a replica coming up: its reload failed.
      if (this.restarts === before) {
        throw new InferenceError(
          "INFERENCE_SESSION_LOST",
          `the session for ${s.modelPath} could not be reloaded after its worker exited`,
          { retriable: true },
        );
      }
    }
  }

  async run(
    s: SessionEntry,
    inputName: string,
    data: Float32Array,
    dims: readonly number[],
  ): Promise<Map<string, OutputTensor>> {
    const started = performance.now();
    s.stats.calls++;
    try {
      const picked = this.pick(s);
      const slot = picked instanceof Promise ? await picked : picked;
      slot.calls++;
      const reply = await this.request(slot, { type: "run", id: 0, session: s.id, inputName, data, dims });
      if (reply.type !== "result")
        throw new InferenceError("INFERENCE_PROTOCOL", `unexpected reply ${reply.type}`);
      s.stats.items += dims[0] ?? 1;
      s.stats.runMs += reply.runMs;
      s.lastRunMs = reply.runMs;
      s.stats.roundTripMs += performance.now() - started;
      return new Map(reply.outputs.map((t) => [t.name, { data: t.data, dims: t.dims }]));
    } catch (err) {
      s.stats.failures++;
      throw err;
    }
  }

  async benchmark(
    s: SessionEntry,
    inputName: string,
    data: Float32Array,
    dims: readonly number[],
    runs: number,
    warmupRuns: number,
  ): Promise<BenchmarkResult> {
    // Remembered as the warm-up a replacement worker replays before it serves.
    s.warmup = { inputName, data: data.slice(), dims: [...dims], runs: Math.max(1, warmupRuns + runs) };
    const picked = this.pick(s);
    const slot = picked instanceof Promise ? await picked : picked;
    const reply = await this.request(slot, {
      type: "benchmark",
      id: 0,
      session: s.id,
      inputName,
      data,
      dims,
      runs,
      warmupRuns,
    });
    if (reply.type !== "benchmarked")
      throw new InferenceError("INFERENCE_PROTOCOL", `unexpected reply ${reply.type}`);
    // Other replicas of a CPU session warm up too (not timed).
    const others = [...s.loaded]
      .filter((i) => i !== slot.index)
      .map((i) => this.slot(i))
      .filter((x) => x.up);
    await Promise.allSettled(
      others.map((o) =>
        this.request(o, {
          type: "benchmark",
          id: 0,
          session: s.id,
          inputName,
          data,
          dims,
          runs: 0,
          warmupRuns: warmupRuns + runs,
        }),
      ),
    );
    return {
      runs: reply.runs,
      ms: reply.ms,
      ...(reply.medianRunMs !== undefined ? { medianRunMs: reply.medianRunMs } : {}),
    };
  }

  async release(s: SessionEntry): Promise<void> {
    if (s.released) return;
    s.released = true;
    this.sessions.delete(s.id);
    for (const wake of s.waiting.splice(0)) wake();
    await Promise.allSettled(
      [...s.loaded].map((i) => this.request(this.slot(i), { type: "release", id: 0, session: s.id })),
    );
    s.loaded.clear();
    this.scheduleIdleStop();
  }

  stats(): PoolStats {
    return {
      size: this.slots.length,
      workersUp: this.slots.filter((s) => s.up).length,
      restarts: this.restarts,
      outstanding: this.slots.reduce((n, s) => n + s.outstanding.size, 0),
      callsPerWorker: this.slots.map((s) => s.calls),
      sessions: [...this.sessions.values()].map((s) => ({ ...s.stats, replicasUp: s.loaded.size })),
    };
  }

  /** Fails outstanding calls and terminates the workers. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.idleTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const err = new InferenceError("INFERENCE_POOL_CLOSED", "the inference pool is closed");
    for (const s of this.sessions.values()) for (const wake of s.waiting.splice(0)) wake();
    await Promise.all(
      this.slots.map(async (slot) => {
        const worker = slot.worker;
        slot.worker = undefined;
        slot.up = false;
        for (const p of slot.outstanding.values()) p.reject(err);
        slot.outstanding.clear();
        if (worker) await worker.terminate();
      }),
    );
    await Promise.all(this.replacing);
  }
}

/** The main thread's handle on a session that lives in the pool's workers. */
class PooledSession implements ModelSession {
  readonly provider: string;

  constructor(
    private readonly pool: WorkerPool,
    private readonly entry: SessionEntry,
    readonly inputs: readonly TensorInfo[],
    readonly outputs: readonly TensorInfo[],
    readonly details: SessionDetails | undefined,
  ) {
    this.provider = entry.provider;
  }

  get lastRunMs(): number | undefined {
    return this.entry.lastRunMs;
  }

  run(inputName: string, data: Float32Array, dims: readonly number[]): Promise<Map<string, OutputTensor>> {
    return this.pool.run(this.entry, inputName, data, dims);
  }

  benchmark(
    inputName: string,
    data: Float32Array,
    dims: readonly number[],
    runs: number,
    warmupRuns: number,
  ): Promise<BenchmarkResult> {
    return this.pool.benchmark(this.entry, inputName, data, dims, runs, warmupRuns);
  }

  release(): Promise<void> {
    return this.pool.release(this.entry);
  }
}
