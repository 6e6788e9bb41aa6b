/**
 * The MQTT destination: records published to a cloud broker over a connection of its own
 * (never the plant broker's), through our MQTT module (`ingest/mqtt-client.ts`, the only
 * importer of `mqtt`).
 *
 * Contract: one message per record on `<topicPrefix>/<gatewayId>/<kind>/<asset>` (`_gateway`
 * for records without an asset, such as events), payload the contract §7 record plus
 * `gatewayId`, QoS 1. A batch is delivered when the broker has acknowledged (PUBACK) every
 * message of it; at most `maxInFlight` messages wait for their PUBACK at a time. Not connected,
 * a publish error, or acknowledgements missing after `timeoutMs`: retriable (the batch is sent
 * again; a receiver de-duplicates on `id`). A broker never rejects a record's content here.
 * Messages arriving on this connection (model-update requests, when the gateway subscribes
 * them through `mqttConnection`) go to `onMessage`; by default there are none.
 */

import { errorMessage } from "../errors.js";
import { MqttConnection } from "../ingest/mqtt-client.js";
import type { Logger } from "../system/logger.js";
import type { MqttDestinationSpec } from "./config.js";
import type { Batch, Destination, SendOutcome } from "./types.js";

/** The topic level for records that belong to the gateway rather than an asset. */
export const GATEWAY_ASSET_LEVEL = "_gateway";

export class MqttDestination implements Destination {
  readonly type = "mqtt" as const;
  private connection: MqttConnection | undefined;
  private wireBytes = 0;
  /** Incoming messages (the gateway routes model-update requests from the cloud here). */
  onMessage: ((topic: string, payload: Buffer) => void) | undefined;

  constructor(
    private readonly spec: MqttDestinationSpec,
    private readonly gatewayId: string,
    private readonly log: Logger,
  ) {}

  get name(): string {
    return this.spec.name;
  }

  topic(kind: string, asset: string | null): string {
    return `${this.spec.topicPrefix}/${this.gatewayId}/${kind}/${asset ?? GATEWAY_ASSET_LEVEL}`;
  }

  start(): void {
    const s = this.spec;
    this.connection = new MqttConnection(
      {
        url: s.url,
        clientId: s.clientId !== "" ? s.clientId : `vigil-${this.gatewayId}-sync`,
        ...(s.username ? { username: s.username } : {}),
        ...(s.password ? { password: s.password } : {}),
        keepaliveS: s.keepaliveS,
        connectTimeoutMs: Math.min(s.timeoutMs, 30_000),
        reconnect: { minDelayMs: s.backoff.minDelayMs, maxDelayMs: s.backoff.maxDelayMs },
        tls: s.tls,
      },
      (topic, payload) => this.onMessage?.(topic, payload),
      this.log,
    );
    this.connection.start();
  }

  /** The connection to the cloud broker, once started (to subscribe and answer requests on it). */
  get mqttConnection(): MqttConnection | undefined {
    return this.connection;
  }

  get topicPrefix(): string {
    return this.spec.topicPrefix;
  }

  connected(): boolean {
    return this.connection?.connectionState().connected ?? false;
  }

  lastWireBytes(): number {
    return this.wireBytes;
  }

  async send(batch: Batch): Promise<SendOutcome> {
    const conn = this.connection;
    if (!conn || !this.connected())
      return { ok: false, retriable: true, error: "not connected to the cloud broker" };
    const prefix = `{"gatewayId":${JSON.stringify(this.gatewayId)},`;
    let next = 0;
    let failure: string | undefined;
    let bytes = 0;
    const worker = async (): Promise<void> => {
      while (failure === undefined && next < batch.records.length) {
        const i = next++;
        const r = batch.records[i];
        const json = batch.jsons[i];
        if (!r || json === undefined) continue;
        const payload = prefix + json.slice(1);
        bytes += payload.length;
        try {
          await conn.publish(this.topic(r.kind, r.asset), payload, { qos: 1 });
        } catch (err) {
          failure ??= `publish failed: ${errorMessage(err)}`;
        }
      }
    };
    const lanes = Array.from({ length: Math.min(this.spec.maxInFlight, batch.records.length) }, () =>
      worker(),
    );
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.spec.timeoutMs);
    });
    const result = await Promise.race([Promise.all(lanes).then(() => "done" as const), timedOut]);
    clearTimeout(timer);
    if (result === "timeout") {
      failure ??= `no PUBACK for every message within ${this.spec.timeoutMs} ms`;
    }
    if (failure !== undefined) return { ok: false, retriable: true, error: failure };
    this.wireBytes = bytes;
    return { ok: true };
  }

  async stop(): Promise<void> {
    await this.connection?.stop();
    this.connection = undefined;
  }
}
