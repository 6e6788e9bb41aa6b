/**
 * Cloud sync in-process against real endpoints: SQLite in a temp folder, the sync service and
 * its workers, a real node:http receiver (test/support/receiver.ts) and a real aedes broker
 * for the MQTT destination. Backoffs are a few milliseconds; randomness is seeded; waits are
 * on records arriving.
 */

import net from "node:net";
import path from "node:path";
import { Aedes } from "aedes";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/system/logger.js";
import { SqliteStore } from "../../src/store/sqlite.js";
import type { NewRecord, RecordKind } from "../../src/store/types.js";
import { parseDestinations } from "../../src/sync/config.js";
import { SyncService } from "../../src/sync/service.js";
import { Collector, tempDir } from "../support/harness.js";
import { Receiver, seeded, type WireRecord } from "../support/receiver.js";

const GW = "gw-sync";
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function rec(
  kind: RecordKind,
  n: number,
  asset = `pump-${n % 3}`,
  extra: Record<string, unknown> = {},
): NewRecord {
  return {
    kind,
    asset,
    tsMs: 1_790_000_000_000 + n * 1000,
    data: { gatewayId: GW, asset, model: "m", n, outputs: { rul: n }, ...extra },
  };
}

function openStore(): SqliteStore {
  const store = new SqliteStore({ file: path.join(tempDir("vigil-sync-"), "vigil.db") });
  cleanups.push(() => store.close());
  return store;
}

function startSync(store: SqliteStore, destinations: unknown[], seed = 1): SyncService {
  const sync = new SyncService(parseDestinations(destinations), store, GW, silentLogger(), {
    random: seeded(seed),
  });
  sync.start();
  cleanups.push(() => sync.stop());
  return sync;
}

async function receiver(token?: string): Promise<Receiver> {
  const r = await Receiver.start(token);
  cleanups.push(() => r.close());
  return r;
}

const fast = { minDelayMs: 5, maxDelayMs: 40 };

function expectContiguous(records: readonly WireRecord[], from: number, to: number): void {
  expect(records.map((r) => r.seq)).toEqual(Array.from({ length: to - from + 1 }, (_, i) => from + i));
}

