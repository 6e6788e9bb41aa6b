/**
 * The set of model packages the gateway knows, and which of them serve.
 *
 * Contract: `scan(dir)` finds every folder holding a `manifest.json` (at depth 1 to 3, e.g.
 * `models/<name>/<version>/`), loads each with every check of `loadPackage`, and serves the
 * highest valid version of each package name. A package that fails a check is kept in the
 * list with state `failed` and its reason; it never serves, and it never stops the others.
 * Lower valid versions are `standby` (their sessions are released until needed).
 * `scan` may take several folders (shipped packages and those installed over the air) and a
 * preferred version per name (the one an update or a rollback made active): it serves the
 * preferred version when it is valid, else the highest valid one. An optional `check` runs
 * before loading each folder (the signature of installed packages); a package it rejects is
 * `failed` like any other. Model updates change what serves with `setServing` and keep the
 * list true with `setStatus` and `forget`.
 */

import type { Dirent } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import type { PackageError } from "../errors.js";
import { errorMessage } from "../errors.js";
import type { InferenceBackend, SessionOptions } from "../inference/ort.js";
import { describePlacement, type PlacementDecision } from "../inference/placement.js";
import { describeSelection, type ProviderSelection } from "../inference/providers.js";
import type { Logger } from "../system/logger.js";
import type { LoadedModel } from "./package.js";
import { loadPackage, readManifest } from "./package.js";
import { compareSemver } from "./semver.js";

export type PackageState = "serving" | "standby" | "failed" | "trial";

export interface PackageStatus {
  name: string;
  version: string;
  dir: string;
  state: PackageState;
  provider?: string;
  /** Why `provider` serves and why every other provider does not (serving packages). */
  selection?: ProviderSelection;
  /** Main thread or worker pool, and why (serving and trial packages). */
  placement?: PlacementDecision;
  error?: string;
  errorCode?: string;
  errorField?: string;
}

async function findPackageDirs(root: string, depth = 3): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await fs.readdir(root, { withFileTypes: true });
  } catch {
    return [];
  }
  if (entries.some((e) => e.isFile() && e.name === "manifest.json")) return [root];
  if (depth === 0) return [];
  const found: string[] = [];
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.isDirectory() && !e.name.startsWith("."))
      found.push(...(await findPackageDirs(path.join(root, e.name), depth - 1)));
  }
  return found;
}

export class ModelRegistry {
  private serving = new Map<string, LoadedModel>();
  private statuses: PackageStatus[] = [];

  constructor(
    private readonly backend: InferenceBackend,
    private readonly sessionOptions: SessionOptions,
    private readonly log: Logger,
  ) {}

