/**
 * Vigil under the benchmark's traffic: a real `Gateway` (from src/, through tsx) in this
 * process with its embedded broker on 127.0.0.1 port 0, the shipped pump-health model, the
 * SQLite store in a temp folder (synchronous FULL, the default), ingest rate limits off, the
 * HTTP API on port 0. The publisher child sends; a sink client in this process subscribes to
 * the gateway's predictions and alerts, as a plant subscriber would.
 *
 * One gateway serves every run, event time continuing from run to run (rows of every asset):
 *   flood  as fast as the connection takes them: throughput, and latency under saturation;
 *   paced  a steady rate (1,000 assets at 1 Hz is the site's real load): latency from the
 *          publisher sending the row that closes a window to the sink receiving that window's
 *          prediction (committed to SQLite before it is published).
 * Measured per run: messages and readings accepted per second (first send -> the pipeline has
 * counted every payload), predictions/s (first send -> last prediction at the sink), the
 * inference stage (runner counters, and the bench backend's split, lib/timed-backend.ts),
 * event-loop delay (perf_hooks.monitorEventLoopDelay, this process), RSS (sampled every 50 ms).
 */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import mqtt, { type MqttClient } from "mqtt";
import { loadConfig } from "../src/config/load.js";
import { Gateway } from "../src/gateway.js";
import type { PipelineStats } from "../src/pipeline/pipeline.js";
import { silentLogger } from "../src/system/logger.js";
import { nowMs, sleep, waitUntil } from "./lib/clock.js";
import { CpuMeter, type CpuShare } from "./lib/cpu.js";
import type { PublisherHandle } from "./lib/publisher-handle.js";
import { distribution, mib, type Distribution } from "./lib/stats.js";
import { TimedBackend, newTiming } from "./lib/timed-backend.js";
import { ROW_MS, windowsClosed, type WindowGeometry } from "./lib/workload.js";

const ROOT = path.resolve(import.meta.dirname, "..");
const GATEWAY_ID = "bench";
export const MODEL_KEY = "pump-health@1.0.0";
/** Node records the interval between its sampling timer's runs, resolution included. */
const ELD_RESOLUTION_MS = 1;
/**
 * How often the pipeline's payload counter is polled for "everything ingested". `stats()`
 * walks every asset's windows (about 0.2 ms for 1,000 assets here): polling much faster would
 * cost the gateway measurably; 25 ms bounds the error on a multi-second run to about 1 %.
 */
const INGEST_POLL_MS = 25;

export interface VigilOptions {
  assets: number;
  t0Ms: number;
  geometry: WindowGeometry;
  inflight: number;
  /** Per run, from the first send. */
  timeoutMs: number;
  /** `store.synchronous`; `full` is the default and the figure the docs quote. */
  storeSynchronous: "full" | "normal";
}

export interface VigilRunFigure {
  name: string;
  mode: "flood" | "paced";
  messages: number;
  readings: number;
  complete: boolean;
  /** First send -> every payload counted by the pipeline. */
  ingestSeconds: number;
  messagesPerSec: number;
  readingsPerSec: number;
  /** First send -> last expected prediction at the sink. */
  endToEndSeconds: number;
  endToEndMessagesPerSec: number;
  predictionsExpected: number;
  predictionsReceived: number;
  predictionsPerSec: number;
  alertsReceived: number;
  batches: number;
  batchItems: number;
  meanBatch: number;
  /** Largest batch ORT was called with (bench backend wrapper). */
  maxBatchSeen: number;
  /** The runner's `inferenceMsTotal` (includes a wait for the event loop, see lib/timed-backend.ts). */
  runnerInferenceMs: number;
  /** Batch items / runner inference seconds: the figure Vigil's own counters give. */
  runnerWindowsPerSec: number;
  /** Measured by the bench's backend wrapper: ORT's native run (plus output copy) only. */
  ortRunMs: number;
  /** Waiting for the event loop between the call and ORT's deferred run. */
  ortWaitMs: number;
  ortWindowsPerSec: number;
  /** Per ORT call (one batch): native run time, ms. */
  ortRunPerCallMs: Distribution;
  /** Share of the run's wall time spent in ORT's native run (main thread). */
  ortShareOfWall: number;
  latencyMs: Distribution;
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  peakRssMiB: number;
  cpu: CpuShare | undefined;
}

export interface VigilSummary {
  provider: string;
  coldStartMs: number;
  stopMs: number;
  rssBeforeStartMiB: number;
  peakRssMiB: number;
  rejected: Record<string, number>;
  windowsEmitted: number;
  windowsSkipped: Record<string, number>;
  published: { published: number; failed: number } | undefined;
  storeDepth: unknown;
}

interface Arrival {
  asset: number;
  windowEndMs: number;
  atMs: number;
}

