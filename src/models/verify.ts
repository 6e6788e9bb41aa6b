/**
 * Verifying a package folder step by step, with a report that says exactly what passed and
 * what failed. Used by `vigil models verify` (every step it can run, to explain everything),
 * `vigil models install` and over-the-air updates (stop at the first failure: nothing
 * untrusted goes further than it must).
 *
 * Contract of `verifyPackageDir(dir, options)`; steps in this order:
 *  1. `signature`  manifest.sig verifies over the exact bytes of manifest.json with a trusted
 *                  key (when required; when not required, a signature that is present is still
 *                  checked if trusted keys are configured, and a bad one fails).
 *  2. `manifest`   manifest.json parses and validates (every problem, with its field path),
 *                  and its `trial` object, if any, is valid.
 *  3. `policy`     the caller's rule for this name and version (downgrade, duplicate, busy).
 *  4. `files`      every file in `files` exists with its SHA-256, and the folder holds no
 *                  file the manifest does not list (it would not be covered by the signature).
 *  5. `onnx`       ONNX Runtime loads the model (only with `load`).
 *  6. `tensors`    input and output names and shapes match the manifest.
 *  7. `selfTest`   every case reproduces its outputs; the time per window is measured.
 *  Steps 5–7 pass on the execution provider chosen as at start-up (src/inference/providers.ts:
 *  the first, or the fastest, that loads the model and passes 6 and 7); they fail with the
 *  most telling provider's error, naming every other provider's.
 * With `stopAtFirstFailure` the steps after a failure are not run (and not listed). Without
 * it, every step that can still run does (the ONNX steps need a valid manifest and files).
 * Never throws for a bad package; the result's `model` (a loaded, servable model) is set only
 * when `load` was asked and everything passed, otherwise any session is released.
 */

import fs from "node:fs";
import path from "node:path";
import type { PackageError } from "../errors.js";
import { errorMessage } from "../errors.js";
import type { InferenceBackend, ModelSession, SessionOptions } from "../inference/ort.js";
import { formatManifestErrors, validateManifest } from "./manifest.js";
import type { Manifest } from "./manifest-types.js";
import { inputShape } from "./manifest-types.js";
import { manifestTrial, type TrialCriteria } from "./ota/requests.js";
import { openModel, sha256File, type LoadedModel } from "./package.js";
import { SIGNATURE_FILE, checkSignature, type TrustedKey } from "./signing.js";

export type CheckStep =
  "archive" | "signature" | "manifest" | "policy" | "files" | "onnx" | "tensors" | "selfTest";

export interface Check {
  step: CheckStep;
  ok: boolean;
  detail: string;
  code?: string;
  field?: string;
}

export interface VerifyOptions {
  keys: readonly TrustedKey[];
  requireSignature: boolean;
  stopAtFirstFailure: boolean;
  /** Run the ONNX steps with this backend. */
  load?: { backend: InferenceBackend; sessionOptions: SessionOptions };
  /** Throws a PackageError to refuse this name/version. */
  policy?: (manifest: Manifest) => void;
}

export interface VerifyResult {
  ok: boolean;
  checks: Check[];
  manifest?: Manifest;
  manifestBytes?: Buffer;
  /** The package's own `trial` (undefined: none asked for). */
  trial?: TrialCriteria | false;
  keyId?: string;
  model?: LoadedModel;
  /** Median self-test inference time for one window, ms. */
  selfTestMsPerWindow?: number;
}

/** The first failed check as one line (for error responses and the CLI's reason). */
export function firstFailure(result: VerifyResult): Check | undefined {
  return result.checks.find((c) => !c.ok);
}

function listFiles(root: string, rel = ""): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const p = rel === "" ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) out.push(...listFiles(root, p));
    else out.push(p);
  }
  return out;
}

