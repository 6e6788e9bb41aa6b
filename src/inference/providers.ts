/**
 * Choosing the execution provider a model runs on, and proving it.
 *
 * Contract: `openOnBestProvider` tries the requested providers in order — "auto" is TensorRT,
 * CUDA, the platform's own (CoreML on macOS, DirectML on Windows), WebGPU, CPU — and uses a
 * provider only if a session loads on it AND `verify` passes on that session (the package's
 * tensor check and self-test). Without the benchmark, the first provider that passes serves
 * and the later ones are not tried. With it, every provider that passes runs a short warm-up
 * benchmark at the serving batch size and the fastest serves (small models are often faster on
 * the CPU than on a GPU, whose per-call overhead they cannot amortise). Every other provider is
 * listed with why it was not used — not in this build of ONNX Runtime or known not to run on
 * this machine (`unavailableReason`: WebGPU without a Vulkan loader), ONNX Runtime's own load
 * error, the self-test failure, slower, or not tried — for the log, the status and metrics.
 * The serving provider is then warmed up at the serving batch; a warm-up that fails is reported
 * (`warmup.error`), not fatal: the self-test passed. Sessions that do not serve are released.
 * When no provider passes it throws the most telling
 * error (a self-test or tensor failure over a load failure), naming what every other provider said.
 */

import { InferenceError, errorMessage } from "../errors.js";
import type { InferenceBackend, ModelSession, SessionOptions } from "./ort.js";

/** What "auto" tries, in order, on each platform. */
export function autoProviders(platform: NodeJS.Platform = process.platform): string[] {
  const own = platform === "darwin" ? ["coreml"] : platform === "win32" ? ["dml"] : [];
  return ["tensorrt", "cuda", ...own, "webgpu", "cpu"];
}

export type AttemptOutcome =
  "selected" | "unavailable" | "load-failed" | "self-test-failed" | "slower" | "not-tried";

export interface ProviderAttempt {
  provider: string;
  outcome: AttemptOutcome;
  /** One line: why it serves, or why it does not. */
  reason: string;
  /** Session creation, ms (when a session was created). */
  loadMs?: number;
  /** The optimised-model cache, when the session has one: `hit`, `written`, `off`, or why not. */
  optimizedModelCache?: string;
  /** Warm-up benchmark at the serving batch, windows/s (when it ran). */
  windowsPerSec?: number;
}

export interface ProviderSelection {
  provider: string;
  /** Why this provider serves. */
  reason: string;
  requested: "auto" | readonly string[];
  attempts: ProviderAttempt[];
  /** The warm-up before serving, at the serving batch (windows/s is its timed part); `error` if it failed. */
  warmup?: {
    batch: number;
    runs: number;
    ms: number;
    windowsPerSec: number;
    /** Median computing time of one batch, ms (see BenchmarkResult.medianRunMs). */
    medianRunMs?: number;
    error?: string;
  };
}

export interface BenchmarkPlan {
  inputName: string;
  /** One batch of `dims[0]` inputs, and its dims. */
  data: Float32Array;
  dims: readonly number[];
  /** Timed runs (after `warmupRuns` untimed ones). */
  runs: number;
  warmupRuns: number;
}

/** The warm-up and benchmark a model gets before it serves (`SessionOptions.serving`). */
export const warmUp = {
  /**
   * `batch` copies of `sample` (the package's first self-test input, already preprocessed: a
   * realistic input), or zeros; `batch` is the serving batch, at most the model's own maximum.
   */
  plan(
    inputName: string,
    shape: readonly number[],
    sample: readonly number[] | undefined,
    options: SessionOptions,
    modelMaxBatch: number,
  ): BenchmarkPlan {
    const serving = options.serving;
    const batch = Math.max(1, Math.min(serving?.batch ?? 1, modelMaxBatch));
    const per = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(per * batch);
    if (sample && sample.length === per) for (let b = 0; b < batch; b++) data.set(sample, b * per);
    return {
      inputName,
      data,
      dims: [batch, ...shape],
      runs: serving?.benchmarkRuns ?? 0,
      warmupRuns: serving?.warmupRuns ?? 0,
    };
  },
};

/** Thrown when no provider can serve: the error of the most telling attempt, with the others named. */
function noProviderError(cause: unknown, provider: string, attempts: readonly ProviderAttempt[]): unknown {
  const others = attempts.filter((a) => a.provider !== provider && a.outcome !== "not-tried");
  // One provider asked for: its error as it is.
  if (others.length === 0) return cause;
  const message = `${errorMessage(cause)} (on ${provider}; ${others.map((a) => `${a.provider}: ${a.reason}`).join("; ")})`;
  if (cause instanceof Error) {
    // Keep the error's class, code and field: only its message gains the other providers' reasons.
    cause.message = message;
    return cause;
  }
  return new Error(message, { cause });
}

