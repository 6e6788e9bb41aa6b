/**
 * The store under pressure, with the real agent as a child process, a real broker and a real
 * HTTP receiver: the disk budget reached while the cloud is down (eviction exactly as the
 * ledger says, alerts kept); a corrupt database at start-up (moved aside, fresh store, event,
 * seq above the old one); SQLITE_FULL while running on a small tmpfs (predictions still
 * published locally and counted, recovery when space returns). The tmpfs test needs root and
 * `mount`; it skips with a message where they are missing.
 */

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { CliProcess } from "../support/cli.js";
import { Collector, tempDir } from "../support/harness.js";
import {
  agentSetup,
  externalBroker,
  publishRows,
  startAgent,
  Watcher,
  type AgentSetup,
} from "../support/agent.js";
import { Receiver, type WireRecord } from "../support/receiver.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
});

async function setupWorld(gatewayId: string) {
  const broker = await externalBroker();
  cleanups.push(() => broker.close());
  const receiver = await Receiver.start();
  cleanups.push(() => receiver.close());
  const watcher = await Watcher.connect(broker.url, gatewayId);
  cleanups.push(() => watcher.close());
  const plant = await Collector.connect(broker.url, []);
  cleanups.push(() => plant.close());
  return { broker, receiver, watcher, plant };
}

async function agent(setup: AgentSetup): Promise<CliProcess> {
  const proc = await startAgent(setup);
  cleanups.push(() => proc.kill());
  return proc;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function settled(count: () => number): Promise<void> {
  let last = -1;
  while (last !== count()) {
    last = count();
    await sleep(300);
  }
}

function lossTotals(records: readonly WireRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records)
    if (r.kind === "event" && r.data.type === "data-loss")
      for (const l of r.data.losses as { reason: string; kind: string; count: number }[])
        out[`${l.reason}/${l.kind}`] = (out[`${l.reason}/${l.kind}`] ?? 0) + l.count;
  return out;
}

