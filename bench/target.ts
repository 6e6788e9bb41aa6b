/**
 * One system under test, measured the same way whatever it is: Vigil (bench/hosts/gateway-host.ts),
 * the bare relay (bench/hosts/relay-host.ts) or Node-RED (bench/nodered/host.ts), each in a
 * process of its own. The publisher child sends the rows; a sink client in this process
 * subscribes to the target's outputs, as a plant subscriber would.
 *
 * Per run: messages ingested per second (first send → the target has counted every payload;
 * for the relay, its output count), end to end (first send → the last expected output at the
 * sink), latency from the publisher's send of the row that closes a window (relay: of the row)
 * to its output at the sink, and, from the target's process: event-loop delay, peak RSS and CPU
 * time (all threads); from /proc: cores used by our processes and by everything else. Vigil
 * also gives its batches and the inference stage as its worker pool timed it.
 */

import mqtt, { type MqttClient } from "mqtt";
import { nowMs, sleep, waitUntil } from "./lib/clock.js";
import { CpuMeter, type CpuShare } from "./lib/cpu.js";
import type { PublisherHandle } from "./lib/publisher-handle.js";
import type { RpcChild, RunMeasure } from "./lib/rpc.js";
import { distribution, mib, type Distribution } from "./lib/stats.js";
import { ROW_MS, assetIndex, windowsClosed, type Workload } from "./lib/workload.js";
import type { GatewayStats } from "./hosts/gateway-host.js";

export type TargetKind = "vigil" | "relay" | "node-red";

export interface TargetOptions {
  kind: TargetKind;
  /** Which broker the run goes through (for the report). */
  broker: string;
  host: RpcChild;
  /** Broker the publisher and the sink use. */
  url: string;
  /** Other processes whose CPU counts as ours (an external broker). */
  extraPids: number[];
  assets: number;
  signals: number;
  t0Ms: number;
  workload: Workload;
  inflight: number;
  timeoutMs: number;
  /** Topic root of the target's outputs ("vigil/bench" or "relay"). */
  outputRoot: string;
  /**
   * First level of the row topics the target reads. The relay reads its own ("relayin"), so
   * that on a shared broker (mosquitto) the gateway never sees the relay's runs, nor the relay
   * the gateway's.
   */
  inputRoot: string;
}

export interface InferenceStage {
  calls: number;
  items: number;
  /**
   * Time inside the worker threads (ORT run + output copy), ms; for a model placed on the main
   * thread (src/inference/placement.ts), ORT's computing time as the runner timed it.
   */
  workerRunMs: number;
  /** Where the model ran. */
  thread: "main" | "pool";
  windowsPerSec: number;
  meanBatch: number;
}

export interface RunFigure {
  target: TargetKind;
  broker: string;
  name: string;
  mode: "flood" | "paced";
  ratePerSec: number;
  messages: number;
  complete: boolean;
  ingestSeconds: number;
  messagesPerSec: number;
  endToEndSeconds: number;
  endToEndMessagesPerSec: number;
  outputsExpected: number;
  outputsReceived: number;
  alertsReceived: number;
  latencyMs: Distribution;
  host: RunMeasure;
  /** Target process CPU per message, µs (an external broker's CPU not included: see cpu). */
  cpuPerMessageUs: number;
  cpu: CpuShare | undefined;
  peakRssMiB: number;
  /** Vigil only. */
  batches?: number;
  meanBatch?: number;
  inference?: InferenceStage;
  dropped?: number;
  runnerInferenceMs?: number;
}

interface Arrival {
  asset: number;
  row: number;
  atMs: number;
}

export class Target {
  private sink: MqttClient | undefined;
  private arrivals: Arrival[] = [];
  private alerts = 0;
  /** The next row (of every asset) not sent yet. */
  nextRow = 0;
  /** First outputs seen, by `asset@windowEnd` (for comparing Vigil's and Node-RED's values). */
  readonly samples = new Map<string, Record<string, number>>();

