/**
 * Manifest validation (contract §4): untrusted JSON in, a trusted `Manifest` or EVERY problem out.
 *
 * Contract
 * - Input: any value (the result of `JSON.parse` on `manifest.json`). Output: `{ ok: true, manifest }`
 *   with every default applied, or `{ ok: false, errors }` listing every problem found, each with the
 *   field path it concerns (`input.window.hopMs`, `outputs[1].tensor`, `files["model.onnx"]`,
 *   `input.normalize.std[3]`; the empty path `""` is the manifest itself). Never throws.
 * - Pure and synchronous; no I/O. It does not look at the files on disk: hashes are checked by the
 *   package loader, tensor names and shapes by the inference module against the ONNX model.
 * - Bounded work: every list and window has an upper limit (`MANIFEST_LIMITS`), a list longer than its
 *   limit is reported once and not walked, and at most `MAX_ITEM_ERRORS` bad entries of one list are
 *   reported individually (then one summary line), so a hostile manifest cannot make us allocate
 *   gigabytes or build millions of error objects.
 *
 * Choices where the contract is silent
 * - `name`: `[a-z0-9][a-z0-9._-]*`, 1..64 characters (it becomes a folder name). `version`: strict
 *   semver 2.0.0 (`MAJOR.MINOR.PATCH[-prerelease][+build]`, no leading zeros, no `v`), at most 64
 *   characters, each numeric part a safe integer.
 * - `files` keys: relative `/`-separated paths, 1..255 characters, no control characters, no leading
 *   `/`, no backslash, no empty, `.` or `..` segments; `manifest.json` and `manifest.sig` may not be
 *   listed (the manifest cannot carry its own hash; the signature covers the manifest). Values: SHA-256
 *   as 64 lowercase hex digits. `model`, when given, must be a key of `files` (any extension); when
 *   absent, exactly one key must end in `.onnx` (case-insensitive).
 * - Signal, output and alert-rule names: 1..128 characters, no control characters, none of `+ # /`
 *   (they travel in MQTT topics and payloads).
 * - Window: `count` `hop` defaults to 1 and may exceed `size` (windows with gaps); `time` needs
 *   `sizeMs`, `hopMs`, `sampleMs` (no defaults), `sizeMs` and `hopMs` multiples of `sampleMs`, `fill` defaults to
 *   `previous`. At most 100 000 steps per window and 1 000 000 values (signals × steps) per window;
 *   durations at most 31 days.
 * - `features`, `normalize` and `layout` are required (they decide the numbers the model sees, so no
 *   guessing). `NF` is allowed with `sequence` features (the flattened window); `aggregate` requires
 *   `NF`. `minmax` with `max < min` is an error (`max = min` is allowed: it maps to 0); `std = 0` is
 *   allowed (treated as 1).
 * - `outputs`: names unique, and two outputs may not share a tensor (relaxing that later stays
 *   compatible; the reverse would not). `labels` only with kind `class`; non-empty, unique, 1..128
 *   characters each. `unit` a string of at most 64 characters.
 * - `alerts` and `selfTest` are optional and default to `[]`. An empty `selfTest` is valid: the gateway
 *   then serves the model after the shape check alone and logs a warning. A rule may not watch a
 *   `class` output with `labels` (its value is a label, not a number). `severity` is any 1..32
 *   character string without control characters (`info`, `warning`, `critical` suggested).
 *   `forWindows` defaults to 1 (at most 1 000 000), `clearValue` to `value`, and must lie on the
 *   clearing side: `clearValue <= value` for `>`/`>=`, `clearValue >= value` for `<`/`<=`.
 * - `selfTest[i].input` must have exactly `product(inputShape(input))` finite numbers (checked only
 *   once `input` is valid); `output` at least one finite number per output; `tolerance` finite ≥ 0,
 *   default 1e-4 (absolute).
 * - Unknown keys: allowed at the top level (forward compatibility; they are dropped from the result),
 *   errors everywhere else (`input`, `window`, `features`, `normalize`, outputs, alerts, self-tests),
 *   because a typo there (`forWindow`, `hop_ms`) would otherwise silently fall back to a default.
 *   `null` is never taken to mean "absent". `reference` is copied as-is, unchecked.
 */

import { PackageError } from "../errors.js";
import type {
  AggregateFn,
  AlertOp,
  AlertRuleSpec,
  FeatureSpec,
  FillPolicy,
  InputSpec,
  Layout,
  Manifest,
  NormalizeSpec,
  OutputKind,
  OutputSpec,
  SelfTestCase,
  Task,
  WindowSpec,
} from "./manifest-types.js";
import { AGGREGATE_FUNCTIONS, inputShape, windowSteps } from "./manifest-types.js";

export interface ManifestIssue {
  /** Path of the offending field, e.g. `input.window.hopMs`, `outputs[1].tensor`; `""` = the manifest. */
  field: string;
  message: string;
}

