import { describe, expect, it } from "vitest";

import { PackageError } from "../../src/errors.js";
import {
  DEFAULT_SELF_TEST_TOLERANCE,
  MANIFEST_LIMITS,
  MAX_ITEM_ERRORS,
  formatManifestErrors,
  manifestError,
  validateManifest,
} from "../../src/models/manifest.js";
import type { ManifestIssue } from "../../src/models/manifest.js";
import type { Manifest } from "../../src/models/manifest-types.js";

const SHA_A = "a".repeat(64);
const SHA_B = "0123456789abcdef".repeat(4);

type Json = Record<string, unknown>;

/** A complete, valid manifest: count window 3 rows, 2 signals, sequence, NTC, zscore. */
function base(): Json {
  return {
    schemaVersion: 1,
    name: "turbofan-rul",
    version: "1.3.0",
    task: "regression",
    files: { "model.onnx": SHA_A },
    input: {
      tensor: "input",
      signals: ["s2", "s3"],
      window: { type: "count", size: 3, hop: 1 },
      features: { type: "sequence" },
      normalize: { type: "zscore", mean: [642, 1590], std: [0.5, 6] },
      layout: "NTC",
    },
    outputs: [{ tensor: "rul", name: "rul", kind: "rul", unit: "cycles" }],
    alerts: [{ id: "rul-low", severity: "warning", output: "rul", op: "<", value: 30, clearValue: 40 }],
    selfTest: [{ input: [0, 0, 0, 0, 0, 0], output: [112.5], tolerance: 0.01 }],
  };
}

function input(m: Json): Json {
  return m.input as Json;
}
function at(m: Json, key: "outputs" | "alerts" | "selfTest", i: number): Json {
  return (m[key] as Json[])[i] as Json;
}

/** `base()` changed by `edit`. */
function variant(edit: (m: Json) => void): Json {
  const m = base();
  edit(m);
  return m;
}

function valid(json: unknown): Manifest {
  const r = validateManifest(json);
  if (!r.ok) throw new Error(`expected valid, got:\n${formatManifestErrors(r.errors)}`);
  return r.manifest;
}

function errors(json: unknown): ManifestIssue[] {
  const r = validateManifest(json);
  if (r.ok) throw new Error("expected errors, manifest was valid");
  return r.errors;
}

function fields(json: unknown): string[] {
  return errors(json).map((e) => e.field);
}

/** Exactly one error, at `field`; returns its message. */
function onlyError(json: unknown, field: string): string {
  const errs = errors(json);
  expect(errs.map((e) => e.field)).toEqual([field]);
  return (errs[0] as ManifestIssue).message;
}

