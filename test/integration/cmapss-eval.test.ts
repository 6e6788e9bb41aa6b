/**
 * `npm run eval:cmapss` end to end: the script as a user runs it (a child process, which runs
 * `vigil batch` and `vigil replay` as children of its own, and a live gateway on a real aedes
 * broker), on a synthetic C-MAPSS test set written here (engines from the demo's turbofan
 * generator, some shorter than the 30-cycle window), with the stand-in package
 * test/fixtures/models/cmapss-rul-standin.
 *
 * Checked independently of the evaluation's own code: the batch CSV (from a separate
 * `vigil batch` run) against the model evaluated by hand from weights.json on the file's rows,
 * and RMSE / PHM08 score recomputed here from that CSV and the RUL file.
 *
 * A second test runs the real FD001 test set when the data is present (VIGIL_DATA_DIR, else
 * ../shared/data beside the repository) with models/turbofan-rul/<latest> or else the
 * stand-in; it skips, saying so in its name, when the data is absent.
 */

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { FD001_PARAMS } from "../../src/demo/turbofan-params.js";
import { createTurbofan, engineRow, engineTruth } from "../../src/demo/turbofan.js";
import { EmbeddedBroker } from "../../src/broker/embedded.js";
import { connectOnce } from "../../src/ingest/mqtt-client.js";
import { silentLogger } from "../../src/system/logger.js";
import { CMAPSS_COLUMNS } from "../../src/tools/formats.js";
import { runReplay } from "../../src/tools/replay.js";
import {
  defaultDataRoot,
  findCmapssDir,
  latestPackage,
  type CmapssEvalResult,
} from "../../src/tools/cmapss-eval.js";
import { REPO_ROOT, runCli } from "../support/cli.js";
import { FIXTURES, tempDir } from "../support/harness.js";

const STANDIN = path.join(FIXTURES, "cmapss-rul-standin");
const WINDOW = 30;

