/**
 * The plant broker goes away and comes back: the gateway reconnects (with backoff), renews its
 * subscriptions and goes on predicting, and its alerts and predictions carry on in seq order.
 */

import net from "node:net";
import { Aedes } from "aedes";
import { afterEach, describe, expect, it } from "vitest";
import { Gateway } from "../../src/gateway.js";
import { silentLogger } from "../../src/system/logger.js";
import { Collector, modelsDir, testConfig } from "../support/harness.js";

interface Broker {
  port: number;
  close(): Promise<void>;
}

async function startBroker(port = 0): Promise<Broker> {
  const broker = await Aedes.createBroker();
  const server = net.createServer((socket) => broker.handle(socket));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const sockets = new Set<net.Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let gateway: Gateway | undefined;
let broker: Broker | undefined;
const subs: Collector[] = [];

afterEach(async () => {
  for (const s of subs.splice(0)) await s.close().catch(() => undefined);
  await gateway?.stop();
  await broker?.close();
  gateway = undefined;
  broker = undefined;
});

const T0 = Date.UTC(2026, 0, 1);
const row = (i: number) => ({ ts: T0 + i * 1000, values: { s1: 100 + i, s2: 20, s3: 5 } });
const ROOT = "vigil/gw-test";

async function watch(port: number): Promise<Collector> {
  const c = await Collector.connect(`mqtt://127.0.0.1:${port}`, [`${ROOT}/#`]);
  subs.push(c);
  return c;
}

describe("plant broker restarts", () => {
  it("reconnects with backoff, renews its subscriptions and keeps predicting in seq order", async () => {
    broker = await startBroker();
    const port = broker.port;
    const config = testConfig({
      "mqtt.embeddedBroker.enabled": false,
      "mqtt.url": `mqtt://127.0.0.1:${port}`,
      "models.dir": modelsDir(["count-ntc-zscore"]),
    });
    gateway = new Gateway(config, silentLogger());
    await gateway.start();

    const before = await watch(port);
    await before.waitFor((ms) => ms.some((m) => m.topic === `${ROOT}/status`), 10_000, "status online");
    for (let i = 0; i < 5; i++) await before.publish("plant/m1/row", row(i));
    await before.waitForCount(`${ROOT}/predictions/`, 1);

    // The broker dies (every connection dropped) and a new one starts on the same port.
    await broker.close();
    broker = await startBroker(port);
    const after = await watch(port);
    // On reconnection the gateway renews its subscriptions, then publishes its status.
    await after.waitFor(
      (ms) => ms.some((m) => m.topic === `${ROOT}/status`),
      10_000,
      "status after reconnect",
    );
    expect(gateway.status().broker).toMatchObject({ connected: true, connects: 2 });

    // Count windows carried on across the outage: rows 5 and 6 complete the next window.
    for (let i = 5; i < 7; i++) await after.publish("plant/m1/row", row(i));
    await after.waitForCount(`${ROOT}/predictions/`, 1);
    const first = before.on(`${ROOT}/predictions/`)[0]?.json<{ seq: number; windowEnd: number }>();
    const next = after.on(`${ROOT}/predictions/`)[0]?.json<{ seq: number; windowEnd: number }>();
    expect(first).toMatchObject({ seq: 1, windowEnd: T0 + 4000 });
    expect(next).toMatchObject({ seq: 2, windowEnd: T0 + 6000 });
  });
});
