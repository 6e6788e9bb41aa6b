/**
 * Where model-update requests come from and where answers and progress go: the seam between
 * the updater and a message transport.
 *
 * Contract: a `CommandSource` delivers each request under `<base>/<gatewayId>/request/<path>`
 * as a `Command` (`path` e.g. `models/deploy`, `payload` the parsed JSON or the parse error),
 * answers it on `response/<path>` of the same transport, and publishes progress on its
 * `models/events`. The updater may attach several sources (the plant broker; the cloud MQTT
 * destination, when sync brings one) and answers each request where it came from; events go
 * to every source. Publishing never throws: a failure is logged, the update goes on.
 *
 * `MqttCommandSource` is the implementation over our own `MqttConnection`: the gateway routes
 * messages under the request prefix to `deliver` (the connection has one message handler) and
 * everything else to the pipeline. A cloud MQTT destination attaches the same class over its
 * own connection and topics: `new MqttCommandSource("cloud", connection, topics, log)`, then
 * `updater.attach(source)`, and routes its incoming messages to `deliver`.
 */

import { errorMessage } from "../../errors.js";
import type { MqttConnection, Subscription } from "../../ingest/mqtt-client.js";
import type { GatewayTopics } from "../../output/topics.js";
import type { Logger } from "../../system/logger.js";

export interface Command {
  /** The source's name, e.g. `plant` or `cloud`. */
  source: string;
  /** After `request/`, e.g. `models/deploy`. */
  path: string;
  /** The parsed JSON body, or undefined when it was not JSON (see `parseError`). */
  payload: unknown;
  parseError?: string;
}

export interface CommandSource {
  readonly name: string;
  /** Starts delivering requests to `handler`. */
  start(handler: (command: Command) => void): void;
  /** Answers on `response/<path>`. */
  respond(path: string, body: object): void;
  /** Publishes on `models/events`. */
  event(body: object): void;
  stop(): void;
}

/** Requests larger than this are answered with an error and not parsed. */
export const MAX_REQUEST_BYTES = 64 * 1024;

export class MqttCommandSource implements CommandSource {
  private handler: ((command: Command) => void) | undefined;
  private readonly prefix: string;

  constructor(
    readonly name: string,
    private readonly connection: MqttConnection,
    private readonly topics: GatewayTopics,
    private readonly log: Logger,
  ) {
    this.prefix = topics.request("");
  }

  /** The subscription requests arrive on. */
  filters(): Subscription[] {
    return [{ filter: this.topics.request("#"), qos: 1 }];
  }

  start(handler: (command: Command) => void): void {
    this.handler = handler;
    this.connection.subscribe(this.filters());
  }

  stop(): void {
    this.handler = undefined;
  }

  /** Takes a message if it is a request; returns false for anything else. */
  deliver(topic: string, payload: Buffer): boolean {
    if (!topic.startsWith(this.prefix)) return false;
    const path = topic.slice(this.prefix.length);
    const handler = this.handler;
    if (!handler || path === "") return true;
    if (payload.length > MAX_REQUEST_BYTES) {
      handler({
        source: this.name,
        path,
        payload: undefined,
        parseError: `request larger than ${MAX_REQUEST_BYTES} bytes`,
      });
      return true;
    }
    let body: unknown;
    try {
      body = JSON.parse(payload.toString("utf8")) as unknown;
    } catch (err) {
      handler({ source: this.name, path, payload: undefined, parseError: `not JSON: ${errorMessage(err)}` });
      return true;
    }
    handler({ source: this.name, path, payload: body });
    return true;
  }

  respond(path: string, body: object): void {
    this.send(this.topics.response(path), body);
  }

  event(body: object): void {
    this.send(this.topics.modelEvents, body);
  }

  private send(topic: string, body: object): void {
    this.connection.publish(topic, JSON.stringify(body), { qos: 1 }).catch((err: unknown) => {
      this.log.warn({ topic, err: errorMessage(err) }, "could not publish a model-update message");
    });
  }
}
