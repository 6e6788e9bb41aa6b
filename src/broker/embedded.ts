/**
 * The embedded MQTT broker (aedes) for sites without one. The only importer of `aedes`.
 *
 * Contract: `start()` binds `host:port` (port 0 picks a free one; `address()` tells which)
 * and resolves once listening, or rejects with a `VigilError` (`BROKER_LISTEN`, retriable:
 * the port may be free later). It refuses to start on a non-loopback address unless a
 * username and password are configured, and when they are, every client must present them
 * (compared in constant time). `stop()` closes clients, the server and the broker, and never
 * throws.
 */

import { timingSafeEqual } from "node:crypto";
import net from "node:net";
import { Aedes, type AuthenticateError } from "aedes";
import { VigilError, errorMessage } from "../errors.js";
import type { Logger } from "../system/logger.js";
import { isLoopback } from "../system/net.js";

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
    const server = net.createServer((socket) => {
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

  async stop(): Promise<void> {
    const server = this.server;
    const broker = this.broker;
    this.server = undefined;
    this.broker = undefined;
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    if (server?.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
