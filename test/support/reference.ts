/**
 * An independent reference implementation of what a subscriber should receive, written from
 * /work/shared/CONTRACT.md (§3, §4, §5) and the fixtures' weights.json, NOT from src/window,
 * src/models or src/alerts (only manifest TYPES are imported). End-to-end tests compare the
 * gateway's published predictions and alerts with what this module computes from the same
 * readings.
 *
 * Contract of this module: pure functions of their arguments (plus reading fixture files in
 * `loadFixture`); no clock, no I/O beyond that, no randomness. Plain float64 arithmetic
 * throughout, except that the model input is rounded to float32 (Math.fround) as an ONNX
 * float tensor holds it, and weights are rounded to float32 as the ONNX initialisers hold
 * them, so outputs match ONNX Runtime to ~1e-5.
 *
 * Decisions where the contract leaves room (each is reported with the tests):
 * - Count windows: `windowStart` is the event time of the window's FIRST row (the contract
 *   only fixes `ts` = `windowEnd` = last row).
 * - Rows (count windows): a row is the readings of one asset at one `ts`; it is complete when
 *   it carries every signal of the model, and rows enter the window in the order they
 *   complete. A second value for a (signal, ts) already held is a duplicate (first kept). A
 *   row that completes with a ts not after the last row taken is dropped, and so is any
 *   reading for such a ts (a window is a strictly increasing sequence of rows).
 * - Time windows: a window closes when an accepted reading's ts is >= its end (allowed
 *   lateness 0). A reading is late when its ts is before the start of the oldest window not
 *   yet emitted (hop <= size only). A duplicate is a second reading of the same (signal, ts)
 *   (first kept). Linear fill's "after" slot is, by default, what is known when the window
 *   closes (readings accepted up to and including the one that closed it); `afterContext:
 *   "all"` uses every reading eventually accepted (what an offline computation sees), so a
 *   test can prove its data does not depend on that choice.
 * - Alerts: hysteresis as §4 says; the run of consecutive windows restarts at 0 after a raise
 *   and after a clear.
 */

import fs from "node:fs";
import path from "node:path";
import type { AggregateFn, AlertOp, InputSpec, OutputSpec } from "../../src/models/manifest-types.js";

export const FIXTURE_DIR = path.resolve(import.meta.dirname, "../fixtures/models");

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

export interface RefAlertRule {
  id: string;
  severity: string;
  output: string;
  op: AlertOp;
  value: number;
  forWindows?: number;
  clearValue?: number;
}

export interface FixtureManifest {
  name: string;
  version: string;
  input: InputSpec;
  outputs: OutputSpec[];
  alerts: RefAlertRule[];
}

export interface DenseLayer {
  name: string;
  /** "input" or an earlier layer's `output`. */
  input: string;
  /** Rows [out][in]. */
  W: number[][];
  b: number[];
  activation: string;
  output: string;
}

export interface Fixture {
  manifest: FixtureManifest;
  layers: DenseLayer[];
}

export function loadFixture(name: string): Fixture {
  const dir = path.join(FIXTURE_DIR, name);
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")) as FixtureManifest;
  const weights = JSON.parse(fs.readFileSync(path.join(dir, "weights.json"), "utf8")) as {
    layers: DenseLayer[];
  };
  return { manifest, layers: weights.layers };
}

// ---------------------------------------------------------------------------------------------
// Readings, rows, windows
// ---------------------------------------------------------------------------------------------

/** One reading of one asset (the asset is implied by the list it sits in). */
export interface RefReading {
  signal: string;
  ts: number;
  value: number;
}

/** A complete row: values in the model's signal order. */
export interface RefRow {
  ts: number;
  values: number[];
}

/** An emitted window: `matrix[signal][step]`, oldest step first. */
export interface RefWindow {
  windowStart: number;
  windowEnd: number;
  ts: number;
  matrix: number[][];
}

function get<T>(xs: readonly T[], i: number): T {
  const v = xs[i];
  if (v === undefined) throw new Error(`reference: index ${i} out of range (${xs.length})`);
  return v;
}

export interface RowResult {
  rows: RefRow[];
  /** Readings dropped: second value for a (signal, ts), or a ts not after the last row taken. */
  dropped: number;
}

