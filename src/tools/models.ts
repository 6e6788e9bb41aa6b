/**
 * `vigil models keygen | sign | verify | pack | install` (contract §1, §4): the package tooling.
 *
 * Contract: each function does one command and returns the lines to print; a failure throws a
 * `VigilError`/`PackageError` whose first line is the reason (the CLI prints it and exits 1).
 * - keygen: writes `<name>.key` (PKCS#8 PEM, mode 0600) and `<name>.pub` (SPKI PEM) into the
 *   folder; never overwrites.
 * - sign: checks that the manifest validates and every listed file matches its SHA-256 (a
 *   broken package is never signed), then writes `manifest.sig` (base64 Ed25519 over the
 *   exact bytes of manifest.json).
 * - verify: a folder or a `.tgz` (extracted safely into a temporary folder); runs every check
 *   it can — archive, signature (against `--key` files and/or the config's trusted keys),
 *   manifest, files, ONNX load, tensors, self-test — and reports each, passed or failed, with
 *   the exact reason. `ok` is false when any failed.
 * - pack: checks like sign (signature optional; reported), then writes a `.tgz` of exactly
 *   manifest.json, manifest.sig (when present) and the listed files; reports its SHA-256 and
 *   size, the two values a deploy request needs.
 * - install: the over-the-air checks on a local `.tgz`, into `<dataDir>/models`, made active
 *   for the next start; refused while a gateway runs on that data folder (deploy over MQTT
 *   then), and for a duplicate or (without `allowDowngrade`) a lower version.
 */

import { createHash, createPublicKey } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { VigilConfig } from "../config/types.js";
import { PackageError, VigilError, errorMessage } from "../errors.js";
import { OrtBackend } from "../inference/ort.js";
import { extractPackage, packPackage } from "../models/archive.js";
import { PackageInstaller } from "../models/ota/installer.js";
import { DataDirLock, StateFile } from "../models/ota/state.js";
import { compareSemver } from "../models/semver.js";
import {
  SIGNATURE_FILE,
  generateKeyPair,
  keyId,
  loadTrustedKeys,
  parsePrivateKey,
  signManifest,
  type TrustedKey,
} from "../models/signing.js";
import { firstFailure, formatChecks, verifyPackageDir, type Check } from "../models/verify.js";

export interface ToolOutput {
  ok: boolean;
  lines: string[];
  /** The one-line reason when not ok. */
  reason?: string;
}

const SESSION = { executionProviders: "auto", intraOpThreads: 1, graphOptimizationLevel: "all" } as const;

export function keygen(outDir: string, name = "vigil-signing"): ToolOutput {
  fs.mkdirSync(outDir, { recursive: true });
  const keyFile = path.join(outDir, `${name}.key`);
  const pubFile = path.join(outDir, `${name}.pub`);
  for (const f of [keyFile, pubFile]) {
    if (fs.existsSync(f)) throw new VigilError("KEY_EXISTS", `${f} exists; not overwriting a key`);
  }
  const pair = generateKeyPair();
  fs.writeFileSync(keyFile, pair.privateKeyPem, { mode: 0o600, flag: "wx" });
  fs.writeFileSync(pubFile, pair.publicKeyPem, { mode: 0o644, flag: "wx" });
  return {
    ok: true,
    lines: [
      `private key ${keyFile} (keep it secret; sign with: vigil models sign DIR --key ${keyFile})`,
      `public key  ${pubFile} (add it to models.trustedKeys on the gateways)`,
      `key id      ${pair.keyId}`,
    ],
  };
}

/** Manifest and files of a folder, without signature or ONNX: what sign and pack require. */
async function checkContent(dir: string): Promise<{ checks: Check[]; files: string[] }> {
  const result = await verifyPackageDir(dir, { keys: [], requireSignature: false, stopAtFirstFailure: true });
  const failed = firstFailure(result);
  if (failed || !result.manifest) {
    const c: Check = failed ?? {
      step: "manifest",
      ok: false,
      detail: "could not be read",
      code: "PACKAGE_INVALID",
    };
    throw new PackageError(c.code ?? "PACKAGE_INVALID", `${c.step}: ${c.detail.split("\n").join("; ")}`);
  }
  return {
    checks: result.checks.filter((c) => c.step !== "signature"),
    files: Object.keys(result.manifest.files),
  };
}

