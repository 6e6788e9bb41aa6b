/**
 * Shutdown of the real daemon (`vigil run` as a child process) against an external aedes
 * broker on a free port: SIGTERM drains, publishes the retained `offline` status and exits 0
 * with everything seen by subscribers committed to SQLite; SIGKILL leaves the MQTT will to say
 * `offline`; a second SIGINT exits at once with 130. Waits are on events (a log line, an MQTT
 * message, the process exit), never on sleeps.
 */

import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { Aedes } from "aedes";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { spawnCli, type CliProcess } from "../support/cli.js";
import { Collector, modelsDir, tempDir, type Message } from "../support/harness.js";

const GW = "gw-shutdown";
const STATUS = `vigil/${GW}/status`;
const PREDICTIONS = `vigil/${GW}/predictions/`;

interface ExternalBroker {
  url: string;
  close(): Promise<void>;
}

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return (server.address() as net.AddressInfo).port;
}

/** A plain aedes broker on 127.0.0.1, port 0 (no credentials: loopback test broker). */
async function externalBroker(): Promise<ExternalBroker> {
  const broker = await Aedes.createBroker();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    broker.handle(socket);
  });
  const port = await listen(server);
  const b: ExternalBroker = {
    url: `mqtt://127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  cleanups.push(() => b.close());
  return b;
}

/**
 * A TCP relay in front of a broker that can be frozen: once frozen, nothing the gateway sends
 * reaches the broker any more (so its UNSUBSCRIBE is never acknowledged and a graceful
 * shutdown cannot finish on its own).
 */
async function freezableRelay(target: string): Promise<{ url: string; freeze(): void }> {
  const { port: targetPort } = new URL(target);
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((down) => {
    const up = net.connect(Number(targetPort), "127.0.0.1");
    sockets.add(down).add(up);
    down.on("data", (d) => {
      if (!frozen) up.write(d);
    });
    up.pipe(down);
    const end = (): void => {
      down.destroy();
      up.destroy();
    };
    down.on("close", end).on("error", end);
    up.on("close", end).on("error", end);
  });
  const port = await listen(server);
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    url: `mqtt://127.0.0.1:${port}`,
    freeze: () => {
      frozen = true;
    },
  };
}

/** Writes a config file for `vigil run` and starts it; resolves once it logged "gateway started". */
async function startDaemon(
  mqttUrl: string,
  extra: Record<string, unknown> = {},
): Promise<{ proc: CliProcess; dataDir: string }> {
  const dir = tempDir("vigil-shutdown-");
  const dataDir = path.join(dir, "data");
  const config = {
    gatewayId: GW,
    dataDir,
    log: { level: "info", format: "json" },
    mqtt: {
      url: mqttUrl,
      reconnect: { minDelayMs: 50, maxDelayMs: 200 },
      embeddedBroker: { enabled: false },
    },
    http: { port: 0 },
    models: { dir: modelsDir(["count-ntc-zscore"], path.join(dir, "models")) },
    ingest: { maxReadingsPerSecond: 0, maxReadingsPerSecondPerAsset: 0 },
    ...extra,
  };
  const file = path.join(dir, "vigil.json");
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  const proc = spawnCli(["run", "--config", file]);
  cleanups.push(() => proc.kill());
  const started = await proc.waitForLog("gateway started", 15_000);
  expect(started.gatewayId).toBe(GW);
  expect(proc.otherLines, "stdout must be JSON lines with log.format json").toEqual([]);
  return { proc, dataDir };
}

function stateOf(m: Message): string | undefined {
  return m.json<{ state?: string }>().state;
}

async function subscriber(url: string): Promise<Collector> {
  const c = await Collector.connect(url, [STATUS, `${PREDICTIONS}#`]);
  cleanups.push(() => c.close());
  return c;
}

function waitForStatus(c: Collector, state: "online" | "offline", timeoutMs = 10_000): Promise<void> {
  return c.waitFor(
    (ms) => {
      const last = ms.filter((m) => m.topic === STATUS).at(-1);
      return last !== undefined && stateOf(last) === state;
    },
    timeoutMs,
    `status ${state}`,
  );
}

/** What a subscriber arriving now gets as the retained status. */
async function retainedStatus(url: string): Promise<Message> {
  const c = await Collector.connect(url, [STATUS]);
  try {
    await c.waitForCount(STATUS, 1, 5_000);
    const m = c.on(STATUS)[0] as Message;
    expect(m.retain).toBe(true);
    return m;
  } finally {
    await c.close();
  }
}

interface RecordRow {
  seq: number;
  id: string;
  kind: string;
  asset: string | null;
  ts_ms: number;
  created_ms: number;
  data: string;
}

