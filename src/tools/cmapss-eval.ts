/**
 * Evaluation of a RUL package on a C-MAPSS test set, twice: offline through `vigil batch`,
 * and live through a gateway on a real broker fed by `vigil replay`
 * (`npm run eval:cmapss -- --data DIR`; docs/evaluation.md).
 *
 * Contract:
 * - Runs the real commands as child processes (`options.vigil` is the argv prefix that starts
 *   the CLI; their progress lines go to `options.progress`), and the live gateway in this
 *   process on an embedded aedes broker at a port the OS chooses, with the shipped defaults
 *   except: a temporary data folder, a models folder holding only the package under test, and
 *   no ingest *rate* limits (a replay at full speed is a flood by design; the other limits stay).
 * - The replay's time base is start + cycle × 1000 ms with start a whole second one day before
 *   now (so no reading is "in the future"); batch's is cycle × 1000 ms (contract §1). Windows
 *   are matched by (asset, cycle).
 * - Predictions are collected from MQTT (`<base>/<gatewayId>/predictions/#`, QoS 1) as a
 *   maintenance system would receive them, until every window `vigil batch` wrote has arrived,
 *   or until `settleTimeoutMs` passes after the replay with nothing new (the shortfall is
 *   reported, not hidden). A redelivery (same `id`) counts once; a second prediction with
 *   another id for the same window counts as extra. Alerts are counted until a marker message
 *   sent after the gateway settled has come back.
 * - `ok` when every offline window arrived live, nothing extra arrived, the gateway refused no
 *   reading, and every window agrees to `tolerance` (default 1e-4).
 * - Metrics: each engine's last window against `RUL_<subset>.txt` (see rul-metrics.ts).
 * Failure: a command that exits non-zero, an unreadable file or a gateway that does not start
 * rejects with a `VigilError` naming the step; the temporary folder is always removed.
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
  compareWindows,
  engineUnit,
  lastPerEngine,
  parseRulFile,
  readBatchCsv,
  scoreEngines,
  type EngineComparison,
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
  /** After the replay, give up waiting when nothing new has arrived for this long (default 15 s). */
  settleTimeoutMs?: number;
  /** Config overrides for the live gateway, applied after the evaluation's own. */
  gatewayOverrides?: Record<string, unknown>;
  log?: Logger;
  /** Step lines ("vigil batch ..."). */
  say?: (line: string) => void;
  /** The children's stderr lines (their progress bars). */
  progress?: (line: string) => void;
}

export interface CmapssEvalResult {
  model: { name: string; version: string; output: string };
  subset: string;
  offline: RulScores & { windows: number; seconds: number };
  live: RulScores & {
    windows: number;
    seconds: number;
    replayedMessages: number;
    redelivered: number;
    rejected: Record<string, number>;
  };
  agreement: {
    windowsCompared: number;
    missingLive: number;
    extraLive: number;
    maxAbsDiff: number;
    worst: string;
    firstMissing: string;
    lastWindowMaxAbsDiff: number;
    tolerance: number;
  };
  engines: EngineComparison[];
  alerts: Record<string, { raised: number; cleared: number; engines: number }>;
  ok: boolean;
}

interface Manifest {
  name: string;
  version: string;
  outputs: { name: string; kind: string }[];
}

function runChild(
  argv: readonly string[],
  cwd: string,
  what: string,
  onStderrLine: (line: string) => void = () => undefined,
): Promise<string> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new VigilError("EVAL_STEP", `${what}: empty command`));
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let partial = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      const lines = (partial + d).split(/\r|\n/);
      partial = lines.pop() ?? "";
      for (const l of lines) if (l.trim() !== "") onStderrLine(l);
    });
    child.on("error", (err) => reject(new VigilError("EVAL_STEP", `${what}: ${errorMessage(err)}`)));
    child.on("close", (code) => {
      if (partial.trim() !== "") onStderrLine(partial);
      if (code === 0) resolve(out);
      else {
        const reason = out.trim().split("\n").slice(-1)[0] ?? "";
        reject(new VigilError("EVAL_STEP", `${what} exited ${code}: ${reason}`));
      }
    });
  });
}

/** `vigil batch` CSV -> window predictions of one output column (`VigilError` if unusable). */
export function readBatchPredictions(text: string, output: string): WindowPrediction[] {
  try {
    return readBatchCsv(text, output);
  } catch (err) {
    throw new VigilError("EVAL_STEP", errorMessage(err));
  }
}

const DAY_MS = 86_400_000;

