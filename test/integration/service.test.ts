/**
 * `vigil run` as systemd runs it: a real child process with NOTIFY_SOCKET pointing at a unix
 * datagram socket (test/support/notify_socket.py stands in for PID 1) and WATCHDOG_USEC set.
 * The agent's notifications go through the real `systemd-notify`. Checks READY=1 once the API
 * serves, WATCHDOG=1 at half the interval, STATUS= lines, SIGUSR2 and SIGHUP (with RELOADING=1
 * then READY=1), a refused reload, STOPPING=1 and exit 0 on SIGTERM. Skips, saying so, when
 * python3 or systemd-notify is missing. Waits are on events, never on sleeps.
 */

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { spawnCli } from "../support/cli.js";
import { modelsDir, tempDir } from "../support/harness.js";

const RECEIVER = path.resolve(import.meta.dirname, "../support/notify_socket.py");

function has(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: "ignore" }).status === 0;
}
const missing = [
  has("python3", ["--version"]) ? "" : "python3",
  has("systemd-notify", ["--version"]) ? "" : "systemd-notify",
].filter((m) => m !== "");
if (missing.length > 0) {
  console.warn(
    `SKIPPED service.test.ts: ${missing.join(" and ")} not found (apt-get install systemd python3)`,
  );
}

interface Notification {
  fields: Record<string, string>;
}

/** The fake notification socket: collects datagrams and lets a test wait for some. */
class NotifySocket {
  readonly messages: Notification[] = [];
  private waiters: { check: () => boolean; resolve: () => void }[] = [];
  private constructor(
    readonly path: string,
    private readonly child: ChildProcess,
  ) {}

