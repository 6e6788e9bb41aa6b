/**
 * Backpressure end to end: a burst far larger than `inference.backpressureWindows` makes the
 * gateway stop taking messages from the broker until inference caught up, over the embedded
 * broker in-process and over TCP (mqtt.js `handleMessage`). Nothing is dropped: every window's
 * prediction arrives, in order per asset, and the pauses are counted.
 */

import mqtt from "mqtt";
import { describe, expect, it } from "vitest";
import { Collector, closeAfterEach, modelsDir, startGateway, testConfig } from "../support/harness.js";

const ROOT = "vigil/gw-test";
const T0 = Date.UTC(2024, 0, 1);
const ASSETS = 20;
const ROWS = 41;
/** count-ntc-zscore: count window of 5 rows, hop 2. */
const WINDOWS_PER_ASSET = Math.floor((ROWS - 5) / 2) + 1;

const open = closeAfterEach();

for (const inProcess of [true, false]) {
  describe(`backpressure (${inProcess ? "in-process" : "TCP"})`, () => {
    it("pauses ingest under a burst, drops nothing, and counts the pauses", async () => {
      const running = (open.running = await startGateway(
        testConfig({
          "models.dir": modelsDir(["count-ntc-zscore"]),
          "mqtt.embeddedBroker.inProcess": inProcess,
          "inference.backpressureWindows": 4,
          "inference.maxDelayMs": 5,
          "inference.maxBatch": 4,
        }),
      ));
      const collector = (open.collector = await Collector.connect(running.brokerUrl, [
        `${ROOT}/predictions/#`,
      ]));
      const sensor = await mqtt.connectAsync(running.brokerUrl, { reconnectPeriod: 0 });
      try {
        // Rows in time order, assets interleaved; QoS 0, as fast as the socket takes them.
        for (let r = 0; r < ROWS; r++)
          for (let a = 0; a < ASSETS; a++)
            sensor.publish(
              `plant/m${a}/row`,
              JSON.stringify({ ts: T0 + r * 1000, values: { s1: 100 + r, s2: 20 + (a % 5), s3: 5 } }),
            );
        const expected = ASSETS * WINDOWS_PER_ASSET;
        await collector.waitFor((m) => m.length >= expected, 30_000, `${expected} predictions`);
      } finally {
        await sensor.endAsync();
      }
      const predictions = collector
        .on(`${ROOT}/predictions/`)
        .map((m) => m.json<{ asset: string; ts: number }>());
      expect(predictions).toHaveLength(ASSETS * WINDOWS_PER_ASSET);
      for (let a = 0; a < ASSETS; a++) {
        const ts = predictions.filter((p) => p.asset === `m${a}`).map((p) => p.ts);
        expect(ts).toEqual(Array.from({ length: WINDOWS_PER_ASSET }, (_, i) => T0 + (4 + 2 * i) * 1000));
      }
      const stats = running.gateway.pipelineStats();
      expect(stats?.backpressure.pauses).toBeGreaterThan(0);
      expect(stats?.backpressure.backlogWindows).toBe(0);
      expect(stats?.models["count-ntc-zscore@1.0.0"]?.overload).toBe(0);
    });
  });
}
