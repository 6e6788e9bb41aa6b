/**
 * End to end, time windows: readings at irregular event times published on the plant broker →
 * gateway (real aedes, ONNX Runtime, SQLite) → every emitted window (windowStart, windowEnd,
 * ts) and its outputs and alerts, compared with the independent reference
 * (test/support/reference.ts) run over the very readings sent, in the order they were sent.
 *
 * time-nf-aggregate (10 s windows every 5 s, 1 s slots, linear fill, ten aggregates per
 * signal, NF; a class output with labels and an anomaly score with an alert for 3 windows) and
 * time-ntc-previous (5 s tumbling windows, previous fill, raw NTC sequence) are fed with:
 * irregular times, empty slots (filled), two readings in one slot (mean), readings out of
 * order inside the open windows, late readings (dropped), duplicates (dropped), first windows
 * that cannot be filled (skipped), an event-time jump that closes several windows at once and a
 * reading exactly on a window boundary. A time window closes only when a later reading passes
 * its end, so the last reading sent is chosen to close the last expected window; a sentinel
 * asset then proves nothing else was published.
 */

import { afterEach, describe, expect, it } from "vitest";
import { Collector, modelsDir, startGateway, testConfig, type RunningGateway } from "../support/harness.js";
import {
  alertEvents,
  classMargin,
  loadFixture,
  predict,
  publishedProblems,
  thresholdMargin,
  timeWindows,
  uniquenessProblems,
  type Fixture,
  type RefAlert,
  type RefPrediction,
  type RefReading,
  type TimeResult,
} from "../support/reference.js";

const GATEWAY_ID = "gw-test";
const ROOT = `vigil/${GATEWAY_ID}`;
/** 2024-01-01T00:00:00Z: in the past (no future_ts) and a multiple of every window's hop. */
const TB = Date.UTC(2024, 0, 1);

const AGG = loadFixture("time-nf-aggregate");
const PREV = loadFixture("time-ntc-previous");

let running: RunningGateway | undefined;
let collector: Collector | undefined;

afterEach(async () => {
  await collector?.close();
  collector = undefined;
  await running?.stop();
  running = undefined;
});

async function start(): Promise<{ gw: RunningGateway; col: Collector }> {
  running = await startGateway(
    testConfig({ "models.dir": modelsDir(["time-nf-aggregate", "time-ntc-previous"]) }),
  );
  collector = await Collector.connect(running.brokerUrl, [
    `${ROOT}/status`,
    `${ROOT}/predictions/+`,
    `${ROOT}/alerts/+`,
  ]);
  // The gateway's SUBSCRIBE goes out before its `online` status on the same connection.
  await collector.waitOnline(`${ROOT}/status`);
  return { gw: running, col: collector };
}

/** One MQTT message and the readings the gateway decodes from it, in order. */
interface Msg {
  topic: string;
  payload: unknown;
  readings: RefReading[];
}

function rowMsg(asset: string, ts: number, values: Record<string, number>, iso = false): Msg {
  return {
    topic: `plant/${asset}/row`,
    payload: { ts: iso ? new Date(ts).toISOString() : ts, values },
    readings: Object.entries(values).map(([signal, value]) => ({ signal, ts, value })),
  };
}

function signalMsg(asset: string, signal: string, ts: number, value: number): Msg {
  return { topic: `plant/${asset}/${signal}`, payload: { ts, value }, readings: [{ signal, ts, value }] };
}

/** Several single-signal messages of one topic as one JSON array batch. */
function batchMsg(msgs: readonly Msg[]): Msg {
  const topic = msgs[0]?.topic ?? "";
  if (msgs.some((m) => m.topic !== topic)) throw new Error("one topic per batch");
  return { topic, payload: msgs.map((m) => m.payload), readings: msgs.flatMap((m) => m.readings) };
}

interface Expected {
  asset: string;
  fixture: Fixture;
  result: TimeResult;
  predictions: RefPrediction[];
  alerts: RefAlert[];
}

function expectFor(fixture: Fixture, asset: string, msgs: readonly Msg[]): Expected {
  const { input } = fixture.manifest;
  if (input.window.type !== "time") throw new Error("time fixture expected");
  const readings = msgs.flatMap((m) => m.readings);
  const result = timeWindows(readings, input.window, input.signals);
  // The data is built so that linear fill never depends on readings that arrive after a
  // window closes (a choice the contract leaves open): the offline view must agree.
  expect(timeWindows(readings, input.window, input.signals, { afterContext: "all" })).toEqual(result);
  const predictions = result.windows.map((w) => predict(fixture, w));
  return { asset, fixture, result, predictions, alerts: alertEvents(fixture.manifest.alerts, predictions) };
}