describe("validateManifest: valid manifests", () => {
  it("accepts the base manifest and returns it with defaults applied", () => {
    const m = valid(base());
    expect(m).toEqual({
      schemaVersion: 1,
      name: "turbofan-rul",
      version: "1.3.0",
      task: "regression",
      files: { "model.onnx": SHA_A },
      modelFile: "model.onnx",
      input: {
        tensor: "input",
        signals: ["s2", "s3"],
        window: { type: "count", size: 3, hop: 1 },
        features: { type: "sequence" },
        normalize: { type: "zscore", mean: [642, 1590], std: [0.5, 6] },
        layout: "NTC",
      },
      outputs: [{ tensor: "rul", name: "rul", kind: "rul", unit: "cycles" }],
      alerts: [
        {
          id: "rul-low",
          severity: "warning",
          output: "rul",
          op: "<",
          value: 30,
          forWindows: 1,
          clearValue: 40,
        },
      ],
      selfTest: [{ input: [0, 0, 0, 0, 0, 0], output: [112.5], tolerance: 0.01 }],
    });
  });

  const windows = {
    count: { window: { type: "count", size: 4, hop: 2 }, steps: 4 },
    time: {
      window: { type: "time", sizeMs: 5000, hopMs: 1000, sampleMs: 1000, fill: "linear" },
      steps: 5,
    },
  } as const;
  const combos: { win: keyof typeof windows; features: "sequence" | "aggregate"; layout: string }[] = [];
  for (const win of ["count", "time"] as const) {
    for (const layout of ["NTC", "NCT", "NF"]) combos.push({ win, features: "sequence", layout });
    combos.push({ win, features: "aggregate", layout: "NF" });
  }

  it.each(combos)("accepts $win window, $features features, $layout layout", ({ win, features, layout }) => {
    const signals = ["s2", "s3", "s4"];
    const functions = ["mean", "std", "slope"];
    const steps = windows[win].steps;
    const perRow = features === "sequence" ? signals.length : signals.length * functions.length;
    const tensorLength = features === "sequence" ? signals.length * steps : perRow;
    const m = variant((j) => {
      j.input = {
        tensor: "x",
        signals,
        window: windows[win].window,
        features: features === "sequence" ? { type: "sequence" } : { type: "aggregate", functions },
        normalize: { type: "minmax", min: Array(perRow).fill(0), max: Array(perRow).fill(10) },
        layout,
      };
      j.selfTest = [{ input: Array(tensorLength).fill(0.5), output: [1] }];
    });
    const out = valid(m);
    expect(out.input.window).toEqual(windows[win].window);
    expect(out.input.layout).toBe(layout);
    expect(out.selfTest[0]?.input).toHaveLength(tensorLength);
  });

  it("applies defaults: hop 1, fill previous, forWindows 1, clearValue = value, tolerance 1e-4", () => {
    const m = valid(
      variant((j) => {
        input(j).window = { type: "count", size: 3 };
        j.alerts = [{ id: "hot", severity: "critical", output: "rul", op: ">", value: 5 }];
        j.selfTest = [{ input: [1, 2, 3, 4, 5, 6], output: [0] }];
      }),
    );
    expect(m.input.window).toEqual({ type: "count", size: 3, hop: 1 });
    expect(m.alerts[0]).toMatchObject({ forWindows: 1, clearValue: 5 });
    expect(m.selfTest[0]?.tolerance).toBe(DEFAULT_SELF_TEST_TOLERANCE);
    expect(DEFAULT_SELF_TEST_TOLERANCE).toBe(1e-4);

    const t = valid(
      variant((j) => {
        input(j).window = { type: "time", sizeMs: 3000, hopMs: 1000, sampleMs: 1000 };
      }),
    );
    expect(t.input.window).toEqual({
      type: "time",
      sizeMs: 3000,
      hopMs: 1000,
      sampleMs: 1000,
      fill: "previous",
    });
  });

  it("defaults alerts and selfTest to empty lists and allows an empty selfTest", () => {
    const m = valid(
      variant((j) => {
        delete j.alerts;
        delete j.selfTest;
      }),
    );
    expect(m.alerts).toEqual([]);
    expect(m.selfTest).toEqual([]);
    expect(valid(variant((j) => (j.selfTest = []))).selfTest).toEqual([]);
  });

  it("allows and drops unknown top-level fields; keeps description and reference", () => {
    const reference = { mean: [1, 2], anything: { nested: true } };
    const m = valid(
      variant((j) => {
        j.license = "Apache-2.0";
        j.training = { epochs: 10 };
        j.description = "RUL for turbofans";
        j.reference = reference;
      }),
    );
    expect("license" in m).toBe(false);
    expect(m.description).toBe("RUL for turbofans");
    expect(m.reference).toEqual(reference);
  });

  it("uses an explicit model among several files, and normalize none", () => {
    const m = valid(
      variant((j) => {
        j.files = { "a.onnx": SHA_A, "b.onnx": SHA_B, "docs/README.md": SHA_A };
        j.model = "b.onnx";
        input(j).normalize = { type: "none" };
      }),
    );
    expect(m.modelFile).toBe("b.onnx");
    expect(m.files).toEqual({ "a.onnx": SHA_A, "b.onnx": SHA_B, "docs/README.md": SHA_A });
  });

  it("finds the only .onnx file case-insensitively", () => {
    const m = valid(variant((j) => (j.files = { "Model.ONNX": SHA_A, "labels.txt": SHA_B })));
    expect(m.modelFile).toBe("Model.ONNX");
  });

  it("accepts semver with prerelease and build, and class outputs with labels", () => {
    const m = valid(
      variant((j) => {
        j.version = "2.0.0-rc.1+build.7";
        j.task = "classification";
        j.outputs = [
          { tensor: "rul", name: "rul", kind: "rul" },
          { tensor: "fault", name: "fault", kind: "class", labels: ["ok", "bearing", "imbalance"] },
        ];
        at(j, "selfTest", 0).output = [112.5, 0.9, 0.05, 0.05];
      }),
    );
    expect(m.version).toBe("2.0.0-rc.1+build.7");
    expect(m.outputs[1]?.labels).toEqual(["ok", "bearing", "imbalance"]);
  });

  it("allows max = min and std = 0 (handled at run time)", () => {
    valid(variant((j) => (input(j).normalize = { type: "minmax", min: [1, 2], max: [1, 3] })));
    valid(variant((j) => (input(j).normalize = { type: "zscore", mean: [1, 2], std: [0, 0] })));
  });

  it("does not let a __proto__ file name touch the prototype", () => {
    const m = valid(
      variant((j) => {
        j.files = JSON.parse(`{"model.onnx":"${SHA_A}","__proto__":"${SHA_B}"}`) as unknown;
      }),
    );
    expect(Object.keys(m.files)).toEqual(["model.onnx", "__proto__"]);
    expect(Object.getPrototypeOf(m.files)).toBe(Object.prototype);
  });
});

