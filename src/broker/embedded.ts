/**
 * The embedded MQTT broker (aedes) for sites without one. The only importer of `aedes`.
 *
 * Contract: `start()` binds `host:port` (port 0 picks a free one; `address()` tells which)
 * and resolves once listening, or rejects with a `VigilError` (`BROKER_LISTEN`, retriable:
 * the port may be free later). It refuses to start on a non-loopback address unless a
 * username and password are configured, and when they are, every client must present them
 * (compared in constant time). `stop()` closes clients, the server and the broker, and never
 * throws.
 *
 * `localBus()` lets the gateway in the same process subscribe and publish without a socket:
 * messages go through the broker's own router (retained messages stored and replayed on
 * subscribe, QoS 1/2 queued for offline persistent sessions, `$` topics kept from wildcard
 * filters, as for a network client), but no TCP hop, MQTT encoding or parsing, and no
 * per-message socket write on our side. Authentication and authorisation hooks are not asked:
 * the gateway is the broker's owner. A subscriber is handed each message at once; only when it
 * returns a promise (its own bounded inbox is full) is the delivery held, which holds the
 * router for every client, so the gateway does that only as a last resort. Local publishes
 * leave in call order: aedes numbers each packet when it is published and a subscriber drops a
 * packet numbered below one it already got (its de-duplication of overlapping subscriptions),
 * while a QoS 1/2 or retained publish reaches the router (aedes' emitter) some microtasks later
 * than a plain QoS 0 one, after an asynchronous persistence step (aedes issue #994: "qos2
 * message lost when followed by a qos0 message"). So a local publish waits while a QoS 1/2 or
 * retained one before it has not reached the router yet — not until it is delivered: the
 * broker's emitter is wrapped to see each packet enter it, so an alert holds the predictions
 * behind it for microseconds, not for its socket writes. Plain QoS 0 publishes never wait.
 * Routing order is delivery order for every subscriber; on the wire to a persistent-session
 * subscriber a QoS 1/2 packet also waits for the persistence's outgoing update, which with
 * aedes' default in-memory persistence settles in microtasks (a slower persistence could let a
 * later QoS 0 packet be written first; nothing is dropped).
 */

import { timingSafeEqual } from "node:crypto";
import net from "node:net";
import { Aedes, type AuthenticateError } from "aedes";
import { VigilError, errorMessage } from "../errors.js";
import type { LocalBus } from "../ingest/mqtt-client.js";
import { Fifo } from "../system/fifo.js";
import type { Logger } from "../system/logger.js";
import { isLoopback } from "../system/net.js";
import { batchSocketWrites } from "../system/socket-writes.js";

/** The part of aedes' emitter (mqemitter, `broker.mq`) the local queue watches. */
interface RouterEmitter {
  emit(packet: { brokerCounter?: number; topic: string }, done?: (err?: Error) => void): unknown;
}

interface LocalPublish {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
}

export interface EmbeddedBrokerOptions {
  host: string;
  port: number;
  username?: string;
  password?: string;
}

function sameSecret(a: string, b: Buffer | undefined): boolean {
  if (b === undefined) return false;
  const ab = Buffer.from(a);
  return ab.length === b.length && timingSafeEqual(ab, b);
}

export class EmbeddedBroker {
  private broker: Aedes | undefined;
  private server: net.Server | undefined;
  private bound: { host: string; port: number } | undefined;

