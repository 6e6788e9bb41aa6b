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
});
