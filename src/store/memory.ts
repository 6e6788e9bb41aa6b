/**
 * In-memory Store: the reference implementation of the contract in `types.ts`, for tests and
 * for `vigil batch`, where nothing needs to outlive the process. Sizes are estimates (the
 * JSON text of each record plus a fixed overhead), good enough for the eviction policy.
 */

import { StoreError, errorMessage } from "../errors.js";
import type { Clock } from "../system/clock.js";
import { systemClock } from "../system/clock.js";
import { uuidv7 } from "./ids.js";
import type {
  AlertStateRow,
  DeadLetter,
  DeadLetterFilter,
  DestinationCursor,
  LedgerEntry,
  Loss,
  NewRecord,
  OutboxRecord,
  RecordKind,
  Store,
  StoredRecord,
  StoreUsage,
  KindUsage,
} from "./types.js";
import { RECORD_KINDS, thinBlock } from "./types.js";

const KINDS: ReadonlySet<string> = new Set<RecordKind>(RECORD_KINDS);
/** Estimated bytes per record beside its JSON body (row, index entries). */
const ROW_OVERHEAD_BYTES = 120;

interface Held {
  record: StoredRecord;
  dataJson: string;
}

function toOutbox(h: Held): OutboxRecord {
  const r = h.record;
  return {
    seq: r.seq,
    id: r.id,
    kind: r.kind,
    asset: r.asset,
    tsMs: r.tsMs,
    createdMs: r.createdMs,
    dataJson: h.dataJson,
  };
}

function matches(d: DeadLetter, f: DeadLetterFilter): boolean {
  return (
    (f.destination === undefined || d.destination === f.destination) &&
    (f.status === undefined || d.status === f.status) &&
    (f.ids === undefined || f.ids.includes(d.record.id))
  );
}

export class MemoryStore implements Store {
  private records: Held[] = [];
  private states = new Map<string, AlertStateRow>();
  private seq = 0;
  private closed = false;
  private readonly cursorMap = new Map<string, DestinationCursor>();
  private dead: DeadLetter[] = [];
  private readonly losses = new Map<string, LedgerEntry>();

  constructor(private readonly clock: Clock = systemClock) {}

  private insert(records: readonly NewRecord[]): { stored: StoredRecord[]; held: Held[] } {
    const now = this.clock.nowMs();
    let held: Held[];
    try {
      held = records.map((r, i) => {
        if (!KINDS.has(r.kind)) throw new Error(`unknown record kind ${JSON.stringify(r.kind)}`);
        const dataJson = JSON.stringify(r.data);
        const data = JSON.parse(dataJson) as Record<string, unknown>;
        return {
          record: { ...r, data, id: uuidv7(now), seq: this.seq + i + 1, createdMs: now },
          dataJson,
        };
      });
    } catch (err) {
      throw new StoreError("STORE_COMMIT", `store commit failed: ${errorMessage(err)}`, { cause: err });
    }
    return { stored: held.map((h) => ({ ...h.record, data: structuredClone(h.record.data) })), held };
  }

  commit(records: readonly NewRecord[], alertStates: readonly AlertStateRow[] = []): StoredRecord[] {
    // Validate and copy everything first, then change state: all or nothing, as in SQLite.
    const { stored, held } = this.insert(records);
    let states: AlertStateRow[];
    try {
      states = alertStates.map((st) => ({ ...st, state: JSON.parse(JSON.stringify(st.state)) as unknown }));
    } catch (err) {
      throw new StoreError("STORE_COMMIT", `store commit failed: ${errorMessage(err)}`, { cause: err });
    }
    this.seq += held.length;
    this.records.push(...held);
    for (const st of states) this.states.set(`${st.asset}\u0000${st.model}\u0000${st.rule}`, st);
    return stored;
  }

  /** Nothing here is ever more durable than it is now: calls back at once. */
  afterDurable(fn: (err: Error | undefined) => void): void {
    fn(undefined);
  }

  alertStates(): AlertStateRow[] {
    return [...this.states.values()].map((s) => structuredClone(s));
  }

  readAfter(seq: number, limit: number): StoredRecord[] {
    return this.records
      .filter((h) => h.record.seq > seq)
      .slice(0, limit)
      .map((h) => ({ ...h.record, data: structuredClone(h.record.data) }));
  }

