/**
 * Regenerates every model package the repository ships or tests with:
 *   test/fixtures/models/{count-ntc-zscore,count-nct-minmax,time-nf-aggregate,time-ntc-previous}/
 *   models/pump-health/1.0.0/ and its model card models/pump-health/README.md
 *
 * Run: `npx tsx scripts/make-models.ts`
 *
 * Contract:
 * - Deterministic: seeded PRNGs (mulberry32) and the seeded plant physics only; two runs give
 *   byte-identical files. No clock, no network, no ONNX Runtime.
 * - A package is `manifest.json` (contract §4, `schemaVersion: 1`) + `model.onnx`, plus for
 *   test fixtures `weights.json` (the dense layers in plain numbers, so tests can evaluate the
 *   model without ONNX). Every file beside the manifest is listed with its SHA-256 in `files`.
 * - Every model is a small stack of dense layers (`Layer[]`). The same description is turned
 *   into an ONNX graph by tools/onnx/writer.ts and evaluated by `evaluate` below in plain JS;
 *   the `selfTest` outputs come from the plain-JS side, so a package whose ONNX file disagrees
 *   with its weights fails its self-test.
 * - Weights and self-test inputs are stored as float32 in ONNX; `evaluate` rounds them the
 *   same way (Math.fround), so the expected outputs match ONNX Runtime to ~1e-6.
 * - pump-health is trained here, in plain JS, on readings simulated by src/demo/plant-physics.ts
 *   with the same windowing and features the gateway computes live (contract §4), and
 *   validated on held-out simulated machines; the metrics go into its model card.
 */

import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import {
  DEFAULT_MACHINE_OPTIONS,
  MACHINE_SIGNALS,
  createMachine,
  groundTruth,
  sample,
} from "../src/demo/plant-physics.js";
import type { Machine } from "../src/demo/plant-physics.js";
import { createTurbofan, engineRow, engineTruth } from "../src/demo/turbofan.js";
import { FD001_PARAMS } from "../src/demo/turbofan-params.js";
import type {
  AlertRuleSpec,
  InputSpec,
  OutputSpec,
  SelfTestCase,
  Task,
} from "../src/models/manifest-types.js";
import { GraphBuilder, attr } from "../tools/onnx/writer.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

// ---------------------------------------------------------------------------------------------
// Small numeric helpers
// ---------------------------------------------------------------------------------------------

/** mulberry32: a tiny seeded PRNG, uniform in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rng: () => number): number {
  const u1 = rng();
  const u2 = rng();
  return Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
}

/** Rounds to `digits` decimals; keeps JSON short and exact (the float32 of it is what ONNX holds). */
function round(x: number, digits: number): number {
  const f = 10 ** digits;
  const r = Math.round(x * f) / f;
  return r === 0 ? 0 : r; // no "-0"
}

function uniform(rng: () => number, lo: number, hi: number, digits = 4): number {
  return round(lo + (hi - lo) * rng(), digits);
}

function at(xs: ArrayLike<number>, i: number): number {
  const v = xs[i];
  if (v === undefined) throw new Error(`index ${i} out of range (${xs.length})`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Dense models: one description, two implementations (ONNX graph and plain JS)
// ---------------------------------------------------------------------------------------------

type Activation = "none" | "sigmoid" | "softmax" | "tanh" | "relu";

interface Layer {
  name: string;
  /** "input" (the input tensor, flattened in layout order) or an earlier layer's `output`. */
  input: string;
  /** Rows [out][in]: y = W·x + b. */
  W: number[][];
  b: number[];
  activation: Activation;
  /** Tensor name of the activated result (a graph output when listed in `outputs`). */
  output: string;
}

function activate(z: number[], activation: Activation): number[] {
  switch (activation) {
    case "none":
      return z;
    case "sigmoid":
      return z.map((v) => 1 / (1 + Math.exp(-v)));
    case "tanh":
      return z.map((v) => Math.tanh(v));
    case "relu":
      return z.map((v) => Math.max(0, v));
    case "softmax": {
      const m = Math.max(...z);
      const e = z.map((v) => Math.exp(v - m));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    }
  }
}

/** Plain-JS evaluation of the layers for one input; returns every tensor by name. */
function evaluate(layers: readonly Layer[], input: readonly number[]): Map<string, number[]> {
  const values = new Map<string, number[]>([["input", input.map(Math.fround)]]);
  for (const layer of layers) {
    const x = values.get(layer.input);
    if (x === undefined) throw new Error(`layer ${layer.name}: unknown input ${layer.input}`);
    const z = layer.W.map((row, o) => {
      if (row.length !== x.length)
        throw new Error(`layer ${layer.name}: ${row.length} weights, ${x.length} inputs`);
      let s = Math.fround(at(layer.b, o));
      for (let i = 0; i < row.length; i++) s += Math.fround(at(row, i)) * at(x, i);
      return s;
    });
    values.set(layer.output, activate(z, layer.activation));
  }
  return values;
}

function buildOnnx(
  name: string,
  inputShape: readonly number[],
  layers: readonly Layer[],
  outputs: readonly OutputSpec[],
  docString: string,
): Uint8Array {
  const g = new GraphBuilder(name);
  g.input("input", ["batch", ...inputShape]);
  const flat =
    inputShape.length > 1 ? g.node("Flatten", ["input"], { axis: attr.int(1) }, "input.flat") : "input";
  const tensorOf = new Map<string, string>([["input", flat]]);
  for (const layer of layers) {
    const x = tensorOf.get(layer.input);
    if (x === undefined) throw new Error(`layer ${layer.name}: unknown input ${layer.input}`);
    const W = g.initializer(`${layer.name}.W`, [layer.W.length, layer.W[0]?.length ?? 0], layer.W.flat());
    const b = g.initializer(`${layer.name}.b`, [layer.b.length], layer.b);
    const gemmOut = layer.activation === "none" ? layer.output : `${layer.name}.z`;
    const z = g.node("Gemm", [x, W, b], { transB: attr.int(1) }, gemmOut);
    if (layer.activation !== "none") {
      const op = { sigmoid: "Sigmoid", softmax: "Softmax", tanh: "Tanh", relu: "Relu" }[layer.activation];
      g.node(op, [z], op === "Softmax" ? { axis: attr.int(1) } : {}, layer.output);
    }
    tensorOf.set(layer.output, layer.output);
  }
  for (const o of outputs) {
    const layer = layers.find((l) => l.output === o.tensor);
    if (layer === undefined) throw new Error(`${name}: no layer produces ${o.tensor}`);
    g.output(o.tensor, ["batch", layer.W.length]);
  }
  return g.encode({ docString });
}

// ---------------------------------------------------------------------------------------------
// Package files
// ---------------------------------------------------------------------------------------------

/** JSON with 2-space indentation, arrays of numbers or strings kept on one line. */
function formatJson(value: unknown, indent = ""): string {
  if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== "object")) {
      return `[${value.map((v) => JSON.stringify(v)).join(", ")}]`;
    }
    const inner = `${indent}  `;
    return `[\n${value.map((v) => inner + formatJson(v, inner)).join(",\n")}\n${indent}]`;
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return "{}";
    const inner = `${indent}  `;
    return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${formatJson(v, inner)}`).join(",\n")}\n${indent}}`;
  }
  return JSON.stringify(value);
}

