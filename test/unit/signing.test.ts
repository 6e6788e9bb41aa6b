/**
 * Package signatures (src/models/signing.ts): Ed25519 over the exact bytes of manifest.json,
 * with a reason for every way a signature can fail, and trusted keys read from PEM files
 * (a bad file is reported, never fatal).
 */

import { generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  checkSignature,
  generateKeyPair,
  loadTrustedKeys,
  parsePrivateKey,
  parsePublicKey,
  signManifest,
} from "../../src/models/signing.js";
import { tempDir } from "../support/harness.js";

const MANIFEST = Buffer.from('{"name":"m","version":"1.0.0"}\n');

describe("signatures", () => {
  const pair = generateKeyPair();
  const trusted = parsePublicKey(pair.publicKeyPem, "k.pub");
  const sig = signManifest(MANIFEST, parsePrivateKey(pair.privateKeyPem, "k.key"));

  it("verify with the trusted key that made them, over the exact bytes", () => {
    expect(trusted.id).toBe(pair.keyId);
    expect(checkSignature(MANIFEST, `${sig}\n`, [trusted])).toEqual({
      ok: true,
      keyId: pair.keyId,
      detail: `signed by trusted key ${pair.keyId} (k.pub)`,
    });
    const changed = Buffer.from(MANIFEST.toString().replace("1.0.0", "1.0.1"));
    expect(checkSignature(changed, sig, [trusted])).toMatchObject({ ok: false, code: "SIGNATURE_INVALID" });
    // One more space is other bytes: the signature covers bytes, not JSON meaning.
    expect(checkSignature(Buffer.concat([MANIFEST, Buffer.from(" ")]), sig, [trusted])).toMatchObject({
      ok: false,
    });
  });

  it("say why they fail: missing, malformed, no trusted keys, another key", () => {
    expect(checkSignature(MANIFEST, undefined, [trusted])).toMatchObject({ code: "SIGNATURE_MISSING" });
    expect(checkSignature(MANIFEST, "not base64!", [trusted])).toMatchObject({
      code: "SIGNATURE_MALFORMED",
      detail: "manifest.sig must hold one base64 Ed25519 signature (64 bytes), got text that is not base64",
    });
    expect(checkSignature(MANIFEST, Buffer.alloc(32).toString("base64"), [trusted])).toMatchObject({
      code: "SIGNATURE_MALFORMED",
      detail: expect.stringContaining("got 32 bytes") as string,
    });
    expect(checkSignature(MANIFEST, sig, [])).toMatchObject({ code: "SIGNATURE_NO_TRUSTED_KEYS" });
    const other = parsePublicKey(generateKeyPair().publicKeyPem, "other.pub");
    expect(checkSignature(MANIFEST, sig, [other])).toEqual({
      ok: false,
      code: "SIGNATURE_INVALID",
      detail: `manifest.sig does not verify with any of the 1 trusted key(s) (${other.id}): the package was signed with a key this gateway does not trust, or manifest.json was changed after signing`,
    });
    expect(checkSignature(MANIFEST, sig, [other, trusted])).toMatchObject({ ok: true, keyId: trusted.id });
  });

  it("trusted keys: Ed25519 PEM only; a bad file is reported and left out", () => {
    const dir = tempDir();
    const good = path.join(dir, "good.pub");
    fs.writeFileSync(good, pair.publicKeyPem);
    const rsa = path.join(dir, "rsa.pub");
    fs.writeFileSync(
      rsa,
      generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ type: "spki", format: "pem" }),
    );
    const junk = path.join(dir, "junk.pub");
    fs.writeFileSync(junk, "hello");
    const result = loadTrustedKeys([good, rsa, junk, path.join(dir, "missing.pub"), good]);
    expect(result.keys.map((k) => k.id)).toEqual([pair.keyId]);
    expect(result.errors.map((e) => [path.basename(e.path), e.reason.split(":")[0]])).toEqual([
      ["rsa.pub", `${rsa} is a rsa key; packages are signed with Ed25519`],
      ["junk.pub", `${junk} is not a PEM public key`],
      ["missing.pub", "ENOENT"],
    ]);
  });
});
