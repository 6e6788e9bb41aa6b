/**
 * `npm run bench`: Vigil's throughput and latency with the raw ceilings beside them, measured
 * in the same run on the same machine (ARCHITECTURE habit 9). Prints a table and writes every
 * figure to bench/results/latest.json. What each figure means: docs/benchmarks.md.
 *
 * Order (about a minute on 2 cores; every loop is bounded by a count and every wait by a
 * timeout): cold start in a fresh process; raw ONNX Runtime at batch 1 and 64; relay warm-up
 * and paced latency; Vigil start, warm-up, raw fdatasync, Vigil paced latency; then flood
 * pairs, relay then Vigil on the same rows, so that both see the same background load; raw
 * ONNX Runtime and Vigil's store stage alone at the batch sizes Vigil formed. Loopback only, ports chosen by the OS.
 *
 * Options: --assets N (1000), --reps N flood pairs (3), --flood-rows N rows per asset per
 * flood (50), --paced-rows N (10), --synchronous full|normal (full, Vigil's default).
 */

import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { PublisherHandle } from "./lib/publisher-handle.js";
import { alignedT0, type WindowGeometry } from "./lib/workload.js";
import { machineInfo } from "./machine.js";
import { measureFsync } from "./fsync-ceiling.js";
import { OrtCeiling, PUMP_HEALTH_DIR, type OrtFigure } from "./ort-ceiling.js";
import { runRelay, type RelayFigure } from "./relay-ceiling.js";
import { measureStore, type StoreFigure } from "./store-stage.js";
import { printReport, type BenchResult, type ColdStart } from "./report.js";
import { MODEL_KEY, VigilUnderTest, type VigilRunFigure } from "./vigil.js";

const { values: args } = parseArgs({
  options: {
    assets: { type: "string", default: "1000" },
    reps: { type: "string", default: "3" },
    "flood-rows": { type: "string", default: "50" },
    "paced-rows": { type: "string", default: "10" },
    synchronous: { type: "string", default: "full" },
  },
});