function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

interface PackageSpec {
  dir: string;
  name: string;
  version: string;
  task: Task;
  description: string;
  input: InputSpec;
  /** Input tensor shape without the batch dimension. */
  inputShape: number[];
  layers: Layer[];
  outputs: OutputSpec[];
  alerts: AlertRuleSpec[];
  /** Preprocessed self-test inputs; expected outputs are computed here. */
  selfTestInputs: number[][];
  tolerance: number;
  reference?: unknown;
  /** Write weights.json beside the model (test fixtures). */
  withWeights: boolean;
  graphSummary: string;
}

function selfTestOf(spec: PackageSpec): SelfTestCase[] {
  return spec.selfTestInputs.map((input) => {
    const values = evaluate(spec.layers, input);
    const output = spec.outputs.flatMap((o) => {
      const v = values.get(o.tensor);
      if (v === undefined) throw new Error(`${spec.name}: output ${o.tensor} not computed`);
      return v.map((x) => round(x, 7));
    });
    return { input, output, tolerance: spec.tolerance };
  });
}

function writePackage(spec: PackageSpec): void {
  const dir = join(ROOT, spec.dir);
  mkdirSync(dir, { recursive: true });
  const files: Record<string, string> = {};

  const onnx = buildOnnx(spec.name, spec.inputShape, spec.layers, spec.outputs, spec.description);
  writeFileSync(join(dir, "model.onnx"), onnx);
  files["model.onnx"] = sha256(onnx);

  if (spec.withWeights) {
    const weights = `${formatJson({
      about:
        "The weights of model.onnx in plain numbers, for evaluating the model without ONNX in tests. " +
        "Each layer is y = activation(W·x + b), W given as rows [out][in]; 'input' is the input tensor " +
        "of one window flattened in layout order (already preprocessed).",
      graph: spec.graphSummary,
      layers: spec.layers,
    })}\n`;
    writeFileSync(join(dir, "weights.json"), weights);
    files["weights.json"] = sha256(weights);
  }

  const manifest = {
    schemaVersion: 1,
    name: spec.name,
    version: spec.version,
    task: spec.task,
    description: spec.description,
    files,
    input: spec.input,
    outputs: spec.outputs,
    alerts: spec.alerts,
    selfTest: selfTestOf(spec),
    reference: spec.reference,
  };
  writeFileSync(join(dir, "manifest.json"), `${formatJson(manifest)}\n`);
  console.log(`wrote ${spec.dir} (model.onnx ${onnx.length} bytes)`);
}

// ---------------------------------------------------------------------------------------------
// Test fixtures: random but seeded weights, with enough structure that tests can push an output
// across its alert threshold by moving one signal (documented per fixture).
// ---------------------------------------------------------------------------------------------

function randomMatrix(rng: () => number, rows: number, cols: number, lo: number, hi: number): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => uniform(rng, lo, hi)));
}

function randomInputs(rng: () => number, cases: number, n: number, lo: number, hi: number): number[][] {
  return Array.from({ length: cases }, () => Array.from({ length: n }, () => uniform(rng, lo, hi)));
}

/**
 * count-ntc-zscore: rul = 50 + W·x over the 5×3 window (time-major). Every weight on s1 is in
 * [1, 2] (s1 down → rul down; s1 = 70, i.e. z = −3, gives rul ≈ 27); s2 and s3 weigh ±0.5.
 * s3's std is 0, so its z-score is s3 − 5.
 */
function countNtcZscore(): PackageSpec {
  const rng = mulberry32(0xa11ce);
  const W = [
    Array.from({ length: 15 }, (_, i) => (i % 3 === 0 ? uniform(rng, 1, 2) : uniform(rng, -0.5, 0.5))),
  ];
  return {
    dir: "test/fixtures/models/count-ntc-zscore",
    name: "count-ntc-zscore",
    version: "1.0.0",
    task: "regression",
    description: "Test fixture: count window, sequence features, z-score, NTC. rul = 50 + W·x.",
    input: {
      tensor: "input",
      signals: ["s1", "s2", "s3"],
      window: { type: "count", size: 5, hop: 2 },
      features: { type: "sequence" },
      normalize: { type: "zscore", mean: [100, 20, 5], std: [10, 4, 0] },
      layout: "NTC",
    },
    inputShape: [5, 3],
    layers: [{ name: "rul", input: "input", W, b: [50], activation: "none", output: "rul" }],
    outputs: [{ tensor: "rul", name: "rul", kind: "rul", unit: "cycles" }],
    alerts: [
      {
        id: "rul-low",
        severity: "warning",
        output: "rul",
        op: "<",
        value: 40,
        forWindows: 2,
        clearValue: 45,
      },
    ],
    selfTestInputs: randomInputs(rng, 2, 15, -2, 2),
    tolerance: 1e-4,
    withWeights: true,
    graphSummary: "input[batch,5,3] → Flatten → rul (15→1) → rul[batch,1]",
  };
}

