/**
 * Over-the-air updates that meet trouble (issue 5, items 5–6): a package URL that does not
 * answer (retries with backoff, then cancelled), a server that resets and answers 503 before
 * it serves (retried until it works), a download cut short (resumed with a Range request),
 * a gateway stopped in the middle of a download (it comes back serving the old version,
 * resumes and answers the original transaction), restarts after an update and after a
 * rollback (the chosen version serves again), an update interrupted too often (abandoned and
 * reported), an installed package changed on disk (refused at start), and a new version
 * slower than its self-test by far (rolled back automatically).
 */

import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { VigilConfig } from "../../src/config/types.js";
import {
  OrtBackend,
  type InferenceBackend,
  type ModelSession,
  type SessionOptions,
} from "../../src/inference/ort.js";
import type { OtaStatus } from "../../src/models/ota/updater.js";
import { EmbeddedBroker } from "../../src/broker/embedded.js";
import { silentLogger } from "../../src/system/logger.js";
import { Collector } from "../support/harness.js";
import { modelsDir, tempDir, testConfig } from "../support/harness.js";
import {
  BASE,
  GW,
  PackageServer,
  ROOT,
  buildPackage,
  events,
  makeKeys,
  request,
  startOtaGateway,
  type OtaGateway,
  waitForEvent,
  type BuiltPackage,
  type KeyPairFiles,
} from "../support/ota.js";

let keys: KeyPairFiles;
let server: PackageServer;
let v110: BuiltPackage;
let open: OtaGateway[] = [];

beforeAll(async () => {
  keys = makeKeys();
  server = new PackageServer();
  await server.start();
  v110 = await buildPackage({ version: "1.1.0", sign: keys });
});

afterAll(async () => {
  await server.close();
});

afterEach(async () => {
  for (const o of open) await o.close();
  open = [];
});

function config(dataDir: string, shipped: string, extra: Record<string, unknown> = {}): VigilConfig {
  return testConfig({
    dataDir,
    "models.dir": shipped,
    "models.trustedKeys": [keys.pubFile],
    "models.ota.retry.minDelayMs": 20,
    "models.ota.retry.maxDelayMs": 40,
    "models.ota.probation.windows": 4,
    ...extra,
  });
}

async function boot(cfg: VigilConfig, backend?: InferenceBackend): Promise<OtaGateway> {
  const gw = await startOtaGateway(cfg, backend);
  open.push(gw);
  return gw;
}

async function stopLast(): Promise<void> {
  await open.pop()?.close();
}

async function list(col: Collector): Promise<OtaStatus> {
  return (await request(col, "models/list", { transaction: `l-${Date.now()}-${Math.random()}` }))
    .data as unknown as OtaStatus;
}

