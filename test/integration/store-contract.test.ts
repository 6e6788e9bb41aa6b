/**
 * One contract suite for the Store seam (ARCHITECTURE habit 4), run against every
 * implementation: the in-memory reference and SQLite in a temp folder. Durable-only
 * properties (reopen, WAL, migrations) run for SQLite alone.
 */

import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it, vi } from "vitest";
import { StoreError } from "../../src/errors.js";
import { MemoryStore } from "../../src/store/memory.js";
import { SCHEMA_VERSION, SEQ_RESERVE, SqliteStore, readSeqFloor } from "../../src/store/sqlite.js";
import { ManualClock } from "../../src/system/clock.js";
import type { AlertStateRow, Loss, NewRecord, RecordKind, Store } from "../../src/store/types.js";
import { tempDir } from "../support/harness.js";

interface Built {
  store: Store;
  /** Close the store and open a new one on the same durable state (durable stores only). */
  reopen?: () => Store;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function rec(kind: RecordKind, n: number, asset: string | null = "pump-1"): NewRecord {
  return {
    kind,
    asset,
    tsMs: 1_790_000_000_000 + n,
    data: { n, kind, nested: { list: [n, "x", null], ok: true } },
  };
}

/** A data object whose serialisation throws in every implementation (structuredClone and JSON). */
function unserialisable(): Record<string, unknown> {
  const data: Record<string, unknown> = { fine: 1 };
  Object.defineProperty(data, "boom", {
    enumerable: true,
    get() {
      throw new Error("cannot serialise this");
    },
  });
  return data;
}

function storeContract(name: string, build: () => Built): void {
  describe(`Store contract: ${name}`, () => {
    const open: Store[] = [];
    const make = (): Built => {
      const b = build();
      open.push(b.store);
      if (!b.reopen) return b;
      const reopen = b.reopen;
      return {
        store: b.store,
        reopen: () => {
          const s = reopen();
          open.push(s);
          return s;
        },
      };
    };
    afterEach(() => {
      for (const s of open.splice(0)) s.close();
    });

    it("starts empty", () => {
      const { store } = make();
      expect(store.lastSeq()).toBe(0);
      expect(store.readAfter(0, 100)).toEqual([]);
      expect(store.counts()).toEqual({ prediction: 0, alert: 0, event: 0 });
      expect(store.alertStates()).toEqual([]);
    });

    it("afterDurable calls back once per call, in call order, after the commits before it", async () => {
      const { store } = make();
      const order: string[] = [];
      const calls: Promise<void>[] = [];
      const wait = (label: string): void => {
        calls.push(
          new Promise<void>((resolve, reject) =>
            store.afterDurable((err) => {
              if (err) reject(err);
              order.push(label);
              resolve();
            }),
          ),
        );
      };
      wait("nothing committed");
      store.commit([rec("prediction", 1)]);
      wait("after 1");
      store.commit([rec("prediction", 2)]);
      store.commit([rec("alert", 3)]);
      wait("after 3");
      wait("again");
      await Promise.all(calls);
      expect(order).toEqual(["nothing committed", "after 1", "after 3", "again"]);
      expect(store.readAfter(0, 10).map((r) => r.seq)).toEqual([1, 2, 3]);
    });

    it("commit assigns seq 1, 2, 3… across calls and unique UUIDv7 ids, and returns the records", () => {
      const { store } = make();
      const first = store.commit([rec("prediction", 1), rec("alert", 2)]);
      const second = store.commit([rec("event", 3, null)]);
      const third = store.commit([rec("prediction", 4), rec("prediction", 5), rec("prediction", 6)]);
      const all = [...first, ...second, ...third];
      expect(all.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      for (const r of all) expect(r.id).toMatch(UUID);
      expect(new Set(all.map((r) => r.id)).size).toBe(all.length);
      expect(first[0]).toMatchObject(rec("prediction", 1));
      expect(second[0]).toMatchObject({ kind: "event", asset: null });
      for (const r of all) expect(typeof r.createdMs).toBe("number");
      expect(store.lastSeq()).toBe(6);
    });

    it("an empty commit issues nothing", () => {
      const { store } = make();
      expect(store.commit([])).toEqual([]);
      expect(store.lastSeq()).toBe(0);
      expect(store.commit([rec("prediction", 1)])[0]?.seq).toBe(1);
    });

    it("reads back exactly what was committed (id, seq, kind, asset, tsMs, data)", () => {
      const { store } = make();
      const committed = store.commit([rec("prediction", 1), rec("alert", 2), rec("event", 3, null)]);
      expect(store.readAfter(0, 10)).toEqual(committed);
    });

    it("keeps its own copy of data (later mutation of the input or output changes nothing)", () => {
      const { store } = make();
      const input = rec("prediction", 1);
      const [out] = store.commit([input]);
      (input.data.nested as { ok: boolean }).ok = false;
      if (out) (out.data as { n: number }).n = 999;
      expect(store.readAfter(0, 1)[0]?.data).toEqual(rec("prediction", 1).data);
    });

    it("readAfter returns records after seq, in seq order, at most `limit`", () => {
      const { store } = make();
      for (let i = 1; i <= 10; i++) store.commit([rec(i % 2 === 0 ? "alert" : "prediction", i)]);
      expect(store.readAfter(0, 100).map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(store.readAfter(0, 3).map((r) => r.seq)).toEqual([1, 2, 3]);
      expect(store.readAfter(3, 4).map((r) => r.seq)).toEqual([4, 5, 6, 7]);
      expect(store.readAfter(8, 100).map((r) => r.seq)).toEqual([9, 10]);
      expect(store.readAfter(10, 100)).toEqual([]);
      expect(store.readAfter(0, 0)).toEqual([]);
      expect(store.readAfter(3, 1)[0]?.data).toMatchObject({ n: 4 });
    });

    it("counts records by kind", () => {
      const { store } = make();
      store.commit([rec("prediction", 1), rec("prediction", 2), rec("prediction", 3)]);
      store.commit([rec("alert", 4), rec("event", 5, null), rec("alert", 6)]);
      expect(store.counts()).toEqual({ prediction: 3, alert: 2, event: 1 });
    });

    it("usage: records and body bytes by kind, and the oldest commit time", () => {
      const { store } = make();
      expect(store.kindUsage()).toEqual({
        byKind: {
          prediction: { records: 0, bytes: 0 },
          alert: { records: 0, bytes: 0 },
          event: { records: 0, bytes: 0 },
        },
        oldestCreatedMs: null,
      });
      const unicode: NewRecord = {
        kind: "alert",
        asset: "Pumpe Süd",
        tsMs: 1,
        data: { note: "Überdruck ✓" },
      };
      const stored = store.commit([rec("prediction", 1), rec("prediction", 2), rec("alert", 3), unicode]);
      const bytes = (kind: RecordKind): number =>
        stored
          .filter((r) => r.kind === kind)
          .reduce((n, r) => n + Buffer.byteLength(JSON.stringify(r.data)), 0);
      const u = store.kindUsage();
      expect(u.byKind.prediction).toEqual({ records: 2, bytes: bytes("prediction") });
      expect(u.byKind.alert).toEqual({ records: 2, bytes: bytes("alert") });
      expect(u.byKind.event).toEqual({ records: 0, bytes: 0 });
      expect(u.oldestCreatedMs).toBe(stored[0]?.createdMs);
      // A failed commit changes nothing.
      expect(() =>
        store.commit([rec("event", 9, null), { ...rec("alert", 10), kind: "bogus" as RecordKind }]),
      ).toThrow();
      expect(store.kindUsage()).toEqual(u);
    });

    it("checkWritable passes on an open store and throws a StoreError once closed", () => {
      const { store } = make();
      expect(() => store.checkWritable()).not.toThrow();
      store.close();
      expect(() => store.checkWritable()).toThrow(StoreError);
    });

    it("upserts alert state per (asset, model, rule) and reads it back", () => {
      const { store } = make();
      const a: AlertStateRow = {
        asset: "pump-1",
        model: "m",
        rule: "r1",
        state: { raised: false, streak: 1 },
      };
      const b: AlertStateRow = {
        asset: "pump-2",
        model: "m",
        rule: "r1",
        state: { raised: true, streak: 2 },
      };
      const c: AlertStateRow = {
        asset: "pump-1",
        model: "m",
        rule: "r2",
        state: { raised: false, streak: 0 },
      };
      store.commit([rec("prediction", 1)], [a, b]);
      store.commit([], [c]);
      const byKey = (rows: AlertStateRow[]): AlertStateRow[] =>
        [...rows].sort((x, y) => `${x.asset}/${x.rule}`.localeCompare(`${y.asset}/${y.rule}`));
      expect(byKey(store.alertStates())).toEqual(byKey([a, b, c]));
      const a2: AlertStateRow = { ...a, state: { raised: true, streak: 2, sinceMs: 5 } };
      store.commit([rec("alert", 2)], [a2]);
      expect(byKey(store.alertStates())).toEqual(byKey([a2, b, c]));
      // A different model with the same asset and rule is a different row.
      store.commit([], [{ ...a, model: "other" }]);
      expect(store.alertStates()).toHaveLength(4);
    });

    it("a commit whose record data cannot be serialised throws and leaves nothing behind", () => {
      const { store } = make();
      store.commit([rec("prediction", 1)]);
      const bad: NewRecord = { kind: "prediction", asset: "pump-1", tsMs: 5, data: unserialisable() };
      const state: AlertStateRow = { asset: "pump-1", model: "m", rule: "r", state: { raised: true } };
      expect(() => store.commit([rec("prediction", 2), bad, rec("alert", 3)], [state])).toThrow();
      expect(store.readAfter(0, 100).map((r) => r.seq)).toEqual([1]);
      expect(store.counts()).toEqual({ prediction: 1, alert: 0, event: 0 });
      expect(store.alertStates()).toEqual([]);
      // The failed commit consumed no seq visibly: the next one continues at 2.
      expect(store.lastSeq()).toBe(1);
      expect(store.commit([rec("event", 4, null)])[0]?.seq).toBe(2);
    });

    it("a commit whose alert state cannot be serialised throws and leaves no record behind", () => {
      const { store } = make();
      const good: AlertStateRow = { asset: "pump-1", model: "m", rule: "ok", state: { raised: false } };
      const bad: AlertStateRow = { asset: "pump-1", model: "m", rule: "bad", state: unserialisable() };
      expect(() => store.commit([rec("prediction", 1), rec("alert", 2)], [good, bad])).toThrow();
      expect(store.readAfter(0, 100)).toEqual([]);
      expect(store.counts()).toEqual({ prediction: 0, alert: 0, event: 0 });
      expect(store.alertStates()).toEqual([]);
      expect(store.lastSeq()).toBe(0);
      expect(store.commit([rec("prediction", 3)])[0]?.seq).toBe(1);
    });

    it("a record of an unknown kind is refused and the whole commit with it", () => {
      const { store } = make();
      const bogus = { ...rec("prediction", 2), kind: "bogus" as RecordKind };
      expect(() => store.commit([rec("prediction", 1), bogus])).toThrow();
      expect(store.readAfter(0, 100)).toEqual([]);
      expect(store.counts()).toEqual({ prediction: 0, alert: 0, event: 0 });
      expect(store.lastSeq()).toBe(0);
    });

    it("lastSeq is the highest seq issued", () => {
      const { store } = make();
      expect(store.lastSeq()).toBe(0);
      store.commit([rec("prediction", 1), rec("prediction", 2)]);
      expect(store.lastSeq()).toBe(2);
      store.commit([rec("alert", 3)]);
      expect(store.lastSeq()).toBe(3);
    });

    it("a durable store keeps records and alert state across a reopen; seq continues above the old maximum", (ctx) => {
      const built = make();
      if (!built.reopen) return ctx.skip("not durable");
      const state: AlertStateRow = {
        asset: "pump-1",
        model: "m",
        rule: "r",
        state: { raised: true, streak: 2 },
      };
      const committed = built.store.commit(
        [rec("prediction", 1), rec("alert", 2), rec("event", 3, null)],
        [state],
      );
      const again = built.reopen();
      expect(again.readAfter(0, 100)).toEqual(committed);
      expect(again.lastSeq()).toBe(3);
      expect(again.counts()).toEqual({ prediction: 1, alert: 1, event: 1 });
      expect(again.alertStates()).toEqual([state]);
      const next = again.commit([rec("prediction", 4)]);
      expect(next[0]?.seq).toBe(4);
      expect(committed.map((r) => r.id)).not.toContain(next[0]?.id);
    });

    it("a durable store does not resurrect a failed commit after a reopen", (ctx) => {
      const built = make();
      if (!built.reopen) return ctx.skip("not durable");
      built.store.commit([rec("prediction", 1)]);
      const bad: NewRecord = { kind: "alert", asset: "pump-1", tsMs: 5, data: unserialisable() };
      expect(() => built.store.commit([rec("prediction", 2), bad])).toThrow();
      const again = built.reopen();
      expect(again.readAfter(0, 100).map((r) => r.seq)).toEqual([1]);
      expect(again.commit([rec("prediction", 3)])[0]?.seq).toBe(2);
    });

    it("ids stay unique over many commits in the same millisecond", () => {
      const { store } = make();
      const batch = Array.from({ length: 500 }, (_, i) => rec("prediction", i));
      const ids = store.commit(batch).map((r) => r.id);
      expect(new Set(ids).size).toBe(500);
    });
  });
}

function outboxContract(name: string, build: () => { store: Store; clock: ManualClock }): void {
  describe(`Store contract (outbox, cursors, dead letters, ledger): ${name}`, () => {
    const open: Store[] = [];
    const make = (): { store: Store; clock: ManualClock } => {
      const b = build();
      open.push(b.store);
      return b;
    };
    afterEach(() => {
      for (const s of open.splice(0)) s.close();
    });
    const seqs = (rows: readonly { seq: number }[]): number[] => rows.map((r) => r.seq);

    it("readOutbox returns the stored JSON text in seq order, optionally of one kind", () => {
      const { store } = make();
      const stored = store.commit([rec("prediction", 1), rec("alert", 2), rec("prediction", 3)]);
      const all = store.readOutbox(0, 10);
      expect(seqs(all)).toEqual([1, 2, 3]);
      expect(JSON.parse(all[1]?.dataJson ?? "")).toEqual(stored[1]?.data);
      expect(all[1]).toMatchObject({ id: stored[1]?.id, kind: "alert", asset: "pump-1" });
      expect(seqs(store.readOutbox(1, 10, "prediction"))).toEqual([3]);
      expect(seqs(store.readOutbox(0, 2))).toEqual([1, 2]);
    });

    it("cursors start at 0, only move forward, and unknown destinations are removed", () => {
      const { store } = make();
      store.commit([rec("prediction", 1), rec("prediction", 2)]);
      store.setDestinations(["a", "b"]);
      expect(store.cursors()).toEqual([
        { destination: "a", seq: 0, bypassSeq: 0 },
        { destination: "b", seq: 0, bypassSeq: 0 },
      ]);
      store.acknowledge("a", 2);
      store.acknowledge("a", 1);
      store.acknowledge("b", 1, [], "bypass");
      expect(store.cursors()).toEqual([
        { destination: "a", seq: 2, bypassSeq: 0 },
        { destination: "b", seq: 0, bypassSeq: 1 },
      ]);
      store.setDestinations(["a", "c"]);
      expect(store.cursors().map((c) => c.destination)).toEqual(["a", "c"]);
      expect(store.cursors()[0]?.seq).toBe(2);
      expect(() => store.acknowledge("zzz", 1)).toThrow(StoreError);
    });

    it("prune deletes only what every destination has and the retention allows", () => {
      const { store, clock } = make();
      store.setDestinations(["a", "b"]);
      store.commit([rec("prediction", 1), rec("alert", 2), rec("prediction", 3)]);
      clock.advance(10_000);
      store.commit([rec("prediction", 4)]);
      store.acknowledge("a", 4);
      store.acknowledge("b", 2);
      expect(store.prune(clock.nowMs() + 1, 100)).toBe(2);
      expect(seqs(store.readAfter(0, 10))).toEqual([3, 4]);
      store.acknowledge("b", 4);
      // Seq 4 is too young for a 5 s retention.
      expect(store.prune(clock.nowMs() - 5_000, 100)).toBe(1);
      expect(seqs(store.readAfter(0, 10))).toEqual([4]);
      expect(store.ledger()).toEqual([]);
    });

    it("with no destination every record counts as delivered; maxRows bounds one prune", () => {
      const { store, clock } = make();
      store.commit([rec("prediction", 1), rec("prediction", 2), rec("prediction", 3)]);
      expect(store.prune(clock.nowMs() + 1, 2)).toBe(2);
      expect(seqs(store.readAfter(0, 10))).toEqual([3]);
    });

    it("acknowledge sets rejected records aside as dead letters, counted in the ledger, in one step", () => {
      const { store } = make();
      store.setDestinations(["a"]);
      store.commit([rec("prediction", 1), rec("alert", 2), rec("prediction", 3)]);
      const [, bad] = store.readOutbox(0, 10);
      if (!bad) throw new Error("no record");
      store.acknowledge("a", 3, [{ record: bad, reason: "HTTP 422: bad record" }]);
      expect(store.cursors()[0]?.seq).toBe(3);
      const dead = store.deadLetters();
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({
        destination: "a",
        reason: "HTTP 422: bad record",
        status: "dead",
        attempts: 1,
      });
      expect(dead[0]?.record).toEqual(bad);
      expect(store.ledger().map((e) => [e.reason, e.kind, e.count])).toEqual([["dead_lettered", "alert", 1]]);
    });

    it("dead letters: retry marks them, resolve delivers or sets aside again, drop counts in the ledger", () => {
      const { store } = make();
      store.setDestinations(["a", "b"]);
      store.commit([rec("prediction", 1), rec("alert", 2), rec("prediction", 3)]);
      const rows = store.readOutbox(0, 10);
      const [r1, r2, r3] = rows;
      if (!r1 || !r2 || !r3) throw new Error("no records");
      store.acknowledge("a", 3, [
        { record: r1, reason: "x" },
        { record: r2, reason: "y" },
      ]);
      store.acknowledge("b", 3, [{ record: r3, reason: "z" }]);
      expect(store.retryDeadLetters({ destination: "a", ids: [r1.id] })).toBe(1);
      expect(store.deadLetters({ status: "retry" }).map((d) => d.record.id)).toEqual([r1.id]);
      store.resolveDeadLetters("a", [r1.id], "dead", "still bad");
      expect(store.deadLetters({ ids: [r1.id] })[0]).toMatchObject({
        status: "dead",
        attempts: 2,
        reason: "still bad",
      });
      expect(store.retryDeadLetters({ destination: "a" })).toBe(2);
      store.resolveDeadLetters("a", [r1.id, r2.id], "delivered");
      expect(store.deadLetters().map((d) => d.destination)).toEqual(["b"]);
      expect(store.dropDeadLetters({ destination: "b" })).toBe(1);
      expect(store.deadLetters()).toEqual([]);
      const ledger = Object.fromEntries(store.ledger().map((e) => [`${e.reason}/${e.kind}`, e.count]));
      expect(ledger).toEqual({
        "dead_lettered/prediction": 2,
        "dead_lettered/alert": 1,
        "dead_letter_dropped/prediction": 1,
      });
    });

    it("expire deletes undelivered records older than the cutoff and counts them", () => {
      const { store, clock } = make();
      store.setDestinations(["a"]);
      store.commit([rec("prediction", 1), rec("alert", 2), rec("event", 3, null)]);
      clock.advance(60_000);
      store.commit([rec("prediction", 4)]);
      const losses = store.expire(clock.nowMs() - 30_000, 100);
      expect(losses).toEqual([
        { reason: "expired", kind: "prediction", count: 1 },
        { reason: "expired", kind: "alert", count: 1 },
        { reason: "expired", kind: "event", count: 1 },
      ]);
      expect(seqs(store.readAfter(0, 10))).toEqual([4]);
      expect(store.ledger().reduce((n, e) => n + e.count, 0)).toBe(3);
    });

    it("evict removes the oldest of a kind (or every second one) and the ledger says exactly how many", () => {
      const { store } = make();
      store.setDestinations(["a"]);
      store.commit(Array.from({ length: 10 }, (_, i) => rec(i % 5 === 4 ? "alert" : "prediction", i)));
      // predictions: seqs 1-4, 6-9; alerts: 5, 10
      store.acknowledge("a", 2);
      expect(store.evict("prediction", 3)).toBe(3);
      expect(seqs(store.readAfter(0, 20))).toEqual([4, 5, 6, 7, 8, 9, 10]);
      // Seqs 1 and 2 were delivered: only seq 3 was lost.
      expect(store.ledger().map((e) => [e.reason, e.kind, e.count])).toEqual([["evicted", "prediction", 1]]);
      // Thin: every second block of the oldest 2×2 predictions (4, 6 | 7, 8): 7 and 8 go.
      expect(store.evict("prediction", 2, "thin")).toBe(2);
      expect(seqs(store.readAfter(0, 20))).toEqual([4, 5, 6, 9, 10]);
      expect(store.ledger()[0]?.count).toBe(3);
      expect(store.counts()).toEqual({ prediction: 3, alert: 2, event: 0 });
    });

    it("reportLosses commits one event with the unreported counts and marks them reported", () => {
      const { store } = make();
      const make1 = (losses: readonly Loss[]): NewRecord => ({
        kind: "event",
        asset: null,
        tsMs: 1,
        data: { type: "data-loss", losses },
      });
      expect(store.reportLosses(make1)).toBeUndefined();
      store.addLosses([
        { reason: "store_full", kind: "prediction", count: 5 },
        { reason: "store_full", kind: "prediction", count: 2 },
        { reason: "evicted", kind: "alert", count: 1 },
      ]);
      const ev = store.reportLosses(make1);
      expect(ev?.kind).toBe("event");
      expect(ev?.data).toEqual({
        type: "data-loss",
        losses: [
          { reason: "evicted", kind: "alert", count: 1 },
          { reason: "store_full", kind: "prediction", count: 7 },
        ],
      });
      expect(store.reportLosses(make1)).toBeUndefined();
      store.addLosses([{ reason: "store_full", kind: "prediction", count: 1 }]);
      expect(store.reportLosses(make1)?.data).toEqual({
        type: "data-loss",
        losses: [{ reason: "store_full", kind: "prediction", count: 1 }],
      });
      expect(store.ledger().find((e) => e.reason === "store_full")).toMatchObject({ count: 8, reported: 8 });
      expect(seqs(store.readAfter(0, 10))).toEqual([1, 2]);
    });

    it("usage grows with records and is reported in bytes", () => {
      const { store } = make();
      const before = store.usage();
      store.commit(Array.from({ length: 200 }, (_, i) => rec("prediction", i)));
      const after = store.usage();
      expect(after.usedBytes).toBeGreaterThan(before.usedBytes);
    });
  });
}

outboxContract("MemoryStore", () => {
  const clock = new ManualClock();
  return { store: new MemoryStore(clock), clock };
});

outboxContract("SqliteStore", () => {
  const clock = new ManualClock();
  return { store: new SqliteStore({ file: path.join(tempDir("vigil-store-"), "vigil.db"), clock }), clock };
});

storeContract("MemoryStore", () => ({ store: new MemoryStore() }));

storeContract("SqliteStore", () => {
  const file = path.join(tempDir("vigil-store-"), "vigil.db");
  let current: Store = new SqliteStore({ file });
  return {
    store: current,
    reopen: () => {
      current.close();
      current = new SqliteStore({ file });
      return current;
    },
  };
});

describe("SqliteStore (durable)", () => {
  const opened: SqliteStore[] = [];
  const openStore = (file: string): SqliteStore => {
    const s = new SqliteStore({ file });
    opened.push(s);
    return s;
  };
  afterEach(() => {
    for (const s of opened.splice(0)) s.close();
  });

  it("kind usage kept by writes equals usage counted afresh after reopening", () => {
    const file = path.join(tempDir("vigil-store-"), "vigil.db");
    const first = openStore(file);
    first.kindUsage(); // start the tally before the writes
    first.commit([rec("prediction", 1), rec("event", 2, null)]);
    first.commit([rec("alert", 3)]);
    const kept = first.kindUsage();
    first.close();
    expect(openStore(file).kindUsage()).toEqual(kept);
  });

  it("counts from the kept tally agree with a fresh count after commits, eviction, thinning, expiry and pruning", () => {
    const file = path.join(tempDir("vigil-store-"), "vigil.db");
    const clock = new ManualClock();
    const store = new SqliteStore({ file, clock });
    opened.push(store);
    store.kindUsage(); // the tally runs from here on
    for (let i = 0; i < 40; i++)
      store.commit([rec("prediction", i), ...(i % 10 === 0 ? [rec("alert", i)] : [])]);
    store.commit([rec("event", 99, null)]);
    store.evict("prediction", 5);
    store.evict("prediction", 8, "thin");
    clock.advance(10_000);
    store.commit([rec("prediction", 100)]);
    store.expire(clock.nowMs() - 5_000, 3);
    store.prune(clock.nowMs(), 2);
    const fresh = new Database(file, { readonly: true });
    try {
      const rows = fresh.prepare("SELECT kind, COUNT(*) AS n FROM records GROUP BY kind").all() as {
        kind: RecordKind;
        n: number;
      }[];
      const expected = { prediction: 0, alert: 0, event: 0 };
      for (const r of rows) expected[r.kind] = r.n;
      expect(store.counts()).toEqual(expected);
    } finally {
      fresh.close();
    }
  });

  it("never reuses a seq, even after the newest records are deleted", () => {
    const file = path.join(tempDir("vigil-store-"), "vigil.db");
    const first = openStore(file);
    first.commit([rec("prediction", 1), rec("prediction", 2), rec("prediction", 3)]);
    first.close();
    const raw = new Database(file);
    raw.prepare("DELETE FROM records WHERE seq >= 2").run();
    raw.close();
    const second = openStore(file);
    expect(second.lastSeq()).toBe(3);
    expect(second.commit([rec("alert", 4)])[0]?.seq).toBe(4);
  });

  it("a CHECK violation rolls the whole commit back, including the seq", () => {
    const file = path.join(tempDir("vigil-store-"), "vigil.db");
    const store = openStore(file);
    store.commit([rec("prediction", 1)]);
    const bogus = { ...rec("prediction", 3), kind: "bogus" as RecordKind };
    let caught: unknown;
    try {
      store.commit([rec("prediction", 2), bogus], [{ asset: "a", model: "m", rule: "r", state: 1 }]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StoreError);
    expect((caught as StoreError).code).toMatch(/^SQLITE_CONSTRAINT/);
    expect((caught as StoreError).retriable).toBe(false);
    expect(store.readAfter(0, 100).map((r) => r.seq)).toEqual([1]);
    expect(store.alertStates()).toEqual([]);
    expect(store.lastSeq()).toBe(1);
    expect(store.commit([rec("alert", 4)])[0]?.seq).toBe(2);
  });

  it("uses WAL and records the schema version as user_version", () => {
    const file = path.join(tempDir("vigil-store-"), "vigil.db");
    const store = openStore(file);
    expect(store.schemaVersion()).toBe(SCHEMA_VERSION);
    store.close();
    const raw = new Database(file, { readonly: true });
    try {
      expect(raw.pragma("journal_mode", { simple: true })).toBe("wal");
      expect(raw.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    } finally {
      raw.close();
    }
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(1);
  });

  it("reopening an up-to-date database runs no migration again", () => {
    const file = path.join(tempDir("vigil-store-"), "vigil.db");
    openStore(file).close();
    const again = openStore(file);
    expect(again.schemaVersion()).toBe(SCHEMA_VERSION);
    expect(again.commit([rec("prediction", 1)])[0]?.seq).toBe(1);
  });

  it("synchronous full is a group commit: NORMAL on the connection, callbacks only after the WAL sync, close settles waiters", async () => {
    const file = path.join(tempDir("vigil-store-"), "vigil.db");
    const store = openStore(file);
    expect(store.pragmaSynchronous()).toBe(1); // NORMAL: no fsync on the main thread
    store.commit([rec("prediction", 1)]);
    let called = false;
    store.afterDurable(() => (called = true));
    // The sync runs on the thread pool: never called back within the call.
    expect(called).toBe(false);
    await new Promise<void>((resolve) => store.afterDurable(() => resolve()));
    expect(called).toBe(true);
    expect(fs.existsSync(`${file}-wal`)).toBe(true);

    // Many commits while a sync runs share the next sync; callbacks keep their order.
    const order: number[] = [];
    for (let i = 0; i < 50; i++) {
      store.commit([rec("prediction", 10 + i)]);
      store.afterDurable(() => order.push(i));
    }
    await new Promise<void>((resolve) => store.afterDurable(() => resolve()));
    expect(order).toEqual(Array.from({ length: 50 }, (_, i) => i));

    // Closing makes everything durable (checkpoint) and calls every waiter.
    store.commit([rec("alert", 99)]);
    let settled: unknown = "no";
    store.afterDurable((err) => (settled = err));
    store.close();
    expect(settled).toBeUndefined();
    const reopened = openStore(file);
    expect(reopened.lastSeq()).toBe(52);
  });

  it("a failed WAL sync is reported to the waiters it covered, once, and not retried in a loop", async () => {
    const file = path.join(tempDir("vigil-store-"), "vigil.db");
    const store = openStore(file);
    let calls = 0;
    const spy = vi.spyOn(fs, "fdatasync").mockImplementation(((
      _fd: number,
      cb: (err: Error | null) => void,
    ) => {
      calls++;
      setImmediate(() => cb(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" })));
    }) as typeof fs.fdatasync);
    try {
      store.commit([rec("prediction", 1)]);
      const err = await new Promise<Error | undefined>((resolve) => store.afterDurable(resolve));
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).message).toMatch(/EIO/);
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
      expect(calls).toBe(1);
    } finally {
      spy.mockRestore();
    }
    store.commit([rec("prediction", 2)]);
    expect(await new Promise<Error | undefined>((resolve) => store.afterDurable(resolve))).toBeUndefined();
  });

  it("closing with commits still waiting syncs the WAL itself (another connection may keep it from checkpointing)", () => {
    const file = path.join(tempDir("vigil-store-"), "vigil.db");
    const store = new SqliteStore({ file });
    const other = new Database(file, { readonly: true });
    const spy = vi.spyOn(fs, "fdatasyncSync");
    try {
      store.commit([rec("prediction", 1)]);
      let settled: unknown = "no";
      store.afterDurable((err) => (settled = err));
      store.close();
      expect(settled).toBeUndefined();
      expect(spy).toHaveBeenCalled();
    } finally {
      spy.mockRestore();
      other.close();
    }
  });

  it("synchronous normal calls afterDurable back at once (no sync promised)", () => {
    const store = new SqliteStore({
      file: path.join(tempDir("vigil-store-"), "vigil.db"),
      synchronous: "normal",
    });
    opened.push(store);
    store.commit([rec("prediction", 1)]);
    let called = false;
    store.afterDurable(() => (called = true));
    expect(called).toBe(true);
  });

  it("migration 3 replaces the (kind, seq) index with partial indexes for alerts and events, keeping every record", () => {
    const file = path.join(tempDir("vigil-store-"), "vigil.db");
    const first = openStore(file);
    first.commit([rec("prediction", 1), rec("alert", 2), rec("event", 3, null), rec("prediction", 4)]);
    first.close();
    // Put the file back to schema 2 as a Vigil before migration 3 left it.
    const raw = new Database(file);
    raw.exec(
      "DROP INDEX records_alert_seq; DROP INDEX records_event_seq; CREATE INDEX records_kind ON records (kind, seq);",
    );
    raw.pragma("user_version = 2");
    raw.close();

    const store = openStore(file);
    expect(store.schemaVersion()).toBe(SCHEMA_VERSION);
    expect(store.readAfter(0, 10).map((r) => [r.seq, r.kind])).toEqual([
      [1, "prediction"],
      [2, "alert"],
      [3, "event"],
      [4, "prediction"],
    ]);
    expect(store.readOutbox(0, 10, "alert").map((r) => r.seq)).toEqual([2]);
    expect(store.readOutbox(0, 10, "event").map((r) => r.seq)).toEqual([3]);
    expect(store.readOutbox(1, 10, "prediction").map((r) => r.seq)).toEqual([4]);
    store.close();

    const check = new Database(file, { readonly: true });
    try {
      const indexes = (
        check
          .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records'")
          .all() as {
          name: string;
        }[]
      ).map((r) => r.name);
      expect(indexes).toContain("records_alert_seq");
      expect(indexes).toContain("records_event_seq");
      expect(indexes).not.toContain("records_kind");
      // The store names the kind as a literal, which SQLite matches against the partial index
      // in any build (reading alerts alone must not scan every prediction).
      const plan = (
        check
          .prepare(
            "EXPLAIN QUERY PLAN SELECT seq FROM records WHERE kind = 'alert' AND seq > ? ORDER BY seq LIMIT 10",
          )
          .all(0) as { detail: string }[]
      )
        .map((r) => r.detail)
        .join("; ");
      expect(plan).toMatch(/USING (COVERING )?INDEX records_alert_seq/);
    } finally {
      check.close();
    }
  });

  it("refuses a database written by a newer Vigil (STORE_TOO_NEW) and leaves it untouched", () => {
    const dir = tempDir("vigil-store-");
    const file = path.join(dir, "vigil.db");
    openStore(file).close();
    const raw = new Database(file);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    let caught: unknown;
    try {
      openStore(file);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StoreError);
    expect((caught as StoreError).code).toBe("STORE_TOO_NEW");
    expect((caught as StoreError).retriable).toBe(false);
    const check = new Database(file, { readonly: true });
    try {
      expect(check.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION + 1);
    } finally {
      check.close();
    }
  });

  it("creates the folder of the database file when missing", () => {
    const file = path.join(tempDir("vigil-store-"), "a", "b", "vigil.db");
    openStore(file).close();
    expect(fs.existsSync(file)).toBe(true);
  });

  it("a fresh database beside a seq floor continues above it (a reset never reissues a seq)", () => {
    const dir = tempDir("vigil-store-");
    const file = path.join(dir, "vigil.db");
    const first = openStore(file);
    first.commit([rec("prediction", 1), rec("prediction", 2)]);
    first.close();
    const floor = readSeqFloor(file);
    expect(floor).toBeGreaterThanOrEqual(2);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
    const fresh = openStore(file);
    const [next] = fresh.commit([rec("prediction", 3)]);
    expect(next?.seq).toBe(floor + 1);
    expect(fresh.lastSeq()).toBe(floor + 1);
  });

  it("the seq floor is moved up before a commit passes it", () => {
    const file = path.join(tempDir("vigil-store-"), "vigil.db");
    const store = openStore(file);
    store.commit(Array.from({ length: SEQ_RESERVE + 5 }, (_, i) => rec("prediction", i)));
    expect(readSeqFloor(file)).toBeGreaterThanOrEqual(SEQ_RESERVE + 5);
  });

  it("a file that is not a database is refused as STORE_CORRUPT", () => {
    const file = path.join(tempDir("vigil-store-"), "vigil.db");
    fs.writeFileSync(file, Buffer.alloc(8192, 0x5a));
    let caught: unknown;
    try {
      openStore(file);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StoreError);
    expect((caught as StoreError).code).toBe("STORE_CORRUPT");
  });

  it("reclaim gives the pages of deleted records back to the file system", () => {
    const file = path.join(tempDir("vigil-store-"), "vigil.db");
    const store = openStore(file);
    const big = { blob: "x".repeat(2_000) };
    for (let i = 0; i < 20; i++)
      store.commit(Array.from({ length: 100 }, (_, j) => ({ ...rec("prediction", i * 100 + j), data: big })));
    store.reclaim();
    const full = fs.statSync(file).size;
    expect(store.prune(Number.MAX_SAFE_INTEGER, 10_000)).toBe(2_000);
    expect(store.usage().freeBytes).toBeGreaterThan(full / 2);
    expect(store.reclaim()).toBeGreaterThan(full / 2);
    expect(fs.statSync(file).size).toBeLessThan(full / 4);
    expect(store.usage().freeBytes).toBe(0);
  });
});