export async function sign(dir: string, keyFile: string): Promise<ToolOutput> {
  await checkContent(dir);
  let pem: Buffer;
  try {
    pem = fs.readFileSync(keyFile);
  } catch (err) {
    throw new VigilError("KEY_UNREADABLE", `cannot read ${keyFile}: ${errorMessage(err)}`);
  }
  const key = parsePrivateKey(pem, keyFile);
  const bytes = fs.readFileSync(path.join(dir, "manifest.json"));
  const sigFile = path.join(dir, SIGNATURE_FILE);
  fs.writeFileSync(sigFile, `${signManifest(bytes, key)}\n`);
  const id = keyId(createPublicKey(key));
  return { ok: true, lines: [`signed ${path.join(dir, "manifest.json")} with key ${id}: wrote ${sigFile}`] };
}

export interface VerifyToolOptions {
  keyFiles: readonly string[];
  config?: VigilConfig;
  /** Skip the ONNX steps. */
  noOnnx?: boolean;
}

export async function verify(pkg: string, options: VerifyToolOptions): Promise<ToolOutput> {
  const keys: TrustedKey[] = [];
  const keyLines: string[] = [];
  const loaded = loadTrustedKeys([...options.keyFiles, ...(options.config?.models.trustedKeys ?? [])]);
  keys.push(...loaded.keys);
  for (const e of loaded.errors) keyLines.push(`warning: key ${e.path} not used: ${e.reason}`);
  let dir = pkg;
  let temp: string | undefined;
  const archiveChecks: Check[] = [];
  if (fs.statSync(pkg).isFile()) {
    temp = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-verify-"));
    dir = path.join(temp, "pkg");
    const limits = options.config?.models.ota.extract ?? { maxFiles: 1_100, maxBytes: 1_073_741_824 };
    try {
      const r = await extractPackage(pkg, dir, limits);
      const sha = createHash("sha256").update(fs.readFileSync(pkg)).digest("hex");
      archiveChecks.push({
        step: "archive",
        ok: true,
        detail: `${r.files.length} file(s), ${r.bytes} bytes; .tgz SHA-256 ${sha}, ${fs.statSync(pkg).size} bytes`,
      });
    } catch (err) {
      fs.rmSync(temp, { recursive: true, force: true });
      const e = err as PackageError;
      const checks: Check[] = [{ step: "archive", ok: false, detail: errorMessage(err), code: e.code }];
      return {
        ok: false,
        lines: [...keyLines, formatChecks(checks)],
        reason: `archive: ${errorMessage(err)}`,
      };
    }
  }
  try {
    const result = await verifyPackageDir(dir, {
      keys,
      requireSignature: true,
      stopAtFirstFailure: false,
      ...(options.noOnnx ? {} : { load: { backend: new OrtBackend(), sessionOptions: SESSION } }),
    });
    await result.model?.session.release().catch(() => undefined);
    const checks = [...archiveChecks, ...result.checks];
    const failed = checks.find((c) => !c.ok);
    return {
      ok: failed === undefined,
      lines: [...keyLines, formatChecks(checks), failed ? "package NOT valid" : "package valid"],
      ...(failed ? { reason: `${failed.step}: ${failed.detail.split("\n")[0] ?? ""}` } : {}),
    };
  } finally {
    if (temp) fs.rmSync(temp, { recursive: true, force: true });
  }
}

