/**
 * `vigil models keygen | sign | verify | pack | install` (CONTRACT §1, §4) as a user runs them:
 * a child process per command, exit codes, what each prints, and the one-line reason on
 * failure. The round trip: a key pair, a signed package, a `.tgz` whose printed SHA-256 and
 * size are right, `verify` passing with the public key and explaining each failure (wrong
 * key, tampered file, hostile archive), `install` into a data folder that a gateway then
 * serves from, and `install` refused while a gateway runs on that folder.
 */

import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";
import { FIXTURES, modelsDir, startGateway, tempDir, testConfig } from "../support/harness.js";
import { keygen as makeKeyPair } from "../../src/tools/models.js";
import { BASE, buildPackage, craftTgz, entriesOf, makeKeys } from "../support/ota.js";

function copyFixture(version: string): string {
  const dir = path.join(tempDir("vigil-cli-pkg-"), `pkg-${version}`);
  fs.cpSync(path.join(FIXTURES, BASE), dir, { recursive: true });
  const file = path.join(dir, "manifest.json");
  fs.writeFileSync(
    file,
    fs.readFileSync(file, "utf8").replace('"version": "1.0.0"', `"version": "${version}"`),
  );
  return dir;
}

describe("vigil models", () => {
  it("keygen, sign, pack, verify: a round trip; verify explains each failure", async () => {
    const keyDir = tempDir("vigil-cli-keys-");
    const keygen = await runCli(["models", "keygen", "--out", keyDir]);
    expect(keygen.code).toBe(0);
    expect(keygen.stdout).toMatch(/key id\s+[0-9a-f]{16}/);
    const keyId = /key id\s+([0-9a-f]{16})/.exec(keygen.stdout)?.[1];
    expect(fs.statSync(path.join(keyDir, "vigil-signing.key")).mode & 0o777).toBe(0o600);
    expect(() => makeKeyPair(keyDir)).toThrow(/vigil-signing\.key exists; not overwriting a key/);

    const dir = copyFixture("1.1.0");
    const sign = await runCli(["models", "sign", dir, "--key", path.join(keyDir, "vigil-signing.key")]);
    expect(sign.code).toBe(0);
    expect(sign.stdout).toContain(`with key ${keyId}`);
    expect(fs.readFileSync(path.join(dir, "manifest.sig"), "utf8")).toMatch(/^[A-Za-z0-9+/]{86}==\n$/);

    const tgz = path.join(tempDir(), "pkg.tgz");
    const pack = await runCli(["models", "pack", dir, "--out", tgz]);
    expect(pack.code).toBe(0);
    const bytes = fs.readFileSync(tgz);
    expect(pack.stdout).toContain(`sha256 ${createHash("sha256").update(bytes).digest("hex")}`);
    expect(pack.stdout).toContain(`size   ${bytes.length}`);

    const ok = await runCli(["models", "verify", tgz, "--key", path.join(keyDir, "vigil-signing.pub")]);
    expect(ok.code).toBe(0);
    for (const step of ["archive", "signature", "manifest", "files", "onnx", "tensors", "selfTest"]) {
      expect(ok.stdout).toMatch(new RegExp(`^ok\\s+${step}\\s`, "m"));
    }
    expect(ok.stdout).toContain("package valid");

    // A stranger's key, a tampered model file and an unlisted file: each named, all at once.
    const stranger = makeKeys();
    fs.appendFileSync(path.join(dir, "model.onnx"), Buffer.from([0]));
    fs.writeFileSync(path.join(dir, "notes.txt"), "unsigned");
    const bad = await runCli(["models", "verify", dir, "--key", stranger.pubFile]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(
      /^FAIL signature manifest\.sig does not verify with any of the 1 trusted key\(s\) \([0-9a-f]{16}\)/m,
    );
    expect(bad.stdout).toMatch(/^ok\s+manifest\s+count-ntc-zscore@1\.1\.0/m);
    expect(bad.stdout).toMatch(
      /^FAIL files\s+model\.onnx: SHA-256 is [0-9a-f]{64}, the manifest says [0-9a-f]{64}/m,
    );
    expect(bad.stdout).toMatch(/notes\.txt: not listed in the manifest's files, so no signature covers it/);
    expect(bad.stdout).toContain("package NOT valid");
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toMatch(/^vigil models verify: signature: manifest\.sig does not verify/);

    const hostile = path.join(tempDir(), "hostile.tgz");
    fs.writeFileSync(
      hostile,
      craftTgz([...entriesOf(dir), { path: "../../escape", type: "File", data: Buffer.from("x") }]),
    );
    const refused = await runCli(["models", "verify", hostile, "--key", stranger.pubFile]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(
      /^FAIL archive\s+archive entry "\.\.\/\.\.\/escape" contains a \.\. segment; package refused \[ARCHIVE_UNSAFE_PATH\]/m,
    );
  }, 60_000); // a dozen CLI processes in sequence: 6–9 s idle, over 20 s on a loaded 2-core machine

  it("install: the OTA checks offline, active at the next start; refused while a gateway runs there", async () => {
    const keys = makeKeys();
    const dataDir = tempDir();
    const shipped = modelsDir([BASE]);
    const cfgFile = path.join(tempDir(), "vigil.json");
    fs.writeFileSync(
      cfgFile,
      JSON.stringify({
        dataDir,
        models: { dir: shipped, trustedKeys: [keys.pubFile] },
        log: { level: "silent" },
      }),
    );
    const { tgz } = await buildPackage({ version: "1.2.0", sign: keys });

    const install = await runCli(["models", "install", tgz, "--config", cfgFile]);
    expect(install.stderr).toBe("");
    expect(install.code).toBe(0);
    expect(install.stdout).toMatch(/^ok\s+selfTest\s+2 case\(s\) reproduced/m);
    expect(install.stdout).toMatch(
      /installed count-ntc-zscore@1\.2\.0 in .*count-ntc-zscore\/1\.2\.0; it serves from the next start/,
    );
    const duplicate = await runCli(["models", "install", tgz, "--config", cfgFile]);
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toMatch(
      /^vigil models install: policy: count-ntc-zscore@1\.2\.0 is already the active version \[OTA_DUPLICATE\]/,
    );

    const running = await startGateway(
      testConfig({ dataDir, "models.dir": shipped, "models.trustedKeys": [keys.pubFile] }),
    );
    try {
      const served = running.gateway.status().models?.find((m) => m.state === "serving");
      expect(served?.version).toBe("1.2.0");
      const busy = await runCli(["models", "install", tgz, "--config", cfgFile]);
      expect(busy.code).toBe(1);
      expect(busy.stderr).toMatch(
        /a gateway \(pid \d+\) runs on .*; deploy over MQTT \(request\/models\/deploy\) or stop it first/,
      );
    } finally {
      await running.stop();
    }
  });
});
