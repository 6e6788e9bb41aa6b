/**
 * `vigil status` against a real running gateway (embedded broker and API on free ports): the
 * readable summary, `--json`, exit 3 when not ready, exit 1 when unreachable or refused, a token
 * from `--token` or from `--config`. Runs the CLI as a child process from the sources.
 */

import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StatusView } from "../../src/api/status-view.js";
import { runCli } from "../support/cli.js";
import {
  Collector,
  modelsDir,
  startGateway,
  tempDir,
  testConfig,
  type RunningGateway,
  apiUrl,
} from "../support/harness.js";

describe("vigil status", () => {
  let ready: RunningGateway;
  let notReady: RunningGateway;
  const token = "status-token";

  beforeAll(async () => {
    ready = await startGateway(
      testConfig({ "models.dir": modelsDir(["count-ntc-zscore"]), "http.token": token }),
    );
    const c = await Collector.connect(ready.brokerUrl, ["vigil/gw-test/status"]);
    await c.waitForCount("vigil/gw-test/status", 1);
    await c.close();
    notReady = await startGateway(testConfig({ "models.dir": tempDir("vigil-no-models-") }));
  });

  afterAll(async () => {
    await ready?.stop();
    await notReady?.stop();
  });

  it("prints a readable summary and exits 0 when ready", async () => {
    const r = await runCli(["status", "--url", apiUrl(ready), "--token", token]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split("\n")[0]).toMatch(/^vigil \S+ · gateway gw-test on .+ · READY$/);
    // The provider, and the thread with the figures it was chosen on (src/inference/placement.ts).
    expect(r.stdout).toMatch(
      /^models {4}count-ntc-zscore 1\.0\.0 serving on \S+, (main thread|worker pool) \(\S+ ms\/batch of \d+ [<≥] 0\.250 ms\)$/m,
    );
    expect(r.stdout).toMatch(/^broker {4}connected/m);
    expect(r.stdout).toContain("alerts    none active");
    expect(r.stdout).toContain("data loss none");
  });

  it("--json, with the address and token read from --config", async () => {
    const a = ready.gateway.apiAddress();
    const file = path.join(tempDir(), "vigil.json");
    fs.writeFileSync(file, JSON.stringify({ http: { host: "127.0.0.1", port: a?.port, token } }));
    const r = await runCli(["status", "--config", file, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as StatusView).gatewayId).toBe("gw-test");
  });

  it("exits 3 with the reasons when the agent runs but is not ready", async () => {
    const r = await runCli(["status", "--url", apiUrl(notReady)]);
    expect(r.code).toBe(3);
    expect(r.stdout.split("\n")[0]).toMatch(/NOT READY \(no model is serving\)$/);
  });

  it("exits 1 with one line when refused (no token) or unreachable", async () => {
    const refused = await runCli(["status", "--url", apiUrl(ready)]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);
    expect(refused.stderr).toMatch(/wants a bearer token/);

    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const down = await runCli(["status", "--url", `http://127.0.0.1:${port}`, "--timeout", "2000"]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^vigil status: cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
  });

  it("--help explains options and exit codes; a bad option is a usage error", async () => {
    const help = await runCli(["status", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain(
      "Exit codes: 0 ready, 1 unreachable or failed, 2 usage, 3 running but not ready.",
    );
    const bad = await runCli(["status", "--url", "not a url"]);
    expect(bad.code).toBe(2);
  });
});