describe("HTTP destination", () => {
  it("delivers every record in seq order, batched by count and bytes, gzipped, with token and idempotency key", async () => {
    const store = openStore();
    const r = await receiver("s3cret");
    store.commit(Array.from({ length: 120 }, (_, i) => rec(i % 10 === 9 ? "alert" : "prediction", i + 1)));
    const sync = startSync(store, [
      { type: "http", url: r.url, token: "s3cret", batchMaxRecords: 25, batchMaxBytes: 4096, ...fast },
    ]);
    await r.waitFor(() => r.byId.size === 120);
    expectContiguous(r.records(), 1, 120);
    for (const req of r.requests) {
      expect(req.headers["content-encoding"]).toBe("gzip");
      expect(req.headers["content-type"]).toBe("application/json");
      expect(req.headers["idempotency-key"]).toMatch(new RegExp(`^${GW}-\\d+-\\d+-[0-9a-f]{16}$`));
      expect(req.gatewayId).toBe(GW);
      expect(req.records.length).toBeLessThanOrEqual(25);
    }
    // 4 KiB of JSON holds fewer than 25 of these records: the byte limit cut the batches.
    expect(r.requests.length).toBeGreaterThan(120 / 25);
    const seqsInOrder = r.requests.flatMap((q) => q.records.map((x) => x.seq));
    expect(seqsInOrder).toEqual([...seqsInOrder].sort((a, b) => a - b));
    const first = r.records()[0];
    expect(first).toMatchObject({ seq: 1, kind: "prediction", asset: "pump-1", ts: 1_790_000_001_000 });
    expect(first?.data).toMatchObject({ gatewayId: GW, n: 1 });
    await expect
      .poll(() => store.cursors())
      .toEqual([{ destination: `http:127.0.0.1:${new URL(r.url).port}/v1/records`, seq: 120, bypassSeq: 0 }]);
    // New commits are sent when the service is told.
    store.commit([rec("alert", 121)]);
    sync.notify();
    await r.waitFor(() => r.byId.size === 121);
    expect(r.arrivals).toBe(121);
  });

  it("a 4xx batch is split until the refused records stand alone; they become dead letters, the rest is delivered; retry sends them again", async () => {
    const store = openStore();
    const r = await receiver();
    const bad = new Set([7, 8, 30, 55]);
    r.fault = (records) =>
      records.some((x) => x.data.bad === true)
        ? { status: 422, body: "record failed validation" }
        : undefined;
    store.commit(
      Array.from({ length: 60 }, (_, i) =>
        rec("prediction", i + 1, "pump-1", bad.has(i + 1) ? { bad: true } : {}),
      ),
    );
    const sync = startSync(store, [
      { type: "http", url: r.url, name: "cloud", batchMaxRecords: 16, ...fast },
    ]);
    const predictions = (): WireRecord[] => r.records().filter((x) => x.kind === "prediction");
    const lossEvents = (): WireRecord[] => r.records().filter((x) => x.kind === "event");
    const reported = (): number => lossEvents().reduce((n, e) => n + (e.data.total as number), 0);
    await r.waitFor(() => predictions().length === 56 && reported() === 4);
    expect(predictions().map((x) => x.seq)).toEqual(
      Array.from({ length: 60 }, (_, i) => i + 1).filter((n) => !bad.has(n)),
    );
    const dead = store.deadLetters();
    expect(dead.map((d) => d.record.seq)).toEqual([7, 8, 30, 55]);
    expect(dead[0]).toMatchObject({
      destination: "cloud",
      status: "dead",
      reason: "HTTP 422: record failed validation",
    });
    expect(store.ledger().map((e) => [e.reason, e.kind, e.count])).toEqual([
      ["dead_lettered", "prediction", 4],
    ]);
    // The ledger went to the cloud as data-loss events, each once the link had delivered.
    for (const e of lossEvents()) expect(e.data).toMatchObject({ type: "data-loss", gatewayId: GW });
    expect(sync.status().destinations[0]?.counters.deadLettered).toBe(4);

    // The receiver is fixed; an operator retries two of them, then the rest.
    r.fault = () => undefined;
    expect(store.retryDeadLetters({ ids: dead.slice(0, 2).map((d) => d.record.id) })).toBe(2);
    await r.waitFor(() => predictions().length === 58);
    await expect.poll(() => store.deadLetters().length).toBe(2);
    store.retryDeadLetters({ destination: "cloud" });
    await r.waitFor(() => predictions().length === 60);
    await expect.poll(() => store.deadLetters().length).toBe(0);
  });

  it("5xx with Retry-After, 429, 408 and dropped connections are retried until every record is in, exactly once after de-duplication", async () => {
    const store = openStore();
    const r = await receiver();
    const random = seeded(42);
    r.fault = () => {
      const x = random();
      if (x < 0.15) return { status: 503, headers: { "retry-after": "0" } };
      if (x < 0.25) return { status: 500 };
      if (x < 0.3) return { status: 429 };
      if (x < 0.35) return { status: 408 };
      if (x < 0.5) return "drop";
      return undefined;
    };
    store.commit(Array.from({ length: 300 }, (_, i) => rec(i % 7 === 0 ? "alert" : "prediction", i + 1)));
    const sync = startSync(
      store,
      [{ type: "http", url: r.url, batchMaxRecords: 20, gzip: false, ...fast }],
      7,
    );
    await r.waitFor(() => r.byId.size === 300, 20_000);
    expectContiguous(r.records(), 1, 300);
    expect(store.deadLetters()).toEqual([]);
    expect(sync.status().destinations[0]?.counters.failures).toBeGreaterThan(0);
    expect(r.requests.some((q) => q.status === 503)).toBe(true);
  });

  it("a wrong token (401) is retried, never dead-lettered; the right one delivers everything", async () => {
    const store = openStore();
    const r = await receiver("right");
    store.commit(Array.from({ length: 10 }, (_, i) => rec("prediction", i + 1)));
    const sync = startSync(store, [{ type: "http", url: r.url, token: "wrong", ...fast }]);
    await expect.poll(() => sync.status().destinations[0]?.counters.failures ?? 0).toBeGreaterThan(2);
    expect(store.deadLetters()).toEqual([]);
    expect(sync.status().destinations[0]).toMatchObject({ link: "down", lastError: "HTTP 401: bad token" });
    r.token = "wrong";
    await r.waitFor(() => r.byId.size === 10);
    await expect.poll(() => sync.status().destinations[0]?.link).toBe("up");
  });

  it("the cloud unreachable, then back: nothing is lost and the data-loss ledger is reported as an event", async () => {
    const store = openStore();
    const r = await receiver();
    await r.down();
    store.addLosses([{ reason: "store_full", kind: "prediction", count: 3 }]);
    store.commit(Array.from({ length: 50 }, (_, i) => rec("prediction", i + 1)));
    const sync = startSync(store, [{ type: "http", url: r.url, ...fast }]);
    await expect.poll(() => sync.status().destinations[0]?.consecutiveFailures ?? 0).toBeGreaterThan(1);
    await r.up();
    await r.waitFor(() => r.records().some((x) => x.kind === "event"));
    const event = r.records().find((x) => x.kind === "event");
    expect(event?.data).toMatchObject({
      type: "data-loss",
      losses: [{ reason: "store_full", kind: "prediction", count: 3 }],
      total: 3,
    });
    expect(event?.seq).toBe(51);
    await r.waitFor(() => r.byId.size === 51);
    expectContiguous(r.records(), 1, 51);
    expect(store.ledger()[0]).toMatchObject({ count: 3, reported: 3 });
  });

  it("outside its window only alerts go (bypass), and not again when the window opens", async () => {
    const store = openStore();
    const r = await receiver();
    const minute = new Date().getUTCMinutes();
    // A window half an hour away from now: closed for the length of this test.
    const closed = `${(minute + 30) % 60} * * * *`;
    store.commit(Array.from({ length: 30 }, (_, i) => rec(i % 5 === 0 ? "alert" : "prediction", i + 1)));
    const sync = startSync(store, [
      {
        type: "http",
        url: r.url,
        name: "metered",
        schedule: { windows: [closed], timezone: "UTC", alertsBypass: true },
        ...fast,
      },
    ]);
    await r.waitFor(() => r.byId.size === 6);
    expect(r.records().every((x) => x.kind === "alert")).toBe(true);
    await expect.poll(() => store.cursors()[0]?.bypassSeq).toBe(26);
    expect(store.cursors()[0]?.seq).toBe(0);
    expect(sync.status().destinations[0]).toMatchObject({ windowOpen: false });
    await sync.stop();
    // Open all the time now (same destination name, same cursors): predictions follow, alerts are not sent twice.
    const again = startSync(store, [{ type: "http", url: r.url, name: "metered", ...fast }]);
    await r.waitFor(() => r.byId.size === 30);
    await expect.poll(() => store.cursors()[0]?.seq).toBe(30);
    expect(r.arrivals).toBe(30);
    expect(again.status().destinations[0]?.windowOpen).toBe(true);
  });

  it("thins predictions to every Nth per asset and model, never alerts", async () => {
    const store = openStore();
    const r = await receiver();
    store.commit(
      Array.from({ length: 40 }, (_, i) =>
        rec(i % 8 === 7 ? "alert" : "prediction", i + 1, i % 2 === 0 ? "a" : "b"),
      ),
    );
    const sync = startSync(store, [{ type: "http", url: r.url, predictions: { every: 3 }, ...fast }]);
    await expect.poll(() => store.cursors()[0]?.seq).toBe(40);
    const got = r.records();
    expect(got.filter((x) => x.kind === "alert")).toHaveLength(5);
    const predictions = got.filter((x) => x.kind === "prediction");
    // 35 predictions: 18 of asset a, 17 of b; every third of each (the 1st, 4th, ...): 6 + 6.
    expect(predictions).toHaveLength(12);
    expect(sync.status().destinations[0]?.counters.thinned).toBe(23);
  });
});

