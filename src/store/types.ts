/**
 * The store seam: the outbox every prediction, alert and event is committed to before it is
 * published or sent, the alert-rule state that must survive a restart, the per-destination
 * delivery cursors, the dead letters and the data-loss ledger.
 *
 * Contract (every implementation; `test/integration/store-contract.test.ts` runs one suite
 * against each):
 * - `commit` is atomic: all records and state updates of one call land, or none do (it throws).
 * - Each committed record gets a globally unique `id` and a `seq` one greater than any seq this
 *   store ever issued (never reused, also after deletions and restarts of a durable store).
 * - `readAfter(seq)` and `readOutbox(seq)` return records in `seq` order.
 * - Cursors: one per destination, only ever moving forward. A record is deleted by `prune`
 *   only once every destination's cursor has passed it and it is older than the retention;
 *   with no destination registered every record counts as delivered.
 * - Every record the store itself throws away before every destination has it (`expire`,
 *   `evict`, dead-lettering, dropping a dead letter) is added to the ledger in the same
 *   transaction, by reason and kind, so the ledger and the deletions cannot disagree.
 */

export type RecordKind = "prediction" | "alert" | "event";

export const RECORD_KINDS: readonly RecordKind[] = ["prediction", "alert", "event"];

/**
 * Thinning evicts whole blocks of consecutive records (every second block of the oldest), so
 * that SQLite pages empty out and are reused; deleting every second row would leave every
 * page half full and free nothing. Blocks of 32, smaller when fewer rows are asked for.
 */
export function thinBlock(maxRows: number): number {
  return Math.max(1, Math.min(32, maxRows));
}

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
  /** `data` as the JSON text the store wrote, when it serialised it (publishing reuses it). */
  dataJson?: string;
}

/** A stored record as the sync path reads it: the body still as the JSON text it was stored as. */
export interface OutboxRecord {
  seq: number;
  id: string;
  kind: RecordKind;
  asset: string | null;
  tsMs: number;
  createdMs: number;
  dataJson: string;
}

export interface AlertStateRow {
  asset: string;
  model: string;
  rule: string;
  state: unknown;
}

export interface DestinationCursor {
  destination: string;
  /** Every record with seq <= this has been delivered to (or set aside for) the destination. */
  seq: number;
  /** Alerts sent ahead of a closed schedule window: every alert with seq <= this was sent. */
  bypassSeq: number;
}

/** Why the ledger counts a record as lost (or set aside). See docs/sync.md. */
export type LossReason =
  | "evicted"
  | "expired"
  | "dead_lettered"
  | "dead_letter_dropped"
  | "store_full"
  | "store_error"
  | "store_reset";

export interface Loss {
  reason: LossReason;
  kind: RecordKind;
  count: number;
}

export interface LedgerEntry extends Loss {
  /** How much of `count` has already been reported to the cloud in a data-loss event. */
  reported: number;
  firstMs: number;
  lastMs: number;
}

export type DeadLetterStatus = "dead" | "retry";

export interface DeadLetter {
  destination: string;
  record: OutboxRecord;
  reason: string;
  status: DeadLetterStatus;
  attempts: number;
  deadMs: number;
}

export interface DeadLetterFilter {
  destination?: string;
  ids?: readonly string[];
  status?: DeadLetterStatus;
}

export interface StoreUsage {
  /** Bytes the records and tables occupy (pages in use). */
  usedBytes: number;
  /** Bytes the files take on disk (database, plus its write-ahead log). */
  fileBytes: number;
  /** Pages free inside the file, reusable or reclaimable. */
  freeBytes: number;
}

/** What the store holds by kind, for metrics and the dashboard. */
export interface KindUsage {
  /** Records and bytes of their stored body (`data` as JSON, UTF-8), by kind. */
  byKind: Record<RecordKind, { records: number; bytes: number }>;
  /** When the oldest record still held was committed, epoch ms; null when empty. */
  oldestCreatedMs: number | null;
}