  readOutbox(seq: number, limit: number, kind?: RecordKind): OutboxRecord[] {
    const out: OutboxRecord[] = [];
    for (const h of this.records) {
      if (out.length >= limit) break;
      if (h.record.seq > seq && (kind === undefined || h.record.kind === kind)) out.push(toOutbox(h));
    }
    return out;
  }

  counts(): Record<RecordKind, number> {
    const out: Record<RecordKind, number> = { prediction: 0, alert: 0, event: 0 };
    for (const h of this.records) out[h.record.kind]++;
    return out;
  }

  lastSeq(): number {
    return this.seq;
  }

  setDestinations(names: readonly string[]): void {
    for (const name of [...this.cursorMap.keys()]) if (!names.includes(name)) this.cursorMap.delete(name);
    for (const name of names)
      if (!this.cursorMap.has(name)) this.cursorMap.set(name, { destination: name, seq: 0, bypassSeq: 0 });
  }

  cursors(): DestinationCursor[] {
    return [...this.cursorMap.values()].map((c) => ({ ...c }));
  }

  /** Every destination has every record with seq <= this. */
  private deliveredUpTo(): number {
    let min = this.seq;
    for (const c of this.cursorMap.values()) min = Math.min(min, c.seq);
    return min;
  }

  acknowledge(
    destination: string,
    seq: number,
    deadLetters: readonly { record: OutboxRecord; reason: string }[] = [],
    stream: "main" | "bypass" = "main",
  ): void {
    const cursor = this.cursorMap.get(destination);
    if (!cursor) throw new StoreError("STORE_NO_DESTINATION", `no cursor for destination ${destination}`);
    const now = this.clock.nowMs();
    for (const { record, reason } of deadLetters) {
      this.dead = this.dead.filter((d) => !(d.destination === destination && d.record.id === record.id));
      this.dead.push({
        destination,
        record: { ...record },
        reason,
        status: "dead",
        attempts: 1,
        deadMs: now,
      });
    }
    this.addLossesAt(
      countByKind(deadLetters.map((d) => d.record.kind)).map(([kind, count]) => ({
        reason: "dead_lettered",
        kind,
        count,
      })),
      now,
    );
    if (stream === "bypass") cursor.bypassSeq = Math.max(cursor.bypassSeq, seq);
    else cursor.seq = Math.max(cursor.seq, seq);
  }

  deadLetters(filter: DeadLetterFilter = {}, limit = Number.MAX_SAFE_INTEGER): DeadLetter[] {
    return this.dead
      .filter((d) => matches(d, filter))
      .sort((a, b) => a.destination.localeCompare(b.destination) || a.record.seq - b.record.seq)
      .slice(0, limit)
      .map((d) => ({ ...d, record: { ...d.record } }));
  }

  retryDeadLetters(filter: DeadLetterFilter): number {
    let n = 0;
    for (const d of this.dead)
      if (matches(d, filter) && d.status !== "retry") {
        d.status = "retry";
        n++;
      }
    return n;
  }

  resolveDeadLetters(
    destination: string,
    ids: readonly string[],
    outcome: "delivered" | "dead",
    reason?: string,
  ): void {
    for (const d of this.dead) {
      if (d.destination !== destination || !ids.includes(d.record.id)) continue;
      if (outcome === "dead") {
        d.status = "dead";
        d.attempts++;
        if (reason !== undefined) d.reason = reason;
      }
    }
    if (outcome === "delivered")
      this.dead = this.dead.filter((d) => !(d.destination === destination && ids.includes(d.record.id)));
  }

  dropDeadLetters(filter: DeadLetterFilter): number {
    const dropped = this.dead.filter((d) => matches(d, filter));
    this.dead = this.dead.filter((d) => !matches(d, filter));
    this.addLossesAt(
      countByKind(dropped.map((d) => d.record.kind)).map(([kind, count]) => ({
        reason: "dead_letter_dropped",
        kind,
        count,
      })),
      this.clock.nowMs(),
    );
    return dropped.length;
  }

