/**
 * In-memory Store: the reference implementation of the contract in `types.ts`, for tests and
 * for `vigil batch`, where nothing needs to outlive the process.
 */

import type { Clock } from "../system/clock.js";
import { systemClock } from "../system/clock.js";
import { uuidv7 } from "./ids.js";
import type { AlertStateRow, NewRecord, RecordKind, Store, StoredRecord } from "./types.js";

export class MemoryStore implements Store {
  private records: StoredRecord[] = [];
  private states = new Map<string, AlertStateRow>();
  private seq = 0;

  constructor(private readonly clock: Clock = systemClock) {}

  commit(records: readonly NewRecord[], alertStates: readonly AlertStateRow[] = []): StoredRecord[] {
    const now = this.clock.nowMs();
    const stored = records.map((r) => ({
      ...r,
      data: structuredClone(r.data),
      id: uuidv7(now),
      seq: ++this.seq,
      createdMs: now,
    }));
    this.records.push(...stored);
    for (const s of alertStates)
      this.states.set(`${s.asset}\u0000${s.model}\u0000${s.rule}`, structuredClone(s));
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

  close(): void {}
}
