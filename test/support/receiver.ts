/**
 * A cloud receiver for tests: a real node:http server on 127.0.0.1 (port chosen by the OS)
 * that takes contract §7 batches, gunzips them, checks the bearer token, and keeps every
 * record de-duplicated on `id` (and every arrival, to count duplicates before de-duplication).
 * A `fault` function decides, per request, to answer normally, with a status (and headers),
 * or to drop the connection. `down()` stops listening (connection refused); `up()` listens
 * again on the same port. Waits are on events (a record arriving), never on sleeps.
 */

import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import zlib from "node:zlib";

export interface WireRecord {
  id: string;
  seq: number;
  kind: "prediction" | "alert" | "event";
  ts: number;
  asset: string | null;
  data: Record<string, unknown>;
}

export interface ReceivedRequest {
  headers: http.IncomingHttpHeaders;
  gatewayId: string;
  records: WireRecord[];
  status: number;
}

export type Fault = { status: number; headers?: Record<string, string>; body?: string } | "drop" | undefined;

/** A small seeded PRNG (mulberry32), so a failing run can be repeated with its seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Receiver {
  readonly byId = new Map<string, WireRecord>();
  readonly requests: ReceivedRequest[] = [];
  arrivals = 0;
  token: string | undefined;
  /** Decides a fault for a request (after its body was read); undefined: answer 200. */
  fault: (records: WireRecord[]) => Fault = () => undefined;
  private server: http.Server | undefined;
  private readonly sockets = new Set<Socket>();
  private port = 0;
  private waiters: { check: () => boolean; resolve: () => void }[] = [];

  static async start(token?: string): Promise<Receiver> {
    const r = new Receiver();
    r.token = token;
    await r.up();
    return r;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/v1/records`;
  }

  async up(): Promise<void> {
    if (this.server) return;
    const server = http.createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 5_000;
    server.on("connection", (s) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stop listening and cut every open connection: the gateway sees the cloud as unreachable. */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let body = Buffer.concat(chunks);
      if (this.token !== undefined && req.headers.authorization !== `Bearer ${this.token}`) {
        res.writeHead(401).end("bad token");
        return;
      }
      let parsed: { gatewayId: string; records: WireRecord[] };
      try {
        if (req.headers["content-encoding"] === "gzip") body = zlib.gunzipSync(body);
        parsed = JSON.parse(body.toString("utf8")) as { gatewayId: string; records: WireRecord[] };
      } catch {
        res.writeHead(400).end("not gzip JSON");
        return;
      }
      const fault = this.fault(parsed.records);
      if (fault === "drop") {
        req.socket.destroy();
        return;
      }
      const status = fault?.status ?? 200;
      this.requests.push({
        headers: req.headers,
        gatewayId: parsed.gatewayId,
        records: parsed.records,
        status,
      });
      if (status >= 200 && status < 300) {
        for (const r of parsed.records) {
          this.arrivals++;
          this.byId.set(r.id, r);
        }
      }
      res.writeHead(status, fault?.headers ?? {}).end(fault?.body ?? "");
      this.waiters = this.waiters.filter((w) => {
        if (!w.check()) return true;
        w.resolve();
        return false;
      });
    });
  }

  records(): WireRecord[] {
    return [...this.byId.values()].sort((a, b) => a.seq - b.seq);
  }

  waitFor(check: () => boolean, timeoutMs = 10_000, what = "records"): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(
          new Error(`receiver: timed out after ${timeoutMs} ms waiting for ${what}; holds ${this.byId.size}`),
        );
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push({ check, resolve: done });
    });
  }

  async close(): Promise<void> {
    await this.down();
  }
}
