/**
 * End to end, count windows: readings published on the plant broker → gateway (real aedes,
 * ONNX Runtime, SQLite) → predictions and alerts a subscriber receives, compared with the
 * independent reference (test/support/reference.ts) computed from the very readings sent.
 *
 * Covers count-ntc-zscore (size 5, hop 2, z-score with a zero std, NTC, alert `rul < 40` for
 * 2 windows, clear above 45) fed by multi-value rows, by per-signal topics interleaved across
 * assets and timestamps, and by JSON array batches; and count-nct-minmax (size 4, hop 1,
 * min-max, NCT, an array output, alert `p_fail >= 0.7`, clear below 0.5).
 * "Nothing else arrives" is proven with a sentinel: after the data, a fresh asset publishes one
 * window's rows; the gateway publishes in commit order, so once the sentinel's prediction is
 * in, everything the data caused is in too.
 */

import { afterEach, describe, expect, it } from "vitest";
import { Collector, modelsDir, startGateway, testConfig, type RunningGateway } from "../support/harness.js";
import {
  alertEvents,
  assembleRows,
  countWindows,
  loadFixture,
  predict,
  publishedProblems,
  thresholdMargin,
  uniquenessProblems,
  type Fixture,
  type RefAlert,
  type RefPrediction,
  type RefReading,
} from "../support/reference.js";

const GATEWAY_ID = "gw-test";
const ROOT = `vigil/${GATEWAY_ID}`;
/** 2024-01-01T00:00:00Z: in the past (no future_ts) and a round number of seconds. */
const T0 = Date.UTC(2024, 0, 1);

const ZSCORE = loadFixture("count-ntc-zscore");
const MINMAX = loadFixture("count-nct-minmax");

let running: RunningGateway | undefined;
let collector: Collector | undefined;

afterEach(async () => {
  await collector?.close();
  collector = undefined;
  await running?.stop();
  running = undefined;
});

async function start(models: string[]): Promise<Collector> {
  running = await startGateway(testConfig({ "models.dir": modelsDir(models) }));
  collector = await Collector.connect(running.brokerUrl, [
    `${ROOT}/status`,
    `${ROOT}/predictions/+`,
    `${ROOT}/alerts/+`,
  ]);
  // The gateway's SUBSCRIBE goes out before its `online` status on the same connection, so
  // once the status is seen, readings published from here reach it.
  await collector.waitOnline(`${ROOT}/status`);
  return collector;
}

interface Row {
  ts: number;
  /** Values in the model's signal order. */
  values: number[];
}

function rowsOf(values: number[][], startMs = T0, stepMs = 1000): Row[] {
  return values.map((v, i) => ({ ts: startMs + i * stepMs, values: v }));
}

function readingsOfRows(fixture: Fixture, rows: readonly Row[]): RefReading[] {
  const signals = fixture.manifest.input.signals;
  return rows.flatMap((r) =>
    signals.map((signal, c) => ({ signal, ts: r.ts, value: r.values[c] as number })),
  );
}

function valuesObject(fixture: Fixture, row: Row, reversed = false): Record<string, number> {
  const entries = fixture.manifest.input.signals.map((s, c) => [s, row.values[c] as number] as const);
  return Object.fromEntries(reversed ? [...entries].reverse() : entries);
}

interface Expected {
  asset: string;
  fixture: Fixture;
  predictions: RefPrediction[];
  alerts: RefAlert[];
}

/** The reference for one asset: its readings in the order they were published. */
function expectFor(fixture: Fixture, asset: string, readings: readonly RefReading[]): Expected {
  const { input } = fixture.manifest;
  if (input.window.type !== "count") throw new Error("count fixture expected");
  const { rows } = assembleRows(readings, input.signals);
  const predictions = countWindows(rows, input.window.size, input.window.hop).map((w) => predict(fixture, w));
  return { asset, fixture, predictions, alerts: alertEvents(fixture.manifest.alerts, predictions) };
}

