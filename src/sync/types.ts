/**
 * The destination seam: one cloud endpoint that takes batches of records.
 *
 * Contract: `send` never throws; it resolves with the outcome of one attempt. `ok`: every
 * record is delivered. `retriable`: nothing may be assumed delivered (the same records will be
 * sent again, so a receiver must de-duplicate on `id`), optionally with how long the endpoint
 * asked to be left alone. `rejected`: the endpoint refused the content of this batch for good;
 * the worker splits it to find the records it refuses. The decision is made once, here, at
 * the sink (ARCHITECTURE: retriable or permanent is carried as a typed field).
 */

import type { OutboxRecord } from "../store/types.js";

export type SendOutcome =
  | { ok: true }
  | { ok: false; retriable: true; error: string; retryAfterMs?: number }
  | { ok: false; retriable: false; error: string };

export interface Batch {
  records: readonly OutboxRecord[];
  /** `recordJson` of each record, in the same order. */
  jsons: readonly string[];
  /** Sum of the JSON lengths, for byte limits and the bandwidth cap. */
  bytes: number;
}

export interface Destination {
  readonly name: string;
  readonly type: "http" | "mqtt";
  start(): void;
  send(batch: Batch): Promise<SendOutcome>;
  /** Bytes the last successful `send` put on the wire (compressed size for HTTP with gzip). */
  lastWireBytes(): number;
  stop(): Promise<void>;
}
