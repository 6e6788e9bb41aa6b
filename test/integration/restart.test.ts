/**
 * A restart keeps what a subscriber relies on (CONTRACT §5): `seq` keeps increasing across
 * gateways on the same data folder, alert state survives (a raised alert is neither raised
 * again nor forgotten), and everything published is in the SQLite outbox with the same
 * id, seq and body. Real broker (port 0), real ONNX Runtime, SQLite in a temp folder.
 */

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { StoredRecord } from "../../src/store/types.js";
import {
  Collector,
  FIXTURES,
  startGateway,
  tempDir,
  testConfig,
  type RunningGateway,
} from "../support/harness.js";

const MODEL = "count-ntc-zscore";
const ASSET = "pump-7";
const PREDICTIONS = `vigil/gw-test/predictions/${ASSET}`;
const ALERTS = `vigil/gw-test/alerts/${ASSET}`;
const T0 = 1_790_000_000_000;

interface Manifest {
  input: {
    signals: string[];
    window: { size: number; hop: number };
    normalize: { mean: number[]; std: number[] };
  };
  alerts: { id: string; op: string; value: number; forWindows: number; clearValue: number }[];
}
interface Weights {
  layers: { W: number[][]; b: number[] }[];
}

const manifest = JSON.parse(fs.readFileSync(path.join(FIXTURES, MODEL, "manifest.json"), "utf8")) as Manifest;
const weights = JSON.parse(fs.readFileSync(path.join(FIXTURES, MODEL, "weights.json"), "utf8")) as Weights;
const rule = manifest.alerts.find((r) => r.id === "rul-low");

/** The fixture's rul for a window where every row has `s1` and s2, s3 at their means (NTC, z-score). */
function rulForS1(s1ByRow: number[]): number {
  const layer = weights.layers[0];
  const w = layer?.W[0] ?? [];
  const signals = manifest.input.signals.length;
  const z = (s1: number): number =>
    (s1 - (manifest.input.normalize.mean[0] ?? 0)) / (manifest.input.normalize.std[0] || 1);
  return s1ByRow.reduce((acc, s1, t) => acc + (w[t * signals] ?? 0) * z(s1), layer?.b[0] ?? 0);
}

const LOW = 70;
const HIGH = 100;

interface Payload {
  id: string;
  seq: number;
  state?: string;
  rule?: string;
  value?: number;
  outputs?: { rul: number };
  [k: string]: unknown;
}

async function publishRows(sub: Collector, first: number, s1: number[]): Promise<void> {
  for (const [i, v] of s1.entries()) {
    await sub.publish(`plant/${ASSET}/row`, {
      ts: T0 + (first + i) * 1000,
      values: { s1: v, s2: 20, s3: 5 },
    });
  }
}

async function start(dataDir: string, modelsDir: string): Promise<{ gw: RunningGateway; sub: Collector }> {
  const gw = await startGateway(testConfig({ dataDir, "models.dir": modelsDir }));
  const sub = await Collector.connect(gw.brokerUrl, [
    "vigil/gw-test/predictions/#",
    "vigil/gw-test/alerts/#",
  ]);
  return { gw, sub };
}

async function finish(gw: RunningGateway, sub: Collector): Promise<void> {
  await gw.gateway.settle();
  await sub.close();
  await gw.stop();
}

