/**
 * One serving model's inference stage: windows in, committed and published records out.
 *
 * Contract: `enqueue` takes a preprocessed window; windows of every asset are batched by the
 * dynamic batcher (src/inference/batcher.ts: up to the model's and the config's max batch,
 * waiting at most `maxDelayMs`, up to `maxInFlight` batches inferred at once — while they run,
 * the windows that arrive meanwhile queue up, so a slow model catches up in full batches) and
 * the results come back in the order the windows were emitted, so predictions of an asset come
 * out in order. For each run of finished batches, in order: outputs decoded; the manifest's
 * alert rules evaluated per asset with hysteresis; every prediction and alert event, and the
 * new rule states, committed to the store in ONE transaction (at most one full batch of
 * windows); then, once the store says the commit is durable (`Store.afterDurable`: on disk
 * under `synchronous: full`, a group commit off the main thread), the stored records handed
 * to the sink (publish), in commit order. A commit that fails (disk
 * full, I/O error) goes to the sink's `uncommitted` instead: published locally without a seq
 * and counted in the data-loss ledger, since it will never reach the cloud. Overload (the
 * batcher's policy): beyond `maxQueuedPerAsset` windows of one asset, or `maxQueued` in all,
 * the oldest waiting window is dropped and counted (`overload`, and by reason in `dropped`).
 * Failures (inference, store) are counted and logged; they never stop later batches.
 * Monitors (model updates: probation, shadow trials) see every batch's decoded outputs and
 * latency, or its inference failure, before the commit; a monitor that throws is logged and
 * ignored. A *shadow* runner (`options.shadow`) stops there: it evaluates no alert rules,
 * commits nothing and publishes nothing — its outputs reach its monitors only.
 */

import type { RuleState } from "../alerts/rules.js";
import { DynamicBatcher, type Finished } from "../inference/batcher.js";
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
  /** Commits whose sync to disk failed (published anyway: they are in the store). */
  storeSyncErrors: number;
  /** Windows lost with a failed batch (inference error, store error). */
  windowsLostInference: number;
  windowsLostStore: number;
  overload: number;
  /** Windows dropped under overload, by reason (`asset_backlog`, `queue_full`). */
  dropped: Record<string, number>;
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
    storeSyncErrors: 0,
    windowsLostInference: 0,
    windowsLostStore: 0,
    overload: 0,
    dropped: {},
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
  /** Dynamic batching and overload (src/inference/batcher.ts); defaults: 0 ms, unbounded per asset, 1. */
  maxDelayMs?: number;
  maxQueuedPerAsset?: number;
  maxInFlight?: number;
  /** Called after each run of finished batches (windows left the queue): backpressure checks. */
  onProgress?: () => void;
}

/** One batch's inference result, as the batcher hands it back. */
interface Inferred {
  decoded: Record<string, OutputValue>[];
  elapsedMs: number;
}

export class ModelRunner {
  readonly counters: RunnerCounters = newRunnerCounters();

  private readonly batcher: DynamicBatcher<PendingWindow, Inferred>;
  private readonly maxBatch: number;
  /** Rule states by `asset \0 rule`. */
  private readonly ruleStates = new Map<string, Map<string, RuleState>>();
  readonly monitors = new Set<RunnerMonitor>();
  /** Set while committed records wait for the store's sync before they are published. */
  private lastPublish: Promise<void> | undefined;

  constructor(
    readonly model: LoadedModel,
    private readonly store: Store,
    private readonly sink: RecordSink,
    private readonly options: RunnerOptions,
    private readonly log: Logger,
  ) {
    this.maxBatch = Math.max(1, Math.min(options.maxBatch, model.maxBatch));
    this.batcher = new DynamicBatcher(
      {
        maxBatch: this.maxBatch,
        maxDelayMs: options.maxDelayMs ?? 0,
        maxQueued: options.maxQueued,
        maxQueuedPerAsset: options.maxQueuedPerAsset ?? Number.POSITIVE_INFINITY,
        maxInFlight: options.maxInFlight ?? 1,
        // Finished batches are committed together, up to one full batch per transaction: small
        // batches share a commit (and its fsync); a commit never stalls the loop for more.
        maxDeliveryItems: this.maxBatch,
      },
      (item) => item.asset,
      (items) => this.infer(items),
      (finished) => this.deliver(finished),
      {
        onDrop: (_item, reason) => {
          this.counters.overload++;
          this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1;
        },
        onDeliverError: (err) =>
          this.log.error({ model: this.model.key, err: errorMessage(err) }, "batch failed; windows dropped"),
      },
    );
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
    this.batcher.push(item);
  }

