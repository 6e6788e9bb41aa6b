/**
 * One destination's delivery loop: reads the outbox after the destination's cursor and sends it.
 *
 * Contract:
 * - Order: records go out in seq order, one batch at a time; the cursor moves only after the
 *   destination accepted a batch (or the records it refused were set aside as dead letters in
 *   the same store transaction), so a crash at any moment re-sends at most the batch in flight.
 * - Batches hold at most `batchMaxRecords` records and `batchMaxBytes` of JSON (a record larger
 *   than that goes alone).
 * - Retriable failures: wait `Retry-After` when given (capped at `maxDelayMs`), else exponential
 *   backoff with jitter; never give up.
 * - Rejected batch: split in halves until each refused record stands alone; those become dead
 *   letters; every other record is delivered, in order.
 * - Schedule: outside its windows nothing is sent, except alerts when `alertsBypass` (they go
 *   ahead of older predictions, tracked by a second cursor so they are not sent twice).
 * - Thinning: predictions the thinner drops are skipped (counted as `thinned`); never alerts.
 * - Bandwidth: at most `maxBytesPerSecond` on the wire, averaged over batches.
 * - Dead letters marked for retry (`vigil deadletter retry`) are sent first, inside windows.
 */

import { errorMessage } from "../errors.js";
import { safeUrl } from "../ingest/mqtt-client.js";
import type { Logger } from "../system/logger.js";
import type { OutboxRecord, Store } from "../store/types.js";
import { backoffDelayMs, nextSendAtMs } from "./backoff.js";
import type { DestinationSpec } from "./config.js";
import { PredictionThinner, recordJson } from "./records.js";
import { SyncSchedule } from "./schedule.js";
import type { Batch, Destination, SendOutcome } from "./types.js";

/** How often an idle worker looks again without being notified (dead letters marked by the CLI, windows). */
const IDLE_POLL_MS = 1_000;

export type WorkerState = "starting" | "idle" | "sending" | "backoff" | "window-closed" | "stopped";

export interface WorkerCounters {
  batches: number;
  records: number;
  wireBytes: number;
  failures: number;
  deadLettered: number;
  thinned: number;
  splits: number;
}

export interface WorkerStatus {
  name: string;
  type: "http" | "mqtt";
  url: string;
  state: WorkerState;
  /** `up` after a delivery, `down` after a failure, `unknown` before the first attempt. */
  link: "up" | "down" | "unknown";
  cursor: number;
  pending: number;
  consecutiveFailures: number;
  lastError: string | null;
  lastSuccessMs: number | null;
  nextAttemptMs: number | null;
  windowOpen: boolean;
  counters: WorkerCounters;
}

export interface WorkerHooks {
  /** A batch was delivered (the link works). */
  onDelivered?: () => void;
  /** Records were set aside as dead letters (the ledger grew). */
  onDeadLettered?: () => void;
  random?: () => number;
}

interface Delivery {
  ok: boolean;
}

export class SyncWorker {
  readonly counters: WorkerCounters = {
    batches: 0,
    records: 0,
    wireBytes: 0,
    failures: 0,
    deadLettered: 0,
    thinned: 0,
    splits: 0,
  };
  private state: WorkerState = "starting";
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;
  private notified = false;
  private consecutiveFailures = 0;
  private lastError: string | null = null;
  private lastSuccessMs: number | null = null;
  private nextAttemptMs: number | null = null;
  private nextSendAt = 0;
  private deadLettersCheckedAt = -Infinity;
  private readonly schedule: SyncSchedule;
  private readonly thinner: PredictionThinner;
  private readonly random: () => number;

  constructor(
    private readonly spec: DestinationSpec,
    private readonly destination: Destination,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly hooks: WorkerHooks = {},
  ) {
    this.schedule = new SyncSchedule(spec.schedule?.windows ?? [], spec.schedule?.timezone ?? "");
    this.thinner = new PredictionThinner(spec.predictions);
    this.random = hooks.random ?? Math.random;
  }

  get name(): string {
    return this.spec.name;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.destination.start();
    this.loopDone = this.loop();
  }

  /** The last attempt delivered. */
  linkUp(): boolean {
    return this.consecutiveFailures === 0 && this.lastSuccessMs !== null;
  }

  /** New records were committed: look now. */
  notify(): void {
    this.notified = true;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loopDone;
    await this.destination.stop();
    this.state = "stopped";
  }

