/**
 * The store seam: the outbox every prediction, alert and event is committed to before it is
 * published, and the alert-rule state that must survive a restart.
 *
 * Contract (every implementation; `test/integration/store-contract.test.ts` runs one suite
 * against each):
 * - `commit` is atomic: all records and state updates of one call land, or none do (it throws).
 * - Each committed record gets a globally unique `id` and a `seq` one greater than any seq this
 *   store ever issued (never reused, also after deletions and restarts of a durable store).
 * - `readAfter(seq)` returns records in `seq` order.
 */

export type RecordKind = "prediction" | "alert" | "event";

export interface NewRecord {
  kind: RecordKind;
  asset: string | null;
  /** Event time of the record, epoch ms. */
  tsMs: number;
  /** The record body: the published payload without `id` and `seq`. */
  data: Record<string, unknown>;
}

export interface StoredRecord extends NewRecord {
  id: string;
  seq: number;
  /** When the store committed it, epoch ms. */
  createdMs: number;
}

export interface AlertStateRow {
  asset: string;
  model: string;
  rule: string;
  state: unknown;
}

/** What the store holds, for metrics and the dashboard (issue 7). */
export interface StoreUsage {
  /** Records and bytes of their stored body (`data` as JSON, UTF-8), by kind. */
  byKind: Record<RecordKind, { records: number; bytes: number }>;
  /** When the oldest record still held was committed, epoch ms; null when empty. */
  oldestCreatedMs: number | null;
}

export interface Store {
  commit(records: readonly NewRecord[], alertStates?: readonly AlertStateRow[]): StoredRecord[];
  alertStates(): AlertStateRow[];
  readAfter(seq: number, limit: number): StoredRecord[];
  /** Records held, by kind. */
  counts(): Record<RecordKind, number>;
  /** The highest seq issued so far (0 when none). */
  lastSeq(): number;
  /**
   * Records, bytes and the oldest record. Cheap after the first call (SQLite scans once, then
   * every write keeps the tally): status, metrics and the dashboard call it often. A method
   * that deletes records must update the tally too.
   */
  usage(): StoreUsage;
  /** Throws a StoreError when a write could not be made now (read-only file, locked, closed). */
  checkWritable(): void;
  close(): void;
}
