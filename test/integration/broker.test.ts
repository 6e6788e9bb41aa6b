/**
 * The embedded MQTT broker: real aedes on a real port (0 = a free one), real mqtt.js clients.
 * Every broker and client a test opens is closed after it.
 */

import net from "node:net";
import mqtt, { type MqttClient } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { EmbeddedBroker } from "../../src/broker/embedded.js";
import { VigilError } from "../../src/errors.js";
import { silentLogger } from "../../src/system/logger.js";

const brokers: EmbeddedBroker[] = [];
const clients: MqttClient[] = [];
const servers: net.Server[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
  await Promise.all(brokers.splice(0).map((b) => b.stop()));
  await Promise.all(
    servers
      .splice(0)
      .map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))),
  );
});

function broker(
  options: { host?: string; port?: number; username?: string; password?: string } = {},
): EmbeddedBroker {
  const b = new EmbeddedBroker({ host: "127.0.0.1", port: 0, ...options }, silentLogger());
  brokers.push(b);
  return b;
}

async function connect(url: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...options });
  clients.push(c);
  return c;
}

/** The error an mqtt connect fails with (the test fails if it connects). */
async function connectError(
  url: string,
  options: mqtt.IClientOptions = {},
): Promise<Error & { code?: unknown }> {
  try {
    const c = await connect(url, options);
    await c.endAsync(true);
  } catch (err) {
    return err as Error & { code?: unknown };
  }
  throw new Error(`connect to ${url} succeeded; expected it to be refused`);
}

async function listen(host: string, port = 0): Promise<net.Server> {
  const server = net.createServer((s) => s.destroy());
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

async function freePort(host: string): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, host, () => resolve()));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function startError(b: EmbeddedBroker): Promise<VigilError> {
  try {
    await b.start();
  } catch (err) {
    return err as VigilError;
  }
  throw new Error("broker started; expected it to refuse");
}