export async function verifyPackageDir(dir: string, options: VerifyOptions): Promise<VerifyResult> {
  const checks: Check[] = [];
  const result: VerifyResult = { ok: false, checks };
  const fail = (c: Omit<Check, "ok">): boolean => {
    checks.push({ ok: false, ...c });
    return options.stopAtFirstFailure;
  };
  const pass = (step: CheckStep, detail: string): void => {
    checks.push({ step, ok: true, detail });
  };

  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(path.join(dir, "manifest.json"));
  } catch (err) {
    fail({
      step: "manifest",
      code: "PACKAGE_NO_MANIFEST",
      detail: `cannot read manifest.json: ${errorMessage(err)}`,
    });
    return result;
  }
  result.manifestBytes = bytes;

  // 1. signature
  const sigFile = path.join(dir, SIGNATURE_FILE);
  const sigText = fs.existsSync(sigFile) ? fs.readFileSync(sigFile, "utf8") : undefined;
  const mustCheck = options.requireSignature || (sigText !== undefined && options.keys.length > 0);
  if (mustCheck) {
    const sig = checkSignature(bytes, sigText, options.keys);
    if (sig.ok) {
      result.keyId = sig.keyId;
      pass("signature", sig.detail);
    } else if (fail({ step: "signature", code: sig.code, detail: sig.detail })) {
      return result;
    }
  } else {
    pass(
      "signature",
      sigText === undefined
        ? "unsigned; not required (models.requireSignature is false)"
        : "present but not checked: no trusted keys configured, and not required",
    );
  }

  // 2. manifest
  let manifest: Manifest | undefined;
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString("utf8")) as unknown;
  } catch (err) {
    if (
      fail({
        step: "manifest",
        code: "PACKAGE_MANIFEST_JSON",
        detail: `manifest.json is not valid JSON: ${errorMessage(err)}`,
      })
    )
      return result;
  }
  if (json !== undefined) {
    const v = validateManifest(json);
    const trial = manifestTrial(bytes);
    if (!v.ok || trial.errors.length > 0) {
      const problems = [...(v.ok ? [] : [formatManifestErrors(v.errors)]), ...trial.errors].join("\n");
      const field = v.ok ? "trial" : v.errors[0]?.field;
      if (
        fail({
          step: "manifest",
          code: "PACKAGE_MANIFEST_INVALID",
          detail: `invalid manifest:\n${problems}`,
          ...(field ? { field } : {}),
        })
      )
        return result;
    } else {
      manifest = v.manifest;
      result.manifest = manifest;
      if (trial.trial !== undefined) result.trial = trial.trial;
      pass(
        "manifest",
        `${manifest.name}@${manifest.version} (${manifest.task}, ${manifest.input.signals.length} signals, ${manifest.outputs.length} outputs)`,
      );
    }
  }

  // 3. policy
  if (manifest && options.policy) {
    try {
      options.policy(manifest);
      pass("policy", "allowed");
    } catch (err) {
      const e = err as PackageError;
      if (fail({ step: "policy", code: e.code ?? "PACKAGE_REFUSED", detail: errorMessage(err) }))
        return result;
    }
  }

  // 4. files
  let filesOk = false;
  if (manifest) {
    const problems: string[] = [];
    let field: string | undefined;
    for (const [name, expected] of Object.entries(manifest.files)) {
      let actual: string;
      try {
        actual = await sha256File(path.join(dir, name));
      } catch {
        problems.push(`${name}: listed in the manifest but missing`);
        field ??= `files[${JSON.stringify(name)}]`;
        continue;
      }
      if (actual !== expected) {
        problems.push(`${name}: SHA-256 is ${actual}, the manifest says ${expected}`);
        field ??= `files[${JSON.stringify(name)}]`;
      }
    }
    const listed = new Set([...Object.keys(manifest.files), "manifest.json", SIGNATURE_FILE]);
    for (const f of listFiles(dir)) {
      if (!listed.has(f))
        problems.push(`${f}: not listed in the manifest's files, so no signature covers it`);
    }
    if (problems.length > 0) {
      const code = problems.some((p) => p.includes("SHA-256"))
        ? "PACKAGE_HASH_MISMATCH"
        : problems.some((p) => p.includes("missing"))
          ? "PACKAGE_FILE_MISSING"
          : "PACKAGE_UNLISTED_FILE";
      if (fail({ step: "files", code, detail: problems.join("\n"), ...(field ? { field } : {}) }))
        return result;
    } else {
      filesOk = true;
      pass("files", `${Object.keys(manifest.files).length} file(s) match their SHA-256`);
    }
  }

  // 5–7. ONNX
  if (options.load && manifest && filesOk) {
    const { backend, sessionOptions } = options.load;
    // Steps 5–7 run on each execution provider in turn (src/inference/providers.ts): a
    // provider serves only if the model loads on it and its tensors and self-test pass there.
    const m = manifest;
    let model: LoadedModel;
    try {
      model = await openModel(dir, m, backend, sessionOptions);
    } catch (err) {
      const e = err as PackageError;
      const step: CheckStep =
        e.code === "PACKAGE_SELFTEST_FAILED"
          ? "selfTest"
          : e.code === "PACKAGE_TENSOR_MISMATCH"
            ? "tensors"
            : "onnx";
      if (step !== "onnx") pass("onnx", `loaded ${m.modelFile}`);
      if (step === "selfTest") pass("tensors", tensorsText(m));
      fail({
        step,
        code: e.code ?? "PACKAGE_ONNX_LOAD",
        detail: errorMessage(err),
        ...(e.field ? { field: e.field } : {}),
      });
      return result;
    }
    const { session } = model;
    pass("onnx", `loaded ${m.modelFile} on ${session.provider} (${model.selection?.reason ?? "loaded"})`);
    pass("tensors", tensorsText(m));
    try {
      const ms = await timePerWindow(m, session);
      result.selfTestMsPerWindow = ms;
      pass("selfTest", `${m.selfTest.length} case(s) reproduced; ${ms.toFixed(3)} ms per window`);
    } catch (err) {
      fail({ step: "selfTest", code: "PACKAGE_SELFTEST_FAILED", detail: errorMessage(err) });
    }
    if (checks.every((c) => c.ok)) {
      result.model = model;
      result.ok = true;
      return result;
    }
    await session.release().catch(() => undefined);
    return result;
  }
  result.ok = checks.length > 0 && checks.every((c) => c.ok) && manifest !== undefined && filesOk;
  return result;
}

function tensorsText(manifest: Manifest): string {
  return `input ${manifest.input.tensor} [batch,${inputShape(manifest.input).join(",")}]; outputs ${manifest.outputs.map((o) => o.tensor).join(", ")}`;
}

/** Median time of a batch-1 run on the first self-test input (or zeros), after a warm-up. */
export async function timePerWindow(manifest: Manifest, session: ModelSession): Promise<number> {
  const shape = [1, ...inputShape(manifest.input)];
  const n = shape.reduce((a, b) => a * b, 1);
  const input = Float32Array.from(manifest.selfTest[0]?.input ?? new Array<number>(n).fill(0));
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t0 = performance.now();
    await session.run(manifest.input.tensor, input, shape);
    if (i > 0) times.push(session.lastRunMs ?? performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? 0;
}

/** One line per check, for the CLI. */
export function formatChecks(checks: readonly Check[]): string {
  return checks
    .map((c) => {
      const lines = c.detail.split("\n");
      const head = `${c.ok ? "ok  " : "FAIL"} ${c.step.padEnd(9)} ${lines[0] ?? ""}${c.code && !c.ok ? ` [${c.code}]` : ""}`;
      return [head, ...lines.slice(1).map((l) => `               ${l}`)].join("\n");
    })
    .join("\n");
}