export interface Store {
  commit(records: readonly NewRecord[], alertStates?: readonly AlertStateRow[]): StoredRecord[];
  /**
   * Calls `fn` once every commit made before this call is as durable as the store promises
   * (SQLite `synchronous: "full"`: on disk; otherwise at once, synchronously). Callbacks run in
   * the order of the calls; `err` when the sync failed (the records are committed but may not
   * survive a power cut). Closing the store calls every waiting callback. `fn` must not throw.
   */
  afterDurable(fn: (err: Error | undefined) => void): void;
  alertStates(): AlertStateRow[];
  readAfter(seq: number, limit: number): StoredRecord[];
  /** Records with seq > `seq`, in seq order, at most `limit`; only of `kind` when given. */
  readOutbox(seq: number, limit: number, kind?: RecordKind): OutboxRecord[];
  /** Records held, by kind. */
  counts(): Record<RecordKind, number>;
  /** The highest seq issued so far (0 when none). */
  lastSeq(): number;

  /** Registers the destinations: new ones start at 0 (everything held), unknown ones are removed. */
  setDestinations(names: readonly string[]): void;
  cursors(): DestinationCursor[];
  /**
   * Moves a destination's cursor forward to `seq` (never back) and, in the same transaction,
   * sets the given records aside as its dead letters (ledger: `dead_lettered`).
   * `stream: "bypass"` moves the alerts-only cursor instead.
   */
  acknowledge(
    destination: string,
    seq: number,
    deadLetters?: readonly { record: OutboxRecord; reason: string }[],
    stream?: "main" | "bypass",
  ): void;
  deadLetters(filter?: DeadLetterFilter, limit?: number): DeadLetter[];
  /** Marks matching dead letters for another try; returns how many. */
  retryDeadLetters(filter: DeadLetterFilter): number;
  /** After a retry: `delivered` removes them, `dead` sets them aside again with the new reason. */
  resolveDeadLetters(
    destination: string,
    ids: readonly string[],
    outcome: "delivered" | "dead",
    reason?: string,
  ): void;
  /** Deletes matching dead letters (ledger: `dead_letter_dropped`); returns how many. */
  dropDeadLetters(filter: DeadLetterFilter): number;

  addLosses(losses: readonly Loss[]): void;
  ledger(): LedgerEntry[];
  /**
   * If the ledger holds counts not yet reported, commits the record `make` builds from them
   * (a data-loss event) and marks them reported, in one transaction. Returns it, or undefined.
   */
  reportLosses(make: (unreported: readonly Loss[]) => NewRecord): StoredRecord | undefined;

  /** Deletes up to `maxRows` records every destination has, created before `createdBeforeMs`. */
  prune(createdBeforeMs: number, maxRows: number): number;
  /** Deletes records no destination has yet, created before `createdBeforeMs` (ledger: `expired`). */
  expire(createdBeforeMs: number, maxRows: number): Loss[];
  /**
   * Deletes up to `maxRows` of the oldest records of `kind` (ledger: `evicted` for those not yet
   * delivered everywhere). `thin` removes every second block (`thinBlock`) of the oldest
   * 2×maxRows instead, so the time span stays covered at half the resolution.
   */
  evict(kind: RecordKind, maxRows: number, mode?: "oldest" | "thin"): number;
  /** Sizes in bytes; cheap enough to call after every commit. */
  usage(): StoreUsage;
  /** Gives free pages back to the file system; returns the bytes the files shrank by. */
  reclaim(): number;
  /**
   * Records, bytes and the oldest record by kind. Cheap after the first call (a durable store
   * scans once, then every write and delete keeps the tally): status, metrics and the
   * dashboard call it often.
   */
  kindUsage(): KindUsage;
  /** Throws a StoreError when a write could not be made now (read-only file, locked, closed). */
  checkWritable(): void;
  close(): void;
}
