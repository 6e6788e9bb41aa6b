/**
 * Downloads one package archive over HTTP(S) into a file, with a size cap, timeouts, resume and
 * the SHA-256 check (contract §6).
 *
 * Contract of `downloadFile(options)`:
 * - Writes to `options.file` (created or appended; its folder must exist). If the file already
 *   holds bytes from an interrupted attempt, asks for the rest (`Range: bytes=N-`, guarded by
 *   `If-Range` with the validator the server gave last time) and appends on `206`; a `200`, a
 *   `416` or a `Content-Range` that does not start at N restarts the download cleanly from 0.
 * - Resolves `{bytes, sha256, resumed}` only when the whole file is there and its SHA-256 is
 *   `expectedSha256`. A mismatch after a resumed download is retried once from 0 (the part may
 *   come from another version of the file); a mismatch of a clean download deletes the file and
 *   fails (`DOWNLOAD_HASH_MISMATCH`, not retriable).
 * - Never holds more than `maxBytes` (the smaller of the config's cap and the request's
 *   `size`): a larger `Content-Length` is refused before reading, a body that grows past it is
 *   cut off; both delete the file and fail with `DOWNLOAD_TOO_LARGE` (not retriable). A body
 *   shorter than announced fails retriable (`DOWNLOAD_TRUNCATED`), keeping the part to resume.
 * - Failures are `DownloadError`s with `retriable` decided here, once: network errors, idle
 *   and overall timeouts, 408, 429 and 5xx are retriable (with `retryAfterMs` from
 *   `Retry-After` when given); other statuses, bad URLs, too many redirects (more than 5), size
 *   and hash problems are not. An aborted `signal` fails with `DOWNLOAD_CANCELLED`.
 * - Only `http:` and `https:` URLs; redirects are followed to either.
 * The only module that opens outgoing HTTP connections for model packages.
 */

import { createHash, type Hash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import { VigilError, errorMessage } from "../errors.js";

export class DownloadError extends VigilError {
  readonly retryAfterMs: number | undefined;
  constructor(
    code: string,
    message: string,
    options: { retriable: boolean; retryAfterMs?: number; cause?: unknown },
  ) {
    super(code, message, { retriable: options.retriable, cause: options.cause });
    this.retryAfterMs = options.retryAfterMs;
  }
}

export interface DownloadOptions {
  url: string;
  file: string;
  expectedSha256: string;
  /** Hard cap in bytes (the request's `size`, when given, lowers it). */
  maxBytes: number;
  /** The exact size the request announced, if any: a different size is an error. */
  expectedSize?: number;
  /** The whole attempt, connect to last byte. */
  timeoutMs: number;
  /** Longest silence on the socket. */
  idleTimeoutMs: number;
  signal?: AbortSignal;
  /** Extra CA certificates (PEM) for https. */
  ca?: string | Buffer;
  /** Called as bytes arrive (total is undefined when the server does not say). */
  onProgress?: (bytes: number, total: number | undefined) => void;
}

export interface DownloadResult {
  bytes: number;
  sha256: string;
  resumed: boolean;
}

const MAX_REDIRECTS = 5;

/** Validators remembered per part file, so a resumed request can send `If-Range`. */
function validatorFile(file: string): string {
  return `${file}.validator`;
}

function retriableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const s = Number(value);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : undefined;
}

export async function downloadFile(options: DownloadOptions): Promise<DownloadResult> {
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new DownloadError("DOWNLOAD_BAD_URL", `"${options.url}" is not a URL`, { retriable: false });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new DownloadError(
      "DOWNLOAD_BAD_URL",
      `only http: and https: URLs are supported, got ${url.protocol}`,
      {
        retriable: false,
      },
    );
  }
  const cap =
    options.expectedSize !== undefined ? Math.min(options.maxBytes, options.expectedSize) : options.maxBytes;
  if (options.expectedSize !== undefined && options.expectedSize > options.maxBytes) {
    throw new DownloadError(
      "DOWNLOAD_TOO_LARGE",
      `the request announces ${options.expectedSize} bytes, over the limit of ${options.maxBytes} (models.ota.download.maxBytes)`,
      { retriable: false },
    );
  }
  let existing = fs.existsSync(options.file) ? fs.statSync(options.file).size : 0;
  if (existing > cap) {
    fs.rmSync(options.file, { force: true });
    existing = 0;
  }
  const first = await attempt(url, options, cap, existing);
  if (first.sha256 === options.expectedSha256.toLowerCase()) return first;
  if (first.resumed) {
    // The start of the file may belong to another version of it: once more, from scratch.
    fs.rmSync(options.file, { force: true });
    const clean = await attempt(url, options, cap, 0);
    if (clean.sha256 === options.expectedSha256.toLowerCase()) return clean;
    return hashMismatch(options, clean);
  }
  return hashMismatch(options, first);
}

