import { describe, expect, it } from "vitest";
import { PackageError, VigilError } from "../../src/errors.js";
import type { InputSpec, Layout, NormalizeSpec } from "../../src/models/manifest-types.js";
import { InputBuilder, buildInput, normalizeValue, writeInput } from "../../src/window/preprocess.js";

// Two signals × three steps, matrix[signal][step].
const MATRIX = [
  [1, 2, 3],
  [10, 20, 40],
];

function seqSpec(layout: Layout, normalize: NormalizeSpec): InputSpec {
  return {
    tensor: "x",
    signals: ["a", "b"],
    window: { type: "count", size: 3, hop: 1 },
    features: { type: "sequence" },
    normalize,
    layout,
  };
}

const ZSCORE: NormalizeSpec = { type: "zscore", mean: [2, 20], std: [1, 0] };

describe("normalizeValue", () => {
  it("zscore, with std 0 treated as 1", () => {
    expect(normalizeValue(ZSCORE, 0, 3)).toBe(1);
    expect(normalizeValue(ZSCORE, 1, 40)).toBe(20);
    expect(normalizeValue({ type: "zscore", mean: [1], std: [4] }, 0, 0)).toBe(-0.25);
  });
  it("minmax, 0 when max = min", () => {
    const mm: NormalizeSpec = { type: "minmax", min: [1, 10], max: [3, 10] };
    expect(normalizeValue(mm, 0, 2)).toBe(0.5);
    expect(normalizeValue(mm, 0, 5)).toBe(2); // out of range is not clipped
    expect(normalizeValue(mm, 1, 123)).toBe(0);
  });
  it("none", () => {
    expect(normalizeValue({ type: "none" }, 7, -1.5)).toBe(-1.5);
  });
});

describe("sequence features", () => {
  // zscore: a → (x − 2)/1 = −1, 0, 1; b → (x − 20)/1 (std 0 → 1) = −10, 0, 20
  it("NTC is time-major: [t][c]", () => {
    expect([...buildInput(seqSpec("NTC", ZSCORE), MATRIX)]).toEqual([-1, -10, 0, 0, 1, 20]);
  });
  it("NCT is signal-major: [c][t]", () => {
    expect([...buildInput(seqSpec("NCT", ZSCORE), MATRIX)]).toEqual([-1, 0, 1, -10, 0, 20]);
  });
  it("NF with sequence flattens signal-major, like NCT", () => {
    expect([...buildInput(seqSpec("NF", ZSCORE), MATRIX)]).toEqual([-1, 0, 1, -10, 0, 20]);
  });
  it("minmax per signal", () => {
    const mm: NormalizeSpec = { type: "minmax", min: [1, 10], max: [3, 10] };
    expect([...buildInput(seqSpec("NTC", mm), MATRIX)]).toEqual([0, 0, 0.5, 0, 1, 0]);
  });
  it("none keeps the raw values", () => {
    expect([...buildInput(seqSpec("NCT", { type: "none" }), MATRIX)]).toEqual([1, 2, 3, 10, 20, 40]);
  });
  it("computes in float64 and rounds to float32 once, on store", () => {
    const spec = seqSpec("NCT", { type: "zscore", mean: [0, 0], std: [3, 1] });
    const out = buildInput(spec, [
      [1, 0.1, 0],
      [0, 0, 0],
    ]);
    expect(out).toBeInstanceOf(Float32Array);
    expect(out[0]).toBe(Math.fround(1 / 3));
    expect(out[1]).toBe(Math.fround(0.1 / 3));
  });
  it("reports length and shape", () => {
    expect(new InputBuilder(seqSpec("NTC", ZSCORE)).shape).toEqual([3, 2]);
    expect(new InputBuilder(seqSpec("NCT", ZSCORE)).shape).toEqual([2, 3]);
    const nf = new InputBuilder(seqSpec("NF", ZSCORE));
    expect([nf.length, ...nf.shape]).toEqual([6, 6]);
  });
  it("time windows have sizeMs/sampleMs steps", () => {
    const spec: InputSpec = {
      ...seqSpec("NTC", { type: "none" }),
      window: { type: "time", sizeMs: 3000, hopMs: 1000, sampleMs: 1000, fill: "previous" },
    };
    expect([...buildInput(spec, MATRIX)]).toEqual([1, 10, 2, 20, 3, 40]);
  });
});

