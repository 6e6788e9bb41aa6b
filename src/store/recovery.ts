/**
 * Opening the durable store at start-up, surviving a corrupt or unreadable database.
 *
 * Contract: `openStore` opens (with a quick integrity check when asked) and returns the store.
 * If the file is not a database, fails the check, or cannot be opened although it exists, the
 * database and its `-wal`/`-shm` files are moved aside as `<file>.corrupt-<ISO time>` and a
 * fresh store is opened in its place (its seq continues above the old one's, from the seq
 * floor); the result then says what happened, and how many records the old file held that
 * were not delivered everywhere, when that can still be read. A database written by a newer
 * Vigil (STORE_TOO_NEW) is never moved: that is refused, as is a folder that cannot be written.
 */

import fs from "node:fs";
import Database from "better-sqlite3";
import { StoreError } from "../errors.js";
import type { Clock } from "../system/clock.js";
import { SqliteStore, type SqliteStoreOptions } from "./sqlite.js";
import type { Loss, RecordKind } from "./types.js";
import { RECORD_KINDS } from "./types.js";

export interface StoreReset {
  reason: string;
  movedTo: string;
  /** Records of the old file no destination had yet, by kind; undefined when unreadable. */
  lost: Loss[] | undefined;
}

export interface OpenedStore {
  store: SqliteStore;
  reset: StoreReset | undefined;
}

function isRecoverable(err: unknown, file: string): boolean {
  if (!(err instanceof StoreError)) return false;
  if (err.code === "STORE_CORRUPT") return true;
  return err.code.startsWith("SQLITE_CANTOPEN") && fs.existsSync(file);
}

/** What the old file held beyond the slowest destination's cursor, if it can still be read. */
function countUndelivered(file: string): Loss[] | undefined {
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    const hasCursors =
      db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cursors'").get() !== undefined;
    const upTo = hasCursors
      ? ((db.prepare("SELECT MIN(seq) AS m FROM cursors").get() as { m: number | null }).m ??
        Number.MAX_SAFE_INTEGER)
      : 0;
    const rows = db
      .prepare("SELECT kind, COUNT(*) AS n FROM records WHERE seq > ? GROUP BY kind")
      .all(upTo) as {
      kind: RecordKind;
      n: number;
    }[];
    return RECORD_KINDS.flatMap((kind) => {
      const n = rows.find((r) => r.kind === kind)?.n ?? 0;
      return n > 0 ? [{ reason: "store_reset" as const, kind, count: n }] : [];
    });
  } catch {
    return undefined;
  } finally {
    db?.close();
  }
}

export function openStore(options: SqliteStoreOptions & { clock: Clock }): OpenedStore {
  try {
    return { store: new SqliteStore(options), reset: undefined };
  } catch (err) {
    if (!isRecoverable(err, options.file)) throw err;
    const stamp = new Date(options.clock.nowMs()).toISOString().replace(/[:.]/g, "-");
    const movedTo = `${options.file}.corrupt-${stamp}`;
    fs.renameSync(options.file, movedTo);
    for (const suffix of ["-wal", "-shm"])
      if (fs.existsSync(options.file + suffix)) fs.renameSync(options.file + suffix, movedTo + suffix);
    const store = new SqliteStore(options);
    return {
      store,
      reset: { reason: (err as StoreError).message, movedTo, lost: countUndelivered(movedTo) },
    };
  }
}