function hashMismatch(options: DownloadOptions, got: DownloadResult): never {
  fs.rmSync(options.file, { force: true });
  fs.rmSync(validatorFile(options.file), { force: true });
  throw new DownloadError(
    "DOWNLOAD_HASH_MISMATCH",
    `the downloaded .tgz (${got.bytes} bytes) has SHA-256 ${got.sha256}, the request says ${options.expectedSha256}`,
    { retriable: false },
  );
}

/** One download from `offset` (0: from scratch), following redirects. */
async function attempt(
  url: URL,
  options: DownloadOptions,
  cap: number,
  offset: number,
): Promise<DownloadResult> {
  let validator: string | undefined;
  try {
    validator = offset > 0 ? fs.readFileSync(validatorFile(options.file), "utf8") : undefined;
  } catch {
    validator = undefined;
  }
  // Without a validator the server cannot tell us whether the part still matches: start over.
  if (offset > 0 && validator === undefined) return attempt(url, options, cap, 0);
  const hash = createHash("sha256");
  if (offset > 0) {
    // The bytes already there count towards the hash.
    await new Promise<void>((resolve, reject) => {
      fs.createReadStream(options.file, { end: offset - 1 })
        .on("data", (chunk) => hash.update(chunk))
        .on("end", resolve)
        .on("error", reject);
    });
  }
  const deadline = Date.now() + options.timeoutMs;
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await request(current, options, offset, validator, deadline);
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      current = new URL(res.headers.location, current);
      if (current.protocol !== "http:" && current.protocol !== "https:") {
        throw new DownloadError("DOWNLOAD_BAD_URL", `redirected to a ${current.protocol} URL`, {
          retriable: false,
        });
      }
      continue;
    }
    if (status === 416 && offset > 0) {
      res.resume();
      fs.rmSync(options.file, { force: true });
      return attempt(url, options, cap, 0);
    }
    if (status !== 200 && status !== 206) {
      res.resume();
      throw new DownloadError("DOWNLOAD_HTTP_STATUS", `the server answered ${status} for ${safe(current)}`, {
        retriable: retriableStatus(status),
        ...(retriableStatus(status)
          ? { retryAfterMs: parseRetryAfter(res.headers["retry-after"], Date.now()) }
          : {}),
      });
    }
    let start = 0;
    if (status === 206) {
      const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers["content-range"] ?? "");
      start = m ? Number(m[1]) : -1;
      if (start !== offset) {
        res.resume();
        fs.rmSync(options.file, { force: true });
        return attempt(url, options, cap, 0);
      }
    }
    const resumed = status === 206 && offset > 0;
    const base = resumed ? offset : 0;
    const length =
      res.headers["content-length"] !== undefined ? Number(res.headers["content-length"]) : undefined;
    const total = length !== undefined && Number.isFinite(length) ? base + length : undefined;
    if (total !== undefined && total > cap) {
      res.resume();
      fs.rmSync(options.file, { force: true });
      throw tooLarge(total, cap, options);
    }
    const etag = res.headers.etag ?? res.headers["last-modified"];
    if (etag !== undefined && !resumed) fs.writeFileSync(validatorFile(options.file), etag);
    return receive(res, options, resumed ? hash : createHash("sha256"), base, cap, total, resumed, deadline);
  }
  throw new DownloadError("DOWNLOAD_REDIRECTS", `more than ${MAX_REDIRECTS} redirects from ${safe(url)}`, {
    retriable: false,
  });
}

function tooLarge(bytes: number, cap: number, options: DownloadOptions): DownloadError {
  const limit =
    options.expectedSize !== undefined && options.expectedSize <= options.maxBytes
      ? `the size the request announced (${options.expectedSize})`
      : `the limit of ${options.maxBytes} bytes (models.ota.download.maxBytes)`;
  return new DownloadError("DOWNLOAD_TOO_LARGE", `the download has ${bytes} bytes or more, over ${limit}`, {
    retriable: false,
  });
}

function safe(url: URL): string {
  const u = new URL(url);
  u.username = "";
  u.password = "";
  u.search = "";
  return u.toString();
}

function request(
  url: URL,
  options: DownloadOptions,
  offset: number,
  validator: string | undefined,
  deadline: number,
): Promise<http.IncomingMessage> {
  const headers: Record<string, string> = { "user-agent": "vigil-ota", "accept-encoding": "identity" };
  if (offset > 0) {
    headers.range = `bytes=${offset}-`;
    if (validator !== undefined) headers["if-range"] = validator;
  }
  const lib = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.get(
      url,
      {
        headers,
        // One connection per download: no keep-alive socket shared between attempts.
        agent: false,
        timeout: options.idleTimeoutMs,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(url.protocol === "https:" && options.ca !== undefined ? { ca: options.ca } : {}),
      },
      resolve,
    );
    const remaining = Math.max(1, deadline - Date.now());
    const overall = setTimeout(() => req.destroy(timeoutError(options, "overall")), remaining);
    overall.unref();
    req.on("close", () => clearTimeout(overall));
    req.on("timeout", () => req.destroy(timeoutError(options, "idle")));
    req.on("error", (err) => reject(networkError(err, options, url)));
  });
}

