/**
 * One serving model's inference stage: windows in, committed and published records out.
 *
 * Contract: `enqueue` takes a preprocessed window; windows are batched (up to the model's
 * and the config's max batch): those of one turn of the event loop, and, while a batch runs,
 * all that arrive meanwhile, so a burst of messages becomes one ONNX Runtime call and a slow
 * model catches up in full batches. Batches of one model run one after another, so predictions
 * of an asset come out in the order its windows were emitted. For each batch, in order:
 * inference; outputs decoded; the manifest's alert rules evaluated per asset with hysteresis;
 * every prediction and alert event, and the new rule states, committed to the store in ONE
 * transaction; then the stored records handed to the sink (publish). A batch whose commit
 * fails (disk full, I/O error) goes to the sink's `uncommitted` instead: published locally
 * without a seq and counted in the data-loss ledger, since it will never reach the cloud.
 * Overload: at most `maxQueued` windows wait; beyond that the oldest waiting window is
 * dropped and counted (`overload`). Failures (inference, store) are counted and logged;
 * they never stop later batches.
 * Monitors (model updates: probation, shadow trials) see every batch's decoded outputs and
 * latency, or its inference failure, before the commit; a monitor that throws is logged and
 * ignored. A *shadow* runner (`options.shadow`) stops there: it evaluates no alert rules,
 * commits nothing and publishes nothing — its outputs reach its monitors only.
 */

import type { RuleState } from "../alerts/rules.js";
import { evaluateRules, parseRuleState } from "../alerts/rules.js";
import { errorMessage } from "../errors.js";
import { inputShape } from "../models/manifest-types.js";
import type { LoadedModel, OutputValue } from "../models/package.js";
import { decodeOutputs } from "../models/package.js";
import type { Logger } from "../system/logger.js";
import type { AlertStateRow, NewRecord, Store, StoredRecord } from "../store/types.js";
import type { EmittedWindow } from "../window/types.js";

export interface PendingWindow {
  asset: string;
  window: EmittedWindow;
  input: Float32Array;
}

/** Receives committed records, in commit order. Must not throw (it is told about failures by itself). */
export interface RecordSink {
  publish(records: readonly StoredRecord[]): void;
  /** Records whose commit failed with `err` (they have no id or seq yet). Must not throw. */
  uncommitted?(records: readonly NewRecord[], err: unknown): void;
}

export interface RunnerCounters {
  windowsQueued: number;
  batches: number;
  batchItems: number;
  predictions: number;
  alertsRaised: Record<string, number>;
  alertsCleared: Record<string, number>;
  inferenceErrors: number;
  storeErrors: number;
  /** Windows lost with a failed batch (inference error, store error). */
  windowsLostInference: number;
  windowsLostStore: number;
  overload: number;
  nonFiniteOutputs: number;
  inferenceMsTotal: number;
  lastInferenceMs: number;
}

/** Told about every inference call (metrics: latency and batch-size histograms). Must not throw. */
export interface BatchObserver {
  batch(model: string, size: number, inferenceMs: number): void;
}

/** Watches a runner's batches (model-update probation and shadow trials). Must be cheap. */
export interface RunnerMonitor {
  batch(
    items: readonly PendingWindow[],
    outputs: readonly Record<string, OutputValue>[],
    elapsedMs: number,
  ): void;
  failed(items: readonly PendingWindow[], err: unknown): void;
}

/** Counters of a runner that has done nothing yet. */
export function newRunnerCounters(): RunnerCounters {
  return {
    windowsQueued: 0,
    batches: 0,
    batchItems: 0,
    predictions: 0,
    alertsRaised: {},
    alertsCleared: {},
    inferenceErrors: 0,
    storeErrors: 0,
    windowsLostInference: 0,
    windowsLostStore: 0,
    overload: 0,
    nonFiniteOutputs: 0,
    inferenceMsTotal: 0,
    lastInferenceMs: 0,
  };
}

