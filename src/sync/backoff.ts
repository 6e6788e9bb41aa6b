/**
 * Retry timing for cloud destinations. Pure: randomness and time are arguments.
 *
 * Contract: `backoffDelayMs(attempt)` grows as minDelayMs × 2^attempt up to maxDelayMs, with
 * "equal jitter" (a uniform draw in [half, full] of that), so many gateways coming back at
 * once do not retry in lockstep, yet none retries sooner than half the nominal delay.
 * `parseRetryAfter` reads an HTTP `Retry-After` (seconds or an HTTP date) as milliseconds.
 */

import type { BackoffSpec } from "./config.js";

export function backoffDelayMs(
  attempt: number,
  spec: BackoffSpec,
  random: () => number = Math.random,
): number {
  const nominal = Math.min(spec.maxDelayMs, spec.minDelayMs * 2 ** Math.min(Math.max(0, attempt), 40));
  return Math.max(1, Math.round(nominal / 2 + (random() * nominal) / 2));
}

export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

/**
 * A byte-rate cap: after sending `bytes`, the next send may start once they have "drained" at
 * `bytesPerSecond`. Returns when the next send may start. 0 = no cap.
 */
export function nextSendAtMs(
  previousAtMs: number,
  nowMs: number,
  bytes: number,
  bytesPerSecond: number,
): number {
  if (bytesPerSecond <= 0) return nowMs;
  return Math.max(previousAtMs, nowMs) + (bytes * 1000) / bytesPerSecond;
}
