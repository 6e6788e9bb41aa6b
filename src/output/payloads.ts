/**
 * The payloads the gateway publishes (contract §5), as types. Times are epoch milliseconds.
 */

import type { OutputValue } from "../models/package.js";
import type { StoredRecord } from "../store/types.js";

/**
 * The published JSON of a committed record: its body with `id` and `seq` appended. Reuses the
 * text the store serialised (one JSON.stringify per record, not two); the same bytes as
 * `JSON.stringify({ ...data, id, seq })`.
 */
export function recordPayload(r: StoredRecord): string {
  const json = r.dataJson;
  if (json !== undefined && json.length > 2 && json.endsWith("}"))
    return `${json.slice(0, -1)},"id":${JSON.stringify(r.id)},"seq":${r.seq}}`;
  return JSON.stringify({ ...r.data, id: r.id, seq: r.seq });
}

export interface PredictionPayload {
  gatewayId: string;
  asset: string;
  model: string;
  modelVersion: string;
  /** Event time of the prediction: the window's last row (count) or its end (time). */
  ts: number;
  windowStart: number;
  windowEnd: number;
  outputs: Record<string, OutputValue>;
  id: string;
  seq: number;
}

export interface AlertPayload {
  gatewayId: string;
  asset: string;
  model: string;
  modelVersion: string;
  rule: string;
  severity: string;
  state: "raised" | "cleared";
  /** The output value that raised or cleared the alert. */
  value: number;
  ts: number;
  id: string;
  seq: number;
}

export interface ModelStatusEntry {
  name: string;
  version: string;
  state: "serving" | "standby" | "failed" | "trial";
  provider?: string;
  error?: string;
}

export interface StatusPayload {
  state: "online" | "offline";
  gatewayId?: string;
  version?: string;
  startedAt?: string;
  ts?: number;
  models?: ModelStatusEntry[];
  counters?: Record<string, unknown>;
}
