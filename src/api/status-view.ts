/**
 * The shape of `GET /api/status` (contract §8) as the dashboard, `/metrics` and `vigil status`
 * read it, and the pure helpers that derive its operational parts from the gateway's counters.
 *
 * Contract: pure functions, no I/O. `dataLossLedger` names every way the gateway itself lost
 * data it had accepted (bad input is not loss: it is counted under `counters.rejected`).
 * `syncView` reports, per destination, what is still waiting to be delivered; until a sync
 * worker reports its own progress, every record held in the store counts as waiting.
 */

import type { PipelineStats } from "../pipeline/pipeline.js";
import type { RecordKind, StoreUsage } from "../store/types.js";
import { safeUrl } from "../system/net.js";

export interface Check {
  ok: boolean;
  reasons: string[];
}

export interface ModelView {
  name: string;
  version: string;
  state: string;
  provider?: string;
  error?: string;
}

export interface ActiveAlertView {
  model: string;
  asset: string;
  rule: string;
  severity: string;
  since: number | undefined;
}

export interface SyncDestinationView {
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
  sync: { destinations: SyncDestinationView[] };
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

/** Every way the gateway lost data it had accepted, from its counters. */
export function dataLossLedger(stats: PipelineStats | undefined): DataLossLedger {
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
  const total = Object.values(causes).reduce((a, b) => a + b, 0);
  return { total, causes };
}

/** What each destination still has to deliver (every held record, until sync reports itself). */
export function syncView(
  destinations: readonly { type: string; url: string }[],
  usage: StoreUsage | undefined,
  nowMs: number,
): SyncDestinationView[] {
  const held = usage ? Object.values(usage.byKind).reduce((n, k) => n + k.records, 0) : undefined;
  const oldest = usage?.oldestCreatedMs ?? null;
  return destinations.map((d) => ({
    type: d.type,
    url: safeUrl(d.url),
    state: "not-started",
    ...(held !== undefined ? { lagRecords: held } : {}),
    ...(usage ? { lagSeconds: oldest === null ? 0 : Math.max(0, (nowMs - oldest) / 1000) } : {}),
    outcomes: { delivered: 0, retried: 0, rejected: 0 },
  }));
}
