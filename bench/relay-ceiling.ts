/**
 * Raw MQTT relay ceiling: the least any MQTT gateway must do with the same traffic. The
 * embedded broker Vigil runs (aedes, 127.0.0.1, port 0), the publisher child, and in this
 * process a bare mqtt.js client that parses each JSON payload and republishes one small JSON
 * message per input (`relay/<asset>`), read back by a sink client in this process, as Vigil's
 * predictions are. No windows, no model, no store.
 *
 * Throughput: messages relayed / (sink received the last one − publisher's first send).
 * Latency (paced run): publisher's send → the relayed copy at the sink.
 */

import mqtt, { type MqttClient } from "mqtt";
import { EmbeddedBroker } from "../src/broker/embedded.js";
import { silentLogger } from "../src/system/logger.js";
import { nowMs, waitUntil } from "./lib/clock.js";
import { CpuMeter, type CpuShare } from "./lib/cpu.js";
import type { RunPlan } from "./lib/protocol.js";
import type { PublisherHandle } from "./lib/publisher-handle.js";
import { distribution, type Distribution } from "./lib/stats.js";
import { ROW_MS } from "./lib/workload.js";

export interface RelayFigure {
  messages: number;
  relayed: number;
  seconds: number;
  messagesPerSec: number;
  /** Publisher's own send rate (it is throttled by TCP back-pressure). */
  publisherSeconds: number;
  latencyMs: Distribution;
  complete: boolean;
  cpu: CpuShare | undefined;
}

function connect(url: string, clientId: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, { clientId, protocolVersion: 4, reconnectPeriod: 0, clean: true });
}

export async function runRelay(
  publisher: PublisherHandle,
  plan: Omit<RunPlan, "url">,
  timeoutMs: number,
): Promise<RelayFigure> {
  const broker = new EmbeddedBroker({ host: "127.0.0.1", port: 0 }, silentLogger());
  await broker.start();
  const url = broker.url();
  const relay = await connect(url, "bench-relay");
  const sink = await connect(url, "bench-relay-sink");
  try {
    const expected = plan.assets * (plan.rowTo - plan.rowFrom);
    let relayed = 0;
    relay.on("message", (topic, payload) => {
      const row = JSON.parse(payload.toString()) as { ts: number; values: Record<string, number> };
      const asset = topic.split("/")[1] ?? "";
      relay.publish(`relay/${asset}`, JSON.stringify({ asset, ts: row.ts, n: relayed++ }), { qos: 0 });
    });
    const arrivals = new Float64Array(expected);
    const assetIndex = new Map<string, number>();
    let received = 0;
    let lastMs = 0;
    sink.on("message", (topic, payload) => {
      const t = nowMs();
      const { ts } = JSON.parse(payload.toString()) as { ts: number };
      const asset = topic.slice("relay/".length);
      let a = assetIndex.get(asset);
      if (a === undefined) {
        a = Number(asset.slice("pump-".length)) - 1;
        assetIndex.set(asset, a);
      }
      const r = (ts - plan.t0Ms) / ROW_MS - plan.rowFrom;
      const i = r * plan.assets + a;
      if (i >= 0 && i < expected) arrivals[i] = t;
      received++;
      lastMs = t;
    });
    await relay.subscribeAsync("plant/+/+", { qos: 0 });
    await sink.subscribeAsync("relay/#", { qos: 0 });

    await publisher.prepare({ ...plan, url });
    const cpu = new CpuMeter([process.pid, publisher.pid]);
    const sent = await publisher.go(timeoutMs);
    const complete = await waitUntil(() => received >= expected, sent.startedMs + timeoutMs);
    const cpuShare = cpu.stop();
    const latencies: number[] = [];
    for (let i = 0; i < expected; i++) {
      const at = arrivals[i] ?? 0;
      if (at > 0) latencies.push(at - (sent.sentAtMs[i] ?? at));
    }
    const seconds = ((complete ? lastMs : nowMs()) - sent.startedMs) / 1000;
    return {
      messages: expected,
      relayed: received,
      seconds,
      messagesPerSec: received / seconds,
      publisherSeconds: (sent.endedMs - sent.startedMs) / 1000,
      latencyMs: distribution(latencies),
      complete,
      cpu: cpuShare,
    };
  } finally {
    await relay.endAsync(true).catch(() => undefined);
    await sink.endAsync(true).catch(() => undefined);
    await broker.stop();
  }
}