async function publishAll(col: Collector, msgs: readonly Msg[]): Promise<void> {
  for (const m of msgs) await col.publish(m.topic, JSON.stringify(m.payload));
}

/** A fresh asset sends one second-spaced run that closes exactly one fillable window. */
async function sentinel(col: Collector, fixture: Fixture): Promise<Expected> {
  const { input } = fixture.manifest;
  if (input.window.type !== "time") throw new Error("time fixture expected");
  const asset = `zz-${fixture.manifest.name}`;
  const base = TB + 3_600_000;
  const n = input.window.sizeMs / 1000;
  const msgs = Array.from({ length: n + 1 }, (_, k) =>
    rowMsg(asset, base + k * 1000, Object.fromEntries(input.signals.map((s, c) => [s, 3 + c + Math.sin(k)]))),
  );
  await publishAll(col, msgs);
  await col.waitForCount(`${ROOT}/predictions/${asset}`, 1);
  const exp = expectFor(fixture, asset, msgs);
  expect(exp.predictions).toHaveLength(1);
  return exp;
}

async function verify(gw: RunningGateway, col: Collector, exp: Expected): Promise<void> {
  await col.waitForCount(`${ROOT}/predictions/${exp.asset}`, exp.predictions.length);
  await col.waitForCount(`${ROOT}/alerts/${exp.asset}`, exp.alerts.length);
  const all = [exp, await sentinel(col, exp.fixture)];
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

  const counters = gw.gateway.status().counters as {
    rejected: Record<string, number>;
    windows: { skipped: Record<string, number> };
  };
  expect(counters.rejected.late).toBe(exp.result.late);
  expect(counters.rejected.duplicate).toBe(exp.result.duplicate);
  const skipped = Object.values(counters.windows.skipped).reduce((a, b) => a + b, 0);
  expect(skipped).toBe(all.reduce((a, e) => a + e.result.skipped.length, 0));
}

const at = (s: number, offsetMs: number): number => TB + s * 1000 + offsetMs;

