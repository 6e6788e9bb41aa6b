/**
 * Adaptive placement (src/inference/placement.ts) with real ONNX Runtime, real worker threads
 * and a real gateway: with `inference.workers = auto`, a cheap model (the 15→1 dense fixture,
 * microseconds per batch) runs on the main thread and a slow one (the same model plus 64
 * MatMuls of 512×512 on a side branch that adds 0: milliseconds per batch) on the worker pool;
 * both predict the same numbers. The decision and its figures are in `/api/status`, the
 * `vigil status` text and `/metrics`. Over the air, a new version is placed by the same rule,
 * measured in the pool (never on the serving main thread): a slow candidate on trial stays in
 * the pool, a cheap one is moved to the main thread, and the pool then stops its idle workers.
 * Fixed settings (0, N) keep every model where they say. The threshold here is 1 ms, far from
 * both models' cost, so the outcome does not depend on this machine's speed.
 */

import path from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { StatusView } from "../../src/api/status-view.js";
import type { PlacingStats } from "../../src/inference/placement.js";
import { PlacingBackend } from "../../src/inference/placement.js";
import { loadPackage } from "../../src/models/package.js";
import { createLogger } from "../../src/system/logger.js";
import { formatStatus } from "../../src/tools/status.js";
import {
  Collector,
  FIXTURES,
  apiUrl,
  modelsDir,
  startGateway,
  testConfig,
  type RunningGateway,
} from "../support/harness.js";
import type { PackageServer } from "../support/ota.js";
import {
  BASE,
  ROOT,
  RowStream,
  buildPackage,
  request,
  startOtaSetup,
  waitForEvent,
  type KeyPairFiles,
  type OtaGateway,
} from "../support/ota.js";

const HEAVY = "heavy-rul";
const SETTINGS = {
  "inference.mainThreadMaxBatchMs": 1,
  "inference.maxBatch": 16,
  "inference.warmupRuns": 2,
  "inference.benchmarkRuns": 5,
};

async function status(running: RunningGateway): Promise<StatusView> {
  return (await (await fetch(`${apiUrl(running)}/api/status`)).json()) as StatusView;
}

const pool = (s: StatusView): PlacingStats => s.inference?.pool as PlacingStats;

