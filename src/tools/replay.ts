/**
 * `vigil replay`: publishes recorded data as live sensor readings.
 *
 * Contract: one MQTT message per row, `{"ts", "values": {...}}` on the `--topic` template
 * with `{asset}` filled in (default `plant/{asset}/row`), QoS 1, rows in time order (stable,
 * so a fleet's assets interleave as they would live). `rate` > 0: that many messages per
 * second on average; `rate` 0: as fast as the broker acknowledges them (at most `inflight`
 * unacknowledged). Resolves with the count once every message is acknowledged; rejects with
 * a one-line reason when the broker cannot be reached or the file cannot be read.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { VigilError, errorMessage } from "../errors.js";
import { connectOnce } from "../ingest/mqtt-client.js";
import { readDataFile, type DataFormat } from "./batch.js";

export interface ReplayOptions {
  file: string;
  format: DataFormat;
  brokerUrl: string;
  /** Messages per second; 0 = as fast as the broker takes them. */
  rate: number;
  topic: string;
  /** Event time of cycle 0 (C-MAPSS) or of the first row without a time column (CSV). */
  startMs: number;
  username?: string;
  password?: string;
  inflight?: number;
  progress?: (done: number, total: number) => void;
}

export interface ReplayResult {
  messages: number;
  assets: number;
  skippedLines: number;
}

export async function runReplay(options: ReplayOptions): Promise<ReplayResult> {
  if (!options.topic.includes("{asset}")) {
    throw new VigilError("USAGE", `--topic must contain {asset}, got "${options.topic}"`);
  }
  const parsed = readDataFile(options.file, options.format, options.startMs);
  const rows = parsed.rows.map((r, i) => ({ r, i })).sort((a, b) => a.r.tsMs - b.r.tsMs || a.i - b.i);
  let client: Awaited<ReturnType<typeof connectOnce>>;
  try {
    client = await connectOnce(options.brokerUrl, {
      clientId: `vigil-replay-${process.pid}`,
      ...(options.username ? { username: options.username } : {}),
      ...(options.password ? { password: options.password } : {}),
    });
  } catch (err) {
    throw new VigilError(
      "BROKER_UNREACHABLE",
      `cannot connect to ${options.brokerUrl}: ${errorMessage(err)}`,
      {
        retriable: true,
      },
    );
  }
  const inflight = Math.max(1, options.inflight ?? 256);
  const pending = new Set<Promise<void>>();
  options.progress?.(0, rows.length);
  const startedMs = Date.now();
  let done = 0;
  try {
    for (let k = 0; k < rows.length; k++) {
      const { r } = rows[k] as (typeof rows)[number];
      if (options.rate > 0) {
        const dueMs = startedMs + (k * 1000) / options.rate;
        const waitMs = dueMs - Date.now();
        if (waitMs > 1) await sleep(waitMs);
      }
      const topic = options.topic.replaceAll("{asset}", r.asset);
      const p = client
        .publishAsync(topic, JSON.stringify({ ts: r.tsMs, values: r.values }), { qos: 1 })
        .then(() => {
          done++;
          options.progress?.(done, rows.length);
        });
      pending.add(p);
      p.finally(() => pending.delete(p)).catch(() => undefined);
      if (pending.size >= inflight) await Promise.race(pending);
    }
    await Promise.all(pending);
    options.progress?.(rows.length, rows.length);
  } finally {
    await client.endAsync().catch(() => undefined);
  }
  return {
    messages: rows.length,
    assets: new Set(rows.map((x) => x.r.asset)).size,
    skippedLines: parsed.skipped,
  };
}
