/**
 * Package signatures (contract §4): Ed25519 with `node:crypto`, over the exact bytes of
 * `manifest.json`. `manifest.sig` holds the base64 signature (one line); since the manifest
 * carries the SHA-256 of every other file, one signature covers the whole package.
 *
 * Contract
 * - `generateKeyPair()` returns PEM strings: the private key as PKCS#8, the public key as SPKI
 *   (the format `models.trustedKeys` names). `keyId(publicKey)` is the first 16 hex digits of
 *   the SHA-256 of the SPKI DER bytes: a short, stable name for logs and error messages.
 * - `signManifest(bytes, privateKeyPem)` returns the base64 signature.
 * - `checkSignature(bytes, sigText, keys)` never throws: it says which trusted key verified
 *   the signature, or exactly why none did (`SIGNATURE_MISSING`, `SIGNATURE_MALFORMED`,
 *   `SIGNATURE_NO_TRUSTED_KEYS`, `SIGNATURE_INVALID`). An Ed25519 signature does not name its
 *   key, so "signed with a key this gateway does not trust" and "manifest.json changed after
 *   signing" cannot be told apart cryptographically; the message says both and lists the
 *   trusted key ids, so the operator can compare with `vigil models verify --key`.
 * - `loadTrustedKeys(paths)` reads PEM public keys; a file that is missing, not PEM or not
 *   Ed25519 is reported with its path and left out (it never stops the others).
 */

import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
} from "node:crypto";
import type { KeyObject } from "node:crypto";
import fs from "node:fs";
import { PackageError, errorMessage } from "../errors.js";

export const SIGNATURE_FILE = "manifest.sig";

export interface TrustedKey {
  id: string;
  /** Where it was read from (for messages). */
  source: string;
  key: KeyObject;
}

export interface KeyLoadResult {
  keys: TrustedKey[];
  errors: { path: string; reason: string }[];
}

export type SignatureResult =
  { ok: true; keyId: string; detail: string } | { ok: false; code: string; detail: string };

export function generateKeyPair(): { privateKeyPem: string; publicKeyPem: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    keyId: keyId(publicKey),
  };
}

export function keyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(der).digest("hex").slice(0, 16);
}

/** A PEM key of the given kind, insisting on Ed25519; a PackageError naming `source` otherwise. */
function parseEd25519(pem: string | Buffer, source: string, kind: "public" | "private"): KeyObject {
  let key: KeyObject;
  try {
    key = kind === "public" ? createPublicKey(pem) : createPrivateKey(pem);
  } catch (err) {
    throw new PackageError("KEY_INVALID", `${source} is not a PEM ${kind} key: ${errorMessage(err)}`);
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new PackageError(
      "KEY_INVALID",
      `${source} is a ${key.asymmetricKeyType ?? "unknown"} key; packages are signed with Ed25519`,
    );
  }
  return key;
}

/** Parses a PEM public key (SPKI) and insists on Ed25519. */
export function parsePublicKey(pem: string | Buffer, source: string): TrustedKey {
  const key = parseEd25519(pem, source, "public");
  return { id: keyId(key), source, key };
}

/** Parses a PEM private key (PKCS#8) and insists on Ed25519. */
export function parsePrivateKey(pem: string | Buffer, source: string): KeyObject {
  return parseEd25519(pem, source, "private");
}

export function loadTrustedKeys(paths: readonly string[]): KeyLoadResult {
  const result: KeyLoadResult = { keys: [], errors: [] };
  for (const p of paths) {
    try {
      const k = parsePublicKey(fs.readFileSync(p), p);
      if (!result.keys.some((x) => x.id === k.id)) result.keys.push(k);
    } catch (err) {
      result.errors.push({ path: p, reason: errorMessage(err) });
    }
  }
  return result;
}

export function signManifest(manifestBytes: Buffer, privateKey: KeyObject): string {
  return sign(null, manifestBytes, privateKey).toString("base64");
}

const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

/** Checks `sigText` (the content of manifest.sig, or undefined when absent) against `keys`. */
export function checkSignature(
  manifestBytes: Buffer,
  sigText: string | undefined,
  keys: readonly TrustedKey[],
): SignatureResult {
  if (sigText === undefined) {
    return { ok: false, code: "SIGNATURE_MISSING", detail: `the package has no ${SIGNATURE_FILE}` };
  }
  const text = sigText.trim();
  const sig = BASE64_RE.test(text) ? Buffer.from(text, "base64") : undefined;
  if (sig?.length !== 64) {
    return {
      ok: false,
      code: "SIGNATURE_MALFORMED",
      detail: `${SIGNATURE_FILE} must hold one base64 Ed25519 signature (64 bytes), got ${
        sig ? `${sig.length} bytes` : "text that is not base64"
      }`,
    };
  }
  if (keys.length === 0) {
    return {
      ok: false,
      code: "SIGNATURE_NO_TRUSTED_KEYS",
      detail: "no trusted keys are configured (models.trustedKeys), so no signature can be accepted",
    };
  }
  for (const k of keys) {
    if (verify(null, manifestBytes, k.key, sig)) {
      return { ok: true, keyId: k.id, detail: `signed by trusted key ${k.id} (${k.source})` };
    }
  }
  return {
    ok: false,
    code: "SIGNATURE_INVALID",
    detail: `${SIGNATURE_FILE} does not verify with any of the ${keys.length} trusted key(s) (${keys
      .map((k) => k.id)
      .join(
        ", ",
      )}): the package was signed with a key this gateway does not trust, or manifest.json was changed after signing`,
  };
}