describe("placement at start: cheap on the main thread, slow on the pool", () => {
  let running: RunningGateway;
  let col: Collector;
  const logLines: string[] = [];

  beforeAll(async () => {
    const dir = modelsDir([BASE]);
    await buildPackage({ name: HEAVY, version: "1.0.0", variant: "heavy", sign: false }, dir);
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(
          ...chunk
            .toString()
            .split("\n")
            .filter((l) => l !== ""),
        );
        done();
      },
    });
    running = await startGateway(
      testConfig({ "models.dir": dir, ...SETTINGS }),
      createLogger({ level: "info", format: "json", destination }),
    );
    col = await Collector.connect(running.brokerUrl, [`${ROOT}/predictions/+`]);
  });

  afterAll(async () => {
    await col?.close();
    await running?.stop();
  });

  it("status: each model's thread, the measured time per batch and the threshold; the pool holds only the slow one", async () => {
    const s = await status(running);
    const cheap = s.models.find((m) => m.name === BASE);
    const heavy = s.models.find((m) => m.name === HEAVY);
    expect(cheap).toMatchObject({
      state: "serving",
      placement: { thread: "main", mode: "auto", thresholdMs: 1, batch: 16, measuredOn: "main" },
    });
    expect(cheap?.placement?.moved).toBeUndefined();
    expect(cheap?.placement?.msPerBatch).toBeLessThan(1);
    expect(cheap?.placement?.reason).toMatch(
      /ms per batch of 16 < 1\.00 ms \(inference\.mainThreadMaxBatchMs\)/,
    );
    // Measured on the main thread while the gateway started (nothing served yet), then moved.
    expect(heavy).toMatchObject({
      state: "serving",
      placement: { thread: "pool", mode: "auto", thresholdMs: 1, batch: 16, measuredOn: "main" },
    });
    expect(heavy?.placement?.msPerBatch).toBeGreaterThanOrEqual(1);
    expect(heavy?.placement?.reason).toMatch(/ms per batch of 16 ≥ 1\.00 ms .*worker pool/);
    expect(heavy?.placement?.moved).toMatchObject({ msPerBatch: expect.any(Number) as number });
    const p = pool(s);
    expect(p).toMatchObject({
      setting: "auto",
      mainThreadMaxBatchMs: 1,
      mainThreadSessions: 1,
      workersUp: 1,
    });
    expect(p.sessions.map((x) => path.basename(path.dirname(x.modelPath)))).toEqual([`${HEAVY}-1.0.0`]);

    const text = formatStatus(s, Date.now());
    expect(text).toMatch(
      new RegExp(`${BASE} 1\\.0\\.0 serving on cpu, main thread \\(\\S+ ms/batch of 16 < 1\\.00 ms\\)`),
    );
    expect(text).toMatch(
      new RegExp(`${HEAVY} 1\\.0\\.0 serving on cpu, worker pool \\(\\S+ ms/batch of 16 ≥ 1\\.00 ms\\)`),
    );
  });

  it("log: one line per model with its thread and the reason", () => {
    const serving = logLines
      .map((l) => JSON.parse(l) as { msg: string; model?: string; placement?: { thread: string } })
      .filter((l) => l.placement !== undefined);
    const cheap = serving.find((l) => l.model === `${BASE}@1.0.0`);
    const heavy = serving.find((l) => l.model === `${HEAVY}@1.0.0`);
    expect(cheap?.placement?.thread).toBe("main");
    expect(cheap?.msg).toMatch(/serving on cpu .*, main thread \(\S+ ms per batch of 16 < 1\.00 ms/);
    expect(heavy?.placement?.thread).toBe("pool");
    expect(heavy?.msg).toMatch(/serving on cpu .*, worker pool \(\S+ ms per batch of 16 ≥ 1\.00 ms/);
  });

  it("/metrics: the placement of each model, its measured time per batch, the threshold and the workers up", async () => {
    const text = await (await fetch(`${apiUrl(running)}/metrics`)).text();
    expect(text).toMatch(
      new RegExp(
        `^vigil_model_placement\\{model="${BASE}",version="1.0.0",state="serving",thread="main",mode="auto"\\} 1$`,
        "m",
      ),
    );
    expect(text).toMatch(
      new RegExp(
        `^vigil_model_placement\\{model="${HEAVY}",version="1.0.0",state="serving",thread="pool",mode="auto"\\} 1$`,
        "m",
      ),
    );
    const heavyMs = new RegExp(
      `^vigil_model_batch_milliseconds\\{model="${HEAVY}",version="1.0.0",state="serving",batch="16"\\} (\\S+)$`,
      "m",
    ).exec(text);
    expect(Number(heavyMs?.[1])).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^vigil_inference_main_thread_max_batch_milliseconds 1$/m);
    expect(text).toMatch(/^vigil_inference_workers_up 1$/m);
  });

  it("both models predict every window, with the same numbers (the slow one's side branch adds 0)", async () => {
    const stream = new RowStream(col, "m1");
    await stream.send(9); // count windows of 5, hop 2: 3 windows
    const topic = `${ROOT}/predictions/m1`;
    await col.waitFor(
      (ms) => ms.filter((m) => m.topic === topic).length >= 6,
      10_000,
      "3 predictions from each model",
    );
    const preds = col
      .on(topic)
      .map((m) => m.json<{ model: string; windowEnd: number; outputs: { rul: number } }>());
    const of = (name: string): [number, number][] =>
      preds
        .filter((p) => p.model === name)
        .map((p): [number, number] => [p.windowEnd, p.outputs.rul])
        .sort((a, b) => a[0] - b[0]);
    expect(of(BASE)).toHaveLength(3);
    const heavy = of(HEAVY);
    of(BASE).forEach(([end, rul], i) => {
      expect(heavy[i]?.[0]).toBe(end);
      expect(heavy[i]?.[1]).toBeCloseTo(rul, 4);
    });
  });
});

