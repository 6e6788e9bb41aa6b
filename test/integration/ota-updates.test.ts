/**
 * Over-the-air updates that go through (issue 5, items 2–5, 7; CONTRACT §6), on one gateway,
 * in order, while one asset streams rows the whole time: an upgrade (hot swap, open windows
 * carried over, probation passed), a rollback on request, a shadow trial promoted
 * automatically, a trial that fails its criteria, a trial promoted on command, automatic
 * rollbacks in probation (NaN outputs; inference errors, whose lost windows the previous
 * version predicts again), a package reading another window (windows restart, reported), and
 * `keepVersions`. After each step every window of the asset has exactly one prediction, and
 * the version changes exactly where the swap happened. Status: `request/models/list`, the
 * retained status and `GET /api/status`.
 */

import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OtaStatus } from "../../src/models/ota/updater.js";
import type { Collector } from "../support/harness.js";
import type { RunningGateway } from "../support/harness.js";
import type { RowStream } from "../support/ota.js";
import {
  BASE,
  type PackageServer,
  ROOT,
  buildPackage,
  events,
  request,
  startOtaSetup,
  type OtaGateway,
  waitForEvent,
  type KeyPairFiles,
  type PackageSpec,
  type Prediction,
  type Reply,
} from "../support/ota.js";

let keys: KeyPairFiles;
let server: PackageServer;
let gw: OtaGateway;
let running: RunningGateway;
let col: Collector;
let stream: RowStream;
/** Windows checked so far (the next check starts after them). */
let checked = 0;

let close: () => Promise<void>;

beforeAll(async () => {
  ({ keys, server, gw, close } = await startOtaSetup({
    "models.keepVersions": 1,
    "models.ota.probation.windows": 4,
  }));
  ({ running, col, stream } = gw);
});

afterAll(async () => {
  await close();
});

async function deploy(
  transaction: string,
  spec: Omit<PackageSpec, "sign">,
  extra: object = {},
  rowsPerMessage = 1,
): Promise<Reply> {
  const pkg = await buildPackage({ ...spec, sign: keys });
  const url = server.serve(`/${transaction}.tgz`, { bytes: pkg.bytes });
  return stream.during(
    request(col, "models/deploy", { transaction, url, sha256: pkg.sha256, size: pkg.size, ...extra }),
    2,
    4,
    rowsPerMessage,
  );
}

/** Every window so far predicted once; the new windows since the last check, in order. */
async function newWindows(): Promise<Prediction[]> {
  const all = await stream.allWindows();
  const fresh = all.slice(checked);
  checked = all.length;
  return fresh;
}

/** The versions of consecutive windows, run-length encoded: ["1.0.0", "1.1.0"] = one switch. */
function runs(predictions: readonly Prediction[]): string[] {
  const out: string[] = [];
  for (const p of predictions) if (out[out.length - 1] !== p.modelVersion) out.push(p.modelVersion);
  return out;
}

async function list(): Promise<OtaStatus> {
  const reply = await request(col, "models/list", { transaction: `list-${Date.now()}` });
  expect(reply.status).toBe("ok");
  return reply.data as unknown as OtaStatus;
}

