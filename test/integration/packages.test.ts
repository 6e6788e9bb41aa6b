/**
 * Model packages at startup (CONTRACT §4, registry contract): a models folder holding one good
 * package and tampered copies, each failing exactly one check. Bad packages are listed as
 * `failed` with their reason and never stop the good one; of two valid versions of one package
 * the highest serves and the other is standby. Real ONNX Runtime, real broker, temp folders.
 */

import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrtBackend } from "../../src/inference/ort.js";
import { ModelRegistry, type PackageStatus } from "../../src/models/registry.js";
import { silentLogger } from "../../src/system/logger.js";
import {
  Collector,
  FIXTURES,
  startGateway,
  tempDir,
  testConfig,
  type RunningGateway,
} from "../support/harness.js";

const GOOD = "count-ntc-zscore";
const T0 = 1_790_000_000_000;

interface ManifestJson {
  name: string;
  version: string;
  files: Record<string, string>;
  input: {
    tensor: string;
    signals: string[];
    window: { size: number };
    normalize: { mean: number[]; std: number[] };
  };
  selfTest: { input: number[]; output: number[]; tolerance: number }[];
  [k: string]: unknown;
}

const sha256 = (file: string): string => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

/**
 * Copies the good fixture to `<root>/<name>/<version>/`, renames it in its manifest, lets
 * `tamper` change the folder and the manifest, then writes the manifest back.
 */
function addPackage(
  root: string,
  name: string,
  version: string,
  tamper: (m: ManifestJson, dir: string) => void = () => undefined,
): string {
  const dir = path.join(root, name, version);
  fs.cpSync(path.join(FIXTURES, GOOD), dir, { recursive: true });
  const file = path.join(dir, "manifest.json");
  const m = JSON.parse(fs.readFileSync(file, "utf8")) as ManifestJson;
  m.name = name;
  m.version = version;
  tamper(m, dir);
  fs.writeFileSync(file, JSON.stringify(m, null, 2));
  return dir;
}

/** The bad packages: name → what to break, and what the reason must mention. */
const BAD: Record<
  string,
  { tamper: (m: ManifestJson, dir: string) => void; code: string; field?: string; mentions: RegExp }
> = {
  "bad-hash": {
    // The model file changes after the manifest was written: its SHA-256 no longer matches.
    tamper: (_m, dir) => fs.appendFileSync(path.join(dir, "model.onnx"), Buffer.from([0])),
    code: "PACKAGE_HASH_MISMATCH",
    field: 'files["model.onnx"]',
    mentions: /model\.onnx.*SHA-256/,
  },
  "bad-manifest": {
    tamper: (m) => {
      m.input.window.size = 0;
    },
    code: "PACKAGE_MANIFEST_INVALID",
    field: "input.window.size",
    mentions: /input\.window\.size/,
  },
  "bad-tensor": {
    tamper: (m) => {
      m.input.tensor = "features";
    },
    code: "PACKAGE_TENSOR_MISMATCH",
    field: "input.tensor",
    mentions: /"features".*not in the model/,
  },
  "bad-shape": {
    // Two signals instead of three: a valid manifest (normalisation and self-test inputs
    // resized to match), but the model's input is [batch,5,3].
    tamper: (m) => {
      m.input.signals = ["s1", "s2"];
      m.input.normalize.mean = m.input.normalize.mean.slice(0, 2);
      m.input.normalize.std = m.input.normalize.std.slice(0, 2);
      for (const tc of m.selfTest) tc.input = tc.input.slice(0, 10);
    },
    code: "PACKAGE_TENSOR_MISMATCH",
    field: "input.signals",
    mentions: /shape.*\[batch,5,2\]/,
  },
  "bad-selftest": {
    tamper: (m) => {
      const tc = m.selfTest[0];
      if (tc) tc.output = tc.output.map((v) => v + 0.01); // 100× the tolerance
    },
    code: "PACKAGE_SELFTEST_FAILED",
    field: "selfTest[0].output[0]",
    mentions: /selfTest\[0\] output\[0\]/,
  },
  "bad-missing": {
    tamper: (_m, dir) => fs.rmSync(path.join(dir, "model.onnx")),
    code: "PACKAGE_FILE_MISSING",
    field: 'files["model.onnx"]',
    mentions: /model\.onnx.*missing/,
  },
  "bad-onnx": {
    // Not an ONNX model, yet listed with its true hash: the hash check passes, loading fails.
    tamper: (m, dir) => {
      const file = path.join(dir, "model.onnx");
      fs.writeFileSync(file, "this is not an onnx model");
      m.files["model.onnx"] = sha256(file);
    },
    code: "PACKAGE_ONNX_LOAD",
    mentions: /.+/,
  },
};

/** A models folder: the good package (1.0.0 and 1.1.0) and every bad one. */
function buildModelsDir(): string {
  const root = tempDir("vigil-packages-");
  addPackage(root, GOOD, "1.0.0");
  addPackage(root, GOOD, "1.1.0");
  for (const [name, bad] of Object.entries(BAD)) addPackage(root, name, "1.0.0", bad.tamper);
  return root;
}

