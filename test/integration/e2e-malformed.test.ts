/**
 * End to end under hostile input: hundreds of malformed payloads (not JSON, NaN text, 1e999,
 * strings and other wrong types as values, oversize payloads, bad timestamps, unknown topics,
 * bad names, deep nesting, `__proto__` keys, batches over the limit, future timestamps)
 * interleaved with good readings. The predictions a subscriber receives must equal the
 * independent reference computed on the good readings alone; `gateway.status().counters`
 * must count every reject under its documented reason (docs/ingest.md), accept exactly the
 * good readings, and the gateway must still be serving at the end.
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
  type RefReading,
} from "../support/reference.js";

const GATEWAY_ID = "gw-test";
const ROOT = `vigil/${GATEWAY_ID}`;
const T0 = Date.UTC(2024, 0, 1);
const MAX_PAYLOAD_BYTES = 4096;
const MAX_BATCH_ITEMS = 20;

const ZSCORE = loadFixture("count-ntc-zscore");
const SIGNALS = ZSCORE.manifest.input.signals;

let running: RunningGateway | undefined;
let collector: Collector | undefined;

afterEach(async () => {
  await collector?.close();
  collector = undefined;
  await running?.stop();
  running = undefined;
});

interface Bad {
  topic: string;
  payload: string | Buffer;
  /** The documented reject reason and how many it counts (docs/ingest.md). */
  reason: string;
  count: number;
}

