/**
 * The shipped `milling-failure` package (models/milling-failure/, trained on AI4I 2020 by
 * training/ai4i_failure.py): a classification model with a probability output, NF layout and
 * aggregate features over a 3 s time window, run through every path a user has.
 *
 * - It loads through the registry (manifest, hashes, tensors, self-test on real ONNX Runtime),
 *   next to every other package shipped in models/, none of which fails.
 * - A synthetic CSV in the AI4I column layout (made here from a seeded generator; no data row
 *   of the real file is in the repository) goes through `vigil batch --format csv` and, on a
 *   real gateway (aedes on port 0), through `vigil replay --format csv` (rows as `values`
 *   messages) and through one-signal-per-topic messages on `plant/{asset}/{signal}` (signal
 *   names such as `Torque [Nm]` as topic levels). All three give the same windows and the same
 *   probabilities, each in [0, 1]; the gateway's alerts are the ones the manifest's rules give
 *   for the batch numbers.
 * - With the real data present (VIGIL_DATA_DIR, else ../shared/data), `vigil batch` over
 *   ai4i2020.csv reproduces the model card's test-part ROC AUC and average precision (computed
 *   here from the CSV output) to 1e-6. Without it, that test is skipped and says why.
 */

import fs from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { OrtBackend } from "../../src/inference/ort.js";
import { ModelRegistry } from "../../src/models/registry.js";
import { silentLogger } from "../../src/system/logger.js";
import { parseCsv } from "../../src/tools/formats.js";
import { REPO_ROOT, runCli } from "../support/cli.js";
import { Collector, startGateway, tempDir, testConfig, type RunningGateway } from "../support/harness.js";
import { seeded } from "../support/receiver.js";
import { alertEvents, type RefAlertRule, type RefPrediction } from "../support/reference.js";

const PKG = path.join(REPO_ROOT, "models", "milling-failure", "1.0.0");
const ROOT = "vigil/gw-test";
/** 2024-01-01T00:00:00Z: in the past (no future_ts) and a whole second. */
const T0 = Date.UTC(2024, 0, 1);

interface Metrics {
  windows: number;
  positives: number;
  rocAuc: number;
  averagePrecision: number;
}

interface MillingManifest {
  name: string;
  version: string;
  task: string;
  input: {
    signals: string[];
    window: { type: string; sizeMs: number; hopMs: number; sampleMs: number };
    features: { type: string; functions: string[] };
    layout: string;
  };
  outputs: { name: string; kind: string }[];
  alerts: RefAlertRule[];
  training: {
    split: { testRows: [number, number] };
    options: { window: number };
    metrics: { test: Metrics };
  };
}

const manifest = JSON.parse(fs.readFileSync(path.join(PKG, "manifest.json"), "utf8")) as MillingManifest;
const SIGNALS = manifest.input.signals;
const COLUMNS = [
  "UDI",
  "Product ID",
  "Type",
  ...SIGNALS,
  "Machine failure",
  "TWF",
  "HDF",
  "PWF",
  "OSF",
  "RNF",
];

/**
 * `n` machining processes in the AI4I layout: temperatures drifting around 300/310 K, speed and
 * torque around 1500 rpm / 40 Nm, tool wear growing, and a stretch of overstrain (high torque on
 * a worn tool) and of power failure (very low torque at high speed) that should raise risk.
 */
function syntheticCsv(n: number, seed: number): string {
  const rnd = seeded(seed);
  const lines = [COLUMNS.join(",")];
  for (let i = 0; i < n; i++) {
    const type = "LMH"[i % 3] as string;
    const air = 300 + 1.5 * Math.sin(i / 6) + rnd() * 0.4;
    const proc = air + 10 + rnd() * 0.6;
    let speed = 1450 + rnd() * 150;
    let torque = 35 + rnd() * 12;
    const wear = Math.min(250, 5 * i);
    if (i >= 28 && i < 31) torque = 62 + rnd() * 5; // overstrain on a worn tool
    if (i >= 14 && i < 16) [speed, torque] = [2700 + rnd() * 100, 4 + rnd()]; // power too low
    const row = [
      String(i + 1),
      `${type}${47000 + i}`,
      type,
      air.toFixed(1),
      proc.toFixed(1),
      speed.toFixed(0),
      torque.toFixed(1),
      wear.toFixed(0),
      "0",
      "0",
      "0",
      "0",
      "0",
      "0",
    ];
    lines.push(row.join(","));
  }
  return `${lines.join("\n")}\n`;
}

interface BatchLine {
  asset: string;
  windowStart: number;
  windowEnd: number;
  p: number;
}