/** A fresh asset publishes exactly one window's rows in one batch; waits for its prediction. */
async function sentinel(col: Collector, fixture: Fixture): Promise<Expected> {
  const { input } = fixture.manifest;
  if (input.window.type !== "count") throw new Error("count fixture expected");
  const asset = `zz-${fixture.manifest.name}`;
  const rows = rowsOf(
    Array.from({ length: input.window.size }, (_, i) => input.signals.map((_s, c) => 10 + i + c)),
    T0 + 3_600_000,
  );
  await col.publish(
    `plant/${asset}/row`,
    rows.map((r) => ({ ts: r.ts, values: valuesObject(fixture, r) })),
  );
  await col.waitForCount(`${ROOT}/predictions/${asset}`, 1);
  const exp = expectFor(fixture, asset, readingsOfRows(fixture, rows));
  expect(exp.predictions).toHaveLength(1);
  return exp;
}

/** Waits for every expected prediction and alert, then for the sentinels; compares everything. */
async function verify(
  col: Collector,
  expected: readonly Expected[],
  fixtures: readonly Fixture[],
): Promise<void> {
  for (const e of expected) {
    await col.waitForCount(`${ROOT}/predictions/${e.asset}`, e.predictions.length);
    await col.waitForCount(`${ROOT}/alerts/${e.asset}`, e.alerts.length);
  }
  const all = [...expected];
  for (const f of fixtures) all.push(await sentinel(col, f));
  const problems = all.flatMap((e) =>
    publishedProblems(col.messages, { root: ROOT, gatewayId: GATEWAY_ID, ...e }),
  );
  problems.push(...uniquenessProblems(col.messages, ROOT));
  expect(problems).toEqual([]);
  const assets = new Set(all.map((e) => e.asset));
  const strays = col.messages.filter(
    (m) =>
      (m.topic.startsWith(`${ROOT}/predictions/`) || m.topic.startsWith(`${ROOT}/alerts/`)) &&
      !assets.has(m.topic.split("/").pop() ?? ""),
  );
  expect(strays.map((m) => m.topic)).toEqual([]);
}

/** The test data must not sit on a threshold, or float32 rounding could flip a decision. */
function expectClearOfThresholds(e: Expected): void {
  expect(thresholdMargin(e.fixture.manifest.alerts, e.predictions)).toBeGreaterThan(1e-2);
}

// s1 falls (rul < 40 for two windows: raised), recovers past 40 but not past 45 (still raised),
// then past 45 (cleared); later a single window below 40 (not raised: forWindows 2).
const S1 = [
  104, 103, 105, 104, 102, 101, 99, 97, 82, 80, 79, 78, 81, 79, 80, 92, 91, 93, 92, 106, 107, 105, 75, 68, 70,
  115, 118, 110, 108,
];
const zRow = (s1: number, i: number): number[] => [s1, 20 + 2 * Math.sin(i), 5 + 0.3 * Math.cos(i)];

