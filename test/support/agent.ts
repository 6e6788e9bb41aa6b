/**
 * The real agent for sync fault tests: `vigil run` as a child process (test/support/cli.ts)
 * against an external aedes broker on a free port and a real HTTP receiver, with a plant
 * publisher and a subscriber that records every prediction and alert the gateway publishes.
 * The data folder outlives the process, so a test can kill and restart the agent on it.
 */

import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { Aedes } from "aedes";
import { spawnCli, type CliProcess } from "./cli.js";
import { Collector, modelsDir, tempDir } from "./harness.js";

export const MODEL = "count-ntc-zscore";

export interface Broker {
  url: string;
  close(): Promise<void>;
}

export async function externalBroker(): Promise<Broker> {
  const broker = await Aedes.createBroker();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    broker.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface AgentSetup {
  gatewayId: string;
  dir: string;
  dataDir: string;
  configFile: string;
}

/** Writes a config for `vigil run`: the fixture model, the broker, one HTTP destination. */
export function agentSetup(
  gatewayId: string,
  brokerUrl: string,
  receiverUrl: string,
  extra: Record<string, unknown> = {},
  dataDir?: string,
): AgentSetup {
  const dir = tempDir("vigil-agent-");
  const data = dataDir ?? path.join(dir, "data");
  const { storage, sync, ...rest } = extra as { storage?: object; sync?: object };
  const config = {
    gatewayId,
    dataDir: data,
    log: { level: "info", format: "json" },
    mqtt: {
      url: brokerUrl,
      reconnect: { minDelayMs: 50, maxDelayMs: 200 },
      embeddedBroker: { enabled: false },
    },
    http: { port: 0 },
    models: { dir: modelsDir([MODEL], path.join(dir, "models")) },
    ingest: {
      maxReadingsPerSecond: 0,
      maxReadingsPerSecondPerAsset: 0,
      subscriptions: [{ topic: "plant/{asset}/row", qos: 1 }],
    },
    storage: { minFreeBytes: 0, checkIntervalMs: 200, ...storage },
    sync: {
      destinations: [
        {
          type: "http",
          url: receiverUrl,
          name: "cloud",
          minDelayMs: 20,
          maxDelayMs: 200,
          batchMaxRecords: 50,
          timeoutMs: 2_000,
        },
      ],
      ...sync,
    },
    ...rest,
  };
  const configFile = path.join(dir, "vigil.json");
  fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
  return { gatewayId, dir, dataDir: data, configFile };
}

/**
 * Starts the agent; resolves once it logged "gateway started" AND published a live `online`
 * status. The gateway sends its SUBSCRIBE before that status on the same connection, so once
 * the status is seen, readings published from then on reach it.
 */
export async function startAgent(setup: AgentSetup): Promise<CliProcess> {
  const config = JSON.parse(fs.readFileSync(setup.configFile, "utf8")) as { mqtt: { url: string } };
  const status = await Collector.connect(config.mqtt.url, [`vigil/${setup.gatewayId}/status`]);
  try {
    const proc = spawnCli(["run", "--config", setup.configFile]);
    await proc.waitForLog("gateway started", 20_000);
    await status.waitFor(
      (ms) => ms.some((m) => !m.retain && m.json<{ state?: string }>().state === "online"),
      20_000,
      "a live online status",
    );
    return proc;
  } finally {
    await status.close();
  }
}

export interface Published {
  id: string;
  seq: number | null;
  asset: string;
  stored?: boolean;
  [k: string]: unknown;
}

/** Everything the gateway published on predictions/ and alerts/, by id. */
export class Watcher {
  private constructor(readonly collector: Collector) {}

  static async connect(brokerUrl: string, gatewayId: string): Promise<Watcher> {
    return new Watcher(
      await Collector.connect(brokerUrl, [`vigil/${gatewayId}/predictions/#`, `vigil/${gatewayId}/alerts/#`]),
    );
  }

  records(): Published[] {
    return this.collector.messages.map((m) => m.json<Published>());
  }

  count(): number {
    return this.collector.messages.length;
  }

  close(): Promise<void> {
    return this.collector.close();
  }
}

/**
 * Publishes complete rows for `assets`, `rows` per asset, QoS 1, continuing each asset's
 * clock from `state`; s1 swings between low and high so that the fixture's `rul-low` alert
 * rises and clears now and then.
 */
export async function publishRows(
  plant: Collector,
  assets: readonly string[],
  rows: number,
  state: Map<string, number>,
  shouldStop: () => boolean = () => false,
): Promise<number> {
  let sent = 0;
  const t0 = Date.UTC(2026, 0, 1);
  for (let i = 0; i < rows; i++) {
    for (const asset of assets) {
      if (shouldStop()) return sent;
      const n = state.get(asset) ?? 0;
      state.set(asset, n + 1);
      const s1 = n % 24 < 12 ? 100 : 60;
      await plant.publish(`plant/${asset}/row`, { ts: t0 + n * 1000, values: { s1, s2: 20, s3: 5 } });
      sent++;
    }
  }
  return sent;
}