/**
 * count-nct-minmax: probs = softmax(logits(x)), p_fail = sigmoid(W·x − 3) over the 2×4
 * window (signal-major). Every p_fail weight on `a` is in [1, 2], on `b` ±0.25: a = 100
 * (min-max 1) gives p_fail ≈ 0.95, a = 0 gives ≈ 0.05.
 */
function countNctMinmax(): PackageSpec {
  const rng = mulberry32(0xb0b);
  const logitsW = randomMatrix(rng, 2, 8, -1, 1);
  const pW = [Array.from({ length: 8 }, (_, i) => (i < 4 ? uniform(rng, 1, 2) : uniform(rng, -0.25, 0.25)))];
  return {
    dir: "test/fixtures/models/count-nct-minmax",
    name: "count-nct-minmax",
    version: "1.0.0",
    task: "classification",
    description: "Test fixture: count window, sequence features, min-max, NCT; an array output and a number.",
    input: {
      tensor: "input",
      signals: ["a", "b"],
      window: { type: "count", size: 4, hop: 1 },
      features: { type: "sequence" },
      normalize: { type: "minmax", min: [0, 0], max: [100, 10] },
      layout: "NCT",
    },
    inputShape: [2, 4],
    layers: [
      { name: "logits", input: "input", W: logitsW, b: [0.1, -0.1], activation: "softmax", output: "probs" },
      { name: "p_fail", input: "input", W: pW, b: [-3], activation: "sigmoid", output: "p_fail" },
    ],
    outputs: [
      { tensor: "probs", name: "probs", kind: "probability" },
      { tensor: "p_fail", name: "p_fail", kind: "probability" },
    ],
    alerts: [
      {
        id: "p-fail-high",
        severity: "warning",
        output: "p_fail",
        op: ">=",
        value: 0.7,
        forWindows: 1,
        clearValue: 0.5,
      },
    ],
    selfTestInputs: randomInputs(rng, 2, 8, 0, 1),
    tolerance: 1e-4,
    withWeights: true,
    graphSummary:
      "input[batch,2,4] → Flatten → logits (8→2) → Softmax → probs[batch,2]; " +
      "Flatten → p_fail (8→1) → Sigmoid → p_fail[batch,1]",
  };
}

const ALL_AGGREGATES = [
  "mean",
  "std",
  "min",
  "max",
  "rms",
  "slope",
  "p2p",
  "kurtosis",
  "skew",
  "crest",
] as const;

/**
 * time-nf-aggregate: 20 aggregate features (temp then vib, each in ALL_AGGREGATES order).
 * Feature 10 (vib mean, z = (mean − 2) / 0.5) dominates both heads: anomaly =
 * sigmoid(−2 + 1.5·z + small terms), so vib ≈ 4 gives anomaly ≈ 0.98 and vib ≈ 2 about 0.12;
 * state leans to "fault" as vib rises and to "ok" at nominal vib.
 */
function timeNfAggregate(): PackageSpec {
  const rng = mulberry32(0xc0ffee);
  // [mean, std] of each feature in a healthy machine, signal-major.
  const stats: [number, number][] = [
    // temp: mean std min max rms slope p2p kurtosis skew crest
    [60, 5],
    [0.5, 0.3],
    [59, 5],
    [61, 5],
    [60, 5],
    [0, 0.1],
    [1.5, 0.8],
    [-0.5, 1],
    [0, 0.5],
    [1.02, 0.02],
    // vib
    [2, 0.5],
    [0.2, 0.1],
    [1.7, 0.5],
    [2.3, 0.5],
    [2, 0.5],
    [0, 0.05],
    [0.6, 0.3],
    [-0.5, 1],
    [0, 0.5],
    [1.15, 0.1],
  ];
  const stateW = randomMatrix(rng, 3, 20, -0.3, 0.3);
  const lean = [-1, 0.5, 1.5];
  stateW.forEach((row, k) => (row[10] = round(at(row, 10) + at(lean, k), 4)));
  const anomalyW = randomMatrix(rng, 1, 20, -0.1, 0.1);
  (anomalyW[0] as number[])[10] = 1.5;
  return {
    dir: "test/fixtures/models/time-nf-aggregate",
    name: "time-nf-aggregate",
    version: "1.0.0",
    task: "anomaly",
    description: "Test fixture: time window with linear fill, ten aggregates per signal, z-score, NF.",
    input: {
      tensor: "input",
      signals: ["temp", "vib"],
      window: { type: "time", sizeMs: 10_000, hopMs: 5_000, sampleMs: 1_000, fill: "linear" },
      features: { type: "aggregate", functions: [...ALL_AGGREGATES] },
      normalize: { type: "zscore", mean: stats.map((s) => s[0]), std: stats.map((s) => s[1]) },
      layout: "NF",
    },
    inputShape: [20],
    layers: [
      { name: "state", input: "input", W: stateW, b: [1, 0, -1], activation: "none", output: "logits" },
      { name: "anomaly", input: "input", W: anomalyW, b: [-2], activation: "sigmoid", output: "anomaly" },
    ],
    outputs: [
      { tensor: "logits", name: "state", kind: "class", labels: ["ok", "wear", "fault"] },
      { tensor: "anomaly", name: "anomaly", kind: "score" },
    ],
    alerts: [
      {
        id: "anomaly-high",
        severity: "critical",
        output: "anomaly",
        op: ">",
        value: 0.8,
        forWindows: 3,
        clearValue: 0.6,
      },
    ],
    selfTestInputs: randomInputs(rng, 2, 20, -2, 2),
    tolerance: 1e-4,
    withWeights: true,
    graphSummary:
      "input[batch,20] → state (20→3) → logits[batch,3]; input → anomaly (20→1) → Sigmoid → anomaly[batch,1]",
  };
}

