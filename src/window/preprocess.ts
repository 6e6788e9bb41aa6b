/**
 * Preprocessing: one emitted window -> one batch item of the model's input tensor (contract §4).
 *
 * Input: the model's `InputSpec` and `matrix[signalIndex][step]` (signals in `input.signals`
 * order, `windowSteps(input.window)` steps each, oldest first).
 * Output: `featureCount(input)` float32 values, flattened in `input.layout` order. All
 * arithmetic is float64; each value is rounded to float32 only when it is stored.
 *   sequence features: each value is normalised with its signal's entry
 *     (zscore (x − mean)/std, std 0 treated as 1; minmax (x − min)/(max − min), 0 when
 *     max = min; none), then laid out
 *       NTC: time-major, index t·C + c;
 *       NCT: signal-major, index c·T + t;
 *       NF:  signal-major, index c·T + t (the same order as NCT, flattened).
 *   aggregate features: for each signal, each function in `functions` order (index c·F + j),
 *     each feature normalised with its own entry (one per feature); layout must be NF.
 * Batches are assembled by concatenation: `writeInput`/`InputBuilder.write` fill an existing
 * Float32Array at an element offset, so batch item b of a batch sits at b·featureCount(input).
 * Failure: an inconsistent spec throws `PackageError` (when the builder is made); a matrix of
 * the wrong shape or an out-of-range offset throws `VigilError` (programming errors, never
 * data errors: windows always have the spec's shape).
 */

import { PackageError, VigilError } from "../errors.js";
import {
  featureCount,
  inputShape,
  windowSteps,
  type AggregateFn,
  type InputSpec,
  type NormalizeSpec,
} from "../models/manifest-types.js";
import { AGGREGATE_TABLE, isAggregateFn, summarize } from "./features.js";

/** Normalises value `x` with entry `k` of `spec` (float64). */
export function normalizeValue(spec: NormalizeSpec, k: number, x: number): number {
  switch (spec.type) {
    case "none":
      return x;
    case "zscore": {
      const mean = spec.mean[k] as number;
      const std = spec.std[k] as number;
      return (x - mean) / (std === 0 ? 1 : std);
    }
    case "minmax": {
      const min = spec.min[k] as number;
      const max = spec.max[k] as number;
      return max === min ? 0 : (x - min) / (max - min);
    }
  }
}

function normalizeEntries(spec: NormalizeSpec): number | undefined {
  switch (spec.type) {
    case "none":
      return undefined;
    case "zscore":
      return spec.mean.length === spec.std.length ? spec.mean.length : -1;
    case "minmax":
      return spec.min.length === spec.max.length ? spec.min.length : -1;
  }
}

/** A validated, reusable preprocessor for one model's input spec. */
export class InputBuilder {
  /** Elements per batch item: `featureCount(input)`. */
  readonly length: number;
  /** Tensor shape without the batch dimension: `inputShape(input)`. */
  readonly shape: readonly number[];
  private readonly signalCount: number;
  private readonly steps: number;
  private readonly functions: readonly AggregateFn[] | undefined;

  constructor(private readonly input: InputSpec) {
    const c = input.signals.length;
    const t = windowSteps(input.window);
    if (c < 1) throw new PackageError("INPUT_INVALID", "input.signals is empty", { field: "input.signals" });
    if (!Number.isInteger(t) || t < 1) {
      throw new PackageError("INPUT_INVALID", `window has ${t} steps; need a positive integer`, {
        field: "input.window",
      });
    }
    let perSignalOrFeature: number;
    if (input.features.type === "aggregate") {
      const fns = input.features.functions;
      if (fns.length === 0) {
        throw new PackageError("INPUT_INVALID", "aggregate features list no function", {
          field: "input.features.functions",
        });
      }
      const unknown = fns.find((fn) => !isAggregateFn(fn));
      if (unknown !== undefined) {
        throw new PackageError("INPUT_INVALID", `unknown aggregate function "${unknown}"`, {
          field: "input.features.functions",
        });
      }
      if (input.layout !== "NF") {
        throw new PackageError("INPUT_INVALID", `aggregate features need layout NF, not ${input.layout}`, {
          field: "input.layout",
        });
      }
      this.functions = fns;
      perSignalOrFeature = c * fns.length;
    } else {
      this.functions = undefined;
      perSignalOrFeature = c;
    }
    const entries = normalizeEntries(input.normalize);
    if (entries !== undefined && entries !== perSignalOrFeature) {
      throw new PackageError(
        "INPUT_INVALID",
        `input.normalize needs ${perSignalOrFeature} entries per parameter (one per ${
          this.functions ? "feature" : "signal"
        })`,
        { field: "input.normalize" },
      );
    }
    this.signalCount = c;
    this.steps = t;
    this.length = featureCount(input);
    this.shape = inputShape(input);
  }

  /** One batch item as a new Float32Array. */
  build(matrix: readonly (readonly number[])[]): Float32Array {
    const out = new Float32Array(this.length);
    this.write(matrix, out, 0);
    return out;
  }

  /** Writes one batch item into `out` at element `offset`; returns the offset just after it. */
  write(matrix: readonly (readonly number[])[], out: Float32Array, offset: number): number {
    const c = this.signalCount;
    const t = this.steps;
    if (matrix.length !== c || matrix.some((row) => row.length !== t)) {
      throw new VigilError(
        "WINDOW_SHAPE",
        `window matrix is [${matrix.length}][${matrix.map((r) => r.length).join(",")}], expected [${c}][${t}]`,
      );
    }
    if (!Number.isInteger(offset) || offset < 0 || offset + this.length > out.length) {
      throw new VigilError(
        "INPUT_OFFSET",
        `cannot write ${this.length} values at offset ${offset} into ${out.length}`,
      );
    }
    const norm = this.input.normalize;

    if (this.functions !== undefined) {
      const fns = this.functions;
      const f = fns.length;
      for (let ci = 0; ci < c; ci++) {
        const s = summarize(matrix[ci] as readonly number[]);
        for (let j = 0; j < f; j++) {
          const k = ci * f + j;
          out[offset + k] = normalizeValue(norm, k, AGGREGATE_TABLE[fns[j] as AggregateFn](s));
        }
      }
      return offset + this.length;
    }

    const timeMajor = this.input.layout === "NTC";
    for (let ci = 0; ci < c; ci++) {
      const row = matrix[ci] as readonly number[];
      for (let ti = 0; ti < t; ti++) {
        const index = timeMajor ? ti * c + ci : ci * t + ti;
        out[offset + index] = normalizeValue(norm, ci, row[ti] as number);
      }
    }
    return offset + this.length;
  }
}

/** One batch item for `input` from `matrix[signal][step]` (see the module header). */
export function buildInput(input: InputSpec, matrix: readonly (readonly number[])[]): Float32Array {
  return new InputBuilder(input).build(matrix);
}

/** Writes one batch item into `out` at element `offset`; returns the offset just after it. */
export function writeInput(
  input: InputSpec,
  matrix: readonly (readonly number[])[],
  out: Float32Array,
  offset: number,
): number {
  return new InputBuilder(input).write(matrix, out, offset);
}