export async function pack(dir: string, out: string): Promise<ToolOutput> {
  const { files } = await checkContent(dir);
  const signed = fs.existsSync(path.join(dir, SIGNATURE_FILE));
  const entries = ["manifest.json", ...(signed ? [SIGNATURE_FILE] : []), ...files];
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  await packPackage(dir, entries, out);
  const bytes = fs.readFileSync(out);
  const sha = createHash("sha256").update(bytes).digest("hex");
  return {
    ok: true,
    lines: [
      `wrote ${out}: ${entries.length} file(s)${signed ? "" : " (UNSIGNED: gateways requiring signatures will refuse it; run vigil models sign first)"}`,
      `sha256 ${sha}`,
      `size   ${bytes.length}`,
      `deploy request: ${JSON.stringify({ transaction: "<id>", url: "<where you serve it>", sha256: sha, size: bytes.length })}`,
    ],
  };
}

export async function install(
  archive: string,
  config: VigilConfig,
  allowDowngrade: boolean,
): Promise<ToolOutput> {
  const root = path.join(config.dataDir, "models");
  const lock = new DataDirLock(root);
  const holder = lock.holder();
  if (holder !== undefined) {
    throw new VigilError(
      "OTA_GATEWAY_RUNNING",
      `a gateway (pid ${holder}) runs on ${config.dataDir}; deploy over MQTT (request/models/deploy) or stop it first`,
    );
  }
  const stateFile = new StateFile(root);
  const { state, warning } = stateFile.load();
  const keys = loadTrustedKeys(config.models.trustedKeys);
  const installer = new PackageInstaller({
    root,
    keys: () => keys.keys,
    requireSignature: config.models.requireSignature,
    extract: config.models.ota.extract,
    backend: new OrtBackend(),
    sessionOptions: {
      executionProviders: config.inference.executionProviders,
      intraOpThreads: config.inference.intraOpThreads,
      graphOptimizationLevel: config.inference.graphOptimizationLevel,
    },
  });
  lock.acquire();
  try {
    const staged = await installer.stage(archive, `install-${process.pid}`, (m) => {
      const current = state.active[m.name] ?? highestVersion([config.models.dir, root], m.name);
      if (current === undefined) return;
      const cmp = compareSemver(m.version, current);
      if (cmp === 0)
        throw new PackageError("OTA_DUPLICATE", `${m.name}@${m.version} is already the active version`);
      if (cmp < 0 && !allowDowngrade) {
        throw new PackageError(
          "OTA_DOWNGRADE",
          `${m.name}@${m.version} is lower than the active ${current}; pass --allow-downgrade to install it`,
        );
      }
    });
    await staged.model.session.release().catch(() => undefined);
    const { model, reused } = installer.place(staged);
    const { name, version } = model.manifest;
    const previous = state.active[name] ?? highestVersion([config.models.dir], name);
    if (previous !== undefined && previous !== version) (state.history[name] ??= []).push(previous);
    state.active[name] = version;
    state.lastUpdate = {
      transaction: null,
      action: "install",
      name,
      version,
      result: "ok",
      atMs: Date.now(),
    };
    stateFile.save(state);
    return {
      ok: true,
      lines: [
        ...(warning ? [`warning: ${warning}`] : []),
        ...keys.errors.map((e) => `warning: key ${e.path} not used: ${e.reason}`),
        ...staged.verify.checks.map((c) => `ok   ${c.step.padEnd(9)} ${c.detail.split("\n")[0] ?? ""}`),
        `${reused ? "already installed" : "installed"} ${name}@${version} in ${model.dir}; it serves from the next start`,
      ],
    };
  } finally {
    lock.release();
  }
}

/** The highest version of `name` among the package folders under `roots` (manifests read, not loaded). */
function highestVersion(roots: readonly string[], name: string): string | undefined {
  let best: string | undefined;
  for (const root of roots) {
    for (const dir of findPackageDirsSync(root)) {
      try {
        const m = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")) as {
          name?: unknown;
          version?: unknown;
        };
        if (
          m.name === name &&
          typeof m.version === "string" &&
          (best === undefined || compareSemver(m.version, best) > 0)
        )
          best = m.version;
      } catch {
        // unreadable manifests are not versions
      }
    }
  }
  return best;
}

