/**
 * Raw durability ceiling: how long one `fdatasync` takes in the folder Vigil's store lives in
 * for the bench (the OS temp dir). With `store.synchronous = full` SQLite (WAL) syncs the log
 * on every commit, and Vigil commits once per inference batch on the main thread, so this
 * bounds how fast small batches can be committed and how much a commit adds to latency.
 * Each iteration: append 4 KiB, then fdatasync; at most `maxIterations` or `durationMs`.
 */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { nowMs } from "./lib/clock.js";
import { distribution, type Distribution } from "./lib/stats.js";

export interface FsyncFigure {
  dir: string;
  /** Per 4 KiB write + fdatasync, ms. */
  latencyMs: Distribution;
  syncsPerSec: number;
}

export function measureFsync(durationMs = 1_000, maxIterations = 2_000): FsyncFigure {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-bench-fsync-"));
  const block = Buffer.alloc(4096, 0x5a);
  const samples: number[] = [];
  const fd = fs.openSync(path.join(dir, "probe"), "w");
  try {
    const started = nowMs();
    while (samples.length < maxIterations && nowMs() - started < durationMs) {
      const t = nowMs();
      fs.writeSync(fd, block);
      fs.fdatasyncSync(fd);
      samples.push(nowMs() - t);
    }
    const seconds = (nowMs() - started) / 1000;
    return { dir: os.tmpdir(), latencyMs: distribution(samples), syncsPerSec: samples.length / seconds };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