export async function evaluateCmapss(options: CmapssEvalOptions): Promise<CmapssEvalResult> {
  const subset = options.subset ?? "FD001";
  const say = options.say ?? (() => undefined);
  const tolerance = options.tolerance ?? 1e-4;
  const rate = options.rate ?? 0;
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
  if (!manifest.outputs.some((o) => o.name === output)) {
    throw new VigilError("EVAL_INPUT", `${manifest.name} has no output named ${output}`);
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-eval-"));
  try {
    // 1. Offline: vigil batch.
    const batchOut = path.join(work, "batch.csv");
    let t0 = Date.now();
    say(`vigil batch --format cmapss --file ${testFile}`);
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
      options.progress,
    );
    const offline = readBatchPredictions(fs.readFileSync(batchOut, "utf8"), output);
    const offlineSeconds = (Date.now() - t0) / 1000;
    const expected = new Set(offline.map((o) => `${o.asset}@${o.windowEnd}`));

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
        "ingest.maxReadingsPerSecond": 0,
        "ingest.maxReadingsPerSecondPerAsset": 0,
        ...options.gatewayOverrides,
      },
    });
    const gateway = new Gateway(config, options.log ?? silentLogger());
    await gateway.start();
    /** Live predictions by window (asset @ cycle × 1000), with the id they came with. */
    const live = new Map<string, WindowPrediction & { id: string }>();
    const alerts: Record<string, { raised: number; cleared: number; engines: Set<string> }> = {};
    let duplicates = 0;
    let redelivered = 0;
    let arrivedExpected = 0;
    let replayedMessages = 0;
    let liveSeconds = 0;
    const startMs = Math.floor(Date.now() / 1000) * 1000 - DAY_MS;
    const topics = gatewayTopics(config.mqtt.baseTopic, config.gatewayId);
    const marker = `vigil-eval/${process.pid}/${Date.now()}/marker`;
    let stats: ReturnType<Gateway["pipelineStats"]>;
    try {
      const brokerUrl = gateway.brokerUrl();
      if (!brokerUrl) throw new VigilError("EVAL_STEP", "the live gateway has no embedded broker");
      const client = await connectOnce(brokerUrl, { clientId: `vigil-eval-${process.pid}` });
      try {
        let onPrediction: () => void = () => undefined;
        let onMarker: () => void = () => undefined;
        client.on("message", (topic, payload) => {
          if (topic === marker) {
            onMarker();
            return;
          }
          if (topic.startsWith(`${topics.root}/alerts/`)) {
            const a = JSON.parse(payload.toString()) as AlertPayload;
            const entry = (alerts[a.rule] ??= { raised: 0, cleared: 0, engines: new Set() });
            entry[a.state]++;
            entry.engines.add(a.asset);
            return;
          }
          const p = JSON.parse(payload.toString()) as PredictionPayload;
          const v = p.outputs[output];
          if (engineUnit(p.asset) === undefined) return;
          const windowEnd = p.windowEnd - startMs; // cycle × 1000, as batch writes it
          const k = `${p.asset}@${windowEnd}`;
          const seen = live.get(k);
          if (seen) {
            if (seen.id === p.id) redelivered++;
            else duplicates++;
            return;
          }
          live.set(k, { asset: p.asset, windowEnd, value: typeof v === "number" ? v : NaN, id: p.id });
          if (expected.has(k)) arrivedExpected++;
          onPrediction();
        });
        await client.subscribeAsync([`${topics.root}/predictions/#`, `${topics.root}/alerts/#`, marker], {
          qos: 1,
        });
        t0 = Date.now();
        say(`vigil replay --format cmapss --rate ${rate} into a live gateway at ${brokerUrl}`);
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
            String(rate),
            "--start",
            String(startMs),
          ],
          options.cwd,
          "vigil replay",
          options.progress,
        );
        replayedMessages = Number(/replayed (\d+) messages/.exec(replayOut)?.[1] ?? NaN);
        // Wait, on events, until every window batch wrote has arrived, or until nothing new
        // has arrived for settleTimeoutMs.
        const settleMs = options.settleTimeoutMs ?? 15_000;
        await new Promise<void>((resolve) => {
          let timer: NodeJS.Timeout | undefined;
          const check = (): void => {
            if (timer) clearTimeout(timer);
            const done = (): void => {
              onPrediction = () => undefined;
              resolve();
            };
            if (arrivedExpected >= expected.size) done();
            else timer = setTimeout(done, settleMs);
          };
          onPrediction = check;
          check();
        });
        liveSeconds = (Date.now() - t0) / 1000;
        // Everything emitted so far committed and published; then a marker through the same
        // broker, so that the alerts published with the last windows have reached us too.
        await gateway.settle();
        const back = new Promise<void>((resolve) => (onMarker = resolve));
        await client.publishAsync(marker, "", { qos: 1 });
        await back;
      } finally {
        await client.endAsync().catch(() => undefined);
      }
    } finally {
      stats = gateway.pipelineStats();
      await gateway.stop();
    }

    // 3. Compare and score.
    const liveList = [...live.values()];
    const cmp = compareWindows(offline, liveList, truth);
    const offLast = lastPerEngine(offline);
    const liveLast = lastPerEngine(liveList);
    let lastWindowMaxAbsDiff = 0;
    for (const [unit, o] of offLast) {
      const l = liveLast.get(unit);
      const d = l ? Math.abs(l.value - o.value) : Infinity;
      lastWindowMaxAbsDiff = Math.max(lastWindowMaxAbsDiff, Number.isNaN(d) ? Infinity : d);
    }
    const rejected = Object.fromEntries(Object.entries(stats?.rejected ?? {}).filter(([, n]) => n > 0));
    const extraLive = cmp.extraLive + duplicates;
    return {
      model: { name: manifest.name, version: manifest.version, output },
      subset,
      offline: { ...scoreEngines(offLast, truth), windows: offline.length, seconds: offlineSeconds },
      live: {
        ...scoreEngines(liveLast, truth),
        windows: live.size,
        seconds: liveSeconds,
        replayedMessages,
        redelivered,
        rejected,
      },
      agreement: {
        windowsCompared: cmp.compared,
        missingLive: cmp.missingLive,
        extraLive,
        maxAbsDiff: cmp.maxAbsDiff,
        worst: cmp.worst,
        firstMissing: cmp.firstMissing,
        lastWindowMaxAbsDiff,
        tolerance,
      },
      engines: cmp.engines,
      alerts: Object.fromEntries(
        Object.entries(alerts).map(([rule, a]) => [
          rule,
          { raised: a.raised, cleared: a.cleared, engines: a.engines.size },
        ]),
      ),
      ok:
        cmp.missingLive === 0 &&
        extraLive === 0 &&
        Object.keys(rejected).length === 0 &&
        cmp.maxAbsDiff <= tolerance &&
        lastWindowMaxAbsDiff <= tolerance,
    };
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
