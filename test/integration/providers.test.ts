/**
 * Choosing the execution provider (src/inference/providers.ts through loadPackage), with real
 * ONNX Runtime: on this machine TensorRT and CUDA fail to load (their libraries are not
 * installed; ONNX Runtime's reason is kept), WebGPU fails or works as the machine allows, and
 * the CPU serves. What cannot happen here — an accelerator that loads but computes wrongly, or
 * one that is faster — is a fake backend whose "accelerator" sessions are real CPU sessions
 * with their outputs or timings changed (the only thing faked is the device).
 */

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { PackageError } from "../../src/errors.js";
import {
  OrtBackend,
  type InferenceBackend,
  type ModelSession,
  type OutputTensor,
  type SessionOptions,
} from "../../src/inference/ort.js";
import { autoProviders, describeSelection } from "../../src/inference/providers.js";
import { loadPackage } from "../../src/models/package.js";
import { ModelRegistry } from "../../src/models/registry.js";
import { silentLogger } from "../../src/system/logger.js";
import { startGateway, tempDir, testConfig } from "../support/harness.js";

const PUMP = path.resolve(import.meta.dirname, "../../models/pump-health/1.0.0");
const SERVING = { providerBenchmark: true, batch: 8, warmupRuns: 2, benchmarkRuns: 5 };
const options = (
  executionProviders: SessionOptions["executionProviders"],
  providerBenchmark = true,
): SessionOptions => ({
  executionProviders,
  intraOpThreads: 1,
  graphOptimizationLevel: "all",
  serving: { ...SERVING, providerBenchmark },
});

interface FakeDevice {
  /** Added to every output value (a device that computes wrongly). */
  outputOffset?: number;
  /**
   * The benchmark's time on this device, ms: far below or far above anything the real CPU
   * session can measure (so the outcome never depends on this machine's timing).
   */
  benchmarkMs?: number;
}

/**
 * The real ORT backend, plus "accelerators" that load: each is a real CPU session reporting the
 * accelerator's name, with its outputs shifted or its benchmark time scaled.
 */
class FakeAcceleratorBackend implements InferenceBackend {
  private readonly real = new OrtBackend();
  readonly created: string[] = [];
  readonly released: string[] = [];

  constructor(private readonly devices: Record<string, FakeDevice>) {}

  availableProviders(): string[] {
    return [...new Set([...this.real.availableProviders(), ...Object.keys(this.devices)])];
  }

  async createSession(modelPath: string, opts: SessionOptions): Promise<ModelSession> {
    const provider = opts.executionProviders === "auto" ? "cpu" : (opts.executionProviders[0] ?? "cpu");
    const device = this.devices[provider];
    if (!device) {
      const s = await this.real.createSession(modelPath, opts);
      this.created.push(provider);
      return this.track(s, provider);
    }
    const s = await this.real.createSession(modelPath, { ...opts, executionProviders: ["cpu"] });
    this.created.push(provider);
    const shift = (out: Map<string, OutputTensor>): Map<string, OutputTensor> =>
      new Map(
        [...out].map(([k, t]) => [
          k,
          { dims: t.dims, data: t.data.map((v) => v + (device.outputOffset ?? 0)) },
        ]),
      );
    return this.track(
      {
        inputs: s.inputs,
        outputs: s.outputs,
        provider,
        run: async (name, data, dims) => shift(await s.run(name, data, dims)),
        benchmark: async (name, data, dims, runs, warmupRuns) => {
          if (!s.benchmark) throw new Error("the real session has benchmark()");
          const r = await s.benchmark(name, data, dims, runs, warmupRuns);
          return { runs: r.runs, ms: device.benchmarkMs ?? r.ms };
        },
        release: () => s.release(),
      },
      provider,
    );
  }

  private track(s: ModelSession, provider: string): ModelSession {
    return {
      ...s,
      inputs: s.inputs,
      outputs: s.outputs,
      provider,
      run: s.run.bind(s),
      ...(s.benchmark ? { benchmark: s.benchmark.bind(s) } : {}),
      release: async () => {
        this.released.push(provider);
        await s.release();
      },
    };
  }
}

