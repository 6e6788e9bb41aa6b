/**
 * The gateway under test, in a process of its own (a child of bench/run.ts): a real `Gateway`
 * from src/ (through tsx) with the configuration overrides the parent sends, so that RSS, CPU
 * and event-loop delay measured here are the gateway's alone (with its embedded broker when
 * the run uses aedes). Methods (bench/lib/rpc.ts): start, stats, runStart, runStop,
 * profileStart, profileStop, stop. Loopback only; ports chosen by the OS.
 */

import fs from "node:fs";
import v8 from "node:v8";
import { Session } from "node:inspector/promises";
import { loadConfig } from "../../src/config/load.js";
import { Gateway } from "../../src/gateway.js";
import type { PipelineStats } from "../../src/pipeline/pipeline.js";
import { silentLogger } from "../../src/system/logger.js";
import { summariseProfile, type ProfileSummary } from "../lib/profile.js";
import { RunMeter, memory, serve, type RunMeasure } from "../lib/rpc.js";

// `npm run bench -- --gateway-v8-flags "..."`: V8 flags that NODE_OPTIONS refuses (such as
// --heap-growing-percent), set before the gateway allocates anything.
if (process.env.VIGIL_BENCH_V8_FLAGS) v8.setFlagsFromString(process.env.VIGIL_BENCH_V8_FLAGS);

let gateway: Gateway | undefined;
const meter = new RunMeter();
let inspector: Session | undefined;

export interface GatewayStarted {
  brokerUrl: string | undefined;
  startMs: number;
  status: Record<string, unknown>;
  rssBytes: number;
}

export interface GatewayStats {
  pipeline: PipelineStats | undefined;
  /** The worker pool's figures (status.inference.pool). */
  pool:
    | {
        sessions: { modelPath: string; items: number; calls: number; runMs: number; roundTripMs: number }[];
        restarts: number;
      }
    | undefined;
  published: { published: number; failed: number } | undefined;
  rssBytes: number;
  peakRssBytes: number;
}

function stats(): GatewayStats {
  const status = gateway?.status() as
    | { inference?: { pool?: GatewayStats["pool"] }; counters?: { published?: GatewayStats["published"] } }
    | undefined;
  return {
    pipeline: gateway?.pipelineStats(),
    pool: status?.inference?.pool,
    published: status?.counters?.published,
    ...memory(),
  };
}

serve({
  async start(overrides: Record<string, unknown>): Promise<GatewayStarted> {
    const config = loadConfig({ env: {}, overrides });
    gateway = new Gateway(config, silentLogger());
    const started = performance.now();
    await gateway.start();
    const startMs = performance.now() - started;
    return {
      brokerUrl: gateway.brokerUrl(),
      startMs,
      status: gateway.status() as unknown as Record<string, unknown>,
      rssBytes: process.memoryUsage.rss(),
    };
  },
  stats,
  /** Only the pipeline's payload counter: cheap enough to poll every 25 ms during a run. */
  payloads(): number {
    return gateway?.payloadsReceived() ?? 0;
  },
  async settle(): Promise<void> {
    await gateway?.settle();
  },
  runStart(): void {
    meter.start();
  },
  runStop(): RunMeasure {
    return meter.stop();
  },
  async profileStart(): Promise<void> {
    inspector = new Session();
    inspector.connect();
    await inspector.post("Profiler.enable");
    await inspector.post("Profiler.setSamplingInterval", { interval: 200 });
    await inspector.post("Profiler.start");
  },
  async profileStop(): Promise<ProfileSummary | undefined> {
    if (!inspector) return undefined;
    const { profile } = await inspector.post("Profiler.stop");
    inspector.disconnect();
    inspector = undefined;
    // The raw profile too, for a closer look (Chrome DevTools, or any .cpuprofile reader).
    const out = process.env.VIGIL_BENCH_PROFILE_OUT;
    if (out) fs.writeFileSync(out, JSON.stringify(profile));
    return summariseProfile(profile);
  },
  async stop(): Promise<{ stopMs: number; final: GatewayStats; status: Record<string, unknown> }> {
    const final = stats();
    const status = (gateway?.status() ?? {}) as unknown as Record<string, unknown>;
    const started = performance.now();
    await gateway?.stop();
    gateway = undefined;
    return { stopMs: performance.now() - started, final, status };
  },
  async shutdown(): Promise<void> {
    await gateway?.stop();
  },
});
