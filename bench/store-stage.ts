/**
 * The store stage alone: Vigil's own `SqliteStore.commit` (the call the runner makes once per
 * inference batch, on the main thread) with prediction records shaped like the gateway's, in a
 * fresh database in the temp dir, at the batch sizes Vigil formed. Not a raw ceiling (it is
 * Vigil's code), but the stage figure that says how much of the main thread the outbox takes;
 * the raw figure under it is `fsync-ceiling.ts`.
 */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SqliteStore } from "../src/store/sqlite.js";
import type { NewRecord } from "../src/store/types.js";
import { nowMs } from "./lib/clock.js";

export interface StoreFigure {
  synchronous: "full" | "normal";
  batch: number;
  commits: number;
  seconds: number;
  commitsPerSec: number;
  recordsPerSec: number;
  msPerCommit: number;
}

function record(i: number): NewRecord {
  const asset = `pump-${String((i % 1000) + 1).padStart(4, "0")}`;
  const ts = 1_700_000_000_000 + i * 2000;
  return {
    kind: "prediction",
    asset,
    tsMs: ts,
    data: {
      gatewayId: "bench",
      asset,
      model: "pump-health",
      modelVersion: "1.0.0",
      ts,
      windowStart: ts - 10_000,
      windowEnd: ts,
      outputs: { failure_probability: 0.01234567, rul: 2.3456789 },
    },
  };
}

/** Commits batches of `batch` records for about `durationMs` (at most `maxCommits`). */
export function measureStore(
  synchronous: "full" | "normal",
  batch: number,
  durationMs = 700,
  maxCommits = 20_000,
): StoreFigure {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-bench-store-"));
  const store = new SqliteStore({ file: path.join(dir, "store.db"), synchronous });
  try {
    let i = 0;
    const next = (): NewRecord[] => Array.from({ length: batch }, () => record(i++));
    for (let w = 0; w < 20; w++) store.commit(next());
    let commits = 0;
    const started = nowMs();
    while (commits < maxCommits && nowMs() - started < durationMs) {
      store.commit(next());
      commits++;
    }
    const seconds = (nowMs() - started) / 1000;
    return {
      synchronous,
      batch,
      commits,
      seconds,
      commitsPerSec: commits / seconds,
      recordsPerSec: (commits * batch) / seconds,
      msPerCommit: (seconds * 1000) / commits,
    };
  } finally {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