export async function openOnBestProvider(
  backend: InferenceBackend,
  modelPath: string,
  options: SessionOptions,
  verify: (session: ModelSession) => Promise<void>,
  planFor: (session: ModelSession) => BenchmarkPlan,
): Promise<{ session: ModelSession; selection: ProviderSelection }> {
  const compare = options.serving?.providerBenchmark ?? false;
  const requested = options.executionProviders;
  const order = requested === "auto" ? autoProviders() : [...new Set(requested)];
  const known = new Set(backend.availableProviders());
  const attempts: ProviderAttempt[] = [];
  const passed: { session: ModelSession; attempt: ProviderAttempt }[] = [];
  let telling: { error: unknown; rank: number; provider: string } | undefined;
  const remember = (error: unknown, rank: number, provider: string): void => {
    if (!telling || rank >= telling.rank) telling = { error, rank, provider };
  };

  for (const provider of order) {
    if (passed.length > 0 && !compare) {
      attempts.push({
        provider,
        outcome: "not-tried",
        reason: `${passed[0]?.attempt.provider} passed first (the provider benchmark is off)`,
      });
      continue;
    }
    if (!known.has(provider)) {
      attempts.push({
        provider,
        outcome: "unavailable",
        reason: `not in this build of ONNX Runtime (it has: ${[...known].join(", ") || "none"})`,
      });
      continue;
    }
    const why = backend.unavailableReason?.(provider);
    if (why) {
      attempts.push({ provider, outcome: "unavailable", reason: why });
      continue;
    }
    let session: ModelSession;
    const started = performance.now();
    try {
      session = await backend.createSession(modelPath, { ...options, executionProviders: [provider] });
    } catch (err) {
      attempts.push({ provider, outcome: "load-failed", reason: errorMessage(err) });
      remember(err, 1, provider);
      continue;
    }
    const loadMs = session.details?.loadMs ?? performance.now() - started;
    try {
      await verify(session);
    } catch (err) {
      await session.release().catch(() => undefined);
      attempts.push({ provider, outcome: "self-test-failed", reason: errorMessage(err), loadMs });
      remember(err, 2, provider);
      continue;
    }
    const attempt: ProviderAttempt = {
      provider,
      outcome: "selected",
      reason: "",
      loadMs,
      ...(session.details ? { optimizedModelCache: session.details.optimizedModelCache } : {}),
    };
    attempts.push(attempt);
    passed.push({ session, attempt });
  }

  if (passed.length === 0) {
    if (!telling) {
      throw new InferenceError(
        "NO_EXECUTION_PROVIDER",
        `no execution provider can run here: ${attempts.map((a) => `${a.provider}: ${a.reason}`).join("; ")}`,
      );
    }
    throw noProviderError(telling.error, telling.provider, attempts);
  }

  const speedOf = async (
    session: ModelSession,
  ): Promise<{ windowsPerSec: number; batch: number; ms: number; runs: number; medianRunMs?: number }> => {
    const plan = planFor(session);
    if (!session.benchmark) return { runs: 0, ms: 0, batch: plan.dims[0] ?? 1, windowsPerSec: 0 };
    const r = await session.benchmark(plan.inputName, plan.data, plan.dims, plan.runs, plan.warmupRuns);
    const batch = plan.dims[0] ?? 1;
    return { ...r, batch, windowsPerSec: r.ms > 0 ? (batch * r.runs * 1000) / r.ms : 0 };
  };
  let winner = passed[0] as (typeof passed)[number];
  let batch = 1;
  if (compare && passed.length > 1) {
    for (const p of passed) {
      try {
        const r = await speedOf(p.session);
        p.attempt.windowsPerSec = r.windowsPerSec;
        batch = r.batch;
      } catch (err) {
        p.attempt.windowsPerSec = 0;
        p.attempt.reason = `benchmark failed: ${errorMessage(err)}`;
      }
    }
    winner = passed.reduce((best, p) =>
      (p.attempt.windowsPerSec ?? 0) > (best.attempt.windowsPerSec ?? 0) ? p : best,
    );
  }
  const speed = (a: ProviderAttempt): string =>
    a.windowsPerSec === undefined
      ? "not measured"
      : `${Math.round(a.windowsPerSec).toLocaleString("en")} windows/s at batch ${batch}`;
  for (const p of passed) {
    if (p === winner) continue;
    await p.session.release().catch(() => undefined);
    p.attempt.outcome = "slower";
    p.attempt.reason ||= `passed its self-test; ${speed(p.attempt)}, ${winner.attempt.provider} ${speed(winner.attempt)}`;
  }
  const w = winner.attempt;
  const skippedBefore = attempts.slice(0, attempts.indexOf(w)).filter((a) => a.outcome !== "slower");
  w.reason =
    passed.length > 1
      ? `fastest of the providers that passed the self-test (${speed(w)})`
      : skippedBefore.length > 0
        ? "first provider that loaded and passed the self-test"
        : requested === "auto" || requested.length > 1
          ? "first provider in the order; loaded and passed the self-test"
          : "the configured provider; loaded and passed the self-test";
  const selection: ProviderSelection = { provider: w.provider, reason: w.reason, requested, attempts };
  // Warm-up before serving (the benchmark above already warmed the winner up).
  if (w.windowsPerSec === undefined) {
    const plan = planFor(winner.session);
    if (plan.runs + plan.warmupRuns > 0 && winner.session.benchmark) {
      try {
        const r = await speedOf(winner.session);
        selection.warmup = {
          batch: r.batch,
          runs: r.runs,
          ms: r.ms,
          windowsPerSec: r.windowsPerSec,
          ...(r.medianRunMs !== undefined ? { medianRunMs: r.medianRunMs } : {}),
        };
      } catch (err) {
        // The self-test passed at batch 1; a model that fails at the serving batch still serves
        // (its batches will fail and be counted, and an update's probation rolls it back), but
        // the status and the log say so before the first window arrives.
        selection.warmup = {
          batch: plan.dims[0] ?? 1,
          runs: 0,
          ms: Number.NaN,
          windowsPerSec: 0,
          error: errorMessage(err),
        };
      }
    }
  } else {
    selection.warmup = {
      batch,
      runs: planFor(winner.session).runs,
      ms: Number.NaN,
      windowsPerSec: w.windowsPerSec,
    };
  }
  return { session: winner.session, selection };
}

/** One log/status line per provider, e.g. "cuda: load-failed (…)". */
export function describeSelection(selection: ProviderSelection): string[] {
  return selection.attempts.map((a) => `${a.provider}: ${a.outcome} — ${a.reason}`);
}