export interface RunnerOptions {
  gatewayId: string;
  maxBatch: number;
  maxQueued: number;
  observer?: BatchObserver;
  /** A candidate beside the serving version: outputs go to monitors only (see header). */
  shadow?: boolean;
}

export class ModelRunner {
  readonly counters: RunnerCounters = newRunnerCounters();

  private queue: PendingWindow[] = [];
  private scheduled = false;
  private pumping = false;
  private chain: Promise<void> = Promise.resolve();
  private readonly maxBatch: number;
  /** Rule states by `asset \0 rule`. */
  private readonly ruleStates = new Map<string, Map<string, RuleState>>();
  readonly monitors = new Set<RunnerMonitor>();

  constructor(
    readonly model: LoadedModel,
    private readonly store: Store,
    private readonly sink: RecordSink,
    private readonly options: RunnerOptions,
    private readonly log: Logger,
  ) {
    this.maxBatch = Math.max(1, Math.min(options.maxBatch, model.maxBatch));
  }

  /** Restores persisted rule states of this model (by name: they survive upgrades of the version). */
  restoreAlertStates(rows: readonly AlertStateRow[]): void {
    const ruleIds = new Set(this.model.manifest.alerts.map((r) => r.id));
    for (const row of rows) {
      if (row.model !== this.model.manifest.name || !ruleIds.has(row.rule)) continue;
      let perAsset = this.ruleStates.get(row.asset);
      if (!perAsset) {
        perAsset = new Map();
        this.ruleStates.set(row.asset, perAsset);
      }
      perAsset.set(row.rule, parseRuleState(row.state));
    }
  }

  /** Raised alerts right now, for status. */
  activeAlerts(): { asset: string; rule: string; severity: string; since: number | undefined }[] {
    const severity = new Map(this.model.manifest.alerts.map((r) => [r.id, r.severity]));
    const out: { asset: string; rule: string; severity: string; since: number | undefined }[] = [];
    for (const [asset, rules] of this.ruleStates)
      for (const [rule, st] of rules)
        if (st.raised)
          out.push({ asset, rule, severity: severity.get(rule) ?? "unknown", since: st.raisedAtMs });
    return out;
  }