  status(): WorkerStatus {
    const cursor = this.store.cursors().find((c) => c.destination === this.name)?.seq ?? 0;
    return {
      name: this.name,
      type: this.spec.type,
      url: safeUrl(this.spec.url),
      state: this.state,
      link: this.consecutiveFailures > 0 ? "down" : this.lastSuccessMs !== null ? "up" : "unknown",
      cursor,
      pending: Math.max(0, this.store.lastSeq() - cursor),
      consecutiveFailures: this.consecutiveFailures,
      lastError: this.lastError,
      lastSuccessMs: this.lastSuccessMs,
      nextAttemptMs: this.nextAttemptMs,
      windowOpen: this.schedule.isOpen(Date.now()),
      counters: { ...this.counters },
    };
  }

  /** Sleeps `ms`; `wakeOnNotify` ends it early on new records (or at once if some came meanwhile). */
  private sleep(ms: number, wakeOnNotify: boolean): Promise<void> {
    if (!this.running) return Promise.resolve();
    if (wakeOnNotify && this.notified) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(finish, ms);
      function finish(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        if (!this.running || wakeOnNotify) {
          this.wake = undefined;
          finish();
        }
      };
    });
  }

  private async loop(): Promise<void> {
    while (this.running) {
      this.notified = false;
      let worked = false;
      try {
        worked = await this.step();
      } catch (err) {
        // A store error (disk full, busy): wait and try again; nothing is lost by waiting.
        this.lastError = `store: ${errorMessage(err)}`;
        this.log.error({ err: errorMessage(err) }, "sync step failed; retrying");
        await this.sleep(backoffDelayMs(0, this.spec.backoff, this.random), false);
        continue;
      }
      if (!worked && this.running) {
        const wait =
          this.state === "window-closed"
            ? Math.min(IDLE_POLL_MS * 5, this.schedule.msUntilNextCheck(Date.now()))
            : IDLE_POLL_MS;
        await this.sleep(wait, true);
      }
    }
  }

  /** One unit of work; false when there was nothing to do. */
  private async step(): Promise<boolean> {
    const now = Date.now();
    const open = this.schedule.isOpen(now);
    if (open && now - this.deadLettersCheckedAt >= IDLE_POLL_MS) {
      this.deadLettersCheckedAt = now;
      const retries = this.store.deadLetters(
        { destination: this.name, status: "retry" },
        this.spec.batchMaxRecords,
      );
      if (retries.length > 0) {
        await this.retryDeadLetters(retries.map((d) => d.record));
        return true;
      }
    }
    const cursor = this.store.cursors().find((c) => c.destination === this.name);
    if (!cursor) return false;
    if (!open) {
      if (!this.spec.schedule?.alertsBypass) {
        this.state = "window-closed";
        return false;
      }
      const alerts = this.store.readOutbox(
        Math.max(cursor.seq, cursor.bypassSeq),
        this.spec.batchMaxRecords,
        "alert",
      );
      const batch = this.takeBatch(alerts, () => true);
      if (batch.records.length === 0) {
        this.state = "window-closed";
        return false;
      }
      await this.deliver(batch.records, batch.endSeq, "bypass");
      return true;
    }
    // With thinning or bypassed alerts some rows are skipped: read ahead a little more then.
    const readAhead = this.thinner.active || cursor.bypassSeq > cursor.seq ? 2 : 1;
    const rows = this.store.readOutbox(cursor.seq, this.spec.batchMaxRecords * readAhead);
    if (rows.length === 0) {
      this.state = "idle";
      return false;
    }
    const batch = this.takeBatch(rows, (r) => {
      if (r.kind === "alert" && r.seq <= cursor.bypassSeq) return false;
      if (this.thinner.keep(r)) return true;
      this.counters.thinned++;
      return false;
    });
    if (batch.records.length === 0) {
      this.store.acknowledge(this.name, batch.endSeq);
      return true;
    }
    await this.deliver(batch.records, batch.endSeq, "main");
    return true;
  }

  /** The longest prefix of `rows` within the batch limits; `endSeq` is the last row it covers. */
  private takeBatch(
    rows: readonly OutboxRecord[],
    keep: (r: OutboxRecord) => boolean,
  ): { records: OutboxRecord[]; endSeq: number } {
    const records: OutboxRecord[] = [];
    let bytes = 0;
    let endSeq = 0;
    for (const r of rows) {
      const wanted = keep(r);
      if (wanted) {
        const size = r.dataJson.length + 120;
        if (records.length >= this.spec.batchMaxRecords) break;
        if (records.length > 0 && bytes + size > this.spec.batchMaxBytes) break;
        records.push(r);
        bytes += size;
      }
      endSeq = r.seq;
    }
    return { records, endSeq };
  }

  private toBatch(records: readonly OutboxRecord[]): Batch {
    const jsons = records.map(recordJson);
    return { records, jsons, bytes: jsons.reduce((n, j) => n + j.length, 0) };
  }

  /** One attempt, after the bandwidth cap allows it; bookkeeping of success and failure. */
  private async attempt(records: readonly OutboxRecord[]): Promise<SendOutcome> {
    const batch = this.toBatch(records);
    const waitMs = this.nextSendAt - Date.now();
    if (waitMs > 0) await this.sleep(waitMs, false);
    if (!this.running) return { ok: false, retriable: true, error: "stopping" };
    this.state = "sending";
    const outcome = await this.destination.send(batch);
    if (outcome.ok) {
      const wire = this.destination.lastWireBytes();
      this.nextSendAt = nextSendAtMs(this.nextSendAt, Date.now(), wire, this.spec.maxBytesPerSecond);
      this.counters.batches++;
      this.counters.records += records.length;
      this.counters.wireBytes += wire;
      if (this.consecutiveFailures > 0)
        this.log.info({ after: this.consecutiveFailures }, "cloud destination reachable again");
      this.consecutiveFailures = 0;
      this.lastError = null;
      this.lastSuccessMs = Date.now();
      this.nextAttemptMs = null;
    }
    return outcome;
  }

  private async backoff(outcome: { error: string; retryAfterMs?: number }): Promise<void> {
    this.counters.failures++;
    const delay =
      outcome.retryAfterMs !== undefined
        ? Math.min(outcome.retryAfterMs, this.spec.backoff.maxDelayMs)
        : backoffDelayMs(this.consecutiveFailures, this.spec.backoff, this.random);
    this.consecutiveFailures++;
    this.lastError = outcome.error;
    this.nextAttemptMs = Date.now() + delay;
    this.state = "backoff";
    const log =
      this.consecutiveFailures === 1 || this.consecutiveFailures % 20 === 0 ? this.log.warn : this.log.debug;
    log.call(
      this.log,
      { err: outcome.error, retryInMs: delay, failures: this.consecutiveFailures },
      "cloud send failed; will retry",
    );
    await this.sleep(delay, false);
  }

  /**
   * Sends `records` (covering the outbox up to `endSeq`), splitting on rejection; acknowledges
   * each part as it is delivered. False when a retriable failure stopped it (after the backoff).
   */
  private async deliver(
    records: readonly OutboxRecord[],
    endSeq: number,
    stream: "main" | "bypass",
  ): Promise<boolean> {
    const outcome = await this.attempt(records);
    if (outcome.ok) {
      this.store.acknowledge(this.name, endSeq, [], stream);
      this.hooks.onDelivered?.();
      return true;
    }
    if (outcome.retriable) {
      await this.backoff(outcome);
      return false;
    }
    const [only] = records;
    if (records.length === 1 && only) {
      this.store.acknowledge(this.name, endSeq, [{ record: only, reason: outcome.error }], stream);
      this.counters.deadLettered++;
      this.hooks.onDeadLettered?.();
      this.log.warn(
        { id: only.id, seq: only.seq, kind: only.kind, err: outcome.error },
        "record refused by the destination; set aside as a dead letter",
      );
      return true;
    }
    this.counters.splits++;
    const mid = Math.ceil(records.length / 2);
    const left = records.slice(0, mid);
    const leftEnd = left.at(-1)?.seq ?? endSeq;
    if (!(await this.deliver(left, leftEnd, stream))) return false;
    return this.deliver(records.slice(mid), endSeq, stream);
  }

  private async retryDeadLetters(records: readonly OutboxRecord[]): Promise<Delivery> {
    const outcome = await this.attempt(records);
    const ids = records.map((r) => r.id);
    if (outcome.ok) {
      this.store.resolveDeadLetters(this.name, ids, "delivered");
      this.log.info({ records: ids.length }, "dead letters delivered on retry");
      return { ok: true };
    }
    if (outcome.retriable) {
      await this.backoff(outcome);
      return { ok: false };
    }
    if (records.length === 1) {
      this.store.resolveDeadLetters(this.name, ids, "dead", outcome.error);
      return { ok: true };
    }
    const mid = Math.ceil(records.length / 2);
    const left = await this.retryDeadLetters(records.slice(0, mid));
    if (!left.ok) return left;
    return this.retryDeadLetters(records.slice(mid));
  }
}