  constructor(
    private readonly publisher: PublisherHandle,
    readonly o: TargetOptions,
  ) {}

  async connectSink(): Promise<void> {
    const sink = await mqtt.connectAsync(this.o.url, {
      clientId: `bench-sink-${this.o.kind}-${process.pid}`,
      protocolVersion: 4,
      reconnectPeriod: 0,
      clean: true,
    });
    this.sink = sink;
    const root = this.o.outputRoot;
    sink.on("message", (topic, payload) => {
      const atMs = nowMs();
      if (topic.startsWith(`${root}/alerts/`)) {
        this.alerts++;
        return;
      }
      const p = JSON.parse(payload.toString()) as {
        asset: string;
        ts: number;
        windowEnd?: number;
        outputs?: Record<string, number>;
      };
      const ts = p.windowEnd ?? p.ts;
      this.arrivals.push({ asset: assetIndex(p.asset), row: (ts - this.o.t0Ms) / ROW_MS, atMs });
      if (p.outputs && this.samples.size < 5_000) this.samples.set(`${p.asset}@${ts}`, p.outputs);
    });
    const filters = this.o.kind === "relay" ? [`${root}/+`] : [`${root}/predictions/+`, `${root}/alerts/+`];
    await sink.subscribeAsync(filters, { qos: 1 });
  }

  /** Publishes probe rows until the target has counted one (its subscription is live). */
  async waitSubscribed(counter: () => Promise<number>): Promise<void> {
    const deadline = nowMs() + 15_000;
    const before = await counter();
    while ((await counter()) === before) {
      if (nowMs() > deadline) throw new Error(`${this.o.kind}: never received the probe reading`);
      await this.sink?.publishAsync(
        `${this.o.inputRoot}/bench-probe/row`,
        JSON.stringify({ ts: this.o.t0Ms, values: { probe: 0 } }),
        { qos: 0 },
      );
      await sleep(25);
    }
  }

  private expectedOutputs(rowFrom: number, rowTo: number): number {
    if (this.o.kind === "relay") return this.o.assets * (rowTo - rowFrom);
    return this.o.assets * windowsClosed(rowFrom, rowTo, this.o.workload);
  }

  /** How many payloads the target has taken in (relay: relayed). */
  private async ingested(): Promise<number> {
    if (this.o.kind === "vigil") return this.o.host.call<number>("payloads");
    const s = await this.o.host.call<{ payloads?: number; relayed?: number }>("stats");
    return s.payloads ?? s.relayed ?? 0;
  }