  enqueue(item: PendingWindow): void {
    this.counters.windowsQueued++;
    this.queue.push(item);
    if (this.queue.length > this.options.maxQueued) {
      this.queue.shift();
      this.counters.overload++;
    }
    if (this.queue.length >= this.maxBatch) {
      this.flush();
    } else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  /** Windows waiting for inference. */
  get queued(): number {
    return this.queue.length;
  }

  private flush(): void {
    if (this.pumping || this.queue.length === 0) return;
    this.pumping = true;
    this.chain = this.chain.then(() => this.pump());
  }

  /** Runs batches while windows wait; a batch takes what has queued up by the time it starts. */
  private async pump(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const items = this.queue.splice(0, this.maxBatch);
        await this.runBatch(items).catch((err: unknown) => {
          this.log.error({ model: this.model.key, err: errorMessage(err) }, "batch failed; windows dropped");
        });
      }
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Batches of this runner start only after `previous` settles (a new version of a model waits
   * for the old version's windows, so an asset's predictions stay in order across a swap).
   */
  startAfter(previous: Promise<unknown>): void {
    this.chain = this.chain
      .then(() => previous)
      .then(
        () => undefined,
        () => undefined,
      );
  }

  private notify(call: (m: RunnerMonitor) => void): void {
    for (const m of this.monitors) {
      try {
        call(m);
      } catch (err) {
        this.log.error({ model: this.model.key, err: errorMessage(err) }, "runner monitor failed");
      }
    }
  }

  /** Runs everything queued so far; resolves when it is committed and handed to the sink. */
  async drain(): Promise<void> {
    this.flush();
    await this.chain;
  }

  private async runBatch(items: PendingWindow[]): Promise<void> {
    const { manifest, session } = this.model;
    const per = items[0]?.input.length ?? 0;
    const data = new Float32Array(per * items.length);
    items.forEach((item, i) => data.set(item.input, i * per));
    const shape = [items.length, ...inputShape(manifest.input)];
    const started = performance.now();
    let decoded: Record<string, OutputValue>[];
    try {
      const tensors = await session.run(manifest.input.tensor, data, shape);
      decoded = decodeOutputs(manifest.outputs, tensors, items.length);
    } catch (err) {
      this.counters.inferenceErrors++;
      this.counters.windowsLostInference += items.length;
      this.log.error(
        { model: this.model.key, batch: items.length, err: errorMessage(err), shadow: this.options.shadow },
        "inference failed; batch dropped",
      );
      this.notify((m) => m.failed(items, err));
      return;
    }
    const elapsedMs = session.lastRunMs ?? performance.now() - started;
    this.counters.batches++;
    this.counters.batchItems += items.length;
    this.counters.inferenceMsTotal += elapsedMs;
    this.counters.lastInferenceMs = elapsedMs;
    this.notify((m) => m.batch(items, decoded, elapsedMs));
    if (this.options.shadow === true) {
      for (const outputs of decoded)
        if (Object.values(outputs).some((v) => v === null)) this.counters.nonFiniteOutputs++;
      this.counters.predictions += items.length;
      return;
    }
    this.options.observer?.batch(this.model.key, items.length, elapsedMs);

    const records: NewRecord[] = [];
    const stateUpdates = new Map<string, AlertStateRow>();
    items.forEach((item, i) => {
      const outputs = decoded[i] ?? {};
      if (Object.values(outputs).some((v) => v === null)) this.counters.nonFiniteOutputs++;
      const w = item.window;
      records.push({
        kind: "prediction",
        asset: item.asset,
        tsMs: w.tsMs,
        data: {
          gatewayId: this.options.gatewayId,
          asset: item.asset,
          model: manifest.name,
          modelVersion: manifest.version,
          ts: w.tsMs,
          windowStart: w.windowStartMs,
          windowEnd: w.windowEndMs,
          outputs,
        },
      });
      if (manifest.alerts.length === 0) return;
      const numeric: Record<string, number> = {};
      for (const [name, v] of Object.entries(outputs)) {
        if (typeof v === "number") numeric[name] = v;
        else if (v === null) numeric[name] = Number.NaN;
      }
      const prev = this.ruleStates.get(item.asset) ?? new Map<string, RuleState>();
      const result = evaluateRules(manifest.alerts, prev, numeric, w.tsMs);
      this.ruleStates.set(item.asset, result.states);
      for (const rule of manifest.alerts) {
        const before = prev.get(rule.id);
        const after = result.states.get(rule.id);
        if (after && JSON.stringify(before) !== JSON.stringify(after)) {
          stateUpdates.set(`${item.asset}\u0000${rule.id}`, {
            asset: item.asset,
            model: manifest.name,
            rule: rule.id,
            state: after,
          });
        }
      }
      for (const ev of result.events) {
        records.push({
          kind: "alert",
          asset: item.asset,
          tsMs: ev.tsMs,
          data: {
            gatewayId: this.options.gatewayId,
            asset: item.asset,
            model: manifest.name,
            modelVersion: manifest.version,
            rule: ev.rule,
            severity: ev.severity,
            state: ev.state,
            value: ev.value,
            ts: ev.tsMs,
          },
        });
        const tally = ev.state === "raised" ? this.counters.alertsRaised : this.counters.alertsCleared;
        tally[ev.severity] = (tally[ev.severity] ?? 0) + 1;
      }
    });

    let stored: StoredRecord[];
    try {
      stored = this.store.commit(records, [...stateUpdates.values()]);
    } catch (err) {
      this.counters.storeErrors++;
      this.counters.windowsLostStore += items.length;
      this.log.error(
        { model: this.model.key, records: records.length, err: errorMessage(err) },
        "store commit failed; published locally only, counted in the data-loss ledger",
      );
      this.sink.uncommitted?.(records, err);
      return;
    }
    this.counters.predictions += items.length;
    this.sink.publish(stored);
  }
}
