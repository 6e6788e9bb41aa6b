/**
 * Shared test harness: a gateway on an embedded broker (port 0), an SQLite store in a temp
 * folder, real ONNX Runtime, and an MQTT client that collects what the gateway publishes.
 * Waits are on events (a message arriving), never on sleeps.
 */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { afterEach } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import type { VigilConfig } from "../../src/config/types.js";
import { Gateway } from "../../src/gateway.js";
import { silentLogger, type Logger } from "../../src/system/logger.js";

export const FIXTURES = path.resolve(import.meta.dirname, "../fixtures/models");

export function tempDir(prefix = "vigil-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A models folder holding copies of the named fixture packages (so a test may tamper with them). */
export function modelsDir(names: readonly string[], into: string = tempDir("vigil-models-")): string {
  for (const name of names) fs.cpSync(path.join(FIXTURES, name), path.join(into, name), { recursive: true });
  return into;
}

/** A validated config for tests: embedded broker and API on free loopback ports, temp data. */
export function testConfig(overrides: Record<string, unknown> = {}): VigilConfig {
  return loadConfig({
    env: {},
    overrides: {
      gatewayId: "gw-test",
      dataDir: tempDir(),
      "log.level": "silent",
      "mqtt.embeddedBroker.enabled": true,
      "mqtt.embeddedBroker.port": 0,
      "mqtt.reconnect.minDelayMs": 50,
      "mqtt.reconnect.maxDelayMs": 200,
      "http.port": 0,
      "ingest.maxReadingsPerSecond": 0,
      "ingest.maxReadingsPerSecondPerAsset": 0,
      ...overrides,
    },
  });
}

export interface RunningGateway {
  gateway: Gateway;
  config: VigilConfig;
  brokerUrl: string;
  stop(): Promise<void>;
}

export async function startGateway(
  config: VigilConfig,
  log: Logger = silentLogger(),
): Promise<RunningGateway> {
  const gateway = new Gateway(config, log);
  await gateway.start();
  const brokerUrl = gateway.brokerUrl();
  if (!brokerUrl) throw new Error("test gateway has no embedded broker");
  return { gateway, config, brokerUrl, stop: () => gateway.stop() };
}

/** `http://host:port` of a running gateway's local API. */
export function apiUrl(running: RunningGateway): string {
  const a = running.gateway.apiAddress();
  if (!a) throw new Error("the gateway serves no API");
  return `http://${a.host}:${a.port}`;
}

export interface Message {
  topic: string;
  payload: Buffer;
  retain: boolean;
  qos: number;
  json<T = Record<string, unknown>>(): T;
}

/** An MQTT client that records every message on its subscriptions and lets a test wait for some. */
export class Collector {
  readonly messages: Message[] = [];
  private waiters: { check: () => boolean; resolve: () => void }[] = [];

  private constructor(readonly client: MqttClient) {
    client.on("message", (topic, payload, packet) => {
      this.messages.push({
        topic,
        payload,
        retain: packet.retain,
        qos: packet.qos,
        json: <T>() => JSON.parse(payload.toString()) as T,
      });
      this.waiters = this.waiters.filter((w) => {
        if (!w.check()) return true;
        w.resolve();
        return false;
      });
    });
  }

  static async connect(
    url: string,
    filters: string[],
    options: mqtt.IClientOptions = {},
  ): Promise<Collector> {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...options });
    const c = new Collector(client);
    if (filters.length > 0) await client.subscribeAsync(filters, { qos: 1 });
    return c;
  }

  on(topicPrefix: string): Message[] {
    return this.messages.filter((m) => m.topic.startsWith(topicPrefix));
  }

  /** Resolves once `predicate` holds over the messages received; rejects after `timeoutMs`. */
  waitFor(predicate: (messages: Message[]) => boolean, timeoutMs = 10_000, what = "messages"): Promise<void> {
    if (predicate(this.messages)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; got ${this.messages.length} messages`,
          ),
        );
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push({ check: () => predicate(this.messages), resolve: done });
    });
  }

  /**
   * Resolves once the gateway's status on `statusTopic` says `online`. The gateway subscribes
   * before it publishes `online` on the same connection, so readings published after this reach it.
   */
  waitOnline(statusTopic: string, timeoutMs = 10_000): Promise<void> {
    return this.waitFor(
      (ms) => ms.some((m) => m.topic === statusTopic && m.json<{ state?: string }>().state === "online"),
      timeoutMs,
      "gateway online",
    );
  }

  /** Wait until at least `n` messages arrived under `topicPrefix`. */
  waitForCount(topicPrefix: string, n: number, timeoutMs = 10_000): Promise<void> {
    return this.waitFor(
      (ms) => ms.filter((m) => m.topic.startsWith(topicPrefix)).length >= n,
      timeoutMs,
      `${n} on ${topicPrefix}`,
    );
  }

  async publish(topic: string, payload: string | Buffer | object, qos: 0 | 1 = 1): Promise<void> {
    const body = typeof payload === "string" || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload);
    await this.client.publishAsync(topic, body, { qos });
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}

/**
 * The gateway and collector a test opens, closed after each test (collector first). Call once
 * at the top of a test file; assign what the test opens to the returned slots.
 */
export function closeAfterEach(): { running?: RunningGateway; collector?: Collector } {
  const open: { running?: RunningGateway; collector?: Collector } = {};
  afterEach(async () => {
    await open.collector?.close();
    open.collector = undefined;
    await open.running?.stop();
    open.running = undefined;
  });
  return open;
}