interface ScriptRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `npm run eval:cmapss -- <args>` without npm: `node --import tsx scripts/eval-cmapss.ts`. */
function runEval(args: readonly string[], timeoutMs: number): Promise<ScriptRun> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("VIGIL_")));
  const child = spawn(
    process.execPath,
    ["--import", "tsx", path.join("scripts", "eval-cmapss.ts"), ...args],
    {
      cwd: REPO_ROOT,
      env: { ...env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(`eval:cmapss still running after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`),
      );
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A C-MAPSS test file and its RUL file, from the turbofan generator; rows kept for the hand check. */
function syntheticTestSet(
  dir: string,
  cyclesPerUnit: readonly number[],
): { rows: Map<number, Record<string, number>[]>; truth: number[] } {
  const lines: string[] = [];
  const truth: number[] = [];
  const rows = new Map<number, Record<string, number>[]>();
  cyclesPerUnit.forEach((cycles, i) => {
    const unit = i + 1;
    const engine = createTurbofan(500 + unit, FD001_PARAMS, { initialWear: 0.3 });
    const unitRows: Record<string, number>[] = [];
    for (let c = 1; c <= cycles; c++) {
      // The file's cycle column counts from 1 at the start of the record, as in C-MAPSS test files.
      const row: Record<string, number> = { ...engineRow(engine, c - 1), cycle: c };
      unitRows.push(row);
      const cells = CMAPSS_COLUMNS.slice(2).map((name) => {
        const v = row[name];
        if (v === undefined) throw new Error(`generator has no ${name}`);
        return String(v);
      });
      lines.push(`${unit} ${c} ${cells.join(" ")}  `); // C-MAPSS lines end in two spaces
    }
    rows.set(unit, unitRows);
    truth.push(engineTruth(engine, cycles - 1).rul);
  });
  fs.writeFileSync(path.join(dir, "test_FD001.txt"), `${lines.join("\n")}\n`);
  fs.writeFileSync(path.join(dir, "RUL_FD001.txt"), truth.map((t) => `${t} `).join("\n") + "\n");
  return { rows, truth };
}

/** The stand-in evaluated by hand from its manifest and weights.json on one window of rows. */
function handRul(window: readonly Record<string, number>[]): number {
  const manifest = JSON.parse(fs.readFileSync(path.join(STANDIN, "manifest.json"), "utf8")) as {
    input: { signals: string[]; normalize: { mean: number[]; std: number[] } };
  };
  const weights = JSON.parse(fs.readFileSync(path.join(STANDIN, "weights.json"), "utf8")) as {
    layers: { W: number[][]; b: number[] }[];
  };
  const { signals, normalize } = manifest.input;
  const x = window.flatMap((row) =>
    signals.map(
      (s, j) => ((row[s] as number) - (normalize.mean[j] as number)) / (normalize.std[j] as number),
    ),
  );
  const w = weights.layers[0]?.W[0] ?? [];
  expect(w).toHaveLength(x.length);
  return (weights.layers[0]?.b[0] ?? 0) + x.reduce((sum, xi, i) => sum + xi * (w[i] as number), 0);
}

/** RMSE and PHM08 score written out here, not imported. */
function metrics(pred: readonly number[], truth: readonly number[]): { rmse: number; score: number } {
  let sq = 0;
  let score = 0;
  pred.forEach((p, i) => {
    const d = p - (truth[i] as number);
    sq += d * d;
    score += d < 0 ? Math.exp(-d / 13) - 1 : Math.exp(d / 10) - 1;
  });
  return { rmse: Math.sqrt(sq / pred.length), score };
}

describe("npm run eval:cmapss on a synthetic test set", () => {
  it("every batch window arrives live and agrees to 1e-4; RMSE and score match an independent computation", async () => {
    const dir = tempDir("vigil-cmapss-");
    // Units 2 and 4 are shorter than the window (no prediction at all); unit 5 has exactly one window.
    const cycles = [45, 12, 80, 29, 30, 61];
    const { rows, truth } = syntheticTestSet(dir, cycles);
    const json = path.join(dir, "result.json");
    const out = path.join(dir, "batch.csv");
    const [run, batch] = [
      await runEval(["--data", dir, "--model", STANDIN, "--json", json, "--engines"], 60_000),
      await runCli(
        [
          "batch",
          "--model",
          STANDIN,
          "--file",
          path.join(dir, "test_FD001.txt"),
          "--format",
          "cmapss",
          "--out",
          out,
        ],
        { timeoutMs: 30_000 },
      ),
    ];
    expect(run.code, run.stderr).toBe(0);
    expect(batch.code, batch.stderr).toBe(0);
    expect(run.stdout).toMatch(/^OK: live and batch agree/m);
    expect(run.stderr).toMatch(/replay: 100% \(257\/257,/); // the replay's progress, passed through
    const r = JSON.parse(fs.readFileSync(json, "utf8")) as CmapssEvalResult;

    // Every window batch wrote arrived live, nothing else did, and they agree.
    const windows = cycles.reduce((n, c) => n + Math.max(0, c - WINDOW + 1), 0);
    expect(r.offline.windows).toBe(windows);
    expect(r.live.windows).toBe(windows);
    expect(r.live.replayedMessages).toBe(cycles.reduce((a, b) => a + b, 0));
    expect(r.agreement).toMatchObject({ windowsCompared: windows, missingLive: 0, extraLive: 0 });
    expect(r.agreement.maxAbsDiff).toBeLessThanOrEqual(1e-4);
    expect(r.live.rejected).toEqual({});
    expect(r.ok).toBe(true);
    // Short engines are reported, not silently dropped.
    expect(r.offline.missing).toEqual([2, 4]);
    expect(r.live.missing).toEqual([2, 4]);
    expect(run.stdout).toContain("engines without a window (fewer cycles than the window): 2, 4");

    // The separate batch CSV: last window per engine, checked against the model by hand.
    const [header, ...lines] = fs.readFileSync(out, "utf8").trimEnd().split("\n");
    expect(header).toBe("asset,windowStart,windowEnd,rul");
    expect(lines).toHaveLength(windows);
    const last = new Map<number, { end: number; rul: number }>();
    for (const l of lines) {
      const [asset, , end, rul] = l.split(",");
      const unit = Number(asset?.replace("engine-", ""));
      const seen = last.get(unit);
      if (!seen || Number(end) > seen.end) last.set(unit, { end: Number(end), rul: Number(rul) });
    }
    expect([...last.keys()].sort((a, b) => a - b)).toEqual([1, 3, 5, 6]);
    for (const [unit, { end, rul }] of last) {
      const unitRows = rows.get(unit) ?? [];
      expect(end).toBe(unitRows.length * 1000); // batch: windowEnd = last cycle × 1000 ms
      expect(rul).toBeCloseTo(handRul(unitRows.slice(-WINDOW)), 3);
    }
    const units = [...last.keys()].sort((a, b) => a - b);
    const m = metrics(
      units.map((u) => last.get(u)?.rul ?? NaN),
      units.map((u) => truth[u - 1] as number),
    );
    expect(r.offline.rmse).toBeCloseTo(m.rmse, 9);
    expect(r.offline.score).toBeCloseTo(m.score, 9);
    expect(r.live.rmse).toBeCloseTo(m.rmse, 3);
    expect(r.live.score).toBeCloseTo(m.score, 3);
    expect(r.offline.predicted).toBe(4);
    expect(r.offline.engines).toBe(6);
    // Per-engine lines of --engines: the short ones have no prediction on either side.
    expect(run.stdout).toMatch(/^2 +\d+ +- +- +- +0$/m);
  }, 90_000);

  it("exits 1 with a reason when the data is not there, and 2 on wrong usage", async () => {
    const empty = tempDir("vigil-cmapss-empty-");
    const [missing, wrong] = await Promise.all([
      runEval(["--data", empty, "--model", STANDIN], 20_000),
      runEval(["--rate", "fast"], 20_000),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`no test_FD001.txt and RUL_FD001.txt in ${empty}`);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain("--rate must be a number >= 0");
  });
});

describe("vigil replay --format cmapss", () => {
  it("publishes engine-<unit>, one message per cycle with ts = start + cycle × 1000 ms, in time order, at --rate", async () => {
    const dir = tempDir("vigil-cmapss-replay-");
    const cycles = [12, 7, 9];
    const { rows } = syntheticTestSet(dir, cycles);
    const broker = new EmbeddedBroker({ host: "127.0.0.1", port: 0 }, silentLogger());
    await broker.start();
    const sub = await connectOnce(broker.url(), { clientId: "cmapss-replay-test" });
    try {
      const got: { topic: string; ts: number; values: Record<string, number> }[] = [];
      const total = cycles.reduce((a, b) => a + b, 0);
      const allArrived = new Promise<void>((resolve) => {
        sub.on("message", (topic, payload) => {
          const p = JSON.parse(payload.toString()) as { ts: number; values: Record<string, number> };
          got.push({ topic, ...p });
          if (got.length === total) resolve();
        });
      });
      await sub.subscribeAsync("plant/#", { qos: 1 });
      const start = Date.UTC(2026, 0, 1);
      const rate = 200;
      const progress: number[] = [];
      const t0 = Date.now();
      const result = await runReplay({
        file: path.join(dir, "test_FD001.txt"),
        format: "cmapss",
        brokerUrl: broker.url(),
        rate,
        topic: "plant/{asset}/row",
        startMs: start,
        progress: (done) => progress.push(done),
      });
      const elapsedMs = Date.now() - t0;
      expect(result).toEqual({ messages: total, assets: 3, skippedLines: 0 });
      // At `rate` per second the last message is due (total − 1) / rate seconds after the first:
      // a lower bound, so this holds on any machine.
      expect(elapsedMs).toBeGreaterThanOrEqual(((total - 1) * 1000) / rate - 5);
      expect(progress[0]).toBe(0);
      expect(progress.at(-1)).toBe(total);
      // Every acknowledged QoS 1 message reaches the subscriber; wait on the count, not a clock.
      await allArrived;
      expect(got).toHaveLength(total);
      // Cycle-major: every engine's cycle c before any engine's cycle c + 1 (as a fleet runs live).
      const ts = got.map((m) => m.ts);
      expect(ts).toEqual([...ts].sort((a, b) => a - b));
      for (const [unit, unitRows] of rows) {
        const mine = got.filter((m) => m.topic === `plant/engine-${unit}/row`);
        expect(mine.map((m) => m.ts)).toEqual(unitRows.map((_, i) => start + (i + 1) * 1000));
        expect(mine.map((m) => m.values)).toEqual(JSON.parse(JSON.stringify(unitRows))); // -0 travels as 0
        expect(Object.keys(mine[0]?.values ?? {})).toEqual(CMAPSS_COLUMNS.slice(1)); // cycle, op1..s21
      }
    } finally {
      await sub.endAsync();
      await broker.stop();
    }
  });
});

const dataRoot = defaultDataRoot(REPO_ROOT);
const fd001 = findCmapssDir(dataRoot);
const realModel = latestPackage(path.join(REPO_ROOT, "models"), "turbofan-rul");
const model = realModel ?? STANDIN;

describe("npm run eval:cmapss on the real FD001 test set", () => {
  it.skipIf(fd001 === undefined)(
    fd001 === undefined
      ? `skipped: no C-MAPSS FD001 under ${dataRoot} (set VIGIL_DATA_DIR to the folder holding cmapss/)`
      : `${path.relative(REPO_ROOT, model)} on ${fd001}: live and batch agree on all 100 engines`,
    async () => {
      const dir = tempDir("vigil-cmapss-real-");
      const json = path.join(dir, "result.json");
      const run = await runEval(["--data", fd001 as string, "--model", model, "--json", json], 120_000);
      expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
      const r = JSON.parse(fs.readFileSync(json, "utf8")) as CmapssEvalResult;
      const text = fs.readFileSync(path.join(fd001 as string, "test_FD001.txt"), "utf8");
      const perUnit = new Map<string, number>();
      for (const l of text.split("\n")) {
        const unit = l.trim().split(/\s+/)[0];
        if (unit) perUnit.set(unit, (perUnit.get(unit) ?? 0) + 1);
      }
      const manifest = JSON.parse(fs.readFileSync(path.join(model, "manifest.json"), "utf8")) as {
        input: { window: { size: number; hop: number } };
      };
      const { size, hop } = manifest.input.window;
      const windows = [...perUnit.values()].reduce(
        (n, c) => n + (c >= size ? Math.floor((c - size) / hop) + 1 : 0),
        0,
      );
      expect(r.offline.engines).toBe(100);
      expect(r.offline.predicted).toBe(100); // every FD001 test engine has at least 31 cycles
      expect(r.live.predicted).toBe(100);
      expect(r.offline.windows).toBe(windows);
      expect(r.agreement).toMatchObject({ windowsCompared: windows, missingLive: 0, extraLive: 0 });
      expect(r.agreement.maxAbsDiff).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(r.live.rmse - r.offline.rmse)).toBeLessThanOrEqual(1e-4);
      expect(r.ok).toBe(true);
      // The shipped package: both ways give the numbers its training run recorded (the model
      // card's numbers), computed in float64 by the trainer from the same float32 outputs.
      const recorded = (
        JSON.parse(fs.readFileSync(path.join(model, "manifest.json"), "utf8")) as {
          training?: { test?: { rmse: number; score: number; rmseCappedTruth: number } };
        }
      ).training?.test;
      if (realModel !== undefined) {
        expect(recorded, "the shipped package records its test metrics").toBeDefined();
        for (const s of [r.offline, r.live]) {
          expect(s.rmse).toBeCloseTo(recorded?.rmse ?? NaN, 4);
          expect(s.score).toBeCloseTo(recorded?.score ?? NaN, 2);
          expect(s.rmseCappedTruth).toBeCloseTo(recorded?.rmseCappedTruth ?? NaN, 4);
        }
      }
    },
    150_000,
  );
});