  async run(name: string, mode: "flood" | "paced", rows: number, ratePerSec = 0): Promise<RunFigure> {
    const o = this.o;
    const rowFrom = this.nextRow;
    const rowTo = rowFrom + rows;
    this.nextRow = rowTo;
    const messages = o.assets * rows;
    const expected = this.expectedOutputs(rowFrom, rowTo);
    await this.publisher.prepare({
      url: o.url,
      workload: o.workload.name,
      assets: o.assets,
      signals: o.signals,
      topicRoot: o.inputRoot,
      t0Ms: o.t0Ms,
      rowFrom,
      rowTo,
      mode,
      ratePerSec,
      inflight: o.inflight,
    });
    if (o.kind === "vigil") await o.host.call("settle");
    const before = o.kind === "vigil" ? await o.host.call<GatewayStats>("stats") : undefined;
    const ingestedBefore = await this.ingested();
    this.arrivals = [];
    const alertsBefore = this.alerts;
    let ingestedAt = 0;
    let polling = false;
    const poll = setInterval(() => {
      if (ingestedAt !== 0 || polling) return;
      polling = true;
      this.ingested()
        .then((n) => {
          if (ingestedAt === 0 && n - ingestedBefore >= messages) ingestedAt = nowMs();
        })
        .catch(() => undefined)
        .finally(() => {
          polling = false;
        });
    }, 25);
    await o.host.call("runStart");
    const cpu = new CpuMeter([o.host.pid, this.publisher.pid, ...o.extraPids]);
    let sent;
    let complete: boolean;
    try {
      sent = await this.publisher.go(o.timeoutMs);
      complete = await waitUntil(
        () => this.arrivals.length >= expected && ingestedAt > 0,
        sent.startedMs + o.timeoutMs,
      );
    } finally {
      clearInterval(poll);
    }
    const hostMeasure = await o.host.call<RunMeasure>("runStop");
    const cpuShare = cpu.stop();
    const latencies: number[] = [];
    let lastArrival = 0;
    for (const a of this.arrivals) {
      lastArrival = Math.max(lastArrival, a.atMs);
      const r = a.row - rowFrom;
      const sentAt = sent.sentAtMs[r * o.assets + a.asset];
      if (sentAt !== undefined && sentAt > 0) latencies.push(a.atMs - sentAt);
    }
    const ingestSeconds = ((ingestedAt || nowMs()) - sent.startedMs) / 1000;
    const endToEndSeconds = ((complete ? lastArrival : nowMs()) - sent.startedMs) / 1000;
    const figure: RunFigure = {
      target: o.kind,
      broker: o.broker,
      name,
      mode,
      ratePerSec,
      messages,
      complete,
      ingestSeconds,
      messagesPerSec: messages / ingestSeconds,
      endToEndSeconds,
      endToEndMessagesPerSec: messages / endToEndSeconds,
      outputsExpected: expected,
      outputsReceived: this.arrivals.length,
      alertsReceived: this.alerts - alertsBefore,
      latencyMs: distribution(latencies),
      host: hostMeasure,
      cpuPerMessageUs: (hostMeasure.cpuSeconds * 1e6) / messages,
      cpu: cpuShare,
      peakRssMiB: mib(hostMeasure.peakRssBytes),
    };
    if (o.kind === "vigil" && before) {
      const after = await o.host.call<GatewayStats>("stats");
      const model = o.workload.model;
      const key = Object.keys(after.pipeline?.models ?? {}).find((k) => k.startsWith(model)) ?? "";
      const m1 = after.pipeline?.models[key];
      const m0 = before.pipeline?.models[key];
      const ours = (s: { modelPath?: string }): boolean => s.modelPath?.includes(model) ?? false;
      const s1 = after.pool?.sessions.find(ours);
      const s0 = before.pool?.sessions.find(ours);
      const batches = (m1?.batches ?? 0) - (m0?.batches ?? 0);
      const items = (m1?.batchItems ?? 0) - (m0?.batchItems ?? 0);
      // No session in the pool: the model runs on the main thread, timed by its runner.
      const thread = s1 ? "pool" : "main";
      const calls = s1 ? s1.calls - (s0?.calls ?? 0) : batches;
      const workerItems = s1 ? s1.items - (s0?.items ?? 0) : items;
      const workerRunMs = s1
        ? s1.runMs - (s0?.runMs ?? 0)
        : (m1?.inferenceMsTotal ?? 0) - (m0?.inferenceMsTotal ?? 0);
      figure.batches = batches;
      figure.meanBatch = batches > 0 ? items / batches : 0;
      figure.inference = {
        calls,
        items: workerItems,
        workerRunMs,
        thread,
        windowsPerSec: workerRunMs > 0 ? workerItems / (workerRunMs / 1000) : 0,
        meanBatch: calls > 0 ? workerItems / calls : 0,
      };
      figure.dropped = (m1?.overload ?? 0) - (m0?.overload ?? 0);
      figure.runnerInferenceMs = (m1?.inferenceMsTotal ?? 0) - (m0?.inferenceMsTotal ?? 0);
    }
    return figure;
  }

  async close(): Promise<void> {
    await this.sink?.endAsync(true).catch(() => undefined);
    this.sink = undefined;
  }
}