describe("e2e count windows: count-ntc-zscore", () => {
  it("multi-value rows (epoch and ISO ts, any key order) give the reference predictions and alerts", async () => {
    const col = await start(["count-ntc-zscore", "count-nct-minmax"]);
    const rows = rowsOf(S1.map(zRow));
    const sent: RefReading[] = [];
    const send = async (r: Row, i: number): Promise<void> => {
      // Epoch ms, ISO in UTC, ISO with an offset (the same instant).
      const ts =
        i % 6 === 5
          ? new Date(r.ts + 330 * 60_000).toISOString().replace("Z", "+05:30")
          : i % 3 === 2
            ? new Date(r.ts).toISOString()
            : r.ts;
      await col.publish("plant/m1/row", { ts, values: valuesObject(ZSCORE, r, i % 2 === 1) });
      sent.push(...readingsOfRows(ZSCORE, [r]));
    };
    for (const [i, r] of rows.entries()) {
      await send(r, i);
      if (i === 12) {
        // An older row (out of order) and the last row again with other values (duplicate): dropped.
        await send({ ts: (rows[10] as Row).ts, values: [70, 20, 5] }, 0);
        await send({ ts: r.ts, values: [130, 25, 6] }, 0);
      }
    }
    const exp = expectFor(ZSCORE, "m1", sent);
    expect(assembleRows(sent, ZSCORE.manifest.input.signals).dropped).toBe(6);
    // 29 rows, size 5, hop 2: windows end at rows 5, 7, …, 29.
    expect(exp.predictions.map((p) => p.ts)).toEqual(
      Array.from({ length: 13 }, (_, k) => rows[4 + 2 * k]?.ts),
    );
    expect(exp.predictions.map((p) => p.windowStart)).toEqual(
      Array.from({ length: 13 }, (_, k) => rows[2 * k]?.ts),
    );
    expect(exp.alerts.map((a) => [a.state, a.ts])).toEqual([
      ["raised", rows[14]?.ts],
      ["cleared", rows[20]?.ts],
    ]);
    expectClearOfThresholds(exp);
    await verify(col, [exp], [ZSCORE]);
    expect(running?.gateway.status().counters?.rejected).toMatchObject({ out_of_order: 3, duplicate: 3 });
  });

  it("per-signal topics {ts, value}, interleaved across two assets and timestamps, assemble into rows", async () => {
    const col = await start(["count-ntc-zscore"]);
    type Msg = { topic: string; payload: { ts: number; value: number }; asset: string; reading: RefReading };
    /** Row k's last signal comes after row k+1's first: rows stay pending side by side. */
    const interleave = (asset: string, rows: Row[], order: number[]): Msg[] => {
      const out: Msg[] = [];
      const one = (k: number, c: number): void => {
        const row = rows[k] as Row;
        const signal = ZSCORE.manifest.input.signals[c] as string;
        const value = row.values[c] as number;
        out.push({
          topic: `plant/${asset}/${signal}`,
          payload: { ts: row.ts, value },
          asset,
          reading: { signal, ts: row.ts, value },
        });
      };
      const [a, b, c] = order as [number, number, number];
      rows.forEach((_r, k) => {
        one(k, a);
        if (k > 0) one(k - 1, c);
        one(k, b);
      });
      one(rows.length - 1, c);
      return out;
    };
    const m2 = interleave("m2", rowsOf(S1.slice(0, 15).map(zRow)), [0, 1, 2]);
    const m3 = interleave(
      "m3",
      rowsOf(
        S1.slice(6, 23).map((s, i) => zRow(s + 3, i + 6)),
        T0 + 500,
      ),
      [2, 0, 1],
    );
    // A second value for a (signal, ts) already held: dropped, the first one counts.
    const dupAt = m3.findIndex((m, i) => i > 12 && m.reading.signal === "s2");
    const dup = m3[dupAt] as Msg;
    m3.splice(dupAt + 1, 0, {
      ...dup,
      payload: { ...dup.payload, value: dup.payload.value + 50 },
      reading: { ...dup.reading, value: dup.reading.value + 50 },
    });
    const merged: Msg[] = [];
    for (let i = 0; i < Math.max(m2.length, m3.length); i++) {
      if (m2[i]) merged.push(m2[i] as Msg);
      if (m3[i]) merged.push(m3[i] as Msg);
    }
    for (const m of merged) await col.publish(m.topic, m.payload);

    const e2 = expectFor(
      ZSCORE,
      "m2",
      m2.map((m) => m.reading),
    );
    const e3 = expectFor(
      ZSCORE,
      "m3",
      m3.map((m) => m.reading),
    );
    expect(e2.predictions).toHaveLength(6);
    expect(e3.predictions).toHaveLength(7);
    await verify(col, [e2, e3], [ZSCORE]);
    expect(running?.gateway.status().counters?.rejected).toMatchObject({ duplicate: 1 });
  });

  it("JSON array batches of rows and of per-signal readings", async () => {
    const col = await start(["count-ntc-zscore"]);
    const rows4 = rowsOf(
      S1.slice(2, 27).map((s, i) => zRow(s - 2, i + 2)),
      T0 + 250,
    );
    const chunks = [1, 4, 2, 6, 3, 5, 4];
    const sent4: RefReading[] = [];
    let at = 0;
    for (const n of chunks) {
      const batch = rows4.slice(at, at + n);
      at += n;
      await col.publish(
        "plant/m4/row",
        batch.map((r) => ({ ts: r.ts, values: valuesObject(ZSCORE, r) })),
      );
      sent4.push(...readingsOfRows(ZSCORE, batch));
    }
    expect(at).toBe(rows4.length);

    // m5: per-signal topics, each payload an array of {ts, value} covering several rows.
    const rows5 = rowsOf(
      S1.slice(0, 21).map((s, i) => zRow(110 - (s - 90), i)),
      T0 + 750,
      2000,
    );
    const sent5: RefReading[] = [];
    for (let from = 0; from < rows5.length; from += 4) {
      const part = rows5.slice(from, from + 4);
      for (const [c, signal] of ZSCORE.manifest.input.signals.entries()) {
        const items = part.map((r) => ({ ts: r.ts, value: r.values[c] as number }));
        await col.publish(`plant/m5/${signal}`, items);
        sent5.push(...items.map((it) => ({ signal, ts: it.ts, value: it.value })));
      }
    }
    const e4 = expectFor(ZSCORE, "m4", sent4);
    const e5 = expectFor(ZSCORE, "m5", sent5);
    expect(e4.predictions).toHaveLength(11);
    expect(e5.predictions).toHaveLength(9);
    await verify(col, [e4, e5], [ZSCORE]);
  });
});

