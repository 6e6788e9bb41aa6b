/**
 * Keeps the store within its disk budget and tidy: the storage policy of issue 4.
 *
 * Contract:
 * - Limit: the store may use at most `maxBytes` (0: no limit) and must leave `minFreeBytes`
 *   free on its file system (0: no floor). When a commit takes it over the limit, records are
 *   deleted down to 90 % of it, in this order: records every destination already has (no
 *   loss), then predictions (oldest first, or `thin`: every second block of the oldest), then
 *   events, and alerts only when nothing else is left. Deletions of undelivered records are
 *   counted in the ledger by the store, in the same transaction (reason `evicted`).
 * - Every `intervalMs`: records every destination has and older than `retentionMs` are
 *   deleted; undelivered records older than `maxAgeMs` (0: never) are expired (ledger); free
 *   pages are given back to the file system once they are a quarter of the file (after a drain);
 *   growth is sampled for the time-left estimate.
 * - A failed commit (`commitFailed`): its records are counted (`store_full` for SQLITE_FULL,
 *   else `store_error`), in memory until the store can take the ledger update again.
 * - Never throws out of a timer; a store error is logged and retried at the next interval.
 */

import fs from "node:fs";
import { errorMessage } from "../errors.js";
import type { Clock } from "../system/clock.js";
import type { Logger } from "../system/logger.js";
import { countByKind } from "./memory.js";
import type { LedgerEntry, Loss, NewRecord, RecordKind, Store, StoreUsage } from "./types.js";

export interface StoragePolicy {
  maxBytes: number;
  minFreeBytes: number;
  retentionMs: number;
  maxAgeMs: number;
  evictPredictions: "oldest" | "thin";
  intervalMs: number;
}

export interface StorageStatus extends StoreUsage {
  maxBytes: number;
  minFreeBytes: number;
  /** Free bytes on the store's file system (null when unknown). */
  diskFreeBytes: number | null;
  /** The most the store may use now: the budget, or what the disk floor leaves. */
  limitBytes: number | null;
  /** Net growth of the store, bytes per second, over the last minutes. */
  growthBytesPerS: number;
  /** Seconds until the limit is reached at the current growth, null when not growing. */
  timeLeftS: number | null;
  ledger: LedgerEntry[];
  evictions: number;
}

/** Rows deleted per statement, so the event loop is never held for long. */
const CHUNK_ROWS = 5_000;
/** Most chunks one pass deletes (prune, expire); the rest waits for the next interval. */
const MAX_CHUNKS = 20;
/** How long growth samples are kept for the time-left estimate. */
const RATE_WINDOW_MS = 10 * 60_000;
/** Free-disk checks on the commit path at most this often. */
const DISK_CHECK_MS = 1_000;

function lossKey(l: Pick<Loss, "reason" | "kind">): string {
  return `${l.reason}/${l.kind}`;
}

export class Housekeeper {
  private timer: NodeJS.Timeout | undefined;
  private pending = new Map<string, Loss>();
  private samples: { tMs: number; usedBytes: number }[] = [];
  private diskFree: number | null = null;
  private diskCheckedAt = -Infinity;
  private enforcing = false;
  private evictions = 0;