  static async start(dir: string): Promise<NotifySocket> {
    const socketPath = path.join(dir, "notify.sock");
    const child = spawn("python3", [RECEIVER, socketPath], { stdio: ["ignore", "pipe", "inherit"] });
    const s = new NotifySocket(socketPath, child);
    await new Promise<void>((resolve, reject) => {
      child.once("error", reject);
      readline.createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
        if (line === "listening") return resolve();
        s.messages.push(JSON.parse(line) as Notification);
        s.waiters = s.waiters.filter((w) => {
          if (!w.check()) return true;
          w.resolve();
          return false;
        });
      });
    });
    return s;
  }

  /** Resolves with the index of the first message at or after `from` that has `key=value`. */
  waitFor(key: string, value: string | RegExp, from = 0, timeoutMs = 10_000): Promise<number> {
    const find = (): number =>
      this.messages.findIndex((m, i) => {
        const v = m.fields[key];
        return i >= from && v !== undefined && (typeof value === "string" ? v === value : value.test(v));
      });
    return new Promise((resolve, reject) => {
      if (find() >= 0) return resolve(find());
      const timer = setTimeout(
        () =>
          reject(
            new Error(`no ${key}=${String(value)} after ${timeoutMs} ms: ${JSON.stringify(this.messages)}`),
          ),
        timeoutMs,
      );
      this.waiters.push({
        check: () => find() >= 0,
        resolve: () => {
          clearTimeout(timer);
          resolve(find());
        },
      });
    });
  }

  count(key: string, value: string): number {
    return this.messages.filter((m) => m.fields[key] === value).length;
  }

  stop(): void {
    this.child.kill("SIGTERM");
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function writeConfig(file: string, dir: string, extra: Record<string, unknown> = {}): void {
  const config = {
    gatewayId: "gw-svc",
    dataDir: path.join(dir, "data"),
    log: { level: "info", format: "json" },
    mqtt: { embeddedBroker: { enabled: true, port: 0 }, reconnect: { minDelayMs: 50, maxDelayMs: 200 } },
    http: { port: 0 },
    models: { dir: path.join(dir, "models") },
    ...extra,
  };
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
}

describe.skipIf(missing.length > 0)("vigil run under a systemd notification socket", () => {
  it("READY after serving, WATCHDOG at half the interval, STATUS, SIGUSR2, SIGHUP reload, STOPPING", async () => {
    const dir = tempDir("vigil-svc-");
    modelsDir(["count-ntc-zscore"], path.join(dir, "models"));
    const file = path.join(dir, "vigil.json");
    writeConfig(file, dir);
    const sock = await NotifySocket.start(dir);
    cleanups.push(() => sock.stop());

    const proc = spawnCli(["run", "--config", file], {
      env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: "400000" },
    });
    cleanups.push(() => proc.kill());

    const ready = await sock.waitFor("READY", "1", 0, 15_000);
    expect(sock.messages[ready]?.fields.STATUS).toMatch(/^(ready|not ready): /);
    // READY=1 comes after the API listens: it answers now.
    const started = await proc.waitForLog("gateway started");
    expect(started.gatewayId).toBe("gw-svc");
    const api = proc.logs.find((l) => typeof l.msg === "string" && l.msg.startsWith("local API"));
    const url = `http://127.0.0.1:${String(api?.port)}`;
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    // Messages before READY: the "starting" status.
    expect(sock.messages.slice(0, ready).some((m) => m.fields.STATUS?.startsWith("starting"))).toBe(true);

    // WATCHDOG_USEC 400 ms: a ping every 200 ms; three of them arrive.
    const firstPing = await sock.waitFor("WATCHDOG", "1", ready);
    await sock.waitFor("WATCHDOG", "1", firstPing + 1);
    const third = await sock.waitFor("WATCHDOG", "1", firstPing + 2);
    expect(third).toBeGreaterThan(firstPing);
    expect(proc.logs.find((l) => l.msg === "feeding the systemd watchdog")?.everyMs).toBe(200);

    // SIGUSR2: debug, and back.
    proc.child.kill("SIGUSR2");
    await proc.waitForLog("log level now debug (SIGUSR2 again toggles back)");
    expect(((await (await fetch(`${url}/api/status`)).json()) as { logLevel: string }).logLevel).toBe(
      "debug",
    );
    proc.child.kill("SIGUSR2");
    await proc.waitForLog("log level now info (SIGUSR2 again toggles back)");

    // SIGHUP with a changed file: reloadable keys applied, the others named.
    writeConfig(file, dir, {
      log: { level: "warn", format: "json" },
      outputs: { statusIntervalMs: 5_000 },
      mqtt: {
        keepaliveS: 10,
        embeddedBroker: { enabled: true, port: 0 },
        reconnect: { minDelayMs: 50, maxDelayMs: 200 },
      },
    });
    const beforeReload = sock.messages.length;
    proc.child.kill("SIGHUP");
    const reloaded = await proc.waitForLog(
      "configuration reloaded; 1 changed key(s) take effect after a restart",
    );
    expect(reloaded.applied).toEqual(["log.level", "outputs.statusIntervalMs"]);
    expect(reloaded.restartNeeded).toEqual(["mqtt.keepaliveS"]);
    const reloading = await sock.waitFor("RELOADING", "1", beforeReload);
    expect(sock.messages[reloading]?.fields.MONOTONIC_USEC).toMatch(/^\d+$/);
    await sock.waitFor("READY", "1", reloading + 1);
    expect(((await (await fetch(`${url}/api/status`)).json()) as { logLevel: string }).logLevel).toBe("warn");

    // SIGHUP with a broken file: refused, every problem logged, nothing changes.
    fs.writeFileSync(file, JSON.stringify({ gatewayId: "bad id!", http: { port: "eighty" } }));
    proc.child.kill("SIGHUP");
    const refused = await proc.waitForLog(
      "reload refused: the configuration file is invalid; nothing changed",
    );
    expect((refused.issues as { key: string }[]).map((i) => i.key).sort()).toEqual([
      "gatewayId",
      "http.port",
    ]);
    expect(((await (await fetch(`${url}/api/status`)).json()) as { logLevel: string }).logLevel).toBe("warn");

    // SIGTERM: STOPPING=1, then a clean exit.
    const beforeStop = sock.messages.length;
    proc.child.kill("SIGTERM");
    const exit = await proc.waitForExit(10_000);
    expect(exit, proc.stderr).toEqual({ code: 0, signal: null });
    await sock.waitFor("STOPPING", "1", beforeStop);
    expect(proc.otherLines).toEqual([]);
  });

  it("without NOTIFY_SOCKET no watchdog runs, and the agent still starts and stops cleanly", async () => {
    const dir = tempDir("vigil-svc-");
    modelsDir(["count-ntc-zscore"], path.join(dir, "models"));
    const file = path.join(dir, "vigil.json");
    writeConfig(file, dir);
    const proc = spawnCli(["run", "--config", file], { env: { WATCHDOG_USEC: "400000" } });
    cleanups.push(() => proc.kill());
    await proc.waitForLog("gateway started");
    proc.child.kill("SIGTERM");
    expect((await proc.waitForExit(10_000)).code).toBe(0);
    expect(proc.logs.some((l) => l.msg === "feeding the systemd watchdog")).toBe(false);
    expect(proc.logs.some((l) => l.msg === "sd_notify failed")).toBe(false);
  });
});