/** A URL on which nothing listens (a port the OS gave us, closed again). */
async function deadUrl(): Promise<string> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}/pkg.tgz`;
}

describe("OTA durability", () => {
  it("an unreachable URL is retried with backoff until the deploy is cancelled; the old version serves throughout", async () => {
    const { col, stream } = await boot(config(tempDir(), modelsDir([BASE])));
    const url = await deadUrl();
    const reply = request(col, "models/deploy", {
      transaction: "d-dead",
      url,
      sha256: v110.sha256,
      size: v110.size,
    });
    await stream.during(
      col.waitFor(() => events(col, "d-dead").filter((e) => e.stage === "retry").length >= 3),
    );
    const retries = events(col, "d-dead").filter((e) => e.stage === "retry");
    expect(retries[0]?.detail).toMatch(
      /attempt 1 failed \(cannot download from http:\/\/127\.0\.0\.1:\d+\/pkg\.tgz: .*ECONNREFUSED.*\); next attempt in \d+ ms/,
    );
    expect(retries.map((e) => e.data?.attempt)).toEqual(retries.map((_e, i) => i + 1));
    const busy = await list(col);
    expect(busy.busy).toMatchObject({ transaction: "d-dead", stage: "download" });
    const cancel = await request(col, "models/cancel", { transaction: "c-1", target: "d-dead" });
    expect(cancel).toMatchObject({ status: "ok", data: { cancelled: "d-dead", stage: "download" } });
    expect(await stream.during(reply)).toMatchObject({
      status: "error",
      code: "OTA_CANCELLED",
      error: "cancelled by request c-1",
    });
    const after = await list(col);
    expect(after.busy).toBeNull();
    expect(after.lastUpdate).toMatchObject({ transaction: "d-dead", result: "cancelled" });
    const predictions = await stream.allWindows();
    expect(new Set(predictions.map((p) => p.modelVersion))).toEqual(new Set(["1.0.0"]));
  });

  it("connection resets and a 503 are retried; a download cut short resumes with a Range request", async () => {
    const { col, stream } = await boot(config(tempDir(), modelsDir([BASE])));
    const url = server.serve("/flaky.tgz", {
      bytes: v110.bytes,
      behaviours: [
        { kind: "reset" },
        { kind: "status", status: 503, headers: { "retry-after": "0" } },
        { kind: "cut", afterBytes: 600 },
        { kind: "ok" },
      ],
    });
    const reply = await stream.during(
      request(col, "models/deploy", { transaction: "d-flaky", url, sha256: v110.sha256, size: v110.size }),
    );
    expect(reply).toMatchObject({ status: "ok", data: { version: "1.1.0", state: "active" } });
    const retries = events(col, "d-flaky").filter((e) => e.stage === "retry");
    expect(retries.map((e) => e.data?.code)).toEqual([
      "DOWNLOAD_NETWORK",
      "DOWNLOAD_HTTP_STATUS",
      "DOWNLOAD_NETWORK",
    ]);
    const last = server.requests.filter((r) => r.path === "/flaky.tgz").at(-1);
    expect(last?.range).toMatch(/^bytes=\d+-$/);
    expect(Number(last?.range?.slice(6, -1))).toBeGreaterThan(0);
    expect(last?.ifRange).toMatch(/^"[0-9a-f]{16}"$/);
    expect(
      events(col, "d-flaky").some(
        (e) => e.stage === "download" && /resumed a partial download/.test(e.detail),
      ),
    ).toBe(true);
    const predictions = await stream.allWindows();
    expect([...new Set(predictions.map((p) => p.modelVersion))]).toEqual(["1.0.0", "1.1.0"]);
  });

  it("a restart in the middle of a download: back on the old version, the update resumes and answers its transaction; later restarts keep the chosen version", async () => {
    const dataDir = tempDir();
    const shipped = modelsDir([BASE]);
    const url = server.serve("/restart.tgz", {
      bytes: v110.bytes,
      behaviours: [{ kind: "stall", afterBytes: 400 }, { kind: "hold" }],
    });
    const first = await boot(config(dataDir, shipped));
    await first.col.publish(`${ROOT}/request/models/deploy`, {
      transaction: "d-restart",
      url,
      sha256: v110.sha256,
      size: v110.size,
    });
    await server.waitForRequests("/restart.tgz", 1);
    await waitForEvent(first.col, "accepted", "d-restart");
    await stopLast();
    const state = JSON.parse(fs.readFileSync(path.join(dataDir, "models", "state.json"), "utf8")) as {
      pending: { transaction: string; stage: string };
    };
    expect(state.pending).toMatchObject({ transaction: "d-restart", stage: "download" });

    const second = await boot(config(dataDir, shipped));
    await server.waitForRequests("/restart.tgz", 2);
    const during = await list(second.col);
    expect(during.models[0]?.active).toBe("1.0.0");
    expect(during.busy).toMatchObject({ transaction: "d-restart", stage: "download", resumes: 1 });
    server.release();
    await second.col.waitFor(() =>
      second.col.on(`${ROOT}/response/models/deploy`).some((m) => m.json().transaction === "d-restart"),
    );
    const reply = second.col
      .on(`${ROOT}/response/models/deploy`)
      .map((m) => m.json())
      .find((r) => r.transaction === "d-restart");
    expect(reply).toMatchObject({ status: "ok", data: { version: "1.1.0", state: "active" } });
    const resumedRequest = server.requests.filter((r) => r.path === "/restart.tgz")[1];
    expect(resumedRequest?.range).toMatch(/^bytes=[1-9]\d*-$/);
    await stopLast();

    // After a restart the active version is the one the update chose…
    const third = await boot(config(dataDir, shipped));
    expect((await list(third.col)).models[0]).toMatchObject({ active: "1.1.0" });
    const back = await request(third.col, "models/rollback", { transaction: "r-restart", name: BASE });
    expect(back).toMatchObject({ status: "ok", data: { version: "1.0.0" } });
    await stopLast();
    // …and after a rollback the one the rollback chose, though a higher version is installed.
    const fourth = await boot(config(dataDir, shipped));
    const status = await list(fourth.col);
    expect(status.models[0]).toMatchObject({ active: "1.0.0" });
    expect(status.models[0]?.installed.map((v) => v.version)).toEqual(["1.1.0", "1.0.0"]);
    expect((await fourth.stream.allWindows()).every((p) => p.modelVersion === "1.0.0")).toBe(true);
  });

  it("an installed package changed on disk is refused at start; an update interrupted too often is abandoned and reported", async () => {
    const dataDir = tempDir();
    const shipped = modelsDir([BASE]);
    // A plant broker of its own, so that a subscriber is there before the gateway starts.
    const plant = new EmbeddedBroker({ host: "127.0.0.1", port: 0 }, silentLogger());
    await plant.start();
    const onPlant = { "mqtt.embeddedBroker.enabled": false, "mqtt.url": plant.url() };
    const first = await boot(config(dataDir, shipped, onPlant));
    const url = server.serve("/tamper.tgz", { bytes: v110.bytes });
    expect(
      await request(first.col, "models/deploy", { transaction: "d-t", url, sha256: v110.sha256 }),
    ).toMatchObject({ status: "ok" });
    await stopLast();
    fs.appendFileSync(path.join(dataDir, "models", BASE, "1.1.0", "model.onnx"), Buffer.from([1]));
    const stateFile = path.join(dataDir, "models", "state.json");
    const state = JSON.parse(fs.readFileSync(stateFile, "utf8")) as Record<string, unknown>;
    state.pending = {
      transaction: "d-crashy",
      source: "plant",
      request: { transaction: "d-crashy", url, sha256: v110.sha256, allowDowngrade: false },
      stage: "verify",
      startedAtMs: Date.now(),
      resumes: 3,
    };
    fs.writeFileSync(stateFile, JSON.stringify(state));

    const watcher = await Collector.connect(plant.url(), [`${ROOT}/response/#`]);
    const second = await boot(config(dataDir, shipped, onPlant));
    const status = await list(second.col);
    expect(status.models[0]?.active).toBe("1.0.0");
    expect(status.models[0]?.installed.find((v) => v.version === "1.1.0")).toMatchObject({ state: "failed" });
    expect(status.models[0]?.installed.find((v) => v.version === "1.1.0")?.error).toMatch(
      /model\.onnx has SHA-256/,
    );
    await watcher.waitForCount(`${ROOT}/response/models/deploy`, 1);
    expect(watcher.on(`${ROOT}/response/models/deploy`)[0]?.json()).toMatchObject({
      transaction: "d-crashy",
      status: "error",
      code: "OTA_INTERRUPTED",
      error: expect.stringMatching(/interrupted by 4 restarts \(last at stage verify\); abandoned/) as string,
    });
    expect(status.lastUpdate).toMatchObject({ transaction: "d-crashy", result: "error" });
    await watcher.close();
    await stopLast();
    await plant.stop();
  });

  it("the cloud MQTT destination takes the same requests and gets the answers and events", async () => {
    const cloud = new EmbeddedBroker({ host: "127.0.0.1", port: 0 }, silentLogger());
    await cloud.start();
    try {
      const { col, stream } = await boot(
        config(tempDir(), modelsDir([BASE]), {
          "sync.destinations": [{ type: "mqtt", url: cloud.url(), topicPrefix: "fleet/eu" }],
        }),
      );
      const ops = await Collector.connect(cloud.url(), [
        `fleet/eu/${GW}/response/#`,
        `fleet/eu/${GW}/models/events`,
      ]);
      try {
        const url = server.serve("/cloud.tgz", { bytes: v110.bytes });
        const answered = ops.waitFor(
          (ms) => ms.some((m) => m.topic === `fleet/eu/${GW}/response/models/deploy`),
          15_000,
          "the answer on the cloud broker",
        );
        // The cloud connection subscribes once it is up: repeat the request until it is heard
        // (the same transaction is one deploy, however often it arrives).
        const body = { transaction: "d-cloud", url, sha256: v110.sha256, size: v110.size };
        let heard = false;
        void answered.then(() => (heard = true));
        while (!heard) {
          await ops.publish(`fleet/eu/${GW}/request/models/deploy`, body);
          await Promise.race([answered, new Promise((r) => setTimeout(r, 100))]);
        }
        const reply = ops.on(`fleet/eu/${GW}/response/models/deploy`)[0]?.json();
        expect(reply).toMatchObject({
          transaction: "d-cloud",
          status: "ok",
          data: { version: "1.1.0", state: "active" },
        });
        expect(
          ops.on(`fleet/eu/${GW}/models/events`).map((m) => m.json<{ stage: string }>().stage),
        ).toContain("activated");
        // The answer goes where the request came from; the plant sees the progress only.
        expect(col.on(`${ROOT}/response/models/deploy`)).toEqual([]);
        expect((await waitForEvent(col, "activated", "d-cloud")).version).toBe("1.1.0");
        await stream.send(4);
        expect((await stream.allWindows()).at(-1)?.modelVersion).toBe("1.1.0");
      } finally {
        await ops.close();
      }
    } finally {
      await stopLast();
      await cloud.stop();
    }
  });

  it("a version far slower than its self-test is rolled back in probation", async () => {
    const backend = new SlowBackend(150);
    const { col, stream } = await boot(
      config(tempDir(), modelsDir([BASE]), {
        "models.ota.probation.minLatencyMs": 50,
        "models.ota.probation.slowBatches": 2,
        "models.ota.probation.windows": 50,
      }),
      backend,
    );
    const pkg = await buildPackage({ version: "1.2.0", sign: keys });
    const url = server.serve("/slow.tgz", { bytes: pkg.bytes });
    const reply = await stream.during(
      request(col, "models/deploy", { transaction: "d-slow", url, sha256: pkg.sha256 }),
    );
    expect(reply).toMatchObject({ status: "ok", data: { version: "1.2.0" } });
    backend.armed = true;
    const back = await stream.during(waitForEvent(col, "rolled-back", "d-slow"));
    expect(back.detail).toMatch(
      /2 batches in a row took longer than 20× the self-test time .*; back to 1\.0\.0/,
    );
    const predictions = await stream.allWindows();
    expect(predictions.at(-1)?.modelVersion).toBe("1.0.0");
  });
});

