/**
 * The local HTTP API and dashboard (contract §8).
 *
 * Routes: `GET /healthz` (liveness) · `GET /readyz` (readiness) · `GET /metrics` (Prometheus
 * text) · `GET /api/status` (JSON) · `GET /api/feed` (recent predictions and alert events per
 * asset) · `GET /api/events` (server-sent events: `snapshot` once, then `records` as they are
 * committed and `status` every `statusIntervalMs`) · `PUT /api/log-level` (`{"level":"debug"}`)
 * · `GET /` and `/assets/*` (the dashboard page, its script and style, uPlot).
 *
 * Contract: binds `host:port` (port 0 picks a free one). When a token is set every data route
 * requires `Authorization: Bearer <token>` or, for clients that cannot set headers (the
 * browser's EventSource), `?access_token=<token>`; compared in constant time, else 401. The
 * dashboard page and its static files carry no data and are served without a token, so the
 * page can ask for one. `/healthz` is 200 while the event loop turns and the store answers,
 * else 503 with the reasons; `/readyz` is 200 only when the broker is connected, a model
 * serves, the store is writable and the gateway is not stopping, else 503 with the reasons.
 * HEAD works wherever GET does; other methods answer 405. A slow event-stream client whose
 * unsent data passes 1 MiB is disconnected (its EventSource reconnects and gets a fresh
 * snapshot). Handlers never throw into the server: an internal error answers 500.
 */

import { timingSafeEqual } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { VigilError, errorMessage } from "../errors.js";
import type { Logger } from "../system/logger.js";
import type { FeedUpdate, LiveFeed } from "./feed.js";
import { loadStaticAssets, type StaticAsset } from "./static-assets.js";
import type { Check } from "./status-view.js";

export interface Readiness {
  ready: boolean;
  reasons: string[];
}

export interface LogLevelControl {
  get(): string;
  set(level: string): void;
}

export interface ApiSource {
  status(): unknown;
  readiness(): Readiness;
  /** Liveness; without it `/healthz` is 200 whenever the server answers. */
  health?(): Check;
  metrics?: { contentType: string; render(): Promise<string> };
  feed?: LiveFeed;
  logLevel?: LogLevelControl;
}

export interface ApiServerOptions {
  host: string;
  port: number;
  token?: string;
  /** How often event streams get a `status` event (default 2 s). */
  statusIntervalMs?: number;
  /** Most event streams open at once (default 32); more get 503. */
  maxEventStreams?: number;
}

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

const MAX_STREAM_BUFFER_BYTES = 1024 * 1024; // 1 MiB
const MAX_BODY_BYTES = 1024;

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

const PAGE_HEADERS = {
  ...SECURITY_HEADERS,
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "x-frame-options": "DENY",
};

const DATA_ROUTES = [
  "/healthz",
  "/readyz",
  "/metrics",
  "/api/status",
  "/api/feed",
  "/api/events",
  "/api/log-level",
];

function tokenMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function bearer(req: http.IncomingMessage, url: URL): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) return header.startsWith("Bearer ") ? header.slice("Bearer ".length) : undefined;
  return url.searchParams.get("access_token") ?? undefined;
}

interface EventStream {
  res: http.ServerResponse;
  unsubscribe: (() => void) | undefined;
  close(): void;
}

