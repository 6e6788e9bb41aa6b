/**
 * The durable Store on SQLite (better-sqlite3). The only importer of `better-sqlite3`.
 *
 * Contract: as `types.ts`. Durability: WAL journal. With `synchronous: "full"` (the default) a
 * commit is on disk before `afterDurable` calls back, so "committed, made durable, then
 * published" means a subscriber never sees a record a power cut could take. It is a *group
 * commit*: the connection runs `synchronous=NORMAL` (a commit writes the WAL without waiting
 * for the disk, so it never stalls the event loop on an fsync) and the WAL file is
 * `fdatasync`ed on libuv's thread pool, one sync at a time, each covering every commit made
 * before it started. Checkpoints sync the WAL before and the database after (SQLite's NORMAL
 * rules), and closing the last connection checkpoints, so nothing depends on our sync alone.
 * `normal` trades the last few commits on power loss for no fsync at all (`afterDurable`
 * calls back at once); neither loses a commit when only the agent crashes.
 * Schema changes are migrations keyed by `PRAGMA user_version`, applied in one transaction.
 * `seq` is `INTEGER PRIMARY KEY AUTOINCREMENT`, which SQLite never reuses, even after deletes.
 * Errors are thrown as `StoreError`; SQLITE_BUSY, SQLITE_FULL and I/O errors are retriable; a
 * file that is not a database or fails the integrity check is `STORE_CORRUPT` (see recovery.ts).
 *
 * Space: `auto_vacuum = INCREMENTAL`, so pages freed by deletions can be handed back to the
 * file system (`reclaim`); a database made before that is vacuumed once when opened.
 * Seq floor: a sidecar file `<db>.seq` holds a seq above every one issued (reserved in steps of
 * SEQ_RESERVE, written and fsynced before a commit passes it). A fresh database that replaces a
 * corrupt one starts above it, so `seq` stays monotonic for the gateway, not only for one file.
 */

import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { StoreError, errorMessage } from "../errors.js";
import type { Clock } from "../system/clock.js";
import { systemClock } from "../system/clock.js";
import { uuidv7 } from "./ids.js";
import { thinBlock } from "./types.js";
import type {
  AlertStateRow,
  DeadLetter,
  DeadLetterFilter,
  DeadLetterStatus,
  DestinationCursor,
  LedgerEntry,
  Loss,
  LossReason,
  NewRecord,
  OutboxRecord,
  RecordKind,
  Store,
  StoredRecord,
  StoreUsage,
  KindUsage,
} from "./types.js";
import { RECORD_KINDS } from "./types.js";

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
  `CREATE TABLE cursors (
     destination TEXT    PRIMARY KEY,
     seq         INTEGER NOT NULL,
     bypass_seq  INTEGER NOT NULL DEFAULT 0,
     updated_ms  INTEGER NOT NULL
   );
   CREATE TABLE dead_letters (
     destination TEXT    NOT NULL,
     id          TEXT    NOT NULL,
     seq         INTEGER NOT NULL,
     kind        TEXT    NOT NULL,
     asset       TEXT,
     ts_ms       INTEGER NOT NULL,
     created_ms  INTEGER NOT NULL,
     data        TEXT    NOT NULL,
     reason      TEXT    NOT NULL,
     status      TEXT    NOT NULL DEFAULT 'dead' CHECK (status IN ('dead', 'retry')),
     attempts    INTEGER NOT NULL DEFAULT 1,
     dead_ms     INTEGER NOT NULL,
     PRIMARY KEY (destination, id)
   );
   CREATE TABLE ledger (
     reason   TEXT    NOT NULL,
     kind     TEXT    NOT NULL,
     count    INTEGER NOT NULL,
     reported INTEGER NOT NULL DEFAULT 0,
     first_ms INTEGER NOT NULL,
     last_ms  INTEGER NOT NULL,
     PRIMARY KEY (reason, kind)
   );`,
  // The (kind, seq) index cost ~8 µs on every insert, for queries by kind that only the rare
  // kinds need fast: reading alerts alone (the alerts-first stream) or events. Predictions are
  // most rows, so a scan in seq order finds them at once. Queries name the kind as a literal
  // (see kindIs).
  `DROP INDEX records_kind;
   CREATE INDEX records_alert_seq ON records (seq) WHERE kind = 'alert';
   CREATE INDEX records_event_seq ON records (seq) WHERE kind = 'event';`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Seqs reserved in the sidecar at a time: one small fsynced write per this many records. */