describe("execution provider selection", () => {
  it("auto tries TensorRT, CUDA, the platform's own, WebGPU, CPU", () => {
    expect(autoProviders("linux")).toEqual(["tensorrt", "cuda", "webgpu", "cpu"]);
    expect(autoProviders("darwin")).toEqual(["tensorrt", "cuda", "coreml", "webgpu", "cpu"]);
    expect(autoProviders("win32")).toEqual(["tensorrt", "cuda", "dml", "webgpu", "cpu"]);
  });

  it("on this machine: TensorRT and CUDA skipped with ONNX Runtime's reason, WebGPU as it can, CPU serves", async () => {
    const model = await loadPackage(PUMP, new OrtBackend(), options("auto"));
    try {
      const sel = model.selection;
      expect(sel?.attempts.map((a) => a.provider)).toEqual(autoProviders());
      const by = Object.fromEntries((sel?.attempts ?? []).map((a) => [a.provider, a]));
      for (const p of ["tensorrt", "cuda"]) {
        expect(by[p]?.outcome).toBe("load-failed");
        expect(by[p]?.reason).toMatch(/Failed to load shared library/);
        expect(by[p]?.reason).toMatch(/libonnxruntime_providers_(cuda|tensorrt)/);
      }
      // Without a Vulkan loader WebGPU is not tried; with one but no GPU adapter ONNX Runtime
      // refuses it; where a GPU is there it must have passed the self-test and lost the
      // benchmark, or won it.
      const webgpu = by.webgpu;
      if (webgpu?.outcome === "unavailable") expect(webgpu.reason).toMatch(/libvulkan\.so\.1/);
      else if (webgpu?.outcome === "load-failed") expect(webgpu.reason).toMatch(/WebGPU|adapter/i);
      else expect(["slower", "selected"]).toContain(webgpu?.outcome);
      expect(model.session.provider).toBe(sel?.provider);
      if (webgpu?.outcome === "unavailable" || webgpu?.outcome === "load-failed") {
        expect(sel?.provider).toBe("cpu");
        expect(sel?.reason).toBe("first provider that loaded and passed the self-test");
      }
      expect(sel?.warmup).toMatchObject({ batch: 8, runs: 5 });
      expect(sel?.warmup?.windowsPerSec).toBeGreaterThan(0);
      expect(describeSelection(sel!)).toHaveLength(4);
    } finally {
      await model.session.release();
    }
  });

  it("a provider whose self-test fails is skipped with the failure, and the next one serves", async () => {
    const backend = new FakeAcceleratorBackend({ cuda: { outputOffset: 0.5 } });
    const model = await loadPackage(PUMP, backend, options(["cuda", "cpu"], false));
    try {
      expect(model.session.provider).toBe("cpu");
      const [cuda, cpu] = model.selection?.attempts ?? [];
      expect(cuda).toMatchObject({ provider: "cuda", outcome: "self-test-failed" });
      expect(cuda?.reason).toMatch(/selfTest\[0\] output\[0\] is .*, expected .* ±/);
      expect(cpu).toMatchObject({ provider: "cpu", outcome: "selected" });
      expect(model.selection?.reason).toBe("first provider that loaded and passed the self-test");
      expect(backend.released).toEqual(["cuda"]); // the failed session is not kept
    } finally {
      await model.session.release();
    }
  });

  it("with the benchmark, the fastest provider that passes serves; without it, the first", async () => {
    const fast = new FakeAcceleratorBackend({ tensorrt: { benchmarkMs: 1e-6 } });
    const m1 = await loadPackage(PUMP, fast, options(["tensorrt", "cpu"]));
    const slow = new FakeAcceleratorBackend({ tensorrt: { benchmarkMs: 60_000 } });
    const m2 = await loadPackage(PUMP, slow, options(["tensorrt", "cpu"]));
    const first = new FakeAcceleratorBackend({ tensorrt: { benchmarkMs: 60_000 } });
    const m3 = await loadPackage(PUMP, first, options(["tensorrt", "cpu"], false));
    try {
      expect(m1.session.provider).toBe("tensorrt");
      expect(m1.selection?.reason).toMatch(
        /^fastest of the providers that passed the self-test \(.* windows\/s at batch 8\)/,
      );
      expect(m1.selection?.attempts[1]).toMatchObject({ provider: "cpu", outcome: "slower" });
      expect(m1.selection?.attempts[1]?.reason).toMatch(
        /passed its self-test; .* windows\/s at batch 8, tensorrt .* windows\/s/,
      );

      expect(m2.session.provider).toBe("cpu");
      expect(m2.selection?.attempts[0]).toMatchObject({ provider: "tensorrt", outcome: "slower" });
      expect(slow.released).toEqual(["tensorrt"]);

      expect(m3.session.provider).toBe("tensorrt");
      expect(m3.selection?.attempts[1]).toMatchObject({
        provider: "cpu",
        outcome: "not-tried",
        reason: "tensorrt passed first (the provider benchmark is off)",
      });
      expect(first.created).toEqual(["tensorrt"]);
    } finally {
      await Promise.all([m1, m2, m3].map((m) => m.session.release()));
    }
  });

  it("a provider this build does not have is named as such, never tried", async () => {
    const model = await loadPackage(PUMP, new OrtBackend(), options(["coreml", "cpu"]));
    try {
      expect(model.selection?.attempts[0]).toMatchObject({ provider: "coreml", outcome: "unavailable" });
      expect(model.selection?.attempts[0]?.reason).toMatch(
        /^not in this build of ONNX Runtime \(it has: cpu, /,
      );
      expect(model.session.provider).toBe("cpu");
    } finally {
      await model.session.release();
    }
  });

  it("when only an absent accelerator is configured, the package fails with ONNX Runtime's reason", async () => {
    const err = await loadPackage(PUMP, new OrtBackend(), options(["cuda"])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PackageError);
    expect((err as PackageError).code).toBe("PACKAGE_ONNX_LOAD");
    expect((err as Error).message).toMatch(/on cuda: .*Failed to load shared library/);
  });

  it("when the self-test fails everywhere, the package fails with the self-test's error and every provider's reason", async () => {
    const dir = tempDir("vigil-pkg-");
    fs.cpSync(PUMP, dir, { recursive: true });
    const file = path.join(dir, "manifest.json");
    const m = JSON.parse(fs.readFileSync(file, "utf8")) as { selfTest: { output: number[] }[] };
    m.selfTest[0]!.output[0] = 42;
    fs.writeFileSync(file, JSON.stringify(m));
    const backend = new FakeAcceleratorBackend({ cuda: { outputOffset: 0.5 } });
    const err = await loadPackage(dir, backend, options(["tensorrt", "cuda", "cpu"])).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PackageError);
    expect((err as PackageError).code).toBe("PACKAGE_SELFTEST_FAILED");
    expect((err as PackageError).field).toBe("selfTest[0].output[0]");
    expect((err as Error).message).toMatch(
      /expected 42 .*\(on cpu; tensorrt: .*Failed to load shared library.*; cuda: selfTest\[0\]/,
    );
    expect(backend.released.sort()).toEqual(["cpu", "cuda"]);
  });

  it("the registry serves on the fallback and says why, in its status and its log", async () => {
    const root = tempDir("vigil-models-");
    fs.cpSync(PUMP, path.join(root, "pump-health", "1.0.0"), { recursive: true });
    const lines: { msg: string; obj: Record<string, unknown> }[] = [];
    const log = silentLogger();
    log.info = ((obj: Record<string, unknown>, msg: string) => {
      lines.push({ obj, msg });
    }) as typeof log.info;
    const registry = new ModelRegistry(
      new FakeAcceleratorBackend({ cuda: { outputOffset: 1 } }),
      options(["cuda", "cpu"]),
      log,
    );
    await registry.scan(root);
    try {
      const [status] = registry.status();
      expect(status).toMatchObject({ state: "serving", provider: "cpu" });
      expect(status?.selection?.attempts.map((a) => `${a.provider}:${a.outcome}`)).toEqual([
        "cuda:self-test-failed",
        "cpu:selected",
      ]);
      const line = lines.find((l) => l.msg.startsWith("model pump-health@1.0.0 serving on cpu"));
      expect(line?.msg).toMatch(/first provider that loaded and passed the self-test/);
      expect((line?.obj.providers as string[])[0]).toMatch(/^cuda: self-test-failed — selfTest\[0\]/);
    } finally {
      await registry.close();
    }
  });

  it("the gateway's status names the provider, why it serves and why the others do not", async () => {
    const gw = await startGateway(testConfig({ "models.dir": path.dirname(path.dirname(PUMP)) }));
    try {
      const status = gw.gateway.status() as unknown as {
        models: {
          provider: string;
          providerReason: string;
          providers: { provider: string; outcome: string }[];
        }[];
        inference: {
          workers: number;
          pool: { workersUp: number; mainThreadSessions: number; sessions: { provider: string }[] };
        };
      };
      const m = status.models[0];
      expect(m?.provider).toBe(m?.providers.find((p) => p.outcome === "selected")?.provider);
      expect(m?.providerReason).not.toBe("");
      expect(m?.providers.map((p) => p.provider)).toEqual(autoProviders());
      // Where each model runs depends on its measured time per batch on this machine (auto
      // placement): every model is on one side or the other, and workers run only for the pool's.
      const { pool } = status.inference;
      expect(status.inference.workers).toBeGreaterThanOrEqual(1);
      expect(pool.mainThreadSessions + pool.sessions.length).toBe(status.models.length);
      expect(pool.workersUp).toBe(pool.sessions.length > 0 ? status.inference.workers : 0);
      for (const s of pool.sessions) expect(status.models.map((x) => x.provider)).toContain(s.provider);
    } finally {
      await gw.stop();
    }
  });
});