export class ApiServer {
  private server: http.Server | undefined;
  private assets = new Map<string, StaticAsset>();
  private assetsError: string | undefined;
  private token: string | undefined;
  private readonly streams = new Set<EventStream>();
  private statusTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: ApiServerOptions,
    private readonly source: ApiSource,
    private readonly log: Logger,
  ) {
    this.token = options.token ? options.token : undefined;
  }

  async start(): Promise<void> {
    try {
      this.assets = await loadStaticAssets();
    } catch (err) {
      // The API still serves; the dashboard says why it cannot.
      this.assetsError = errorMessage(err);
      this.log.error({ err: this.assetsError }, "dashboard unavailable");
    }
    const server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.log.error({ err: errorMessage(err), path: req.url?.split("?")[0] }, "API handler failed");
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "internal error" }));
      });
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
      `local API and dashboard on http://${addr.address}:${addr.port}/`,
    );
  }

  address(): AddressInfo | undefined {
    return (this.server?.address() as AddressInfo | null) ?? undefined;
  }

  /** Replaces the bearer token (SIGHUP reload); empty turns it off. Open streams keep going. */
  setToken(token: string): void {
    this.token = token ? token : undefined;
  }

  /** Event streams open now. */
  get eventStreams(): number {
    return this.streams.size;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const json = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, {
        "content-type": "application/json; charset=utf-8",
        "cache-control": "no-store",
        ...SECURITY_HEADERS,
        ...headers,
      });
      res.end(JSON.stringify(body, null, 2));
    };
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname;
    const method = req.method ?? "GET";
    const read = method === "GET" || method === "HEAD";

    const asset = this.assets.get(path);
    if (asset || path === "/" || path.startsWith("/assets/")) {
      if (!read) return json(405, { error: "method not allowed" }, { allow: "GET, HEAD" });
      if (!asset) {
        if (path === "/" && this.assetsError) return json(503, { error: this.assetsError });
        return json(404, { error: `no route ${path}` });
      }
      if (req.headers["if-none-match"] === asset.etag) {
        res.writeHead(304, { etag: asset.etag });
        res.end();
        return;
      }
      res.writeHead(200, {
        "content-type": asset.contentType,
        "content-length": asset.body.length,
        etag: asset.etag,
        "cache-control": "no-cache",
        ...(path === "/" || path === "/index.html" ? PAGE_HEADERS : SECURITY_HEADERS),
      });
      res.end(asset.body);
      return;
    }

    if (this.token && !tokenMatches(this.token, bearer(req, url))) {
      return json(401, { error: "missing or wrong bearer token" }, { "www-authenticate": "Bearer" });
    }
    if (path === "/api/log-level") {
      if (method === "PUT" || method === "POST") return this.putLogLevel(req, json);
      if (read) return json(200, { level: this.source.logLevel?.get() ?? "unknown" });
      return json(405, { error: "method not allowed" }, { allow: "GET, HEAD, PUT" });
    }
    if (!read) {
      return DATA_ROUTES.includes(path)
        ? json(405, { error: "method not allowed" }, { allow: "GET, HEAD" })
        : json(404, { error: `no route ${path}` });
    }
    switch (path) {
      case "/healthz": {
        const h = this.source.health?.() ?? { ok: true, reasons: [] };
        return json(h.ok ? 200 : 503, { status: h.ok ? "ok" : "unhealthy", reasons: h.reasons });
      }
      case "/readyz": {
        const r = this.source.readiness();
        return json(r.ready ? 200 : 503, { ready: r.ready, reasons: r.reasons });
      }
      case "/metrics": {
        if (!this.source.metrics) return json(404, { error: "metrics are not enabled" });
        const body = await this.source.metrics.render();
        res.writeHead(200, {
          "content-type": this.source.metrics.contentType,
          "cache-control": "no-store",
          ...SECURITY_HEADERS,
        });
        res.end(body);
        return;
      }
      case "/api/status":
        return json(200, this.source.status());
      case "/api/feed":
        if (!this.source.feed) return json(404, { error: "no live feed" });
        return json(200, this.source.feed.snapshot());
      case "/api/events":
        return this.openStream(req, res, json);
      default:
        return json(404, { error: `no route ${path}`, routes: ["/", ...DATA_ROUTES] });
    }
  }

  private async putLogLevel(
    req: http.IncomingMessage,
    json: (status: number, body: unknown) => void,
  ): Promise<void> {
    const control = this.source.logLevel;
    if (!control) return json(404, { error: "log level cannot be changed here" });
    let raw = "";
    let tooLarge = false;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      raw += chunk.toString("utf8");
      if (raw.length > MAX_BODY_BYTES) {
        tooLarge = true;
        break;
      }
    }
    if (tooLarge) return json(413, { error: `body over ${MAX_BODY_BYTES} bytes` });
    let level: unknown;
    try {
      level = (JSON.parse(raw) as { level?: unknown }).level;
    } catch {
      return json(400, { error: 'body must be JSON: {"level": "debug"}' });
    }
    if (typeof level !== "string" || !(LOG_LEVELS as readonly string[]).includes(level)) {
      return json(400, { error: `level must be one of ${LOG_LEVELS.join(", ")}` });
    }
    const previous = control.get();
    control.set(level);
    this.log.warn({ level, previous, via: "api" }, `log level now ${level}`);
    return json(200, { level, previous });
  }

  private openStream(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    json: (status: number, body: unknown) => void,
  ): void {
    const max = this.options.maxEventStreams ?? 32;
    if (this.streams.size >= max) return json(503, { error: `too many event streams open (${max})` });
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      ...SECURITY_HEADERS,
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    const stream: EventStream = {
      res,
      unsubscribe: undefined,
      close: () => {
        stream.unsubscribe?.();
        this.streams.delete(stream);
        if (this.streams.size === 0) this.stopStatusTimer();
        if (!res.writableEnded) res.end();
      },
    };
    this.streams.add(stream);
    req.on("close", () => stream.close());
    res.write("retry: 2000\n\n");
    this.send(stream, "snapshot", {
      status: this.source.status(),
      feed: this.source.feed?.snapshot() ?? { lastSeq: 0, historyPoints: 0, assets: [], alertEvents: [] },
    });
    stream.unsubscribe = this.source.feed?.subscribe((update: FeedUpdate) =>
      this.send(stream, "records", update),
    );
    this.startStatusTimer();
  }

  private send(stream: EventStream, event: string, data: unknown): void {
    const { res } = stream;
    if (res.writableEnded || res.destroyed) return;
    if (res.writableLength > MAX_STREAM_BUFFER_BYTES) {
      this.log.warn("event-stream client too slow; disconnected (it reconnects with a fresh snapshot)");
      res.destroy();
      stream.close();
      return;
    }
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private startStatusTimer(): void {
    if (this.statusTimer) return;
    this.statusTimer = setInterval(() => {
      if (this.streams.size === 0) return;
      let status: unknown;
      try {
        status = this.source.status();
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, "status for event streams failed");
        return;
      }
      for (const s of [...this.streams]) this.send(s, "status", status);
    }, this.options.statusIntervalMs ?? 2_000);
    this.statusTimer.unref();
  }

  private stopStatusTimer(): void {
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = undefined;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.stopStatusTimer();
    for (const s of [...this.streams]) s.close();
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