describe("placement over the air: measured in the pool, placed by the same rule", () => {
  let keys: KeyPairFiles;
  let server: PackageServer;
  let gw: OtaGateway;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ keys, server, gw, close } = await startOtaSetup({ "models.ota.probation.windows": 2, ...SETTINGS }));
  });

  afterAll(async () => {
    await close?.();
  });

  async function deploy(
    transaction: string,
    version: string,
    variant: "heavy" | "dense",
    extra: object = {},
  ) {
    const pkg = await buildPackage({ version, variant, sign: keys });
    const url = server.serve(`/${transaction}.tgz`, { bytes: pkg.bytes });
    return gw.stream.during(
      request(gw.col, "models/deploy", { transaction, url, sha256: pkg.sha256, size: pkg.size, ...extra }),
    );
  }

  it("a cheap model at start runs on the main thread and the pool never starts a worker", async () => {
    const s = await status(gw.running);
    expect(s.models[0]).toMatchObject({
      version: "1.0.0",
      placement: { thread: "main", measuredOn: "main" },
    });
    expect(pool(s)).toMatchObject({
      size: 1,
      workersUp: 0,
      idleStops: 0,
      mainThreadSessions: 1,
      sessions: [],
    });
  });

  it("a slow candidate on trial is measured in the pool and stays there; promoted, it serves from the pool", async () => {
    // It is far slower than the version it would replace: the trial's latency check is relaxed.
    const reply = await deploy("p-heavy", "1.1.0", "heavy", {
      trial: { windows: 4, latencyToleranceMs: 10_000 },
    });
    expect(reply).toMatchObject({ status: "ok", data: { state: "trial" } });
    const during = (await status(gw.running)).models.find((m) => m.version === "1.1.0");
    // On trial still, or promoted already if its windows came quickly: placed the same way.
    expect(["trial", "serving"]).toContain(during?.state);
    expect(during?.placement).toMatchObject({ thread: "pool", measuredOn: "pool" });
    await gw.stream.during(waitForEvent(gw.col, "promoted", "p-heavy", 15_000));
    const s = await status(gw.running);
    const serving = s.models.find((m) => m.state === "serving");
    expect(serving).toMatchObject({ version: "1.1.0", placement: { thread: "pool", measuredOn: "pool" } });
    expect(serving?.placement?.moved).toBeUndefined();
    expect(serving?.placement?.msPerBatch).toBeGreaterThanOrEqual(1);
    expect(formatStatus(s, Date.now())).toMatch(
      /1\.1\.0 serving on cpu, worker pool \(\S+ ms\/batch of 16 ≥ 1\.00 ms\)/,
    );
    expect(pool(s).workersUp).toBe(1);
  });

  it("a cheap new version is measured in the pool, moved to the main thread, and the idle pool stops its worker", async () => {
    const reply = await deploy("p-cheap", "1.2.0", "dense");
    expect(reply).toMatchObject({ status: "ok" });
    await gw.stream.during(waitForEvent(gw.col, "probation-passed", "p-cheap", 15_000));
    const s = await status(gw.running);
    const serving = s.models.find((m) => m.state === "serving");
    expect(serving).toMatchObject({ version: "1.2.0", placement: { thread: "main", measuredOn: "pool" } });
    expect(serving?.placement?.moved).toMatchObject({ loadMs: expect.any(Number) as number });
    // Every window predicted exactly once across both swaps.
    const windows = await gw.stream.allWindows();
    expect(windows.map((w) => w.modelVersion)).toContain("1.2.0");
    // The slow version was released: no session left in the pool, whose worker stops (after 1 s idle).
    await vi.waitFor(
      async () => {
        const p = pool(await status(gw.running));
        expect(p).toMatchObject({ sessions: [], workersUp: 0, mainThreadSessions: 1 });
        expect(p.idleStops).toBeGreaterThanOrEqual(1);
      },
      { timeout: 10_000, interval: 100 },
    );
  });
});

describe("fixed settings keep every model where they say", () => {
  const options = {
    executionProviders: ["cpu"],
    intraOpThreads: 1,
    graphOptimizationLevel: "all" as const,
    serving: { providerBenchmark: false, batch: 8, warmupRuns: 1, benchmarkRuns: 3 },
  };

  it.each([
    [0, "main"],
    [1, "pool"],
  ] as const)("inference.workers = %s: %s, not moved", async (workers, thread) => {
    const backend = new PlacingBackend({ workers, poolSize: 1, mainThreadMaxBatchMs: 1 });
    try {
      await backend.start();
      const model = await loadPackage(path.join(FIXTURES, BASE), backend, options);
      expect(model.placement).toMatchObject({ thread, mode: "fixed", thresholdMs: null, measuredOn: thread });
      expect(model.placement?.moved).toBeUndefined();
      expect(backend.stats()).toMatchObject({
        mainThreadSessions: thread === "main" ? 1 : 0,
        sessions: thread === "pool" ? [expect.anything()] : [],
        workersUp: workers,
      });
      await model.session.release();
    } finally {
      await backend.close();
    }
  });
});
