/**
 * The systemd unit passes `systemd-analyze verify` (no error, no warning), asks for what the
 * issue lists, and `systemd/install.sh --root DIR` stages a complete install that verifies too.
 * Skips, saying so, where systemd-analyze is absent (.ci/run installs systemd).
 */

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/cli.js";
import { tempDir } from "../support/harness.js";

const UNIT = path.join(REPO_ROOT, "systemd", "vigil.service");
const hasAnalyze = spawnSync("systemd-analyze", ["--version"], { stdio: "ignore" }).status === 0;
const hasBuild = fs.existsSync(path.join(REPO_ROOT, "dist", "cli.js"));
if (!hasBuild) console.warn("SKIPPED install.sh staging: no build in dist/ (npm run build)");
if (!hasAnalyze)
  console.warn("SKIPPED systemd-analyze verify: systemd-analyze not found (apt-get install systemd)");

function verify(file: string): { status: number | null; output: string } {
  const r = spawnSync("systemd-analyze", ["verify", file], { encoding: "utf8" });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/** Every `Key=value` of a unit, by key (repeated keys keep every value). */
function unitKeys(text: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) keys.set(m[1] as string, [...(keys.get(m[1] as string) ?? []), m[2] as string]);
  }
  return keys;
}

describe("systemd/vigil.service", () => {
  it.skipIf(!hasAnalyze)("passes systemd-analyze verify without errors or warnings", () => {
    const r = verify(UNIT);
    expect(r.output).toBe("");
    expect(r.status).toBe(0);
  });

  it("is Type=notify with a watchdog, restarts on failure, runs as its own user, and is hardened", () => {
    const k = unitKeys(fs.readFileSync(UNIT, "utf8"));
    const one = (key: string): string | undefined => k.get(key)?.[0];
    expect(one("Type")).toBe("notify");
    expect(one("NotifyAccess")).toBe("all");
    expect(one("WatchdogSec")).toBe("30s");
    expect(one("Restart")).toBe("on-failure");
    expect(one("User")).toBe("vigil");
    expect(one("StateDirectory")).toBe("vigil");
    expect(one("ConfigurationDirectory")).toBe("vigil");
    expect(one("ProtectSystem")).toBe("strict");
    expect(one("NoNewPrivileges")).toBe("yes");
    expect(one("PrivateTmp")).toBe("yes");
    expect(one("CapabilityBoundingSet")).toBe("");
    expect(k.get("SystemCallFilter")).toContain("@system-service");
    // still reaches the broker (IP), the disk (StateDirectory) and accelerators (device nodes)
    expect(one("RestrictAddressFamilies")).toContain("AF_INET");
    expect(one("PrivateDevices")).toBeUndefined();
    expect(k.get("DeviceAllow")).toEqual(expect.arrayContaining(["char-nvidia-frontend rw", "char-drm rw"]));
    expect(one("MemoryDenyWriteExecute")).toBeUndefined(); // V8 needs W+X pages
    // the agent's own stop budget (service.stopTimeoutMs, 25 s) fits in the unit's
    expect(one("TimeoutStopSec")).toBe("30s");
    expect(one("ExecReload")).toBe("/bin/kill -HUP $MAINPID");
  });

  it.skipIf(!hasBuild)(
    "install.sh --root stages the agent, a first config and the unit; the staged unit verifies",
    () => {
      const root = tempDir("vigil-install-");
      const r = spawnSync(
        "bash",
        [path.join(REPO_ROOT, "systemd", "install.sh"), "--root", root, "--no-npm"],
        {
          encoding: "utf8",
        },
      );
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
      expect(fs.existsSync(path.join(root, "opt/vigil/dist/cli.js"))).toBe(true);
      expect(fs.existsSync(path.join(root, "opt/vigil/models/pump-health/1.0.0/manifest.json"))).toBe(true);
      expect(fs.readFileSync(path.join(root, "etc/vigil/config.json"), "utf8")).toBe(
        fs.readFileSync(path.join(REPO_ROOT, "config/default.json"), "utf8"),
      );
      const staged = path.join(root, "etc/systemd/system/vigil.service");
      expect(fs.readFileSync(staged, "utf8")).toBe(fs.readFileSync(UNIT, "utf8"));
      if (hasAnalyze) expect(verify(staged)).toEqual({ status: 0, output: "" });
      // Running it again keeps an edited config.
      fs.writeFileSync(path.join(root, "etc/vigil/config.json"), '{"gatewayId": "edited"}\n');
      const again = spawnSync(
        "bash",
        [path.join(REPO_ROOT, "systemd", "install.sh"), "--root", root, "--no-npm"],
        {
          encoding: "utf8",
        },
      );
      expect(again.status, again.stderr).toBe(0);
      expect(again.stdout).toContain("keeping the existing");
      expect(fs.readFileSync(path.join(root, "etc/vigil/config.json"), "utf8")).toBe(
        '{"gatewayId": "edited"}\n',
      );
    },
  );

  it("install.sh refuses unknown options with exit 2 and documents itself", () => {
    const bad = spawnSync("bash", [path.join(REPO_ROOT, "systemd", "install.sh"), "--bogus"], {
      encoding: "utf8",
    });
    expect(bad.status).toBe(2);
    const help = spawnSync("bash", [path.join(REPO_ROOT, "systemd", "install.sh"), "--help"], {
      encoding: "utf8",
    });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("--no-start");
  });
});