// Values beyond the min-max range (a = 108, b < 0 and b > 10) are not clipped.
// a climbs (p_fail >= 0.7: raised), eases off but stays above 0.5 (still raised), drops
// (cleared), nearly rises again (0.6: not raised), rises (raised), falls (cleared).
const A = [20, 25, 30, 28, 35, 60, 85, 90, 92, 88, 65, 62, 66, 60, 45, 30, 25, 90, 95, 108, 40, 30, 20, 22];

describe("e2e count windows: count-nct-minmax", () => {
  it("an array output and a number, with hysteresis on p_fail", async () => {
    const col = await start(["count-ntc-zscore", "count-nct-minmax"]);
    const rows = rowsOf(A.map((a, i) => [a, 5 + 6 * Math.sin(i * 0.7)]));
    // First half one row per message, second half in two batches.
    const half = 12;
    for (const r of rows.slice(0, half))
      await col.publish("plant/p1/row", { ts: r.ts, values: valuesObject(MINMAX, r) });
    for (const part of [rows.slice(half, half + 5), rows.slice(half + 5)])
      await col.publish(
        "plant/p1/row",
        part.map((r) => ({ ts: new Date(r.ts).toISOString(), values: valuesObject(MINMAX, r, true) })),
      );
    const exp = expectFor(MINMAX, "p1", readingsOfRows(MINMAX, rows));
    // size 4, hop 1: a window at every row from the 4th.
    expect(exp.predictions.map((p) => p.ts)).toEqual(rows.slice(3).map((r) => r.ts));
    for (const p of exp.predictions) expect(p.outputs.probs).toHaveLength(2);
    expect(exp.alerts.map((a) => [a.state, a.ts])).toEqual([
      ["raised", rows[7]?.ts],
      ["cleared", rows[16]?.ts],
      ["raised", rows[19]?.ts],
      ["cleared", rows[22]?.ts],
    ]);
    expectClearOfThresholds(exp);
    await verify(col, [exp], [MINMAX, ZSCORE]);
  });
});
