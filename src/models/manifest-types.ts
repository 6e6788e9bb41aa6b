/**
 * The model package manifest (contract §4), as TypeScript types. `manifest.ts` validates
 * untrusted JSON into these; everything downstream may trust them.
 */

export type Task = "regression" | "classification" | "anomaly";
export type FillPolicy = "previous" | "linear";
/** Every aggregate function a manifest may name (contract §4), in a fixed order. */
export const AGGREGATE_FUNCTIONS = [
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
export type AggregateFn = (typeof AGGREGATE_FUNCTIONS)[number];
export type Layout = "NTC" | "NCT" | "NF";
export type OutputKind = "rul" | "probability" | "score" | "class";
export type AlertOp = ">" | ">=" | "<" | "<=";

export interface CountWindowSpec {
  type: "count";
  /** Rows per window (S). */
  size: number;
  /** Rows between two emitted windows (H); default 1. */
  hop: number;
}

export interface TimeWindowSpec {
  type: "time";
  sizeMs: number;
  hopMs: number;
  sampleMs: number;
  fill: FillPolicy;
}

export type WindowSpec = CountWindowSpec | TimeWindowSpec;

export type FeatureSpec = { type: "sequence" } | { type: "aggregate"; functions: AggregateFn[] };

export type NormalizeSpec =
  | { type: "zscore"; mean: number[]; std: number[] }
  | { type: "minmax"; min: number[]; max: number[] }
  | { type: "none" };

export interface InputSpec {
  tensor: string;
  signals: string[];
  window: WindowSpec;
  features: FeatureSpec;
  normalize: NormalizeSpec;
  layout: Layout;
}

export interface OutputSpec {
  tensor: string;
  name: string;
  kind: OutputKind;
  unit?: string;
  labels?: string[];
}

export interface AlertRuleSpec {
  id: string;
  severity: string;
  /** Name of an output in `outputs`. */
  output: string;
  op: AlertOp;
  value: number;
  /** Consecutive windows the condition must hold before raising; default 1. */
  forWindows: number;
  /** Once raised, clear when the output is beyond this on the other side; default `value`. */
  clearValue: number;
}

export interface SelfTestCase {
  input: number[];
  output: number[];
  tolerance: number;
}

export interface Manifest {
  schemaVersion: 1;
  name: string;
  version: string;
  task: Task;
  description?: string;
  /** File name (relative to the package) -> SHA-256 hex of its bytes. */
  files: Record<string, string>;
  /** The ONNX file: `model` if given, else the only `.onnx` entry of `files`. */
  modelFile: string;
  input: InputSpec;
  outputs: OutputSpec[];
  alerts: AlertRuleSpec[];
  selfTest: SelfTestCase[];
  reference?: unknown;
}

/** Number of time steps in one window of this spec (count size, or sizeMs / sampleMs slots). */
export function windowSteps(window: WindowSpec): number {
  return window.type === "count" ? window.size : Math.round(window.sizeMs / window.sampleMs);
}

/** Length of the per-window feature vector before layout (signals × steps, or signals × functions). */
export function featureCount(input: InputSpec): number {
  return input.features.type === "sequence"
    ? input.signals.length * windowSteps(input.window)
    : input.signals.length * input.features.functions.length;
}

/** Expected input tensor shape without the batch dimension. */
export function inputShape(input: InputSpec): number[] {
  const c = input.signals.length;
  if (input.layout === "NF") return [featureCount(input)];
  const t = windowSteps(input.window);
  return input.layout === "NTC" ? [t, c] : [c, t];
}