/** time-ntc-previous: y = W·x with every weight in [0.15, 0.25] (about the window mean). */
function timeNtcPrevious(): PackageSpec {
  const rng = mulberry32(0xd00d);
  return {
    dir: "test/fixtures/models/time-ntc-previous",
    name: "time-ntc-previous",
    version: "1.0.0",
    task: "regression",
    description: "Test fixture: time window with previous fill, raw sequence (no normalization), NTC.",
    input: {
      tensor: "input",
      signals: ["x"],
      window: { type: "time", sizeMs: 5_000, hopMs: 5_000, sampleMs: 1_000, fill: "previous" },
      features: { type: "sequence" },
      normalize: { type: "none" },
      layout: "NTC",
    },
    inputShape: [5, 1],
    layers: [
      {
        name: "y",
        input: "input",
        W: randomMatrix(rng, 1, 5, 0.15, 0.25),
        b: [0],
        activation: "none",
        output: "y",
      },
    ],
    outputs: [{ tensor: "y", name: "y", kind: "score" }],
    alerts: [],
    selfTestInputs: randomInputs(rng, 2, 5, -10, 10),
    tolerance: 1e-4,
    withWeights: true,
    graphSummary: "input[batch,5,1] → Flatten → y (5→1) → y[batch,1]",
  };
}

/**
 * cmapss-rul-standin: the shape of the real turbofan-rul package (count window of 30 cycles,
 * 14 informative C-MAPSS sensors, z-score, NTC, output `rul`; without 2.0.0's age input
 * `cycle`, whose publication the replay tests check on their own) with a model small enough to
 * write here: rul = b + Σ_j a_j · mean_t z_{t,j}, a ridge regression on window means fitted to
 * engines of the demo's turbofan generator (src/demo/turbofan.ts, its parameters fitted to
 * FD001; no data row is read here), target min(RUL, 125). It exists so that `vigil batch`,
 * `vigil replay` and `npm run eval:cmapss` can be tested without the trained model; its
 * accuracy on the real test set is whatever a linear model of window means gives.
 */
function cmapssRulStandin(): PackageSpec {
  const signals = [
    "s2",
    "s3",
    "s4",
    "s7",
    "s8",
    "s9",
    "s11",
    "s12",
    "s13",
    "s14",
    "s15",
    "s17",
    "s20",
    "s21",
  ];
  const size = 30;
  const cap = 125;
  const ridge = 1e-3;
  const engines = Array.from({ length: 40 }, (_, i) =>
    createTurbofan(9000 + i, FD001_PARAMS, { initialWear: 0 }),
  );
  // Every cycle of each engine's first life, as rows of the 14 signals.
  const lives = engines.map((e) => {
    const cycles = engineTruth(e, 0).cycles;
    return Array.from({ length: cycles }, (_, k) => {
      const row = engineRow(e, k);
      const x = signals.map((s) => {
        const v = row[s];
        if (v === undefined) throw new Error(`turbofan generator has no column ${s}`);
        return v;
      });
      return { x, rul: engineTruth(e, k).rul };
    });
  });
  const all = lives.flat();
  const n = signals.length;
  const mean = signals.map((_, j) => all.reduce((a, r) => a + at(r.x, j), 0) / all.length);
  const std = signals.map((_, j) =>
    Math.sqrt(all.reduce((a, r) => a + (at(r.x, j) - at(mean, j)) ** 2, 0) / all.length),
  );
  const meanR = mean.map((v) => round(v, 4));
  const stdR = std.map((v) => round(v, 6));
  // Window-mean features (z-scored with the rounded statistics the manifest carries), target capped RUL.
  const xs: number[][] = [];
  const ys: number[] = [];
  for (const life of lives) {
    for (let end = size; end <= life.length; end += 3) {
      const win = life.slice(end - size, end);
      xs.push(
        signals.map((_, j) => win.reduce((a, r) => a + (at(r.x, j) - at(meanR, j)) / at(stdR, j), 0) / size),
      );
      const last = win[size - 1];
      if (last === undefined) throw new Error("window shorter than its size");
      ys.push(Math.min(cap, last.rul));
    }
  }
  // Normal equations of [1, x] with a ridge on the slopes, solved by Gauss-Jordan.
  const m = n + 1;
  const A = Array.from({ length: m }, () => new Array<number>(m + 1).fill(0));
  xs.forEach((x, i) => {
    const v = [1, ...x];
    for (let r = 0; r < m; r++) {
      for (let c = 0; c < m; c++) (A[r] as number[])[c] = at(A[r] as number[], c) + at(v, r) * at(v, c);
      (A[r] as number[])[m] = at(A[r] as number[], m) + at(v, r) * at(ys, i);
    }
  });
  for (let r = 1; r < m; r++) (A[r] as number[])[r] = at(A[r] as number[], r) + ridge * xs.length;
  for (let p = 0; p < m; p++) {
    const piv = A[p] as number[];
    for (let r = 0; r < m; r++) {
      if (r === p) continue;
      const row = A[r] as number[];
      const f = at(row, p) / at(piv, p);
      for (let c = p; c <= m; c++) row[c] = at(row, c) - f * at(piv, c);
    }
  }
  const coef = A.map((row, r) => at(row, m) / at(row, r));
  const bias = round(at(coef, 0), 4);
  const W = [Array.from({ length: size * n }, (_, i) => round(at(coef, 1 + (i % n)) / size, 6))];
  const rng = mulberry32(0xc3a55);
  return {
    dir: "test/fixtures/models/cmapss-rul-standin",
    name: "cmapss-rul-standin",
    version: "1.0.0",
    task: "regression",
    description:
      "Test fixture standing in for turbofan-rul: count window 30, 14 C-MAPSS sensors, z-score, NTC. " +
      "rul = b + Σ a_j · mean_t z_j, fitted to the demo's turbofan generator.",
    input: {
      tensor: "input",
      signals,
      window: { type: "count", size, hop: 1 },
      features: { type: "sequence" },
      normalize: { type: "zscore", mean: meanR, std: stdR },
      layout: "NTC",
    },
    inputShape: [size, n],
    layers: [{ name: "rul", input: "input", W, b: [bias], activation: "none", output: "rul" }],
    outputs: [{ tensor: "rul", name: "rul", kind: "rul", unit: "cycles" }],
    alerts: [
      {
        id: "rul-warning",
        severity: "warning",
        output: "rul",
        op: "<",
        value: 50,
        forWindows: 3,
        clearValue: 60,
      },
      {
        id: "rul-critical",
        severity: "critical",
        output: "rul",
        op: "<",
        value: 20,
        forWindows: 2,
        clearValue: 30,
      },
    ],
    selfTestInputs: randomInputs(rng, 2, size * n, -2, 2),
    tolerance: 1e-3,
    withWeights: true,
    graphSummary: `input[batch,${size},${n}] → Flatten → rul (${size * n}→1) → rul[batch,1]`,
  };
}

