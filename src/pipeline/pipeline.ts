/**
 * The data path from an MQTT message to a model's inference queue.
 *
 * Contract: `handleMessage(topic, payload, arrivalMs)` never throws and never blocks on I/O.
 * It drops, counts and (rate-limited) logs anything bad — oversize payloads, unknown topics,
 * undecodable payloads, readings over the limits, and readings the windows refuse — and
 * passes every accepted reading to the windows of each model its asset runs. Completed
 * windows are preprocessed exactly as the manifest says and queued on the model's runner.
 *
 * Which models an asset runs: if a `models.bindings` entry's glob matches the asset, the
 * models it names; otherwise every serving model whose `input.signals` the asset publishes.
 * "Publishes" is learnt from the readings: a model joins an asset when the asset has sent
 * every one of its signals. So that per-signal topics lose no first row, a model also counts
 * as joined while the asset is young (fewer than `maxPendingRows` distinct timestamps); after
 * that, a model whose signals the asset does not all send is left out (logged once) and its
 * half-built rows or windows are discarded.
 *
 * Model updates (`swapModel`, `setShadow`; see docs/ota.md): a swap replaces the serving
 * version of a model synchronously, between two messages, so every window is predicted by
 * exactly one version: windows emitted before the swap by the old one, later ones by the new
 * one, and the new version's batches wait for the old version's (an asset's predictions stay
 * in order; alert states pass on through the store). If the new version reads the same signals
 * with the same window, each asset's open window carries over (the new normalisation applies
 * when it closes); otherwise the open windows of that model restart, and the report says so.
 * A shadow is a candidate version fed the very windows the serving version gets, through a
 * runner that commits and publishes nothing (see ModelRunner).
 */

import { errorMessage } from "../errors.js";
import { decodePayload } from "../ingest/decode.js";
import { IngestLimits, type IngestLimitsOptions } from "../ingest/limits.js";
import { RejectCounter, RejectLogger } from "../ingest/reject-log.js";
import { TopicRouter, type Subscription } from "../ingest/topics.js";
import type { LoadedModel } from "../models/package.js";
import type { Clock } from "../system/clock.js";
import type { Logger } from "../system/logger.js";
import type { Store } from "../store/types.js";
import type { Reading, Reject } from "../types.js";
import { CountWindow } from "../window/count-window.js";
import { InputBuilder } from "../window/preprocess.js";
import { RowAssembler, type RowConsumer } from "../window/row-assembler.js";
import { TimeWindow, type TimeSample } from "../window/time-window.js";
import { addWindowStats, newWindowStats, type EmittedWindow, type WindowStats } from "../window/types.js";
import {
  ModelRunner,
  type BatchObserver,
  type PendingWindow,
  type RecordSink,
  type RunnerCounters,
  type RunnerMonitor,
} from "./runner.js";

export interface PipelineOptions {
  gatewayId: string;
  /** Topics under this root are the gateway's own and are never read as readings. */
  ownTopicRoot: string;
  subscriptions: readonly Subscription[];
  /** The ingest limits (0 = unlimited where IngestLimits says so), payload size and batch items. */
  limits: IngestLimitsOptions & { maxPayloadBytes: number; maxBatchItems: number };
  window: { allowedLatenessMs: number; maxCatchUpWindows: number; maxPendingRows: number };
  bindings: readonly { assets: string; models: readonly string[] }[];
  maxBatch: number;
  /** Windows waiting per model before the oldest is dropped. */
  maxQueuedWindows: number;
  /** Dynamic batching and per-asset bound (src/inference/batcher.ts); absent: end-of-turn batches, one at a time. */
  batching?: { maxDelayMs: number; maxQueuedPerAsset: number; maxInFlight: number };
  rejectLogIntervalMs: number;
  /** Told about every inference call (metrics). */
  observer?: BatchObserver;
  /** Backpressure (see `whenCapacity`); absent or `windows` 0: never. */
  backpressure?: { windows: number; maxWaitMs: number };
}

