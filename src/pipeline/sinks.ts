/**
 * A sink that tells others about commits: after the inner sink has published committed
 * records, `committed()` runs (the storage check, waking the cloud sync); after a failed
 * commit, `failed()` (the data-loss ledger). Hooks that throw are caught: a sink never throws.
 */

import type { NewRecord, StoredRecord } from "../store/types.js";
import type { Logger } from "../system/logger.js";
import type { RecordSink } from "./runner.js";

export interface SinkHooks {
  committed(records: readonly StoredRecord[]): void;
  failed(records: readonly NewRecord[], err: unknown): void;
}

export class NotifyingSink implements RecordSink {
  constructor(
    private readonly inner: RecordSink,
    private readonly hooks: SinkHooks,
    private readonly log: Logger,
  ) {}

  publish(records: readonly StoredRecord[]): void {
    this.inner.publish(records);
    try {
      this.hooks.committed(records);
    } catch (err) {
      this.log.error({ err }, "commit hook failed");
    }
  }

  uncommitted(records: readonly NewRecord[], err: unknown): void {
    this.inner.uncommitted?.(records, err);
    try {
      this.hooks.failed(records, err);
    } catch (hookErr) {
      this.log.error({ err: hookErr }, "failed-commit hook failed");
    }
  }
}