/** Assembles one asset's readings (in arrival order) into complete rows for `signals`. */
export function assembleRows(readings: readonly RefReading[], signals: readonly string[]): RowResult {
  const pending = new Map<number, Map<string, number>>();
  const rows: RefRow[] = [];
  let lastTs = Number.NEGATIVE_INFINITY;
  let dropped = 0;
  for (const r of readings) {
    if (!signals.includes(r.signal)) continue;
    if (r.ts <= lastTs) {
      dropped++;
      continue;
    }
    let row = pending.get(r.ts);
    if (row === undefined) {
      row = new Map();
      pending.set(r.ts, row);
    }
    if (row.has(r.signal)) {
      dropped++;
      continue;
    }
    row.set(r.signal, r.value);
    if (signals.every((s) => row.has(s))) {
      rows.push({ ts: r.ts, values: signals.map((s) => row.get(s) as number) });
      lastTs = r.ts;
      for (const ts of [...pending.keys()]) if (ts <= lastTs) pending.delete(ts);
    }
  }
  return { rows, dropped };
}

/** Count windows: the first at the size-th row, then every hop-th row; each the last size rows. */
export function countWindows(rows: readonly RefRow[], size: number, hop: number): RefWindow[] {
  const out: RefWindow[] = [];
  for (let n = size; n <= rows.length; n += hop) {
    const taken = rows.slice(n - size, n);
    const signalCount = get(taken, 0).values.length;
    out.push({
      windowStart: get(taken, 0).ts,
      windowEnd: get(taken, size - 1).ts,
      ts: get(taken, size - 1).ts,
      matrix: Array.from({ length: signalCount }, (_, c) => taken.map((row) => get(row.values, c))),
    });
  }
  return out;
}

export interface TimeSpec {
  sizeMs: number;
  hopMs: number;
  sampleMs: number;
  fill: "previous" | "linear";
}

export interface TimeResult {
  windows: RefWindow[];
  late: number;
  duplicate: number;
  /** Windows that closed but could not be filled. */
  skipped: { windowStart: number; windowEnd: number }[];
}

export interface TimeOptions {
  /** Which readings linear fill may use after a gap: known at closing (default), or all. */
  afterContext?: "closing" | "all";
}

interface Accepted {
  signal: string;
  ts: number;
  value: number;
  /** Arrival position among accepted readings. */
  order: number;
}

/** Time windows over one asset's readings in arrival order (see the module header). */
export function timeWindows(
  readings: readonly RefReading[],
  spec: TimeSpec,
  signals: readonly string[],
  options: TimeOptions = {},
): TimeResult {
  const { sizeMs, hopMs, sampleMs } = spec;
  if (hopMs > sizeMs) throw new Error("reference: hop > size is not modelled");
  const steps = sizeMs / sampleMs;
  const mine = readings.filter((r) => signals.includes(r.signal));
  const accepted: Accepted[] = [];
  const seen = new Set<string>();
  let late = 0;
  let duplicate = 0;
  let next: number | undefined;
  let watermark = Number.NEGATIVE_INFINITY;
  const closing: { start: number; known: number }[] = [];
  for (const r of mine) {
    if (next === undefined) {
      // Earliest start, a multiple of hop, whose end (start + size) is after the reading.
      next = hopMs * Math.ceil((r.ts - sizeMs + 1) / hopMs);
    } else if (r.ts < next) {
      late++;
      continue;
    }
    const key = `${r.signal}\u0000${r.ts}`;
    if (seen.has(key)) {
      duplicate++;
      continue;
    }
    seen.add(key);
    accepted.push({ ...r, order: accepted.length });
    watermark = Math.max(watermark, r.ts);
    while (next + sizeMs <= watermark) {
      closing.push({ start: next, known: accepted.length });
      next += hopMs;
    }
  }

  const windows: RefWindow[] = [];
  const skipped: TimeResult["skipped"] = [];
  for (const { start, known } of closing) {
    const visible = accepted.slice(0, known);
    const all = options.afterContext === "all" ? accepted : visible;
    const matrix: number[][] = [];
    let ok = true;
    for (const signal of signals) {
      const row = fillSignal(
        slotMeans(visible, signal, sampleMs),
        slotMeans(all, signal, sampleMs),
        Math.floor(start / sampleMs),
        steps,
        spec.fill,
      );
      if (row === undefined) {
        ok = false;
        break;
      }
      matrix.push(row);
    }
    if (ok) windows.push({ windowStart: start, windowEnd: start + sizeMs, ts: start + sizeMs, matrix });
    else skipped.push({ windowStart: start, windowEnd: start + sizeMs });
  }
  return { windows, late, duplicate, skipped };
}