export const SEQ_RESERVE = 10_000;

export interface SqliteStoreOptions {
  file: string;
  clock?: Clock;
  synchronous?: "full" | "normal";
  /** Run `PRAGMA quick_check` when opening (a corrupt file is then refused as STORE_CORRUPT). */
  integrityCheck?: boolean;
  /** Keep the `<file>.seq` sidecar (default true). */
  seqSidecar?: boolean;
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
const CORRUPT_CODES = ["SQLITE_CORRUPT", "SQLITE_NOTADB"];

function wrap(op: string, err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  const code = typeof (err as { code?: unknown }).code === "string" ? (err as { code: string }).code : "";
  if (CORRUPT_CODES.some((c) => code.startsWith(c)))
    return new StoreError("STORE_CORRUPT", `store ${op} failed: ${errorMessage(err)} (${code})`, {
      cause: err,
    });
  const retriable = [...RETRIABLE_CODES].some((c) => code.startsWith(c));
  return new StoreError(code || "STORE_FAILED", `store ${op} failed: ${errorMessage(err)}`, {
    retriable,
    cause: err,
  });
}

/** The seq floor kept beside the database, 0 when there is none or it is unreadable. */
export function readSeqFloor(file: string): number {
  try {
    const n = Number(fs.readFileSync(`${file}.seq`, "utf8").trim());
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

function writeSeqFloor(file: string, seq: number): void {
  const tmp = `${file}.seq.tmp`;
  const fd = fs.openSync(tmp, "w");
  try {
    fs.writeSync(fd, `${seq}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, `${file}.seq`);
}

/**
 * `kind = '<kind>'` as a literal: SQLite matches a literal against the partial indexes of
 * migration 3 in any build (a bound parameter only where the build re-prepares on binding).
 * Throws on an unknown kind.
 */
function kindIs(kind: RecordKind): string {
  if (!RECORD_KINDS.includes(kind))
    throw new StoreError("STORE_BAD_KIND", `unknown record kind: ${String(kind)}`);
  return `kind = '${kind}'`;
}

function countKinds(rows: readonly { kind: RecordKind; n: number }[], reason: LossReason): Loss[] {
  return rows
    .filter((r) => r.n > 0)
    .sort((a, b) => RECORD_KINDS.indexOf(a.kind) - RECORD_KINDS.indexOf(b.kind))
    .map((r) => ({ reason, kind: r.kind, count: r.n }));
}

interface DeadLetterRow {
  destination: string;
  id: string;
  seq: number;
  kind: RecordKind;
  asset: string | null;
  ts_ms: number;
  created_ms: number;
  data: string;
  reason: string;
  status: DeadLetterStatus;
  attempts: number;
  dead_ms: number;
}

function outboxOf(r: RecordRow): OutboxRecord {
  return {
    seq: r.seq,
    id: r.id,
    kind: r.kind,
    asset: r.asset,
    tsMs: r.ts_ms,
    createdMs: r.created_ms,
    dataJson: r.data,
  };
}

/** `WHERE` clause and parameters for a dead-letter filter. */
function deadLetterWhere(f: DeadLetterFilter): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  if (f.destination !== undefined) {
    parts.push("destination = ?");
    params.push(f.destination);
  }
  if (f.status !== undefined) {
    parts.push("status = ?");
    params.push(f.status);
  }
  if (f.ids !== undefined) {
    parts.push(`id IN (SELECT value FROM json_each(?))`);
    params.push(JSON.stringify(f.ids));
  }
  return { sql: parts.length > 0 ? `WHERE ${parts.join(" AND ")}` : "", params };
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly clock: Clock;
  private readonly file: string;
  private readonly sidecar: boolean;
  private readonly insertRecord: Database.Statement;
  private readonly upsertState: Database.Statement;
  private readonly addLoss: Database.Statement;
  /** Records and bytes by kind, counted once (at the first `kindUsage()`), then kept by every write and delete. */
  private tally: KindUsage["byKind"] | undefined;
  /** Sizes of the records the transaction in progress inserted; applied to `tally` once it committed. */
  private pendingBytes: [RecordKind, number][] = [];
  private readonly commitTx: (
    records: readonly NewRecord[],
    states: readonly AlertStateRow[],
  ) => StoredRecord[];
  /** Highest seq issued (cached; the database is the truth at open). */
  private seq = 0;
  /** Seq reserved in the sidecar: no seq above it is issued before the sidecar says more. */
  private reserved = 0;
  /** Group commit (`synchronous: "full"`): commits made, commits known on disk, the WAL's fd. */
  private readonly groupSync: boolean;
  private commits = 0;
  private syncedCommits = 0;
  private syncing = false;
  private walFd: number | undefined;
  private durableWaiters: { upTo: number; fn: (err: StoreError | undefined) => void }[] = [];

  /** Opens (creating if needed) and migrates the database. Throws StoreError. */
  constructor(options: SqliteStoreOptions) {
    this.clock = options.clock ?? systemClock;
    this.file = options.file;
    this.sidecar = options.seqSidecar ?? true;
    this.groupSync = options.synchronous !== "normal";
    try {
      fs.mkdirSync(path.dirname(path.resolve(options.file)), { recursive: true });
      this.db = new Database(options.file);
    } catch (err) {
      throw wrap("open", err);
    }
    try {
      this.db.pragma("journal_mode = WAL");
      // Both settings: "full" is a group commit on top of NORMAL (see the header).
      this.db.pragma("synchronous = NORMAL");
      this.db.pragma("busy_timeout = 5000");
      this.db.pragma("foreign_keys = ON");
      if (options.integrityCheck) {
        const result = this.db.pragma("quick_check(1)", { simple: true }) as string;
        if (result !== "ok") throw new StoreError("STORE_CORRUPT", `store integrity check failed: ${result}`);
      }
      this.ensureIncrementalVacuum();
      this.migrate();
      this.seq = this.readLastSeq();
      const floor = this.sidecar ? readSeqFloor(this.file) : 0;
      if (floor > this.seq) {
        // A fresh database after a reset: continue above every seq the old one issued.
        this.db
          .prepare("INSERT OR REPLACE INTO sqlite_sequence (name, seq) VALUES ('records', ?)")
          .run(floor);
        this.seq = floor;
      }
      this.reserved = Math.max(floor, this.seq);
    } catch (err) {
      this.db.close();
      throw wrap("open", err);
    }
    this.insertRecord = this.db.prepare(
      "INSERT INTO records (id, kind, asset, ts_ms, created_ms, data) VALUES (?, ?, ?, ?, ?, ?)",
    );
    this.upsertState = this.db.prepare(
      `INSERT INTO alert_state (asset, model, rule, state, updated_ms) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (asset, model, rule) DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms`,
    );
    this.addLoss = this.db.prepare(
      `INSERT INTO ledger (reason, kind, count, reported, first_ms, last_ms) VALUES (?, ?, ?, 0, ?, ?)
       ON CONFLICT (reason, kind) DO UPDATE SET count = count + excluded.count, last_ms = excluded.last_ms`,
    );
    this.commitTx = this.db.transaction((records: readonly NewRecord[], states: readonly AlertStateRow[]) => {
      const now = this.clock.nowMs();
      const out: StoredRecord[] = [];
      for (const r of records) {
        const id = uuidv7(now);
        const json = JSON.stringify(r.data);
        const info = this.insertRecord.run(id, r.kind, r.asset, Math.round(r.tsMs), now, json);
        this.pendingBytes.push([r.kind, Buffer.byteLength(json)]);
        out.push({ ...r, id, seq: Number(info.lastInsertRowid), createdMs: now, dataJson: json });
      }
      for (const s of states) this.upsertState.run(s.asset, s.model, s.rule, JSON.stringify(s.state), now);
      return out;
    });
  }

  private ensureIncrementalVacuum(): void {
    if ((this.db.pragma("auto_vacuum", { simple: true }) as number) === 2) return;
    this.db.pragma("auto_vacuum = INCREMENTAL");
    // Takes effect on an existing database only through a VACUUM (instant when it is empty).
    this.db.exec("VACUUM");
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

  private readLastSeq(): number {
    const row = this.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'records'").get() as
      { seq: number } | undefined;
    return row?.seq ?? 0;
  }

  /** Before issuing seqs above the reservation, move the reservation up (write, fsync, rename). */
  private reserveSeqs(count: number): void {
    if (!this.sidecar || this.seq + count <= this.reserved) return;
    const next = this.seq + count + SEQ_RESERVE;
    try {
      writeSeqFloor(this.file, next);
    } catch (err) {
      throw wrap("seq reservation", err);
    }
    this.reserved = next;
  }

  private run<T>(op: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw wrap(op, err);
    }
  }

  /** Applies (after a commit) or drops (after a rollback) the sizes of the rows just inserted. */
  private settleTally(committed: boolean): void {
    if (committed && this.tally)
      for (const [kind, bytes] of this.pendingBytes) {
        this.tally[kind].records++;
        this.tally[kind].bytes += bytes;
      }
    this.pendingBytes = [];
  }

  /** Takes deleted rows (`kind`, `bytes`) off the tally. */
  private untally(rows: readonly { kind: RecordKind; bytes: number }[]): void {
    if (!this.tally) return;
    for (const r of rows) {
      this.tally[r.kind].records--;
      this.tally[r.kind].bytes -= r.bytes;
    }
  }

  commit(records: readonly NewRecord[], alertStates: readonly AlertStateRow[] = []): StoredRecord[] {
    this.reserveSeqs(records.length);
    let out: StoredRecord[];
    try {
      out = this.run("commit", () => this.commitTx(records, alertStates));
    } catch (err) {
      this.settleTally(false);
      throw err;
    }
    this.settleTally(true);
    const last = out.at(-1);
    if (last) this.seq = last.seq;
    this.commits++;
    // Every commit is made durable soon, whether or not someone waits for it.
    if (this.groupSync) this.startSync();
    return out;
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
    return this.readOutbox(seq, limit).map((r) => ({
      seq: r.seq,
      id: r.id,
      kind: r.kind,
      asset: r.asset,
      tsMs: r.tsMs,
      createdMs: r.createdMs,
      data: JSON.parse(r.dataJson) as Record<string, unknown>,
      dataJson: r.dataJson,
    }));
  }

  readOutbox(seq: number, limit: number, kind?: RecordKind): OutboxRecord[] {
    return this.run("read", () => {
      const rows = (
        kind === undefined
          ? this.db
              .prepare(
                "SELECT seq, id, kind, asset, ts_ms, created_ms, data FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
              )
              .all(seq, limit)
          : this.db
              .prepare(
                `SELECT seq, id, kind, asset, ts_ms, created_ms, data FROM records WHERE ${kindIs(kind)} AND seq > ? ORDER BY seq LIMIT ?`,
              )
              .all(seq, limit)
      ) as RecordRow[];
      return rows.map(outboxOf);
    });
  }

  counts(): Record<RecordKind, number> {
    // The kept tally when it runs (no scan: eviction asks every round); else one count.
    if (this.tally)
      return {
        prediction: this.tally.prediction.records,
        alert: this.tally.alert.records,
        event: this.tally.event.records,
      };
    const out: Record<RecordKind, number> = { prediction: 0, alert: 0, event: 0 };
    const rows = this.db.prepare("SELECT kind, COUNT(*) AS n FROM records GROUP BY kind").all() as {
      kind: RecordKind;
      n: number;
    }[];
    for (const r of rows) out[r.kind] = r.n;
    return out;
  }

  lastSeq(): number {
    return this.readLastSeq();
  }

  setDestinations(names: readonly string[]): void {
    this.run("set destinations", () =>
      this.db.transaction(() => {
        const now = this.clock.nowMs();
        this.db
          .prepare("DELETE FROM cursors WHERE destination NOT IN (SELECT value FROM json_each(?))")
          .run(JSON.stringify(names));
        const add = this.db.prepare(
          "INSERT OR IGNORE INTO cursors (destination, seq, bypass_seq, updated_ms) VALUES (?, 0, 0, ?)",
        );
        for (const n of names) add.run(n, now);
      })(),
    );
  }

  cursors(): DestinationCursor[] {
    const rows = this.db
      .prepare("SELECT destination, seq, bypass_seq FROM cursors ORDER BY destination")
      .all() as { destination: string; seq: number; bypass_seq: number }[];
    return rows.map((r) => ({ destination: r.destination, seq: r.seq, bypassSeq: r.bypass_seq }));
  }

  /** Every destination has every record with seq <= this (all of them when there is none). */
  private deliveredUpTo(): number {
    const row = this.db.prepare("SELECT MIN(seq) AS m FROM cursors").get() as { m: number | null };
    return row.m ?? Number.MAX_SAFE_INTEGER;
  }

  acknowledge(
    destination: string,
    seq: number,
    deadLetters: readonly { record: OutboxRecord; reason: string }[] = [],
    stream: "main" | "bypass" = "main",
  ): void {
    // Not synced on its own: a power cut may lose the last cursor moves, so the last batches
    // are sent again (the receiver de-duplicates on id); the next synced commit covers them.
    this.acknowledgeTx(destination, seq, deadLetters, stream);
  }

  private acknowledgeTx(
    destination: string,
    seq: number,
    deadLetters: readonly { record: OutboxRecord; reason: string }[],
    stream: "main" | "bypass",
  ): void {
    this.run("acknowledge", () =>
      this.db.transaction(() => {
        const now = this.clock.nowMs();
        const column = stream === "bypass" ? "bypass_seq" : "seq";
        const info = this.db
          .prepare(`UPDATE cursors SET ${column} = MAX(${column}, ?), updated_ms = ? WHERE destination = ?`)
          .run(seq, now, destination);
        if (info.changes === 0)
          throw new StoreError("STORE_NO_DESTINATION", `no cursor for destination ${destination}`);
        const put = this.db.prepare(
          `INSERT OR REPLACE INTO dead_letters
             (destination, id, seq, kind, asset, ts_ms, created_ms, data, reason, status, attempts, dead_ms)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'dead', 1, ?)`,
        );
        const kinds = new Map<RecordKind, number>();
        for (const { record: r, reason } of deadLetters) {
          put.run(destination, r.id, r.seq, r.kind, r.asset, r.tsMs, r.createdMs, r.dataJson, reason, now);
          kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
        }
        for (const [kind, n] of kinds) this.addLoss.run("dead_lettered", kind, n, now, now);
      })(),
    );
  }

  deadLetters(filter: DeadLetterFilter = {}, limit = -1): DeadLetter[] {
    const w = deadLetterWhere(filter);
    const rows = this.db
      .prepare(`SELECT * FROM dead_letters ${w.sql} ORDER BY destination, seq LIMIT ?`)
      .all(...w.params, limit) as DeadLetterRow[];
    return rows.map((r) => ({
      destination: r.destination,
      record: outboxOf(r),
      reason: r.reason,
      status: r.status,
      attempts: r.attempts,
      deadMs: r.dead_ms,
    }));
  }

  retryDeadLetters(filter: DeadLetterFilter): number {
    const w = deadLetterWhere({ ...filter, status: "dead" });
    return this.run(
      "retry dead letters",
      () => this.db.prepare(`UPDATE dead_letters SET status = 'retry' ${w.sql}`).run(...w.params).changes,
    );
  }

  resolveDeadLetters(
    destination: string,
    ids: readonly string[],
    outcome: "delivered" | "dead",
    reason?: string,
  ): void {
    const w = deadLetterWhere({ destination, ids });
    this.run("resolve dead letters", () => {
      if (outcome === "delivered") this.db.prepare(`DELETE FROM dead_letters ${w.sql}`).run(...w.params);
      else
        this.db
          .prepare(
            `UPDATE dead_letters SET status = 'dead', attempts = attempts + 1, reason = COALESCE(?, reason), dead_ms = ? ${w.sql}`,
          )
          .run(reason ?? null, this.clock.nowMs(), ...w.params);
    });
  }

  dropDeadLetters(filter: DeadLetterFilter): number {
    const w = deadLetterWhere(filter);
    return this.run("drop dead letters", () =>
      this.db.transaction(() => {
        const now = this.clock.nowMs();
        const kinds = this.db
          .prepare(`SELECT kind, COUNT(*) AS n FROM dead_letters ${w.sql} GROUP BY kind`)
          .all(...w.params) as { kind: RecordKind; n: number }[];
        for (const l of countKinds(kinds, "dead_letter_dropped"))
          this.addLoss.run(l.reason, l.kind, l.count, now, now);
        return this.db.prepare(`DELETE FROM dead_letters ${w.sql}`).run(...w.params).changes;
      })(),
    );
  }

  addLosses(losses: readonly Loss[]): void {
    this.run("ledger", () =>
      this.db.transaction(() => {
        const now = this.clock.nowMs();
        for (const l of losses) if (l.count > 0) this.addLoss.run(l.reason, l.kind, l.count, now, now);
      })(),
    );
  }

  ledger(): LedgerEntry[] {
    const rows = this.db
      .prepare("SELECT reason, kind, count, reported, first_ms, last_ms FROM ledger ORDER BY reason, kind")
      .all() as {
      reason: LossReason;
      kind: RecordKind;
      count: number;
      reported: number;
      first_ms: number;
      last_ms: number;
    }[];
    return rows.map((r) => ({
      reason: r.reason,
      kind: r.kind,
      count: r.count,
      reported: r.reported,
      firstMs: r.first_ms,
      lastMs: r.last_ms,
    }));
  }

  reportLosses(make: (unreported: readonly Loss[]) => NewRecord): StoredRecord | undefined {
    this.reserveSeqs(1);
    let out: StoredRecord | undefined;
    try {
      out = this.run("report losses", () =>
        this.db.transaction((): StoredRecord | undefined => {
          const unreported = this.db
            .prepare(
              "SELECT reason, kind, count - reported AS n FROM ledger WHERE count > reported ORDER BY reason, kind",
            )
            .all() as { reason: LossReason; kind: RecordKind; n: number }[];
          if (unreported.length === 0) return undefined;
          const [stored] = this.commitTx(
            [make(unreported.map((u) => ({ reason: u.reason, kind: u.kind, count: u.n })))],
            [],
          );
          this.db.prepare("UPDATE ledger SET reported = count").run();
          return stored;
        })(),
      );
    } catch (err) {
      this.settleTally(false);
      throw err;
    }
    this.settleTally(true);
    if (out) this.seq = out.seq;
    return out;
  }

  prune(createdBeforeMs: number, maxRows: number): number {
    return this.run("prune", () => {
      const upTo = this.deliveredUpTo();
      const deleted = this.db
        .prepare(
          `DELETE FROM records WHERE seq IN (
             SELECT seq FROM records WHERE seq <= ? AND created_ms < ? ORDER BY seq LIMIT ?)
           RETURNING kind, octet_length(data) AS bytes`,
        )
        .all(upTo, createdBeforeMs, maxRows) as { kind: RecordKind; bytes: number }[];
      this.untally(deleted);
      return deleted.length;
    });
  }

  expire(createdBeforeMs: number, maxRows: number): Loss[] {
    let pendingUntally: { kind: RecordKind; bytes: number }[] = [];
    const losses = this.run("expire", () =>
      this.db.transaction(() => {
        const upTo = this.deliveredUpTo();
        const now = this.clock.nowMs();
        const victims = `SELECT seq FROM records WHERE seq > ? AND created_ms < ? ORDER BY seq LIMIT ?`;
        const kinds = this.db
          .prepare(`SELECT kind, COUNT(*) AS n FROM records WHERE seq IN (${victims}) GROUP BY kind`)
          .all(upTo, createdBeforeMs, maxRows) as { kind: RecordKind; n: number }[];
        const deleted = this.db
          .prepare(
            `DELETE FROM records WHERE seq IN (${victims}) RETURNING kind, octet_length(data) AS bytes`,
          )
          .all(upTo, createdBeforeMs, maxRows) as { kind: RecordKind; bytes: number }[];
        pendingUntally = deleted;
        const losses = countKinds(kinds, "expired");
        for (const l of losses) this.addLoss.run(l.reason, l.kind, l.count, now, now);
        return losses;
      })(),
    );
    this.untally(pendingUntally);
    return losses;
  }

  evict(kind: RecordKind, maxRows: number, mode: "oldest" | "thin" = "oldest"): number {
    let removed: { kind: RecordKind; bytes: number }[] = [];
    const deleted = this.run("evict", () =>
      this.db.transaction(() => {
        const upTo = this.deliveredUpTo();
        this.db.exec("CREATE TEMP TABLE IF NOT EXISTS evict_victims (seq INTEGER PRIMARY KEY)");
        this.db.exec("DELETE FROM evict_victims");
        if (mode === "thin")
          this.db
            .prepare(
              `INSERT INTO evict_victims SELECT seq FROM (SELECT seq, row_number() OVER (ORDER BY seq) - 1 AS rn FROM
                 (SELECT seq FROM records WHERE ${kindIs(kind)} ORDER BY seq LIMIT ?)) WHERE (rn / ?) % 2 = 1`,
            )
            .run(2 * maxRows, thinBlock(maxRows));
        else
          this.db
            .prepare(
              `INSERT INTO evict_victims SELECT seq FROM records WHERE ${kindIs(kind)} ORDER BY seq LIMIT ?`,
            )
            .run(maxRows);
        const lost = (
          this.db.prepare("SELECT COUNT(*) AS n FROM evict_victims WHERE seq > ?").get(upTo) as { n: number }
        ).n;
        removed = this.db
          .prepare(
            "DELETE FROM records WHERE seq IN (SELECT seq FROM evict_victims) RETURNING kind, octet_length(data) AS bytes",
          )
          .all() as { kind: RecordKind; bytes: number }[];
        this.db.exec("DELETE FROM evict_victims");
        if (lost > 0) {
          const now = this.clock.nowMs();
          this.addLoss.run("evicted", kind, lost, now, now);
        }
        return removed.length;
      })(),
    );
    this.untally(removed);
    return deleted;
  }

  kindUsage(): KindUsage {
    return this.run("usage", () => {
      if (!this.tally) {
        // One full scan (about 1 µs a record), then kept up to date by every write and delete.
        const tally: KindUsage["byKind"] = {
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
    });
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

  usage(): StoreUsage {
    return this.run("usage", () => {
      const pageSize = this.db.pragma("page_size", { simple: true }) as number;
      const pages = this.db.pragma("page_count", { simple: true }) as number;
      const free = this.db.pragma("freelist_count", { simple: true }) as number;
      return {
        usedBytes: (pages - free) * pageSize,
        fileBytes: pages * pageSize + this.walBytes(),
        freeBytes: free * pageSize,
      };
    });
  }

  private walBytes(): number {
    try {
      return fs.statSync(`${this.file}-wal`).size;
    } catch {
      return 0;
    }
  }

  reclaim(): number {
    return this.run("reclaim", () => {
      const before = fs.statSync(this.file).size + this.walBytes();
      this.db.pragma("incremental_vacuum");
      this.db.pragma("wal_checkpoint(TRUNCATE)");
      const after = fs.statSync(this.file).size + this.walBytes();
      return Math.max(0, before - after);
    });
  }

  /** Schema version of the open database (for status and tests). */
  /** The connection's `PRAGMA synchronous` (1 = NORMAL), for tests and diagnostics. */
  pragmaSynchronous(): number {
    return this.db.pragma("synchronous", { simple: true }) as number;
  }

  schemaVersion(): number {
    return this.db.pragma("user_version", { simple: true }) as number;
  }

  afterDurable(fn: (err: StoreError | undefined) => void): void {
    if (!this.groupSync || this.syncedCommits >= this.commits || !this.db.open) {
      fn(undefined);
      return;
    }
    this.durableWaiters.push({ upTo: this.commits, fn });
    this.startSync();
  }

  /** Opens the WAL for syncing (once; it exists after the first commit) and syncs its folder once. */
  private wal(): number {
    if (this.walFd === undefined) {
      this.walFd = fs.openSync(`${this.file}-wal`, "r+");
      // The WAL's directory entry must be on disk too for a new file to survive a power cut.
      const dirFd = fs.openSync(path.dirname(path.resolve(this.file)), "r");
      try {
        fs.fsyncSync(dirFd);
      } finally {
        fs.closeSync(dirFd);
      }
    }
    return this.walFd;
  }

  /** Starts one fdatasync of the WAL if none is running and a commit is not yet known durable. */
  private startSync(): void {
    if (this.syncing || this.syncedCommits >= this.commits || !this.db.open) return;
    const upTo = this.commits;
    let fd: number;
    try {
      fd = this.wal();
    } catch (err) {
      // Those commits are reported failed and not tried again (no loop); later commits try anew.
      this.syncedCommits = Math.max(this.syncedCommits, upTo);
      this.settleWaiters(upTo, wrap("sync", err));
      return;
    }
    this.syncing = true;
    fs.fdatasync(fd, (err) => {
      this.syncing = false;
      if (!this.db.open) {
        this.closeWal();
        return;
      }
      // A failed sync is reported to the waiters it covered and not retried: on Linux a retry
      // may "succeed" after the kernel dropped the dirty pages (so it would prove nothing), and
      // retrying at once would spin. Later commits get syncs of their own (docs/sync.md).
      this.syncedCommits = Math.max(this.syncedCommits, upTo);
      this.settleWaiters(upTo, err ? wrap("sync", err) : undefined);
      this.startSync();
    });
  }

  /** Calls back, in order, every waiter whose commits the sync up to `upTo` covered. */
  private settleWaiters(upTo: number, err: StoreError | undefined): void {
    let n = 0;
    while (n < this.durableWaiters.length && (this.durableWaiters[n]?.upTo ?? Infinity) <= upTo) n++;
    for (const w of this.durableWaiters.splice(0, n)) {
      try {
        w.fn(err);
      } catch {
        // afterDurable callbacks must not throw; one that does cannot stop the others.
      }
    }
  }

  private closeWal(): void {
    if (this.walFd === undefined || this.syncing) return;
    try {
      fs.closeSync(this.walFd);
    } catch {
      // already gone; nothing to release
    }
    this.walFd = undefined;
  }

  close(): void {
    // Commits still waiting are synced here: closing checkpoints and syncs only when this is the
    // last connection (a CLI may hold the database open too).
    let err: StoreError | undefined;
    if (this.groupSync && this.syncedCommits < this.commits && this.walFd !== undefined) {
      try {
        fs.fdatasyncSync(this.walFd);
      } catch (e) {
        err = wrap("sync", e);
      }
    }
    if (this.db.open) this.db.close();
    this.syncedCommits = this.commits;
    this.settleWaiters(Infinity, err);
    this.closeWal();
  }
}