/** One of every kind of bad input; none of them carries a single acceptable reading. */
function catalogue(k: number): Bad[] {
  // Timestamps of rows still to come: if any of these were accepted, the windows would change.
  const ts = T0 + (k % 30) * 1000;
  const deepArray = `${"[".repeat(1500)}${"]".repeat(1500)}`;
  const deepObject = `${'{"a":'.repeat(600)}1${"}".repeat(600)}`;
  const deepValue = `{"ts":${ts},"values":{"s1":${'{"a":'.repeat(400)}1${"}".repeat(400)}}}`;
  const items = (n: number): string =>
    JSON.stringify(Array.from({ length: n }, (_, i) => ({ ts: ts + i * 1000, value: 100 + i })));
  const wideRow = JSON.stringify({
    ts,
    values: Object.fromEntries(Array.from({ length: MAX_BATCH_ITEMS + 1 }, (_, i) => [`s${i}`, i])),
  });
  const bad = (topic: string, payload: string | Buffer, reason: string, count = 1): Bad => ({
    topic,
    payload,
    reason,
    count,
  });
  return [
    // not JSON (JSON has no NaN)
    bad("plant/g1/row", `{"ts": ${ts}, "values": `, "not_json"),
    bad("plant/g1/s1", "hello", "not_json"),
    bad("plant/g1/s1", "", "not_json"),
    bad("plant/g1/s1", Buffer.from([0xff, 0xfe, 0x31]), "not_json"),
    bad("plant/g1/s1", "NaN", "not_json"),
    bad("plant/g1/row", `{"ts":${ts},"values":{"s1":NaN,"s2":20,"s3":5}}`, "not_json"),
    bad("plant/g1/s2", `{'ts': ${ts}, 'value': 1}`, "not_json"),
    // non-finite numbers
    bad("plant/g1/s1", "1e999", "non_finite"),
    bad("plant/g1/s1", `{"ts":${ts},"value":-1e999}`, "non_finite"),
    bad("plant/g1/row", `{"ts":${ts},"values":{"s2":1e999}}`, "non_finite"),
    bad("plant/g1/s3", "[1e999]", "non_finite"),
    bad("num/g1/s1", "NaN", "non_finite"),
    bad("num/g1/s1", "-Infinity", "non_finite"),
    // wrong types and shapes
    bad("plant/g1/row", `{"ts":${ts},"values":{"s1":"12.5"}}`, "bad_shape"),
    bad("plant/g1/s1", `{"ts":${ts},"value":"12.5"}`, "bad_shape"),
    bad("plant/g1/s1", '"12.5"', "bad_shape"),
    bad("plant/g1/s1", "true", "bad_shape"),
    bad("plant/g1/s1", "null", "bad_shape"),
    bad("plant/g1/row", `{"ts":${ts},"values":[100,20,5]}`, "bad_shape"),
    bad("plant/g1/row", `{"ts":${ts}}`, "bad_shape"),
    bad("plant/g1/s1", `{"ts":${ts},"value":100,"values":{"s1":100}}`, "bad_shape"),
    bad("plant/g1/row", `{"ts":${ts},"values":{"s1":{"v":100}}}`, "bad_shape"),
    bad("plant/g1/row", `{"ts":${ts},"values":{}}`, "bad_shape"),
    bad("plant/g1/row", `{"ts":${ts},"values":{"s1":null}}`, "bad_shape"),
    bad("plant/g1/s1", "[[100]]", "bad_shape"),
    bad("num/g1/s1", "12,5", "bad_shape"),
    // deep nesting
    bad("plant/g1/s1", deepArray, "bad_shape"),
    bad("plant/g1/s1", deepObject, "bad_shape"),
    bad("plant/g1/row", deepValue, "bad_shape"),
    // __proto__ keys: never a reading, never pollution
    bad("plant/g1/s1", `{"__proto__":{"ts":${ts},"value":100,"polluted":1}}`, "bad_shape"),
    bad("plant/g1/row", `{"__proto__":{"values":{"s1":100}},"ts":${ts}}`, "bad_shape"),
    bad("plant/g1/row", `{"ts":${ts},"values":{"__proto__":100}}`, "bad_name"),
    // bad names
    bad("plant/__proto__/s1", `{"ts":${ts},"value":100}`, "bad_name"),
    bad("plant/g\u00071/s1", `{"ts":${ts},"value":100}`, "bad_name"),
    bad(`plant/${"a".repeat(200)}/s1`, `{"ts":${ts},"value":100}`, "bad_name"),
    bad("plant/g1/row", `{"ts":${ts},"values":{"":100}}`, "bad_name"),
    bad("plant/g1/row", `{"ts":${ts},"values":{"s#1":100}}`, "bad_name"),
    bad("plant/g1/row", JSON.stringify({ ts, values: { ["x".repeat(129)]: 1 } }), "bad_name"),
    // bad ts
    bad("plant/g1/row", `{"ts":"yesterday","values":{"s1":100}}`, "bad_ts"),
    bad("plant/g1/s1", `{"ts":${Math.floor(ts / 1000)},"value":100}`, "bad_ts"),
    bad("plant/g1/s1", `{"ts":"2024-13-45T00:00:00Z","value":100}`, "bad_ts"),
    bad("plant/g1/s1", `{"ts":true,"value":100}`, "bad_ts"),
    bad("plant/g1/row", `{"ts":"2024-01-01T00:00:00","values":{"s1":100,"s2":20}}`, "bad_ts", 2),
    // unknown topics (the second template needs `raw-` before the signal)
    bad("dev/g1/temperature", `{"ts":${ts},"value":100}`, "unknown_topic"),
    bad("dev/g1/raw-", `{"ts":${ts},"value":100}`, "unknown_topic"),
    // oversize
    bad(
      "plant/g1/row",
      JSON.stringify({ ts, values: { s1: 100 }, pad: "x".repeat(MAX_PAYLOAD_BYTES) }),
      "payload_too_large",
    ),
    bad("plant/g1/s1", "[".repeat(MAX_PAYLOAD_BYTES + 1), "payload_too_large"),
    // batches over the limit (the items themselves would be fine)
    bad("plant/g1/s1", items(MAX_BATCH_ITEMS + 1), "batch_too_large"),
    bad("plant/g1/row", wideRow, "batch_too_large"),
    // a clock days ahead
    bad("plant/g1/s1", `{"ts":${Date.now() + 3 * 86_400_000},"value":100}`, "future_ts"),
  ];
}