  constructor(
    private readonly store: Store,
    private readonly policy: StoragePolicy,
    private readonly dir: string,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly onLoss: () => void = () => undefined,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), this.policy.intervalMs);
    this.timer.unref();
    this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.flushPending();
  }

  private freeDiskBytes(force = false): number | null {
    const now = this.clock.nowMs();
    if (!force && now - this.diskCheckedAt < DISK_CHECK_MS) return this.diskFree;
    this.diskCheckedAt = now;
    try {
      const s = fs.statfsSync(this.dir);
      this.diskFree = s.bavail * s.bsize;
    } catch {
      this.diskFree = null;
    }
    return this.diskFree;
  }

  /** The most the store may use now (Infinity: no limit). */
  limitBytes(usage: StoreUsage = this.store.usage(), force = false): number {
    let limit = this.policy.maxBytes > 0 ? this.policy.maxBytes : Infinity;
    if (this.policy.minFreeBytes > 0) {
      const free = this.freeDiskBytes(force);
      // The store may still grow into its own free pages and into the disk above the floor.
      if (free !== null)
        limit = Math.min(limit, usage.usedBytes + usage.freeBytes + free - this.policy.minFreeBytes);
    }
    return limit;
  }

  /** After each commit: evict at once when over the limit. */
  afterCommit(): void {
    if (this.enforcing || (this.policy.maxBytes <= 0 && this.policy.minFreeBytes <= 0)) return;
    try {
      const usage = this.store.usage();
      if (usage.usedBytes > this.limitBytes(usage)) this.enforce();
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, "storage check failed");
    }
  }

  /** A commit failed: count its records as lost (reported through the ledger later). */
  commitFailed(records: readonly NewRecord[], err: unknown): void {
    const code = (err as { code?: unknown }).code;
    const reason = code === "SQLITE_FULL" ? "store_full" : "store_error";
    for (const [kind, count] of countByKind(records.map((r) => r.kind)))
      this.addPending({ reason, kind, count });
    this.onLoss();
  }

  private addPending(l: Loss): void {
    const prev = this.pending.get(lossKey(l));
    this.pending.set(lossKey(l), { ...l, count: (prev?.count ?? 0) + l.count });
  }

  private flushPending(): void {
    if (this.pending.size === 0) return;
    const losses = [...this.pending.values()];
    try {
      this.store.addLosses(losses);
      this.pending.clear();
      this.onLoss();
    } catch (err) {
      this.log.debug({ err: errorMessage(err) }, "ledger update deferred");
    }
  }

  /** Deletes records, by class, until the store is at 90 % of its limit. Returns rows deleted. */
  enforce(): number {
    if (this.enforcing) return 0;
    this.enforcing = true;
    let deleted = 0;
    try {
      const limit = this.limitBytes(this.store.usage(), true);
      if (!Number.isFinite(limit)) return 0;
      const target = Math.max(0, limit * 0.9);
      const order: (() => number)[] = [];
      for (let round = 0; round < 10_000; round++) {
        const usage = this.store.usage();
        if (usage.usedBytes <= target) break;
        const counts = this.store.counts();
        const held = counts.prediction + counts.alert + counts.event;
        if (held === 0) break;
        const avg = usage.usedBytes / held;
        const rows = Math.max(50, Math.min(CHUNK_ROWS, Math.ceil((usage.usedBytes - target) / avg)));
        order.length = 0;
        order.push(
          () => this.store.prune(Number.MAX_SAFE_INTEGER, rows),
          () => this.store.evict("prediction", rows, this.policy.evictPredictions),
          () => this.store.evict("event", rows),
          () => this.store.evict("alert", rows),
        );
        let n = 0;
        for (const step of order) {
          n = step();
          if (n > 0) break;
        }
        if (n === 0) break;
        deleted += n;
      }
      if (deleted > 0) {
        this.evictions++;
        const after = this.store.usage();
        this.log.warn(
          { deleted, usedBytes: after.usedBytes, limitBytes: Math.round(limit) },
          "store over its disk limit; oldest records deleted (see the ledger)",
        );
        this.onLoss();
      }
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, "eviction failed");
    } finally {
      this.enforcing = false;
    }
    return deleted;
  }

  /** One housekeeping pass (also run by the timer). */
  tick(): void {
    const now = this.clock.nowMs();
    this.flushPending();
    try {
      for (let i = 0; i < MAX_CHUNKS; i++)
        if (this.store.prune(now - this.policy.retentionMs, CHUNK_ROWS) < CHUNK_ROWS) break;
      if (this.policy.maxAgeMs > 0) {
        const expired: Loss[] = [];
        for (let i = 0; i < MAX_CHUNKS; i++) {
          const losses = this.store.expire(now - this.policy.maxAgeMs, CHUNK_ROWS);
          expired.push(...losses);
          if (losses.reduce((n, l) => n + l.count, 0) < CHUNK_ROWS) break;
        }
        if (expired.length > 0) {
          this.log.warn({ expired }, "undelivered records older than storage.maxAgeMs deleted");
          this.onLoss();
        }
      }
      const usage = this.store.usage();
      if (usage.usedBytes > this.limitBytes(usage, true)) this.enforce();
      const after = this.store.usage();
      if (after.freeBytes > 4 * 1_048_576 && after.freeBytes > after.fileBytes / 4) {
        const freed = this.store.reclaim();
        if (freed > 0) this.log.info({ freedBytes: freed }, "store file shrunk");
      }
      this.sample(now, this.store.usage().usedBytes);
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, "store housekeeping failed; will retry");
    }
  }

  private sample(tMs: number, usedBytes: number): void {
    this.samples.push({ tMs, usedBytes });
    while (this.samples.length > 2 && (this.samples[0]?.tMs ?? tMs) < tMs - RATE_WINDOW_MS)
      this.samples.shift();
  }

  /** Net growth in bytes per second over the sampled window (0 with too few samples). */
  growthBytesPerS(): number {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last || last.tMs - first.tMs < 1_000) return 0;
    return ((last.usedBytes - first.usedBytes) * 1000) / (last.tMs - first.tMs);
  }

  ledger(): LedgerEntry[] {
    const entries = new Map<string, LedgerEntry>();
    try {
      for (const e of this.store.ledger()) entries.set(lossKey(e), e);
    } catch {
      // The store cannot be read: show what is pending.
    }
    const now = this.clock.nowMs();
    for (const p of this.pending.values()) {
      const e = entries.get(lossKey(p));
      if (e) e.count += p.count;
      else entries.set(lossKey(p), { ...p, reported: 0, firstMs: now, lastMs: now });
    }
    return [...entries.values()];
  }

  /** Losses by reason and kind, including those not yet written to the store. */
  totals(): Record<string, Partial<Record<RecordKind, number>>> {
    const out: Record<string, Partial<Record<RecordKind, number>>> = {};
    for (const e of this.ledger()) (out[e.reason] ??= {})[e.kind] = e.count;
    return out;
  }

  status(): StorageStatus {
    const usage = this.store.usage();
    const limit = this.limitBytes(usage);
    const growth = this.growthBytesPerS();
    return {
      ...usage,
      maxBytes: this.policy.maxBytes,
      minFreeBytes: this.policy.minFreeBytes,
      diskFreeBytes: this.freeDiskBytes(),
      limitBytes: Number.isFinite(limit) ? Math.round(limit) : null,
      growthBytesPerS: Math.round(growth),
      timeLeftS:
        growth > 0 && Number.isFinite(limit)
          ? Math.max(0, Math.round((limit - usage.usedBytes) / growth))
          : null,
      ledger: this.ledger(),
      evictions: this.evictions,
    };
  }
}
