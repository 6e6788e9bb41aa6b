/**
 * The benchmark's sensor traffic, shared by the publisher (which sends it) and the measuring
 * side (which knows, from the same numbers, which windows must close and when). Two workloads,
 * one per shipped model a plant would run on such traffic (`--workload`):
 *
 * - `turbofan` (default; issue 6's "1,000 assets × 14 signals, shipped model"): A engines
 *   (`engine-0001`, ...), each publishing one row per cycle on `plant/<asset>/row`,
 *   `{"ts": <epoch ms>, "values": {s2, s3, ..., s21, cycle}}`: the 14 sensors turbofan-rul 2.0.0
 *   reads plus its 15th input, the engine's age `cycle`, from the demo's degradation generator
 *   fitted to C-MAPSS FD001 (`src/demo/turbofan.ts`, so the model sees realistic inputs and
 *   some engines raise alerts); with S > 15, S − 15 more C-MAPSS columns that the model does not
 *   read (op1..op3, s1, s5, ...). Window: count, 30 rows, hop 1 — every row from an asset's 30th
 *   on closes a window, so predictions flow as steadily as the rows.
 * - `pump`: A pumps (`pump-0001`, ...), rows of S signals, the pump-health model's four from the
 *   demo plant's physics (`src/demo/plant-physics.ts`) and S − 4 that no model reads. Window:
 *   time, size 10 s, hop 2 s, sample 1 s, allowed lateness 0: a window [start, start + 10 s)
 *   closes at the row whose ts equals its end; the first complete one is closed by row 10, then
 *   every 2nd row closes the next (windows ending at t0 + 2 s ... t0 + 8 s are skipped by Vigil:
 *   nothing fills their first slots). Every asset's window closes on the same 2 s boundary.
 *
 * Row r of every asset has ts = t0 + r·1000, t0 a multiple of the window's hop; sending is round
 * by round (row r of every asset, then row r+1). Event time is chosen by the publisher, so
 * windows close deterministically, whatever the wall clock does.
 */

import fs from "node:fs";
import path from "node:path";
import { createMachine, sample, type Machine } from "../../src/demo/plant-physics.js";
import { FD001_PARAMS } from "../../src/demo/turbofan-params.js";
import { createTurbofan, engineRow, type Turbofan } from "../../src/demo/turbofan.js";
import { ROOT } from "./paths.js";

export const ROW_MS = 1_000;

export type WorkloadName = "turbofan" | "pump";
export const WORKLOADS: readonly WorkloadName[] = ["turbofan", "pump"];

interface WindowSpec {
  type: string;
  size?: number;
  hop?: number;
  sizeMs?: number;
  hopMs?: number;
  sampleMs?: number;
}

/** The part of a model manifest the bench reads. */
export interface BenchManifest {
  name: string;
  version: string;
  input: {
    tensor: string;
    signals: string[];
    window: WindowSpec;
    features: { type: string; functions?: string[] };
    layout: string;
  };
}

export interface Workload {
  readonly name: WorkloadName;
  /** The model package the gateway serves (`models/<model>/<version>`). */
  readonly model: string;
  readonly version: string;
  readonly packageDir: string;
  /** The folder given to the gateway as `models.dir`: this model only. */
  readonly modelsDir: string;
  readonly manifest: BenchManifest;
  readonly assetPrefix: string;
  /** Signals the model reads from each row; `--signals` may add others. */
  readonly modelSignals: number;
  readonly defaultSignals: number;
  /** t0 is a multiple of this (the time window's hop; 1 s for count windows). */
  readonly alignMs: number;
  /** One line for the report. */
  readonly describe: string;
  /** Whether row r of an asset (r = 0 its first) closes a window. */
  closes(r: number): boolean;
  /** The model's input dims for `batch` windows. */
  inputDims(batch: number): number[];
}

function readManifest(dir: string): BenchManifest {
  return JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")) as BenchManifest;
}

/** The only version folder of a shipped model (the bench serves what `models/` ships). */
function shippedPackage(model: string): string {
  const modelsDir = path.join(ROOT, "models", model);
  const versions = fs
    .readdirSync(modelsDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && /^\d+\.\d+\.\d+$/.test(d.name))
    .map((d) => d.name);
  if (versions.length !== 1) {
    throw new Error(
      `the bench expects exactly one shipped version of ${model}, found: ${versions.join(", ")}`,
    );
  }
  return path.join(modelsDir, versions[0] as string);
}

/** The fields every workload takes from its model package. */
function fromPackage(
  name: WorkloadName,
  packageDir: string,
  manifest: BenchManifest,
): Pick<Workload, "name" | "model" | "version" | "packageDir" | "modelsDir" | "manifest"> {
  return {
    name,
    model: manifest.name,
    version: manifest.version,
    packageDir,
    modelsDir: path.dirname(packageDir),
    manifest,
  };
}

