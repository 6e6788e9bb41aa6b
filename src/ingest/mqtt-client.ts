/**
 * The MQTT connection, behind our own small interface. The only importer of `mqtt`.
 *
 * Contract: `MqttConnection.start()` creates the client and returns without waiting for the
 * broker: a broker that is down is retried forever with exponential backoff (doubling from
 * `reconnect.minDelayMs` to `reconnect.maxDelayMs`, with ±20 % jitter), and subscriptions are
 * renewed on every reconnect. `publish` resolves once the message is handed to the socket
 * (QoS 0) or acknowledged (QoS 1/2); QoS 0 messages are not queued while offline (the store
 * keeps everything; an unbounded memory queue would not), QoS 1/2 ones are. `stop()` sends
 * an optional last message, then disconnects cleanly, and never throws.
 * A message handler that throws is caught and logged; it never reaches the client.
 *
 * With a `local` bus (the embedded broker in this process, `EmbeddedBroker.localBus()`), the
 * subscriptions and publishes go through it in-process instead of over the socket: the same
 * broker, the same topics, retained and QoS semantics, without a TCP hop or MQTT encoding per
 * message. The TCP client still connects (connection state, readiness, the will).
 *
 * Fairness: deliveries run in slices of at most LOCAL_SLICE_MS per event-loop turn (over TCP
 * and in-process), so one large socket read cannot hold the loop for tens of milliseconds.
 *
 * Backpressure (`setBackpressure`): after each message the check is asked; while the promise
 * it returns is pending, no further message is handed on. Over TCP mqtt.js then reads no
 * further packet (`handleMessage`), so the backlog waits in the broker and the socket buffers;
 * in-process messages wait in a bounded inbox (INBOX_MAX), past which the broker's delivery is
 * held.
 */

import fs from "node:fs";
import net from "node:net";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { errorMessage } from "../errors.js";
import { Fifo } from "../system/fifo.js";
import type { Logger } from "../system/logger.js";
import { safeUrl } from "../system/net.js";
import { batchSocketWrites } from "../system/socket-writes.js";

export interface MqttConnectionOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  keepaliveS: number;
  connectTimeoutMs: number;
  reconnect: { minDelayMs: number; maxDelayMs: number };
  tls?: {
    caFile?: string;
    certFile?: string;
    keyFile?: string;
    rejectUnauthorized?: boolean;
    servername?: string;
  };
  will?: { topic: string; payload: string; retain: boolean; qos: 0 | 1 | 2 };
  /** Subscribe and publish in-process through this bus (see the header). */
  local?: LocalBus;
}

export interface Subscription {
  filter: string;
  qos: 0 | 1;
}

export type MessageHandler = (topic: string, payload: Buffer) => void;

/** A broker in this process: subscribe and publish without a socket. */
export interface LocalBus {
  /**
   * Resolves once subscribed, with the function that unsubscribes. When `onMessage` returns a
   * promise, the broker's router holds that delivery until it settles (used only as a last
   * resort: it holds the router for every client).
   */
  subscribe(
    filter: string,
    onMessage: (topic: string, payload: Buffer) => Promise<void> | undefined,
  ): Promise<() => Promise<void>>;
  /** Resolves once the broker has routed it (stored when retained). */
  publish(
    topic: string,
    payload: string | Buffer,
    options: { qos: 0 | 1 | 2; retain?: boolean },
  ): Promise<void>;
}

export interface ConnectionState {
  connected: boolean;
  /** Successful connections since start (1 after the first, 2 after one reconnect, …). */
  connects: number;
  lastError?: string;
}

/** In-process delivery per event-loop turn, at most this long (ms; see `deliverLocal`). */
const LOCAL_SLICE_MS = 8;

/**
 * In-process messages waiting for delivery before the broker's delivery is held (see
 * `deliverLocal`): about one socket read, measured: 20,000 let the broker parse whole reads
 * between slices (event-loop delay p99 23-32 ms under flood), 512 kept it at 17-22 ms.
 */
const INBOX_MAX = 512;

/** How long each step of a clean shutdown may wait for the broker. */
const STOP_STEP_TIMEOUT_MS = 2_000;

/** `promise`, or undefined once `ms` have passed (the timer does not keep the process alive). */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** The URL without user info, for logs (re-exported for existing importers). */
export { safeUrl };

export class MqttConnection {
  private client: MqttClient | undefined;
  private failures = 0;
  private state: ConnectionState = { connected: false, connects: 0 };
  private readonly connectListeners: (() => void)[] = [];
  private readonly subscriptions: Subscription[] = [];
  /** In-process subscriptions by filter (with `options.local`): the unsubscribe, once made. */
  private readonly localSubs = new Map<string, Promise<(() => Promise<void>) | undefined>>();
  private stopping = false;
  private pressure: (() => Promise<void> | undefined) | undefined;

  constructor(
    private readonly options: MqttConnectionOptions,
    private readonly onMessage: MessageHandler,
    private readonly log: Logger,
  ) {}

