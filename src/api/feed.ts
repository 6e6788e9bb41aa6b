/**
 * The dashboard's live feed: recent predictions per asset and model, the latest outputs, and
 * recent alert events, kept in memory and pushed to subscribers (server-sent events).
 *
 * Contract: `LiveFeed` is a `RecordSink` decorator: `publish(records)` hands the committed
 * records to the next sink first (the MQTT publish), then records them and tells every
 * subscriber, in commit order. It never throws: a failing subscriber is dropped and logged.
 * Memory is bounded: `historyPoints` predictions per (asset, model), `maxAlertEvents` alert
 * events in all, and at most `maxAssets` assets (the least recently updated is forgotten).
 * `seed(records)` fills it from the store at start without telling anyone. Only numeric
 * outputs are plotted; the latest outputs keep every value (labels, arrays).
 */

import type { RecordSink } from "../pipeline/runner.js";
import type { Logger } from "../system/logger.js";
import type { NewRecord, StoredRecord } from "../store/types.js";

export type FeedValue = number | string | null | FeedValue[];

export interface FeedPrediction {
  seq: number;
  ts: number;
  asset: string;
  model: string;
  modelVersion: string;
  outputs: Record<string, FeedValue>;
}

export interface FeedAlertEvent {
  seq: number;
  ts: number;
  asset: string;
  model: string;
  modelVersion: string;
  rule: string;
  severity: string;
  state: "raised" | "cleared";
  value: number | null;
}

export interface FeedSeries {
  model: string;
  modelVersion: string;
  /** Numeric output names, in the order of the first prediction that carried them. */
  outputs: string[];
  /** Oldest first: event time (ms) and one value per name in `outputs` (null when absent). */
  points: { ts: number; values: (number | null)[] }[];
  latest: FeedPrediction;
}

export interface FeedAsset {
  asset: string;
  lastTs: number;
  series: FeedSeries[];
}

export interface FeedSnapshot {
  lastSeq: number;
  /** Points kept per series (the dashboard trims its own copy to the same length). */
  historyPoints: number;
  assets: FeedAsset[];
  alertEvents: FeedAlertEvent[];
}

export interface FeedUpdate {
  predictions: FeedPrediction[];
  alerts: FeedAlertEvent[];
}

export interface LiveFeedOptions {
  historyPoints: number;
  maxAlertEvents?: number;
  maxAssets?: number;
}

export type FeedListener = (update: FeedUpdate) => void;

function toPrediction(r: StoredRecord): FeedPrediction | undefined {
  const d = r.data;
  if (r.asset === null || typeof d.model !== "string" || typeof d.outputs !== "object" || d.outputs === null)
    return undefined;
  return {
    seq: r.seq,
    ts: r.tsMs,
    asset: r.asset,
    model: d.model,
    modelVersion: typeof d.modelVersion === "string" ? d.modelVersion : "",
    outputs: d.outputs as Record<string, FeedValue>,
  };
}

function toAlert(r: StoredRecord): FeedAlertEvent | undefined {
  const d = r.data;
  if (r.asset === null || typeof d.rule !== "string" || (d.state !== "raised" && d.state !== "cleared"))
    return undefined;
  return {
    seq: r.seq,
    ts: r.tsMs,
    asset: r.asset,
    model: typeof d.model === "string" ? d.model : "",
    modelVersion: typeof d.modelVersion === "string" ? d.modelVersion : "",
    rule: d.rule,
    severity: typeof d.severity === "string" ? d.severity : "unknown",
    state: d.state,
    value: typeof d.value === "number" && Number.isFinite(d.value) ? d.value : null,
  };
}

export class LiveFeed implements RecordSink {
  private readonly assets = new Map<string, FeedAsset>();
  private readonly alertEvents: FeedAlertEvent[] = [];
  private readonly listeners = new Set<FeedListener>();
  private lastSeq = 0;
  private readonly maxAlertEvents: number;
  private readonly maxAssets: number;

