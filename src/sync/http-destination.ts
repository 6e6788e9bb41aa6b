/**
 * The HTTP destination (contract §7): POSTs batches as JSON to one URL.
 *
 * Contract: one request at a time over a keep-alive connection (an `http.Agent` with one
 * socket, so records arrive in seq order); `Content-Type: application/json`, gzip when enabled
 * (`Content-Encoding: gzip`), `Authorization: Bearer` when a token is set, and an
 * `Idempotency-Key` derived from the batch's ids (the same on every retry of the same batch).
 * mTLS and a private CA through `tls`. Each attempt is bounded by `timeoutMs` from the request
 * to the end of the response. Outcomes: 2xx ok; network errors, timeouts, 408, 429 and 5xx
 * retriable (with `Retry-After` when given); 401, 403, 404, 405, 407 and 3xx retriable as well,
 * because they say the endpoint or the credentials are wrong, not the records, and setting
 * every record aside over a bad token would be a data-loss bug; any other 4xx rejected.
 */

import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import { promisify } from "node:util";
import zlib from "node:zlib";
import { errorMessage } from "../errors.js";
import type { HttpDestinationSpec } from "./config.js";
import { parseRetryAfter } from "./backoff.js";
import { httpBody, idempotencyKey } from "./records.js";
import type { Batch, Destination, SendOutcome } from "./types.js";

const gzip = promisify(zlib.gzip);
/** Status codes that say the endpoint or the credentials are wrong, not the records. */
const NOT_ABOUT_RECORDS = new Set([401, 403, 404, 405, 407]);
/** How much of an error response body goes into the error text. */
const MAX_ERROR_BODY = 512;

export class HttpDestination implements Destination {
  readonly type = "http" as const;
  private agent: http.Agent | undefined;
  private wireBytes = 0;
  private readonly url: URL;

  constructor(
    private readonly spec: HttpDestinationSpec,
    private readonly gatewayId: string,
  ) {
    this.url = new URL(spec.url);
  }

  get name(): string {
    return this.spec.name;
  }

  start(): void {
    const tls = this.spec.tls;
    const common = { keepAlive: true, maxSockets: 1, keepAliveMsecs: 10_000 };
    this.agent =
      this.url.protocol === "https:"
        ? new https.Agent({
            ...common,
            ...(tls.caFile ? { ca: fs.readFileSync(tls.caFile) } : {}),
            ...(tls.certFile ? { cert: fs.readFileSync(tls.certFile) } : {}),
            ...(tls.keyFile ? { key: fs.readFileSync(tls.keyFile) } : {}),
            ...(tls.servername ? { servername: tls.servername } : {}),
            rejectUnauthorized: tls.rejectUnauthorized,
          })
        : new http.Agent(common);
  }

  lastWireBytes(): number {
    return this.wireBytes;
  }

  async send(batch: Batch): Promise<SendOutcome> {
    const json = httpBody(this.gatewayId, batch.jsons);
    let body: Buffer;
    try {
      body = this.spec.gzip ? await gzip(json, { level: 6 }) : Buffer.from(json);
    } catch (err) {
      return { ok: false, retriable: true, error: `gzip failed: ${errorMessage(err)}` };
    }
    const headers: http.OutgoingHttpHeaders = {
      "content-type": "application/json",
      "content-length": body.length,
      "idempotency-key": idempotencyKey(this.gatewayId, batch.records),
      "user-agent": "vigil-sync",
      ...(this.spec.gzip ? { "content-encoding": "gzip" } : {}),
      ...(this.spec.token ? { authorization: `Bearer ${this.spec.token}` } : {}),
    };
    const outcome = await this.post(body, headers);
    if (outcome.ok) this.wireBytes = body.length;
    return outcome;
  }

  private post(body: Buffer, headers: http.OutgoingHttpHeaders): Promise<SendOutcome> {
    const lib = this.url.protocol === "https:" ? https : http;
    return new Promise((resolve) => {
      let settled = false;
      const done = (o: SendOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(o);
      };
      const req = lib.request(this.url, { method: "POST", headers, agent: this.agent }, (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on("data", (c: Buffer) => {
          if (kept < MAX_ERROR_BODY) {
            chunks.push(c);
            kept += c.length;
          }
        });
        res.on("error", (err) =>
          done({ ok: false, retriable: true, error: `response: ${errorMessage(err)}` }),
        );
        res.on("end", () => {
          if (status >= 200 && status < 300) {
            done({ ok: true });
            return;
          }
          const text = Buffer.concat(chunks)
            .toString("utf8")
            .slice(0, MAX_ERROR_BODY)
            .replace(/\s+/g, " ")
            .trim();
          const error = `HTTP ${status}${text ? `: ${text}` : ""}`;
          if (
            status >= 400 &&
            status < 500 &&
            status !== 408 &&
            status !== 429 &&
            !NOT_ABOUT_RECORDS.has(status)
          ) {
            done({ ok: false, retriable: false, error });
            return;
          }
          const header = res.headers["retry-after"];
          const retryAfterMs = parseRetryAfter(Array.isArray(header) ? header[0] : header, Date.now());
          done({
            ok: false,
            retriable: true,
            error,
            ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
          });
        });
      });
      const timer = setTimeout(() => {
        req.destroy(new Error(`no complete answer within ${this.spec.timeoutMs} ms`));
      }, this.spec.timeoutMs);
      req.on("error", (err) => done({ ok: false, retriable: true, error: errorMessage(err) }));
      req.end(body);
    });
  }

  stop(): Promise<void> {
    this.agent?.destroy();
    this.agent = undefined;
    return Promise.resolve();
  }
}