interface ServedModel {
  model: LoadedModel;
  runner: ModelRunner;
  builder: InputBuilder;
  signals: ReadonlySet<string>;
  /** A candidate version on trial, fed the same windows (its outputs go to monitors only). */
  shadow?: { model: LoadedModel; runner: ModelRunner; builder: InputBuilder };
}

/** What a swap did to the model's open windows. */
export interface SwapReport {
  name: string;
  /** The version that served before, or null when the model is new. */
  from: string | null;
  to: string;
  /** `carried-over`: same signals and window; `restarted`: they differ; `new`: nothing was open. */
  windows: "carried-over" | "restarted" | "new";
  /** Assets whose open window of this model carried over or restarted. */
  assets: number;
}

/** Same signals in the same order and the same window: open windows mean the same thing. */
export function sameWindowInput(a: LoadedModel, b: LoadedModel): boolean {
  const x = a.manifest.input;
  const y = b.manifest.input;
  return JSON.stringify([x.signals, x.window]) === JSON.stringify([y.signals, y.window]);
}

interface AssetState {
  seen: Set<string>;
  distinctTs: number;
  maxTsMs: number;
  /** Models this asset runs (by name), resolved from bindings or learnt from its signals. */
  bound: ServedModel[] | undefined;
  /** Models left out for this asset (logged once). */
  leftOut: Set<string>;
  counts: Map<string, CountWindow>;
  times: Map<string, TimeWindow>;
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`);
}

export interface PipelineStats {
  payloads: number;
  readingsAccepted: number;
  rejected: Record<string, number>;
  /** Count and time windows: emitted, skipped, readings/rows refused. */
  windows: WindowStats;
  /** Row assembly for count windows: rows delivered, readings refused. */
  rows: WindowStats;
  assets: number;
  models: Record<string, RunnerCounters & { queued: number }>;
  /** Ingest pauses because too many windows waited for inference (see `whenCapacity`). */
  backpressure: { pauses: number; pausedMs: number; backlogWindows: number };
}

export class Pipeline {
  private readonly router: TopicRouter;
  private readonly limits: IngestLimits;
  private readonly rejects = new RejectCounter();
  private readonly rejectLog: RejectLogger;
  private readonly rows: RowAssembler;
  private readonly bindings: { pattern: RegExp; models: readonly string[] }[];
  private readonly served = new Map<string, ServedModel>();
  private readonly assets = new Map<string, AssetState>();
  /** Stats of windows that were discarded (assets forgotten, models left out), so totals only grow. */
  private readonly retiredWindowStats = newWindowStats();
  private payloads = 0;
  private readonly capacityWaiters: (() => void)[] = [];
  private capacityTimer: NodeJS.Timeout | undefined;
  private pauses = 0;
  private pausedMs = 0;
  private pausedSinceMs: number | undefined;
  private readingsAccepted = 0;
  private stopped = false;
  /** Runners replaced by a swap or a cleared shadow, until they have finished their windows. */
  private readonly retiring = new Set<Promise<void>>();

  constructor(
    private readonly options: PipelineOptions,
    models: readonly LoadedModel[],
    private readonly store: Store,
    private readonly sink: RecordSink,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.router = new TopicRouter(options.subscriptions);
    this.limits = new IngestLimits(clock, options.limits);
    this.rejectLog = new RejectLogger(log, clock, { intervalMs: options.rejectLogIntervalMs });
    this.rows = new RowAssembler({ maxPendingRows: options.window.maxPendingRows });
    this.bindings = options.bindings.map((b) => ({ pattern: globToRegExp(b.assets), models: b.models }));
    const states = store.alertStates();
    for (const model of models) {
      const runner = this.newRunner(model, false);
      runner.restoreAlertStates(states);
      this.served.set(model.manifest.name, {
        model,
        runner,
        builder: new InputBuilder(model.manifest.input),
        signals: new Set(model.manifest.input.signals),
      });
    }
  }

  private newRunner(model: LoadedModel, shadow: boolean): ModelRunner {
    return new ModelRunner(
      model,
      this.store,
      this.sink,
      {
        gatewayId: this.options.gatewayId,
        maxBatch: this.options.maxBatch,
        maxQueued: this.options.maxQueuedWindows,
        ...this.options.batching,
        // On the main thread one batch at a time: nothing runs beside it (src/inference/placement.ts).
        ...(model.placement?.thread === "main" ? { maxInFlight: 1 } : {}),
        // Metrics count what serves; a shadow's batches are the trial's business.
        ...(this.options.observer && !shadow ? { observer: this.options.observer } : {}),
        shadow,
        onProgress: this.onProgress,
      },
      this.log.child({ model: model.key, ...(shadow ? { shadow: true } : {}) }),
    );
  }

  /** Models serving now, by name. */
  servingModels(): LoadedModel[] {
    return [...this.served.values()].map((m) => m.model);
  }

  /**
   * Serve `model` in place of the version of the same name (or add it), now; see the header.
   * Any shadow of that name is dropped. `retired` resolves once the old version has finished
   * every window it had (then its session may be released).
   */
  swapModel(
    model: LoadedModel,
    monitors: readonly RunnerMonitor[] = [],
  ): { report: SwapReport; retired: Promise<void> } {
    const name = model.manifest.name;
    const old = this.served.get(name);
    const runner = this.newRunner(model, false);
    for (const m of monitors) runner.monitors.add(m);
    let retired: Promise<void> = Promise.resolve();
    if (old) {
      if (old.shadow) void this.retire(old.shadow.runner);
      retired = this.retire(old.runner);
      // Alert states by model name: whatever the old version commits last is what the new one continues.
      runner.startAfter(retired.then(() => runner.restoreAlertStates(this.store.alertStates())));
    } else {
      runner.restoreAlertStates(this.store.alertStates());
    }
    const carry = old !== undefined && sameWindowInput(old.model, model);
    let assets = 0;
    for (const st of this.assets.values()) {
      if (st.counts.has(name) || st.times.has(name)) {
        assets++;
        if (!carry) this.discard(st, name);
      }
      st.bound = undefined;
      st.leftOut.delete(name);
    }
    this.served.set(name, {
      model,
      runner,
      builder: new InputBuilder(model.manifest.input),
      signals: new Set(model.manifest.input.signals),
    });
    const report: SwapReport = {
      name,
      from: old ? old.model.manifest.version : null,
      to: model.manifest.version,
      windows: !old || assets === 0 ? "new" : carry ? "carried-over" : "restarted",
      assets,
    };
    this.log.info({ ...report }, `model ${name} now served by ${model.key}`);
    return { report, retired };
  }

  /** Feed `candidate` the windows of the serving version of its name (trial). */
  setShadow(candidate: LoadedModel, monitors: readonly RunnerMonitor[]): void {
    const name = candidate.manifest.name;
    const served = this.served.get(name);
    if (!served) throw new Error(`no version of ${name} is serving`);
    if (!sameWindowInput(served.model, candidate)) {
      throw new Error(`${candidate.key} reads other signals or another window than ${served.model.key}`);
    }
    if (served.shadow) void this.retire(served.shadow.runner);
    const runner = this.newRunner(candidate, true);
    for (const m of monitors) runner.monitors.add(m);
    served.shadow = { model: candidate, runner, builder: new InputBuilder(candidate.manifest.input) };
  }

  /** Stop feeding the shadow of `name`; resolves when its last batch has run. */
  clearShadow(name: string): Promise<void> {
    const served = this.served.get(name);
    const shadow = served?.shadow;
    if (!served || !shadow) return Promise.resolve();
    delete served.shadow;
    return this.retire(shadow.runner);
  }

  /**
   * Predict these windows again with the serving version of `name` (after a rollback, the
   * windows the rolled-back version failed on); they queue behind what is already queued.
   */
  replay(name: string, items: readonly PendingWindow[]): number {
    const m = this.served.get(name);
    if (!m) return 0;
    for (const item of items)
      m.runner.enqueue({
        asset: item.asset,
        window: item.window,
        input: m.builder.build(item.window.matrix),
      });
    return items.length;
  }

  /** Watch the serving version of `name` (probation, trial). */
  addMonitor(name: string, monitor: RunnerMonitor): void {
    this.served.get(name)?.runner.monitors.add(monitor);
  }

  removeMonitor(name: string, monitor: RunnerMonitor): void {
    this.served.get(name)?.runner.monitors.delete(monitor);
  }

  private retire(runner: ModelRunner): Promise<void> {
    const done = runner.drain().finally(() => this.retiring.delete(done));
    this.retiring.add(done);
    return done;
  }

  /** Topic filters to subscribe to. */
  filters(): { filter: string; qos: 0 | 1 }[] {
    return this.router.filters().map((f) => ({ filter: f.filter, qos: f.qos === 0 ? 0 : 1 }));
  }

  /** Handle one MQTT message. Never throws. */
  handleMessage(topic: string, payload: Buffer, arrivalMs: number = this.clock.nowMs()): void {
    if (this.stopped) return;
    this.payloads++;
    try {
      if (topic === this.options.ownTopicRoot || topic.startsWith(`${this.options.ownTopicRoot}/`)) {
        this.reject({ reason: "own_topic", count: 1, detail: topic });
        return;
      }
      if (payload.length > this.options.limits.maxPayloadBytes) {
        this.reject({ reason: "payload_too_large", count: 1, detail: `${payload.length} bytes on ${topic}` });
        return;
      }
      const routed = this.router.route(topic);
      if (!routed.ok) {
        this.reject(routed.reject);
        return;
      }
      const { route } = routed;
      const decoded = decodePayload(payload, {
        format: route.format,
        asset: route.asset,
        ...(route.signal !== undefined ? { signal: route.signal } : {}),
        arrivalMs,
        maxBatchItems: this.options.limits.maxBatchItems,
      });
      for (const r of decoded.rejects) this.reject({ ...r, asset: r.asset ?? route.asset });
      this.handleReadings(decoded.readings, arrivalMs);
    } catch (err) {
      // A bug, not bad data: log it, keep the agent alive.
      this.log.error(
        { topic, err: errorMessage(err) },
        "unexpected error handling a message; message dropped",
      );
    }
  }

  /**
   * Admit the readings of one message through the limits and feed the windows (also used by
   * `vigil batch`, one row at a time). Time windows get all of the message's readings before
   * any of them closes, so the order of keys in a row never changes a window.
   */
  handleReadings(readings: readonly Reading[], arrivalMs: number): void {
    const timeBatches = new Map<TimeWindow, { model: ServedModel; asset: string; samples: TimeSample[] }>();
    for (const reading of readings) {
      const refused = this.limits.admit(reading, arrivalMs);
      if (refused !== null) {
        this.reject({
          reason: refused,
          count: 1,
          asset: reading.asset,
          detail: `${reading.asset}/${reading.signal}`,
        });
        continue;
      }
      this.readingsAccepted++;
      this.feed(reading, timeBatches);
    }
    for (const [tw, batch] of timeBatches) {
      const res = tw.pushMany(batch.samples);
      for (const reason of res.rejects)
        this.reject({ reason, count: 1, asset: batch.asset, detail: batch.asset });
      for (const w of res.windows) this.emit(batch.model, batch.asset, w);
    }
  }

  private reject(r: Reject): void {
    this.rejects.add(r);
    this.rejectLog.log(r);
  }

  private assetState(asset: string): AssetState {
    let st = this.assets.get(asset);
    if (!st) {
      st = {
        seen: new Set(),
        distinctTs: 0,
        maxTsMs: Number.NEGATIVE_INFINITY,
        bound: undefined,
        leftOut: new Set(),
        counts: new Map(),
        times: new Map(),
      };
      this.assets.set(asset, st);
    }
    return st;
  }

  /** The models this asset runs now (bindings, or learnt from the signals it sends). */
  private modelsFor(asset: string, st: AssetState): ServedModel[] {
    if (st.bound) return st.bound;
    const binding = this.bindings.find((b) => b.pattern.test(asset));
    if (binding) {
      st.bound = binding.models.flatMap((name) => {
        const m = this.served.get(name);
        if (!m) this.log.warn({ asset, model: name }, "binding names a model that is not serving");
        return m ? [m] : [];
      });
      return st.bound;
    }
    const young = st.distinctTs < this.options.window.maxPendingRows;
    const out: ServedModel[] = [];
    let settled = true;
    for (const m of this.served.values()) {
      const all = [...m.signals].every((s) => st.seen.has(s));
      if (all) {
        out.push(m);
        continue;
      }
      const some = [...m.signals].some((s) => st.seen.has(s));
      if (young) {
        settled = false;
        if (some) out.push(m);
      } else if (some && !st.leftOut.has(m.model.manifest.name)) {
        st.leftOut.add(m.model.manifest.name);
        this.discard(st, m.model.manifest.name);
        this.log.warn(
          { asset, model: m.model.key, missing: [...m.signals].filter((s) => !st.seen.has(s)) },
          "asset does not send every signal of this model; not running it for this asset",
        );
      }
    }
    // Once past the young phase with every served model decided, the answer only changes when
    // a new signal appears (see feed), so it can be cached.
    if (settled && !young) st.bound = out;
    return out;
  }

  private discard(st: AssetState, name: string): void {
    const c = st.counts.get(name);
    if (c) addWindowStats(this.retiredWindowStats, c.stats);
    const t = st.times.get(name);
    if (t) addWindowStats(this.retiredWindowStats, t.stats);
    st.counts.delete(name);
    st.times.delete(name);
  }

  private feed(
    reading: Reading,
    timeBatches: Map<TimeWindow, { model: ServedModel; asset: string; samples: TimeSample[] }>,
  ): void {
    const st = this.assetState(reading.asset);
    if (!st.seen.has(reading.signal)) {
      st.seen.add(reading.signal);
      if (!this.bindings.some((b) => b.pattern.test(reading.asset))) {
        st.bound = undefined; // a new signal may complete a model
        st.leftOut.clear();
      }
    }
    if (reading.tsMs > st.maxTsMs) {
      st.maxTsMs = reading.tsMs;
      st.distinctTs++;
    }
    const models = this.modelsFor(reading.asset, st).filter((m) => m.signals.has(reading.signal));
    if (models.length === 0) return;

    const consumers: RowConsumer[] = [];
    for (const m of models) {
      const spec = m.model.manifest.input.window;
      if (spec.type === "count") {
        consumers.push({ key: m.model.manifest.name, signals: m.model.manifest.input.signals });
      } else {
        let tw = st.times.get(m.model.manifest.name);
        if (!tw) {
          tw = new TimeWindow(spec, m.model.manifest.input.signals, {
            allowedLatenessMs: this.options.window.allowedLatenessMs,
            maxCatchUpWindows: this.options.window.maxCatchUpWindows,
          });
          st.times.set(m.model.manifest.name, tw);
        }
        let batch = timeBatches.get(tw);
        if (!batch) {
          batch = { model: m, asset: reading.asset, samples: [] };
          timeBatches.set(tw, batch);
        }
        batch.samples.push({ signal: reading.signal, tsMs: reading.tsMs, value: reading.value });
      }
    }
    if (consumers.length === 0) return;
    const assembled = this.rows.add(reading, consumers);
    for (const r of assembled.rejects) this.reject({ ...r, asset: r.asset ?? reading.asset });
    for (const row of assembled.rows) {
      const m = this.served.get(row.key);
      if (!m || m.model.manifest.input.window.type !== "count") continue;
      let cw = st.counts.get(row.key);
      if (!cw) {
        cw = new CountWindow(m.model.manifest.input.window, m.model.manifest.input.signals.length);
        st.counts.set(row.key, cw);
      }
      const res = cw.push(row.tsMs, row.values);
      if (res.reject)
        this.reject({
          reason: res.reject,
          count: 1,
          asset: reading.asset,
          detail: `${reading.asset} row @${row.tsMs}`,
        });
      if (res.window) this.emit(m, reading.asset, res.window);
    }
  }

  private emit(m: ServedModel, asset: string, window: EmittedWindow): void {
    m.runner.enqueue({ asset, window, input: m.builder.build(window.matrix) });
    if (m.shadow) m.shadow.runner.enqueue({ asset, window, input: m.shadow.builder.build(window.matrix) });
  }

  /** Stop taking messages; finish every window already emitted (inference, commit, publish). */
  async drain(): Promise<void> {
    this.stopped = true;
    await this.settle();
    this.rejectLog.flush({ force: true });
  }

  /** Wait until everything emitted so far is committed and published, and keep running. */
  async settle(): Promise<void> {
    await Promise.all([
      ...[...this.served.values()].flatMap((m) => [
        m.runner.drain(),
        ...(m.shadow ? [m.shadow.runner.drain()] : []),
      ]),
      ...this.retiring,
    ]);
  }

  /** Periodic housekeeping: write the rate-limited reject log lines that are due. */
  tick(): void {
    this.rejectLog.flush();
  }

  activeAlerts(): {
    model: string;
    asset: string;
    rule: string;
    severity: string;
    since: number | undefined;
  }[] {
    return [...this.served.values()].flatMap((m) =>
      m.runner.activeAlerts().map((a) => ({ model: m.model.manifest.name, ...a })),
    );
  }

  /** Windows waiting for inference, all models (serving and shadow). */
  backlogWindows(): number {
    let n = 0;
    for (const m of this.served.values()) n += m.runner.queued + (m.shadow?.runner.queued ?? 0);
    return n;
  }

  /**
   * Backpressure for the MQTT connection, asked after each message: undefined while fewer than
   * `backpressure.windows` windows wait for inference; else a promise that settles once they
   * are down to half, or after `backpressure.maxWaitMs` (so a stalled model cannot stop ingest
   * for good). Pauses and their time are counted (`stats().backpressure`).
   */
  whenCapacity(): Promise<void> | undefined {
    const bp = this.options.backpressure;
    if (!bp || bp.windows <= 0 || this.backlogWindows() <= bp.windows) return undefined;
    if (this.capacityWaiters.length === 0) {
      this.pauses++;
      this.pausedSinceMs = performance.now();
      this.capacityTimer = setTimeout(() => this.releaseCapacity(), bp.maxWaitMs);
      this.capacityTimer.unref();
    }
    return new Promise((resolve) => this.capacityWaiters.push(resolve));
  }

  private readonly onProgress = (): void => {
    const bp = this.options.backpressure;
    if (this.capacityWaiters.length > 0 && bp && this.backlogWindows() <= bp.windows / 2)
      this.releaseCapacity();
  };

  private releaseCapacity(): void {
    if (this.capacityTimer) clearTimeout(this.capacityTimer);
    this.capacityTimer = undefined;
    if (this.pausedSinceMs !== undefined) this.pausedMs += performance.now() - this.pausedSinceMs;
    this.pausedSinceMs = undefined;
    for (const resolve of this.capacityWaiters.splice(0)) resolve();
  }

  /** Payloads received so far: the one counter of `stats()` that costs nothing to read. */
  get payloadsReceived(): number {
    return this.payloads;
  }

  /** Counters of everything; walks every asset's windows (poll it, don't spin on it). */
  stats(): PipelineStats {
    const windows = addWindowStats(newWindowStats(), this.retiredWindowStats);
    for (const st of this.assets.values()) {
      for (const c of st.counts.values()) addWindowStats(windows, c.stats);
      for (const t of st.times.values()) addWindowStats(windows, t.stats);
    }
    const models: PipelineStats["models"] = {};
    for (const m of this.served.values())
      models[m.model.key] = { ...m.runner.counters, queued: m.runner.queued };
    return {
      payloads: this.payloads,
      readingsAccepted: this.readingsAccepted,
      rejected: this.rejects.snapshot(),
      windows,
      rows: { ...this.rows.stats },
      assets: this.assets.size,
      models,
      backpressure: {
        pauses: this.pauses,
        pausedMs: Math.round(this.pausedMs),
        backlogWindows: this.backlogWindows(),
      },
    };
  }
}
