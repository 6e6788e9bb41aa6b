/**
 * Loading one model package folder into a servable model.
 *
 * Contract: `loadPackage(dir)` either returns a `LoadedModel` that has passed every check, in
 * this order — manifest parses and validates, every file listed in `files` exists with the
 * stated SHA-256, ONNX Runtime loads the model, the input and output tensors match the
 * manifest by name and shape, every `selfTest` case reproduces its outputs within tolerance —
 * or throws a `PackageError` whose `code` says which step failed and whose `field` names the
 * manifest field when there is one. A failed load releases anything it created.
 * When the backend places models (src/inference/placement.ts), the warmed-up model is then put
 * on the main thread or the worker pool; one that belongs on the other side is opened there
 * again, with the same checks and warm-up, and its first session released.
 */

import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { PackageError, errorMessage } from "../errors.js";
import type { InferenceBackend, ModelSession, OutputTensor, SessionOptions } from "../inference/ort.js";
import { warmupMsPerBatch, type PlacementDecision } from "../inference/placement.js";
import { openOnBestProvider, warmUp, type ProviderSelection } from "../inference/providers.js";
import { formatManifestErrors, validateManifest } from "./manifest.js";
import type { Manifest, OutputSpec } from "./manifest-types.js";
import { inputShape } from "./manifest-types.js";

export interface LoadedModel {
  /** `name@version`. */
  key: string;
  manifest: Manifest;
  dir: string;
  session: ModelSession;
  /** Largest batch the model's input accepts (1 when its batch dimension is fixed at 1). */
  maxBatch: number;
  /** Outputs whose tensor carries one value per batch item (the only ones alerts may use). */
  scalarOutputs: Set<string>;
  /** The execution provider that serves, why, and why each other one does not. */
  selection?: ProviderSelection;
  /** Main thread or worker pool, and why (src/inference/placement.ts); absent: the backend does not place. */
  placement?: PlacementDecision;
}

export type OutputValue = number | string | number[] | null;

export async function sha256File(file: string): Promise<string> {
  const bytes = await fs.readFile(file);
  return createHash("sha256").update(bytes).digest("hex");
}