// ---------------------------------------------------------------------------------------------
// pump-health: data, features, training, validation
// ---------------------------------------------------------------------------------------------

const PUMP = {
  window: { type: "time", sizeMs: 10_000, hopMs: 2_000, sampleMs: 1_000, fill: "previous" } as const,
  functions: ["mean", "std", "slope", "rms"] as const,
  /** failure_probability: P(failure within this much demo time after the window ends). */
  horizonMs: 60_000,
  /** The rul target is capped: early in a life wear is invisible, so "≥ 3 minutes" is all one can say. */
  rulCapMinutes: 3,
  /** Simulated time per machine. */
  durationMs: 40 * 60_000,
  /** Fraction of readings dropped at random, so that `fill: previous` matters. */
  dropRate: 0.02,
  trainSeeds: Array.from({ length: 48 }, (_, i) => 1 + i),
  validationSeeds: Array.from({ length: 16 }, (_, i) => 1001 + i),
  /** A multiple of every window size and hop: windows start on the grid. */
  startMs: 1_700_000_000_000,
  hidden: 8,
};

const FEATURE_NAMES = MACHINE_SIGNALS.flatMap((s) => PUMP.functions.map((f) => `${s}.${f}`));

interface WindowRow {
  machine: number;
  endMs: number;
  features: number[];
  /** 1 when the machine fails within the horizon after endMs. */
  label: number;
  /** Remaining time to failure, minutes, capped at rulCapMinutes. */
  rulMinutes: number;
  failureAtMs: number;
  lifeIndex: number;
  /** Ground-truth health at endMs (1 new … 0 failed). */
  health: number;
  /** True when a repair happened inside the window (it mixes two lives). */
  straddlesRepair: boolean;
}

/** Aggregates of contract §4 used by pump-health, over the n slot values of one window. */
function aggregate(fn: (typeof PUMP.functions)[number], xs: readonly number[]): number {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  switch (fn) {
    case "mean":
      return mean;
    case "std":
      return Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / n);
    case "rms":
      return Math.sqrt(xs.reduce((a, x) => a + x * x, 0) / n);
    case "slope": {
      const im = (n - 1) / 2;
      let num = 0;
      let den = 0;
      xs.forEach((x, i) => {
        num += (i - im) * (x - mean);
        den += (i - im) ** 2;
      });
      return den === 0 ? 0 : num / den;
    }
  }
}

/**
 * Simulates one machine read once a second (at a random instant within each second, a few
 * readings lost), resamples each signal onto the 1 s slot grid with `previous` fill, and cuts
 * the windows exactly as the gateway does live.
 */
function simulateMachine(seed: number): WindowRow[] {
  const { sizeMs, hopMs, sampleMs } = PUMP.window;
  const machine: Machine = createMachine(seed, { startMs: PUMP.startMs });
  const rng = mulberry32(seed * 7919 + 17);
  const slots = PUMP.durationMs / sampleMs;
  // Slot values per signal after fill; NaN until the first reading.
  const series = MACHINE_SIGNALS.map(() => new Float64Array(slots).fill(Number.NaN));
  for (let k = 0; k < slots; k++) {
    const tMs = PUMP.startMs + k * sampleMs + Math.floor(rng() * sampleMs);
    const r = sample(machine, tMs);
    MACHINE_SIGNALS.forEach((s, j) => {
      const col = series[j] as Float64Array;
      const dropped = rng() < PUMP.dropRate;
      col[k] = dropped ? (k > 0 ? at(col, k - 1) : Number.NaN) : r[s];
    });
  }
  const steps = sizeMs / sampleMs;
  const rows: WindowRow[] = [];
  for (let startMs = PUMP.startMs; startMs + sizeMs <= PUMP.startMs + PUMP.durationMs; startMs += hopMs) {
    const k0 = (startMs - PUMP.startMs) / sampleMs;
    const perSignal = series.map((col) => Array.from(col.subarray(k0, k0 + steps)));
    if (perSignal.some((xs) => xs.some((x) => Number.isNaN(x)))) continue; // cannot be filled: skipped
    const features = perSignal.flatMap((xs) => PUMP.functions.map((f) => aggregate(f, xs)));
    const endMs = startMs + sizeMs;
    const truth = groundTruth(machine, endMs);
    rows.push({
      machine: seed,
      endMs,
      features,
      label: truth.remainingMs <= PUMP.horizonMs ? 1 : 0,
      rulMinutes: Math.min(PUMP.rulCapMinutes, truth.remainingMs / 60_000),
      failureAtMs: truth.failureAtMs,
      lifeIndex: truth.lifeIndex,
      health: truth.health,
      straddlesRepair: groundTruth(machine, startMs).lifeIndex !== truth.lifeIndex,
    });
  }
  return rows;
}

interface FeatureStats {
  mean: number[];
  std: number[];
  min: number[];
  max: number[];
}

function featureStats(rows: readonly WindowRow[]): FeatureStats {
  const f = FEATURE_NAMES.length;
  const mean = new Array<number>(f).fill(0);
  const sq = new Array<number>(f).fill(0);
  const min = new Array<number>(f).fill(Infinity);
  const max = new Array<number>(f).fill(-Infinity);
  for (const r of rows) {
    r.features.forEach((x, i) => {
      mean[i] = at(mean, i) + x;
      min[i] = Math.min(at(min, i), x);
      max[i] = Math.max(at(max, i), x);
    });
  }
  for (let i = 0; i < f; i++) mean[i] = at(mean, i) / rows.length;
  for (const r of rows) r.features.forEach((x, i) => (sq[i] = at(sq, i) + (x - at(mean, i)) ** 2));
  const std = sq.map((s) => Math.sqrt(s / rows.length));
  return { mean, std, min, max };
}

