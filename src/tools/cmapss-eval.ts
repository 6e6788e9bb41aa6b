/**
 * Evaluation of a RUL package on a C-MAPSS test set, twice: offline through `vigil batch`,
 * and live through a gateway on a real broker fed by `vigil replay`
 * (`npm run eval:cmapss -- --data DIR`).
 *
 * Contract:
 * - Runs the real commands as child processes (`options.vigil` is the argv prefix that starts
 *   the CLI), and the live gateway in this process on an embedded aedes broker at a port the
 *   OS chooses, with the shipped defaults otherwise (ingest limits, batch size, QoS), a
 *   temporary data folder, and a models folder holding only the package under test.
 * - Predictions are collected from MQTT (`<base>/<gatewayId>/predictions/#`, QoS 1) as a
 *   maintenance system would receive them, until as many as `vigil batch` wrote have arrived
 *   (or `settleTimeoutMs` passes with none new: the shortfall is reported, not hidden).
 * - Windows are matched by (asset, cycle); cycle = (windowEnd − start) / 1000 live and
 *   windowEnd / 1000 offline (contract §1). Agreement is the largest |live − offline| over
 *   every window of every engine; `ok` when every offline window arrived live, nothing extra
 *   arrived, and agreement ≤ `tolerance`.
 * - Metrics: each engine's last window against `RUL_FD00x.txt` (see rul-metrics.ts).
 * Failure: a command that exits non-zero, an unreadable file or a gateway that does not start
 * rejects with a `VigilError` naming the step.
 */

import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../config/load.js";
import { VigilError, errorMessage } from "../errors.js";
import { Gateway } from "../gateway.js";
import { connectOnce } from "../ingest/mqtt-client.js";
import type { AlertPayload, PredictionPayload } from "../output/payloads.js";
import { compareSemver, isSemver } from "../models/semver.js";
import { gatewayTopics } from "../output/topics.js";
import { silentLogger, type Logger } from "../system/logger.js";
import {
  engineUnit,
  lastPerEngine,
  parseRulFile,
  scoreEngines,
  type RulScores,
  type WindowPrediction,
} from "./rul-metrics.js";

export interface CmapssEvalOptions {
  /** Folder with `test_<subset>.txt` and `RUL_<subset>.txt`. */
  dataDir: string;
  subset?: string;
  /** The package folder to evaluate. */
  modelDir: string;
  /** argv that starts the CLI, e.g. `[process.execPath, "--import", "tsx", "src/cli.ts"]`. */
  vigil: readonly string[];
  /** Working directory of the CLI children (the repository root). */
  cwd: string;
  /** Output to read (default: the first output of kind `rul`). */
  output?: string;
  /** Replay rate, messages per second; 0 (default): as fast as the broker takes them. */
  rate?: number;
  tolerance?: number;
  settleTimeoutMs?: number;
  /** Config overrides for the live gateway (e.g. ingest limits), applied after the defaults. */
  gatewayOverrides?: Record<string, unknown>;
  log?: Logger;
  /** Progress lines (one per step). */
  say?: (line: string) => void;
}

export interface CmapssEvalResult {
  model: { name: string; version: string; output: string };
  offline: RulScores & { windows: number; seconds: number };
  live: RulScores & {
    windows: number;
    seconds: number;
    replayedMessages: number;
    rejected: Record<string, number>;
  };
  agreement: {
    windowsCompared: number;
    missingLive: number;
    extraLive: number;
    maxAbsDiff: number;
    worst: string;
    lastWindowMaxAbsDiff: number;
    tolerance: number;
  };
  alerts: Record<string, { raised: number; cleared: number; engines: number }>;
  ok: boolean;
}

interface Manifest {
  name: string;
  version: string;
  outputs: { name: string; kind: string }[];
}

function runChild(argv: readonly string[], cwd: string, what: string): Promise<string> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new VigilError("EVAL_STEP", `${what}: empty command`));
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.on("error", (err) => reject(new VigilError("EVAL_STEP", `${what}: ${errorMessage(err)}`)));
    child.on("close", (code) => {
      if (code === 0) resolve(out);
      else {
        const reason = out.trim().split("\n").slice(-1)[0] ?? "";
        reject(new VigilError("EVAL_STEP", `${what} exited ${code}: ${reason}`));
      }
    });
  });
}

/** `vigil batch` CSV -> window predictions of one output column. */
export function readBatchPredictions(text: string, output: string): WindowPrediction[] {
  const [header = "", ...lines] = text.trimEnd().split("\n");
  const cols = header.split(",");
  const a = cols.indexOf("asset");
  const e = cols.indexOf("windowEnd");
  const o = cols.indexOf(output);
  if (a < 0 || e < 0 || o < 0) {
    throw new VigilError("EVAL_STEP", `batch CSV lacks asset, windowEnd or ${output}: ${header}`);
  }
  return lines.map((l) => {
    const cells = l.split(",");
    return { asset: cells[a] ?? "", windowEnd: Number(cells[e]), value: Number(cells[o]) };
  });
}

