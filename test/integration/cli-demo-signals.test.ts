/**
 * `vigil demo` and the operator's signals, as a user sends them to the process: SIGUSR2 toggles
 * debug logging as `vigil run` does, SIGHUP is logged as ignored (with the reason) instead of
 * killing the demo on SIGHUP's default action, and SIGINT still stops it cleanly (exit 0).
 * A real child process on its own config (embedded broker and API on OS-chosen ports, data in a
 * temp dir, the shipped models); waits are on its JSON log lines, never on sleeps.
 */

import fs from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { spawnCli, type CliProcess } from "../support/cli.js";
import { tempDir } from "../support/harness.js";

const procs: CliProcess[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) await p.kill();
});

describe("vigil demo signals", () => {
  it("SIGUSR2 toggles debug logging, SIGHUP is logged and ignored, SIGINT stops cleanly", async () => {
    const dir = tempDir("vigil-demo-sig-");
    const file = path.join(dir, "demo.json");
    fs.writeFileSync(
      file,
      JSON.stringify({
        gatewayId: "demo-sig",
        dataDir: path.join(dir, "data"),
        log: { level: "info", format: "json" },
        mqtt: { embeddedBroker: { enabled: true, port: 0 } },
        http: { port: 0 },
      }),
    );
    const proc = spawnCli(["demo", "--config", file, "--machines", "1", "--engines", "1"]);
    procs.push(proc);
    await proc.waitForLog("gateway started", 30_000);

    proc.child.kill("SIGUSR2");
    const debug = await proc.waitForLog("log level now debug (SIGUSR2 again toggles back)");
    expect(debug).toMatchObject({ level: "debug", via: "SIGUSR2" });
    proc.child.kill("SIGUSR2");
    await proc.waitForLog("log level now info (SIGUSR2 again toggles back)");

    proc.child.kill("SIGHUP");
    // Before, SIGHUP's default action ended the demo: waitForLog rejects if it exits first.
    const hup = await proc.waitForLog(
      "SIGHUP ignored: the demo does not reload its configuration (it is built from the defaults, --config and the command line, and may have moved to free ports); restart the demo to change it, or use vigil run --config FILE",
    );
    expect(hup).toMatchObject({ level: 40, signal: "SIGHUP" });

    proc.child.kill("SIGINT");
    const exit = await proc.waitForExit(30_000);
    expect(exit, proc.stderr).toEqual({ code: 0, signal: null });
    expect(proc.logs.some((l) => typeof l.msg === "string" && l.msg.startsWith("demo stopped:"))).toBe(true);
  });
});