/** zscore exactly as the gateway applies it: (x − mean) / std, std 0 treated as 1. */
function zscore(features: readonly number[], mean: readonly number[], std: readonly number[]): number[] {
  return features.map((x, i) => (x - at(mean, i)) / (at(std, i) === 0 ? 1 : at(std, i)));
}

interface Mlp {
  W1: number[][];
  b1: number[];
  wp: number[];
  bp: number;
  wr: number[];
  br: number;
}

/**
 * A 16→8 tanh layer shared by two heads: a logistic head (failure within the horizon; binary
 * cross-entropy) and a linear head (rul / cap; squared error). Mini-batch Adam, seeded.
 */
function train(xs: readonly number[][], labels: readonly number[], ruls: readonly number[]): Mlp {
  const rng = mulberry32(0x5eed);
  const nIn = FEATURE_NAMES.length;
  const nH = PUMP.hidden;
  const params: number[] = [];
  // Layout of `params`: W1 (nH×nIn), b1 (nH), wp (nH), bp, wr (nH), br.
  for (let i = 0; i < nH * nIn; i++) params.push(gaussian(rng) / Math.sqrt(nIn));
  for (let i = 0; i < nH; i++) params.push(0);
  for (let i = 0; i < nH; i++) params.push(gaussian(rng) * 0.1);
  params.push(0);
  for (let i = 0; i < nH; i++) params.push(gaussian(rng) * 0.1);
  params.push(0.5);
  const oB1 = nH * nIn;
  const oWp = oB1 + nH;
  const oBp = oWp + nH;
  const oWr = oBp + 1;
  const oBr = oWr + nH;
  const P = Float64Array.from(params);
  const m = new Float64Array(P.length);
  const v = new Float64Array(P.length);
  const grad = new Float64Array(P.length);
  const h = new Float64Array(nH);
  const lr = 0.005;
  const batch = 128;
  const epochs = 40;
  const rulWeight = 2; // balances the two losses (rul is scaled to [0, 1])
  const order = Array.from({ length: xs.length }, (_, i) => i);
  let step = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [order[i], order[j]] = [at(order, j), at(order, i)];
    }
    for (let s = 0; s < order.length; s += batch) {
      grad.fill(0);
      const end = Math.min(order.length, s + batch);
      for (let q = s; q < end; q++) {
        const n = at(order, q);
        const x = xs[n] as number[];
        for (let k = 0; k < nH; k++) {
          let z = at(P, oB1 + k);
          for (let i = 0; i < nIn; i++) z += at(P, k * nIn + i) * at(x, i);
          h[k] = Math.tanh(z);
        }
        let zp = at(P, oBp);
        let zr = at(P, oBr);
        for (let k = 0; k < nH; k++) {
          zp += at(P, oWp + k) * at(h, k);
          zr += at(P, oWr + k) * at(h, k);
        }
        const p = 1 / (1 + Math.exp(-zp));
        const dzp = p - at(labels, n);
        const dzr = rulWeight * (zr - at(ruls, n) / PUMP.rulCapMinutes);
        grad[oBp] = at(grad, oBp) + dzp;
        grad[oBr] = at(grad, oBr) + dzr;
        for (let k = 0; k < nH; k++) {
          const hk = at(h, k);
          grad[oWp + k] = at(grad, oWp + k) + dzp * hk;
          grad[oWr + k] = at(grad, oWr + k) + dzr * hk;
          const dz = (dzp * at(P, oWp + k) + dzr * at(P, oWr + k)) * (1 - hk * hk);
          grad[oB1 + k] = at(grad, oB1 + k) + dz;
          for (let i = 0; i < nIn; i++) grad[k * nIn + i] = at(grad, k * nIn + i) + dz * at(x, i);
        }
      }
      step++;
      const scale = 1 / (end - s);
      const c1 = 1 - 0.9 ** step;
      const c2 = 1 - 0.999 ** step;
      for (let i = 0; i < P.length; i++) {
        const g = at(grad, i) * scale;
        m[i] = 0.9 * at(m, i) + 0.1 * g;
        v[i] = 0.999 * at(v, i) + 0.001 * g * g;
        P[i] = at(P, i) - (lr * (at(m, i) / c1)) / (Math.sqrt(at(v, i) / c2) + 1e-8);
      }
    }
  }
  const slice = (a: number, n: number): number[] => Array.from(P.subarray(a, a + n));
  return {
    W1: Array.from({ length: nH }, (_, k) => slice(k * nIn, nIn)),
    b1: slice(oB1, nH),
    wp: slice(oWp, nH),
    bp: at(P, oBp),
    wr: slice(oWr, nH),
    br: at(P, oBr),
  };
}

/** The trained network as exported: rul head scaled to minutes and clipped at 0 by Relu. */
function pumpLayers(mlp: Mlp): Layer[] {
  const r6 = (x: number): number => round(x, 6);
  const cap = PUMP.rulCapMinutes;
  return [
    {
      name: "hidden",
      input: "input",
      W: mlp.W1.map((row) => row.map(r6)),
      b: mlp.b1.map(r6),
      activation: "tanh",
      output: "hidden",
    },
    {
      name: "failure",
      input: "hidden",
      W: [mlp.wp.map(r6)],
      b: [r6(mlp.bp)],
      activation: "sigmoid",
      output: "failure_probability",
    },
    {
      name: "rul",
      input: "hidden",
      W: [mlp.wr.map((w) => r6(w * cap))],
      b: [r6(mlp.br * cap)],
      activation: "relu",
      output: "rul",
    },
  ];
}

/** Area under the ROC curve (Mann–Whitney, ties counted half). */
function auc(scores: readonly number[], labels: readonly number[]): number {
  const idx = scores.map((_, i) => i).sort((a, b) => at(scores, a) - at(scores, b));
  let rankSum = 0;
  let pos = 0;
  let i = 0;
  while (i < idx.length) {
    let j = i;
    while (j + 1 < idx.length && at(scores, at(idx, j + 1)) === at(scores, at(idx, i))) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (at(labels, at(idx, k)) === 1) {
        rankSum += rank;
        pos++;
      }
    }
    i = j + 1;
  }
  const neg = labels.length - pos;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? at(s, mid) : (at(s, mid - 1) + at(s, mid)) / 2;
}

