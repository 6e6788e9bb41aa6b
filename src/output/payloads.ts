/**
 * The payloads the gateway publishes (contract §5), as types. Times are epoch milliseconds.
 */

import type { OutputValue } from "../models/package.js";

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
