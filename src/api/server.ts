/**
 * The local HTTP API (contract §8): `GET /healthz`, `GET /readyz`, `GET /api/status`.
 *
 * Contract: binds `host:port` (port 0 picks a free one). When a token is configured every
 * request must carry `Authorization: Bearer <token>` (compared in constant time), else 401.
 * `/healthz` is 200 while the process serves requests and its event loop turns; `/readyz` is
 * 200 only when the broker is connected, at least one model serves and the store is
 * writable, else 503 with the reasons. `/api/status` is the gateway's status as JSON.
 * Handlers never throw into the server: an internal error answers 500.
 */

import { timingSafeEqual } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { VigilError, errorMessage } from "../errors.js";
import type { Logger } from "../system/logger.js";

export interface Readiness {
  ready: boolean;
  reasons: string[];
}

export interface ApiSource {
  status(): unknown;
  readiness(): Readiness;
}

export interface ApiServerOptions {
  host: string;
  port: number;
  token?: string;
}

function tokenMatches(expected: string, header: string | undefined): boolean {
  if (!header?.startsWith("Bearer ")) return false;
  const given = Buffer.from(header.slice("Bearer ".length));
  const want = Buffer.from(expected);
  return given.length === want.length && timingSafeEqual(given, want);
}

export class ApiServer {
  private server: http.Server | undefined;

  constructor(
    private readonly options: ApiServerOptions,
    private readonly source: ApiSource,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      try {
        this.handle(req, res);
      } catch (err) {
        this.log.error({ err: errorMessage(err), url: req.url }, "API handler failed");
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "internal error" }));
      }
    });
    server.keepAliveTimeout = 5_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err) =>
        reject(
          new VigilError(
            "API_LISTEN",
            `local API cannot listen on ${this.options.host}:${this.options.port}: ${errorMessage(err)}`,
            {
              retriable: true,
              cause: err,
            },
          ),
        ),
      );
      server.listen(this.options.port, this.options.host, () => resolve());
    });
    const addr = server.address() as AddressInfo;
    this.log.info(
      { host: addr.address, port: addr.port },
      `local API on http://${addr.address}:${addr.port}/`,
    );
  }

  address(): AddressInfo | undefined {
    return (this.server?.address() as AddressInfo | null) ?? undefined;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, {
        "content-type": "application/json; charset=utf-8",
        "cache-control": "no-store",
      });
      res.end(JSON.stringify(body, null, 2));
    };
    if (this.options.token && !tokenMatches(this.options.token, req.headers.authorization)) {
      res.writeHead(401, { "www-authenticate": "Bearer", "content-type": "application/json" });
      res.end(JSON.stringify({ error: "missing or wrong bearer token" }));
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      json(405, { error: "method not allowed" });
      return;
    }
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    switch (path) {
      case "/healthz":
        json(200, { status: "ok" });
        return;
      case "/readyz": {
        const r = this.source.readiness();
        json(r.ready ? 200 : 503, { ready: r.ready, reasons: r.reasons });
        return;
      }
      case "/api/status":
        json(200, this.source.status());
        return;
      default:
        json(404, { error: `no route ${path}`, routes: ["/healthz", "/readyz", "/api/status"] });
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