function timeoutError(options: DownloadOptions, which: "idle" | "overall"): DownloadError {
  return new DownloadError(
    "DOWNLOAD_TIMEOUT",
    which === "idle"
      ? `no data for ${options.idleTimeoutMs} ms (models.ota.download.idleTimeoutMs)`
      : `the download took longer than ${options.timeoutMs} ms (models.ota.download.timeoutMs)`,
    { retriable: true },
  );
}

function networkError(err: unknown, options: DownloadOptions, url: URL): DownloadError {
  if (err instanceof DownloadError) return err;
  if (options.signal?.aborted) {
    return new DownloadError("DOWNLOAD_CANCELLED", "cancelled", { retriable: false, cause: err });
  }
  const code = (err as NodeJS.ErrnoException).code ?? "";
  if (/CERT|SELF_SIGNED|ERR_TLS|ERR_SSL/.test(code)) {
    // A certificate the gateway cannot trust does not get better by retrying.
    return new DownloadError(
      "DOWNLOAD_TLS",
      `cannot trust ${safe(url)}: ${errorMessage(err)} (models.ota.download.caFile adds CAs)`,
      { retriable: false, cause: err },
    );
  }
  return new DownloadError("DOWNLOAD_NETWORK", `cannot download from ${safe(url)}: ${errorMessage(err)}`, {
    retriable: true,
    cause: err,
  });
}

function receive(
  res: http.IncomingMessage,
  options: DownloadOptions,
  hash: Hash,
  base: number,
  cap: number,
  total: number | undefined,
  resumed: boolean,
  deadline: number,
): Promise<DownloadResult> {
  return new Promise((resolve, reject) => {
    const out = fs.createWriteStream(options.file, { flags: base > 0 ? "a" : "w" });
    let bytes = base;
    let failed = false;
    const fail = (why: DownloadError, removeFile: boolean): void => {
      if (failed) return;
      failed = true;
      const err = options.signal?.aborted
        ? new DownloadError("DOWNLOAD_CANCELLED", "cancelled", { retriable: false })
        : why;
      res.destroy();
      if (removeFile) {
        out.destroy();
        out.on("close", () => {
          fs.rmSync(options.file, { force: true });
          reject(err);
        });
        return;
      }
      // Keep every byte received: the next attempt resumes after them.
      out.end(() => reject(err));
    };
    const overall = setTimeout(
      () => fail(timeoutError(options, "overall"), false),
      Math.max(1, deadline - Date.now()),
    );
    overall.unref();
    res.socket.setTimeout(options.idleTimeoutMs, () => fail(timeoutError(options, "idle"), false));
    res.on("data", (chunk: Buffer) => {
      if (failed) return;
      bytes += chunk.length;
      if (bytes > cap) {
        fail(tooLarge(bytes, cap, options), true);
        return;
      }
      hash.update(chunk);
      if (!out.write(chunk)) {
        res.pause();
        out.once("drain", () => res.resume());
      }
      options.onProgress?.(bytes, total);
    });
    res.on("error", (err) => fail(networkError(err, options, new URL(options.url)), false));
    res.on("aborted", () =>
      fail(
        new DownloadError("DOWNLOAD_NETWORK", "the connection closed mid-download", { retriable: true }),
        false,
      ),
    );
    res.on("end", () => {
      clearTimeout(overall);
      if (failed) return;
      out.end(() => {
        if (failed) return;
        if (total !== undefined && bytes < total) {
          failed = true;
          reject(
            new DownloadError("DOWNLOAD_TRUNCATED", `got ${bytes} of ${total} bytes`, {
              retriable: true,
            }),
          );
          return;
        }
        if (options.expectedSize !== undefined && bytes !== options.expectedSize) {
          failed = true;
          fs.rmSync(options.file, { force: true });
          reject(
            new DownloadError(
              "DOWNLOAD_SIZE_MISMATCH",
              `the download is ${bytes} bytes, the request says ${options.expectedSize}`,
              { retriable: false },
            ),
          );
          return;
        }
        resolve({ bytes, sha256: hash.digest("hex"), resumed });
      });
    });
    res.on("close", () => {
      clearTimeout(overall);
      if (!res.complete && !failed)
        fail(
          new DownloadError("DOWNLOAD_NETWORK", "the connection closed mid-download", { retriable: true }),
          false,
        );
    });
  });
}