  private addLossesAt(losses: readonly Loss[], now: number): void {
    for (const l of losses) {
      if (l.count <= 0) continue;
      const key = `${l.reason}\u0000${l.kind}`;
      const e = this.losses.get(key);
      if (e) {
        e.count += l.count;
        e.lastMs = now;
      } else this.losses.set(key, { ...l, reported: 0, firstMs: now, lastMs: now });
    }
  }

  addLosses(losses: readonly Loss[]): void {
    this.addLossesAt(losses, this.clock.nowMs());
  }

  ledger(): LedgerEntry[] {
    return [...this.losses.values()]
      .map((e) => ({ ...e }))
      .sort((a, b) => a.reason.localeCompare(b.reason) || a.kind.localeCompare(b.kind));
  }

  reportLosses(make: (unreported: readonly Loss[]) => NewRecord): StoredRecord | undefined {
    const unreported = this.ledger()
      .filter((e) => e.count > e.reported)
      .map((e) => ({ reason: e.reason, kind: e.kind, count: e.count - e.reported }));
    if (unreported.length === 0) return undefined;
    const [stored] = this.commit([make(unreported)]);
    for (const e of this.losses.values()) e.reported = e.count;
    return stored;
  }

  prune(createdBeforeMs: number, maxRows: number): number {
    const upTo = this.deliveredUpTo();
    let n = 0;
    this.records = this.records.filter((h) => {
      const drop = n < maxRows && h.record.seq <= upTo && h.record.createdMs < createdBeforeMs;
      if (drop) n++;
      return !drop;
    });
    return n;
  }

  expire(createdBeforeMs: number, maxRows: number): Loss[] {
    const upTo = this.deliveredUpTo();
    const gone: RecordKind[] = [];
    this.records = this.records.filter((h) => {
      const drop = gone.length < maxRows && h.record.seq > upTo && h.record.createdMs < createdBeforeMs;
      if (drop) gone.push(h.record.kind);
      return !drop;
    });
    const losses = countByKind(gone).map(([kind, count]): Loss => ({ reason: "expired", kind, count }));
    this.addLosses(losses);
    return losses;
  }

  evict(kind: RecordKind, maxRows: number, mode: "oldest" | "thin" = "oldest"): number {
    const upTo = this.deliveredUpTo();
    const ofKind = this.records.filter((h) => h.record.kind === kind);
    const victims =
      mode === "thin"
        ? ofKind.slice(0, 2 * maxRows).filter((_, i) => Math.floor(i / thinBlock(maxRows)) % 2 === 1)
        : ofKind.slice(0, maxRows);
    const seqs = new Set(victims.map((h) => h.record.seq));
    this.records = this.records.filter((h) => !seqs.has(h.record.seq));
    const lost = victims.filter((h) => h.record.seq > upTo).length;
    this.addLosses([{ reason: "evicted", kind, count: lost }]);
    return victims.length;
  }

  usage(): StoreUsage {
    let bytes = 0;
    for (const h of this.records) bytes += h.dataJson.length + ROW_OVERHEAD_BYTES;
    return { usedBytes: bytes, fileBytes: bytes, freeBytes: 0 };
  }

  reclaim(): number {
    return 0;
  }

  kindUsage(): KindUsage {
    const byKind: KindUsage["byKind"] = {
      prediction: { records: 0, bytes: 0 },
      alert: { records: 0, bytes: 0 },
      event: { records: 0, bytes: 0 },
    };
    for (const h of this.records) {
      byKind[h.record.kind].records++;
      byKind[h.record.kind].bytes += Buffer.byteLength(h.dataJson);
    }
    return { byKind, oldestCreatedMs: this.records[0]?.record.createdMs ?? null };
  }

  checkWritable(): void {
    if (this.closed) throw new StoreError("STORE_CLOSED", "store is closed");
  }

  close(): void {
    this.closed = true;
  }
}

/** `[kind, count]` pairs for the kinds present, in the order of RECORD_KINDS. */
export function countByKind(kinds: readonly RecordKind[]): [RecordKind, number][] {
  const counts = new Map<RecordKind, number>();
  for (const k of kinds) counts.set(k, (counts.get(k) ?? 0) + 1);
  return RECORD_KINDS.filter((k) => counts.has(k)).map((k) => [k, counts.get(k) ?? 0]);
}