function findPackageDirsSync(root: string, depth = 3): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(root, { withFileTypes: true });
  } catch {
    return [];
  }
  if (entries.some((e) => e.isFile() && e.name === "manifest.json")) return [root];
  if (depth === 0) return [];
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith("."))
    .flatMap((e) => findPackageDirsSync(path.join(root, e.name), depth - 1));
}

/** A wrong command line (the CLI answers it with exit code 2 and the usage). */
export class ModelsUsageError extends Error {}

export const MODELS_USAGE = [
  "vigil models keygen --out DIR [--name NAME]     Ed25519 key pair: NAME.key (secret), NAME.pub (trusted key)",
  "       vigil models sign DIR --key KEY.key             write DIR/manifest.sig",
  "       vigil models verify PKG [--key PUB]... [--config FILE] [--no-onnx]   check a folder or .tgz; say what fails",
  "       vigil models pack DIR --out PKG.tgz             package for deployment; prints its sha256 and size",
  "       vigil models install PKG.tgz [--config FILE] [--allow-downgrade]   offline install, same checks as OTA",
].join("\n");

/**
 * `vigil models <sub> ...`: runs one subcommand, prints its lines, returns the exit code (0, or
 * 1 with a one-line reason naming the subcommand on stderr). Usage mistakes throw
 * `ModelsUsageError`; configuration errors throw the loader's `ConfigError`.
 */
export async function runModels(
  values: Record<string, unknown>,
  positionals: readonly string[],
  loadConfig: (options: { file?: string }) => VigilConfig,
): Promise<number> {
  const [sub, target, ...extra] = positionals;
  if (extra.length > 0) throw new ModelsUsageError(`unexpected arguments: ${extra.join(" ")}`);
  const str = (name: string): string | undefined => {
    const v = values[name];
    return typeof v === "string" && v !== "" ? v : undefined;
  };
  const need = (what: string, v: string | undefined): string => {
    if (v === undefined) throw new ModelsUsageError(`vigil models ${sub ?? ""} needs ${what}`);
    return v;
  };
  const keys = Array.isArray(values.key) ? (values.key as string[]) : [];
  const configFile = str("config");
  let out: ToolOutput;
  try {
    switch (sub) {
      case "keygen":
        out = keygen(need("--out DIR", str("out")), str("name"));
        break;
      case "sign":
        if (keys.length !== 1) throw new ModelsUsageError("--key KEY.key is required once");
        out = await sign(need("a package folder", target), keys[0] as string);
        break;
      case "verify":
        out = await verify(need("a package folder or .tgz", target), {
          keyFiles: keys,
          ...(configFile ? { config: loadConfig({ file: configFile }) } : {}),
          noOnnx: values["no-onnx"] === true,
        });
        break;
      case "pack":
        out = await pack(need("a package folder", target), need("--out PKG.tgz", str("out")));
        break;
      case "install":
        out = await install(
          need("a .tgz package", target),
          loadConfig(configFile ? { file: configFile } : {}),
          values["allow-downgrade"] === true,
        );
        break;
      default:
        throw new ModelsUsageError(
          `unknown models command "${sub ?? ""}" (keygen, sign, verify, pack, install)`,
        );
    }
  } catch (err) {
    if (err instanceof ModelsUsageError || (err as { code?: string }).code === "CONFIG_INVALID") throw err;
    const code = err instanceof VigilError ? ` [${err.code}]` : "";
    process.stderr.write(`vigil models ${sub ?? ""}: ${errorMessage(err).split("\n")[0] ?? ""}${code}\n`);
    return 1;
  }
  process.stdout.write(`${out.lines.join("\n")}\n`);
  if (!out.ok) {
    process.stderr.write(`vigil models ${sub ?? ""}: ${out.reason ?? "failed"}\n`);
    return 1;
  }
  return 0;
}