describe("MQTT destination", () => {
  async function broker(): Promise<{ url: string; close(): Promise<void> }> {
    const aedes = await Aedes.createBroker();
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      aedes.handle(s);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    const port = (server.address() as net.AddressInfo).port;
    const b = {
      url: `mqtt://127.0.0.1:${port}`,
      close: async () => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
    cleanups.push(() => b.close());
    return b;
  }

  it("publishes each record at QoS 1 on <topicPrefix>/<gatewayId>/<kind>/<asset>, delivered on PUBACK", async () => {
    const b = await broker();
    const sub = await Collector.connect(b.url, ["cloud/#"]);
    cleanups.push(() => sub.close());
    const store = openStore();
    store.commit([
      ...Array.from({ length: 150 }, (_, i) => rec(i % 10 === 0 ? "alert" : "prediction", i + 1)),
      { kind: "event", asset: null, tsMs: 1, data: { type: "note" } },
    ]);
    const sync = startSync(store, [
      { type: "mqtt", url: b.url, topicPrefix: "cloud", maxInFlight: 8, batchMaxRecords: 40, ...fast },
    ]);
    await sub.waitForCount("cloud/", 151);
    await expect.poll(() => store.cursors()[0]?.seq).toBe(151);
    const first = sub.messages.find((m) => m.json<{ seq: number }>().seq === 1);
    expect(first?.topic).toBe(`cloud/${GW}/alert/pump-1`);
    expect(first?.qos).toBe(1);
    expect(first?.json()).toMatchObject({
      gatewayId: GW,
      seq: 1,
      kind: "alert",
      asset: "pump-1",
      data: { n: 1 },
    });
    expect(sub.messages.find((m) => m.json<{ seq: number }>().seq === 11)?.topic).toBe(
      `cloud/${GW}/alert/pump-2`,
    );
    expect(sub.messages.find((m) => m.json<{ seq: number }>().seq === 151)?.topic).toBe(
      `cloud/${GW}/event/_gateway`,
    );
    const seqs = new Set(sub.messages.map((m) => m.json<{ seq: number }>().seq));
    expect(seqs.size).toBe(151);
    expect(sync.status().destinations[0]).toMatchObject({ type: "mqtt", link: "up", pending: 0 });
  });

  it("with the cloud broker down nothing is acknowledged; once it is up everything arrives", async () => {
    const store = openStore();
    // A port with nothing listening yet.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", () => resolve()));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    store.commit(Array.from({ length: 20 }, (_, i) => rec("prediction", i + 1)));
    const sync = startSync(store, [{ type: "mqtt", url: `mqtt://127.0.0.1:${port}`, ...fast }]);
    await expect.poll(() => sync.status().destinations[0]?.consecutiveFailures ?? 0).toBeGreaterThan(1);
    expect(store.cursors()[0]?.seq).toBe(0);
    const aedes = await Aedes.createBroker();
    const server = net.createServer((s) => aedes.handle(s));
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", () => resolve()));
    cleanups.push(async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    await expect.poll(() => store.cursors()[0]?.seq, { timeout: 10_000 }).toBe(20);
  });
});