function positiveInt(name: string, text: string | undefined): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${text}`);
  return n;
}

const ASSETS = positiveInt("assets", args.assets);
const REPS = positiveInt("reps", args.reps);
const FLOOD_ROWS = positiveInt("flood-rows", args["flood-rows"]);
const PACED_ROWS = positiveInt("paced-rows", args["paced-rows"]);
const SYNCHRONOUS = args.synchronous === "normal" ? "normal" : "full";
/** Rows of the warm-up runs: the first window of every asset closes at row 10. */
const WARMUP_ROWS = 12;
/** 1,000 assets at one row a second each: the site's real load. */
const PACED_RATE_PER_SEC = ASSETS;
/** Relay paced latency: rows per asset (3 s at the paced rate). */
const RELAY_PACED_ROWS = 3;
/** Publishes waiting for the socket, at most (the publisher follows TCP back-pressure). */
const INFLIGHT = 1_000;
/** Longest any single run may take, from its first send. */
const RUN_TIMEOUT_MS = 30_000;

const RESULTS = path.join(import.meta.dirname, "results", "latest.json");

interface Manifest {
  input: { window: { type: string; sizeMs?: number; hopMs?: number; sampleMs?: number } };
}

function geometry(): WindowGeometry {
  const manifest = JSON.parse(
    fs.readFileSync(path.join(PUMP_HEALTH_DIR, "manifest.json"), "utf8"),
  ) as Manifest;
  const w = manifest.input.window;
  if (w.type !== "time" || !w.sizeMs || !w.hopMs || w.sampleMs !== 1000) {
    throw new Error("the bench's traffic assumes pump-health's 1 s time windows; update lib/workload.ts");
  }
  return { sizeMs: w.sizeMs, hopMs: w.hopMs };
}

/** `bench/cold-start.ts` in a fresh process. */
function coldStart(): Promise<ColdStart> {
  const file = path.join(import.meta.dirname, "cold-start.ts");
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--import", "tsx", file], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`cold-start child failed: ${err.message}\n${stderr}`));
        return;
      }
      resolve(JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as ColdStart);
    });
  });
}

function log(line: string): void {
  process.stderr.write(`  · ${line}\n`);
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const wallStarted = performance.now();
  const loadBefore = os.loadavg();
  const geo = geometry();
  // An hour ago, hop-aligned: every row the run sends stays in the past (no `future_ts`).
  const t0Ms = alignedT0(Date.now(), geo.hopMs, 3_600_000);

  log("cold start in a fresh process");
  const cold = await coldStart();

  log("raw ONNX Runtime ceiling");
  const ort = await OrtCeiling.open();
  const ortFigures: OrtFigure[] = [await ort.measure(1), await ort.measure(64)];

  const publisher = await PublisherHandle.start();
  const relayFloods: RelayFigure[] = [];
  const vigilFloods: VigilRunFigure[] = [];
  let vigil: VigilUnderTest | undefined;
  try {
    log("relay ceiling: warm-up, paced latency");
    const relayPlan = { assets: ASSETS, t0Ms, mode: "flood" as const, ratePerSec: 0, inflight: INFLIGHT };
    const relayWarmup = await runRelay(
      publisher,
      { ...relayPlan, rowFrom: 0, rowTo: WARMUP_ROWS },
      RUN_TIMEOUT_MS,
    );
    const relayPaced = await runRelay(
      publisher,
      { ...relayPlan, mode: "paced", ratePerSec: PACED_RATE_PER_SEC, rowFrom: 0, rowTo: RELAY_PACED_ROWS },
      RUN_TIMEOUT_MS,
    );

    log(`Vigil: start, warm-up, paced ${PACED_RATE_PER_SEC} messages/s for ${PACED_ROWS} s`);
    vigil = new VigilUnderTest(publisher, {
      assets: ASSETS,
      t0Ms,
      geometry: geo,
      inflight: INFLIGHT,
      timeoutMs: RUN_TIMEOUT_MS,
      storeSynchronous: SYNCHRONOUS,
    });
    await vigil.start();
    const vigilWarmup = await vigil.run("warm-up", "flood", WARMUP_ROWS);
    log("raw fdatasync ceiling (temp dir)");
    const fsync = measureFsync();
    const vigilPaced = await vigil.run("paced", "paced", PACED_ROWS, PACED_RATE_PER_SEC);

    for (let i = 0; i < REPS; i++) {
      log(`flood pair ${i + 1}/${REPS}: relay, then Vigil (${ASSETS * FLOOD_ROWS} messages each)`);
      const rows = { rowFrom: vigil.nextRow, rowTo: vigil.nextRow + FLOOD_ROWS };
      relayFloods.push(await runRelay(publisher, { ...relayPlan, ...rows }, RUN_TIMEOUT_MS));
      vigilFloods.push(await vigil.run(`flood ${i + 1}`, "flood", FLOOD_ROWS));
    }
    const summary = await vigil.stop();
    vigil = undefined;

    log("raw ONNX Runtime and the store stage at the batch sizes Vigil formed");
    const floodBatches = vigilFloods.map((r) => r.meanBatch).sort((a, b) => a - b);
    const medianFlood = floodBatches[Math.floor(floodBatches.length / 2)] ?? 1;
    const storeFigures: StoreFigure[] = [];
    for (const mean of [vigilPaced.meanBatch, medianFlood]) {
      const b = Math.max(1, Math.round(mean));
      if (!ortFigures.some((f) => f.batch === b)) ortFigures.push(await ort.measure(b));
      if (!storeFigures.some((f) => f.batch === b)) storeFigures.push(measureStore(SYNCHRONOUS, b));
    }
    ortFigures.sort((a, b) => a.batch - b.batch);

    const result: BenchResult = {
      date: startedAt.toISOString(),
      command: "npm run bench",
      machine: {
        ...machineInfo(ort.provider),
        loadAverageBefore: loadBefore,
        loadAverageAfter: os.loadavg(),
      },
      workload: {
        assets: ASSETS,
        model: MODEL_KEY,
        window: geo,
        rowMs: 1000,
        readingsPerMessage: 4,
        warmupRows: WARMUP_ROWS,
        pacedRows: PACED_ROWS,
        pacedRatePerSec: PACED_RATE_PER_SEC,
        floodRows: FLOOD_ROWS,
        floodReps: REPS,
        inflight: INFLIGHT,
        storeSynchronous: SYNCHRONOUS,
      },
      ort: ortFigures,
      fsync,
      store: storeFigures,
      relay: { warmup: relayWarmup, paced: relayPaced, floods: relayFloods },
      vigil: { summary, coldStart: cold, warmup: vigilWarmup, paced: vigilPaced, floods: vigilFloods },
      wallSeconds: (performance.now() - wallStarted) / 1000,
    };
    fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
    fs.writeFileSync(RESULTS, `${JSON.stringify(result, null, 2)}\n`);
    printReport(result);
    console.log(`\nAll figures: ${path.relative(process.cwd(), RESULTS)}`);
  } finally {
    if (vigil) await vigil.stop().catch(() => undefined);
    await publisher.stop();
    await ort.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exitCode = 1;
});
