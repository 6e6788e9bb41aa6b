/**
 * `vigil batch`: offline inference over recorded data with exactly the live path's windowing
 * and preprocessing — the same Pipeline, fed the file's rows instead of MQTT messages.
 *
 * Contract: loads one package with every check (hashes, tensors, self-test), reads the file,
 * runs every asset's rows in file order through the pipeline (limits off, the model bound to
 * every asset), and writes a CSV: header `asset,windowStart,windowEnd,<output names...>`,
 * one line per prediction in emission order. Array outputs are written as JSON text in one
 * quoted cell; a non-finite output is an empty cell. Throws `VigilError`/`PackageError` with a
 * one-line reason when the package or the file cannot be used.
 */

import fs from "node:fs";
import path from "node:path";
import { VigilError, errorMessage } from "../errors.js";
import { OrtBackend } from "../inference/ort.js";
import { loadPackage, type OutputValue } from "../models/package.js";
import { Pipeline } from "../pipeline/pipeline.js";
import type { RecordSink } from "../pipeline/runner.js";
import { systemClock } from "../system/clock.js";
import type { Logger } from "../system/logger.js";
import { MemoryStore } from "../store/memory.js";
import type { StoredRecord } from "../store/types.js";
import type { Reading } from "../types.js";
import { parseCmapss, parseCsv, type ParseResult } from "./formats.js";

export type DataFormat = "cmapss" | "csv";

export interface BatchOptions {
  modelDir: string;
  file: string;
  format: DataFormat;
  out: string;
  log: Logger;
  /** Called now and then with rows done and rows in all. */
  progress?: (done: number, total: number) => void;
}

export interface BatchResult {
  rows: number;
  skippedLines: number;
  predictions: number;
  rejected: Record<string, number>;
}

export function readDataFile(file: string, format: DataFormat, startMs: number): ParseResult {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new VigilError("FILE_UNREADABLE", `cannot read ${file}: ${errorMessage(err)}`);
  }
  return format === "cmapss"
    ? parseCmapss(text, startMs)
    : parseCsv(text, path.basename(file).replace(/\.[^.]*$/, ""), startMs);
}

function csvCell(v: OutputValue | string | number | undefined): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return String(v);
  const text = Array.isArray(v) ? JSON.stringify(v) : v;
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export async function runBatch(options: BatchOptions): Promise<BatchResult> {
  const model = await loadPackage(options.modelDir, new OrtBackend(), {
    executionProviders: "auto",
    intraOpThreads: 0,
    graphOptimizationLevel: "all",
  });
  try {
    // C-MAPSS: ts = cycle × 1000 ms, as the contract fixes for batch output.
    const parsed = readDataFile(options.file, options.format, 0);
    const names = model.manifest.outputs.map((o) => o.name);
    const lines: string[] = [
      ["asset", "windowStart", "windowEnd", ...names].map((n) => csvCell(n)).join(","),
    ];
    const sink: RecordSink = {
      publish(records: readonly StoredRecord[]) {
        for (const r of records) {
          if (r.kind !== "prediction") continue;
          const d = r.data as {
            asset: string;
            windowStart: number;
            windowEnd: number;
            outputs: Record<string, OutputValue>;
          };
          lines.push(
            [
              csvCell(d.asset),
              String(d.windowStart),
              String(d.windowEnd),
              ...names.map((n) => csvCell(d.outputs[n])),
            ].join(","),
          );
        }
      },
    };
    const pipeline = new Pipeline(
      {
        gatewayId: "batch",
        ownTopicRoot: "vigil/batch",
        subscriptions: [{ topic: "batch/{asset}/{signal}", format: "json", qos: 0 }],
        limits: {
          maxPayloadBytes: Number.MAX_SAFE_INTEGER,
          maxBatchItems: Number.MAX_SAFE_INTEGER,
          maxAssets: 0,
          maxSignalsPerAsset: 0,
          maxReadingsPerSecond: 0,
          maxReadingsPerSecondPerAsset: 0,
          maxFutureMs: 0,
        },
        window: { allowedLatenessMs: 0, maxCatchUpWindows: 1_000_000, maxPendingRows: 64 },
        bindings: [{ assets: "*", models: [model.manifest.name] }],
        maxBatch: 256,
        maxQueuedWindows: Number.MAX_SAFE_INTEGER,
        rejectLogIntervalMs: 10_000,
      },
      [model],
      new MemoryStore(),
      sink,
      systemClock,
      options.log,
    );
    const total = parsed.rows.length;
    let done = 0;
    options.progress?.(0, total);
    for (const row of parsed.rows) {
      const readings: Reading[] = Object.entries(row.values).map(([signal, value]) => ({
        asset: row.asset,
        signal,
        tsMs: row.tsMs,
        value,
      }));
      pipeline.handleReadings(readings, row.tsMs);
      done++;
      if (done % 2000 === 0) {
        await pipeline.settle();
        options.progress?.(done, total);
      }
    }
    await pipeline.drain();
    options.progress?.(total, total);
    const stats = pipeline.stats();
    fs.mkdirSync(path.dirname(path.resolve(options.out)), { recursive: true });
    fs.writeFileSync(options.out, `${lines.join("\n")}\n`);
    const rejected = Object.fromEntries(Object.entries(stats.rejected).filter(([, n]) => n > 0));
    return { rows: total, skippedLines: parsed.skipped, predictions: lines.length - 1, rejected };
  } finally {
    await model.session.release().catch(() => undefined);
  }
}