export type ManifestResult = { ok: true; manifest: Manifest } | { ok: false; errors: ManifestIssue[] };

/** Upper bounds that keep a hostile manifest from costing memory or time. */
export const MANIFEST_LIMITS = {
  nameLength: 64,
  versionLength: 64,
  descriptionLength: 4096,
  files: 1024,
  filePathLength: 255,
  signals: 1024,
  signalNameLength: 128,
  /** Time steps of one window (count `size`, or `sizeMs / sampleMs`). */
  windowSteps: 100_000,
  /** signals × steps held for one window of one asset. */
  windowValues: 1_000_000,
  /** Count-window hop, in rows. */
  hopRows: 100_000,
  /** Any `*Ms` duration of a time window: 31 days. */
  durationMs: 31 * 24 * 3600 * 1000,
  tensorNameLength: 256,
  outputs: 64,
  labels: 4096,
  labelLength: 128,
  unitLength: 64,
  alerts: 256,
  severityLength: 32,
  forWindows: 1_000_000,
  selfTests: 32,
  selfTestOutputValues: 100_000,
} as const;

/** At most this many bad entries of one list are reported one by one; the rest in one summary line. */
export const MAX_ITEM_ERRORS = 5;

export const DEFAULT_SELF_TEST_TOLERANCE = 1e-4;

const TASKS: readonly Task[] = ["regression", "classification", "anomaly"];
const FILLS: readonly FillPolicy[] = ["previous", "linear"];
const AGGREGATES: readonly AggregateFn[] = AGGREGATE_FUNCTIONS;
const LAYOUTS: readonly Layout[] = ["NTC", "NCT", "NF"];
const OUTPUT_KINDS: readonly OutputKind[] = ["rul", "probability", "score", "class"];
const ALERT_OPS: readonly AlertOp[] = [">", ">=", "<", "<="];