describe("vigil run: shutdown", () => {
  it("SIGTERM: exits 0 promptly, retained status becomes offline, every prediction seen is in SQLite", async () => {
    const broker = await externalBroker();
    const sub = await subscriber(broker.url);
    const { proc, dataDir } = await startDaemon(broker.url);
    await waitForStatus(sub, "online");

    // 9 complete rows: count windows (size 5, hop 2) end at rows 5, 7 and 9.
    const t0 = Date.UTC(2026, 0, 1);
    for (let i = 0; i < 9; i++) {
      await sub.publish("plant/pump-1/row", {
        ts: t0 + i * 1000,
        values: { s1: 100 + i, s2: 20 - i, s3: 5 },
      });
    }
    await sub.waitForCount(PREDICTIONS, 3);

    const sentAt = Date.now();
    proc.child.kill("SIGTERM");
    const exit = await proc.waitForExit(8_000);
    expect(exit, proc.stderr).toEqual({ code: 0, signal: null });
    expect(Date.now() - sentAt).toBeLessThan(5_000);
    expect(proc.logs.some((l) => l.msg === "gateway stopped")).toBe(true);

    await waitForStatus(sub, "offline");
    const retained = await retainedStatus(broker.url);
    expect(retained.json()).toMatchObject({ state: "offline", gatewayId: GW });

    const seen = sub.on(PREDICTIONS).map((m) => m.json<{ id: string; seq: number; asset: string }>());
    expect(seen).toHaveLength(3);
    const db = new Database(path.join(dataDir, "vigil.db"), { readonly: true, fileMustExist: true });
    try {
      const rows = db
        .prepare(
          "SELECT seq, id, kind, asset, ts_ms, created_ms, data FROM records WHERE kind = 'prediction'",
        )
        .all() as RecordRow[];
      const byId = new Map(rows.map((r) => [r.id, r]));
      for (const p of seen) {
        const row = byId.get(p.id);
        expect(row, `prediction ${p.id} seen by a subscriber is not in the store`).toBeDefined();
        expect(row?.seq).toBe(p.seq);
        expect(row?.asset).toBe(p.asset);
        expect(JSON.parse(row?.data ?? "{}")).toMatchObject({ asset: p.asset, gatewayId: GW });
      }
    } finally {
      db.close();
    }
  });

  it("SIGKILL: the broker delivers the MQTT will, a retained offline status", async () => {
    const broker = await externalBroker();
    const sub = await subscriber(broker.url);
    const { proc } = await startDaemon(broker.url);
    await waitForStatus(sub, "online");
    const online = await retainedStatus(broker.url);
    expect(online.json()).toMatchObject({ state: "online", gatewayId: GW });

    proc.child.kill("SIGKILL");
    const exit = await proc.waitForExit(5_000);
    expect(exit.signal).toBe("SIGKILL");

    await waitForStatus(sub, "offline");
    const retained = await retainedStatus(broker.url);
    expect(retained.json()).toMatchObject({ state: "offline" });
  });

  it("two SIGINTs in a row: the second exits at once with 130", async () => {
    const broker = await externalBroker();
    const relay = await freezableRelay(broker.url);
    const sub = await subscriber(broker.url);
    const { proc } = await startDaemon(relay.url);
    await waitForStatus(sub, "online");

    // The broker stops hearing the gateway: the graceful shutdown now waits (for an UNSUBACK).
    relay.freeze();
    proc.child.kill("SIGINT");
    await proc.waitForLog("shutting down (send the signal again to exit at once)");
    const sentAt = Date.now();
    proc.child.kill("SIGINT");
    const exit = await proc.waitForExit(5_000);
    expect(exit, proc.stderr).toEqual({ code: 130, signal: null });
    expect(Date.now() - sentAt).toBeLessThan(3_000);
    expect(proc.logs.some((l) => l.msg === "gateway stopped")).toBe(false);
  });

  it("a shutdown that overruns service.stopTimeoutMs exits 1 and says what it gave up", async () => {
    const broker = await externalBroker();
    const relay = await freezableRelay(broker.url);
    const sub = await subscriber(broker.url);
    const { proc } = await startDaemon(relay.url, { service: { stopTimeoutMs: 500 } });
    await waitForStatus(sub, "online");

    // The broker stops hearing the gateway: a graceful stop would wait seconds for it.
    relay.freeze();
    const sentAt = Date.now();
    proc.child.kill("SIGTERM");
    const exit = await proc.waitForExit(8_000);
    expect(exit, proc.stderr).toEqual({ code: 1, signal: null });
    expect(Date.now() - sentAt).toBeLessThan(2_000);
    const line = proc.logs.find((l) => l.msg?.startsWith("shutdown did not finish in time"));
    expect(line).toMatchObject({ stopTimeoutMs: 500, windowsQueued: 0 });
  });
});