  constructor(
    private readonly options: EmbeddedBrokerOptions,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const { host, port, username, password } = this.options;
    const withAuth = Boolean(username) && Boolean(password);
    if (!isLoopback(host) && !withAuth) {
      throw new VigilError(
        "BROKER_INSECURE",
        `refusing to run the embedded broker on ${host} without credentials (set mqtt.embeddedBroker.username and password)`,
      );
    }
    const broker = await Aedes.createBroker({
      ...(withAuth
        ? {
            authenticate: (_client, user, pass, done) => {
              const ok = user === username && sameSecret(password ?? "", pass);
              if (ok) {
                done(null, true);
              } else {
                const err = new Error("bad username or password") as AuthenticateError;
                err.returnCode = 4;
                done(err, false);
              }
            },
          }
        : {}),
    });
    this.broker = broker;
    this.watchRouter(broker);
    const server = net.createServer((socket) => {
      // Nagle off, and the packets of one event-loop turn in one write (src/system/socket-writes.ts).
      batchSocketWrites(socket);
      broker.handle(socket);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err) => {
        reject(
          new VigilError(
            "BROKER_LISTEN",
            `embedded broker cannot listen on ${host}:${port}: ${errorMessage(err)}`,
            { retriable: true, cause: err },
          ),
        );
      });
      server.listen(port, host, () => resolve());
    }).catch(async (err: unknown) => {
      await this.stop();
      throw err;
    });
    const addr = server.address() as net.AddressInfo;
    this.bound = { host: addr.address, port: addr.port };
    this.log.info({ host: addr.address, port: addr.port, auth: withAuth }, "embedded MQTT broker listening");
  }

  /** Where it listens; `mqtt://host:port` for clients. */
  url(): string {
    if (!this.bound) throw new Error("embedded broker not started");
    const host = this.bound.host.includes(":") ? `[${this.bound.host}]` : this.bound.host;
    return `mqtt://${host === "0.0.0.0" ? "127.0.0.1" : host}:${this.bound.port}`;
  }

  address(): { host: string; port: number } | undefined {
    return this.bound;
  }

  /** Local publishes waiting behind a QoS 1/2 or retained one not yet routed (see the header). */
  private readonly localQueue = new Fifo<LocalPublish>();
  /**
   * The local publish the queue waits for to reach the router: its broker (a restarted broker
   * counts from 0 again) and aedes' number for it (brokerCounter).
   */
  private awaitingRouter: { broker: Aedes; counter: number } | undefined;

  /** Sees every packet enter aedes' emitter (its router), in the order subscribers get them. */
  private watchRouter(broker: Aedes): void {
    const mq = (broker as unknown as { mq: RouterEmitter }).mq;
    const emit = mq.emit.bind(mq);
    mq.emit = (packet, done) => {
      const result = emit(packet, done);
      const awaited = this.awaitingRouter;
      if (awaited?.broker === broker && packet.brokerCounter === awaited.counter) this.routed();
      return result;
    };
  }

  private routed(): void {
    this.awaitingRouter = undefined;
    queueMicrotask(() => this.dispatchLocal());
  }

  private dispatchLocal(): void {
    while (this.awaitingRouter === undefined && this.localQueue.length > 0) {
      const p = this.localQueue.shift() as LocalPublish;
      const broker = this.broker;
      if (!broker) {
        p.reject(new VigilError("BROKER_STOPPED", "embedded broker not running", { retriable: true }));
        continue;
      }
      // The number aedes gives this packet (aedes-packet: ++broker.counter), known before the call.
      const awaited = { broker, counter: (broker as unknown as { counter: number }).counter + 1 };
      if (p.qos > 0 || p.retain) this.awaitingRouter = awaited;
      broker.publish(
        { cmd: "publish", topic: p.topic, payload: p.payload, qos: p.qos, retain: p.retain, dup: false },
        (err?: Error) => {
          // Done, or failed before reaching the router: the queue must not wait for it any longer.
          if (this.awaitingRouter === awaited) this.routed();
          if (err) p.reject(err);
          else p.resolve();
        },
      );
    }
  }

  private async replayRetained(
    broker: Aedes,
    filter: string,
    hand: (topic: string, payload: Buffer | string) => unknown,
  ): Promise<void> {
    try {
      const { persistence } = broker as unknown as {
        persistence: {
          createRetainedStream(pattern: string): AsyncIterable<{ topic: string; payload: Buffer | string }>;
        };
      };
      for await (const packet of persistence.createRetainedStream(filter)) hand(packet.topic, packet.payload);
    } catch (err) {
      this.log.warn(
        { filter, err: errorMessage(err) },
        "retained messages not replayed to the in-process subscriber",
      );
    }
  }

  /** In-process subscribe and publish through this broker (see the header). */
  localBus(): LocalBus {
    return {
      subscribe: (filter, onMessage) =>
        new Promise((resolve, reject) => {
          const broker = this.broker;
          if (!broker) {
            reject(new VigilError("BROKER_STOPPED", "embedded broker not running", { retriable: true }));
            return;
          }
          // MQTT 4.7.2: a filter starting with a wildcard does not match topics starting with $.
          const skipDollar = filter.startsWith("+") || filter.startsWith("#");
          const hand = (topic: string, payload: Buffer | string): Promise<void> | undefined => {
            if (skipDollar && topic.startsWith("$")) return undefined;
            try {
              return onMessage(topic, Buffer.isBuffer(payload) ? payload : Buffer.from(payload));
            } catch (err) {
              this.log.error({ topic, err: errorMessage(err) }, "in-process subscriber failed");
              return undefined;
            }
          };
          // Handed over at once; held only when the subscriber asks (its inbox is full).
          const deliver = (packet: { topic: string; payload: Buffer | string }, done: () => void): void => {
            const wait = hand(packet.topic, packet.payload);
            if (wait) void wait.then(done, done);
            else done();
          };
          broker.subscribe(filter, deliver, () => {
            resolve(
              () =>
                new Promise<void>((done) => {
                  if (this.broker !== broker) done();
                  else broker.unsubscribe(filter, deliver, () => done());
                }),
            );
            // Retained messages on the filter, as a network subscriber gets them on SUBSCRIBE.
            void this.replayRetained(broker, filter, hand);
          });
        }),
      publish: (topic, payload, options) =>
        new Promise<void>((resolve, reject) => {
          this.localQueue.push({
            topic,
            payload: typeof payload === "string" ? Buffer.from(payload) : payload,
            qos: options.qos,
            retain: options.retain ?? false,
            resolve,
            reject,
          });
          this.dispatchLocal();
        }),
    };
  }

  async stop(): Promise<void> {
    const server = this.server;
    const broker = this.broker;
    this.server = undefined;
    this.broker = undefined;
    this.awaitingRouter = undefined;
    for (const p of this.localQueue.drain())
      p.reject(new VigilError("BROKER_STOPPED", "embedded broker stopped", { retriable: true }));
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    if (server?.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