describe("the store under pressure (real agent)", () => {
  it("disk budget reached while the cloud is down: predictions evicted oldest first, alerts kept, exactly as the ledger says", async () => {
    const w = await setupWorld("gw-disk");
    await w.receiver.down();
    const setup = agentSetup("gw-disk", w.broker.url, w.receiver.url, {
      storage: { maxBytes: 160 * 1024, retentionMs: 0 },
    });
    const proc = await agent(setup);
    await publishRows(w.plant, ["pump-1", "pump-2", "pump-3", "pump-4"], 220, new Map());
    await w.watcher.collector.waitFor((ms) => ms.length > 0, 10_000, "a first record");
    await settled(() => w.watcher.count());
    await w.receiver.up();
    // Drained: the cloud has every seq the store still held, and the ledger's report.
    await w.receiver.waitFor(
      () => (lossTotals(w.receiver.records())["evicted/prediction"] ?? 0) > 0,
      15_000,
      "the data-loss event",
    );
    const seen = w.watcher.records();
    await w.receiver.waitFor(
      () => {
        const got = w.receiver.records();
        const evicted = lossTotals(got)["evicted/prediction"] ?? 0;
        const predictions = got.filter((r) => r.kind === "prediction").length;
        return predictions + evicted === seen.filter((p) => p.seq !== null && "outputs" in p).length;
      },
      15_000,
      "predictions delivered + evicted = predictions seen",
    );
    const got = w.receiver.records();
    const alertsSeen = seen.filter((p) => "rule" in p);
    expect(alertsSeen.length).toBeGreaterThan(0);
    for (const a of alertsSeen) expect(w.receiver.byId.has(a.id), `alert ${a.seq} lost`).toBe(true);
    // The seqs missing at the receiver are exactly the evicted predictions, oldest first.
    const bySeq = new Map(got.map((r) => [r.seq, r]));
    const maxSeq = Math.max(...got.map((r) => r.seq));
    const missing = Array.from({ length: maxSeq }, (_, i) => i + 1).filter((s) => !bySeq.has(s));
    const evicted = lossTotals(got);
    expect(Object.keys(evicted)).toEqual(["evicted/prediction"]);
    expect(missing.length).toBe(evicted["evicted/prediction"]);
    const seenBySeq = new Map(seen.map((p) => [p.seq, p]));
    for (const s of missing) expect(seenBySeq.get(s) && "outputs" in (seenBySeq.get(s) ?? {})).toBe(true);
    const firstKept = got.find((r) => r.kind === "prediction")?.seq ?? 0;
    expect(Math.max(...missing)).toBeLessThan(
      Math.max(firstKept, ...got.filter((r) => r.kind === "prediction").map((r) => r.seq)),
    );
    proc.child.kill("SIGTERM");
    expect((await proc.waitForExit(10_000)).code).toBe(0);
  });

  it("a corrupt database at start-up is moved aside; a fresh store continues above the old seq, and an event says so", async () => {
    const w = await setupWorld("gw-corrupt");
    const setup = agentSetup("gw-corrupt", w.broker.url, w.receiver.url);
    let proc = await agent(setup);
    // The agent's subscription may still be on its way: publish until records come through.
    const clock = new Map<string, number>();
    for (let i = 0; i < 20 && w.receiver.byId.size < 4; i++) {
      await publishRows(w.plant, ["pump-1"], 12, clock);
      await w.receiver.waitFor(() => w.receiver.byId.size >= 4, 500).catch(() => undefined);
    }
    expect(w.receiver.byId.size).toBeGreaterThanOrEqual(4);
    proc.child.kill("SIGTERM");
    await proc.waitForExit(10_000);
    const before = Math.max(...w.receiver.records().map((r) => r.seq));
    const db = path.join(setup.dataDir, "vigil.db");
    // Garbage over the first pages: SQLite no longer sees a database.
    const fd = fs.openSync(db, "r+");
    fs.writeSync(fd, Buffer.alloc(8192, 0x42), 0, 8192, 0);
    fs.closeSync(fd);
    proc = await agent(setup);
    const reset = await proc.waitForLog("store unreadable or corrupt: moved aside, started a fresh one");
    expect(reset.movedTo).toMatch(/vigil\.db\.corrupt-\d{4}-\d\d-\d\dT/);
    expect(fs.existsSync(reset.movedTo as string)).toBe(true);
    await w.receiver.waitFor(
      () => w.receiver.records().some((r) => r.data.type === "store-reset"),
      10_000,
      "the event",
    );
    const event = w.receiver.records().find((r) => r.data.type === "store-reset");
    expect(event?.seq).toBeGreaterThan(before);
    expect(event?.data).toMatchObject({ gatewayId: "gw-corrupt", movedTo: reset.movedTo });
    // The agent serves on: new predictions, seqs above the event's.
    const clock2 = new Map<string, number>();
    const fresh = (): boolean =>
      w.receiver.records().some((r) => r.kind === "prediction" && r.seq > (event?.seq ?? 0));
    for (let i = 0; i < 20 && !fresh(); i++) {
      await publishRows(w.plant, ["pump-2"], 8, clock2);
      await w.receiver.waitFor(fresh, 500).catch(() => undefined);
    }
    expect(fresh()).toBe(true);
    proc.child.kill("SIGTERM");
    expect((await proc.waitForExit(10_000)).code).toBe(0);
  });

  it("SQLITE_FULL while running: predictions still published locally and counted; recovery when space returns", async (ctx) => {
    const mountPoint = tempDir("vigil-full-");
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=6m", "tmpfs", mountPoint], { stdio: "ignore" });
    } catch {
      return ctx.skip("needs root and mount (tmpfs) to fill a real file system");
    }
    cleanups.push(() => {
      execFileSync("umount", ["-l", mountPoint], { stdio: "ignore" });
    });
    const w = await setupWorld("gw-full");
    const setup = agentSetup(
      "gw-full",
      w.broker.url,
      w.receiver.url,
      { storage: { maxBytes: 0, minFreeBytes: 0 } },
      path.join(mountPoint, "data"),
    );
    const proc = await agent(setup);
    const clock = new Map<string, number>();
    await publishRows(w.plant, ["pump-1", "pump-2"], 20, clock);
    await settled(() => w.watcher.count());
    // Fill the file system to the last byte.
    const filler = path.join(mountPoint, "filler");
    const fd = fs.openSync(filler, "w");
    try {
      for (;;) fs.writeSync(fd, Buffer.alloc(64 * 1024));
    } catch {
      // ENOSPC: full.
    }
    try {
      for (;;) fs.writeSync(fd, Buffer.alloc(512));
    } catch {
      // ENOSPC: full to the block.
    } finally {
      fs.closeSync(fd);
    }
    const unstored = (): number => w.watcher.records().filter((p) => p.seq === null).length;
    for (let i = 0; i < 40 && unstored() === 0; i++)
      await publishRows(w.plant, ["pump-1", "pump-2"], 25, clock);
    expect(unstored(), "commits should fail with the disk full").toBeGreaterThan(0);
    for (const p of w.watcher.records().filter((x) => x.seq === null)) expect(p.stored).toBe(false);
    const maxStoredBefore = Math.max(...w.watcher.records().map((p) => p.seq ?? 0));
    // Space returns.
    fs.rmSync(filler);
    const seenBefore = w.watcher.count();
    await publishRows(w.plant, ["pump-1", "pump-2"], 20, clock);
    await w.watcher.collector.waitFor(
      () =>
        w.watcher
          .records()
          .slice(seenBefore)
          .some((p) => p.seq !== null),
      10_000,
      "committed records again",
    );
    const after = w.watcher
      .records()
      .slice(seenBefore)
      .filter((p) => p.seq !== null);
    expect(Math.min(...after.map((p) => p.seq ?? 0))).toBeGreaterThan(maxStoredBefore);
    // The ledger reached the cloud with exactly the records that could not be stored.
    await w.receiver.waitFor(
      () => {
        const t = lossTotals(w.receiver.records());
        return (t["store_full/prediction"] ?? 0) + (t["store_full/alert"] ?? 0) === unstored();
      },
      15_000,
      "store_full counted in a data-loss event",
    );
    proc.child.kill("SIGTERM");
    expect((await proc.waitForExit(10_000)).code).toBe(0);
  });
});