function readBatchCsv(file: string): BatchLine[] {
  const [header, ...rows] = fs.readFileSync(file, "utf8").trim().split("\n");
  expect(header).toBe("asset,windowStart,windowEnd,failure_probability");
  return rows.map((line) => {
    const [asset, ws, we, p] = line.split(",");
    return { asset: asset as string, windowStart: Number(ws), windowEnd: Number(we), p: Number(p) };
  });
}

/** Mann–Whitney ROC AUC (ties count half), as training/ai4i_failure.py computes it. */
function rocAuc(score: readonly number[], y: readonly number[]): number {
  const order = score.map((_, i) => i).sort((a, b) => (score[a] as number) - (score[b] as number) || a - b);
  const ranks = new Array<number>(score.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && score[order[j + 1] as number] === score[order[i] as number]) j++;
    for (let k = i; k <= j; k++) ranks[order[k] as number] = (i + j) / 2 + 1;
    i = j + 1;
  }
  let nPos = 0;
  let rankSum = 0;
  y.forEach((v, i) => {
    if (v === 1) {
      nPos++;
      rankSum += ranks[i] as number;
    }
  });
  const nNeg = y.length - nPos;
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** Average precision: mean precision at each positive, scores descending (stable), as in training. */
function averagePrecision(score: readonly number[], y: readonly number[]): number {
  const order = score.map((_, i) => i).sort((a, b) => (score[b] as number) - (score[a] as number) || a - b);
  let tp = 0;
  let sum = 0;
  order.forEach((idx, k) => {
    if (y[idx] === 1) {
      tp++;
      sum += tp / (k + 1);
    }
  });
  return sum / Math.max(1, tp);
}

let running: RunningGateway | undefined;
let collector: Collector | undefined;

afterEach(async () => {
  await collector?.close();
  collector = undefined;
  await running?.stop();
  running = undefined;
});

