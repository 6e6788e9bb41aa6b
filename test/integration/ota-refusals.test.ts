/**
 * Every refusal of an over-the-air deploy (issue 5, item 8; CONTRACT §6): a bad signature, an
 * unknown key, a tampered model file, a `.tgz` hash mismatch, an oversize download, path
 * traversal, absolute paths, symlink/hard-link/device entries, a malformed manifest, a tensor
 * mismatch, a self-test mismatch, a downgrade, a duplicate of the active version, and two
 * deploys racing. Each is answered on `response/models/deploy` with a clear reason while one
 * asset keeps streaming rows, and afterwards every window of that asset has exactly one
 * prediction, all from the version that served before.
 * Real: aedes on port 0, ONNX Runtime, SQLite in a temp folder, node:http as the package
 * server, Ed25519 keys made here.
 */

import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Collector } from "../support/harness.js";
import type { RunningGateway } from "../support/harness.js";
import type { RowStream } from "../support/ota.js";
import {
  BASE,
  type PackageServer,
  ROOT,
  buildPackage,
  craftTgz,
  entriesOf,
  events,
  makeKeys,
  request,
  startOtaSetup,
  type OtaGateway,
  type BuiltPackage,
  type KeyPairFiles,
  type Reply,
} from "../support/ota.js";

let keys: KeyPairFiles;
let stranger: KeyPairFiles;
let server: PackageServer;
let gw: OtaGateway;
let running: RunningGateway;
let col: Collector;
let stream: RowStream;
let good: BuiltPackage;

let close: () => Promise<void>;

beforeAll(async () => {
  stranger = makeKeys();
  ({ keys, server, gw, close } = await startOtaSetup({
    "models.ota.retry.minDelayMs": 10,
    "models.ota.retry.maxDelayMs": 20,
  }));
  ({ running, col, stream } = gw);
  good = await buildPackage({ version: "1.1.0", sign: keys });
});

afterAll(async () => {
  await close();
});

/** Deploys while the asset streams; returns the answer. */
async function deploy(
  name: string,
  pkg: { bytes: Buffer; sha256: string; size: number },
  extra: object = {},
): Promise<Reply> {
  const url = server.serve(`/${name}.tgz`, { bytes: pkg.bytes });
  return stream.during(
    request(col, "models/deploy", { transaction: name, url, sha256: pkg.sha256, size: pkg.size, ...extra }),
  );
}

async function expectOldServesWithoutGap(): Promise<void> {
  const predictions = await stream.allWindows();
  expect(new Set(predictions.map((p) => p.modelVersion))).toEqual(new Set(["1.0.0"]));
}

function expectRefused(reply: Reply, code: string, reason: RegExp): void {
  expect(reply.status).toBe("error");
  expect(reply.code).toBe(code);
  expect(reply.error).toMatch(reason);
  const failed = events(col, reply.transaction ?? undefined).find(
    (e) => e.stage === "failed" || e.stage === "refused",
  );
  expect(failed?.detail).toBe(reply.error);
}

function packed(bytes: Buffer): { bytes: Buffer; sha256: string; size: number } {
  return { bytes, sha256: createHash("sha256").update(bytes).digest("hex"), size: bytes.length };
}