describe("EmbeddedBroker", () => {
  it("on 127.0.0.1 port 0 without credentials: listens on a real port and relays messages", async () => {
    const b = broker();
    await b.start();
    const addr = b.address();
    expect(addr?.host).toBe("127.0.0.1");
    expect(addr?.port).toBeGreaterThan(0);
    expect(b.url()).toBe(`mqtt://127.0.0.1:${addr?.port}`);

    const sub = await connect(b.url());
    await sub.subscribeAsync("t/#", { qos: 1 });
    const got = new Promise<string>((resolve) => sub.on("message", (_t, p) => resolve(p.toString())));
    const pub = await connect(b.url());
    await pub.publishAsync("t/1", "hello", { qos: 1 });
    expect(await got).toBe("hello");
  });

  it("url() and address() say nothing before start", () => {
    const b = broker();
    expect(b.address()).toBeUndefined();
    expect(() => b.url()).toThrow();
  });

  describe("with username and password", () => {
    const creds = { username: "plant", password: "s3cret-pass" };

    it("refuses a client with a wrong password, a wrong username or none (CONNACK 4/5)", async () => {
      const b = broker(creds);
      await b.start();
      for (const options of [
        { username: "plant", password: "wrong" },
        { username: "plant", password: "s3cret-pas" },
        { username: "other", password: "s3cret-pass" },
        { username: "plant" },
        {},
      ]) {
        const err = await connectError(b.url(), options);
        expect([4, 5], `${JSON.stringify(options)}: ${err.message}`).toContain(err.code);
      }
    });

    it("accepts the right credentials", async () => {
      const b = broker(creds);
      await b.start();
      const c = await connect(b.url(), creds);
      expect(c.connected).toBe(true);
      await c.publishAsync("x/y", "1", { qos: 1 });
    });

    it("may bind a non-loopback address (0.0.0.0) and tells clients to use loopback", async () => {
      const b = broker({ host: "0.0.0.0", ...creds });
      await b.start();
      expect(b.address()?.host).toBe("0.0.0.0");
      expect(b.url()).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
      await connect(b.url(), creds);
    });
  });

  it("refuses to start on a non-loopback address without credentials (BROKER_INSECURE) and binds nothing", async () => {
    const port = await freePort("0.0.0.0");
    for (const options of [
      { host: "0.0.0.0", port },
      { host: "0.0.0.0", port, username: "u" }, // a username alone is not enough
      { host: "0.0.0.0", port, password: "p" },
      { host: "::", port },
      { host: "192.0.2.1", port },
    ]) {
      const b = broker(options);
      const err = await startError(b);
      expect(err).toBeInstanceOf(VigilError);
      expect(err.code).toBe("BROKER_INSECURE");
      expect(err.message).toContain(options.host);
      expect(b.address()).toBeUndefined();
    }
    // Nothing holds the port: it can be bound again, and nothing answers on it.
    await listen("0.0.0.0", port);
  });

  it("a port already in use is BROKER_LISTEN, retriable; stop() afterwards is harmless", async () => {
    const taken = await listen("127.0.0.1");
    const { port } = taken.address() as net.AddressInfo;
    const b = broker({ port });
    const err = await startError(b);
    expect(err).toBeInstanceOf(VigilError);
    expect(err.code).toBe("BROKER_LISTEN");
    expect(err.retriable).toBe(true);
    expect(err.message).toContain(String(port));
    expect(b.address()).toBeUndefined();
    await b.stop();
    await b.stop();
  });

  it("stop() closes client connections and the port; it is safe to call twice", async () => {
    const b = broker();
    await b.start();
    const port = b.address()?.port ?? 0;
    const c = await connect(b.url());
    const closed = new Promise<void>((resolve) => c.once("close", () => resolve()));
    await b.stop();
    await closed;
    await b.stop();
    await listen("127.0.0.1", port);
  });

  describe("localBus publishes", () => {
    /** A network subscriber of `filter` collecting payloads in arrival order. */
    async function collector(
      url: string,
      filter: string,
    ): Promise<{ got: string[]; until(n: number): Promise<void> }> {
      const c = await connect(url);
      const got: string[] = [];
      const waiters: { n: number; resolve: () => void }[] = [];
      c.on("message", (_t, p) => {
        got.push(p.toString());
        for (const w of waiters.filter((x) => got.length >= x.n)) w.resolve();
      });
      await c.subscribeAsync(filter, { qos: 1 });
      return {
        got,
        until: (n) =>
          got.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })),
      };
    }

    it("a QoS 0 publish after a QoS 1 one is not held until the QoS 1 one is delivered, only until it is routed", async () => {
      const b = broker();
      await b.start();
      const bus = b.localBus();
      // An in-process subscriber that holds the alert's delivery (as a full inbox would): the
      // QoS 1 publish cannot complete while it is held.
      let release: () => void = () => undefined;
      const held = new Promise<void>((resolve) => (release = resolve));
      await bus.subscribe("vigil/gw/alerts/#", () => held);
      const net = await collector(b.url(), "vigil/gw/#");

      let alertDone = false;
      const alert = bus.publish("vigil/gw/alerts/p1", "alert", { qos: 1 }).then(() => (alertDone = true));
      const prediction = bus.publish("vigil/gw/predictions/p1", "prediction", { qos: 0 });
      await prediction;
      await net.until(2);
      expect(alertDone).toBe(false); // still held by the in-process subscriber
      // Both arrived (the network subscriber de-duplicates by aedes' packet number: order matters).
      expect(net.got).toEqual(["alert", "prediction"]);
      release();
      await alert;
      expect(alertDone).toBe(true);
    });

    it("a retained QoS 0 publish followed by plain QoS 0 ones: none is dropped, order kept", async () => {
      const b = broker();
      await b.start();
      const bus = b.localBus();
      const net = await collector(b.url(), "vigil/gw/#");
      const sent: Promise<void>[] = [];
      for (let i = 0; i < 10; i++) {
        sent.push(
          bus.publish(`vigil/gw/${i % 3 === 0 ? "status" : "predictions/p1"}`, String(i), {
            qos: 0,
            retain: i % 3 === 0,
          }),
        );
      }
      await Promise.all(sent);
      await net.until(10);
      expect(net.got).toEqual(Array.from({ length: 10 }, (_, i) => String(i)));
    });

    it("a publish that fails before reaching the router does not stop the ones behind it", async () => {
      const b = broker();
      await b.start();
      const bus = b.localBus();
      const net = await collector(b.url(), "vigil/#");
      const tooDeep = `vigil/${"x/".repeat(120)}end`; // aedes refuses more than 100 topic levels
      const failed = bus.publish(tooDeep, "deep", { qos: 1 });
      const next = bus.publish("vigil/gw/predictions/p1", "after", { qos: 1 });
      await expect(failed).rejects.toThrow(/too many levels/);
      await next;
      await net.until(1);
      expect(net.got).toEqual(["after"]);
    });
  });
});
