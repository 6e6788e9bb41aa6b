/**
 * The durable Store on SQLite (better-sqlite3). The only importer of `better-sqlite3`.
 *
 * Contract: as `types.ts`. Durability: WAL journal with `synchronous=FULL` by default, so a
 * commit that returned survives a power cut — the promise "committed before published" means
 * a subscriber never sees a record the store could lose. `normal` trades the last few
 * commits on power loss for fewer fsyncs (configurable, `store.synchronous`).
 * Schema changes are migrations keyed by `PRAGMA user_version`, applied in one transaction.
 * `seq` is `INTEGER PRIMARY KEY AUTOINCREMENT`, which SQLite never reuses, even after deletes.
 * Errors are thrown as `StoreError`; SQLITE_BUSY, SQLITE_FULL and I/O errors are retriable.
 */

import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { StoreError, errorMessage } from "../errors.js";
import type { Clock } from "../system/clock.js";
import { systemClock } from "../system/clock.js";
import { uuidv7 } from "./ids.js";
import type { AlertStateRow, NewRecord, RecordKind, Store, StoredRecord, StoreUsage } from "./types.js";

/** Migration N brings the database from user_version N to N+1. Append only; never edit one. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE records (
     seq        INTEGER PRIMARY KEY AUTOINCREMENT,
     id         TEXT    NOT NULL UNIQUE,
     kind       TEXT    NOT NULL CHECK (kind IN ('prediction', 'alert', 'event')),
     asset      TEXT,
     ts_ms      INTEGER NOT NULL,
     created_ms INTEGER NOT NULL,
     data       TEXT    NOT NULL
   );
   CREATE INDEX records_kind ON records (kind, seq);
   CREATE TABLE alert_state (
     asset      TEXT NOT NULL,
     model      TEXT NOT NULL,
     rule       TEXT NOT NULL,
     state      TEXT NOT NULL,
     updated_ms INTEGER NOT NULL,
     PRIMARY KEY (asset, model, rule)
   );
   CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export interface SqliteStoreOptions {
  file: string;
  clock?: Clock;
  synchronous?: "full" | "normal";
}

interface RecordRow {
  seq: number;
  id: string;
  kind: RecordKind;
  asset: string | null;
  ts_ms: number;
  created_ms: number;
  data: string;
}

const RETRIABLE_CODES = new Set(["SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR"]);

function wrap(op: string, err: unknown): StoreError {
  const code = typeof (err as { code?: unknown }).code === "string" ? (err as { code: string }).code : "";
  const retriable = [...RETRIABLE_CODES].some((c) => code.startsWith(c));
  return new StoreError(code || "STORE_FAILED", `store ${op} failed: ${errorMessage(err)}`, {
    retriable,
    cause: err,
  });
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly clock: Clock;
  private readonly insertRecord: Database.Statement;
  private readonly upsertState: Database.Statement;
  /** Records and bytes by kind, counted once (at the first `usage()`) and then kept by every write. */
  private tally: StoreUsage["byKind"] | undefined;
  /** Sizes of the records of the commit in progress; applied to `tally` once it committed. */
  private pendingBytes: [RecordKind, number][] = [];
  private readonly commitTx: (
    records: readonly NewRecord[],
    states: readonly AlertStateRow[],
  ) => StoredRecord[];

  /** Opens (creating if needed) and migrates the database. Throws StoreError. */
  constructor(options: SqliteStoreOptions) {
    this.clock = options.clock ?? systemClock;
    try {
      fs.mkdirSync(path.dirname(path.resolve(options.file)), { recursive: true });
      this.db = new Database(options.file);
    } catch (err) {
      throw wrap("open", err);
    }
    try {
      this.db.pragma("journal_mode = WAL");
      this.db.pragma(`synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
      this.db.pragma("busy_timeout = 5000");
      this.db.pragma("foreign_keys = ON");
      this.migrate();
    } catch (err) {
      this.db.close();
      throw err instanceof StoreError ? err : wrap("open", err);
    }
    this.insertRecord = this.db.prepare(
      "INSERT INTO records (id, kind, asset, ts_ms, created_ms, data) VALUES (?, ?, ?, ?, ?, ?)",
    );
    this.upsertState = this.db.prepare(
      `INSERT INTO alert_state (asset, model, rule, state, updated_ms) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (asset, model, rule) DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms`,
    );
    this.commitTx = this.db.transaction((records: readonly NewRecord[], states: readonly AlertStateRow[]) => {
      const now = this.clock.nowMs();
      const out: StoredRecord[] = [];
      this.pendingBytes = [];
      for (const r of records) {
        const id = uuidv7(now);
        const body = JSON.stringify(r.data);
        this.pendingBytes.push([r.kind, Buffer.byteLength(body)]);
        const info = this.insertRecord.run(id, r.kind, r.asset, Math.round(r.tsMs), now, body);
        out.push({ ...r, id, seq: Number(info.lastInsertRowid), createdMs: now });
      }
      for (const s of states) this.upsertState.run(s.asset, s.model, s.rule, JSON.stringify(s.state), now);
      return out;
    });
  }

  private migrate(): void {
    const current = this.db.pragma("user_version", { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      throw new StoreError(
        "STORE_TOO_NEW",
        `database schema version ${current} is newer than this Vigil understands (${MIGRATIONS.length})`,
      );
    }
    if (current === MIGRATIONS.length) return;
    this.db.transaction(() => {
      for (let v = current; v < MIGRATIONS.length; v++) {
        this.db.exec(MIGRATIONS[v] ?? "");
      }
      this.db.pragma(`user_version = ${MIGRATIONS.length}`);
    })();
  }

  commit(records: readonly NewRecord[], alertStates: readonly AlertStateRow[] = []): StoredRecord[] {
    try {
      const stored = this.commitTx(records, alertStates);
      if (this.tally) {
        for (const [kind, bytes] of this.pendingBytes) {
          this.tally[kind].records++;
          this.tally[kind].bytes += bytes;
        }
      }
      return stored;
    } catch (err) {
      throw wrap("commit", err);
    }
  }

  alertStates(): AlertStateRow[] {
    const rows = this.db.prepare("SELECT asset, model, rule, state FROM alert_state").all() as {
      asset: string;
      model: string;
      rule: string;
      state: string;
    }[];
    return rows.map((r) => ({
      asset: r.asset,
      model: r.model,
      rule: r.rule,
      state: JSON.parse(r.state) as unknown,
    }));
  }

  readAfter(seq: number, limit: number): StoredRecord[] {
    const rows = this.db
      .prepare(
        "SELECT seq, id, kind, asset, ts_ms, created_ms, data FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
      )
      .all(seq, limit) as RecordRow[];
    return rows.map((r) => ({
      seq: r.seq,
      id: r.id,
      kind: r.kind,
      asset: r.asset,
      tsMs: r.ts_ms,
      createdMs: r.created_ms,
      data: JSON.parse(r.data) as Record<string, unknown>,
    }));
  }

  counts(): Record<RecordKind, number> {
    const out: Record<RecordKind, number> = { prediction: 0, alert: 0, event: 0 };
    const rows = this.db.prepare("SELECT kind, COUNT(*) AS n FROM records GROUP BY kind").all() as {
      kind: RecordKind;
      n: number;
    }[];
    for (const r of rows) out[r.kind] = r.n;
    return out;
  }

  lastSeq(): number {
    const row = this.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'records'").get() as
      { seq: number } | undefined;
    return row?.seq ?? 0;
  }

  usage(): StoreUsage {
    try {
      if (!this.tally) {
        // One full scan (about 1 µs a record), then kept up to date by commit.
        const tally: StoreUsage["byKind"] = {
          prediction: { records: 0, bytes: 0 },
          alert: { records: 0, bytes: 0 },
          event: { records: 0, bytes: 0 },
        };
        const rows = this.db
          .prepare(
            "SELECT kind, COUNT(*) AS n, COALESCE(SUM(octet_length(data)), 0) AS bytes FROM records GROUP BY kind",
          )
          .all() as { kind: RecordKind; n: number; bytes: number }[];
        for (const r of rows) tally[r.kind] = { records: r.n, bytes: r.bytes };
        this.tally = tally;
      }
      const oldest = this.db.prepare("SELECT created_ms FROM records ORDER BY seq LIMIT 1").get() as
        { created_ms: number } | undefined;
      return {
        byKind: {
          prediction: { ...this.tally.prediction },
          alert: { ...this.tally.alert },
          event: { ...this.tally.event },
        },
        oldestCreatedMs: oldest?.created_ms ?? null,
      };
    } catch (err) {
      throw wrap("usage", err);
    }
  }

  checkWritable(): void {
    if (!this.db.open) throw new StoreError("STORE_CLOSED", "store is closed");
    try {
      // Takes the write lock (fails on a read-only file or database) and releases it at once.
      this.db.exec("BEGIN IMMEDIATE; ROLLBACK;");
    } catch (err) {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      throw wrap("write check", err);
    }
  }

  /** Schema version of the open database (for status and tests). */
  schemaVersion(): number {
    return this.db.pragma("user_version", { simple: true }) as number;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