export async function readManifest(dir: string): Promise<Manifest> {
  const file = path.join(dir, "manifest.json");
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (err) {
    throw new PackageError("PACKAGE_NO_MANIFEST", `cannot read ${file}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text) as unknown;
  } catch (err) {
    throw new PackageError("PACKAGE_MANIFEST_JSON", `manifest.json is not valid JSON: ${errorMessage(err)}`);
  }
  const result = validateManifest(json);
  if (!result.ok) {
    throw new PackageError(
      "PACKAGE_MANIFEST_INVALID",
      `invalid manifest: ${formatManifestErrors(result.errors)}`,
      {
        field: result.errors[0]?.field,
      },
    );
  }
  return result.manifest;
}

export async function verifyFiles(dir: string, manifest: Manifest): Promise<void> {
  for (const [name, expected] of Object.entries(manifest.files)) {
    const file = path.join(dir, name);
    let actual: string;
    try {
      actual = await sha256File(file);
    } catch (err) {
      throw new PackageError(
        "PACKAGE_FILE_MISSING",
        `file ${name} listed in the manifest is missing: ${errorMessage(err)}`,
        {
          field: `files[${JSON.stringify(name)}]`,
        },
      );
    }
    if (actual !== expected.toLowerCase()) {
      throw new PackageError(
        "PACKAGE_HASH_MISMATCH",
        `file ${name} has SHA-256 ${actual}, the manifest says ${expected}`,
        {
          field: `files[${JSON.stringify(name)}]`,
        },
      );
    }
  }
}

function describeDims(dims: readonly (number | string)[]): string {
  return `[${dims.map((d) => (typeof d === "number" ? String(d) : d || "?")).join(",")}]`;
}

/** Checks the session's tensors against the manifest; returns the max batch and scalar outputs. */
export function checkTensors(
  manifest: Manifest,
  session: ModelSession,
): { maxBatch: number; scalarOutputs: Set<string> } {
  const input = session.inputs.find((i) => i.name === manifest.input.tensor);
  if (!input) {
    throw new PackageError(
      "PACKAGE_TENSOR_MISMATCH",
      `input tensor "${manifest.input.tensor}" is not in the model (it has: ${session.inputs.map((i) => i.name).join(", ")})`,
      { field: "input.tensor" },
    );
  }
  if (session.inputs.length !== 1) {
    throw new PackageError(
      "PACKAGE_TENSOR_MISMATCH",
      `the model has ${session.inputs.length} inputs; Vigil feeds exactly one (${manifest.input.tensor})`,
      { field: "input.tensor" },
    );
  }
  if (input.type !== "float32") {
    throw new PackageError(
      "PACKAGE_TENSOR_MISMATCH",
      `input "${input.name}" is ${input.type}; it must be float32`,
      {
        field: "input.tensor",
      },
    );
  }
  const expected = inputShape(manifest.input);
  let maxBatch = Number.POSITIVE_INFINITY;
  if (input.dims.length > 0) {
    if (input.dims.length !== expected.length + 1) {
      throw new PackageError(
        "PACKAGE_TENSOR_MISMATCH",
        `input "${input.name}" has shape ${describeDims(input.dims)}; the manifest (layout ${manifest.input.layout}) needs [batch,${expected.join(",")}]`,
        { field: "input.layout" },
      );
    }
    const batchDim = input.dims[0];
    if (typeof batchDim === "number" && batchDim > 0) {
      if (batchDim !== 1) {
        throw new PackageError(
          "PACKAGE_TENSOR_MISMATCH",
          `input "${input.name}" has a fixed batch dimension of ${batchDim}; use a dynamic batch dimension or 1`,
          { field: "input.tensor" },
        );
      }
      maxBatch = 1;
    }
    expected.forEach((size, i) => {
      const dim = input.dims[i + 1];
      if (typeof dim === "number" && dim > 0 && dim !== size) {
        throw new PackageError(
          "PACKAGE_TENSOR_MISMATCH",
          `input "${input.name}" has shape ${describeDims(input.dims)}; the manifest (layout ${manifest.input.layout}) needs [batch,${expected.join(",")}]`,
          {
            field:
              i === expected.length - 1 && manifest.input.layout !== "NCT" ? "input.signals" : "input.window",
          },
        );
      }
    });
  }
  const scalarOutputs = new Set<string>();
  manifest.outputs.forEach((o, i) => {
    const info = session.outputs.find((t) => t.name === o.tensor);
    if (!info) {
      throw new PackageError(
        "PACKAGE_TENSOR_MISMATCH",
        `output tensor "${o.tensor}" is not in the model (it has: ${session.outputs.map((t) => t.name).join(", ")})`,
        { field: `outputs[${i}].tensor` },
      );
    }
    if (info.dims.length > 2) {
      throw new PackageError(
        "PACKAGE_TENSOR_MISMATCH",
        `output "${o.tensor}" has shape ${describeDims(info.dims)}; outputs must be [batch] or [batch,K]`,
        { field: `outputs[${i}].tensor` },
      );
    }
    const k = info.dims.length === 2 ? info.dims[1] : 1;
    if (k === 1 || info.dims.length === 1) scalarOutputs.add(o.name);
    if (o.labels && typeof k === "number" && k > 0 && k !== o.labels.length) {
      throw new PackageError(
        "PACKAGE_TENSOR_MISMATCH",
        `output "${o.tensor}" has ${k} values per item but ${o.labels.length} labels`,
        { field: `outputs[${i}].labels` },
      );
    }
  });
  manifest.alerts.forEach((rule, i) => {
    const out = session.outputs.find(
      (t) => t.name === manifest.outputs.find((o) => o.name === rule.output)?.tensor,
    );
    const k = out && out.dims.length === 2 ? out.dims[1] : 1;
    if (typeof k === "number" && k > 1) {
      throw new PackageError(
        "PACKAGE_TENSOR_MISMATCH",
        `alert "${rule.id}" watches output "${rule.output}", which has ${k} values per item; alerts need one`,
        { field: `alerts[${i}].output` },
      );
    }
  });
  return { maxBatch, scalarOutputs };
}

/** Per batch item, the value of every output (number, label, array; null if not finite). */
export function decodeOutputs(
  outputs: readonly OutputSpec[],
  tensors: Map<string, OutputTensor>,
  batch: number,
): Record<string, OutputValue>[] {
  const items: Record<string, OutputValue>[] = Array.from({ length: batch }, () => ({}));
  for (const spec of outputs) {
    const t = tensors.get(spec.tensor);
    if (!t) throw new PackageError("OUTPUT_MISSING", `the model returned no tensor "${spec.tensor}"`);
    const per = batch === 0 ? 0 : t.data.length / batch;
    for (let b = 0; b < batch; b++) {
      const slice = Array.from(t.data.subarray(b * per, (b + 1) * per));
      const item = items[b] as Record<string, OutputValue>;
      if (slice.some((v) => !Number.isFinite(v))) {
        item[spec.name] = null;
      } else if (spec.kind === "class" && spec.labels && slice.length === spec.labels.length) {
        let best = 0;
        slice.forEach((v, i) => {
          if (v > (slice[best] ?? Number.NEGATIVE_INFINITY)) best = i;
        });
        item[spec.name] = spec.labels[best] ?? best;
      } else if (slice.length === 1) {
        item[spec.name] = slice[0] ?? null;
      } else {
        item[spec.name] = slice;
      }
    }
  }
  return items;
}

/** Every output of a batch-1 run, flattened in `outputs` order (the selfTest comparison form). */
export function flattenOutputs(outputs: readonly OutputSpec[], tensors: Map<string, OutputTensor>): number[] {
  const flat: number[] = [];
  for (const spec of outputs) {
    const t = tensors.get(spec.tensor);
    if (t) flat.push(...t.data);
  }
  return flat;
}

export async function runSelfTest(manifest: Manifest, session: ModelSession): Promise<void> {
  const shape = [1, ...inputShape(manifest.input)];
  for (let i = 0; i < manifest.selfTest.length; i++) {
    const tc = manifest.selfTest[i];
    if (!tc) continue;
    let tensors: Map<string, OutputTensor>;
    try {
      tensors = await session.run(manifest.input.tensor, Float32Array.from(tc.input), shape);
    } catch (err) {
      throw new PackageError(
        "PACKAGE_SELFTEST_FAILED",
        `selfTest[${i}] could not run: ${errorMessage(err)}`,
        {
          field: `selfTest[${i}]`,
        },
      );
    }
    const actual = flattenOutputs(manifest.outputs, tensors);
    if (actual.length !== tc.output.length) {
      throw new PackageError(
        "PACKAGE_SELFTEST_FAILED",
        `selfTest[${i}] expects ${tc.output.length} output values, the model gave ${actual.length}`,
        { field: `selfTest[${i}].output` },
      );
    }
    for (let j = 0; j < actual.length; j++) {
      const a = actual[j] ?? Number.NaN;
      const e = tc.output[j] ?? Number.NaN;
      if (!(Math.abs(a - e) <= tc.tolerance)) {
        throw new PackageError(
          "PACKAGE_SELFTEST_FAILED",
          `selfTest[${i}] output[${j}] is ${a}, expected ${e} ± ${tc.tolerance}`,
          { field: `selfTest[${i}].output[${j}]` },
        );
      }
    }
  }
}

/**
 * The model of a validated package with files verified, loaded on the execution provider
 * `openOnBestProvider` chooses: the tensors checked and every self-test case reproduced on it,
 * warmed up. Throws the `PackageError` of the tensor check or self-test, or `PACKAGE_ONNX_LOAD`.
 */
export async function openModel(
  dir: string,
  manifest: Manifest,
  backend: InferenceBackend,
  options: SessionOptions,
): Promise<LoadedModel> {
  const checked = new Map<ModelSession, { maxBatch: number; scalarOutputs: Set<string> }>();
  const verify = async (session: ModelSession): Promise<void> => {
    checked.set(session, checkTensors(manifest, session));
    await runSelfTest(manifest, session);
  };
  const modelPath = path.join(dir, manifest.modelFile);
  const open = (on: InferenceBackend, opts: SessionOptions): ReturnType<typeof openOnBestProvider> =>
    openOnBestProvider(on, modelPath, opts, verify, (session) =>
      warmUp.plan(
        manifest.input.tensor,
        inputShape(manifest.input),
        manifest.selfTest[0]?.input,
        opts,
        checked.get(session)?.maxBatch ?? 1,
      ),
    );
  let opened: { session: ModelSession; selection: ProviderSelection };
  let placement: PlacementDecision | undefined;
  try {
    opened = await open(backend, options);
    const placed = await placeOpened(backend, opened, (on) =>
      // The provider is chosen; there, every check and the warm-up run again.
      open(on, {
        ...options,
        executionProviders: [opened.selection.provider],
        ...(options.serving ? { serving: { ...options.serving, providerBenchmark: false } } : {}),
      }),
    );
    opened = { session: placed.session, selection: opened.selection };
    placement = placed.placement;
  } catch (err) {
    if (err instanceof PackageError) throw err;
    throw new PackageError("PACKAGE_ONNX_LOAD", errorMessage(err), {
      field: `files[${JSON.stringify(manifest.modelFile)}]`,
      cause: err,
    });
  }
  const { session, selection } = opened;
  const { maxBatch, scalarOutputs } = checked.get(session) ?? checkTensors(manifest, session);
  return {
    key: `${manifest.name}@${manifest.version}`,
    manifest,
    dir,
    session,
    maxBatch,
    scalarOutputs,
    selection,
    ...(placement ? { placement } : {}),
  };
}

/**
 * Asks the backend where a model just opened should serve, and moves it there when that is the
 * other thread: opened again by `reopen` (if that fails, the model serves where it was opened,
 * and the placement says why), then the first session is released.
 */
async function placeOpened(
  backend: InferenceBackend,
  opened: { session: ModelSession; selection: ProviderSelection },
  reopen: (on: InferenceBackend) => Promise<{ session: ModelSession; selection: ProviderSelection }>,
): Promise<{ session: ModelSession; placement: PlacementDecision | undefined }> {
  const answer = backend.place?.({ session: opened.session, selection: opened.selection });
  if (!answer) return { session: opened.session, placement: undefined };
  const { decision, reopenOn } = answer;
  if (!reopenOn) return { session: opened.session, placement: decision };
  let moved: Awaited<ReturnType<typeof reopen>>;
  try {
    moved = await reopen(reopenOn);
  } catch (err) {
    const stays = decision.measuredOn ?? (decision.thread === "main" ? "pool" : "main");
    return {
      session: opened.session,
      placement: {
        ...decision,
        thread: stays,
        reason: `${decision.reason}; but opening it there failed (${errorMessage(err)}), so it stays on the ${stays === "main" ? "main thread" : "worker pool"}`,
        moved: { error: errorMessage(err) },
      },
    };
  }
  await opened.session.release().catch(() => undefined);
  const w = moved.selection.warmup;
  return {
    session: moved.session,
    placement: {
      ...decision,
      moved: {
        loadMs: moved.session.details?.loadMs ?? null,
        msPerBatch: warmupMsPerBatch(w) ?? null,
      },
    },
  };
}

/** Validate, verify and load a package; the returned model is ready to serve. */
export async function loadPackage(
  dir: string,
  backend: InferenceBackend,
  options: SessionOptions,
): Promise<LoadedModel> {
  const manifest = await readManifest(dir);
  await verifyFiles(dir, manifest);
  return openModel(dir, manifest, backend, options);
}
