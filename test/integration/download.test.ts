/**
 * Package downloads (src/models/download.ts) from a real node:http server on 127.0.0.1:
 * the size caps (announced and streamed), the hash check, which failures are retriable,
 * redirects, the idle timeout, resume with Range/If-Range (and a clean restart when the file
 * changed on the server), and cancellation.
 */

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DownloadError, downloadFile, type DownloadOptions } from "../../src/models/download.js";
import { tempDir } from "../support/harness.js";
import { PackageServer } from "../support/ota.js";

const A = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
const B = Buffer.from(Array.from({ length: 4000 }, (_, i) => (i * 7) % 253));
const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

let server: PackageServer;
beforeAll(async () => {
  server = new PackageServer();
  await server.start();
});
afterAll(async () => {
  await server.close();
});

function options(url: string, extra: Partial<DownloadOptions> = {}): DownloadOptions {
  return {
    url,
    file: path.join(tempDir("vigil-dl-"), "p.tgz.part"),
    expectedSha256: sha(A),
    maxBytes: 1_000_000,
    timeoutMs: 10_000,
    idleTimeoutMs: 10_000,
    ...extra,
  };
}

async function failure(p: Promise<unknown>): Promise<DownloadError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(DownloadError);
    return err as DownloadError;
  }
  throw new Error("expected the download to fail");
}