describe("restart on the same data folder", () => {
  it("the fixture is what this test assumes", () => {
    expect(manifest.input.window).toEqual({ type: "count", size: 5, hop: 2 });
    expect(rule).toMatchObject({ op: "<", value: 40, forWindows: 2, clearValue: 45 });
    expect(rulForS1([LOW, LOW, LOW, LOW, LOW])).toBeCloseTo(26.84, 1);
    expect(rulForS1([HIGH, HIGH, HIGH, HIGH, HIGH])).toBeCloseTo(50, 6);
  });

  it("keeps seq increasing, alert state, and every published record in the store", async () => {
    const dataDir = tempDir("vigil-restart-");
    const modelsDir = tempDir("vigil-models-");
    fs.cpSync(path.join(FIXTURES, MODEL), path.join(modelsDir, MODEL), { recursive: true });
    const seen: Payload[] = [];

    // --- First life: two low windows (rows 5 and 7) raise rul-low (forWindows 2).
    {
      const { gw, sub } = await start(dataDir, modelsDir);
      try {
        await publishRows(sub, 1, Array<number>(7).fill(LOW));
        await sub.waitForCount(PREDICTIONS, 2);
        await sub.waitForCount(ALERTS, 1);
        await gw.gateway.settle();
        const predictions = sub.on(PREDICTIONS).map((m) => m.json<Payload>());
        const alerts = sub.on(ALERTS).map((m) => m.json<Payload>());
        expect(predictions).toHaveLength(2);
        for (const p of predictions)
          expect(p.outputs?.rul).toBeCloseTo(rulForS1(Array<number>(5).fill(LOW)), 3);
        expect(alerts).toHaveLength(1);
        expect(alerts[0]).toMatchObject({
          rule: "rul-low",
          state: "raised",
          model: MODEL,
          asset: ASSET,
          ts: T0 + 7000,
        });
        expect(alerts[0]?.value).toBeCloseTo(rulForS1(Array<number>(5).fill(LOW)), 3);
        expect(gw.gateway.status().alerts).toEqual([
          expect.objectContaining({ asset: ASSET, rule: "rul-low" }),
        ]);
        seen.push(...predictions, ...alerts);
      } finally {
        await finish(gw, sub);
      }
    }
    const firstMaxSeq = Math.max(...seen.map((p) => p.seq));
    expect(firstMaxSeq).toBe(3);

    // --- Second life, a new gateway on the same folder.
    {
      const { gw, sub } = await start(dataDir, modelsDir);
      try {
        // The raised alert is known before any new reading arrives.
        expect(gw.gateway.status().alerts).toEqual([
          expect.objectContaining({ asset: ASSET, rule: "rul-low" }),
        ]);
        expect(gw.gateway.status().store).toMatchObject({ lastSeq: firstMaxSeq });

        // Two more low windows (rows 5 and 7): a fresh rule would raise here; a restored one stays quiet.
        await publishRows(sub, 101, Array<number>(7).fill(LOW));
        await sub.waitForCount(PREDICTIONS, 2);
        await gw.gateway.settle();
        expect(sub.on(ALERTS)).toHaveLength(0);

        // Back to normal: windows at rows 9 and 11 still hold low rows (rul < clearValue); row 13 is all high.
        expect(rulForS1([LOW, LOW, LOW, HIGH, HIGH])).toBeLessThan(rule?.clearValue ?? 0);
        expect(rulForS1([LOW, HIGH, HIGH, HIGH, HIGH])).toBeLessThan(rule?.clearValue ?? 0);
        await publishRows(sub, 108, Array<number>(6).fill(HIGH));
        await sub.waitForCount(PREDICTIONS, 5);
        await sub.waitForCount(ALERTS, 1);
        await gw.gateway.settle();

        const predictions = sub.on(PREDICTIONS).map((m) => m.json<Payload>());
        const alerts = sub.on(ALERTS).map((m) => m.json<Payload>());
        expect(predictions).toHaveLength(5);
        expect(alerts).toHaveLength(1);
        expect(alerts[0]).toMatchObject({ rule: "rul-low", state: "cleared", ts: T0 + 113_000 });
        expect(alerts[0]?.value).toBeCloseTo(50, 3);
        expect(gw.gateway.status().alerts).toEqual([]);

        // seq continues above the first life's maximum; ids never repeat.
        const second = [...predictions, ...alerts];
        for (const p of second) expect(p.seq).toBeGreaterThan(firstMaxSeq);
        expect(Math.min(...second.map((p) => p.seq))).toBe(firstMaxSeq + 1);
        seen.push(...second);
        expect(new Set(seen.map((p) => p.id)).size).toBe(seen.length);
        expect(new Set(seen.map((p) => p.seq)).size).toBe(seen.length);
      } finally {
        await finish(gw, sub);
      }
    }

    // --- The store holds every record a subscriber saw, with the same id, seq and body.
    const store = new SqliteStore({ file: path.join(dataDir, "vigil.db") });
    let records: StoredRecord[];
    try {
      records = store.readAfter(0, 1000);
    } finally {
      store.close();
    }
    const byId = new Map(records.map((r) => [r.id, r]));
    for (const p of seen) {
      const r = byId.get(p.id);
      expect(r, `record ${p.id} (seq ${p.seq}) is in the store`).toBeDefined();
      expect(r?.seq).toBe(p.seq);
      expect(r?.kind).toBe(p.state === undefined ? "prediction" : "alert");
      expect({ ...r?.data, id: r?.id, seq: r?.seq }).toEqual(p);
    }
    expect(records.filter((r) => r.kind !== "event")).toHaveLength(seen.length);
    expect(records.filter((r) => r.kind === "alert").map((r) => r.data.state)).toEqual(["raised", "cleared"]);
  });
});