  /** Next reconnect delay: exponential in consecutive failures, capped, with jitter. */
  private nextDelayMs(): number {
    const { minDelayMs, maxDelayMs } = this.options.reconnect;
    const base = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    return Math.max(1, Math.round(base * (0.8 + Math.random() * 0.4)));
  }

  start(): void {
    const o = this.options;
    const tls = o.tls ?? {};
    const clientOptions: IClientOptions = {
      clientId: o.clientId,
      keepalive: o.keepaliveS,
      connectTimeout: o.connectTimeoutMs,
      reconnectPeriod: o.reconnect.minDelayMs,
      clean: true,
      resubscribe: true,
      queueQoSZero: false,
      protocolVersion: 4,
      ...(o.username ? { username: o.username } : {}),
      ...(o.password ? { password: o.password } : {}),
      ...(tls.caFile ? { ca: fs.readFileSync(tls.caFile) } : {}),
      ...(tls.certFile ? { cert: fs.readFileSync(tls.certFile) } : {}),
      ...(tls.keyFile ? { key: fs.readFileSync(tls.keyFile) } : {}),
      ...(tls.servername ? { servername: tls.servername } : {}),
      rejectUnauthorized: tls.rejectUnauthorized ?? true,
      ...(o.will
        ? {
            will: {
              topic: o.will.topic,
              payload: Buffer.from(o.will.payload),
              retain: o.will.retain,
              qos: o.will.qos,
            },
          }
        : {}),
    };
    const client = mqtt.connect(o.url, clientOptions);
    this.client = client;
    // mqtt.js takes the next incoming PUBLISH only once this calls back: backpressure.
    // Past LOCAL_SLICE_MS of messages in one event-loop turn, the next waits for the next turn.
    client.handleMessage = (_packet, callback): void => {
      const wait = this.pressure?.();
      if (wait)
        void wait.then(
          () => callback(),
          () => callback(),
        );
      else if (this.sliceSpent()) setImmediate(callback);
      else callback();
    };
    // Runs before mqtt.js schedules the reconnect timer (its own 'close' listener comes later).
    client.prependListener("close", () => {
      if (this.state.connected && !this.stopping)
        this.log.warn({ url: safeUrl(o.url) }, "disconnected from broker");
      this.state.connected = false;
      client.options.reconnectPeriod = this.nextDelayMs();
    });
    client.on("connect", () => {
      // Each connect has a new socket: Nagle off, one write per event-loop turn (src/system/socket-writes.ts).
      if (client.stream instanceof net.Socket) batchSocketWrites(client.stream);
      this.failures = 0;
      this.state = { connected: true, connects: this.state.connects + 1 };
      client.options.reconnectPeriod = o.reconnect.minDelayMs;
      this.log.info(
        { url: safeUrl(o.url), clientId: o.clientId, connects: this.state.connects },
        "connected to broker",
      );
      if (this.state.connects > 1) this.renewSubscriptions();
      for (const listener of this.connectListeners) {
        try {
          listener();
        } catch (err) {
          this.log.error({ err }, "connect listener failed");
        }
      }
    });
    client.on("error", (err) => {
      this.state.lastError = errorMessage(err);
      this.log.warn({ url: safeUrl(o.url), err: errorMessage(err) }, "broker connection error");
    });
    client.on("message", this.deliver);
  }

  private readonly deliver = (topic: string, payload: Buffer): void => {
    try {
      this.onMessage(topic, payload);
    } catch (err) {
      this.log.error({ err, topic }, "message handler failed; message dropped");
    }
  };

  /** Asked after every message: a promise holds further messages back until it settles. */
  setBackpressure(check: () => Promise<void> | undefined): void {
    this.pressure = check;
  }

  /**
   * In-process delivery: the broker hands each message over at once (its router is not held, so
   * other clients' messages keep flowing) and it goes into `inbox`; `pump` delivers from there
   * in slices of at most LOCAL_SLICE_MS per event-loop turn, and not at all while backpressure
   * holds. The inbox is bounded: past INBOX_MAX waiting messages the broker's delivery is held
   * until half have gone (the last resort, since that holds the router for every client).
   */
  private readonly deliverLocal = (topic: string, payload: Buffer): Promise<void> | undefined => {
    this.inbox.push({ topic, payload });
    this.pump();
    if (this.inbox.length <= INBOX_MAX) return undefined;
    return new Promise<void>((resolve) => this.inboxWaiters.push(resolve));
  };

  private inboxWaiters: (() => void)[] = [];

  private readonly inbox = new Fifo<{ topic: string; payload: Buffer }>();
  /** Backpressure in effect for in-process delivery (the pipeline's promise). */
  private holding: Promise<void> | undefined;
  /** When this turn's deliveries began (undefined: none yet this turn). */
  private sliceStartMs: number | undefined;

  /** True once this turn's deliveries took a slice (starts the slice's clock if none runs). */
  private sliceSpent(): boolean {
    if (this.sliceStartMs === undefined) {
      this.sliceStartMs = performance.now();
      setImmediate(this.newTurn);
      return false;
    }
    return performance.now() - this.sliceStartMs >= LOCAL_SLICE_MS;
  }

  private readonly newTurn = (): void => {
    this.sliceStartMs = undefined;
    this.pump();
  };