describe("e2e time windows: time-nf-aggregate (linear fill, aggregates, class label, alert for 3 windows)", () => {
  /** temp wanders; vib is nominal, high for 20 s (alert), mid (alert held), nominal, briefly high. */
  const temp = (s: number): number => 60 + 1.5 * Math.sin(s / 4) + 0.3 * Math.cos(1.7 * s);
  const vibBase = (s: number): number =>
    s >= 30 && s < 50 ? 3.9 : s >= 50 && s < 57 ? 3.8 : s >= 63 && s < 71 ? 4.2 : 2;
  const vib = (s: number): number => vibBase(s) + 0.35 * Math.sin(1.3 * s);
  // Empty slots, never a window's last slot (see expectFor).
  const TEMP_GAPS = new Set([12, 13, 27, 41, 56, 67]);
  const VIB_GAPS = new Set([18, 32, 33, 46, 61, 72]);

  function messages(asset: string): Msg[] {
    const bySecond = new Map<number, Msg[]>();
    for (let s = 3; s <= 80; s++) {
      const ts = at(s, (s * 137) % 1000);
      const values: Record<string, number> = {};
      if (!TEMP_GAPS.has(s)) values.temp = temp(s);
      if (!VIB_GAPS.has(s)) values.vib = vib(s);
      const msgs: Msg[] =
        s % 6 === 1 && Object.keys(values).length === 2
          ? [signalMsg(asset, "vib", ts, vib(s)), signalMsg(asset, "temp", ts, temp(s))]
          : [rowMsg(asset, ts, values, s % 5 === 2)];
      // A second reading in the same slot: the slot's value is their mean.
      if (s % 7 === 0) msgs.push(rowMsg(asset, at(s, 950), { temp: temp(s) + 0.4, vib: vib(s) - 0.3 }));
      bySecond.set(s, msgs);
    }
    const order = [...bySecond.keys()];
    // Out of order inside open windows: 22 before 21, 43 before 42.
    for (const [a, b] of [
      [21, 22],
      [42, 43],
    ] as const) {
      const i = order.indexOf(a);
      order.splice(i, 2, b, a);
    }
    const out: Msg[] = [];
    for (const s of order) {
      out.push(...(bySecond.get(s) ?? []));
      if (s === 25) {
        // [15 s, 25 s) has closed; 24.9 s still belongs to the open [20 s, 30 s).
        out.push(signalMsg(asset, "temp", at(24, 900), temp(24) + 1));
      }
      if (s === 36) {
        // [25 s, 35 s) has closed, so nothing before 30 s is accepted any more: late.
        out.push(signalMsg(asset, "temp", at(28, 300), 99));
        out.push(rowMsg(asset, at(12, 0), { temp: 99, vib: 9 }));
      }
      if (s === 44) {
        // Duplicates: the whole row of 43 s again, and 44 s's vib with another value.
        out.push(...(bySecond.get(43) ?? []));
        out.push(signalMsg(asset, "vib", at(44, (44 * 137) % 1000), 7));
      }
    }
    return out;
  }

  it("every emitted window and output equals the reference", async () => {
    const { gw, col } = await start();
    const msgs = messages("t1");
    await publishAll(col, msgs);
    const exp = expectFor(AGG, "t1", msgs);

    // The first reading (3.411 s) makes [-5 s, 5 s) the first candidate; it and [0, 10 s) have
    // empty leading slots with nothing before them: skipped. Then every 5 s up to [70 s, 80 s),
    // closed by the 80 s reading.
    expect(exp.result.skipped.map((w) => w.windowStart)).toEqual([at(-5, 0), at(0, 0)]);
    expect(exp.predictions.map((p) => [p.windowStart, p.windowEnd, p.ts])).toEqual(
      Array.from({ length: 14 }, (_, k) => [at(5 + 5 * k, 0), at(15 + 5 * k, 0), at(15 + 5 * k, 0)]),
    );
    expect(exp.result.late).toBe(3);
    expect(exp.result.duplicate).toBe(3);
    expect(new Set(exp.predictions.map((p) => p.outputs.state))).toEqual(new Set(["ok", "wear", "fault"]));
    // Three windows above 0.8 raise; one between 0.6 and 0.8 keeps it raised; below 0.6 clears.
    expect(exp.alerts.map((a) => [a.state, a.ts])).toEqual([
      ["raised", at(50, 0)],
      ["cleared", at(65, 0)],
    ]);
    expect(thresholdMargin(AGG.manifest.alerts, exp.predictions)).toBeGreaterThan(1e-3);
    expect(classMargin(AGG.manifest.outputs, exp.predictions)).toBeGreaterThan(1e-2);

    await verify(gw, col, exp);
  });
});

describe("e2e time windows: time-ntc-previous (previous fill, raw sequence)", () => {
  const x = (s: number): number => 10 * Math.sin(s / 3) + s / 10;
  const GAPS = new Set([6, 7, 12, 39]);

  function messages(asset: string): Msg[] {
    const bySecond = new Map<number, Msg[]>();
    const seconds = [
      ...Array.from({ length: 16 }, (_, i) => 2 + i),
      ...Array.from({ length: 16 }, (_, i) => 31 + i),
    ];
    for (const s of seconds) {
      if (GAPS.has(s)) continue;
      // 35 s exactly: on the boundary, it belongs to [35 s, 40 s) and closes [30 s, 35 s).
      const msgs = [signalMsg(asset, "x", at(s, s === 35 ? 0 : (s * 251) % 1000), x(s))];
      if (s % 5 === 3) msgs.push(signalMsg(asset, "x", at(s, 990), x(s) + 2));
      bySecond.set(s, msgs);
    }
    const order = [...bySecond.keys()];
    const i8 = order.indexOf(8);
    order.splice(i8, 2, 9, 8); // out of order inside the open [5 s, 10 s)
    const out: Msg[] = [];
    for (const s of order) {
      out.push(...(bySecond.get(s) ?? []));
      if (s === 36) {
        // [30 s, 35 s) has closed: 33.5 s and 29 s are late.
        out.push(signalMsg(asset, "x", at(33, 500), 50));
        out.push(signalMsg(asset, "x", at(29, 0), 50));
      }
      if (s === 38) out.push(signalMsg(asset, "x", at(37, (37 * 251) % 1000), -50)); // duplicate
    }
    // Two runs of messages as JSON array batches.
    const batched: Msg[] = [];
    for (let k = 0; k < out.length;) {
      const first = out[k] as Msg;
      const ts = first.readings[0]?.ts ?? 0;
      const inRun = (t: number): boolean =>
        (t >= at(10, 0) && t < at(15, 0)) || (t >= at(40, 0) && t < at(45, 0));
      if (!inRun(ts)) {
        batched.push(first);
        k++;
        continue;
      }
      let j = k;
      while (j < out.length && inRun((out[j] as Msg).readings[0]?.ts ?? 0)) j++;
      batched.push(batchMsg(out.slice(k, j)));
      k = j;
    }
    return batched;
  }

  it("every emitted window and output equals the reference", async () => {
    const { gw, col } = await start();
    const msgs = messages("x1");
    expect(msgs.some((m) => Array.isArray(m.payload))).toBe(true);
    await publishAll(col, msgs);
    const exp = expectFor(PREV, "x1", msgs);

    // [0, 5 s) has empty leading slots and nothing before: skipped. 17.x s → 31.x s jumps over
    // [20 s, 25 s) and [25 s, 30 s), which are filled from 17 s and closed by the same reading.
    expect(exp.result.skipped.map((w) => w.windowStart)).toEqual([at(0, 0)]);
    expect(exp.predictions.map((p) => [p.windowStart, p.windowEnd, p.ts])).toEqual(
      Array.from({ length: 8 }, (_, k) => [at(5 + 5 * k, 0), at(10 + 5 * k, 0), at(10 + 5 * k, 0)]),
    );
    const w20 = exp.result.windows.find((w) => w.windowStart === at(20, 0));
    expect(w20?.matrix).toEqual([Array(5).fill(x(17))]);
    expect(exp.result.late).toBe(2);
    expect(exp.result.duplicate).toBe(1);

    await verify(gw, col, exp);
  });
});