const windowKey = (asset: string, cycle: number): string => `${asset}#${cycle}`;

export async function evaluateCmapss(options: CmapssEvalOptions): Promise<CmapssEvalResult> {
  const subset = options.subset ?? "FD001";
  const say = options.say ?? (() => undefined);
  const tolerance = options.tolerance ?? 1e-4;
  const testFile = path.resolve(options.dataDir, `test_${subset}.txt`);
  const rulFile = path.resolve(options.dataDir, `RUL_${subset}.txt`);
  let truth: number[];
  let manifest: Manifest;
  try {
    truth = parseRulFile(fs.readFileSync(rulFile, "utf8"));
    fs.accessSync(testFile, fs.constants.R_OK);
    manifest = JSON.parse(fs.readFileSync(path.join(options.modelDir, "manifest.json"), "utf8")) as Manifest;
  } catch (err) {
    throw new VigilError("EVAL_INPUT", errorMessage(err));
  }
  const output = options.output ?? manifest.outputs.find((o) => o.kind === "rul")?.name;
  if (!output) throw new VigilError("EVAL_INPUT", `${manifest.name} has no output of kind rul`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-eval-"));
  try {
    // 1. Offline: vigil batch.
    const batchOut = path.join(work, "batch.csv");
    let t0 = Date.now();
    say(`vigil batch ${path.basename(testFile)} ...`);
    await runChild(
      [
        ...options.vigil,
        "batch",
        "--model",
        path.resolve(options.modelDir),
        "--file",
        testFile,
        "--format",
        "cmapss",
        "--out",
        batchOut,
      ],
      options.cwd,
      "vigil batch",
    );
    const offline = readBatchPredictions(fs.readFileSync(batchOut, "utf8"), output);
    const offlineSeconds = (Date.now() - t0) / 1000;

    // 2. Live: a gateway on an embedded broker, vigil replay, predictions from MQTT.
    const modelsDir = path.join(work, "models");
    fs.cpSync(options.modelDir, path.join(modelsDir, manifest.name, manifest.version), { recursive: true });
    const config = loadConfig({
      env: {},
      overrides: {
        gatewayId: "eval",
        dataDir: path.join(work, "data"),
        "log.level": "silent",
        "mqtt.embeddedBroker.enabled": true,
        "mqtt.embeddedBroker.port": 0,
        "http.port": 0,
        "models.dir": modelsDir,
        ...options.gatewayOverrides,
      },
    });
    const gateway = new Gateway(config, options.log ?? silentLogger());
    await gateway.start();
    const live = new Map<string, WindowPrediction>();
    const alerts: Record<string, { raised: number; cleared: number; engines: Set<string> }> = {};
    let extraLive = 0;
    let replayedMessages = 0;
    let liveSeconds = 0;
    const startMs = Date.UTC(2026, 0, 1);
    const topics = gatewayTopics(config.mqtt.baseTopic, config.gatewayId);
    let stats: ReturnType<Gateway["pipelineStats"]>;
    try {
      const brokerUrl = gateway.brokerUrl();
      if (!brokerUrl) throw new VigilError("EVAL_STEP", "the live gateway has no embedded broker");
      const client = await connectOnce(brokerUrl, { clientId: `vigil-eval-${process.pid}` });
      try {
        let notify: () => void = () => undefined;
        client.on("message", (topic, payload) => {
          if (topic.startsWith(`${topics.root}/alerts/`)) {
            const a = JSON.parse(payload.toString()) as AlertPayload;
            const entry = (alerts[a.rule] ??= { raised: 0, cleared: 0, engines: new Set() });
            entry[a.state]++;
            entry.engines.add(a.asset);
            return;
          }
          const p = JSON.parse(payload.toString()) as PredictionPayload;
          const v = p.outputs[output];
          const cycle = (p.windowEnd - startMs) / 1000;
          if (typeof v !== "number" || engineUnit(p.asset) === undefined) return;
          const k = windowKey(p.asset, cycle);
          if (live.has(k)) extraLive++;
          live.set(k, { asset: p.asset, windowEnd: cycle * 1000, value: v });
          notify();
        });
        await client.subscribeAsync([`${topics.root}/predictions/#`, `${topics.root}/alerts/#`], { qos: 1 });
        t0 = Date.now();
        say(`vigil replay --rate ${options.rate ?? 0} into a live gateway at ${brokerUrl} ...`);
        const replayOut = await runChild(
          [
            ...options.vigil,
            "replay",
            "--file",
            testFile,
            "--format",
            "cmapss",
            "--broker",
            brokerUrl,
            "--rate",
            String(options.rate ?? 0),
            "--start",
            String(startMs),
          ],
          options.cwd,
          "vigil replay",
        );
        replayedMessages = Number(/replayed (\d+) messages/.exec(replayOut)?.[1] ?? NaN);
        // Wait, on events, until every window batch wrote has arrived, or until nothing new
        // has arrived for settleTimeoutMs.
        const settleMs = options.settleTimeoutMs ?? 15_000;
        await new Promise<void>((resolve) => {
          let timer: NodeJS.Timeout | undefined;
          const check = (): void => {
            if (timer) clearTimeout(timer);
            if (live.size >= offline.length) {
              notify = () => undefined;
              resolve();
              return;
            }
            timer = setTimeout(() => {
              notify = () => undefined;
              resolve();
            }, settleMs);
          };
          notify = check;
          check();
        });
        liveSeconds = (Date.now() - t0) / 1000;
        // Let the alerts of the last windows arrive too (they are published with their window).
        await gateway.settle();
      } finally {
        await client.endAsync().catch(() => undefined);
      }
    } finally {
      stats = gateway.pipelineStats();
      await gateway.stop();
    }

    // 3. Compare and score.
    let maxAbsDiff = 0;
    let worst = "";
    let missingLive = 0;
    for (const o of offline) {
      const l = live.get(windowKey(o.asset, o.windowEnd / 1000));
      if (!l) {
        missingLive++;
        continue;
      }
      const d = Math.abs(l.value - o.value);
      if (d > maxAbsDiff || worst === "") {
        maxAbsDiff = d;
        worst = `${o.asset} cycle ${o.windowEnd / 1000}: live ${l.value}, batch ${o.value}`;
      }
    }
    extraLive += Math.max(0, live.size - (offline.length - missingLive));
    const offLast = lastPerEngine(offline);
    const liveLast = lastPerEngine([...live.values()]);
    let lastWindowMaxAbsDiff = 0;
    for (const [unit, o] of offLast) {
      const l = liveLast.get(unit);
      lastWindowMaxAbsDiff = Math.max(lastWindowMaxAbsDiff, l ? Math.abs(l.value - o.value) : Infinity);
    }
    const rejected = Object.fromEntries(Object.entries(stats?.rejected ?? {}).filter(([, n]) => n > 0));
    const result: CmapssEvalResult = {
      model: { name: manifest.name, version: manifest.version, output },
      offline: { ...scoreEngines(offLast, truth), windows: offline.length, seconds: offlineSeconds },
      live: {
        ...scoreEngines(liveLast, truth),
        windows: live.size,
        seconds: liveSeconds,
        replayedMessages,
        rejected,
      },
      agreement: {
        windowsCompared: offline.length - missingLive,
        missingLive,
        extraLive,
        maxAbsDiff,
        worst,
        lastWindowMaxAbsDiff,
        tolerance,
      },
      alerts: Object.fromEntries(
        Object.entries(alerts).map(([rule, a]) => [
          rule,
          { raised: a.raised, cleared: a.cleared, engines: a.engines.size },
        ]),
      ),
      ok: false,
    };
    result.ok =
      missingLive === 0 && extraLive === 0 && maxAbsDiff <= tolerance && lastWindowMaxAbsDiff <= tolerance;
    return result;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Where datasets live: `VIGIL_DATA_DIR`, else `../shared/data` beside the repository. */
export function defaultDataRoot(repoRoot: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.VIGIL_DATA_DIR
    ? path.resolve(env.VIGIL_DATA_DIR)
    : path.resolve(repoRoot, "..", "shared", "data");
}

/** `dir` itself when it holds `test_<subset>.txt`, else `dir/cmapss` when that does; else undefined. */
export function findCmapssDir(dir: string, subset = "FD001"): string | undefined {
  for (const d of [dir, path.join(dir, "cmapss")]) {
    if (fs.existsSync(path.join(d, `test_${subset}.txt`)) && fs.existsSync(path.join(d, `RUL_${subset}.txt`)))
      return d;
  }
  return undefined;
}

/** The highest version folder of package `name` under `modelsDir`, or undefined. */
export function latestPackage(modelsDir: string, name: string): string | undefined {
  const base = path.join(modelsDir, name);
  if (!fs.existsSync(base)) return undefined;
  const versions = fs
    .readdirSync(base)
    .filter((v) => isSemver(v) && fs.existsSync(path.join(base, v, "manifest.json")))
    .sort(compareSemver);
  const last = versions[versions.length - 1];
  return last === undefined ? undefined : path.join(base, last);
}