const NAME_RE = /^[a-z0-9][a-z0-9._-]*$/;
// semver.org's recommended regular expression (no leading zeros, dot-separated identifiers).
const SEMVER_RE =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;
const SHA256_RE = /^[0-9a-f]{64}$/;
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;
const FORBIDDEN_NAME_CHARS_RE = /[+#/]/;

/** Validates a parsed `manifest.json`; see the module header for every rule. */
export function validateManifest(json: unknown): ManifestResult {
  const c = new Checker();
  if (!isRecord(json)) {
    c.fail("", `must be a JSON object, got ${describe(json)}`);
    return { ok: false, errors: c.errors };
  }

  const schemaVersion = get(json, "schemaVersion");
  if (schemaVersion === undefined) c.fail("schemaVersion", "is required and must be 1");
  else if (schemaVersion !== 1) c.fail("schemaVersion", `must be 1, got ${describe(schemaVersion)}`);

  const name = checkName(c, get(json, "name"));
  const version = checkVersion(c, get(json, "version"));
  const task = enumAt(c, get(json, "task"), "task", TASKS);
  const description = optionalStringAt(c, get(json, "description"), "description", {
    maxLength: MANIFEST_LIMITS.descriptionLength,
  });
  const files = checkFiles(c, get(json, "files"));
  const modelFile = checkModelFile(c, get(json, "model"), files.keys);
  const input = checkInput(c, get(json, "input"));
  const outputs = checkOutputs(c, get(json, "outputs"));
  const alerts = checkAlerts(c, get(json, "alerts"), outputs.byName);
  const selfTest = checkSelfTests(c, get(json, "selfTest"), input, outputs.specs);
  const reference = get(json, "reference");

  if (
    c.errors.length === 0 &&
    name !== undefined &&
    version !== undefined &&
    task !== undefined &&
    files.valid !== undefined &&
    modelFile !== undefined &&
    input !== undefined &&
    outputs.specs !== undefined &&
    alerts !== undefined &&
    selfTest !== undefined
  ) {
    const manifest: Manifest = {
      schemaVersion: 1,
      name,
      version,
      task,
      files: files.valid,
      modelFile,
      input,
      outputs: outputs.specs,
      alerts,
      selfTest,
    };
    if (description !== undefined) manifest.description = description;
    if (reference !== undefined) manifest.reference = reference;
    return { ok: true, manifest };
  }
  // Unreachable unless a check forgot to report why it returned nothing; never pass such a manifest.
  if (c.errors.length === 0) c.fail("", "is invalid (validator could not complete)");
  return { ok: false, errors: c.errors };
}

/** One line per problem, `field: message`, for logs, CLI output and OTA error responses. */
export function formatManifestErrors(errors: readonly ManifestIssue[]): string {
  return errors.map((e) => `${e.field === "" ? "manifest" : e.field}: ${e.message}`).join("\n");
}

/** The errors as one `PackageError` (code `MANIFEST_INVALID`, `field` = the first problem's field). */
export function manifestError(errors: readonly ManifestIssue[]): PackageError {
  const first = errors[0];
  return new PackageError("MANIFEST_INVALID", `invalid manifest:\n${formatManifestErrors(errors)}`, {
    field: first === undefined || first.field === "" ? undefined : first.field,
  });
}

// ---------------------------------------------------------------------------------------------
// Top-level fields

function checkName(c: Checker, v: unknown): string | undefined {
  const s = stringAt(c, v, "name", { maxLength: MANIFEST_LIMITS.nameLength });
  if (s === undefined) return undefined;
  if (!NAME_RE.test(s)) {
    return c.fail(
      "name",
      `must start with a lowercase letter or digit and contain only a-z 0-9 . _ -, got ${describe(s)}`,
    );
  }
  return s;
}

function checkVersion(c: Checker, v: unknown): string | undefined {
  const s = stringAt(c, v, "version", { maxLength: MANIFEST_LIMITS.versionLength });
  if (s === undefined) return undefined;
  const m = SEMVER_RE.exec(s);
  if (m === null) {
    return c.fail("version", `must be a semver version MAJOR.MINOR.PATCH[-pre][+build], got ${describe(s)}`);
  }
  if ([m[1], m[2], m[3]].some((part) => !Number.isSafeInteger(Number(part)))) {
    return c.fail("version", `has a numeric part too large to compare, got ${describe(s)}`);
  }
  return s;
}

function checkFiles(c: Checker, v: unknown): { keys?: string[]; valid?: Record<string, string> } {
  const o = objectAt(c, v, "files", null);
  if (o === undefined) return {};
  const keys = Object.keys(o);
  if (keys.length === 0) {
    c.fail("files", "must list the model file and its SHA-256, got an empty object");
    return { keys };
  }
  if (keys.length > MANIFEST_LIMITS.files) {
    c.fail("files", `must have at most ${MANIFEST_LIMITS.files} entries, got ${keys.length}`);
    return {};
  }
  const before = c.errors.length;
  const entries: [string, string][] = [];
  for (const key of keys) {
    const field = `files[${JSON.stringify(key)}]`;
    const problem = filePathProblem(key);
    if (problem !== undefined) c.fail(field, problem);
    const hash = o[key];
    if (typeof hash !== "string" || !SHA256_RE.test(hash)) {
      c.fail(field, `must be the file's SHA-256 as 64 lowercase hex digits, got ${describe(hash)}`);
    } else {
      entries.push([key, hash]);
    }
  }
  // Object.fromEntries defines own properties, so a key such as "__proto__" stays a plain key.
  return { keys, valid: c.errors.length === before ? Object.fromEntries(entries) : undefined };
}

function filePathProblem(key: string): string | undefined {
  if (key === "") return "file name must not be empty";
  if (key.length > MANIFEST_LIMITS.filePathLength) {
    return `file name must be at most ${MANIFEST_LIMITS.filePathLength} characters, got ${key.length}`;
  }
  if (CONTROL_RE.test(key)) return "file name must not contain control characters";
  if (key.startsWith("/")) return "file name must be relative (no leading /)";
  if (key.includes("\\")) return "file name must use / as separator, not \\";
  const segments = key.split("/");
  if (segments.includes("..")) return "file name must not contain .. segments";
  if (segments.includes(".")) return "file name must not contain . segments";
  if (segments.includes("")) return "file name must not contain empty segments (// or a trailing /)";
  if (key === "manifest.json" || key === "manifest.sig") {
    return "must not be listed: the manifest cannot carry its own hash and the signature covers it";
  }
  return undefined;
}

function checkModelFile(c: Checker, v: unknown, fileKeys: string[] | undefined): string | undefined {
  if (v !== undefined) {
    if (typeof v !== "string" || v === "") {
      return c.fail("model", `must be a non-empty string naming a key of files, got ${describe(v)}`);
    }
    if (fileKeys !== undefined && !fileKeys.includes(v)) {
      return c.fail("model", `must be a key of files, got ${describe(v)}`);
    }
    return v;
  }
  if (fileKeys === undefined || fileKeys.length === 0) return undefined; // already reported at `files`
  const onnx = fileKeys.filter((k) => k.toLowerCase().endsWith(".onnx"));
  const only = onnx.length === 1 ? onnx[0] : undefined;
  if (only !== undefined) return only;
  if (onnx.length === 0) {
    return c.fail("files", "must list the ONNX model: no file name ends in .onnx (or set model)");
  }
  return c.fail(
    "model",
    `is required when files lists ${onnx.length} .onnx files (${onnx.slice(0, 5).join(", ")}); name the one to serve`,
  );
}

// ---------------------------------------------------------------------------------------------
// input

const INPUT_KEYS = ["tensor", "signals", "window", "features", "normalize", "layout"] as const;

function checkInput(c: Checker, v: unknown): InputSpec | undefined {
  const o = objectAt(c, v, "input", INPUT_KEYS);
  if (o === undefined) return undefined;
  const tensor = stringAt(c, get(o, "tensor"), "input.tensor", {
    maxLength: MANIFEST_LIMITS.tensorNameLength,
  });
  const signals = checkSignals(c, get(o, "signals"));
  const window = checkWindow(c, get(o, "window"));
  const features = checkFeatures(c, get(o, "features"));

  if (signals.count !== undefined && window !== undefined) {
    const steps = windowSteps(window);
    const values = signals.count * steps;
    if (values > MANIFEST_LIMITS.windowValues) {
      c.fail(
        "input.window",
        `holds ${signals.count} signals × ${steps} steps = ${values} values per window; at most ${MANIFEST_LIMITS.windowValues}`,
      );
    }
  }

  let expected: { length: number; why: string } | undefined;
  if (signals.count !== undefined && features !== undefined) {
    expected =
      features.type === "sequence"
        ? { length: signals.count, why: "one per signal" }
        : {
            length: signals.count * features.functions.length,
            why: `one per feature: ${signals.count} signals × ${features.functions.length} functions`,
          };
  }
  const normalize = checkNormalize(c, get(o, "normalize"), expected);

  const layout = enumAt(c, get(o, "layout"), "input.layout", LAYOUTS);
  if (features?.type === "aggregate" && layout !== undefined && layout !== "NF") {
    c.fail("input.layout", `must be "NF" for aggregate features, got ${describe(layout)}`);
  }

  if (
    tensor === undefined ||
    signals.names === undefined ||
    window === undefined ||
    features === undefined ||
    normalize === undefined ||
    layout === undefined ||
    (features.type === "aggregate" && layout !== "NF")
  ) {
    return undefined;
  }
  return { tensor, signals: signals.names, window, features, normalize, layout };
}

function checkSignals(c: Checker, v: unknown): { names?: string[]; count?: number } {
  const list = arrayAt(c, v, "input.signals", { min: 1, max: MANIFEST_LIMITS.signals });
  if (list === undefined) return {};
  const names = uniqueNames(c, list, "input.signals", (item, field) => nameAt(c, item, field));
  return { names, count: list.length };
}

const COUNT_WINDOW_KEYS = ["type", "size", "hop"] as const;
const TIME_WINDOW_KEYS = ["type", "sizeMs", "hopMs", "sampleMs", "fill"] as const;

function checkWindow(c: Checker, v: unknown): WindowSpec | undefined {
  const f = "input.window";
  const o = objectAt(c, v, f, null);
  if (o === undefined) return undefined;
  const type = enumAt(c, get(o, "type"), `${f}.type`, ["count", "time"] as const);
  if (type === undefined) return undefined;

  if (type === "count") {
    rejectUnknownKeys(c, o, f, COUNT_WINDOW_KEYS);
    const size = intAt(c, get(o, "size"), `${f}.size`, { min: 1, max: MANIFEST_LIMITS.windowSteps });
    const hop = intAt(c, get(o, "hop"), `${f}.hop`, { min: 1, max: MANIFEST_LIMITS.hopRows, dflt: 1 });
    if (size === undefined || hop === undefined) return undefined;
    return { type, size, hop };
  }

  rejectUnknownKeys(c, o, f, TIME_WINDOW_KEYS);
  const limits = { min: 1, max: MANIFEST_LIMITS.durationMs } as const;
  const sizeMs = intAt(c, get(o, "sizeMs"), `${f}.sizeMs`, limits);
  const hopMs = intAt(c, get(o, "hopMs"), `${f}.hopMs`, limits);
  const sampleMs = intAt(c, get(o, "sampleMs"), `${f}.sampleMs`, limits);
  const fill = enumAt(c, get(o, "fill"), `${f}.fill`, FILLS, "previous");
  if (sizeMs === undefined || hopMs === undefined || sampleMs === undefined || fill === undefined) {
    return undefined;
  }
  if (sizeMs % sampleMs !== 0) {
    return c.fail(`${f}.sizeMs`, `must be a multiple of sampleMs (${sampleMs}), got ${sizeMs}`);
  }
  if (hopMs % sampleMs !== 0) {
    // Windows start at multiples of hopMs; they must fall on the global slot grid.
    return c.fail(`${f}.hopMs`, `must be a multiple of sampleMs (${sampleMs}), got ${hopMs}`);
  }
  const steps = sizeMs / sampleMs;
  if (steps > MANIFEST_LIMITS.windowSteps) {
    return c.fail(
      `${f}.sizeMs`,
      `gives ${steps} steps of sampleMs ${sampleMs}; at most ${MANIFEST_LIMITS.windowSteps} steps per window`,
    );
  }
  return { type, sizeMs, hopMs, sampleMs, fill };
}

function checkFeatures(c: Checker, v: unknown): FeatureSpec | undefined {
  const f = "input.features";
  const o = objectAt(c, v, f, null);
  if (o === undefined) return undefined;
  const type = enumAt(c, get(o, "type"), `${f}.type`, ["sequence", "aggregate"] as const);
  if (type === undefined) return undefined;
  if (type === "sequence") {
    rejectUnknownKeys(c, o, f, ["type"]);
    return { type };
  }
  rejectUnknownKeys(c, o, f, ["type", "functions"]);
  const list = arrayAt(c, get(o, "functions"), `${f}.functions`, { min: 1, max: AGGREGATES.length });
  if (list === undefined) return undefined;
  const functions = uniqueNames(c, list, `${f}.functions`, (item, field) =>
    enumAt(c, item, field, AGGREGATES),
  );
  return functions === undefined ? undefined : { type, functions };
}

function checkNormalize(
  c: Checker,
  v: unknown,
  expected: { length: number; why: string } | undefined,
): NormalizeSpec | undefined {
  const f = "input.normalize";
  const o = objectAt(c, v, f, null);
  if (o === undefined) return undefined;
  const type = enumAt(c, get(o, "type"), `${f}.type`, ["zscore", "minmax", "none"] as const);
  if (type === undefined) return undefined;
  const arrayOpts = { expected, max: MANIFEST_LIMITS.windowValues };

  if (type === "none") {
    rejectUnknownKeys(c, o, f, ["type"]);
    return { type };
  }
  if (type === "zscore") {
    rejectUnknownKeys(c, o, f, ["type", "mean", "std"]);
    const mean = numberArrayAt(c, get(o, "mean"), `${f}.mean`, arrayOpts);
    const std = numberArrayAt(c, get(o, "std"), `${f}.std`, { ...arrayOpts, min: 0 });
    return mean === undefined || std === undefined ? undefined : { type, mean, std };
  }
  rejectUnknownKeys(c, o, f, ["type", "min", "max"]);
  const min = numberArrayAt(c, get(o, "min"), `${f}.min`, arrayOpts);
  const max = numberArrayAt(c, get(o, "max"), `${f}.max`, arrayOpts);
  if (min === undefined || max === undefined) return undefined;
  const bad = new ItemErrors(c, `${f}.max`);
  for (let i = 0; i < Math.min(min.length, max.length); i++) {
    const lo = min[i] as number;
    const hi = max[i] as number;
    if (hi < lo) bad.add(`${f}.max[${i}]`, `must be ≥ min[${i}] (${lo}), got ${hi}`);
  }
  bad.finish("entries smaller than their min");
  return bad.count > 0 ? undefined : { type, min, max };
}

// ---------------------------------------------------------------------------------------------
// outputs, alerts, selfTest

const OUTPUT_KEYS = ["tensor", "name", "kind", "unit", "labels"] as const;

interface OutputRef {
  kind: OutputKind | undefined;
  hasLabels: boolean;
}

function checkOutputs(c: Checker, v: unknown): { specs?: OutputSpec[]; byName?: Map<string, OutputRef> } {
  const list = arrayAt(c, v, "outputs", { min: 1, max: MANIFEST_LIMITS.outputs });
  if (list === undefined) return {};
  const before = c.errors.length;
  const specs: OutputSpec[] = [];
  const byName = new Map<string, OutputRef>();
  const nameIndex = new Map<string, number>();
  const tensorIndex = new Map<string, number>();

  list.forEach((item, i) => {
    const f = `outputs[${i}]`;
    const o = objectAt(c, item, f, OUTPUT_KEYS);
    if (o === undefined) return;
    const tensor = stringAt(c, get(o, "tensor"), `${f}.tensor`, {
      maxLength: MANIFEST_LIMITS.tensorNameLength,
    });
    if (tensor !== undefined) {
      const first = tensorIndex.get(tensor);
      if (first !== undefined) {
        c.fail(`${f}.tensor`, `duplicates outputs[${first}].tensor ${describe(tensor)}`);
      } else tensorIndex.set(tensor, i);
    }
    const name = nameAt(c, get(o, "name"), `${f}.name`);
    if (name !== undefined) {
      const first = nameIndex.get(name);
      if (first !== undefined) c.fail(`${f}.name`, `duplicates outputs[${first}].name ${describe(name)}`);
      else nameIndex.set(name, i);
    }
    const kind = enumAt(c, get(o, "kind"), `${f}.kind`, OUTPUT_KINDS);
    const unit = optionalStringAt(c, get(o, "unit"), `${f}.unit`, {
      maxLength: MANIFEST_LIMITS.unitLength,
      allowEmpty: true,
    });
    const rawLabels = get(o, "labels");
    let labels: string[] | undefined;
    if (rawLabels !== undefined) {
      if (kind !== undefined && kind !== "class") {
        c.fail(`${f}.labels`, `is only allowed for kind "class", got kind ${describe(kind)}`);
      } else {
        labels = checkLabels(c, rawLabels, `${f}.labels`);
      }
    }
    if (name !== undefined && !byName.has(name)) {
      byName.set(name, { kind, hasLabels: rawLabels !== undefined });
    }
    if (tensor !== undefined && name !== undefined && kind !== undefined) {
      const spec: OutputSpec = { tensor, name, kind };
      if (unit !== undefined) spec.unit = unit;
      if (labels !== undefined) spec.labels = labels;
      specs.push(spec);
    }
  });
  return { specs: c.errors.length === before ? specs : undefined, byName };
}

function checkLabels(c: Checker, v: unknown, field: string): string[] | undefined {
  const list = arrayAt(c, v, field, { min: 1, max: MANIFEST_LIMITS.labels });
  if (list === undefined) return undefined;
  return uniqueNames(c, list, field, (item, f) =>
    stringAt(c, item, f, { maxLength: MANIFEST_LIMITS.labelLength }),
  );
}

const ALERT_KEYS = ["id", "severity", "output", "op", "value", "forWindows", "clearValue"] as const;

function checkAlerts(
  c: Checker,
  v: unknown,
  outputs: Map<string, OutputRef> | undefined,
): AlertRuleSpec[] | undefined {
  const list = arrayAt(c, v, "alerts", { min: 0, max: MANIFEST_LIMITS.alerts, dflt: [] });
  if (list === undefined) return undefined;
  const before = c.errors.length;
  const rules: AlertRuleSpec[] = [];
  const idIndex = new Map<string, number>();

  list.forEach((item, i) => {
    const f = `alerts[${i}]`;
    const o = objectAt(c, item, f, ALERT_KEYS);
    if (o === undefined) return;
    const id = nameAt(c, get(o, "id"), `${f}.id`);
    if (id !== undefined) {
      const first = idIndex.get(id);
      if (first !== undefined) c.fail(`${f}.id`, `duplicates alerts[${first}].id ${describe(id)}`);
      else idIndex.set(id, i);
    }
    const severity = stringAt(c, get(o, "severity"), `${f}.severity`, {
      maxLength: MANIFEST_LIMITS.severityLength,
      noControl: true,
    });
    const output = stringAt(c, get(o, "output"), `${f}.output`, {
      maxLength: MANIFEST_LIMITS.signalNameLength,
    });
    if (output !== undefined && outputs !== undefined) {
      const ref = outputs.get(output);
      if (ref === undefined) {
        const known = [...outputs.keys()].map((n) => describe(n)).join(", ");
        c.fail(`${f}.output`, `must name an output (${known || "none valid"}), got ${describe(output)}`);
      } else if (ref.kind === "class" && ref.hasLabels) {
        c.fail(
          `${f}.output`,
          `names ${describe(output)}, a class output with labels whose value is a label, not a number`,
        );
      }
    }
    const op = enumAt(c, get(o, "op"), `${f}.op`, ALERT_OPS);
    const value = finiteAt(c, get(o, "value"), `${f}.value`, {});
    const forWindows = intAt(c, get(o, "forWindows"), `${f}.forWindows`, {
      min: 1,
      max: MANIFEST_LIMITS.forWindows,
      dflt: 1,
    });
    const clearValue = finiteAt(c, get(o, "clearValue"), `${f}.clearValue`, { dflt: value });
    if (op !== undefined && value !== undefined && clearValue !== undefined) {
      const raisesAbove = op === ">" || op === ">=";
      if (raisesAbove && clearValue > value) {
        c.fail(`${f}.clearValue`, `must be ≤ value (${value}) for op "${op}", got ${clearValue}`);
      } else if (!raisesAbove && clearValue < value) {
        c.fail(`${f}.clearValue`, `must be ≥ value (${value}) for op "${op}", got ${clearValue}`);
      }
    }
    if (
      id !== undefined &&
      severity !== undefined &&
      output !== undefined &&
      op !== undefined &&
      value !== undefined &&
      forWindows !== undefined &&
      clearValue !== undefined
    ) {
      rules.push({ id, severity, output, op, value, forWindows, clearValue });
    }
  });
  return c.errors.length === before ? rules : undefined;
}

const SELF_TEST_KEYS = ["input", "output", "tolerance"] as const;

function checkSelfTests(
  c: Checker,
  v: unknown,
  input: InputSpec | undefined,
  outputs: OutputSpec[] | undefined,
): SelfTestCase[] | undefined {
  const list = arrayAt(c, v, "selfTest", { min: 0, max: MANIFEST_LIMITS.selfTests, dflt: [] });
  if (list === undefined) return undefined;
  const before = c.errors.length;
  let expectedInput: { length: number; why: string } | undefined;
  if (input !== undefined) {
    const shape = inputShape(input);
    expectedInput = {
      length: shape.reduce((a, b) => a * b, 1),
      why: `input shape [${shape.join(", ")}] in layout ${input.layout}`,
    };
  }
  const cases: SelfTestCase[] = [];

  list.forEach((item, i) => {
    const f = `selfTest[${i}]`;
    const o = objectAt(c, item, f, SELF_TEST_KEYS);
    if (o === undefined) return;
    const inputValues = numberArrayAt(c, get(o, "input"), `${f}.input`, {
      expected: expectedInput,
      max: MANIFEST_LIMITS.windowValues,
      minLength: 1,
    });
    const outputValues = numberArrayAt(c, get(o, "output"), `${f}.output`, {
      max: MANIFEST_LIMITS.selfTestOutputValues,
      minLength: Math.max(1, outputs?.length ?? 1),
      minLengthWhy: outputs === undefined ? undefined : "at least one value per output",
    });
    const tolerance = finiteAt(c, get(o, "tolerance"), `${f}.tolerance`, {
      min: 0,
      dflt: DEFAULT_SELF_TEST_TOLERANCE,
    });
    if (inputValues !== undefined && outputValues !== undefined && tolerance !== undefined) {
      cases.push({ input: inputValues, output: outputValues, tolerance });
    }
  });
  return c.errors.length === before ? cases : undefined;
}

// ---------------------------------------------------------------------------------------------
// Primitive checks. Each reports its own problem and returns `undefined` when the value is unusable.

class Checker {
  readonly errors: ManifestIssue[] = [];
  fail(field: string, message: string): undefined {
    this.errors.push({ field, message });
    return undefined;
  }
}

/** Reports the first MAX_ITEM_ERRORS problems of one list individually, then one summary line. */
class ItemErrors {
  count = 0;
  constructor(
    private readonly c: Checker,
    private readonly listField: string,
  ) {}
  add(field: string, message: string): void {
    this.count++;
    if (this.count <= MAX_ITEM_ERRORS) this.c.fail(field, message);
  }
  finish(what: string): void {
    if (this.count > MAX_ITEM_ERRORS) {
      this.c.fail(this.listField, `has ${this.count - MAX_ITEM_ERRORS} more ${what} (not listed)`);
    }
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Own properties only: `toString` or `__proto__` in a manifest must not resolve to Object.prototype. */
function get(o: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  switch (typeof v) {
    case "string":
      return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
    case "number":
    case "boolean":
      return String(v);
    case "undefined":
      return "nothing";
    case "object":
      return "an object";
    default:
      return typeof v;
  }
}

function keyPath(base: string, key: string): string {
  const k = /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
  return base === "" ? k.replace(/^\./, "") : `${base}${k}`;
}

function rejectUnknownKeys(
  c: Checker,
  o: Record<string, unknown>,
  field: string,
  known: readonly string[],
): void {
  const bad = new ItemErrors(c, field);
  for (const key of Object.keys(o)) {
    if (!known.includes(key)) {
      bad.add(keyPath(field, key), `is not a known field (expected: ${known.join(", ")})`);
    }
  }
  bad.finish("unknown fields");
}

function objectAt(
  c: Checker,
  v: unknown,
  field: string,
  known: readonly string[] | null,
): Record<string, unknown> | undefined {
  if (v === undefined) return c.fail(field, "is required");
  if (!isRecord(v)) return c.fail(field, `must be an object, got ${describe(v)}`);
  if (known !== null) rejectUnknownKeys(c, v, field, known);
  return v;
}

function arrayAt(
  c: Checker,
  v: unknown,
  field: string,
  opts: { min: number; max: number; dflt?: unknown[] },
): unknown[] | undefined {
  if (v === undefined) return opts.dflt ?? c.fail(field, "is required");
  if (!Array.isArray(v)) return c.fail(field, `must be an array, got ${describe(v)}`);
  if (v.length < opts.min) {
    return c.fail(field, `must have at least ${opts.min} ${opts.min === 1 ? "entry" : "entries"}, got 0`);
  }
  if (v.length > opts.max) return c.fail(field, `must have at most ${opts.max} entries, got ${v.length}`);
  return v as unknown[];
}

/** Checks each entry with `check` and reports repeats; returns the list only if every entry is valid. */
function uniqueNames<T extends string>(
  c: Checker,
  list: unknown[],
  field: string,
  check: (item: unknown, field: string) => T | undefined,
): T[] | undefined {
  const before = c.errors.length;
  const out: T[] = [];
  const seen = new Map<string, number>();
  list.forEach((item, i) => {
    const value = check(item, `${field}[${i}]`);
    if (value === undefined) return;
    const first = seen.get(value);
    if (first !== undefined) c.fail(`${field}[${i}]`, `duplicates ${field}[${first}] ${describe(value)}`);
    else seen.set(value, i);
    out.push(value);
  });
  return c.errors.length === before ? out : undefined;
}

function stringAt(
  c: Checker,
  v: unknown,
  field: string,
  opts: { maxLength: number; allowEmpty?: boolean; noControl?: boolean },
): string | undefined {
  if (v === undefined) return c.fail(field, "is required");
  if (typeof v !== "string") return c.fail(field, `must be a string, got ${describe(v)}`);
  if (v === "" && opts.allowEmpty !== true) return c.fail(field, "must be a non-empty string");
  if (v.length > opts.maxLength) {
    return c.fail(field, `must be at most ${opts.maxLength} characters, got ${v.length}`);
  }
  if (opts.noControl === true && CONTROL_RE.test(v)) {
    return c.fail(field, `must not contain control characters, got ${describe(v)}`);
  }
  return v;
}

function optionalStringAt(
  c: Checker,
  v: unknown,
  field: string,
  opts: { maxLength: number; allowEmpty?: boolean },
): string | undefined {
  return v === undefined ? undefined : stringAt(c, v, field, opts);
}

/** Signal, output and rule names: they appear in MQTT topics and payloads. */
function nameAt(c: Checker, v: unknown, field: string): string | undefined {
  const s = stringAt(c, v, field, { maxLength: MANIFEST_LIMITS.signalNameLength, noControl: true });
  if (s === undefined) return undefined;
  if (FORBIDDEN_NAME_CHARS_RE.test(s)) return c.fail(field, `must not contain + # or /, got ${describe(s)}`);
  return s;
}

function enumAt<T extends string>(
  c: Checker,
  v: unknown,
  field: string,
  values: readonly T[],
  dflt?: T,
): T | undefined {
  if (v === undefined) {
    if (dflt !== undefined) return dflt;
    return c.fail(field, `is required (one of ${values.map((x) => `"${x}"`).join(", ")})`);
  }
  if (typeof v === "string" && (values as readonly string[]).includes(v)) return v as T;
  return c.fail(field, `must be one of ${values.map((x) => `"${x}"`).join(", ")}, got ${describe(v)}`);
}

function intAt(
  c: Checker,
  v: unknown,
  field: string,
  opts: { min: 0 | 1; max: number; dflt?: number },
): number | undefined {
  if (v === undefined) return opts.dflt ?? c.fail(field, "is required");
  const kind = opts.min === 1 ? "a positive integer" : "a non-negative integer";
  if (typeof v !== "number" || !Number.isInteger(v) || v < opts.min) {
    return c.fail(field, `must be ${kind}, got ${describe(v)}`);
  }
  if (v > opts.max) return c.fail(field, `must be at most ${opts.max}, got ${v}`);
  return v;
}

function finiteAt(
  c: Checker,
  v: unknown,
  field: string,
  opts: { min?: number; dflt?: number | undefined },
): number | undefined {
  if (v === undefined) {
    // A missing default (its own field invalid) is reported there, not twice.
    return "dflt" in opts ? opts.dflt : c.fail(field, "is required");
  }
  if (typeof v !== "number" || !Number.isFinite(v)) {
    return c.fail(field, `must be a finite number, got ${describe(v)}`);
  }
  if (opts.min !== undefined && v < opts.min) return c.fail(field, `must be ≥ ${opts.min}, got ${v}`);
  return v;
}

function numberArrayAt(
  c: Checker,
  v: unknown,
  field: string,
  opts: {
    max: number;
    min?: number;
    expected?: { length: number; why: string } | undefined;
    minLength?: number;
    minLengthWhy?: string | undefined;
  },
): number[] | undefined {
  if (v === undefined) return c.fail(field, "is required");
  if (!Array.isArray(v)) return c.fail(field, `must be an array of numbers, got ${describe(v)}`);
  let ok = true;
  if (opts.expected !== undefined && v.length !== opts.expected.length) {
    c.fail(field, `must have ${opts.expected.length} entries (${opts.expected.why}), got ${v.length}`);
    ok = false;
  } else if (v.length > opts.max) {
    c.fail(field, `must have at most ${opts.max} entries, got ${v.length}`);
    ok = false;
  } else if (opts.minLength !== undefined && v.length < opts.minLength) {
    const why = opts.minLengthWhy === undefined ? "" : ` (${opts.minLengthWhy})`;
    c.fail(field, `must have at least ${opts.minLength} entries${why}, got ${v.length}`);
    ok = false;
  }
  // Too long to be worth walking: the length is already the error.
  if (v.length > opts.max) return undefined;
  const bad = new ItemErrors(c, field);
  for (let i = 0; i < v.length; i++) {
    const x: unknown = v[i];
    if (typeof x !== "number" || !Number.isFinite(x)) {
      bad.add(`${field}[${i}]`, `must be a finite number, got ${describe(x)}`);
    } else if (opts.min !== undefined && x < opts.min) {
      bad.add(`${field}[${i}]`, `must be ≥ ${opts.min}, got ${x}`);
    }
  }
  bad.finish("invalid entries");
  return ok && bad.count === 0 ? (v.slice() as number[]) : undefined;
}