describe("OTA refusals: the running version keeps serving every window", () => {
  it("bad signature: manifest.json changed after signing", async () => {
    const pkg = await buildPackage({
      version: "1.1.0",
      sign: keys,
      tamper: (dir) => {
        const f = path.join(dir, "manifest.json");
        fs.writeFileSync(f, fs.readFileSync(f, "utf8").replace('"task": "regression"', '"task": "anomaly"'));
      },
    });
    expectRefused(
      await deploy("t-bad-signature", pkg),
      "SIGNATURE_INVALID",
      /signature: manifest\.sig does not verify/,
    );
    await expectOldServesWithoutGap();
  });

  it("unknown key: signed with a key the gateway does not trust", async () => {
    const pkg = await buildPackage({ version: "1.1.0", sign: stranger });
    const reply = await deploy("t-unknown-key", pkg);
    expectRefused(reply, "SIGNATURE_INVALID", /does not verify with any of the 1 trusted key/);
    expect(reply.error).toContain(keys.id);
    await expectOldServesWithoutGap();
  });

  it("unsigned package while signatures are required", async () => {
    const pkg = await buildPackage({ version: "1.1.0", sign: false });
    expectRefused(await deploy("t-unsigned", pkg), "SIGNATURE_MISSING", /has no manifest\.sig/);
    await expectOldServesWithoutGap();
  });

  it("tampered model file: its SHA-256 no longer matches the signed manifest", async () => {
    const pkg = await buildPackage({
      version: "1.1.0",
      sign: keys,
      tamper: (dir) => fs.appendFileSync(path.join(dir, "model.onnx"), Buffer.from([0])),
    });
    expectRefused(
      await deploy("t-tampered", pkg),
      "PACKAGE_HASH_MISMATCH",
      /files: model\.onnx: SHA-256 is [0-9a-f]{64}, the manifest says/,
    );
    await expectOldServesWithoutGap();
  });

  it(".tgz hash mismatch: the archive is not the one the request names", async () => {
    const reply = await deploy("t-tgz-hash", { ...good, sha256: "ab".repeat(32) });
    expectRefused(reply, "DOWNLOAD_HASH_MISMATCH", /has SHA-256 [0-9a-f]{64}, the request says abab/);
    await expectOldServesWithoutGap();
  });

  it("oversize download: more bytes than the request announced (Content-Length, then a body without one)", async () => {
    expectRefused(
      await deploy("t-oversize", { ...good, size: 200 }),
      "DOWNLOAD_TOO_LARGE",
      /over the size the request announced \(200\)/,
    );
    const url = server.serve("/t-oversize-chunked.tgz", {
      bytes: good.bytes,
      behaviours: [{ kind: "chunked" }],
    });
    const reply = await stream.during(
      request(col, "models/deploy", {
        transaction: "t-oversize-chunked",
        url,
        sha256: good.sha256,
        size: 300,
      }),
    );
    expectRefused(reply, "DOWNLOAD_TOO_LARGE", /over the size the request announced \(300\)/);
    await expectOldServesWithoutGap();
  });

  it("path traversal and absolute paths in the archive: refused, nothing written outside", async () => {
    const marker = `vigil-evil-${process.pid}.txt`;
    const traversal = packed(
      craftTgz([...entriesOf(good.dir), { path: `../../${marker}`, type: "File", data: Buffer.from("x") }]),
    );
    expectRefused(
      await deploy("t-traversal", traversal),
      "ARCHIVE_UNSAFE_PATH",
      /archive entry "\.\.\/\.\.\/vigil-evil-\d+\.txt" contains a \.\. segment/,
    );
    const absolute = packed(
      craftTgz([{ path: `/tmp/${marker}`, type: "File", data: Buffer.from("x") }, ...entriesOf(good.dir)]),
    );
    expectRefused(await deploy("t-absolute", absolute), "ARCHIVE_ABSOLUTE_PATH", /is an absolute path/);
    expect(fs.existsSync(`/tmp/${marker}`)).toBe(false);
    const modelsRoot = path.join(running.config.dataDir, "models");
    expect(fs.existsSync(path.join(path.dirname(modelsRoot), marker))).toBe(false);
    expect(fs.existsSync(path.join(running.config.dataDir, marker))).toBe(false);
    expect(fs.readdirSync(path.join(modelsRoot, ".staging"))).toEqual([]);
    await expectOldServesWithoutGap();
  });

  it("symbolic link, hard link and device entries: refused", async () => {
    const withLink = (e: Parameters<typeof craftTgz>[0][number]): ReturnType<typeof packed> =>
      packed(craftTgz([...entriesOf(good.dir).filter((x) => x.path !== e.path), e]));
    expectRefused(
      await deploy(
        "t-symlink",
        withLink({ path: "weights.json", type: "SymbolicLink", linkpath: "/etc/passwd" }),
      ),
      "ARCHIVE_LINK",
      /"weights\.json" is a symbolic link/,
    );
    expectRefused(
      await deploy("t-hardlink", withLink({ path: "extra", type: "Link", linkpath: "model.onnx" })),
      "ARCHIVE_LINK",
      /"extra" is a hard link/,
    );
    expectRefused(
      await deploy("t-device", withLink({ path: "tty", type: "CharacterDevice" })),
      "ARCHIVE_DEVICE",
      /"tty" is a CharacterDevice/,
    );
    await expectOldServesWithoutGap();
  });

  it("malformed manifest (signed): every problem with its field path", async () => {
    const pkg = await buildPackage({
      version: "1.1.0",
      sign: keys,
      edit: (m) => {
        m.input.window.size = 0;
        m.outputs = [];
      },
    });
    const reply = await deploy("t-malformed", pkg);
    expectRefused(reply, "PACKAGE_MANIFEST_INVALID", /manifest: invalid manifest:/);
    expect(reply.error).toMatch(/input\.window\.size: must be a positive integer/);
    expect(reply.error).toMatch(/outputs: must have at least 1 entry/);
    await expectOldServesWithoutGap();
  });

  it("tensor mismatch: the manifest names an input the model does not have", async () => {
    const pkg = await buildPackage({
      version: "1.1.0",
      sign: keys,
      edit: (m) => (m.input.tensor = "features"),
    });
    expectRefused(
      await deploy("t-tensor", pkg),
      "PACKAGE_TENSOR_MISMATCH",
      /tensors: input tensor "features" is not in the model/,
    );
    await expectOldServesWithoutGap();
  });

  it("self-test mismatch: the model does not reproduce its stated outputs", async () => {
    const pkg = await buildPackage({
      version: "1.1.0",
      sign: keys,
      edit: (m) => {
        const tc = m.selfTest[0];
        if (tc) tc.output = tc.output.map((v) => v + 1);
      },
    });
    expectRefused(
      await deploy("t-selftest", pkg),
      "PACKAGE_SELFTEST_FAILED",
      /selfTest: selfTest\[0\] output\[0\] is .*, expected .* ± 0\.001/,
    );
    await expectOldServesWithoutGap();
  });

  it("downgrade without allowDowngrade", async () => {
    const pkg = await buildPackage({ version: "0.9.0", sign: keys });
    expectRefused(
      await deploy("t-downgrade", pkg),
      "OTA_DOWNGRADE",
      /0\.9\.0 is lower than the active 1\.0\.0; a downgrade needs "allowDowngrade": true/,
    );
    await expectOldServesWithoutGap();
  });

  it("duplicate deploy of the active version", async () => {
    const pkg = await buildPackage({ version: "1.0.0", sign: keys });
    expectRefused(
      await deploy("t-duplicate", pkg),
      "OTA_DUPLICATE",
      /count-ntc-zscore@1\.0\.0 is already the active version/,
    );
    // The same request again (a QoS 1 redelivery, an operator's retry): the same answer, no second run.
    const first = col
      .on(`${ROOT}/response/models/deploy`)
      .filter((m) => m.json().transaction === "t-duplicate");
    const url = server.url("/t-duplicate.tgz");
    const again = await request(col, "models/deploy", {
      transaction: "t-duplicate",
      url,
      sha256: pkg.sha256,
      size: pkg.size,
    });
    expect(again).toEqual(first[0]?.json());
    expect(events(col, "t-duplicate").filter((e) => e.stage === "accepted")).toHaveLength(1);
    expect(server.count("/t-duplicate.tgz")).toBe(1);
    await expectOldServesWithoutGap();
  });

  it("a request that is not valid: every problem listed", async () => {
    const reply = await stream.during(
      request(col, "models/deploy", {
        transaction: "t-invalid",
        url: "ftp://x/y.tgz",
        sha256: "12",
        size: -1,
      }),
    );
    expect(reply.status).toBe("error");
    expect(reply.code).toBe("OTA_BAD_REQUEST");
    expect(reply.error).toMatch(
      /url: must be http: or https:, got ftp:; sha256: required.*; size: must be a positive integer/,
    );
    await expectOldServesWithoutGap();
  });

  it("two deploys racing: the second is refused at once as busy; the first completes with a hot swap", async () => {
    const url = server.serve("/t-race-1.tgz", { bytes: good.bytes, behaviours: [{ kind: "hold" }] });
    const first = request(col, "models/deploy", {
      transaction: "t-race-1",
      url,
      sha256: good.sha256,
      size: good.size,
    });
    await server.waitForRequests("/t-race-1.tgz", 1);
    const other = await buildPackage({ version: "1.2.0", sign: keys });
    const second = await deploy("t-race-2", other);
    expectRefused({ ...second }, "OTA_BUSY", /busy: update t-race-1 is at stage download/);
    server.release();
    const reply = await stream.during(first);
    expect(reply).toMatchObject({
      status: "ok",
      data: { name: BASE, version: "1.1.0", state: "active", previous: "1.0.0", windows: "carried-over" },
    });
    const predictions = await stream.allWindows();
    const versions = predictions.map((p) => p.modelVersion);
    const switchAt = versions.indexOf("1.1.0");
    expect(switchAt).toBeGreaterThan(0);
    expect(versions.slice(0, switchAt).every((v) => v === "1.0.0")).toBe(true);
    expect(versions.slice(switchAt).every((v) => v === "1.1.0")).toBe(true);
    // Nothing left behind by the refused packages.
    const root = path.join(running.config.dataDir, "models");
    expect(fs.readdirSync(path.join(root, ".staging"))).toEqual([]);
    expect(fs.readdirSync(path.join(root, ".downloads"))).toEqual([]);
    expect(fs.readdirSync(path.join(root, BASE))).toEqual(["1.1.0"]);
  });
});