interface AlertStats {
  id: string;
  failures: number;
  warned: number;
  medianLeadS: number;
  minLeadS: number;
  raisesPerFailure: number;
}

/**
 * Replays the alert rules of contract §4 (raise after `forWindows` consecutive windows, clear
 * past `clearValue`) over each held-out machine's windows in time order, and measures, for
 * every failure the simulation reached, whether the alert was raised in that life and how long
 * before the failure.
 */
function alertStats(rule: AlertRuleSpec, rows: readonly WindowRow[], probs: readonly number[]): AlertStats {
  const holds = (x: number): boolean => (rule.op === ">" ? x > rule.value : x >= rule.value);
  const clears = (x: number): boolean => x < rule.clearValue;
  const firstRaise = new Map<string, number>(); // machine/life → ts of the first raise
  let raises = 0;
  let machine = -1;
  let run = 0;
  let raised = false;
  rows.forEach((r, i) => {
    if (r.machine !== machine) {
      machine = r.machine;
      run = 0;
      raised = false;
    }
    const p = at(probs, i);
    if (!raised) {
      run = holds(p) ? run + 1 : 0;
      if (run >= rule.forWindows) {
        raised = true;
        raises++;
        const key = `${r.machine}/${r.lifeIndex}`;
        if (!firstRaise.has(key)) firstRaise.set(key, r.endMs);
      }
    } else if (clears(p)) {
      raised = false;
      run = 0;
    }
  });
  const leads: number[] = [];
  let failures = 0;
  const seen = new Set<string>();
  for (const r of rows) {
    const key = `${r.machine}/${r.lifeIndex}`;
    // A failure counts when the simulation ran past it and saw the whole horizon before it.
    if (seen.has(key) || r.failureAtMs > PUMP.startMs + PUMP.durationMs) continue;
    if (r.failureAtMs - PUMP.horizonMs < PUMP.startMs + PUMP.window.sizeMs) continue;
    seen.add(key);
    failures++;
    const t = firstRaise.get(key);
    if (t !== undefined) leads.push((r.failureAtMs - t) / 1000);
  }
  return {
    id: rule.id,
    failures,
    warned: leads.length,
    medianLeadS: median(leads),
    minLeadS: Math.min(...leads),
    raisesPerFailure: raises / failures,
  };
}

function pumpHealth(): { spec: PackageSpec; card: string } {
  const train_ = PUMP.trainSeeds.flatMap(simulateMachine);
  const valid = PUMP.validationSeeds.flatMap(simulateMachine);
  const stats = featureStats(train_);
  const norm = (r: WindowRow): number[] => zscore(r.features, stats.mean, stats.std);
  const mlp = train(
    train_.map(norm),
    train_.map((r) => r.label),
    train_.map((r) => r.rulMinutes),
  );
  const layers = pumpLayers(mlp);

  // Validation with the exported (rounded, float32) weights, through the same evaluator as the self-test.
  const predict = (r: WindowRow): { p: number; rul: number } => {
    const out = evaluate(layers, norm(r));
    return { p: at(out.get("failure_probability") ?? [], 0), rul: at(out.get("rul") ?? [], 0) };
  };
  const preds = valid.map(predict);
  const probs = preds.map((p) => p.p);
  const labels = valid.map((r) => r.label);
  const accuracy = preds.filter((p, i) => (p.p > 0.5 ? 1 : 0) === at(labels, i)).length / valid.length;
  const baseRate = labels.reduce((a, b) => a + b, 0) / labels.length;
  const maeAll =
    preds.reduce((a, p, i) => a + Math.abs(p.rul - (valid[i] as WindowRow).rulMinutes), 0) / valid.length;
  const near = valid
    .map((r, i) => ({ r, p: preds[i] as { rul: number } }))
    .filter(({ r }) => r.rulMinutes < PUMP.rulCapMinutes);
  const maeNear = near.reduce((a, { r, p }) => a + Math.abs(p.rul - r.rulMinutes), 0) / near.length;
  const metrics = {
    auc: auc(probs, labels),
    accuracy,
    baseRate,
    maeAll,
    maeNear,
    trainWindows: train_.length,
    validWindows: valid.length,
  };

  const alerts: AlertRuleSpec[] = [
    {
      id: "failure-risk",
      severity: "warning",
      output: "failure_probability",
      op: ">",
      value: 0.5,
      forWindows: 3,
      clearValue: 0.3,
    },
    {
      id: "failure-imminent",
      severity: "critical",
      output: "failure_probability",
      op: ">",
      value: 0.85,
      forWindows: 3,
      clearValue: 0.6,
    },
  ];
  const alertMetrics = alerts.map((a) => alertStats(a, valid, probs));

  // Self-test: a healthy, a worn and a failing window from held-out machines.
  const pick = (pred: (r: WindowRow) => boolean): WindowRow => {
    const r = valid.find(pred);
    if (r === undefined) throw new Error("pump-health: no window for the self-test");
    return r;
  };
  const cases = [
    pick((r) => !r.straddlesRepair && r.health > 0.95),
    pick((r) => !r.straddlesRepair && r.health < 0.6 && r.health > 0.4),
    pick((r) => !r.straddlesRepair && r.rulMinutes < 0.4),
  ];

  const spec: PackageSpec = {
    dir: "models/pump-health/1.0.0",
    name: "pump-health",
    version: "1.0.0",
    task: "classification",
    description:
      "SYNTHETIC demo model, trained by scripts/make-models.ts on simulated pumps (src/demo/plant-physics.ts). " +
      "failure_probability: probability that the pump fails within the next minute of demo time; " +
      `rul: minutes to failure, capped at ${PUMP.rulCapMinutes}. Not for real equipment.`,
    input: {
      tensor: "input",
      signals: [...MACHINE_SIGNALS],
      window: { ...PUMP.window },
      features: { type: "aggregate", functions: [...PUMP.functions] },
      normalize: {
        type: "zscore",
        mean: stats.mean.map((x) => round(x, 6)),
        std: stats.std.map((x) => round(x, 6)),
      },
      layout: "NF",
    },
    inputShape: [FEATURE_NAMES.length],
    layers,
    outputs: [
      { tensor: "failure_probability", name: "failure_probability", kind: "probability" },
      { tensor: "rul", name: "rul", kind: "rul", unit: "minutes" },
    ],
    alerts,
    selfTestInputs: cases.map((r) => norm(r).map((x) => round(x, 5))),
    tolerance: 1e-4,
    reference: {
      features: FEATURE_NAMES,
      count: train_.length,
      mean: stats.mean.map((x) => round(x, 6)),
      std: stats.std.map((x) => round(x, 6)),
      min: stats.min.map((x) => round(x, 6)),
      max: stats.max.map((x) => round(x, 6)),
    },
    withWeights: false,
    graphSummary: "input[batch,16] → hidden (16→8, tanh) → failure (8→1, sigmoid) | rul (8→1, relu)",
  };
  return { spec, card: modelCard(metrics, alertMetrics) };
}