const s1 = (i: number): number => 100 + 12 * Math.sin(i / 3) - (i > 14 && i < 24 ? 25 : 0);
const rowValues = (i: number): Record<string, number> => ({
  s1: s1(i),
  s2: 20 + Math.cos(i),
  s3: 5 + 0.1 * i,
});

describe("e2e malformed input", () => {
  it("a flood of bad payloads changes nothing: predictions equal the reference on good readings alone", async () => {
    running = await startGateway(
      testConfig({
        "models.dir": modelsDir(["count-ntc-zscore"]),
        "ingest.maxPayloadBytes": MAX_PAYLOAD_BYTES,
        "ingest.maxBatchItems": MAX_BATCH_ITEMS,
        "ingest.subscriptions": [
          { topic: "plant/{asset}/{signal}" },
          { topic: "dev/{asset}/raw-{signal}" },
          { topic: "num/{asset}/{signal}", format: "number" },
        ],
      }),
    );
    const gw = running.gateway;
    const col = await Collector.connect(running.brokerUrl, [
      `${ROOT}/status`,
      `${ROOT}/predictions/+`,
      `${ROOT}/alerts/+`,
    ]);
    collector = col;
    await col.waitOnline(`${ROOT}/status`);

    // Good input: g1 rows (single and batched) on plant/…, g3 per-signal on the dev/…/raw-{signal} template.
    const good: { topic: string; payload: string }[] = [];
    const g1: RefReading[] = [];
    const g3: RefReading[] = [];
    const ROWS = 31;
    for (let i = 0; i < ROWS;) {
      const n = i % 4 === 3 ? 3 : 1;
      const batch = Array.from({ length: Math.min(n, ROWS - i) }, (_, j) => ({
        ts: T0 + (i + j) * 1000,
        values: rowValues(i + j),
      }));
      good.push({ topic: "plant/g1/row", payload: JSON.stringify(n === 1 ? batch[0] : batch) });
      for (const r of batch)
        for (const s of SIGNALS) g1.push({ signal: s, ts: r.ts, value: r.values[s] as number });
      i += batch.length;
    }
    for (let i = 0; i < 9; i++) {
      for (const s of [...SIGNALS].reverse()) {
        const value = (rowValues(i + 40)[s] as number) + 1;
        const ts = T0 + 500 + i * 2000;
        good.push({ topic: `dev/g3/raw-${s}`, payload: JSON.stringify({ ts, value }) });
        g3.push({ signal: s, ts, value });
      }
    }

    const expected: Record<string, number> = {};
    let badPayloads = 0;
    let k = 0;
    const pending = [...good];
    while (pending.length > 0) {
      // Alternate g1 and g3 messages, each followed by a burst of junk.
      const next = (k % 3 === 2 ? pending.find((m) => m.topic.startsWith("dev/")) : undefined) ?? pending[0];
      if (next === undefined) break;
      pending.splice(pending.indexOf(next), 1);
      await col.publish(next.topic, next.payload);
      const kinds = catalogue(k);
      for (let j = 0; j < 10; j++) {
        const b = kinds[(k * 10 + j) % kinds.length] as Bad;
        await col.publish(b.topic, b.payload);
        expected[b.reason] = (expected[b.reason] ?? 0) + b.count;
        badPayloads++;
      }
      k++;
    }
    // The whole catalogue once more, so every kind is certainly in.
    for (const b of catalogue(k)) {
      await col.publish(b.topic, b.payload);
      expected[b.reason] = (expected[b.reason] ?? 0) + b.count;
      badPayloads++;
    }
    expect(badPayloads).toBeGreaterThan(300);

    // A sentinel row for g1 that closes one more window (hop 2: two rows), then one more for g3.
    const tail = [ROWS, ROWS + 1].map((i) => ({ ts: T0 + i * 1000, values: rowValues(i) }));
    await col.publish("plant/g1/row", tail);
    for (const r of tail)
      for (const s of SIGNALS) g1.push({ signal: s, ts: r.ts, value: r.values[s] as number });

    const { window } = ZSCORE.manifest.input;
    if (window.type !== "count") throw new Error("count fixture expected");
    const expectAsset = (asset: string, readings: RefReading[]) => {
      const predictions = countWindows(assembleRows(readings, SIGNALS).rows, window.size, window.hop).map(
        (w) => predict(ZSCORE, w),
      );
      return {
        asset,
        fixture: ZSCORE,
        predictions,
        alerts: alertEvents(ZSCORE.manifest.alerts, predictions),
      };
    };
    const e1 = expectAsset("g1", g1);
    const e3 = expectAsset("g3", g3);
    expect(e1.predictions).toHaveLength(15);
    expect(e1.predictions.at(-1)?.ts).toBe(T0 + (ROWS + 1) * 1000);
    expect(e1.alerts.map((a) => a.state)).toEqual(["raised", "cleared"]);
    expect(thresholdMargin(ZSCORE.manifest.alerts, e1.predictions)).toBeGreaterThan(1e-2);
    expect(e3.predictions).toHaveLength(3);

    await col.waitForCount(`${ROOT}/predictions/g1`, e1.predictions.length);
    await col.waitForCount(`${ROOT}/predictions/g3`, e3.predictions.length);
    await col.waitForCount(`${ROOT}/alerts/g1`, e1.alerts.length);
    // Messages are handled in order: once g1's last window is in, every payload before it was handled.
    await col.waitFor(
      (ms) => ms.some((m) => m.topic === `${ROOT}/predictions/g1` && m.json().ts === T0 + (ROWS + 1) * 1000),
      10_000,
      "g1's last prediction",
    );

    const problems = [e1, e3].flatMap((e) =>
      publishedProblems(col.messages, { root: ROOT, gatewayId: GATEWAY_ID, ...e }),
    );
    problems.push(...uniquenessProblems(col.messages, ROOT));
    expect(problems).toEqual([]);
    expect(
      col.messages
        .filter((m) => m.topic.startsWith(`${ROOT}/predictions/`) || m.topic.startsWith(`${ROOT}/alerts/`))
        .map((m) => m.topic.split("/").pop())
        .filter((a) => a !== "g1" && a !== "g3"),
    ).toEqual([]);

    // Every reject counted under its reason; nothing else refused, nothing bad accepted.
    const counters = gw.status().counters as {
      payloads: number;
      readingsAccepted: number;
      rejected: Record<string, number>;
    };
    const zeros = Object.fromEntries(Object.keys(counters.rejected).map((r) => [r, 0]));
    expect(counters.rejected).toEqual({ ...zeros, ...expected });
    expect(Object.keys(expected).sort()).toEqual(
      [
        "bad_name",
        "bad_shape",
        "bad_ts",
        "batch_too_large",
        "future_ts",
        "non_finite",
        "not_json",
        "payload_too_large",
        "unknown_topic",
      ].sort(),
    );
    expect(counters.readingsAccepted).toBe(g1.length + g3.length);
    expect(counters.payloads).toBe(good.length + badPayloads + 1);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();

    // Still serving: ready, healthy, and a new asset still gets its prediction.
    expect(gw.readiness()).toEqual({ ready: true, reasons: [] });
    const api = gw.apiAddress();
    expect(api).toBeDefined();
    const health = await fetch(`http://${api?.host}:${api?.port}/healthz`);
    expect(health.status).toBe(200);
    const fresh = Array.from({ length: 5 }, (_, i) => ({ ts: T0 + i * 1000, values: rowValues(i) }));
    await col.publish("plant/g9/row", fresh);
    await col.waitForCount(`${ROOT}/predictions/g9`, 1);
    const [w] = countWindows(
      fresh.map((r) => ({ ts: r.ts, values: SIGNALS.map((s) => r.values[s] as number) })),
      window.size,
      window.hop,
    );
    expect(
      publishedProblems(col.messages, {
        root: ROOT,
        gatewayId: GATEWAY_ID,
        asset: "g9",
        fixture: ZSCORE,
        predictions: w ? [predict(ZSCORE, w)] : [],
        alerts: [],
      }),
    ).toEqual([]);
  });
});
