/**
 * In-memory Store: the reference implementation of the contract in `types.ts`, for tests and
 * for `vigil batch`, where nothing needs to outlive the process.
 */

import { StoreError, errorMessage } from "../errors.js";
import type { Clock } from "../system/clock.js";
import { systemClock } from "../system/clock.js";
import { uuidv7 } from "./ids.js";
import type { AlertStateRow, NewRecord, RecordKind, Store, StoredRecord, StoreUsage } from "./types.js";

const KINDS: ReadonlySet<string> = new Set<RecordKind>(["prediction", "alert", "event"]);

export class MemoryStore implements Store {
  private records: StoredRecord[] = [];
  private states = new Map<string, AlertStateRow>();
  private seq = 0;
  private closed = false;

  constructor(private readonly clock: Clock = systemClock) {}

  commit(records: readonly NewRecord[], alertStates: readonly AlertStateRow[] = []): StoredRecord[] {
    const now = this.clock.nowMs();
    // Validate and copy everything first, then change state: all or nothing, as in SQLite.
    let copies: { record: NewRecord; data: Record<string, unknown> }[];
    let states: AlertStateRow[];
    try {
      copies = records.map((r) => {
        if (!KINDS.has(r.kind)) throw new Error(`unknown record kind ${JSON.stringify(r.kind)}`);
        return { record: r, data: JSON.parse(JSON.stringify(r.data)) as Record<string, unknown> };
      });
      states = alertStates.map((st) => ({ ...st, state: JSON.parse(JSON.stringify(st.state)) as unknown }));
    } catch (err) {
      throw new StoreError("STORE_COMMIT", `store commit failed: ${errorMessage(err)}`, { cause: err });
    }
    const stored: StoredRecord[] = copies.map(({ record, data }, i) => ({
      ...record,
      data,
      id: uuidv7(now),
      seq: this.seq + i + 1,
      createdMs: now,
    }));
    this.seq += stored.length;
    this.records.push(...stored);
    for (const st of states) this.states.set(`${st.asset}\u0000${st.model}\u0000${st.rule}`, st);
    return stored.map((r) => ({ ...r, data: structuredClone(r.data) }));
  }

  alertStates(): AlertStateRow[] {
    return [...this.states.values()].map((s) => structuredClone(s));
  }

  readAfter(seq: number, limit: number): StoredRecord[] {
    return this.records
      .filter((r) => r.seq > seq)
      .slice(0, limit)
      .map((r) => ({ ...r, data: structuredClone(r.data) }));
  }

  counts(): Record<RecordKind, number> {
    const out: Record<RecordKind, number> = { prediction: 0, alert: 0, event: 0 };
    for (const r of this.records) out[r.kind]++;
    return out;
  }

  lastSeq(): number {
    return this.seq;
  }

  usage(): StoreUsage {
    const byKind: StoreUsage["byKind"] = {
      prediction: { records: 0, bytes: 0 },
      alert: { records: 0, bytes: 0 },
      event: { records: 0, bytes: 0 },
    };
    let oldest: number | null = null;
    for (const r of this.records) {
      byKind[r.kind].records++;
      byKind[r.kind].bytes += Buffer.byteLength(JSON.stringify(r.data));
      if (oldest === null || r.createdMs < oldest) oldest = r.createdMs;
    }
    return { byKind, oldestCreatedMs: oldest };
  }

  checkWritable(): void {
    if (this.closed) throw new StoreError("STORE_CLOSED", "store is closed");
  }

  close(): void {
    this.closed = true;
  }
}
