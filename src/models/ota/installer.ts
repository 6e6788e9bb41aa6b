/**
 * Installing a package archive into `<dataDir>/models/<name>/<version>/`, with every check;
 * shared by over-the-air updates and `vigil models install`.
 *
 * Contract: `stage(archive, id, policy)` extracts the archive safely into
 * `<root>/.staging/<id>/` (see archive.ts) and verifies it with every step of verify.ts,
 * stopping at the first failure; it resolves with the loaded, self-tested model, or throws a
 * `PackageError` whose message names the step and says exactly what failed, after removing the
 * staging folder. `place(staged)` moves the verified folder into place with one rename (atomic
 * on one file system) and fsyncs the parent; if that version is already installed with the same
 * manifest bytes it keeps the installed copy, and with other bytes it refuses
 * (`PACKAGE_VERSION_CONFLICT`: a changed package needs a new version). Nothing is ever written
 * outside `<root>`. `clean()` removes staging left by a crash.
 */

import fs from "node:fs";
import path from "node:path";
import { PackageError } from "../../errors.js";
import type { InferenceBackend, SessionOptions } from "../../inference/ort.js";
import { extractPackage, type ExtractLimits } from "../archive.js";
import type { Manifest } from "../manifest-types.js";
import type { LoadedModel } from "../package.js";
import type { TrustedKey } from "../signing.js";
import { firstFailure, verifyPackageDir, type Check, type VerifyResult } from "../verify.js";
import type { TrialCriteria } from "./requests.js";
import { syncDir } from "./state.js";

export interface InstallerOptions {
  /** `<dataDir>/models`. */
  root: string;
  keys: () => readonly TrustedKey[];
  requireSignature: boolean;
  extract: ExtractLimits;
  backend: InferenceBackend;
  sessionOptions: SessionOptions;
}

export interface StagedPackage {
  dir: string;
  model: LoadedModel;
  manifestBytes: Buffer;
  trial: TrialCriteria | false | undefined;
  selfTestMsPerWindow: number;
  verify: VerifyResult;
}

export class PackageInstaller {
  constructor(private readonly options: InstallerOptions) {}

  get root(): string {
    return this.options.root;
  }

  versionDir(name: string, version: string): string {
    return path.join(this.options.root, name, version);
  }

  /** Removes staging folders a crash may have left. */
  clean(): void {
    fs.rmSync(path.join(this.options.root, ".staging"), { recursive: true, force: true });
  }

  async stage(archive: string, id: string, policy?: (m: Manifest) => void): Promise<StagedPackage> {
    const dir = path.join(this.options.root, ".staging", id);
    fs.rmSync(dir, { recursive: true, force: true });
    await extractPackage(archive, dir, this.options.extract);
    let result: VerifyResult;
    try {
      result = await verifyPackageDir(dir, {
        keys: this.options.keys(),
        requireSignature: this.options.requireSignature,
        stopAtFirstFailure: true,
        load: { backend: this.options.backend, sessionOptions: this.options.sessionOptions },
        ...(policy ? { policy } : {}),
      });
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    const failed = firstFailure(result);
    if (!result.ok || !result.model || !result.manifestBytes || failed) {
      fs.rmSync(dir, { recursive: true, force: true });
      const c: Check = failed ?? {
        step: "manifest",
        ok: false,
        detail: "verification did not complete",
        code: "PACKAGE_INVALID",
      };
      throw new PackageError(c.code ?? "PACKAGE_INVALID", `${c.step}: ${c.detail}`, {
        ...(c.field ? { field: c.field } : {}),
      });
    }
    return {
      dir,
      model: result.model,
      manifestBytes: result.manifestBytes,
      trial: result.trial,
      selfTestMsPerWindow: result.selfTestMsPerWindow ?? 0,
      verify: result,
    };
  }

  /** Moves a staged package into place; returns the model with its final folder. */
  place(staged: StagedPackage): { model: LoadedModel; reused: boolean } {
    const { name, version } = staged.model.manifest;
    const target = this.versionDir(name, version);
    if (fs.existsSync(target)) {
      let installed: Buffer | undefined;
      try {
        installed = fs.readFileSync(path.join(target, "manifest.json"));
      } catch {
        installed = undefined;
      }
      if (installed && installed.equals(staged.manifestBytes)) {
        fs.rmSync(staged.dir, { recursive: true, force: true });
        return { model: { ...staged.model, dir: target }, reused: true };
      }
      if (installed) {
        fs.rmSync(staged.dir, { recursive: true, force: true });
        throw new PackageError(
          "PACKAGE_VERSION_CONFLICT",
          `${name}@${version} is already installed with a different manifest; a changed package needs a new version`,
        );
      }
      // A folder without a manifest is debris of an interrupted install.
      fs.rmSync(target, { recursive: true, force: true });
    }
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.renameSync(staged.dir, target);
    syncDir(path.dirname(target));
    return { model: { ...staged.model, dir: target }, reused: false };
  }

  /** Deletes an installed version (never anything outside the root). */
  remove(name: string, version: string): void {
    const target = this.versionDir(name, version);
    if (!path.resolve(target).startsWith(path.resolve(this.options.root) + path.sep)) return;
    fs.rmSync(target, { recursive: true, force: true });
    try {
      fs.rmdirSync(path.dirname(target));
    } catch {
      // other versions remain
    }
  }
}