  constructor(
    private readonly next: RecordSink,
    private readonly options: LiveFeedOptions,
    private readonly log: Logger,
  ) {
    this.maxAlertEvents = options.maxAlertEvents ?? 200;
    this.maxAssets = options.maxAssets ?? 10_000;
  }

  /** Records the store could not commit still go out locally (see RecordSink.uncommitted). */
  uncommitted(records: readonly NewRecord[], err: unknown): void {
    this.next.uncommitted?.(records, err);
  }

  publish(records: readonly StoredRecord[]): void {
    this.next.publish(records);
    let update: FeedUpdate;
    try {
      update = this.add(records);
    } catch (err) {
      this.log.error({ err: err instanceof Error ? err.message : String(err) }, "live feed update failed");
      return;
    }
    if (update.predictions.length === 0 && update.alerts.length === 0) return;
    for (const listener of [...this.listeners]) {
      try {
        listener(update);
      } catch (err) {
        this.listeners.delete(listener);
        this.log.warn(
          { err: err instanceof Error ? err.message : String(err) },
          "feed subscriber failed; dropped",
        );
      }
    }
  }

  /** Fill from records already committed (at start); tells nobody. */
  seed(records: readonly StoredRecord[]): void {
    this.add(records);
  }

  subscribe(listener: FeedListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  snapshot(): FeedSnapshot {
    return {
      lastSeq: this.lastSeq,
      historyPoints: this.options.historyPoints,
      assets: [...this.assets.values()]
        .sort((a, b) => a.asset.localeCompare(b.asset))
        .map((a) => ({ ...a, series: a.series.map((s) => ({ ...s, points: [...s.points] })) })),
      alertEvents: [...this.alertEvents],
    };
  }

  private add(records: readonly StoredRecord[]): FeedUpdate {
    const update: FeedUpdate = { predictions: [], alerts: [] };
    for (const r of records) {
      if (r.seq > this.lastSeq) this.lastSeq = r.seq;
      if (r.kind === "prediction") {
        const p = toPrediction(r);
        if (!p) continue;
        this.addPrediction(p);
        update.predictions.push(p);
      } else if (r.kind === "alert") {
        const a = toAlert(r);
        if (!a) continue;
        this.alertEvents.push(a);
        if (this.alertEvents.length > this.maxAlertEvents) this.alertEvents.shift();
        update.alerts.push(a);
      }
    }
    return update;
  }

  private addPrediction(p: FeedPrediction): void {
    let asset = this.assets.get(p.asset);
    if (!asset) {
      if (this.assets.size >= this.maxAssets) this.forgetOldestAsset();
      asset = { asset: p.asset, lastTs: p.ts, series: [] };
      this.assets.set(p.asset, asset);
    }
    asset.lastTs = Math.max(asset.lastTs, p.ts);
    let series = asset.series.find((s) => s.model === p.model);
    if (!series) {
      series = { model: p.model, modelVersion: p.modelVersion, outputs: [], points: [], latest: p };
      asset.series.push(series);
      asset.series.sort((a, b) => a.model.localeCompare(b.model));
    }
    for (const [name, v] of Object.entries(p.outputs))
      if (typeof v === "number" && !series.outputs.includes(name)) series.outputs.push(name);
    series.modelVersion = p.modelVersion;
    series.latest = p;
    series.points.push({
      ts: p.ts,
      values: series.outputs.map((name) => {
        const v = p.outputs[name];
        return typeof v === "number" && Number.isFinite(v) ? v : null;
      }),
    });
    if (series.points.length > this.options.historyPoints) series.points.shift();
  }

  private forgetOldestAsset(): void {
    let oldest: FeedAsset | undefined;
    for (const a of this.assets.values()) if (!oldest || a.lastTs < oldest.lastTs) oldest = a;
    if (oldest) this.assets.delete(oldest.asset);
  }
}