describe("OTA updates on a streaming gateway", () => {
  it("upgrade: verified, installed, hot-swapped with open windows carried over, probation passed; status everywhere", async () => {
    const reply = await deploy("u-1", { version: "1.1.0" });
    expect(reply).toEqual({
      transaction: "u-1",
      status: "ok",
      data: { name: BASE, version: "1.1.0", state: "active", previous: "1.0.0", windows: "carried-over" },
    });
    await stream.during(waitForEvent(col, "probation-passed", "u-1"));
    expect(events(col, "u-1").map((e) => e.stage)).toEqual([
      "accepted",
      "download",
      "download",
      "download",
      "downloaded",
      "verified",
      "installed",
      "activated",
      "probation-passed",
    ]);
    const verified = events(col, "u-1").find((e) => e.stage === "verified");
    expect(verified?.data?.keyId).toBe(keys.id);
    expect(runs(await newWindows())).toEqual(["1.0.0", "1.1.0"]);

    const status = await list();
    const model = status.models.find((m) => m.name === BASE);
    expect(model).toMatchObject({ active: "1.1.0", history: ["1.0.0"], trial: null, probation: null });
    expect(model?.installed.map((v) => [v.version, v.source, v.state])).toEqual([
      ["1.1.0", "installed", "serving"],
      ["1.0.0", "shipped", "standby"],
    ]);
    expect(status.lastUpdate).toMatchObject({
      transaction: "u-1",
      action: "deploy",
      result: "ok",
      version: "1.1.0",
    });
    expect(status.trustedKeys).toEqual([{ id: keys.id, source: keys.pubFile }]);

    const retained = col
      .on(`${ROOT}/status`)
      .map((m) => m.json<{ ota?: OtaStatus; models?: { version: string; state: string }[] }>());
    expect(retained.at(-1)?.ota?.models[0]?.active).toBe("1.1.0");
    expect(retained.at(-1)?.models?.find((m) => m.state === "serving")?.version).toBe("1.1.0");
    const api = running.gateway.apiAddress();
    const body = (await (await fetch(`http://${api?.host}:${api?.port}/api/status`)).json()) as {
      ota: OtaStatus;
    };
    expect(body.ota.models[0]?.active).toBe("1.1.0");
  });

  it("rollback on request: back to the previous version, hot-swapped", async () => {
    const reply = await stream.during(request(col, "models/rollback", { transaction: "r-1", name: BASE }));
    expect(reply).toEqual({
      transaction: "r-1",
      status: "ok",
      data: { name: BASE, version: "1.0.0", state: "active", previous: "1.1.0", windows: "carried-over" },
    });
    // Windows that closed before the request arrived are 1.1.0's; every later one is 1.0.0's.
    expect(["1.1.0,1.0.0", "1.0.0"]).toContain(runs(await newWindows()).join(","));
    const again = await request(col, "models/rollback", { transaction: "r-2", name: BASE });
    expect(again).toMatchObject({ status: "error", code: "OTA_NO_PREVIOUS" });
    expect((await list()).lastUpdate).toMatchObject({ transaction: "r-1", action: "rollback", result: "ok" });
  });

  it("shadow trial promoted automatically: the candidate sees the same windows, publishes nothing until promoted", async () => {
    const reply = await deploy("u-trial", { version: "1.2.0" }, { trial: { windows: 4 } });
    expect(reply).toMatchObject({
      status: "ok",
      data: { name: BASE, version: "1.2.0", state: "trial", active: "1.0.0" },
    });
    const promoted = await stream
      .during(waitForEvent(col, "promoted", "u-trial", 10_000))
      .catch((e: unknown) => {
        console.log(JSON.stringify(events(col, "u-trial"), null, 1));
        throw e;
      });
    expect(promoted.detail).toMatch(
      /criteria met; count-ntc-zscore@1\.2\.0 serving \(from 1\.0\.0\); open windows of 1 asset\(s\) carried over/,
    );
    const report = events(col, "u-trial").find((e) => e.stage === "trial-report");
    // Asked for 4 windows, judged exactly 4, however the two versions' batches interleaved.
    expect(report?.detail).toMatch(/^passed: 4 windows compared, agreement 100\.0%/);
    expect(report?.data).toMatchObject({
      active: `${BASE}@1.0.0`,
      candidate: `${BASE}@1.2.0`,
      agreement: 1,
      passed: true,
      reasons: [],
      candidateStats: { errors: 0, nonFinite: 0 },
    });
    expect(report?.data).toMatchObject({ windows: 4, compared: 4 });
    // The candidate published nothing while on trial: the switch is one step, at promotion.
    expect(runs(await newWindows())).toEqual(["1.0.0", "1.2.0"]);
    expect((await list()).models[0]).toMatchObject({ active: "1.2.0", trial: null });
  });

  it("shadow trial that fails its criteria: reported, candidate removed, the active version never stopped", async () => {
    const reply = await deploy("u-trial-bad", { version: "1.3.0", bias: 10 }, { trial: { windows: 4 } });
    expect(reply).toMatchObject({ status: "ok", data: { version: "1.3.0", state: "trial" } });
    const failed = await stream.during(waitForEvent(col, "trial-failed", "u-trial-bad"));
    expect(failed.detail).toMatch(
      /trial failed: agreement 0 is below minAgreement 0\.9 over 4 windows; count-ntc-zscore@1\.2\.0 keeps serving/,
    );
    const report = events(col, "u-trial-bad").find((e) => e.stage === "trial-report");
    const diff = (report?.data?.outputs as Record<string, { meanAbsDiff: number }> | undefined)?.rul
      ?.meanAbsDiff;
    expect(diff).toBeCloseTo(10, 3);
    expect(runs(await newWindows())).toEqual(["1.2.0"]);
    expect(fs.existsSync(path.join(running.config.dataDir, "models", BASE, "1.3.0"))).toBe(false);
    expect((await list()).lastUpdate).toMatchObject({ result: "trial-failed", version: "1.3.0" });
  });

  it("shadow trial asked for by the package, manual promotion: waits after passing, then goes live on request/models/promote", async () => {
    const reply = await deploy("u-trial-manual", {
      version: "1.3.1",
      edit: (m) => (m.trial = { windows: 3, promote: "manual" }),
    });
    expect(reply).toMatchObject({ status: "ok", data: { version: "1.3.1", state: "trial" } });
    await stream.during(waitForEvent(col, "trial-passed", "u-trial-manual"));
    expect((await list()).models[0]?.trial).toMatchObject({
      version: "1.3.1",
      state: "awaiting-promotion",
      windows: 3,
      report: { windows: 3, compared: 3, passed: true },
    });
    const promoted = await stream.during(request(col, "models/promote", { transaction: "p-1", name: BASE }));
    expect(promoted).toMatchObject({ status: "ok", data: { name: BASE, version: "1.3.1", state: "active" } });
    expect(runs(await newWindows())).toEqual(["1.2.0", "1.3.1"]);
  });

  it("automatic rollback in probation: NaN outputs", async () => {
    const reply = await deploy("u-nan", { version: "1.4.0", variant: "sqrt" });
    expect(reply).toMatchObject({ status: "ok", data: { version: "1.4.0", state: "active" } });
    const back = await stream.during(waitForEvent(col, "rolled-back", "u-nan"));
    expect(back.detail).toMatch(
      /count-ntc-zscore@1\.4\.0 misbehaved in probation \(\d+ window\(s\) with NaN or infinite outputs in probation \(allowed: 0\)\); back to 1\.3\.1/,
    );
    const fresh = await newWindows();
    expect(runs(fresh)).toEqual(["1.3.1", "1.4.0", "1.3.1"]);
    expect(fresh.filter((p) => p.modelVersion === "1.4.0").some((p) => p.outputs.rul === null)).toBe(true);
    const status = await list();
    expect(status.models[0]?.active).toBe("1.3.1");
    expect(status.models[0]?.installed.find((v) => v.version === "1.4.0")).toMatchObject({ state: "failed" });
    expect(status.lastUpdate).toMatchObject({ action: "rollback", result: "rolled-back", version: "1.3.1" });
  });

  it("automatic rollback in probation: inference errors; the previous version predicts the lost windows", async () => {
    // Four rows per message: two windows per batch, which this model (fixed batch of 1 inside) cannot run.
    const reply = await deploy("u-error", { version: "1.5.0", variant: "batch1" }, {}, 4);
    expect(reply).toMatchObject({ status: "ok", data: { version: "1.5.0", state: "active" } });
    const back = await stream.during(waitForEvent(col, "rolled-back", "u-error"), 4, 4, 4);
    expect(back.detail).toMatch(
      /inference failed on \d+ window\(s\) in probation \(allowed: 0\).*back to 1\.3\.1, which predicts the \d+ window\(s\) the failed version lost/,
    );
    const fresh = await newWindows();
    expect(fresh.every((p) => p.modelVersion === "1.3.1" || p.modelVersion === "1.5.0")).toBe(true);
    expect(fresh.filter((p) => p.modelVersion === "1.5.0").length).toBeLessThanOrEqual(1);
  });

  it("a version reading another window: open windows restart, and the answer says so", async () => {
    const reply = await deploy("u-window", { version: "2.0.0", edit: (m) => (m.input.window.hop = 1) });
    expect(reply).toMatchObject({
      status: "ok",
      data: { version: "2.0.0", state: "active", windows: "restarted" },
    });
    const activated = events(col, "u-window").find((e) => e.stage === "activated");
    expect(activated?.detail).toMatch(/the input changed: open windows of 1 asset\(s\) restarted/);
    await stream.during(waitForEvent(col, "probation-passed", "u-window"));
    // After the swap the new version predicts once 5 new rows are in, then on every row.
    await col.waitFor(() => stream.predictions().filter((p) => p.modelVersion === "2.0.0").length >= 3);
    const v2 = stream
      .predictions()
      .filter((p) => p.modelVersion === "2.0.0")
      .map((p) => p.windowEnd);
    expect(v2[1]! - v2[0]!).toBe(1000);
    // keepVersions 1: besides the active version, one installed version stays.
    const installed = fs.readdirSync(path.join(running.config.dataDir, "models", BASE)).sort();
    // The one kept is the version active before (1.3.1), not the rolled-back 1.5.0.
    expect(installed).toEqual(["1.3.1", "2.0.0"]);
  });
});
