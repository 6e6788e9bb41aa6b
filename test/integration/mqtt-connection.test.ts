/**
 * One contract for the gateway's MQTT connection, run over TCP and in-process (the embedded
 * broker's local bus): the same subscriptions, publishes, retained messages, unsubscribe and
 * last message on stop, seen by ordinary mqtt.js clients on a real aedes broker. Waits are on
 * events (SUBACK, PUBACK, messages), never on time.
 */

import net from "node:net";
import mqtt, { type MqttClient } from "mqtt";
import { afterEach, describe, expect, it, vi } from "vitest";
import { EmbeddedBroker } from "../../src/broker/embedded.js";
import { MqttConnection } from "../../src/ingest/mqtt-client.js";
import { silentLogger } from "../../src/system/logger.js";

const brokers: EmbeddedBroker[] = [];
const clients: MqttClient[] = [];
const connections: MqttConnection[] = [];

afterEach(async () => {
  await Promise.all(connections.splice(0).map((c) => c.stop()));
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
  await Promise.all(brokers.splice(0).map((b) => b.stop()));
});

async function startBroker(): Promise<EmbeddedBroker> {
  const b = new EmbeddedBroker({ host: "127.0.0.1", port: 0 }, silentLogger());
  brokers.push(b);
  await b.start();
  return b;
}

async function client(url: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5_000 });
  clients.push(c);
  return c;
}

/**
 * Subscribes `c` to `topic` and resolves once the broker acknowledged it, with a promise of
 * the next message there (its text and retain flag).
 */
async function listen(
  c: MqttClient,
  topic: string,
): Promise<{ next: Promise<{ text: string; retain: boolean }> }> {
  const got = new Promise<{ text: string; retain: boolean }>((resolve) => {
    const on = (t: string, payload: Buffer, packet: { retain?: boolean }): void => {
      if (t !== topic) return;
      c.off("message", on);
      resolve({ text: payload.toString(), retain: packet.retain === true });
    };
    c.on("message", on);
  });
  await c.subscribeAsync(topic, { qos: 1 });
  return { next: got };
}

function untilConnected(conn: MqttConnection): Promise<void> {
  return new Promise((resolve) => {
    if (conn.connectionState().connected) resolve();
    else conn.onConnect(() => resolve());
  });
}