  private pump(): void {
    while (this.inbox.length > 0 && !this.holding && !this.sliceSpent()) {
      const m = this.inbox.shift() as { topic: string; payload: Buffer };
      this.deliver(m.topic, m.payload);
      const wait = this.pressure?.();
      if (wait) {
        this.holding = wait;
        const release = (): void => {
          this.holding = undefined;
          this.pump();
        };
        void wait.then(release, release);
      }
    }
    if (this.inboxWaiters.length > 0 && this.inbox.length <= INBOX_MAX / 2)
      for (const resolve of this.inboxWaiters.splice(0)) resolve();
  }

  /** Called on every (re)connection, after subscriptions are renewed. */
  onConnect(listener: () => void): void {
    this.connectListeners.push(listener);
  }

  connectionState(): ConnectionState {
    return { ...this.state };
  }

  /** Subscribe now (or when connected); remembered and renewed after every reconnect. */
  subscribe(subs: readonly Subscription[]): void {
    this.subscriptions.push(...subs);
    this.sendSubscribe(subs);
  }

  private renewSubscriptions(): void {
    if (this.options.local) return; // in-process subscriptions do not drop with the socket
    // mqtt.js resubscribes by itself only for subscriptions acknowledged before the loss;
    // sending ours again is harmless (SUBSCRIBE is idempotent) and covers the rest.
    this.sendSubscribe(this.subscriptions);
  }

  private sendSubscribe(subs: readonly Subscription[]): void {
    const local = this.options.local;
    if (local) {
      for (const { filter } of subs) {
        if (this.localSubs.has(filter)) continue;
        this.localSubs.set(
          filter,
          local.subscribe(filter, this.deliverLocal).catch((err: unknown) => {
            this.log.error({ filter, err: errorMessage(err) }, "in-process subscribe failed");
            this.localSubs.delete(filter);
            return undefined;
          }),
        );
      }
      return;
    }
    const client = this.client;
    if (!client || subs.length === 0) return;
    const map: Record<string, { qos: 0 | 1 }> = {};
    for (const s of subs) map[s.filter] = { qos: s.qos };
    client.subscribe(map, (err, granted) => {
      if (err) {
        this.log.warn({ err: errorMessage(err) }, "subscribe failed; will retry on reconnect");
        return;
      }
      const refused = (granted ?? []).filter((g) => g.qos === 128);
      if (refused.length > 0)
        this.log.error({ topics: refused.map((g) => g.topic) }, "broker refused subscriptions");
      else this.log.debug({ topics: Object.keys(map) }, "subscribed");
    });
  }

  /** Stop receiving readings. Waits for the broker's UNSUBACK at most `timeoutMs`. */
  unsubscribeAll(timeoutMs = STOP_STEP_TIMEOUT_MS): Promise<void> {
    const client = this.client;
    const filters = this.subscriptions.map((s) => s.filter);
    this.subscriptions.length = 0;
    if (this.options.local) {
      const pending = [...this.localSubs.values()];
      this.localSubs.clear();
      return withTimeout(
        Promise.all(pending.map((p) => p.then((unsubscribe) => unsubscribe?.()))).then(() => undefined),
        timeoutMs,
      ).then(() => undefined);
    }
    if (!client || filters.length === 0 || !client.connected) return Promise.resolve();
    return withTimeout(
      new Promise<void>((resolve) => {
        client.unsubscribe(filters, () => resolve());
      }),
      timeoutMs,
    );
  }

  publish(
    topic: string,
    payload: string | Buffer,
    options: { qos: 0 | 1 | 2; retain?: boolean },
  ): Promise<void> {
    const client = this.client;
    if (!client) return Promise.reject(new Error("MQTT connection not started"));
    if (this.options.local) return this.options.local.publish(topic, payload, options);
    return new Promise((resolve, reject) => {
      client.publish(topic, payload, { qos: options.qos, retain: options.retain ?? false }, (err) => {
        if (err) reject(err);
        else resolve();
      });
    });
  }

  /** Disconnect cleanly (sending `last` first if connected). Never throws. */
  async stop(last?: { topic: string; payload: string; retain: boolean; qos: 0 | 1 }): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.stopping = true;
    if (last && (client.connected || this.options.local)) {
      // Bounded like every stop step: in-process a QoS 1 publish settles only once delivered.
      await withTimeout(
        this.publish(last.topic, last.payload, { qos: last.qos, retain: last.retain }).catch(() => undefined),
        STOP_STEP_TIMEOUT_MS,
      );
    }
    await new Promise<void>((resolve) => {
      client.end(false, {}, () => resolve());
    });
    this.client = undefined;
  }
}

/** Connect once and wait for CONNACK (for short-lived tools such as `vigil replay`). */
export async function connectOnce(
  url: string,
  options: { clientId?: string; username?: string; password?: string } = {},
): Promise<MqttClient> {
  return mqtt.connectAsync(url, {
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...(options.clientId ? { clientId: options.clientId } : {}),
    ...(options.username ? { username: options.username } : {}),
    ...(options.password ? { password: options.password } : {}),
  });
}
