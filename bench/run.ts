/**
 * `npm run bench`: Vigil's throughput, latency, event-loop delay, memory and start, with the
 * raw ceilings and the peer beside them, measured in the same run on the same machine
 * (ARCHITECTURE habit 9). Prints the tables and the targets of issue 6, and writes every figure
 * to bench/results/latest.json. What each figure means: docs/benchmarks.md and bench/README.md.
 *
 * Order (every loop bounded by a count, every wait by a timeout; loopback only, OS-chosen ports):
 * build dist/ and time two cold starts from it; raw ONNX Runtime at batch 1 and 64; raw
 * fdatasync; then for each broker (aedes — embedded in the gateway and in the relay — and
 * mosquitto when installed): relay and Vigil hosts started, warm-ups, paced latency at the real
 * load (1 row per asset per second), flood pairs (relay, then Vigil, on the same rows), Vigil
 * paced at half its own flood rate and the relay paced at that same rate (the latency ceiling
 * there), and, with --profile, one profiled flood; then Node-RED on
 * mosquitto (aedes in a process of its own without it): warm-up, paced, floods, half rate;
 * finally raw ONNX Runtime and the store stage at the batch sizes Vigil formed.
 *
 * Options: --assets N (1000), --signals S per row (the workload's: turbofan 15, pump 14), --reps N flood pairs (3),
 * --flood-rows N (50), --paced-rows N (10), --brokers aedes,mosquitto, --no-nodered,
 * --nodered-flood-rows N (20), --profile, --synchronous full|normal, --in-process true|false, --workers auto|N,
 * --max-delay-ms N (Vigil's inference.maxDelayMs; default: Vigil's default),
 * --gateway-node-options "FLAGS" (NODE_OPTIONS of the gateway's process, e.g. V8 heap limits),
 * --gateway-v8-flags "FLAGS" (V8 flags NODE_OPTIONS refuses, set by v8.setFlagsFromString in the
 * gateway's process before it starts, e.g. --heap-growing-percent=25),
 * --workload turbofan|pump (bench/lib/workload.ts; default turbofan).
 */

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { PublisherHandle } from "./lib/publisher-handle.js";
import { findMosquitto, Mosquitto } from "./lib/mosquitto.js";
import { BENCH_SRC, ROOT, compiled } from "./lib/paths.js";
import { RpcChild } from "./lib/rpc.js";
import { WORKLOADS, alignedT0, workload, type WorkloadName } from "./lib/workload.js";
import type { ProfileSummary } from "./lib/profile.js";
import { machineInfo } from "./machine.js";
import { measureFsync } from "./fsync-ceiling.js";
import { OrtCeiling, type OrtFigure } from "./ort-ceiling.js";
import { measureInferenceStage } from "./inference-stage.js";
import { measureStore, type StoreFigure } from "./store-stage.js";
import {
  printReport,
  type BenchResult,
  type BrokerResult,
  type ColdStart,
  type PeerResult,
} from "./report.js";
import { Target, type RunFigure } from "./target.js";
import type { GatewayStarted, GatewayStats } from "./hosts/gateway-host.js";

const { values: args } = parseArgs({
  options: {
    assets: { type: "string", default: "1000" },
    workload: { type: "string", default: "turbofan" },
    signals: { type: "string" },
    reps: { type: "string", default: "3" },
    "flood-rows": { type: "string", default: "50" },
    "paced-rows": { type: "string", default: "10" },
    brokers: { type: "string", default: "aedes,mosquitto" },
    "no-nodered": { type: "boolean", default: false },
    "nodered-flood-rows": { type: "string", default: "20" },
    profile: { type: "boolean", default: false },
    synchronous: { type: "string", default: "full" },
    "in-process": { type: "string", default: "true" },
    workers: { type: "string", default: "auto" },
    "max-delay-ms": { type: "string" },
    "gateway-node-options": { type: "string", default: "" },
    "gateway-v8-flags": { type: "string", default: "" },
  },
});