describe("downloads", () => {
  it("fetch the file, check its hash and report progress", async () => {
    const seen: number[] = [];
    const o = options(server.serve("/ok.tgz", { bytes: A }), { onProgress: (b) => seen.push(b) });
    expect(await downloadFile(o)).toEqual({ bytes: A.length, sha256: sha(A), resumed: false });
    expect(fs.readFileSync(o.file).equals(A)).toBe(true);
    expect(seen.at(-1)).toBe(A.length);
  });

  it("refuse more than the cap: announced, streamed without a length, or beyond the request's size", async () => {
    const capped = options(server.serve("/big.tgz", { bytes: A }), { maxBytes: 4000 });
    const e1 = await failure(downloadFile(capped));
    expect([e1.code, e1.retriable, e1.message]).toEqual([
      "DOWNLOAD_TOO_LARGE",
      false,
      "the download has 5000 bytes or more, over the limit of 4000 bytes (models.ota.download.maxBytes)",
    ]);
    expect(fs.existsSync(capped.file)).toBe(false);
    const streamed = options(server.serve("/chunked.tgz", { bytes: A, behaviours: [{ kind: "chunked" }] }), {
      maxBytes: 4000,
    });
    expect((await failure(downloadFile(streamed))).code).toBe("DOWNLOAD_TOO_LARGE");
    expect(fs.existsSync(streamed.file)).toBe(false);
    const announced = await failure(
      downloadFile(options("http://127.0.0.1:9/x.tgz", { maxBytes: 100, expectedSize: 200 })),
    );
    expect(announced.message).toBe(
      "the request announces 200 bytes, over the limit of 100 (models.ota.download.maxBytes)",
    );
    const wrongSize = await failure(
      downloadFile(
        options(server.serve("/size.tgz", { bytes: A, behaviours: [{ kind: "chunked" }] }), {
          expectedSize: 6000,
        }),
      ),
    );
    expect([wrongSize.code, wrongSize.message]).toEqual([
      "DOWNLOAD_SIZE_MISMATCH",
      "the download is 5000 bytes, the request says 6000",
    ]);
  });

  it("a hash mismatch deletes the file and is final", async () => {
    const o = options(server.serve("/hash.tgz", { bytes: B }));
    const e = await failure(downloadFile(o));
    expect([e.code, e.retriable]).toEqual(["DOWNLOAD_HASH_MISMATCH", false]);
    expect(e.message).toBe(
      `the downloaded .tgz (4000 bytes) has SHA-256 ${sha(B)}, the request says ${sha(A)}`,
    );
    expect(fs.existsSync(o.file)).toBe(false);
  });

  it("statuses: 404 is final, 503 and 429 retriable with Retry-After; redirects are followed", async () => {
    expect(await failure(downloadFile(options(server.url("/nothing.tgz"))))).toMatchObject({
      code: "DOWNLOAD_HTTP_STATUS",
      retriable: false,
    });
    const busy = await failure(
      downloadFile(
        options(
          server.serve("/busy.tgz", {
            bytes: A,
            behaviours: [{ kind: "status", status: 503, headers: { "retry-after": "7" } }],
          }),
        ),
      ),
    );
    expect(busy).toMatchObject({ code: "DOWNLOAD_HTTP_STATUS", retriable: true, retryAfterMs: 7000 });
    expect(
      await failure(
        downloadFile(
          options(server.serve("/slowdown.tgz", { bytes: A, behaviours: [{ kind: "status", status: 429 }] })),
        ),
      ),
    ).toMatchObject({ retriable: true });
    server.serve("/target.tgz", { bytes: A });
    const moved = server.serve("/moved.tgz", {
      bytes: A,
      behaviours: [{ kind: "status", status: 302, headers: { location: "/target.tgz" } }],
    });
    expect(await downloadFile(options(moved))).toMatchObject({ bytes: A.length, resumed: false });
    expect(await failure(downloadFile(options("ftp://example.org/x.tgz")))).toMatchObject({
      code: "DOWNLOAD_BAD_URL",
      retriable: false,
    });
    const refused = await failure(downloadFile(options("http://127.0.0.1:9/x.tgz")));
    expect([refused.code, refused.retriable]).toEqual(["DOWNLOAD_NETWORK", true]);
  });

  it("a stalled server times out (retriable) and the next attempt resumes after the bytes kept", async () => {
    const url = server.serve("/stall.tgz", {
      bytes: A,
      behaviours: [{ kind: "stall", afterBytes: 3000 }, { kind: "ok" }],
    });
    const o = options(url, { idleTimeoutMs: 200 });
    const e = await failure(downloadFile(o));
    expect([e.code, e.retriable, e.message]).toEqual([
      "DOWNLOAD_TIMEOUT",
      true,
      "no data for 200 ms (models.ota.download.idleTimeoutMs)",
    ]);
    expect(fs.statSync(o.file).size).toBe(3000);
    expect(await downloadFile(o)).toEqual({ bytes: A.length, sha256: sha(A), resumed: true });
    const second = server.requests.filter((r) => r.path === "/stall.tgz")[1];
    expect(second).toMatchObject({ range: "bytes=3000-", ifRange: expect.stringMatching(/^"/) as string });
    expect(fs.readFileSync(o.file).equals(A)).toBe(true);
  });

  it("a part of a file that changed on the server is not resumed: the download starts over", async () => {
    const url = server.serve("/changed.tgz", {
      bytes: A,
      behaviours: [{ kind: "stall", afterBytes: 2000 }, { kind: "ok" }],
    });
    const o = options(url, { idleTimeoutMs: 200, expectedSha256: sha(B) });
    expect((await failure(downloadFile(o))).code).toBe("DOWNLOAD_TIMEOUT");
    server.serve("/changed.tgz", {
      bytes: B,
      behaviours: [{ kind: "stall", afterBytes: 0 }, { kind: "ok" }],
    });
    expect(await downloadFile(o)).toEqual({ bytes: B.length, sha256: sha(B), resumed: false });
    expect(fs.readFileSync(o.file).equals(B)).toBe(true);
  });

  it.skipIf(!hasOpenssl())(
    "https: a server certificate from models.ota.download.caFile is trusted, another is refused for good",
    async () => {
      const dir = tempDir("vigil-tls-");
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=127.0.0.1",
          "-addext",
          "subjectAltName=IP:127.0.0.1",
          "-keyout",
          path.join(dir, "key.pem"),
          "-out",
          path.join(dir, "cert.pem"),
        ],
        { stdio: "ignore" },
      );
      const cert = fs.readFileSync(path.join(dir, "cert.pem"));
      const tls = https.createServer({ key: fs.readFileSync(path.join(dir, "key.pem")), cert }, (_req, res) =>
        res.end(A),
      );
      await new Promise<void>((r) => tls.listen(0, "127.0.0.1", r));
      try {
        const url = `https://127.0.0.1:${(tls.address() as AddressInfo).port}/p.tgz`;
        expect(await downloadFile(options(url, { ca: cert }))).toMatchObject({
          bytes: A.length,
          sha256: sha(A),
        });
        const untrusted = await failure(downloadFile(options(url)));
        expect([untrusted.code, untrusted.retriable]).toEqual(["DOWNLOAD_TLS", false]);
        expect(untrusted.message).toMatch(
          /cannot trust https:\/\/127\.0\.0\.1:\d+\/p\.tgz: .*self-signed certificate.*models\.ota\.download\.caFile/,
        );
      } finally {
        tls.closeAllConnections();
        await new Promise<void>((r) => tls.close(() => r()));
      }
    },
  );

  it("cancelling stops at once", async () => {
    const url = server.serve("/cancel.tgz", { bytes: A, behaviours: [{ kind: "stall", afterBytes: 100 }] });
    const abort = new AbortController();
    const p = downloadFile(options(url, { signal: abort.signal }));
    await server.waitForRequests("/cancel.tgz", 1);
    abort.abort();
    expect(await failure(p)).toMatchObject({ code: "DOWNLOAD_CANCELLED", retriable: false });
  });
});