export class VigilUnderTest {
  private readonly backend = new TimedBackend();
  private readonly dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-bench-"));
  private readonly gateway: Gateway;
  private sink: MqttClient | undefined;
  private url = "";
  /** The next row (of every asset) the gateway has not been sent yet. */
  nextRow = 0;
  private arrivals: Arrival[] = [];
  private alerts = 0;
  private rssBeforeStart = 0;
  private peakRss = 0;
  private runPeakRss = 0;
  private rssTimer: NodeJS.Timeout | undefined;
  coldStartMs = Number.NaN;
  /** The execution provider Vigil's session runs on (from its status). */
  provider = "unknown";

  constructor(
    private readonly publisher: PublisherHandle,
    private readonly o: VigilOptions,
  ) {
    const config = loadConfig({
      env: {},
      overrides: {
        gatewayId: GATEWAY_ID,
        dataDir: this.dataDir,
        "log.level": "silent",
        "mqtt.embeddedBroker.enabled": true,
        "mqtt.embeddedBroker.host": "127.0.0.1",
        "mqtt.embeddedBroker.port": 0,
        "http.host": "127.0.0.1",
        "http.port": 0,
        "ingest.maxReadingsPerSecond": 0,
        "ingest.maxReadingsPerSecondPerAsset": 0,
        "models.dir": path.join(ROOT, "models"),
        "store.synchronous": o.storeSynchronous,
      },
    });
    this.gateway = new Gateway(config, silentLogger(), { backend: this.backend });
  }

  private stats(): PipelineStats {
    const s = this.gateway.pipelineStats();
    if (!s) throw new Error("gateway has no pipeline");
    return s;
  }

  /** Starts the gateway (timed: cold start) and the sink; resolves once readings flow. */
  async start(): Promise<void> {
    this.rssBeforeStart = process.memoryUsage.rss();
    this.peakRss = this.rssBeforeStart;
    this.rssTimer = setInterval(() => {
      const rss = process.memoryUsage.rss();
      if (rss > this.peakRss) this.peakRss = rss;
      if (rss > this.runPeakRss) this.runPeakRss = rss;
    }, 50);
    const started = performance.now();
    await this.gateway.start();
    this.coldStartMs = performance.now() - started;
    const url = this.gateway.brokerUrl();
    if (!url) throw new Error("the gateway runs no embedded broker");
    this.url = url;
    const serving = this.gateway.status().models?.find((m) => `${m.name}@${m.version}` === MODEL_KEY);
    this.provider = serving?.provider ?? "unknown";
    if (serving?.state !== "serving") {
      throw new Error(`${MODEL_KEY} is not serving: ${JSON.stringify(serving ?? "absent")}`);
    }

    const sink = await mqtt.connectAsync(url, {
      clientId: "bench-sink",
      protocolVersion: 4,
      reconnectPeriod: 0,
      clean: true,
    });
    this.sink = sink;
    const root = `vigil/${GATEWAY_ID}`;
    sink.on("message", (topic, payload) => {
      const atMs = nowMs();
      if (topic.startsWith(`${root}/alerts/`)) {
        this.alerts++;
        return;
      }
      if (!topic.startsWith(`${root}/predictions/`)) return;
      const p = JSON.parse(payload.toString()) as { asset: string; windowEnd: number };
      this.arrivals.push({
        asset: Number(p.asset.slice("pump-".length)) - 1,
        windowEndMs: p.windowEnd,
        atMs,
      });
    });
    await sink.subscribeAsync([`${root}/predictions/+`, `${root}/alerts/+`], { qos: 1 });

    // The gateway subscribes right after connecting; probe until a reading is seen, so that no
    // benchmark message is published before its subscription is live.
    const deadline = nowMs() + 10_000;
    while (this.stats().payloads === 0) {
      if (nowMs() > deadline) throw new Error("the gateway never received the probe reading");
      await sink.publishAsync(
        "plant/bench-probe/row",
        JSON.stringify({ ts: this.o.t0Ms, values: { probe: 0 } }),
        { qos: 0 },
      );
      await sleep(20);
    }
  }