  /** Load every package under `dir` (or each of the folders). Never throws for a bad package. */
  async scan(
    dir: string | readonly string[],
    options: {
      preferred?: ReadonlyMap<string, string>;
      check?: (packageDir: string) => Promise<void>;
    } = {},
  ): Promise<void> {
    const roots = (typeof dir === "string" ? [dir] : dir).map((d) => path.resolve(d));
    const found: { root: string; dir: string }[] = [];
    for (const root of roots) for (const d of await findPackageDirs(root)) found.push({ root, dir: d });
    if (found.length === 0) this.log.warn({ dir }, "no model packages found; nothing will be predicted");
    const loaded: LoadedModel[] = [];
    const statuses: PackageStatus[] = [];
    for (const { root, dir: d } of found) {
      try {
        await options.check?.(d);
        const model = await loadPackage(d, this.backend, this.sessionOptions);
        loaded.push(model);
      } catch (err) {
        const e = err as PackageError;
        const manifest = await readManifest(d).catch(() => undefined);
        // Without a readable manifest, name it from the folders: <name>/<version>/ or <name>/.
        const flat = path.dirname(d) === root;
        const status: PackageStatus = {
          name: manifest?.name ?? (flat ? path.basename(d) : path.basename(path.dirname(d))),
          version: manifest?.version ?? (flat ? "unknown" : path.basename(d)),
          dir: d,
          state: "failed",
          error: errorMessage(err),
          ...(e.code ? { errorCode: e.code } : {}),
          ...(e.field ? { errorField: e.field } : {}),
        };
        statuses.push(status);
        this.log.error({ dir: d, code: e.code, field: e.field }, `model package rejected: ${status.error}`);
      }
    }
    const byName = new Map<string, LoadedModel[]>();
    for (const m of loaded) byName.set(m.manifest.name, [...(byName.get(m.manifest.name) ?? []), m]);
    for (const [name, versions] of byName) {
      versions.sort((a, b) => compareSemver(b.manifest.version, a.manifest.version));
      const want = options.preferred?.get(name);
      const preferred = versions.findIndex((v) => v.manifest.version === want);
      if (preferred > 0) versions.unshift(...versions.splice(preferred, 1));
      else if (want !== undefined && preferred < 0)
        this.log.warn(
          { model: name, preferred: want },
          "the version made active by an update is not valid here; serving the highest valid one",
        );
      const [best, ...rest] = versions;
      if (!best) continue;
      this.serving.set(name, best);
      statuses.push({
        name,
        version: best.manifest.version,
        dir: best.dir,
        state: "serving",
        provider: best.session.provider,
        ...(best.selection ? { selection: best.selection } : {}),
        ...(best.placement ? { placement: best.placement } : {}),
      });
      this.log.info(
        {
          model: best.key,
          provider: best.session.provider,
          dir: best.dir,
          ...(best.selection ? { providers: describeSelection(best.selection) } : {}),
          ...(best.placement ? { placement: best.placement } : {}),
        },
        `model ${best.key} serving on ${best.session.provider} (self-test passed${best.selection ? `: ${best.selection.reason}` : ""})${best.placement ? `, ${describePlacement(best.placement)}` : ""}`,
      );
      if (best.selection?.warmup?.error)
        this.log.warn(
          { model: best.key, batch: best.selection.warmup.batch, err: best.selection.warmup.error },
          "warm-up at the serving batch failed; batches of that size will fail",
        );
      for (const r of rest) {
        statuses.push({
          name,
          version: r.manifest.version,
          dir: r.dir,
          state: "standby",
          provider: r.session.provider,
        });
        await r.session.release().catch(() => undefined);
      }
    }
    this.statuses = statuses.sort(
      (a, b) => a.name.localeCompare(b.name) || compareSemver(b.version, a.version),
    );
  }

  /** Models serving now, in name order. */
  active(): LoadedModel[] {
    return [...this.serving.values()].sort((a, b) => a.manifest.name.localeCompare(b.manifest.name));
  }

  get(name: string): LoadedModel | undefined {
    return this.serving.get(name);
  }

  status(): PackageStatus[] {
    return this.statuses.map((s) => ({ ...s }));
  }

  /** Serve `model` for its name; the version that served before becomes `standby`. Returns it. */
  setServing(model: LoadedModel): LoadedModel | undefined {
    const name = model.manifest.name;
    const previous = this.serving.get(name);
    this.serving.set(name, model);
    if (previous)
      this.setStatus({ name, version: previous.manifest.version, dir: previous.dir, state: "standby" });
    this.setStatus({
      name,
      version: model.manifest.version,
      dir: model.dir,
      state: "serving",
      provider: model.session.provider,
      ...(model.selection ? { selection: model.selection } : {}),
      ...(model.placement ? { placement: model.placement } : {}),
    });
    if (model.placement)
      this.log.info(
        { model: model.key, provider: model.session.provider, placement: model.placement },
        `model ${model.key} serving on ${model.session.provider}, ${describePlacement(model.placement)}`,
      );
    return previous;
  }

  /** Adds or replaces the status of one package version. */
  setStatus(status: PackageStatus): void {
    this.statuses = this.statuses.filter((s) => !(s.name === status.name && s.version === status.version));
    this.statuses.push({ ...status });
    this.statuses.sort((a, b) => a.name.localeCompare(b.name) || compareSemver(b.version, a.version));
  }

  /** Drops a version that is no longer installed from the list. */
  forget(name: string, version: string): void {
    this.statuses = this.statuses.filter((s) => !(s.name === name && s.version === version));
  }

  async close(): Promise<void> {
    for (const m of this.serving.values()) await m.session.release().catch(() => undefined);
    this.serving.clear();
  }
}
