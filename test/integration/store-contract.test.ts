/**
 * One contract suite for the Store seam (ARCHITECTURE habit 4), run against every
 * implementation: the in-memory reference and SQLite in a temp folder. Durable-only
 * properties (reopen, WAL, migrations) run for SQLite alone.
 */

import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { StoreError } from "../../src/errors.js";
import { MemoryStore } from "../../src/store/memory.js";
import { SCHEMA_VERSION, SqliteStore } from "../../src/store/sqlite.js";
import type { AlertStateRow, NewRecord, RecordKind, Store } from "../../src/store/types.js";
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
      expect(store.usage()).toEqual({
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
      const u = store.usage();
      expect(u.byKind.prediction).toEqual({ records: 2, bytes: bytes("prediction") });
      expect(u.byKind.alert).toEqual({ records: 2, bytes: bytes("alert") });
      expect(u.byKind.event).toEqual({ records: 0, bytes: 0 });
      expect(u.oldestCreatedMs).toBe(stored[0]?.createdMs);
      // A failed commit changes nothing.
      expect(() =>
        store.commit([rec("event", 9, null), { ...rec("alert", 10), kind: "bogus" as RecordKind }]),
      ).toThrow();
      expect(store.usage()).toEqual(u);
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

  it("usage kept by writes equals usage counted afresh after reopening", () => {
    const file = path.join(tempDir("vigil-store-"), "vigil.db");
    const first = openStore(file);
    first.usage(); // start the tally before the writes
    first.commit([rec("prediction", 1), rec("event", 2, null)]);
    first.commit([rec("alert", 3)]);
    const kept = first.usage();
    first.close();
    expect(openStore(file).usage()).toEqual(kept);
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
});