describe("e2e time windows: a row message is one event", () => {
  // Contract §3: `{"ts", "values": {…}}` is ONE row of many signals at one time, and §4 wants a
  // model trained offline to see the same numbers live. So the order of the keys inside
  // `values` must not matter. Here vib has no reading in the last slot of [5 s, 15 s); the row
  // at 15.1 s that closes the window carries the `after` point for linear fill. Offline, and
  // live when vib comes first in the object, the window is filled and emitted; it must be
  // emitted just the same when temp comes first.
  it("the order of keys in `values` never changes which windows are emitted or their outputs", async () => {
    const { col } = await start();
    const temp = (s: number): number => 60 + Math.sin(s / 2);
    const vib = (s: number): number => 2 + 0.3 * Math.sin(1.3 * s);
    const build = (asset: string, vibFirst: boolean): Msg[] =>
      Array.from({ length: 22 }, (_, s) => {
        const ts = at(s, 100);
        const values: Record<string, number> =
          s === 14
            ? { temp: temp(s) }
            : vibFirst
              ? { vib: vib(s), temp: temp(s) }
              : { temp: temp(s), vib: vib(s) };
        return rowMsg(asset, ts, values);
      });
    const k1 = build("k1", false);
    const k2 = build("k2", true);
    for (let i = 0; i < k1.length; i++) {
      await publishAll(col, [k1[i] as Msg, k2[i] as Msg]);
    }
    const { input } = AGG.manifest;
    const spec = input.window;
    if (spec.type !== "time") throw new Error("time fixture expected");
    const offline = (msgs: Msg[]): Expected => {
      const result = timeWindows(
        msgs.flatMap((m) => m.readings),
        spec,
        input.signals,
        { afterContext: "all" },
      );
      const predictions = result.windows.map((w) => predict(AGG, w));
      return {
        asset: "",
        fixture: AGG,
        result,
        predictions,
        alerts: alertEvents(AGG.manifest.alerts, predictions),
      };
    };
    const e1 = { ...offline(k1), asset: "k1" };
    const e2 = { ...offline(k2), asset: "k2" };
    // [0, 10 s), [5 s, 15 s) and [10 s, 20 s), closed at 10.1 s, 15.1 s and 20.1 s.
    expect(e1.predictions.map((p) => p.windowStart)).toEqual([at(0, 0), at(5, 0), at(10, 0)]);
    expect(e2.predictions).toEqual(e1.predictions);

    // The sentinel (same model, published last) proves both assets' predictions are all in.
    await col.waitForCount(`${ROOT}/predictions/k2`, e2.predictions.length);
    const all = [e1, e2, await sentinel(col, AGG)];
    const problems = all.flatMap((e) =>
      publishedProblems(col.messages, { root: ROOT, gatewayId: GATEWAY_ID, ...e }),
    );
    expect(problems).toEqual([]);
  });
});
