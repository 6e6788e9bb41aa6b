/**
 * A gateway stopped while a shadow trial runs (src/models/ota/updater.ts): stop() wins. The
 * candidate's last batch, held until stop() is draining the shadow, completes the trial's
 * windows, yet no trial end runs (no report, no promotion, no removal); the trial stays
 * recorded in the state file (it starts over at the next start, and does), the candidate stays
 * installed, and nothing rejects unhandled (vitest fails the run on one). The candidate's
 * sessions are the real ONNX Runtime behind a gate the test opens; the moment the shadow starts
 * draining is seen on Pipeline.clearShadow. Real gateway, embedded broker, signed package.
 */

import fs from "node:fs";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  OrtBackend,
  type InferenceBackend,
  type ModelSession,
  type SessionOptions,
} from "../../src/inference/ort.js";
import { ModelUpdater } from "../../src/models/ota/updater.js";
import { Pipeline } from "../../src/pipeline/pipeline.js";
import { modelsDir, tempDir, testConfig } from "../support/harness.js";
import {
  BASE,
  PackageServer,
  ROOT,
  buildPackage,
  events,
  makeKeys,
  request,
  startOtaGateway,
  waitForEvent,
  type KeyPairFiles,
} from "../support/ota.js";

const TRANSACTION = "t-gated";

/** ONNX Runtime, with the runs of sessions staged by TRANSACTION held at a gate once it is armed. */
class GatedBackend implements InferenceBackend {
  private readonly inner = new OrtBackend();
  armed = false;
  private openGate: () => void = () => undefined;
  private readonly gate = new Promise<void>((resolve) => (this.openGate = resolve));
  private enteredGate: () => void = () => undefined;
  /** Resolves when a gated run is waiting at the gate. */
  readonly entered = new Promise<void>((resolve) => (this.enteredGate = resolve));

  open(): void {
    this.openGate();
  }

  availableProviders(): string[] {
    return this.inner.availableProviders();
  }

  async createSession(modelPath: string, options: SessionOptions): Promise<ModelSession> {
    const session = await this.inner.createSession(modelPath, options);
    if (!modelPath.includes(TRANSACTION)) return session;
    return {
      inputs: session.inputs,
      outputs: session.outputs,
      provider: session.provider,
      get lastRunMs() {
        return session.lastRunMs;
      },
      run: async (name, data, dims) => {
        const out = await session.run(name, data, dims);
        if (this.armed) {
          this.enteredGate();
          await this.gate;
        }
        return out;
      },
      release: () => session.release(),
    };
  }
}

let keys: KeyPairFiles;
let server: PackageServer;

beforeAll(async () => {
  keys = makeKeys();
  server = new PackageServer();
  await server.start();
});

afterAll(async () => {
  await server.close();
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("stopping the gateway during a shadow trial", () => {
  it("the candidate's batch that lands while the shadow drains ends no trial; the trial is kept and restarts", async () => {
    const dataDir = tempDir();
    const cfg = testConfig({
      dataDir,
      "models.dir": modelsDir([BASE]),
      "models.trustedKeys": [keys.pubFile],
    });
    const backend = new GatedBackend();
    const gw = await startOtaGateway(cfg, backend);
    const finishTrial = vi.spyOn(
      ModelUpdater.prototype as unknown as { finishTrial: (...args: unknown[]) => Promise<void> },
      "finishTrial",
    );
    let stopping = false;
    const clearShadow = Pipeline.prototype.clearShadow;
    vi.spyOn(Pipeline.prototype, "clearShadow").mockImplementation(function (this: Pipeline, name: string) {
      const drained = clearShadow.call(this, name);
      if (stopping) backend.open(); // the candidate's held batch lands while its shadow drains
      return drained;
    });
    try {
      const pkg = await buildPackage({ version: "1.2.0", sign: keys });
      const url = server.serve(`/${TRANSACTION}.tgz`, { bytes: pkg.bytes });
      // One window decides the trial; no rows are sent until the gate is armed.
      const reply = await request(gw.col, "models/deploy", {
        transaction: TRANSACTION,
        url,
        sha256: pkg.sha256,
        trial: { windows: 1, durationMs: 600_000 },
      });
      expect(reply).toMatchObject({ status: "ok", data: { version: "1.2.0", state: "trial" } });
      backend.armed = true;
      const before = gw.stream.predictions().length;
      await gw.stream.send(2); // closes exactly one window (count 5, hop 2; 6 rows were sent)
      await backend.entered; // the candidate's batch is held ...
      await gw.col.waitForCount(`${ROOT}/predictions/m1`, before + 1, 10_000); // ... the active's is in
      expect(finishTrial).not.toHaveBeenCalled();

      stopping = true;
      await gw.close();
      await new Promise<void>((resolve) => setImmediate(resolve)); // a trial end would have run by now
      expect(finishTrial).not.toHaveBeenCalled();
      expect(events(gw.col, TRANSACTION).map((e) => e.stage)).not.toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^(trial-report|promoted|trial-failed|trial-passed)$/),
        ]),
      );
      const state = JSON.parse(fs.readFileSync(path.join(dataDir, "models", "state.json"), "utf8")) as {
        trials: Record<string, { version: string; transaction: string }>;
      };
      expect(state.trials[BASE]).toMatchObject({ version: "1.2.0", transaction: TRANSACTION });
      expect(fs.existsSync(path.join(dataDir, "models", BASE, "1.2.0"))).toBe(true);
    } finally {
      stopping = false;
      backend.open();
    }

    // The next start takes the trial up again.
    vi.restoreAllMocks();
    const again = await startOtaGateway(cfg);
    try {
      const restarted = await waitForEvent(again.col, "trial-restarted", TRANSACTION, 10_000);
      expect(restarted.detail).toMatch(/starts over/);
    } finally {
      await again.close();
    }
  });
});