function modelCard(
  m: {
    auc: number;
    accuracy: number;
    baseRate: number;
    maeAll: number;
    maeNear: number;
    trainWindows: number;
    validWindows: number;
  },
  alerts: readonly AlertStats[],
): string {
  const f = (x: number, d = 3): string => x.toFixed(d);
  const pct = (x: number): string => `${(100 * x).toFixed(1)} %`;
  const lifeMin = DEFAULT_MACHINE_OPTIONS.meanLifeMs / 60_000;
  return `# pump-health — SYNTHETIC demo model

> **This model is synthetic.** It was trained by \`scripts/make-models.ts\` on data simulated by
> \`src/demo/plant-physics.ts\`, not on any real machine. It exists so that \`vigil demo\` shows the whole
> pipeline working end to end. Do not use it on real equipment.

Generated file: edit \`scripts/make-models.ts\` and run \`npx tsx scripts/make-models.ts\` instead.

## What it predicts

For one pump (signals \`temperature\` °C, \`vibration\` mm/s RMS, \`pressure\` bar, \`current\` A), every 2 s, from
the last 10 s of readings (1 s slots, \`previous\` fill; per signal \`mean\`, \`std\`, \`slope\`, \`rms\` → 16
features, z-scored with the training statistics):

| output | kind | meaning |
|---|---|---|
| \`failure_probability\` | probability | probability that the pump fails within the next ${PUMP.horizonMs / 60_000} minute of demo time |
| \`rul\` | rul, minutes | remaining time to failure, capped at ${PUMP.rulCapMinutes} minutes (early wear is invisible, so larger values carry no information) |

Alerts in the manifest:

| rule | condition | clears when |
|---|---|---|
| \`failure-risk\` (warning) | \`failure_probability > 0.5\` for 3 windows (6 s) | \`< 0.3\` |
| \`failure-imminent\` (critical) | \`failure_probability > 0.85\` for 3 windows | \`< 0.6\` |

Network: 16 → 8 (tanh) → two heads: 8 → 1 (sigmoid) and 8 → 1 (× ${PUMP.rulCapMinutes}, relu). ONNX opset 13,
input \`input\` \`[batch, 16]\`.

## Training data

Simulated pumps whose health falls from 1 to 0 over a life of ${lifeMin} minutes ± 30 % of demo time (wear grows
as a power 1.8–2.8 of age), then fail and are repaired at once. Each machine has its own baseline
(manufacturing spread) and a slowly varying load. Readings once a second at a random instant in each second,
${pct(PUMP.dropRate)} of readings lost, ${PUMP.durationMs / 60_000} minutes per machine.

- training: ${PUMP.trainSeeds.length} machines, ${m.trainWindows} windows;
- validation: ${PUMP.validationSeeds.length} other machines (seeds never seen in training), ${m.validWindows} windows.

Trained in plain JS: mini-batch Adam on binary cross-entropy (failure within the horizon) plus squared
error (capped rul), seeded, so every run gives the same weights.

## Validation on held-out simulated machines

| metric | value |
|---|---|
| failure_probability ROC AUC | ${f(m.auc)} |
| accuracy at 0.5 | ${pct(m.accuracy)} (positives: ${pct(m.baseRate)} of windows) |
| rul MAE, all windows | ${f(m.maeAll, 2)} min |
| rul MAE, windows with true rul < ${PUMP.rulCapMinutes} min | ${f(m.maeNear, 2)} min |

Alert rules replayed on the held-out machines' windows (failures the simulation reached):

| rule | failures | raised before the failure | median lead | shortest lead | raises per failure |
|---|---|---|---|---|---|
${alerts
  .map(
    (a) =>
      `| \`${a.id}\` | ${a.failures} | ${a.warned} | ${f(a.medianLeadS, 0)} s | ${f(a.minLeadS, 0)} s | ${f(a.raisesPerFailure, 2)} |`,
  )
  .join("\n")}

## Limits

- Only as good as the simulator: real pumps wear in other ways (cavitation, seal leaks, bearing defects
  with spectral signatures) that these four slow signals and this physics do not model.
- Trained with the simulator's defaults (life ${lifeMin} min, noise 1×, one reading per second per signal).
  Other settings, or readings arriving more often (slot means then average several readings), shift the
  features and make it less accurate.
- \`rul\` cannot tell a new machine from a half-worn one: expect it near ${PUMP.rulCapMinutes} min for most of a life.
- A repair is instantaneous in the simulation; windows that straddle a repair mix two lives.
`;
}

// ---------------------------------------------------------------------------------------------

function main(): void {
  for (const spec of [
    countNtcZscore(),
    countNctMinmax(),
    timeNfAggregate(),
    timeNtcPrevious(),
    cmapssRulStandin(),
  ]) {
    writePackage(spec);
  }
  const pump = pumpHealth();
  writePackage(pump.spec);
  writeFileSync(join(ROOT, "models/pump-health/README.md"), pump.card);
  console.log("wrote models/pump-health/README.md");
}

main();