describe("aggregate features", () => {
  const spec = (normalize: NormalizeSpec): InputSpec => ({
    tensor: "x",
    signals: ["a", "b"],
    window: { type: "count", size: 3, hop: 1 },
    features: { type: "aggregate", functions: ["mean", "max", "std"] },
    normalize,
    layout: "NF",
  });
  // a = [1, 2, 3]: mean 2, max 3, std √(2/3)
  // b = [10, 20, 40]: mean 70/3, max 40, std √((1600/9 + 100/9 + 2500/9)/3) = √(4200/27)
  it("orders features signal-major, then function order", () => {
    const out = buildInput(spec({ type: "none" }), MATRIX);
    const expected = [2, 3, Math.sqrt(2 / 3), 70 / 3, 40, Math.sqrt(4200 / 27)].map(Math.fround);
    expect([...out]).toEqual(expected);
  });
  it("normalises each feature with its own entry", () => {
    const out = buildInput(
      spec({ type: "zscore", mean: [2, 1, 0, 20, 40, 0], std: [1, 2, 0, 10, 1, 2] }),
      MATRIX,
    );
    // (2−2)/1, (3−1)/2, √(2/3)/1 (std 0 → 1), (70/3 − 20)/10, (40 − 40)/1, √(4200/27)/2
    const expected = [0, 1, Math.sqrt(2 / 3), (70 / 3 - 20) / 10, 0, Math.sqrt(4200 / 27) / 2].map(
      Math.fround,
    );
    expect([...out]).toEqual(expected);
  });
  it("requires layout NF and one normalisation entry per feature", () => {
    expect(() => new InputBuilder({ ...spec({ type: "none" }), layout: "NTC" })).toThrow(PackageError);
    expect(() => new InputBuilder(spec({ type: "zscore", mean: [0, 0], std: [1, 1] }))).toThrow(/6 entries/);
    expect(
      () => new InputBuilder({ ...spec({ type: "none" }), features: { type: "aggregate", functions: [] } }),
    ).toThrow(PackageError);
  });
});

describe("batch assembly", () => {
  it("writes batch items side by side at element offsets", () => {
    const s = seqSpec("NTC", ZSCORE);
    const batch = new Float32Array(12).fill(99);
    const next = writeInput(s, MATRIX, batch, 0);
    expect(next).toBe(6);
    const builder = new InputBuilder(s);
    expect(
      builder.write(
        [
          [2, 2, 2],
          [20, 20, 20],
        ],
        batch,
        next,
      ),
    ).toBe(12);
    expect([...batch]).toEqual([-1, -10, 0, 0, 1, 20, 0, 0, 0, 0, 0, 0]);
  });
  it("rejects a wrong matrix shape or an offset past the end", () => {
    const builder = new InputBuilder(seqSpec("NTC", ZSCORE));
    expect(() => builder.build([[1, 2, 3]])).toThrow(VigilError);
    expect(() =>
      builder.build([
        [1, 2, 3],
        [1, 2],
      ]),
    ).toThrow(/expected \[2\]\[3\]/);
    expect(() => builder.write(MATRIX, new Float32Array(8), 3)).toThrow(VigilError);
  });
  it("rejects a normalisation that does not match the signals", () => {
    expect(() => new InputBuilder(seqSpec("NTC", { type: "zscore", mean: [0], std: [1] }))).toThrow(
      PackageError,
    );
    expect(() => new InputBuilder(seqSpec("NTC", { type: "minmax", min: [0, 0], max: [1] }))).toThrow(
      PackageError,
    );
  });
});
