/**
 * The shape of `GET /api/status` (contract §8) as the dashboard, `/metrics` and `vigil status`
 * read it, and the pure helpers that derive its operational parts from the gateway's counters.
 *
 * Contract: pure functions, no I/O. `dataLossLedger` names every way the gateway itself lost
 * data it had accepted (bad input is not loss: it is counted under `counters.rejected`): the
 * pipeline's dropped windows and the store's ledger (evicted, expired, dead-lettered, ...).
 * `syncView` reports, per destination, the sync worker's own status plus what is still
 * waiting to be delivered (records and the age of the oldest).
 */

import type { PlacementDecision } from "../inference/placement.js";
import type { ProviderAttempt, ProviderSelection } from "../inference/providers.js";
import type { PipelineStats } from "../pipeline/pipeline.js";
import type { RecordKind } from "../store/types.js";
import type { StorageStatus } from "../store/housekeeper.js";
import type { WorkerStatus } from "../sync/worker.js";

export interface Check {
  ok: boolean;
  reasons: string[];
}

export interface ModelView {
  name: string;
  version: string;
  state: string;
  provider?: string;
  /** Why `provider` serves; every provider tried and why it does not serve (src/inference/providers.ts). */
  providerReason?: string;
  providers?: ProviderAttempt[];
  warmup?: ProviderSelection["warmup"];
  /** Main thread or worker pool, and why (src/inference/placement.ts). */
  placement?: PlacementDecision;
  error?: string;
}

export interface ActiveAlertView {
  model: string;
  asset: string;
  rule: string;
  severity: string;
  since: number | undefined;
}

export interface SyncDestinationView extends Partial<Omit<WorkerStatus, "type" | "url" | "state">> {
  type: string;
  url: string;
  state: string;
  /** Records not yet delivered to this destination. */
  lagRecords?: number;
  /** Age of the oldest record not yet delivered, seconds (0 when none waits). */
  lagSeconds?: number;
  /** Delivery outcomes so far (`delivered`, `retried`, `rejected`, ...), in records. */
  outcomes?: Record<string, number>;
}

export interface DataLossLedger {
  total: number;
  /** Count per cause; the unit is in the cause's name. */
  causes: Record<string, number>;
}

export interface StatusView {
  state: "online" | "offline";
  gatewayId: string;
  version: string;
  startedAt: string;
  ts: number;
  host: string;
  uptimeS: number;
  logLevel: string;
  ready: Check;
  health: Check;
  broker: { connected: boolean; connects: number; embedded: string | null };
  models: ModelView[];
  store?: {
    file: string;
    depth: Record<RecordKind, number>;
    bytes?: Record<RecordKind, number>;
    fileBytes?: number;
    oldestCreatedMs?: number | null;
    lastSeq: number;
  };
  /** Disk use, limits and time left (store-and-forward). */
  storage?: StorageStatus;
  sync: { destinations: SyncDestinationView[] };
  /**
   * Worker threads a model placed on the pool runs on (0: every model on the main thread), and
   * the backend's figures (src/inference/placement.ts `PlacingStats`: the pool's, the setting,
   * the threshold, main-thread sessions).
   */
  inference?: { workers: number; pool: unknown };
  alerts: ActiveAlertView[];
  dataLoss: DataLossLedger;
  counters?: {
    payloads: number;
    readingsAccepted: number;
    rejected: Record<string, number>;
    windows: PipelineStats["windows"];
    rows: PipelineStats["rows"];
    assets: number;
    models: PipelineStats["models"];
    published?: { published: number; failed: number };
  };
}

/**
 * Every way the gateway lost data it had accepted: windows the pipeline dropped, and the
 * store's ledger (records evicted, expired, set aside as dead letters, ...), as
 * `<reason>_<kind>` (e.g. `evicted_prediction`).
 */
export function dataLossLedger(
  stats: PipelineStats | undefined,
  ledger: readonly { reason: string; kind: string; count: number }[] = [],
): DataLossLedger {
  const causes: Record<string, number> = {
    windows_dropped_overload: 0,
    windows_lost_inference_error: 0,
    windows_lost_store_error: 0,
    windows_skipped_gap: stats?.windows.skipped.gap ?? 0,
  };
  for (const m of Object.values(stats?.models ?? {})) {
    causes.windows_dropped_overload = (causes.windows_dropped_overload ?? 0) + m.overload;
    causes.windows_lost_inference_error = (causes.windows_lost_inference_error ?? 0) + m.windowsLostInference;
    causes.windows_lost_store_error = (causes.windows_lost_store_error ?? 0) + m.windowsLostStore;
  }
  for (const e of ledger) {
    const key = `${e.reason}_${e.kind}`;
    causes[key] = (causes[key] ?? 0) + e.count;
  }
  const total = Object.values(causes).reduce((a, b) => a + b, 0);
  return { total, causes };
}

/** Each destination's sync status, with the records it still waits for and their age. */
export function syncView(
  workers: readonly WorkerStatus[],
  oldestPendingMs: (cursor: number) => number | null,
  nowMs: number,
): SyncDestinationView[] {
  return workers.map((w) => {
    const oldest = w.pending > 0 ? oldestPendingMs(w.cursor) : null;
    return {
      ...w,
      lagRecords: w.pending,
      lagSeconds: oldest === null ? 0 : Math.max(0, (nowMs - oldest) / 1000),
      outcomes: {
        delivered: w.counters.records,
        batches: w.counters.batches,
        failures: w.counters.failures,
        deadLettered: w.counters.deadLettered,
        thinned: w.counters.thinned,
      },
    };
  });
}