describe("milling-failure package (AI4I 2020)", () => {
  it("is a classification package with a probability output, NF layout and aggregate features over a time window", () => {
    expect(manifest.task).toBe("classification");
    expect(manifest.input.layout).toBe("NF");
    expect(manifest.input.window.type).toBe("time");
    expect(manifest.input.features.type).toBe("aggregate");
    expect(manifest.outputs).toEqual([
      expect.objectContaining({ name: "failure_probability", kind: "probability" }),
    ]);
    expect(SIGNALS).toContain("Torque [Nm]");
  });

  it("loads through the registry with its self-test on real ONNX Runtime, beside every shipped package", async () => {
    const registry = new ModelRegistry(
      new OrtBackend(),
      { executionProviders: "auto", intraOpThreads: 1, graphOptimizationLevel: "all" },
      silentLogger(),
    );
    await registry.scan(path.join(REPO_ROOT, "models"));
    try {
      const status = registry.status();
      expect(status.filter((s) => s.state === "failed")).toEqual([]);
      expect(status).toContainEqual(
        expect.objectContaining({ name: "milling-failure", version: "1.0.0", state: "serving" }),
      );
      expect(status).toContainEqual(expect.objectContaining({ name: "pump-health", state: "serving" }));
    } finally {
      await Promise.all(registry.active().map((m) => m.session.release()));
    }
  });

  it("gives the same windows and probabilities in vigil batch, vigil replay and one-signal-per-topic messages", async () => {
    const dir = tempDir("vigil-milling-");
    const csv = path.join(dir, "mill-a.csv");
    const n = 40;
    fs.writeFileSync(csv, syntheticCsv(n, 7));
    const out = path.join(dir, "batch.csv");
    const batch = await runCli(["batch", "--model", PKG, "--file", csv, "--format", "csv", "--out", out], {
      timeoutMs: 30_000,
    });
    expect(batch.stderr + batch.stdout).not.toMatch(/error/i);
    expect(batch.code).toBe(0);
    const offline = readBatchCsv(out);
    // 1 s per row, 3 s windows every 1 s: the window of row e (rows e−2..e) closes when row e+1
    // arrives, so rows 2..n−2 each end one window; the last row's window never closes.
    expect(offline.map((l) => [l.asset, l.windowStart, l.windowEnd])).toEqual(
      Array.from({ length: n - 3 }, (_, k) => ["mill-a", k * 1000, k * 1000 + 3000]),
    );
    for (const l of offline) {
      expect(l.p).toBeGreaterThanOrEqual(0);
      expect(l.p).toBeLessThanOrEqual(1);
    }
    const predictions: RefPrediction[] = offline.map((l) => ({
      windowStart: T0 + l.windowStart,
      windowEnd: T0 + l.windowEnd,
      ts: T0 + l.windowEnd,
      outputs: { failure_probability: l.p },
      raw: { failure_probability: [l.p] },
    }));
    const expectedAlerts = alertEvents(manifest.alerts, predictions);
    // The synthetic stretches of overstrain and power failure must exercise the alert rules.
    expect(expectedAlerts.filter((a) => a.state === "raised").map((a) => a.rule)).toContain("failure-risk");

    running = await startGateway(
      testConfig({ "models.dir": path.join(REPO_ROOT, "models", "milling-failure") }),
    );
    collector = await Collector.connect(running.brokerUrl, [
      `${ROOT}/status`,
      `${ROOT}/predictions/+`,
      `${ROOT}/alerts/+`,
    ]);
    await collector.waitOnline(`${ROOT}/status`);
    const replay = await runCli(
      [
        "replay",
        "--file",
        csv,
        "--format",
        "csv",
        "--broker",
        running.brokerUrl,
        "--rate",
        "0",
        "--start",
        String(T0),
      ],
      { timeoutMs: 30_000 },
    );
    expect(replay.code).toBe(0);
    // The same rows as single readings, one topic level per signal name (`plant/mill-b/Torque [Nm]`).
    const parsed = parseCsv(fs.readFileSync(csv, "utf8"), "mill-b", T0);
    for (const row of parsed.rows)
      for (const s of SIGNALS)
        await collector.publish(`plant/mill-b/${s}`, { ts: row.tsMs, value: row.values[s] });

    for (const asset of ["mill-a", "mill-b"]) {
      await collector.waitForCount(`${ROOT}/predictions/${asset}`, n - 3, 20_000);
      const live = collector
        .on(`${ROOT}/predictions/${asset}`)
        .map((m) =>
          m.json<{ windowStart: number; windowEnd: number; outputs: { failure_probability: number } }>(),
        );
      expect(live.map((p) => [p.windowStart, p.windowEnd])).toEqual(
        predictions.map((p) => [p.windowStart, p.windowEnd]),
      );
      live.forEach((p, k) => {
        expect(Math.abs(p.outputs.failure_probability - (offline[k] as BatchLine).p)).toBeLessThanOrEqual(
          1e-6,
        );
      });
      await collector.waitForCount(`${ROOT}/alerts/${asset}`, expectedAlerts.length);
      const alerts = collector
        .on(`${ROOT}/alerts/${asset}`)
        .map((m) => m.json<{ rule: string; state: string; ts: number; value: number; model: string }>());
      expect(alerts.map((a) => [a.model, a.rule, a.state, a.ts])).toEqual(
        expectedAlerts.map((a) => ["milling-failure", a.rule, a.state, a.ts]),
      );
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }, 90_000);
});

const dataRoot = process.env.VIGIL_DATA_DIR
  ? path.resolve(process.env.VIGIL_DATA_DIR)
  : path.resolve(REPO_ROOT, "..", "shared", "data");
const realCsv = [path.join(dataRoot, "ai4i2020", "ai4i2020.csv"), path.join(dataRoot, "ai4i2020.csv")].find(
  (f) => fs.existsSync(f),
);

describe.skipIf(realCsv === undefined)(
  `milling-failure on the real AI4I 2020 file (skipped when ai4i2020.csv is not under VIGIL_DATA_DIR or ${dataRoot})`,
  () => {
    it("vigil batch over ai4i2020.csv reproduces the model card's test ROC AUC and average precision", async () => {
      const file = realCsv as string;
      const dir = tempDir("vigil-milling-real-");
      const out = path.join(dir, "batch.csv");
      const r = await runCli(["batch", "--model", PKG, "--file", file, "--format", "csv", "--out", out], {
        timeoutMs: 120_000,
      });
      expect(r.code).toBe(0);
      const lines = readBatchCsv(out);
      const rows = parseCsv(fs.readFileSync(file, "utf8"), "ai4i2020", 0).rows;
      const [testFrom] = manifest.training.split.testRows;
      const score: number[] = [];
      const y: number[] = [];
      for (const l of lines) {
        // Window [start, start + 3 s) holds rows start/1000 .. start/1000 + 2; its label is its last row's.
        const first = l.windowStart / 1000;
        if (first < testFrom) continue;
        const last = first + manifest.training.options.window - 1;
        score.push(l.p);
        y.push((rows[last] as { values: Record<string, number> }).values["Machine failure"] as number);
      }
      const card = manifest.training.metrics.test;
      expect(score.length).toBe(card.windows);
      expect(y.filter((v) => v === 1).length).toBe(card.positives);
      expect(Math.abs(rocAuc(score, y) - card.rocAuc)).toBeLessThanOrEqual(1e-6);
      expect(Math.abs(averagePrecision(score, y) - card.averagePrecision)).toBeLessThanOrEqual(1e-6);
      fs.rmSync(dir, { recursive: true, force: true });
    }, 150_000);
  },
);
