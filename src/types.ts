/**
 * Domain types that cross module boundaries. Pure data: no behaviour, no I/O.
 */

/** One value of one signal of one asset at one event time. */
export interface Reading {
  asset: string;
  signal: string;
  /** Event time, epoch milliseconds (from the payload, or arrival time when absent). */
  tsMs: number;
  value: number;
}

/** Why an input was dropped. Every reason is counted; see docs/ingest.md for each one's meaning. */
export type RejectReason =
  // decoding and limits (ingest)
  | "unknown_topic"
  | "own_topic"
  | "payload_too_large"
  | "not_json"
  | "bad_shape"
  | "bad_ts"
  | "non_finite"
  | "bad_name"
  | "batch_too_large"
  | "future_ts"
  | "too_many_assets"
  | "too_many_signals"
  | "rate_limited"
  // windowing
  | "duplicate"
  | "late"
  | "out_of_order"
  | "incomplete_row";

export interface Reject {
  reason: RejectReason;
  /** How many readings (or payloads, for payload-level reasons) this reject stands for. */
  count: number;
  /** Short human detail for the rate-limited log line; never the raw payload in full. */
  detail?: string;
  asset?: string;
}