  /** Publishes the next `rows` rows of every asset and measures until every prediction is in. */
  async run(name: string, mode: "flood" | "paced", rows: number, ratePerSec = 0): Promise<VigilRunFigure> {
    const o = this.o;
    const rowFrom = this.nextRow;
    const rowTo = rowFrom + rows;
    this.nextRow = rowTo;
    const messages = o.assets * rows;
    const expected = o.assets * windowsClosed(rowFrom, rowTo, o.geometry);
    await this.publisher.prepare({
      url: this.url,
      assets: o.assets,
      t0Ms: o.t0Ms,
      rowFrom,
      rowTo,
      mode,
      ratePerSec,
      inflight: o.inflight,
    });
    await this.gateway.settle();
    const before = this.stats();
    const beforeModel = before.models[MODEL_KEY];
    this.arrivals = [];
    this.backend.timing = newTiming();
    const alertsBefore = this.alerts;
    this.runPeakRss = process.memoryUsage.rss();
    let ingestedAt = 0;
    const poll = setInterval(() => {
      if (ingestedAt === 0 && this.stats().payloads - before.payloads >= messages) ingestedAt = nowMs();
    }, INGEST_POLL_MS);
    const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
    const cpu = new CpuMeter([process.pid, this.publisher.pid]);
    eld.enable();
    let sent;
    let complete: boolean;
    try {
      sent = await this.publisher.go(o.timeoutMs);
      complete = await waitUntil(
        () => this.arrivals.length >= expected && ingestedAt > 0,
        sent.startedMs + o.timeoutMs,
      );
    } finally {
      eld.disable();
      clearInterval(poll);
    }
    const cpuShare = cpu.stop();
    const after = this.stats();
    const timing = this.backend.timing;
    const m = after.models[MODEL_KEY];
    const batches = (m?.batches ?? 0) - (beforeModel?.batches ?? 0);
    const batchItems = (m?.batchItems ?? 0) - (beforeModel?.batchItems ?? 0);
    const runnerMs = (m?.inferenceMsTotal ?? 0) - (beforeModel?.inferenceMsTotal ?? 0);

    const latencies: number[] = [];
    let lastArrival = 0;
    for (const a of this.arrivals) {
      lastArrival = Math.max(lastArrival, a.atMs);
      const r = (a.windowEndMs - o.t0Ms) / ROW_MS - rowFrom;
      const sentAt = sent.sentAtMs[r * o.assets + a.asset];
      if (sentAt !== undefined && sentAt > 0) latencies.push(a.atMs - sentAt);
    }
    const ingestSeconds = ((ingestedAt || nowMs()) - sent.startedMs) / 1000;
    const endToEndSeconds = ((complete ? lastArrival : nowMs()) - sent.startedMs) / 1000;
    const readings = after.readingsAccepted - before.readingsAccepted;
    const delay = (ns: number): number => Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS);
    return {
      name,
      mode,
      messages,
      readings,
      complete,
      ingestSeconds,
      messagesPerSec: (after.payloads - before.payloads) / ingestSeconds,
      readingsPerSec: readings / ingestSeconds,
      endToEndSeconds,
      endToEndMessagesPerSec: messages / endToEndSeconds,
      predictionsExpected: expected,
      predictionsReceived: this.arrivals.length,
      predictionsPerSec: this.arrivals.length / endToEndSeconds,
      alertsReceived: this.alerts - alertsBefore,
      batches,
      batchItems,
      meanBatch: batches > 0 ? batchItems / batches : 0,
      maxBatchSeen: timing.maxBatch,
      runnerInferenceMs: runnerMs,
      runnerWindowsPerSec: runnerMs > 0 ? batchItems / (runnerMs / 1000) : 0,
      ortRunMs: timing.runMs,
      ortWaitMs: timing.waitMs,
      ortWindowsPerSec: timing.runMs > 0 ? timing.items / (timing.runMs / 1000) : 0,
      ortRunPerCallMs: distribution(timing.runSamplesMs),
      ortShareOfWall: timing.runMs / 1000 / endToEndSeconds,
      latencyMs: distribution(latencies),
      eventLoopDelayMs: {
        p50: delay(eld.percentile(50)),
        p99: delay(eld.percentile(99)),
        max: delay(eld.max),
      },
      peakRssMiB: mib(this.runPeakRss),
      cpu: cpuShare,
    };
  }

  /** Stops the gateway (timed) and removes its temp folder. */
  async stop(): Promise<VigilSummary> {
    if (this.rssTimer) clearInterval(this.rssTimer);
    const final = this.gateway.pipelineStats();
    const status = this.gateway.status();
    await this.sink?.endAsync(true).catch(() => undefined);
    const started = performance.now();
    await this.gateway.stop();
    const stopMs = performance.now() - started;
    fs.rmSync(this.dataDir, { recursive: true, force: true });
    const counters = status.counters as { published?: { published: number; failed: number } } | undefined;
    return {
      provider: this.provider,
      coldStartMs: this.coldStartMs,
      stopMs,
      rssBeforeStartMiB: mib(this.rssBeforeStart),
      peakRssMiB: mib(this.peakRss),
      rejected: Object.fromEntries(Object.entries(final?.rejected ?? {}).filter(([, n]) => n > 0)),
      windowsEmitted: final?.windows.emitted ?? 0,
      windowsSkipped: { ...(final?.windows.skipped ?? {}) },
      published: counters?.published,
      storeDepth: (status.store as { depth?: unknown } | undefined)?.depth,
    };
  }
}