function positiveInt(name: string, text: string | undefined): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${text}`);
  return n;
}

if (!WORKLOADS.includes(args.workload as WorkloadName)) {
  throw new Error(`--workload must be one of ${WORKLOADS.join(", ")}, got ${args.workload}`);
}
const WORKLOAD = workload(args.workload as WorkloadName);
const ASSETS = positiveInt("assets", args.assets);
const SIGNALS = args.signals === undefined ? WORKLOAD.defaultSignals : positiveInt("signals", args.signals);
const REPS = positiveInt("reps", args.reps);
const FLOOD_ROWS = positiveInt("flood-rows", args["flood-rows"]);
const PACED_ROWS = positiveInt("paced-rows", args["paced-rows"]);
const NODERED_FLOOD_ROWS = positiveInt("nodered-flood-rows", args["nodered-flood-rows"]);
const SYNCHRONOUS = args.synchronous === "normal" ? "normal" : "full";
/** mqtt.embeddedBroker.inProcess: the gateway on its embedded aedes without a socket (default). */
const IN_PROCESS = args["in-process"] !== "false";
const WORKERS = args.workers === "auto" ? "auto" : Number(args.workers);
const BROKERS = (args.brokers ?? "").split(",").filter((b) => b === "aedes" || b === "mosquitto");
/** Rows of the warm-up runs: a few past the row that closes every asset's first window. */
const WARMUP_ROWS = (() => {
  let r = 0;
  while (!WORKLOAD.closes(r)) r++;
  return r + 3;
})();
/** 1,000 assets at one row a second each: the site's real load. */
const PACED_RATE_PER_SEC = ASSETS;
const RELAY_PACED_ROWS = 3;
const INFLIGHT = 1_000;
const RUN_TIMEOUT_MS = 60_000;
const RESULTS = path.join(BENCH_SRC, "results", "latest.json");
const NODERED_DIR = path.join(BENCH_SRC, "nodered");

if (SIGNALS < WORKLOAD.modelSignals)
  throw new Error(`--signals must be at least ${WORKLOAD.modelSignals} (the model's)`);
if (args.signals !== undefined && SIGNALS > 256)
  throw new Error("--signals at most 256 (ingest.maxSignalsPerAsset)");

function log(line: string): void {
  process.stderr.write(`  · ${line}\n`);
}

/** Two starts of the built gateway in fresh processes, on one data folder (caches cold, then warm). */
function coldStarts(): ColdStart[] {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-bench-cold-"));
  try {
    const runs: ColdStart[] = [];
    for (const label of ["first start (empty caches)", "restart (caches written)"]) {
      log(`cold start: ${label}`);
      const out = execFileSync(process.execPath, [compiled("cold-start.js"), dataDir], {
        cwd: ROOT,
        timeout: 60_000,
        stdio: ["ignore", "pipe", "ignore"],
      }).toString();
      runs.push({ label, ...(JSON.parse(out.trim().split("\n").pop() ?? "{}") as Omit<ColdStart, "label">) });
    }
    return runs;
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

function vigilOverrides(dataDir: string, brokerUrl: string | undefined): Record<string, unknown> {
  return {
    gatewayId: "bench",
    dataDir,
    "log.level": "silent",
    ...(brokerUrl
      ? { "mqtt.url": brokerUrl, "mqtt.embeddedBroker.enabled": false }
      : {
          "mqtt.embeddedBroker.enabled": true,
          "mqtt.embeddedBroker.host": "127.0.0.1",
          "mqtt.embeddedBroker.port": 0,
          "mqtt.embeddedBroker.inProcess": IN_PROCESS,
        }),
    "http.host": "127.0.0.1",
    "http.port": 0,
    "ingest.maxReadingsPerSecond": 0,
    "ingest.maxReadingsPerSecondPerAsset": 0,
    // The workload's model only (models/ also ships models for other machines' signals).
    "models.dir": WORKLOAD.modelsDir,
    "store.synchronous": SYNCHRONOUS,
    "inference.workers": WORKERS,
    ...(args["max-delay-ms"] !== undefined ? { "inference.maxDelayMs": Number(args["max-delay-ms"]) } : {}),
  };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[Math.floor((s.length - 1) / 2)] as number);
};

/** Relay and Vigil through one broker: `url` undefined = aedes embedded in each host. */
async function brokerRuns(
  broker: string,
  url: string | undefined,
  extraPids: number[],
  publisher: PublisherHandle,
  t0Ms: number,
): Promise<BrokerResult> {
  const common = {
    assets: ASSETS,
    signals: SIGNALS,
    t0Ms,
    workload: WORKLOAD,
    inflight: INFLIGHT,
    timeoutMs: RUN_TIMEOUT_MS,
    extraPids,
    broker,
  };
  const relayHost = RpcChild.fork(compiled("hosts/relay-host.js"));
  const vigilHost = RpcChild.fork(compiled("hosts/gateway-host.js"), {
    ...(args["gateway-node-options"] ? { NODE_OPTIONS: args["gateway-node-options"] } : {}),
    ...(args["gateway-v8-flags"] ? { VIGIL_BENCH_V8_FLAGS: args["gateway-v8-flags"] } : {}),
  });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-bench-"));
  const targets: Target[] = [];
  try {
    log(`${broker}: relay ceiling — start, warm-up, paced latency`);
    const relayStart = await relayHost.call<{ url: string }>("start", {
      inputRoot: "relayin",
      ...(url ? { url } : {}),
    });
    const relay = new Target(publisher, {
      ...common,
      kind: "relay",
      host: relayHost,
      url: relayStart.url,
      outputRoot: "relay",
      inputRoot: "relayin",
    });
    targets.push(relay);
    await relay.connectSink();
    await relay.waitSubscribed(async () => (await relayHost.call<{ relayed: number }>("stats")).relayed);
    const relayWarmup = await relay.run("warm-up", "flood", WARMUP_ROWS);
    const relayPaced = await relay.run("paced", "paced", RELAY_PACED_ROWS, PACED_RATE_PER_SEC);

    log(`${broker}: Vigil — start, warm-up, paced ${PACED_RATE_PER_SEC} messages/s`);
    const started = await vigilHost.call<GatewayStarted>("start", vigilOverrides(dataDir, url));
    const vigilUrl = url ?? started.brokerUrl;
    if (!vigilUrl) throw new Error("the gateway runs no embedded broker");
    const vigil = new Target(publisher, {
      ...common,
      kind: "vigil",
      host: vigilHost,
      url: vigilUrl,
      outputRoot: "vigil/bench",
      inputRoot: "plant",
    });
    targets.push(vigil);
    await vigil.connectSink();
    await vigil.waitSubscribed(() => vigilHost.call<number>("payloads"));
    const warmup = await vigil.run("warm-up", "flood", WARMUP_ROWS);
    const paced = await vigil.run("paced", "paced", PACED_ROWS, PACED_RATE_PER_SEC);
    const relayFloods: RunFigure[] = [];
    const floods: RunFigure[] = [];
    for (let i = 0; i < REPS; i++) {
      log(`${broker}: flood pair ${i + 1}/${REPS}: relay, then Vigil (${ASSETS * FLOOD_ROWS} messages each)`);
      relay.nextRow = vigil.nextRow;
      relayFloods.push(await relay.run(`flood ${i + 1}`, "flood", FLOOD_ROWS));
      floods.push(await vigil.run(`flood ${i + 1}`, "flood", FLOOD_ROWS));
    }
    const maxRate = median(floods.map((f) => f.endToEndMessagesPerSec));
    const halfRate = Math.max(1, Math.round(maxRate / 2));
    log(`${broker}: Vigil paced at half its flood rate (${halfRate} messages/s)`);
    const half = await vigil.run("half max", "paced", PACED_ROWS, halfRate);
    // The ceiling for that latency: the bare relay paced at the same rate, through the same
    // broker, publisher and subscriber (what the harness itself adds at that rate).
    log(`${broker}: relay paced at Vigil's half rate (${halfRate} messages/s)`);
    relay.nextRow = vigil.nextRow;
    const relayHalf = await relay.run("half max", "paced", PACED_ROWS, halfRate);
    let profile: ProfileSummary | undefined;
    let profiled: RunFigure | undefined;
    if (args.profile) {
      log(`${broker}: Vigil flood under the CPU profiler (main thread)`);
      await vigilHost.call("profileStart");
      profiled = await vigil.run("profiled", "flood", FLOOD_ROWS);
      profile = await vigilHost.call<ProfileSummary | undefined>("profileStop");
    }
    const stopped = await vigilHost.call<{
      stopMs: number;
      final: GatewayStats;
      status: Record<string, unknown>;
    }>("stop");
    await relayHost.call("stop");
    return {
      broker,
      relay: { warmup: relayWarmup, paced: relayPaced, floods: relayFloods, half: relayHalf },
      vigil: {
        startMs: started.startMs,
        rssAfterStartMiB: started.rssBytes / 1024 / 1024,
        status: stopped.status,
        final: stopped.final,
        stopMs: stopped.stopMs,
        warmup,
        paced,
        floods,
        half,
        ...(profiled ? { profiled } : {}),
        ...(profile ? { profile } : {}),
      },
      vigilSamples: Object.fromEntries([...vigil.samples].slice(0, 2_000)),
    };
  } finally {
    for (const t of targets) await t.close();
    await relayHost.close();
    await vigilHost.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Installs Node-RED into bench/nodered/node_modules when missing (npm registry). */
function ensureNodeRed(): string | undefined {
  if (fs.existsSync(path.join(NODERED_DIR, "node_modules", "node-red", "package.json"))) return undefined;
  log("installing Node-RED for the peer run: npm ci --prefix bench/nodered");
  try {
    execFileSync("npm", ["ci", "--prefix", NODERED_DIR, "--no-audit", "--no-fund"], {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "inherit"],
      timeout: 300_000,
    });
    return undefined;
  } catch (err) {
    return `Node-RED could not be installed (npm ci --prefix bench/nodered): ${err instanceof Error ? err.message : String(err)}`;
  }
}

async function nodeRedRuns(
  broker: string,
  url: string,
  extraPids: number[],
  publisher: PublisherHandle,
  t0Ms: number,
): Promise<PeerResult> {
  const host = RpcChild.fork(compiled("nodered/host.js"));
  let target: Target | undefined;
  try {
    log(`Node-RED on ${broker}: start, warm-up, paced ${PACED_RATE_PER_SEC} messages/s`);
    const started = await host.call<{ version: string; startMs: number }>("start", {
      brokerUrl: url,
      modelDir: WORKLOAD.packageDir,
    });
    target = new Target(publisher, {
      kind: "node-red",
      broker,
      host,
      url,
      extraPids,
      assets: ASSETS,
      signals: SIGNALS,
      t0Ms,
      workload: WORKLOAD,
      inflight: INFLIGHT,
      timeoutMs: RUN_TIMEOUT_MS * 2,
      outputRoot: "vigil/bench",
      inputRoot: "plant",
    });
    await target.connectSink();
    await target.waitSubscribed(async () => (await host.call<{ payloads: number }>("stats")).payloads);
    const warmup = await target.run("warm-up", "flood", WARMUP_ROWS);
    const paced = await target.run("paced", "paced", PACED_ROWS, PACED_RATE_PER_SEC);
    const floods: RunFigure[] = [];
    for (let i = 0; i < REPS; i++) {
      log(`Node-RED flood ${i + 1}/${REPS} (${ASSETS * NODERED_FLOOD_ROWS} messages)`);
      floods.push(await target.run(`flood ${i + 1}`, "flood", NODERED_FLOOD_ROWS));
    }
    const halfRate = Math.max(1, Math.round(median(floods.map((f) => f.endToEndMessagesPerSec)) / 2));
    log(`Node-RED paced at half its flood rate (${halfRate} messages/s)`);
    const half = await target.run("half max", "paced", PACED_ROWS, halfRate);
    await host.call("stop");
    return {
      name: "node-red",
      version: started.version,
      broker,
      startMs: started.startMs,
      warmup,
      paced,
      floods,
      half,
      samples: Object.fromEntries([...target.samples].slice(0, 2_000)),
    };
  } finally {
    await target?.close();
    await host.close();
  }
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const wallStarted = performance.now();
  const loadBefore = os.loadavg();
  const t0Ms = alignedT0(Date.now(), WORKLOAD.alignMs, 3_600_000);
  const skipped: Record<string, string> = {};

  const cold = coldStarts();
  log("raw ONNX Runtime ceiling");
  const ort = await OrtCeiling.open(WORKLOAD);
  const ortFigures: OrtFigure[] = [await ort.measure(1), await ort.measure(64)];
  log("raw fdatasync ceiling (temp dir)");
  const fsync = measureFsync();

  const mosq = findMosquitto();
  if (BROKERS.includes("mosquitto") && "missing" in mosq) skipped.mosquitto = mosq.missing;
  let mosquitto: Mosquitto | undefined;
  const publisher = await PublisherHandle.start();
  const brokers: BrokerResult[] = [];
  let peer: PeerResult | undefined;
  let brokerHost: RpcChild | undefined;
  try {
    if ("binary" in mosq && (BROKERS.includes("mosquitto") || !args["no-nodered"])) {
      mosquitto = await Mosquitto.start(mosq.binary);
    }
    for (const b of BROKERS) {
      if (b === "aedes") brokers.push(await brokerRuns("aedes", undefined, [], publisher, t0Ms));
      if (b === "mosquitto" && mosquitto)
        brokers.push(
          await brokerRuns(`mosquitto ${mosquitto.version}`, mosquitto.url, [mosquitto.pid], publisher, t0Ms),
        );
    }
    if (args["no-nodered"]) skipped["node-red"] = "--no-nodered";
    else {
      const why = ensureNodeRed();
      if (why) skipped["node-red"] = why;
      else {
        let url = mosquitto?.url;
        let name = mosquitto ? `mosquitto ${mosquitto.version}` : "aedes (own process)";
        const pids = mosquitto ? [mosquitto.pid] : [];
        if (!url) {
          brokerHost = RpcChild.fork(compiled("hosts/broker-host.js"));
          url = (await brokerHost.call<{ url: string }>("start")).url;
          pids.push(brokerHost.pid);
          name = "aedes (own process)";
        }
        peer = await nodeRedRuns(name, url, pids, publisher, t0Ms);
      }
    }

    log("raw ONNX Runtime and the store stage at the batch sizes Vigil formed");
    const storeFigures: StoreFigure[] = [];
    for (const br of brokers) {
      for (const run of [br.vigil.paced, br.vigil.half, ...br.vigil.floods]) {
        const b = Math.max(1, Math.round(run.inference?.meanBatch ?? 1));
        if (!ortFigures.some((f) => f.batch === b)) ortFigures.push(await ort.measure(b, 500, 150));
      }
      for (const run of [br.vigil.paced, br.vigil.floods[0]]) {
        const b = Math.max(1, Math.round(run?.meanBatch ?? 1));
        if (!storeFigures.some((f) => f.batch === b)) storeFigures.push(measureStore(SYNCHRONOUS, b));
      }
    }
    ortFigures.sort((a, b) => a.batch - b.batch);
    // Where the gateway placed the model (src/inference/placement.ts): the stage alone runs there.
    const placed = (
      brokers[0]?.vigil.status as { models?: { name: string; placement?: { thread?: string } }[] } | undefined
    )?.models?.find((m) => m.name === WORKLOAD.model)?.placement?.thread;
    const thread = placed === "main" ? "main" : "pool";
    log(
      `Vigil's inference stage alone (${thread === "main" ? "main thread" : "worker pool"}) at the same batch sizes`,
    );
    const stage = await measureInferenceStage(
      WORKLOAD,
      [...new Set([1, 64, ...ortFigures.map((f) => f.batch)])].sort((a, b) => a - b),
      thread,
    );

    const result: BenchResult = {
      date: startedAt.toISOString(),
      command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
      machine: {
        ...machineInfo(ort.provider),
        loadAverageBefore: loadBefore,
        loadAverageAfter: os.loadavg(),
      },
      workload: {
        assets: ASSETS,
        signals: SIGNALS,
        name: WORKLOAD.name,
        model: `${WORKLOAD.model}@${WORKLOAD.version}`,
        window: WORKLOAD.manifest.input.window,
        describe: WORKLOAD.describe,
        rowMs: 1000,
        warmupRows: WARMUP_ROWS,
        pacedRows: PACED_ROWS,
        pacedRatePerSec: PACED_RATE_PER_SEC,
        floodRows: FLOOD_ROWS,
        noderedFloodRows: NODERED_FLOOD_ROWS,
        floodReps: REPS,
        inflight: INFLIGHT,
        storeSynchronous: SYNCHRONOUS,
        inProcess: IN_PROCESS,
        workers: WORKERS,
        gatewayNodeOptions: args["gateway-node-options"],
        gatewayV8Flags: args["gateway-v8-flags"],
      },
      coldStarts: cold,
      ort: ortFigures,
      fsync,
      store: storeFigures,
      inferenceStage: stage,
      brokers,
      ...(peer ? { peer } : {}),
      skipped,
      wallSeconds: (performance.now() - wallStarted) / 1000,
    };
    fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
    fs.writeFileSync(RESULTS, `${JSON.stringify(result, null, 2)}\n`);
    printReport(result);
    console.log(`\nAll figures: ${path.relative(process.cwd(), RESULTS)}`);
  } finally {
    await publisher.stop();
    await ort.close();
    await brokerHost?.close();
    await mosquitto?.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exitCode = 1;
});