  /** Windows waiting for inference. */
  get queued(): number {
    return this.batcher.queued;
  }

  /**
   * Batches of this runner start only after `previous` settles (a new version of a model waits
   * for the old version's windows, so an asset's predictions stay in order across a swap).
   */
  startAfter(previous: Promise<unknown>): void {
    this.batcher.holdUntil(previous);
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
    await this.batcher.drain();
    // Commits waiting to be durable are published in order: the last one's wait covers all.
    while (this.lastPublish) {
      const last = this.lastPublish;
      await last;
      if (this.lastPublish === last) this.lastPublish = undefined;
    }
  }

  /** One batch's inference (runs while other batches are inferred or committed). */
  private async infer(items: PendingWindow[]): Promise<Inferred> {
    const { manifest, session } = this.model;
    const per = items[0]?.input.length ?? 0;
    const data = new Float32Array(per * items.length);
    items.forEach((item, i) => data.set(item.input, i * per));
    const shape = [items.length, ...inputShape(manifest.input)];
    const started = performance.now();
    const tensors = await session.run(manifest.input.tensor, data, shape);
    // Read at once: with several batches in flight it is this call's (ModelSession.lastRunMs).
    const elapsedMs = session.lastRunMs ?? performance.now() - started;
    return { decoded: decodeOutputs(manifest.outputs, tensors, items.length), elapsedMs };
  }

  /** Finished batches in emission order: failures counted, the rest committed together. */
  private deliver(finished: Finished<PendingWindow, Inferred>[]): void {
    const items: PendingWindow[] = [];
    const decoded: Record<string, OutputValue>[] = [];
    for (const f of finished) {
      if (!f.ok) {
        this.counters.inferenceErrors++;
        this.counters.windowsLostInference += f.items.length;
        this.log.error(
          {
            model: this.model.key,
            batch: f.items.length,
            err: errorMessage(f.error),
            shadow: this.options.shadow,
          },
          "inference failed; batch dropped",
        );
        const failedItems = f.items;
        this.notify((m) => m.failed(failedItems, f.error));
        continue;
      }
      const { decoded: outputs, elapsedMs } = f.result;
      this.counters.batches++;
      this.counters.batchItems += f.items.length;
      this.counters.inferenceMsTotal += elapsedMs;
      this.counters.lastInferenceMs = elapsedMs;
      const batchItems = f.items;
      this.notify((m) => m.batch(batchItems, outputs, elapsedMs));
      if (this.options.shadow === true) {
        for (const o of outputs)
          if (Object.values(o).some((v) => v === null)) this.counters.nonFiniteOutputs++;
        this.counters.predictions += f.items.length;
        continue;
      }
      this.options.observer?.batch(this.model.key, f.items.length, elapsedMs);
      items.push(...f.items);
      decoded.push(...outputs);
    }
    if (items.length > 0) this.record(items, decoded);
    this.options.onProgress?.();
  }

  private record(items: PendingWindow[], decoded: Record<string, OutputValue>[]): void {
    const { manifest } = this.model;

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
      // Behind earlier commits still waiting for their sync: an asset's outputs stay in order.
      this.afterEarlier(() => this.sink.uncommitted?.(records, err));
      return;
    }
    this.counters.predictions += items.length;
    this.afterEarlier((err) => {
      if (err) {
        this.counters.storeSyncErrors++;
        this.log.error(
          { model: this.model.key, records: stored.length, err: errorMessage(err) },
          "store sync failed; committed records published, but a power cut may take them",
        );
      }
      this.sink.publish(stored);
    });
  }

  /**
   * Runs `fn` once every commit so far is durable (Store.afterDurable), in call order; at once
   * when it already is. `drain()` waits for the last one.
   */
  private afterEarlier(fn: (err: Error | undefined) => void): void {
    let ran = false;
    let done: (() => void) | undefined;
    this.store.afterDurable((err) => {
      try {
        fn(err);
      } finally {
        ran = true;
        done?.();
      }
    });
    if (!ran) this.lastPublish = new Promise<void>((resolve) => (done = resolve));
  }
}