/**
 * ONNX Runtime with a delay added to the sessions of packages staged by a deploy whose
 * transaction contains "slow", once armed. A model that turns slow in the field (a throttled
 * CPU, a contended accelerator) cannot be made on purpose here; its timing is what probation
 * reads, so that is what this changes. Everything else is the real runtime.
 */
class SlowBackend implements InferenceBackend {
  armed = false;
  private readonly inner = new OrtBackend();
  constructor(private readonly delayMs: number) {}

  availableProviders(): string[] {
    return this.inner.availableProviders();
  }

  async createSession(modelPath: string, options: SessionOptions): Promise<ModelSession> {
    const session = await this.inner.createSession(modelPath, options);
    if (!modelPath.includes("slow")) return session;
    let lastRunMs: number | undefined;
    return {
      inputs: session.inputs,
      outputs: session.outputs,
      provider: session.provider,
      get lastRunMs() {
        return lastRunMs;
      },
      run: async (name, data, dims) => {
        const out = await session.run(name, data, dims);
        lastRunMs = session.lastRunMs;
        if (this.armed) {
          await new Promise((r) => setTimeout(r, this.delayMs));
          lastRunMs = (lastRunMs ?? 0) + this.delayMs;
        }
        return out;
      },
      release: () => session.release(),
    };
  }
}