/** Slot index (global grid floor(ts / sampleMs)) -> mean of the signal's readings in it. */
function slotMeans(readings: readonly Accepted[], signal: string, sampleMs: number): Map<number, number> {
  const sums = new Map<number, { sum: number; n: number }>();
  for (const r of readings) {
    if (r.signal !== signal) continue;
    const i = Math.floor(r.ts / sampleMs);
    const s = sums.get(i) ?? { sum: 0, n: 0 };
    s.sum += r.value;
    s.n += 1;
    sums.set(i, s);
  }
  return new Map([...sums].map(([i, s]) => [i, s.sum / s.n]));
}

function fillSignal(
  known: Map<number, number>,
  future: Map<number, number>,
  first: number,
  steps: number,
  fill: "previous" | "linear",
): number[] | undefined {
  const out: number[] = [];
  for (let i = first; i < first + steps; i++) {
    const v = known.get(i);
    if (v !== undefined) {
      out.push(v);
      continue;
    }
    let before: number | undefined;
    for (const j of known.keys()) if (j < i && (before === undefined || j > before)) before = j;
    if (before === undefined) return undefined;
    const vb = known.get(before) as number;
    if (fill === "previous") {
      out.push(vb);
      continue;
    }
    let after: number | undefined;
    for (const j of future.keys()) if (j > i && (after === undefined || j < after)) after = j;
    if (after === undefined) return undefined;
    const va = future.get(after) as number;
    out.push(vb + ((va - vb) * (i - before)) / (after - before));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Features, normalisation, layout
// ---------------------------------------------------------------------------------------------

export function aggregate(fn: AggregateFn, xs: readonly number[]): number {
  const n = xs.length;
  const mean = xs.reduce((a, x) => a + x, 0) / n;
  const central = (k: number): number => xs.reduce((a, x) => a + (x - mean) ** k, 0) / n;
  const std = Math.sqrt(central(2));
  const rms = Math.sqrt(xs.reduce((a, x) => a + x * x, 0) / n);
  switch (fn) {
    case "mean":
      return mean;
    case "std":
      return std;
    case "min":
      return Math.min(...xs);
    case "max":
      return Math.max(...xs);
    case "p2p":
      return Math.max(...xs) - Math.min(...xs);
    case "rms":
      return rms;
    case "slope": {
      const ibar = (n - 1) / 2;
      let num = 0;
      let den = 0;
      xs.forEach((x, i) => {
        num += (i - ibar) * (x - mean);
        den += (i - ibar) ** 2;
      });
      return den === 0 ? 0 : num / den;
    }
    case "skew":
      return std === 0 ? 0 : central(3) / std ** 3;
    case "kurtosis":
      return std === 0 ? 0 : central(4) / std ** 4 - 3;
    case "crest":
      return rms === 0 ? 0 : Math.max(...xs.map(Math.abs)) / rms;
  }
}

export function normalize(spec: InputSpec["normalize"], k: number, x: number): number {
  switch (spec.type) {
    case "none":
      return x;
    case "zscore": {
      const sd = get(spec.std, k);
      return (x - get(spec.mean, k)) / (sd === 0 ? 1 : sd);
    }
    case "minmax": {
      const lo = get(spec.min, k);
      const hi = get(spec.max, k);
      return hi === lo ? 0 : (x - lo) / (hi - lo);
    }
  }
}

/** The model input of one window, flattened in layout order (float64; not yet float32). */
export function modelInput(input: InputSpec, matrix: readonly (readonly number[])[]): number[] {
  const C = input.signals.length;
  if (input.features.type === "aggregate") {
    const fns = input.features.functions;
    const out: number[] = [];
    for (let c = 0; c < C; c++) {
      fns.forEach((fn, j) =>
        out.push(normalize(input.normalize, c * fns.length + j, aggregate(fn, get(matrix, c)))),
      );
    }
    return out;
  }
  const T = get(matrix, 0).length;
  const at = (c: number, t: number): number => normalize(input.normalize, c, get(get(matrix, c), t));
  const out: number[] = [];
  if (input.layout === "NTC") {
    for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) out.push(at(c, t));
  } else {
    // NCT, and NF of a sequence: signal-major.
    for (let c = 0; c < C; c++) for (let t = 0; t < T; t++) out.push(at(c, t));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The network and its outputs
// ---------------------------------------------------------------------------------------------

function activate(z: number[], activation: string): number[] {
  switch (activation) {
    case "none":
    case "identity":
    case "linear":
      return z;
    case "sigmoid":
      return z.map((v) => 1 / (1 + Math.exp(-v)));
    case "tanh":
      return z.map(Math.tanh);
    case "relu":
      return z.map((v) => (v > 0 ? v : 0));
    case "softmax": {
      const m = Math.max(...z);
      const e = z.map((v) => Math.exp(v - m));
      const s = e.reduce((a, v) => a + v, 0);
      return e.map((v) => v / s);
    }
    default:
      throw new Error(`reference: unknown activation ${activation}`);
  }
}

/** Plain-JS evaluation of the dense layers on one input; every tensor by name. */
export function evaluateNetwork(
  layers: readonly DenseLayer[],
  input: readonly number[],
): Map<string, number[]> {
  const tensors = new Map<string, number[]>([["input", input.map(Math.fround)]]);
  for (const layer of layers) {
    const x = tensors.get(layer.input);
    if (x === undefined) throw new Error(`reference: layer ${layer.name} reads unknown ${layer.input}`);
    const z = layer.W.map((row, o) => {
      if (row.length !== x.length) throw new Error(`reference: layer ${layer.name} shape mismatch`);
      return row.reduce((acc, w, i) => acc + Math.fround(w) * get(x, i), Math.fround(get(layer.b, o)));
    });
    tensors.set(layer.output, activate(z, layer.activation));
  }
  return tensors;
}

export type RefOutput = number | string | number[];

export interface RefPrediction {
  windowStart: number;
  windowEnd: number;
  ts: number;
  outputs: Record<string, RefOutput>;
  /** Raw output tensors (before label decoding), by output name. */
  raw: Record<string, number[]>;
}

/** Outputs per §4: one value -> number; K values -> array, or for `class` with labels the label of the largest. */
export function decodeOutputs(
  specs: readonly OutputSpec[],
  tensors: Map<string, number[]>,
): Record<string, RefOutput> {
  const out: Record<string, RefOutput> = {};
  for (const spec of specs) {
    const t = tensors.get(spec.tensor);
    if (t === undefined) throw new Error(`reference: no tensor ${spec.tensor}`);
    if (spec.kind === "class" && spec.labels !== undefined) {
      let best = 0;
      t.forEach((v, i) => {
        if (v > get(t, best)) best = i;
      });
      out[spec.name] = get(spec.labels, best);
    } else {
      out[spec.name] = t.length === 1 ? get(t, 0) : [...t];
    }
  }
  return out;
}

export function predict(fixture: Fixture, window: RefWindow): RefPrediction {
  const tensors = evaluateNetwork(fixture.layers, modelInput(fixture.manifest.input, window.matrix));
  const raw: Record<string, number[]> = {};
  for (const o of fixture.manifest.outputs) raw[o.name] = tensors.get(o.tensor) ?? [];
  return {
    windowStart: window.windowStart,
    windowEnd: window.windowEnd,
    ts: window.ts,
    outputs: decodeOutputs(fixture.manifest.outputs, tensors),
    raw,
  };
}

// ---------------------------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------------------------

export interface RefAlert {
  rule: string;
  severity: string;
  state: "raised" | "cleared";
  value: number;
  ts: number;
}

function holds(op: AlertOp, x: number, v: number): boolean {
  return op === ">" ? x > v : op === ">=" ? x >= v : op === "<" ? x < v : x <= v;
}

/** §4 hysteresis over one asset's predictions, in window order; events in order (rule order within a window). */
export function alertEvents(
  rules: readonly RefAlertRule[],
  predictions: readonly RefPrediction[],
): RefAlert[] {
  const state = rules.map(() => ({ raised: false, run: 0 }));
  const events: RefAlert[] = [];
  for (const p of predictions) {
    rules.forEach((rule, k) => {
      const st = get(state, k);
      const x = p.outputs[rule.output];
      if (typeof x !== "number") return;
      const clearValue = rule.clearValue ?? rule.value;
      if (!st.raised) {
        st.run = holds(rule.op, x, rule.value) ? st.run + 1 : 0;
        if (st.run >= (rule.forWindows ?? 1)) {
          st.raised = true;
          st.run = 0;
          events.push({ rule: rule.id, severity: rule.severity, state: "raised", value: x, ts: p.ts });
        }
      } else {
        const beyond = rule.op === ">" || rule.op === ">=" ? x < clearValue : x > clearValue;
        if (beyond) {
          st.raised = false;
          st.run = 0;
          events.push({ rule: rule.id, severity: rule.severity, state: "cleared", value: x, ts: p.ts });
        }
      }
    });
  }
  return events;
}

/**
 * Smallest distance between any numeric rule output and its thresholds; tests assert it is
 * well above the float32 tolerance so that ORT's rounding cannot flip a decision.
 */
export function thresholdMargin(
  rules: readonly RefAlertRule[],
  predictions: readonly RefPrediction[],
): number {
  let margin = Number.POSITIVE_INFINITY;
  for (const p of predictions)
    for (const rule of rules) {
      const x = p.outputs[rule.output];
      if (typeof x !== "number") continue;
      margin = Math.min(margin, Math.abs(x - rule.value), Math.abs(x - (rule.clearValue ?? rule.value)));
    }
  return margin;
}

/** Smallest gap between the two largest raw values of every `class` output (ties would be ambiguous). */
export function classMargin(outputs: readonly OutputSpec[], predictions: readonly RefPrediction[]): number {
  let margin = Number.POSITIVE_INFINITY;
  for (const p of predictions)
    for (const o of outputs) {
      if (o.kind !== "class" || o.labels === undefined) continue;
      const sorted = [...(p.raw[o.name] ?? [])].sort((a, b) => b - a);
      margin = Math.min(margin, get(sorted, 0) - get(sorted, 1));
    }
  return margin;
}

/** Differences between a received `outputs` object and the reference, as readable lines (empty: equal). */
export function outputMismatches(
  actual: Record<string, unknown>,
  expected: Record<string, RefOutput>,
  tolerance = 1e-4,
): string[] {
  const problems: string[] = [];
  const names = new Set([...Object.keys(actual), ...Object.keys(expected)]);
  for (const name of names) {
    const a = actual[name];
    const e = expected[name];
    const bad = (): void => {
      problems.push(`${name}: got ${JSON.stringify(a)}, expected ${JSON.stringify(e)}`);
    };
    if (e === undefined || a === undefined) bad();
    else if (typeof e === "string") {
      if (a !== e) bad();
    } else if (typeof e === "number") {
      if (typeof a !== "number" || !(Math.abs(a - e) <= tolerance)) bad();
    } else if (
      !Array.isArray(a) ||
      a.length !== e.length ||
      e.some((v, i) => typeof a[i] !== "number" || !(Math.abs((a[i] as number) - v) <= tolerance))
    ) {
      bad();
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Comparing what a subscriber received with the reference (contract §5)
// ---------------------------------------------------------------------------------------------

/** What the tests need of a received MQTT message (structurally the harness's `Message`). */
export interface ReceivedMessage {
  topic: string;
  qos: number;
  payload: Buffer;
}

export interface ExpectedAsset {
  /** `<base>/<gatewayId>`. */
  root: string;
  gatewayId: string;
  asset: string;
  fixture: Fixture;
  predictions: readonly RefPrediction[];
  alerts: readonly RefAlert[];
}

function parse(m: ReceivedMessage): Record<string, unknown> {
  return JSON.parse(m.payload.toString("utf8")) as Record<string, unknown>;
}

/**
 * Every difference between the predictions and alerts received for one asset and the
 * reference, as readable lines (empty: all equal): counts, §5 fields, outputs to `tolerance`,
 * alert QoS 1, `seq` strictly increasing per topic, an alert's `seq` after its window's prediction.
 */
export function publishedProblems(
  messages: readonly ReceivedMessage[],
  exp: ExpectedAsset,
  tolerance = 1e-4,
): string[] {
  const problems: string[] = [];
  const { manifest } = exp.fixture;
  const preds = messages.filter((m) => m.topic === `${exp.root}/predictions/${exp.asset}`).map(parse);
  const alerts = messages.filter((m) => m.topic === `${exp.root}/alerts/${exp.asset}`);
  const tag = (kind: string, i: number): string => `${exp.asset} ${kind}[${i}]`;
  if (preds.length !== exp.predictions.length)
    problems.push(`${exp.asset}: ${preds.length} predictions, expected ${exp.predictions.length}`);
  const common = (p: Record<string, unknown>, where: string): void => {
    for (const [k, v] of Object.entries({
      gatewayId: exp.gatewayId,
      asset: exp.asset,
      model: manifest.name,
      modelVersion: manifest.version,
    })) {
      if (p[k] !== v) problems.push(`${where}.${k} = ${JSON.stringify(p[k])}, expected ${JSON.stringify(v)}`);
    }
    if (typeof p.id !== "string" || p.id.length === 0) problems.push(`${where}.id missing`);
    if (!Number.isSafeInteger(p.seq)) problems.push(`${where}.seq = ${JSON.stringify(p.seq)}`);
  };
  const seqByTs = new Map<number, number>();
  preds.forEach((p, i) => {
    const where = tag("prediction", i);
    common(p, where);
    const e = exp.predictions[i];
    if (e === undefined) return;
    for (const k of ["ts", "windowStart", "windowEnd"] as const) {
      if (p[k] !== e[k]) problems.push(`${where}.${k} = ${JSON.stringify(p[k])}, expected ${e[k]}`);
    }
    const outputs = p.outputs;
    if (typeof outputs !== "object" || outputs === null) problems.push(`${where}.outputs missing`);
    else
      for (const line of outputMismatches(outputs as Record<string, unknown>, e.outputs, tolerance))
        problems.push(`${where} (window ${e.windowStart}..${e.windowEnd}) ${line}`);
    if (typeof p.seq === "number" && typeof p.ts === "number") seqByTs.set(p.ts, p.seq);
  });

  if (alerts.length !== exp.alerts.length)
    problems.push(`${exp.asset}: ${alerts.length} alerts, expected ${exp.alerts.length}`);
  alerts.forEach((m, i) => {
    const where = tag("alert", i);
    const a = parse(m);
    common(a, where);
    if (m.qos !== 1) problems.push(`${where} arrived with QoS ${m.qos}, expected 1`);
    const e = exp.alerts[i];
    if (e === undefined) return;
    for (const k of ["rule", "severity", "state", "ts"] as const) {
      if (a[k] !== e[k])
        problems.push(`${where}.${k} = ${JSON.stringify(a[k])}, expected ${JSON.stringify(e[k])}`);
    }
    if (typeof a.value !== "number" || !(Math.abs(a.value - e.value) <= tolerance))
      problems.push(`${where}.value = ${JSON.stringify(a.value)}, expected ${e.value}`);
    const predSeq = seqByTs.get(e.ts);
    if (typeof a.seq === "number" && predSeq !== undefined && !(a.seq > predSeq))
      problems.push(`${where}.seq ${a.seq} is not after its prediction's seq ${predSeq}`);
  });

  for (const [kind, list] of [
    ["prediction", preds],
    ["alert", alerts.map(parse)],
  ] as const) {
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1]?.seq;
      const cur = list[i]?.seq;
      if (typeof prev === "number" && typeof cur === "number" && !(cur > prev))
        problems.push(`${tag(kind, i)}.seq ${cur} does not follow ${prev}`);
    }
  }
  return problems;
}

/** Duplicate `id`s or `seq`s among every prediction and alert received (empty: none). */
export function uniquenessProblems(messages: readonly ReceivedMessage[], root: string): string[] {
  const problems: string[] = [];
  const ids = new Set<unknown>();
  const seqs = new Set<unknown>();
  for (const m of messages) {
    if (!m.topic.startsWith(`${root}/predictions/`) && !m.topic.startsWith(`${root}/alerts/`)) continue;
    const p = parse(m);
    if (ids.has(p.id)) problems.push(`duplicate id ${JSON.stringify(p.id)} on ${m.topic}`);
    if (seqs.has(p.seq)) problems.push(`duplicate seq ${JSON.stringify(p.seq)} on ${m.topic}`);
    ids.add(p.id);
    seqs.add(p.seq);
  }
  return problems;
}