export function workload(name: WorkloadName): Workload {
  if (name === "turbofan") {
    const packageDir = shippedPackage("turbofan-rul");
    const manifest = readManifest(packageDir);
    const w = manifest.input.window;
    const c = manifest.input.signals.length;
    if (w.type !== "count" || !w.size || !w.hop || manifest.input.features.type !== "sequence") {
      throw new Error("the turbofan workload assumes turbofan-rul's count window and sequence features");
    }
    const size = w.size;
    const hop = w.hop;
    return {
      ...fromPackage(name, packageDir, manifest),
      assetPrefix: "engine-",
      modelSignals: c,
      defaultSignals: c,
      alignMs: ROW_MS,
      describe: `${manifest.name}@${manifest.version}, count window ${size} rows, hop ${hop}`,
      closes: (r) => r >= size - 1 && (r - (size - 1)) % hop === 0,
      inputDims: (batch) => (manifest.input.layout === "NCT" ? [batch, c, size] : [batch, size, c]),
    };
  }
  const packageDir = shippedPackage("pump-health");
  const manifest = readManifest(packageDir);
  const w = manifest.input.window;
  if (w.type !== "time" || !w.sizeMs || !w.hopMs || w.sampleMs !== ROW_MS) {
    throw new Error("the pump workload assumes pump-health's 1 s time windows; update bench/lib/workload.ts");
  }
  const sizeMs = w.sizeMs;
  const hopMs = w.hopMs;
  const features = manifest.input.signals.length * (manifest.input.features.functions?.length ?? 1);
  return {
    ...fromPackage(name, packageDir, manifest),
    assetPrefix: "pump-",
    modelSignals: manifest.input.signals.length,
    defaultSignals: 14,
    alignMs: hopMs,
    describe: `${manifest.name}@${manifest.version}, time window ${sizeMs / 1000} s, hop ${hopMs / 1000} s`,
    closes: (r) => {
      const offset = r * ROW_MS;
      return offset >= sizeMs && offset % hopMs === 0;
    },
    inputDims: (batch) => [batch, features],
  };
}

/** A hop-aligned event-time origin, `agoMs` before `nowMs`. */
export function alignedT0(nowEpochMs: number, alignMs: number, agoMs: number): number {
  return Math.floor((nowEpochMs - agoMs) / alignMs) * alignMs;
}

export function assetName(w: Pick<Workload, "assetPrefix">, i: number): string {
  return `${w.assetPrefix}${String(i + 1).padStart(4, "0")}`;
}

/** `engine-0042` / `pump-0042` → 41. */
export function assetIndex(name: string): number {
  return Number(name.slice(name.lastIndexOf("-") + 1)) - 1;
}

export function rowTopic(asset: string, root = "plant"): string {
  return `${root}/${asset}/row`;
}

/** Windows (per asset) closed by rows [rowFrom, rowTo). */
export function windowsClosed(rowFrom: number, rowTo: number, w: Pick<Workload, "closes">): number {
  let n = 0;
  for (let r = rowFrom; r < rowTo; r++) if (w.closes(r)) n++;
  return n;
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/** Payloads of rows [rowFrom, rowTo) for `assets` assets, round-major (row, then asset). */
export class PayloadSource {
  private readonly machines: Machine[] = [];
  private readonly engines: Turbofan[] = [];
  private readonly modelSignals: readonly string[];

  constructor(
    readonly workload: WorkloadName,
    readonly assets: number,
    readonly t0Ms: number,
    /** Signals per row, at least the model's. */
    readonly signals: number,
    seed = 7,
  ) {
    const w = workloadSignals(workload);
    this.modelSignals = w;
    if (signals < w.length) throw new RangeError(`${workload}: at least ${w.length} signals per row`);
    for (let i = 0; i < assets; i++) {
      if (workload === "pump") this.machines.push(createMachine(seed * 100_000 + i, { startMs: t0Ms }));
      else this.engines.push(createTurbofan(seed * 100_000 + i, FD001_PARAMS));
    }
  }

  payload(asset: number, row: number): string {
    const ts = this.t0Ms + row * ROW_MS;
    const values: Record<string, number> = {};
    if (this.workload === "pump") {
      const machine = this.machines[asset];
      if (!machine) throw new RangeError(`no asset ${asset}`);
      const v = sample(machine, ts);
      values.temperature = r3(v.temperature);
      values.vibration = r3(v.vibration);
      values.pressure = r3(v.pressure);
      values.current = r3(v.current);
      for (let k = 1; k <= this.signals - 4; k++) {
        // Other sensors of the site: plausible, deterministic, read by no model.
        values[`aux${String(k).padStart(2, "0")}`] = r3(50 + 10 * Math.sin((row + asset * 7) * 0.1 + k));
      }
    } else {
      const engine = this.engines[asset];
      if (!engine) throw new RangeError(`no asset ${asset}`);
      const all = engineRow(engine, row);
      for (const s of this.modelSignals) values[s] = all[s] as number;
      // Further C-MAPSS columns, in file order, then synthetic ones if S exceeds the columns.
      let extra = this.signals - this.modelSignals.length;
      for (const [k, v] of Object.entries(all)) {
        if (extra <= 0) break;
        if (k in values) continue;
        values[k] = v;
        extra--;
      }
      for (let k = 1; k <= extra; k++) {
        values[`aux${String(k).padStart(2, "0")}`] = r3(50 + 10 * Math.sin((row + asset * 7) * 0.1 + k));
      }
    }
    return JSON.stringify({ ts, values });
  }
}

/** The signals the workload's model reads, in manifest order. */
export function workloadSignals(name: WorkloadName): string[] {
  return workload(name).manifest.input.signals;
}