describe("validateManifest: one rule, one field path", () => {
  it("schemaVersion must be 1", () => {
    expect(
      onlyError(
        variant((j) => (j.schemaVersion = 2)),
        "schemaVersion",
      ),
    ).toBe("must be 1, got 2");
    expect(
      onlyError(
        variant((j) => (j.schemaVersion = "1")),
        "schemaVersion",
      ),
    ).toBe('must be 1, got "1"');
    onlyError(
      variant((j) => delete j.schemaVersion),
      "schemaVersion",
    );
  });

  it.each(["", "Turbofan", "-rul", ".hidden", "a b", "rul/1", "x".repeat(65)])(
    "name %j is rejected",
    (name) => {
      onlyError(
        variant((j) => (j.name = name)),
        "name",
      );
    },
  );

  it("name may be 64 characters and use . _ -", () => {
    valid(variant((j) => (j.name = "a".repeat(64))));
    valid(variant((j) => (j.name = "0.rul_v2-x")));
  });

  it.each(["1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0-01", "1.0.0+", "1.0.0.0", "99999999999999999.0.0"])(
    "version %j is rejected",
    (version) => {
      onlyError(
        variant((j) => (j.version = version)),
        "version",
      );
    },
  );

  it("task must be a known one", () => {
    expect(
      onlyError(
        variant((j) => (j.task = "forecast")),
        "task",
      ),
    ).toBe('must be one of "regression", "classification", "anomaly", got "forecast"');
  });

  it("files must be an object with at least one entry", () => {
    expect(
      onlyError(
        variant((j) => (j.files = ["model.onnx"])),
        "files",
      ),
    ).toBe("must be an object, got an array of 1");
    onlyError(
      variant((j) => (j.files = {})),
      "files",
    );
  });

  it.each([
    ["/abs/model.onnx", "file name must be relative (no leading /)"],
    ["../model.onnx", "file name must not contain .. segments"],
    ["a/../../model.onnx", "file name must not contain .. segments"],
    ["dir\\model.onnx", "file name must use / as separator, not \\"],
    ["./model.onnx", "file name must not contain . segments"],
    ["a//model.onnx", "file name must not contain empty segments (// or a trailing /)"],
    ["model\u0000.onnx", "file name must not contain control characters"],
    ["", "file name must not be empty"],
  ])("file name %j is rejected", (name, message) => {
    const errs = errors(
      variant((j) => {
        j.files = { "model.onnx": SHA_A, [name]: SHA_B };
        j.model = "model.onnx";
      }),
    );
    expect(errs).toEqual([{ field: `files[${JSON.stringify(name)}]`, message }]);
  });

  it("manifest.json and manifest.sig may not be listed", () => {
    expect(fields(variant((j) => (j.files = { "model.onnx": SHA_A, "manifest.json": SHA_B })))).toEqual([
      'files["manifest.json"]',
    ]);
    expect(fields(variant((j) => (j.files = { "model.onnx": SHA_A, "manifest.sig": SHA_B })))).toEqual([
      'files["manifest.sig"]',
    ]);
  });

  it.each([SHA_A.toUpperCase(), "abc", SHA_A + "0", 42])("hash %j is rejected", (hash) => {
    expect(
      onlyError(
        variant((j) => (j.files = { "model.onnx": hash })),
        'files["model.onnx"]',
      ),
    ).toMatch(/^must be the file's SHA-256 as 64 lowercase hex digits, got /);
  });

  it("model must be a key of files", () => {
    expect(
      onlyError(
        variant((j) => (j.model = "other.onnx")),
        "model",
      ),
    ).toBe('must be a key of files, got "other.onnx"');
    onlyError(
      variant((j) => (j.model = 3)),
      "model",
    );
  });

  it("without model, files needs exactly one .onnx entry", () => {
    expect(
      onlyError(
        variant((j) => (j.files = { "model.bin": SHA_A })),
        "files",
      ),
    ).toBe("must list the ONNX model: no file name ends in .onnx (or set model)");
    expect(
      onlyError(
        variant((j) => (j.files = { "a.onnx": SHA_A, "b.onnx": SHA_B })),
        "model",
      ),
    ).toBe("is required when files lists 2 .onnx files (a.onnx, b.onnx); name the one to serve");
  });

  it("input must be an object", () => {
    expect(
      onlyError(
        variant((j) => (j.input = null)),
        "input",
      ),
    ).toBe("must be an object, got null");
    expect(
      onlyError(
        variant((j) => delete j.input),
        "input",
      ),
    ).toBe("is required");
  });

  it("input.tensor must be a non-empty string", () => {
    expect(
      onlyError(
        variant((j) => (input(j).tensor = "")),
        "input.tensor",
      ),
    ).toBe("must be a non-empty string");
    onlyError(
      variant((j) => (input(j).tensor = 1)),
      "input.tensor",
    );
  });

  it("input.signals must be a non-empty array", () => {
    expect(
      onlyError(
        variant((j) => (input(j).signals = [])),
        "input.signals",
      ),
    ).toBe("must have at least 1 entry, got 0");
    // With no signal count the normalize lengths cannot be checked, so that is the only error.
    onlyError(
      variant((j) => (input(j).signals = "s2")),
      "input.signals",
    );
  });

  it("input.signals must be unique", () => {
    expect(
      onlyError(
        variant((j) => (input(j).signals = ["s2", "s2"])),
        "input.signals[1]",
      ),
    ).toBe('duplicates input.signals[0] "s2"');
  });

  it.each(["", "a+b", "a#b", "plant/s2", "s\n2", "x".repeat(129), 7])(
    "signal name %j is rejected",
    (name) => {
      onlyError(
        variant((j) => (input(j).signals = ["s2", name])),
        "input.signals[1]",
      );
    },
  );

  it("signal names may be 128 characters with spaces and unicode", () => {
    valid(variant((j) => (input(j).signals = ["x".repeat(128), "température °C"])));
  });

  it("input.window.type must be count or time", () => {
    onlyError(
      variant((j) => (input(j).window = { type: "session", size: 3 })),
      "input.window.type",
    );
    onlyError(
      variant((j) => (input(j).window = { size: 3 })),
      "input.window.type",
    );
  });

  it.each([
    [{ type: "count", size: 0 }, "input.window.size", "must be a positive integer, got 0"],
    [{ type: "count", size: -3 }, "input.window.size", "must be a positive integer, got -3"],
    [{ type: "count", size: 2.5 }, "input.window.size", "must be a positive integer, got 2.5"],
    [{ type: "count", size: "3" }, "input.window.size", 'must be a positive integer, got "3"'],
    [{ type: "count" }, "input.window.size", "is required"],
    [{ type: "count", size: 100_001 }, "input.window.size", "must be at most 100000, got 100001"],
    [{ type: "count", size: 3, hop: 0 }, "input.window.hop", "must be a positive integer, got 0"],
  ])("count window %j", (window, field, message) => {
    const m = variant((j) => {
      input(j).window = window;
      delete j.selfTest;
    });
    expect(errors(m)).toEqual([{ field, message }]);
  });

  it.each([
    [{ sizeMs: 3000, hopMs: -1, sampleMs: 1000 }, "input.window.hopMs", "must be a positive integer, got -1"],
    [{ sizeMs: 3000, sampleMs: 1000 }, "input.window.hopMs", "is required"],
    [{ sizeMs: 0, hopMs: 1000, sampleMs: 1000 }, "input.window.sizeMs", "must be a positive integer, got 0"],
    [
      { sizeMs: 3000, hopMs: 1000, sampleMs: 0.5 },
      "input.window.sampleMs",
      "must be a positive integer, got 0.5",
    ],
    [
      { sizeMs: 3500, hopMs: 1000, sampleMs: 1000 },
      "input.window.sizeMs",
      "must be a multiple of sampleMs (1000), got 3500",
    ],
    [
      { sizeMs: 500, hopMs: 1000, sampleMs: 1000 },
      "input.window.sizeMs",
      "must be a multiple of sampleMs (1000), got 500",
    ],
    [
      { sizeMs: 3000, hopMs: 1000, sampleMs: 1000, fill: "zero" },
      "input.window.fill",
      'must be one of "previous", "linear", got "zero"',
    ],
    [
      { sizeMs: 200_001, hopMs: 1000, sampleMs: 1 },
      "input.window.sizeMs",
      "gives 200001 steps of sampleMs 1; at most 100000 steps per window",
    ],
    [
      { sizeMs: 32 * 86_400_000, hopMs: 1000, sampleMs: 86_400_000 },
      "input.window.sizeMs",
      "must be at most 2678400000, got 2764800000",
    ],
  ])("time window %j", (window, field, message) => {
    const m = variant((j) => {
      input(j).window = { type: "time", ...window };
      delete j.selfTest;
    });
    expect(errors(m)).toEqual([{ field, message }]);
  });

  it("unknown fields inside input and window are errors", () => {
    expect(
      fields(
        variant((j) => {
          input(j).windw = {};
          input(j).window = { type: "count", size: 3, hop_rows: 2 };
        }),
      ),
    ).toEqual(["input.windw", "input.window.hop_rows"]);
    expect(
      onlyError(
        variant(
          (j) => (input(j).window = { type: "time", sizeMs: 3000, hopMs: 1000, sampleMs: 1000, size: 3 }),
        ),
        "input.window.size",
      ),
    ).toBe("is not a known field (expected: type, sizeMs, hopMs, sampleMs, fill)");
  });

  it("bounds signals × steps per window", () => {
    const signals = Array.from({ length: 20 }, (_, i) => `s${i}`);
    const m = variant((j) => {
      input(j).signals = signals;
      input(j).window = { type: "count", size: 60_000 };
      input(j).normalize = { type: "none" };
      delete j.selfTest;
    });
    expect(errors(m)).toEqual([
      {
        field: "input.window",
        message: "holds 20 signals × 60000 steps = 1200000 values per window; at most 1000000",
      },
    ]);
  });

  it("input.features type and functions", () => {
    onlyError(
      variant((j) => (input(j).features = { type: "fft" })),
      "input.features.type",
    );
    const agg = (functions: unknown): Json =>
      variant((j) => {
        input(j).features = { type: "aggregate", functions };
        input(j).layout = "NF";
        input(j).normalize = { type: "none" };
        delete j.selfTest;
      });
    expect(onlyError(agg([]), "input.features.functions")).toBe("must have at least 1 entry, got 0");
    onlyError(agg(undefined), "input.features.functions");
    expect(onlyError(agg(["mean", "median"]), "input.features.functions[1]")).toMatch(
      /^must be one of "mean", "std", .*, got "median"$/,
    );
    expect(onlyError(agg(["mean", "std", "mean"]), "input.features.functions[2]")).toBe(
      'duplicates input.features.functions[0] "mean"',
    );
    valid(agg(["mean", "std", "min", "max", "rms", "slope", "p2p", "kurtosis", "skew", "crest"]));
  });

  it("sequence features take no functions", () => {
    onlyError(
      variant((j) => (input(j).features = { type: "sequence", functions: ["mean"] })),
      "input.features.functions",
    );
  });

  it("aggregate features require layout NF", () => {
    const m = variant((j) => {
      input(j).features = { type: "aggregate", functions: ["mean"] };
      input(j).layout = "NTC";
    });
    expect(errors(m)).toEqual([
      { field: "input.layout", message: 'must be "NF" for aggregate features, got "NTC"' },
    ]);
  });

  it("input.layout must be known", () => {
    onlyError(
      variant((j) => (input(j).layout = "NHWC")),
      "input.layout",
    );
  });

  it("normalize arrays: one entry per signal for sequence features", () => {
    expect(
      onlyError(
        variant((j) => (input(j).normalize = { type: "zscore", mean: [1], std: [1, 1] })),
        "input.normalize.mean",
      ),
    ).toBe("must have 2 entries (one per signal), got 1");
  });

  it("normalize arrays: one entry per feature for aggregate features", () => {
    const m = variant((j) => {
      input(j).features = { type: "aggregate", functions: ["mean", "std", "max"] };
      input(j).layout = "NF";
      input(j).normalize = { type: "minmax", min: [0, 0], max: [1, 1, 1, 1, 1, 1] };
      delete j.selfTest;
    });
    expect(errors(m)).toEqual([
      {
        field: "input.normalize.min",
        message: "must have 6 entries (one per feature: 2 signals × 3 functions), got 2",
      },
    ]);
  });

  it("normalize values must be finite numbers, std ≥ 0", () => {
    expect(
      errors(variant((j) => (input(j).normalize = { type: "zscore", mean: [1, "2"], std: [1, -1] }))),
    ).toEqual([
      { field: "input.normalize.mean[1]", message: 'must be a finite number, got "2"' },
      { field: "input.normalize.std[1]", message: "must be ≥ 0, got -1" },
    ]);
    onlyError(
      variant((j) => (input(j).normalize = { type: "zscore", mean: [1, null], std: [1, 1] })),
      "input.normalize.mean[1]",
    );
  });

  it("minmax: max < min is an error", () => {
    expect(
      onlyError(
        variant((j) => (input(j).normalize = { type: "minmax", min: [0, 5], max: [1, 4] })),
        "input.normalize.max[1]",
      ),
    ).toBe("must be ≥ min[1] (5), got 4");
  });

  it("normalize: type known, fields per type", () => {
    onlyError(
      variant((j) => (input(j).normalize = { type: "robust" })),
      "input.normalize.type",
    );
    onlyError(
      variant((j) => (input(j).normalize = { type: "none", mean: [0, 0] })),
      "input.normalize.mean",
    );
    onlyError(
      variant((j) => (input(j).normalize = { type: "zscore", mean: [0, 0] })),
      "input.normalize.std",
    );
  });

  it("outputs must be a non-empty array", () => {
    onlyError(
      variant((j) => {
        j.outputs = [];
        j.alerts = [];
      }),
      "outputs",
    );
  });

  it("outputs[i] fields: tensor, name, kind", () => {
    const m = variant((j) => {
      j.outputs = [
        { tensor: "rul", name: "rul", kind: "rul" },
        { tensor: "", name: "a/b", kind: "probabilty" },
      ];
    });
    expect(fields(m)).toEqual(["outputs[1].tensor", "outputs[1].name", "outputs[1].kind"]);
  });

  it("output names are unique and two outputs may not share a tensor", () => {
    const m = variant((j) => {
      j.outputs = [
        { tensor: "rul", name: "rul", kind: "rul" },
        { tensor: "rul", name: "health", kind: "score" },
        { tensor: "h", name: "rul", kind: "score" },
      ];
    });
    expect(errors(m)).toEqual([
      { field: "outputs[1].tensor", message: 'duplicates outputs[0].tensor "rul"' },
      { field: "outputs[2].name", message: 'duplicates outputs[0].name "rul"' },
    ]);
  });

  it("labels only for class, non-empty and unique", () => {
    const withOutput = (o: Json): Json =>
      variant((j) => {
        j.outputs = [{ tensor: "rul", name: "rul", kind: "rul" }, o];
        at(j, "selfTest", 0).output = [112.5, 1];
      });
    expect(
      onlyError(
        withOutput({ tensor: "p", name: "p", kind: "probability", labels: ["a"] }),
        "outputs[1].labels",
      ),
    ).toBe('is only allowed for kind "class", got kind "probability"');
    onlyError(withOutput({ tensor: "c", name: "c", kind: "class", labels: [] }), "outputs[1].labels");
    expect(
      onlyError(
        withOutput({ tensor: "c", name: "c", kind: "class", labels: ["a", "a"] }),
        "outputs[1].labels[1]",
      ),
    ).toBe('duplicates outputs[1].labels[0] "a"');
    onlyError(
      withOutput({ tensor: "c", name: "c", kind: "class", labels: ["a", ""] }),
      "outputs[1].labels[1]",
    );
    valid(withOutput({ tensor: "c", name: "c", kind: "class" }));
  });

  it("unknown output fields are errors; unit must be a string", () => {
    expect(
      fields(
        variant((j) => (j.outputs = [{ tensor: "rul", name: "rul", kind: "rul", units: "h", unit: 1 }])),
      ),
    ).toEqual(["outputs[0].units", "outputs[0].unit"]);
  });

  it("alert ids are unique", () => {
    const m = variant((j) => {
      j.alerts = [
        { id: "a", severity: "info", output: "rul", op: "<", value: 30 },
        { id: "a", severity: "info", output: "rul", op: "<", value: 20 },
      ];
    });
    expect(errors(m)).toEqual([{ field: "alerts[1].id", message: 'duplicates alerts[0].id "a"' }]);
  });

  it("alert severity is a short non-empty string", () => {
    onlyError(
      variant((j) => (at(j, "alerts", 0).severity = "")),
      "alerts[0].severity",
    );
    onlyError(
      variant((j) => (at(j, "alerts", 0).severity = "x".repeat(33))),
      "alerts[0].severity",
    );
    onlyError(
      variant((j) => (at(j, "alerts", 0).severity = 3)),
      "alerts[0].severity",
    );
    valid(variant((j) => (at(j, "alerts", 0).severity = "page-the-night-shift")));
  });

  it("alert output must name an output", () => {
    expect(
      onlyError(
        variant((j) => (at(j, "alerts", 0).output = "health")),
        "alerts[0].output",
      ),
    ).toBe('must name an output ("rul"), got "health"');
  });

  it("alert output may not be a class output with labels", () => {
    const m = variant((j) => {
      j.outputs = [
        { tensor: "rul", name: "rul", kind: "rul" },
        { tensor: "c", name: "fault", kind: "class", labels: ["ok", "bad"] },
      ];
      at(j, "alerts", 0).output = "fault";
      delete j.selfTest;
    });
    expect(errors(m)).toEqual([
      {
        field: "alerts[0].output",
        message: 'names "fault", a class output with labels whose value is a label, not a number',
      },
    ]);
  });

  it("alert op, value, forWindows", () => {
    onlyError(
      variant((j) => (at(j, "alerts", 0).op = "==")),
      "alerts[0].op",
    );
    expect(
      onlyError(
        variant((j) => (at(j, "alerts", 0).value = "30")),
        "alerts[0].value",
      ),
    ).toBe('must be a finite number, got "30"');
    onlyError(
      variant((j) => delete at(j, "alerts", 0).value),
      "alerts[0].value",
    );
    expect(
      onlyError(
        variant((j) => (at(j, "alerts", 0).forWindows = 0)),
        "alerts[0].forWindows",
      ),
    ).toBe("must be a positive integer, got 0");
    onlyError(
      variant((j) => (at(j, "alerts", 0).forWindows = 1.5)),
      "alerts[0].forWindows",
    );
  });

  it("clearValue must be finite and on the clearing side", () => {
    const rule = (op: string, value: number, clearValue: unknown): Json =>
      variant((j) => (j.alerts = [{ id: "r", severity: "info", output: "rul", op, value, clearValue }]));
    expect(onlyError(rule(">", 10, 11), "alerts[0].clearValue")).toBe(
      'must be ≤ value (10) for op ">", got 11',
    );
    expect(onlyError(rule(">=", 10, 11), "alerts[0].clearValue")).toBe(
      'must be ≤ value (10) for op ">=", got 11',
    );
    expect(onlyError(rule("<", 10, 9), "alerts[0].clearValue")).toBe(
      'must be ≥ value (10) for op "<", got 9',
    );
    expect(onlyError(rule("<=", 10, 9), "alerts[0].clearValue")).toBe(
      'must be ≥ value (10) for op "<=", got 9',
    );
    onlyError(rule(">", 10, null), "alerts[0].clearValue");
    valid(rule(">", 10, 10));
    valid(rule(">", 10, 8));
    valid(rule("<=", 10, 12));
  });

  it("unknown alert fields are errors (a typo must not fall back to a default)", () => {
    expect(
      onlyError(
        variant((j) => (at(j, "alerts", 0).forWindow = 3)),
        "alerts[0].forWindow",
      ),
    ).toBe("is not a known field (expected: id, severity, output, op, value, forWindows, clearValue)");
  });

  it("selfTest input length is the product of the input shape", () => {
    expect(
      onlyError(
        variant((j) => (at(j, "selfTest", 0).input = [0, 0, 0])),
        "selfTest[0].input",
      ),
    ).toBe("must have 6 entries (input shape [3, 2] in layout NTC), got 3");
  });

  it("selfTest values must be finite; output needs one value per output", () => {
    const m = variant((j) => {
      at(j, "selfTest", 0).input = [0, 0, "x", 0, 0, 0];
      at(j, "selfTest", 0).output = [];
    });
    expect(errors(m)).toEqual([
      { field: "selfTest[0].input[2]", message: 'must be a finite number, got "x"' },
      {
        field: "selfTest[0].output",
        message: "must have at least 1 entries (at least one value per output), got 0",
      },
    ]);
  });

  it("selfTest tolerance must be finite and ≥ 0", () => {
    expect(
      onlyError(
        variant((j) => (at(j, "selfTest", 0).tolerance = -0.1)),
        "selfTest[0].tolerance",
      ),
    ).toBe("must be ≥ 0, got -0.1");
    onlyError(
      variant((j) => (at(j, "selfTest", 0).tolerance = "1e-3")),
      "selfTest[0].tolerance",
    );
  });

  it("selfTest and alerts must be arrays when present", () => {
    expect(
      fields(
        variant((j) => {
          j.selfTest = {};
          j.alerts = "none";
        }),
      ),
    ).toEqual(["alerts", "selfTest"]);
  });
});

describe("validateManifest: many problems at once", () => {
  it("reports every problem in one pass", () => {
    const m = variant((j) => {
      j.schemaVersion = 3;
      j.version = "1.0";
      input(j).window = { type: "time", sizeMs: 3000, hopMs: 0, sampleMs: 1000 };
      input(j).signals = ["s2", "s2"];
      j.outputs = [{ tensor: "rul", name: "rul", kind: "rul" }, { tensor: "y" }];
      at(j, "alerts", 0).op = "=";
    });
    expect(fields(m)).toEqual([
      "schemaVersion",
      "version",
      "input.signals[1]",
      "input.window.hopMs",
      "outputs[1].name",
      "outputs[1].kind",
      "alerts[0].op",
    ]);
  });

  it("formats one line per error and wraps them in a PackageError", () => {
    const errs = errors(
      variant((j) => {
        j.name = "";
        input(j).tensor = 3;
      }),
    );
    expect(formatManifestErrors(errs)).toBe(
      "name: must be a non-empty string\ninput.tensor: must be a string, got 3",
    );
    expect(formatManifestErrors([{ field: "", message: "must be a JSON object, got null" }])).toBe(
      "manifest: must be a JSON object, got null",
    );
    const e = manifestError(errs);
    expect(e).toBeInstanceOf(PackageError);
    expect(e.code).toBe("MANIFEST_INVALID");
    expect(e.field).toBe("name");
    expect(e.message).toContain("input.tensor: must be a string, got 3");
  });
});

describe("validateManifest: hostile input", () => {
  it.each([
    [null, "null"],
    [undefined, "nothing"],
    [[], "an array of 0"],
    ["manifest", '"manifest"'],
    [42, "42"],
    [true, "true"],
  ])("rejects %j at the root", (json, got) => {
    expect(errors(json)).toEqual([{ field: "", message: `must be a JSON object, got ${got}` }]);
  });

  it("reports every missing required field of an empty object", () => {
    expect(fields({})).toEqual(["schemaVersion", "name", "version", "task", "files", "input", "outputs"]);
  });

  it("does not walk a list longer than its limit", () => {
    const huge = Array.from({ length: 1_000_000 }, () => "s");
    expect(errors(variant((j) => (input(j).signals = huge)))).toEqual([
      {
        field: "input.signals",
        message: `must have at most ${MANIFEST_LIMITS.signals} entries, got 1000000`,
      },
    ]);
  });

  it("rejects a 1e6-long self-test input of a 6-value model: length error, capped element errors", () => {
    const errs = errors(variant((j) => (at(j, "selfTest", 0).input = new Array(1_000_000).fill("x"))));
    expect(errs).toHaveLength(1 + MAX_ITEM_ERRORS + 1);
    expect(errs[0]).toEqual({
      field: "selfTest[0].input",
      message: "must have 6 entries (input shape [3, 2] in layout NTC), got 1000000",
    });
    expect(errs[1]).toEqual({ field: "selfTest[0].input[0]", message: 'must be a finite number, got "x"' });
    expect(errs[MAX_ITEM_ERRORS + 1]).toEqual({
      field: "selfTest[0].input",
      message: "has 999995 more invalid entries (not listed)",
    });
  });

  it("does not walk a self-test input over the window-values limit", () => {
    const errs = errors(variant((j) => (at(j, "selfTest", 0).input = new Array(1_000_001).fill("x"))));
    expect(errs).toHaveLength(1);
  });

  it("rejects a 2e6-long normalize array without walking it", () => {
    const m = variant((j) => (input(j).normalize = { type: "none" }));
    input(m).normalize = { type: "zscore", mean: new Array(2_000_000).fill(0), std: [1, 1] };
    expect(errors(m)).toEqual([
      { field: "input.normalize.mean", message: "must have 2 entries (one per signal), got 2000000" },
    ]);
  });

  it("caps per-element errors and summarises the rest", () => {
    const bad = new Array(6).fill(Number.NaN);
    const errs = errors(variant((j) => (at(j, "selfTest", 0).input = bad)));
    expect(errs).toHaveLength(MAX_ITEM_ERRORS + 1);
    expect(errs[MAX_ITEM_ERRORS]).toEqual({
      field: "selfTest[0].input",
      message: "has 1 more invalid entries (not listed)",
    });
  });

  it("caps unknown-key errors of one object", () => {
    const junk = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, i]));
    const errs = errors(variant((j) => Object.assign(input(j), junk)));
    expect(errs).toHaveLength(MAX_ITEM_ERRORS + 1);
    expect(errs[MAX_ITEM_ERRORS]).toEqual({
      field: "input",
      message: "has 9995 more unknown fields (not listed)",
    });
  });

  it("rejects too many files, outputs, alerts and self-tests by count", () => {
    const files = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`f${i}.bin`, SHA_A]));
    expect(fields(variant((j) => (j.files = files)))).toEqual(["files"]);
    expect(
      fields(
        variant((j) => {
          j.alerts = new Array(1000).fill(at(j, "alerts", 0));
          j.selfTest = new Array(1000).fill(at(j, "selfTest", 0));
        }),
      ),
    ).toEqual(["alerts", "selfTest"]);
  });

  it("reads own fields only: a parsed __proto__ key is not the manifest", () => {
    const parsed: unknown = JSON.parse('{"__proto__": {"schemaVersion": 1, "name": "x"}}');
    expect(fields(parsed)).toEqual(["schemaVersion", "name", "version", "task", "files", "input", "outputs"]);
  });

  it("never throws on deeply wrong shapes", () => {
    const shapes: unknown[] = [
      { input: [], outputs: {}, alerts: [null, 1, "x"], selfTest: [[], null], files: null },
      { input: { window: [], features: "x", normalize: 1, signals: [null, {}] }, outputs: [null, []] },
      { input: { window: { type: "time", sizeMs: Infinity, hopMs: NaN, sampleMs: -0 } } },
    ];
    for (const s of shapes) expect(() => validateManifest(s)).not.toThrow();
    expect(fields(shapes[1])).toContain("input.signals[0]");
    expect(fields(shapes[0])).toEqual(
      expect.arrayContaining([
        "input",
        "outputs",
        "alerts[0]",
        "alerts[1]",
        "alerts[2]",
        "selfTest[0]",
        "files",
      ]),
    );
  });
});