for (const mode of ["tcp", "in-process"] as const) {
  describe(`MqttConnection over ${mode}`, () => {
    async function setup(onMessage: (topic: string, payload: Buffer) => void): Promise<{
      broker: EmbeddedBroker;
      conn: MqttConnection;
    }> {
      const broker = await startBroker();
      const conn = new MqttConnection(
        {
          url: broker.url(),
          clientId: `vigil-test-${mode}`,
          keepaliveS: 30,
          connectTimeoutMs: 5_000,
          reconnect: { minDelayMs: 50, maxDelayMs: 200 },
          ...(mode === "in-process" ? { local: broker.localBus() } : {}),
        },
        onMessage,
        silentLogger(),
      );
      connections.push(conn);
      conn.start();
      await untilConnected(conn);
      return { broker, conn };
    }

    /**
     * Subscribes and proves the subscription is live: probes on the filter are published until
     * one arrives (a TCP subscription is live only after its SUBACK, which the connection does
     * not expose). Later probes are ignored by the tests (topic `.../probe`).
     */
    async function subscribeLive(
      conn: MqttConnection,
      sensor: MqttClient,
      seen: string[],
      filter: string,
      probeTopic: string,
    ): Promise<void> {
      conn.subscribe([{ filter, qos: 0 }]);
      const deadline = Date.now() + 10_000;
      while (!seen.some((s) => s.startsWith(probeTopic))) {
        expect(Date.now()).toBeLessThan(deadline);
        await sensor.publishAsync(probeTopic, "probe", { qos: 1 });
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }

    const real = (seen: string[]): string[] => seen.filter((s) => !s.includes("probe"));

    it("delivers what matches its filters, and nothing else; a throwing handler loses only its message", async () => {
      const seen: string[] = [];
      const { broker, conn } = await setup((topic, payload) => {
        if (payload.toString() === "boom") throw new Error("handler failure");
        seen.push(`${topic}=${payload.toString()}`);
      });
      const sensor = await client(broker.url());
      await subscribeLive(conn, sensor, seen, "plant/+/row", "plant/probe/row");
      await sensor.publishAsync("plant/p1/row", "1", { qos: 1 });
      await sensor.publishAsync("other/p1/row", "x", { qos: 1 });
      await sensor.publishAsync("plant/p2/row", "boom", { qos: 1 });
      await sensor.publishAsync("plant/p3/row", "3", { qos: 1 });
      const deadline = Date.now() + 10_000;
      while (real(seen).length < 2) {
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(real(seen)).toEqual(["plant/p1/row=1", "plant/p3/row=3"]);
    });

    it("publishes QoS 0 and 1 to other clients, and a retained message reaches a late subscriber", async () => {
      const { broker, conn } = await setup(() => undefined);
      const sub = await client(broker.url());
      const waiting0 = await listen(sub, "vigil/gw/prediction/p1");
      await conn.publish("vigil/gw/prediction/p1", '{"q":0}', { qos: 0 });
      expect((await waiting0.next).text).toBe('{"q":0}');
      const waiting1 = await listen(sub, "vigil/gw/alert/p1");
      await conn.publish("vigil/gw/alert/p1", '{"q":1}', { qos: 1 });
      expect(await waiting1.next).toEqual({ text: '{"q":1}', retain: false });

      await conn.publish("vigil/gw/status", '{"state":"online"}', { qos: 1, retain: true });
      const late = await client(broker.url());
      const retained = await (await listen(late, "vigil/gw/status")).next;
      expect(retained).toEqual({ text: '{"state":"online"}', retain: true });
    });

    it("mixed QoS publishes made back to back all arrive at a subscriber of everything (aedes de-duplication drops none)", async () => {
      const { broker, conn } = await setup(() => undefined);
      const sub = await client(broker.url());
      const got: string[] = [];
      const all = new Promise<void>((resolve) =>
        sub.on("message", (t, p) => {
          if (!t.startsWith("vigil/gw/")) return;
          got.push(p.toString());
          if (got.length === 12) resolve();
        }),
      );
      await sub.subscribeAsync("#", { qos: 1 });
      const sent: Promise<void>[] = [];
      for (let i = 0; i < 12; i++) {
        const qos = i % 4 === 1 ? 1 : 0; // an alert now and then between predictions
        const retain = i === 5;
        sent.push(conn.publish(`vigil/gw/${qos ? "alert" : "prediction"}/p1`, String(i), { qos, retain }));
      }
      await Promise.all(sent);
      await all;
      // MQTT orders messages within one QoS level, not across levels: none lost, each level in order.
      const qos1 = (i: string): boolean => Number(i) % 4 === 1;
      expect([...got].sort((a, b) => Number(a) - Number(b))).toEqual(
        Array.from({ length: 12 }, (_, i) => String(i)),
      );
      expect(got.filter(qos1)).toEqual(["1", "5", "9"]);
      expect(got.filter((i) => !qos1(i))).toEqual(["0", "2", "3", "4", "6", "7", "8", "10", "11"]);
    });

    it("a retained message on a filter is delivered when the connection subscribes", async () => {
      const seen: string[] = [];
      const { broker, conn } = await setup((topic, payload) => seen.push(`${topic}=${payload.toString()}`));
      const sensor = await client(broker.url());
      await sensor.publishAsync("plant/r1/row", "kept", { qos: 1, retain: true });
      conn.subscribe([{ filter: "plant/+/row", qos: 0 }]);
      const deadline = Date.now() + 10_000;
      while (!seen.includes("plant/r1/row=kept")) {
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    });

    it("while backpressure holds the connection, other clients' messages still flow through the broker", async () => {
      let release: (() => void) | undefined;
      const seen: string[] = [];
      const { broker, conn } = await setup((topic) => seen.push(topic));
      conn.setBackpressure(() => (release ? undefined : new Promise<void>((resolve) => (release = resolve))));
      const sensor = await client(broker.url());
      await subscribeLive(conn, sensor, seen, "plant/#", "plant/probe");
      // The probe engaged backpressure: the gateway holds; two other clients talk meanwhile.
      const other = await client(broker.url());
      const heard = await listen(other, "elsewhere/x");
      const talker = await client(broker.url());
      await talker.publishAsync("elsewhere/x", "hello", { qos: 1 });
      expect((await heard.next).text).toBe("hello");
      release?.();
    });

    it("unsubscribeAll stops delivery; stop sends the last message", async () => {
      const seen: string[] = [];
      const { broker, conn } = await setup((topic) => seen.push(topic));
      const sensor = await client(broker.url());
      await subscribeLive(conn, sensor, seen, "plant/#", "plant/probe");
      await conn.unsubscribeAll();
      // QoS 1: the broker has routed it before PUBACK; in-process delivery would be done by then.
      await sensor.publishAsync("plant/after", "x", { qos: 1 });
      expect(real(seen)).toEqual([]);

      await conn.stop({ topic: "vigil/gw/status", payload: '{"state":"offline"}', retain: true, qos: 1 });
      connections.splice(connections.indexOf(conn), 1);
      const late = await client(broker.url());
      expect((await (await listen(late, "vigil/gw/status")).next).text).toBe('{"state":"offline"}');
    });
  });
}

describe("Nagle's algorithm is off and writes are batched on the gateway's MQTT sockets", () => {
  // With Nagle, a small packet written while the previous one is unacknowledged waits for the
  // peer's delayed ACK (up to 40 ms on Linux): predictions arrived 20 ms late at 1,000 msg/s.
  it("on the embedded broker's side of every connection and on the gateway's client socket", async () => {
    const spy = vi.spyOn(net.Socket.prototype, "setNoDelay");
    try {
      const broker = await startBroker();
      const port = broker.address()?.port;
      const conn = new MqttConnection(
        {
          url: broker.url(),
          clientId: "vigil-test-nodelay",
          keepaliveS: 30,
          connectTimeoutMs: 5_000,
          reconnect: { minDelayMs: 50, maxDelayMs: 200 },
        },
        () => undefined,
        silentLogger(),
      );
      connections.push(conn);
      conn.start();
      await untilConnected(conn);
      const calls = spy.mock.contexts.map((socket, i) => ({
        socket: socket as net.Socket,
        args: spy.mock.calls[i],
      }));
      const serverSide = calls.filter((c) => c.socket.localPort === port);
      const clientSide = calls.filter((c) => c.socket.remotePort === port);
      expect(serverSide.map((c) => c.args)).toEqual([[true]]);
      expect(clientSide.map((c) => c.args)).toEqual([[true]]);
      // Both sides batch their writes per event-loop turn (src/system/socket-writes.ts wraps uncork).
      for (const side of [serverSide, clientSide]) {
        expect(Object.prototype.hasOwnProperty.call(side[0]?.socket, "uncork")).toBe(true);
      }
    } finally {
      spy.mockRestore();
    }
  });
});
