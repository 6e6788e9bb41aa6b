/**
 * The raw MQTT relay ceiling, in a process of its own (a child of bench/run.ts), built like the
 * gateway host so that the two compare like for like: the broker Vigil embeds (aedes, port 0)
 * in this process when no broker URL is given, else an external one (mosquitto); a bare mqtt.js
 * client that parses each JSON payload and republishes one small JSON message per input
 * (`relay/<asset>`). The least any MQTT gateway does: no windows, no model, no store. The sink
 * that reads the relayed messages is the parent, as it is for the gateway.
 */

import mqtt, { type MqttClient } from "mqtt";
import { EmbeddedBroker } from "../../src/broker/embedded.js";
import { silentLogger } from "../../src/system/logger.js";
import { RunMeter, memory, serve, type RunMeasure } from "../lib/rpc.js";

let broker: EmbeddedBroker | undefined;
let relay: MqttClient | undefined;
let relayed = 0;
const meter = new RunMeter();

serve({
  async start(arg: { url?: string; inputRoot: string }): Promise<{ url: string }> {
    let url = arg.url;
    if (!url) {
      broker = new EmbeddedBroker({ host: "127.0.0.1", port: 0 }, silentLogger());
      await broker.start();
      url = broker.url();
    }
    const client = await mqtt.connectAsync(url, {
      clientId: `bench-relay-${process.pid}`,
      protocolVersion: 4,
      reconnectPeriod: 0,
      clean: true,
    });
    relay = client;
    client.on("message", (topic, payload) => {
      const row = JSON.parse(payload.toString()) as { ts: number; values: Record<string, number> };
      const asset = topic.split("/")[1] ?? "";
      client.publish(`relay/${asset}`, JSON.stringify({ asset, ts: row.ts, n: relayed++ }), { qos: 0 });
    });
    await client.subscribeAsync(`${arg.inputRoot}/+/+`, { qos: 0 });
    return { url };
  },
  stats(): { relayed: number; rssBytes: number; peakRssBytes: number } {
    return { relayed, ...memory() };
  },
  runStart(): void {
    meter.start();
  },
  runStop(): RunMeasure {
    return meter.stop();
  },
  async stop(): Promise<void> {
    await relay?.endAsync(true).catch(() => undefined);
    relay = undefined;
    await broker?.stop();
    broker = undefined;
  },
  async shutdown(): Promise<void> {
    await relay?.endAsync(true).catch(() => undefined);
    await broker?.stop();
  },
});