describe("model packages: the tampered copies are really only broken where intended", () => {
  it("the untouched copy keeps every file hash of the manifest", () => {
    const dir = addPackage(tempDir("vigil-packages-"), "copy", "1.0.0");
    const m = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")) as ManifestJson;
    for (const [f, hash] of Object.entries(m.files)) expect(sha256(path.join(dir, f))).toBe(hash);
  });
});

describe("model registry: a bad package fails with its reason and never stops the others", () => {
  let registry: ModelRegistry;
  let statuses: PackageStatus[];

  beforeAll(async () => {
    registry = new ModelRegistry(
      new OrtBackend(),
      { executionProviders: "auto", intraOpThreads: 1, graphOptimizationLevel: "all" },
      silentLogger(),
    );
    await registry.scan(buildModelsDir());
    statuses = registry.status();
  });
  afterAll(async () => {
    await registry.close();
  });

  it.each(Object.entries(BAD))("%s is failed with code, field and reason", (name, bad) => {
    const matching = statuses.filter((s) => s.name === name);
    expect(matching, JSON.stringify(statuses, null, 2)).toHaveLength(1);
    const s = matching[0];
    expect(s?.state).toBe("failed");
    expect(s?.version).toBe("1.0.0");
    expect(s?.errorCode).toBe(bad.code);
    if (bad.field !== undefined) expect(s?.errorField).toBe(bad.field);
    expect(s?.error).toMatch(bad.mentions);
  });

  it("serves the highest valid version and keeps the other on standby", () => {
    const good = statuses.filter((s) => s.name === GOOD);
    expect(good.map((s) => [s.version, s.state])).toEqual([
      ["1.1.0", "serving"],
      ["1.0.0", "standby"],
    ]);
    expect(registry.active().map((m) => m.key)).toEqual([`${GOOD}@1.1.0`]);
    expect(registry.get(GOOD)?.manifest.version).toBe("1.1.0");
    for (const name of Object.keys(BAD)) expect(registry.get(name)).toBeUndefined();
  });

  it("lists every package found, and nothing else", () => {
    expect(statuses).toHaveLength(Object.keys(BAD).length + 2);
  });
});

describe("gateway with bad packages beside a good one", () => {
  let gw: RunningGateway;
  let sub: Collector;

  beforeAll(async () => {
    gw = await startGateway(testConfig({ "models.dir": buildModelsDir() }));
    sub = await Collector.connect(gw.brokerUrl, ["vigil/gw-test/#"]);
  });
  afterAll(async () => {
    await sub?.close();
    await gw?.stop();
  });

  it("status() lists each bad package as failed with an error naming the cause, the good one serving", () => {
    const models = gw.gateway.status().models as {
      name: string;
      version: string;
      state: string;
      error?: string;
    }[];
    for (const [name, bad] of Object.entries(BAD)) {
      const m = models.find((x) => x.name === name);
      expect(m, `${name} in ${JSON.stringify(models)}`).toBeDefined();
      expect(m?.state).toBe("failed");
      expect(m?.error).toMatch(bad.mentions);
    }
    expect(models.filter((m) => m.name === GOOD).map((m) => [m.version, m.state])).toEqual([
      ["1.1.0", "serving"],
      ["1.0.0", "standby"],
    ]);
    expect(gw.gateway.readiness()).toMatchObject({
      reasons: expect.not.arrayContaining(["no model is serving"]),
    });
  });

  it("predictions for the good package still flow, from the serving version", async () => {
    for (let i = 0; i < 5; i++) {
      await sub.publish("plant/pump-1/row", { ts: T0 + i * 1000, values: { s1: 100, s2: 20, s3: 5 } });
    }
    await sub.waitForCount("vigil/gw-test/predictions/pump-1", 1);
    await gw.gateway.settle();
    const predictions = sub.on("vigil/gw-test/predictions/").map((m) => m.json());
    expect(predictions).toHaveLength(1);
    expect(predictions[0]).toMatchObject({
      gatewayId: "gw-test",
      asset: "pump-1",
      model: GOOD,
      modelVersion: "1.1.0",
      ts: T0 + 4000,
    });
    // All inputs at their mean: the z-scores are 0 and the model gives its bias, 50.
    expect((predictions[0]?.outputs as { rul: number }).rul).toBeCloseTo(50, 4);
  });
});

describe("model registry: a failed package in a flat models folder", () => {
  it("is listed under its own folder's name, not the models folder's", async () => {
    const root = tempDir("vigil-packages-");
    fs.cpSync(path.join(FIXTURES, GOOD), path.join(root, "broken-flat"), { recursive: true });
    fs.writeFileSync(path.join(root, "broken-flat", "manifest.json"), "{ not json");
    const registry = new ModelRegistry(
      new OrtBackend(),
      { executionProviders: "auto", intraOpThreads: 1, graphOptimizationLevel: "all" },
      silentLogger(),
    );
    await registry.scan(root);
    const s = registry.status();
    expect(s).toHaveLength(1);
    expect(s[0]?.state).toBe("failed");
    expect(s[0]?.errorCode).toBe("PACKAGE_MANIFEST_JSON");
    expect(s[0]?.name).toBe("broken-flat");
    await registry.close();
  });
});
