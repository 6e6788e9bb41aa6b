/**
 * Prometheus metrics for `GET /metrics`. The only importer of `prom-client`.
 *
 * Contract: one `Metrics` per gateway, with its own registry (several gateways in one process,
 * as in tests, never share series). Counters the pipeline already keeps (readings, windows,
 * predictions, alerts, losses) are read from the source at scrape time, so a scrape costs
 * nothing between scrapes and the numbers always agree with `/api/status`. Inference latency
 * and batch size are histograms observed per inference call (`BatchObserver`). Process and
 * event-loop metrics are prom-client's defaults (`process_*`, `nodejs_*`), collected from
 * `start()` until `stop()`. `render()` never throws for a source that fails: the failing
 * collector is skipped and logged by the caller.
 */

import client from "prom-client";
import type { PipelineStats } from "../pipeline/pipeline.js";
import type { BatchObserver } from "../pipeline/runner.js";
import type { StatusView } from "./status-view.js";

export interface MetricsSource {
  status(): StatusView;
  stats(): PipelineStats | undefined;
}

const RESULT_ACCEPTED = "accepted";

type Reading = { labels: Record<string, string>; value: number }[];

/** A counter or gauge whose values are read from the source at scrape time. */
function readMetric<T extends client.Counter | client.Gauge>(
  kind: "counter" | "gauge",
  registry: client.Registry,
  name: string,
  help: string,
  labelNames: string[],
  read: () => Reading,
): T {
  const config = {
    name,
    help,
    labelNames,
    registers: [registry],
    collect(this: client.Counter | client.Gauge) {
      this.reset();
      for (const { labels, value } of read()) {
        if (this instanceof client.Gauge) this.set(labels, value);
        else this.inc(labels, value);
      }
    },
  };
  return (kind === "counter" ? new client.Counter(config) : new client.Gauge(config)) as T;
}

const readCounter = (...args: [client.Registry, string, string, string[], () => Reading]): client.Counter =>
  readMetric<client.Counter>("counter", ...args);
const readGauge = (...args: [client.Registry, string, string, string[], () => Reading]): client.Gauge =>
  readMetric<client.Gauge>("gauge", ...args);

export class Metrics implements BatchObserver {
  readonly registry = new client.Registry();
  private readonly latency: client.Histogram;
  private readonly batchSize: client.Histogram;
  /** One status per scrape: every collector of that scrape reads the same snapshot. */
  private snapshot: { status: StatusView; stats: PipelineStats | undefined } | undefined;
  private started = false;

  constructor(private readonly source: MetricsSource) {
    const r = this.registry;
    this.latency = new client.Histogram({
      name: "vigil_inference_duration_seconds",
      help: "Duration of one inference call (a batch of windows), by model.",
      labelNames: ["model"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [r],
    });
    this.batchSize = new client.Histogram({
      name: "vigil_inference_batch_size",
      help: "Windows per inference call, by model.",
      labelNames: ["model"],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [r],
    });
    const status = (): StatusView => this.current().status;
    const stats = (): PipelineStats | undefined => this.current().stats;
    const models = (): [string, PipelineStats["models"][string]][] => Object.entries(stats()?.models ?? {});

    readGauge(
      r,
      "vigil_info",
      "Always 1; labels carry the gateway id and version.",
      ["gateway_id", "version"],
      () => [{ labels: { gateway_id: status().gatewayId, version: status().version }, value: 1 }],
    );
    readGauge(
      r,
      "vigil_ready",
      "1 when /readyz is 200 (broker connected, a model serving, store writable).",
      [],
      () => [{ labels: {}, value: status().ready.ok ? 1 : 0 }],
    );
    readGauge(r, "vigil_healthy", "1 when /healthz is 200 (event loop turning, store answering).", [], () => [
      { labels: {}, value: status().health.ok ? 1 : 0 },
    ]);
    readGauge(r, "vigil_broker_connected", "1 while connected to the plant broker.", [], () => [
      { labels: {}, value: status().broker.connected ? 1 : 0 },
    ]);
    readCounter(r, "vigil_broker_connects_total", "Successful connections to the plant broker.", [], () => [
      { labels: {}, value: status().broker.connects },
    ]);
    readCounter(r, "vigil_payloads_total", "MQTT messages received on the ingest subscriptions.", [], () => [
      { labels: {}, value: stats()?.payloads ?? 0 },
    ]);
    readCounter(
      r,
      "vigil_readings_total",
      'Sensor readings by result: "accepted", or "rejected" (reasons in vigil_ingest_rejects_total).',
      ["result"],
      () => {
        const s = stats();
        const rejected = Object.values(s?.rejected ?? {}).reduce((a, b) => a + b, 0);
        return [
          { labels: { result: RESULT_ACCEPTED }, value: s?.readingsAccepted ?? 0 },
          { labels: { result: "rejected" }, value: rejected },
        ];
      },
    );
    readCounter(
      r,
      "vigil_ingest_rejects_total",
      "Rejected input by reason (payloads for payload-level reasons, readings or rows otherwise).",
      ["reason"],
      () => Object.entries(stats()?.rejected ?? {}).map(([reason, value]) => ({ labels: { reason }, value })),
    );
    readCounter(r, "vigil_windows_total", "Windows emitted for inference.", [], () => [
      { labels: {}, value: stats()?.windows.emitted ?? 0 },
    ]);
    readCounter(
      r,
      "vigil_windows_skipped_total",
      "Due time windows not emitted, by reason.",
      ["reason"],
      () =>
        Object.entries(stats()?.windows.skipped ?? {}).map(([reason, value]) => ({
          labels: { reason },
          value,
        })),
    );
    readCounter(
      r,
      "vigil_ingest_backpressure_pauses_total",
      "Times ingest paused because more windows waited for inference than inference.backpressureWindows.",
      [],
      () => [{ labels: {}, value: stats()?.backpressure.pauses ?? 0 }],
    );
    readCounter(
      r,
      "vigil_ingest_backpressure_seconds_total",
      "Time ingest spent paused by backpressure (s).",
      [],
      () => [{ labels: {}, value: (stats()?.backpressure.pausedMs ?? 0) / 1000 }],
    );
    readCounter(r, "vigil_predictions_total", "Predictions committed, by model.", ["model"], () =>
      models().map(([model, c]) => ({ labels: { model }, value: c.predictions })),
    );
    readCounter(r, "vigil_inference_errors_total", "Failed inference calls, by model.", ["model"], () =>
      models().map(([model, c]) => ({ labels: { model }, value: c.inferenceErrors })),
    );
    readCounter(
      r,
      "vigil_store_sync_errors_total",
      "Commits whose sync to disk failed (store.synchronous full), by model: published anyway, a power cut may take them.",
      ["model"],
      () => models().map(([model, c]) => ({ labels: { model }, value: c.storeSyncErrors })),
    );
    readGauge(r, "vigil_inference_queue_windows", "Windows waiting for inference, by model.", ["model"], () =>
      models().map(([model, c]) => ({ labels: { model }, value: c.queued })),
    );
    readGauge(
      r,
      "vigil_model_info",
      "1 per known model package; labels carry version, state (serving, standby, failed) and execution provider.",
      ["model", "version", "state", "provider"],
      () =>
        status().models.map((m) => ({
          labels: { model: m.name, version: m.version, state: m.state, provider: m.provider ?? "" },
          value: 1,
        })),
    );
    readGauge(
      r,
      "vigil_model_provider_attempt",
      "1 per execution provider tried for a serving model (src/inference/providers.ts); outcome: selected, unavailable, load-failed, self-test-failed, slower, not-tried. The reason is in /api/status.",
      ["model", "version", "provider", "outcome"],
      () =>
        status().models.flatMap((m) =>
          (m.providers ?? []).map((a) => ({
            labels: { model: m.name, version: m.version, provider: a.provider, outcome: a.outcome },
            value: 1,
          })),
        ),
    );
    readGauge(
      r,
      "vigil_model_placement",
      "1 per serving or trial model: where its inference runs (thread: main, pool) and how that was decided (mode: auto = by its measured time per batch against inference.mainThreadMaxBatchMs, fixed = inference.workers). The reason is in /api/status.",
      ["model", "version", "state", "thread", "mode"],
      () =>
        status().models.flatMap((m) =>
          m.placement
            ? [
                {
                  labels: {
                    model: m.name,
                    version: m.version,
                    state: m.state,
                    thread: m.placement.thread,
                    mode: m.placement.mode,
                  },
                  value: 1,
                },
              ]
            : [],
        ),
    );
    readGauge(
      r,
      "vigil_model_batch_milliseconds",
      "Measured time of one batch at the serving batch size (the warm-up before serving, where the model was first opened), the figure its placement was decided on.",
      ["model", "version", "state", "batch"],
      () =>
        status().models.flatMap((m) =>
          m.placement?.msPerBatch !== null && m.placement?.msPerBatch !== undefined
            ? [
                {
                  labels: {
                    model: m.name,
                    version: m.version,
                    state: m.state,
                    batch: String(m.placement.batch ?? ""),
                  },
                  value: m.placement.msPerBatch,
                },
              ]
            : [],
        ),
    );
    readGauge(
      r,
      "vigil_inference_main_thread_max_batch_milliseconds",
      "inference.mainThreadMaxBatchMs: models faster per batch run on the main thread (with inference.workers = auto; absent otherwise).",
      [],
      () => {
        const t = (status().inference?.pool as { mainThreadMaxBatchMs?: number | null } | undefined)
          ?.mainThreadMaxBatchMs;
        return typeof t === "number" ? [{ labels: {}, value: t }] : [];
      },
    );
    readGauge(
      r,
      "vigil_inference_workers_up",
      "Inference worker threads running now (0 when every model runs on the main thread).",
      [],
      () => [
        {
          labels: {},
          value: (status().inference?.pool as { workersUp?: number } | undefined)?.workersUp ?? 0,
        },
      ],
    );
    readCounter(
      r,
      "vigil_inference_worker_restarts_total",
      "Inference worker threads that died and were replaced (0 when inference runs on the main thread).",
      [],
      () => [
        { labels: {}, value: (status().inference?.pool as { restarts?: number } | undefined)?.restarts ?? 0 },
      ],
    );
    readCounter(
      r,
      "vigil_alerts_total",
      "Alert events committed, by model, severity and state (raised, cleared).",
      ["model", "severity", "state"],
      () =>
        models().flatMap(([model, c]) => [
          ...Object.entries(c.alertsRaised).map(([severity, value]) => ({
            labels: { model, severity, state: "raised" },
            value,
          })),
          ...Object.entries(c.alertsCleared).map(([severity, value]) => ({
            labels: { model, severity, state: "cleared" },
            value,
          })),
        ]),
    );
    readGauge(r, "vigil_alerts_active", "Alerts raised and not cleared, by severity.", ["severity"], () => {
      const by = new Map<string, number>();
      for (const a of status().alerts) by.set(a.severity, (by.get(a.severity) ?? 0) + 1);
      return [...by].map(([severity, value]) => ({ labels: { severity }, value }));
    });
    readGauge(r, "vigil_store_records", "Records held in the store (the outbox), by kind.", ["kind"], () =>
      Object.entries(status().store?.depth ?? {}).map(([kind, value]) => ({ labels: { kind }, value })),
    );
    readGauge(r, "vigil_store_bytes", "Bytes of record bodies held in the store, by kind.", ["kind"], () =>
      Object.entries(status().store?.bytes ?? {}).map(([kind, value]) => ({ labels: { kind }, value })),
    );
    readGauge(r, "vigil_store_file_bytes", "Size of the SQLite files (database and WAL).", [], () => {
      const b = status().store?.fileBytes;
      return b === undefined ? [] : [{ labels: {}, value: b }];
    });
    readCounter(
      r,
      "vigil_store_seq",
      "Highest record sequence number issued (records committed, ever).",
      [],
      () => [{ labels: {}, value: status().store?.lastSeq ?? 0 }],
    );
    readCounter(
      r,
      "vigil_publish_total",
      "MQTT publishes of committed records, by result.",
      ["result"],
      () => {
        const p = status().counters?.published;
        return [
          { labels: { result: "published" }, value: p?.published ?? 0 },
          { labels: { result: "failed" }, value: p?.failed ?? 0 },
        ];
      },
    );
    readGauge(
      r,
      "vigil_sync_lag_records",
      "Records not yet delivered, by destination.",
      ["destination"],
      () =>
        status().sync.destinations.flatMap((d) =>
          d.lagRecords === undefined ? [] : [{ labels: { destination: d.url }, value: d.lagRecords }],
        ),
    );
    readGauge(
      r,
      "vigil_sync_lag_seconds",
      "Age of the oldest record not yet delivered, by destination.",
      ["destination"],
      () =>
        status().sync.destinations.flatMap((d) =>
          d.lagSeconds === undefined ? [] : [{ labels: { destination: d.url }, value: d.lagSeconds }],
        ),
    );
    readCounter(
      r,
      "vigil_sync_records_total",
      "Delivery outcomes in records, by destination and outcome (delivered, retried, rejected).",
      ["destination", "outcome"],
      () =>
        status().sync.destinations.flatMap((d) =>
          Object.entries(d.outcomes ?? {}).map(([outcome, value]) => ({
            labels: { destination: d.url, outcome },
            value,
          })),
        ),
    );
    readCounter(
      r,
      "vigil_data_lost_total",
      "The data-loss ledger: data the gateway accepted and then lost, by cause (the unit is in the cause).",
      ["cause"],
      () => Object.entries(status().dataLoss.causes).map(([cause, value]) => ({ labels: { cause }, value })),
    );
  }

  /** Starts the default process and event-loop collectors. */
  start(): void {
    if (this.started) return;
    this.started = true;
    client.collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 20 });
  }

  stop(): void {
    this.registry.clear();
  }

  batch(model: string, size: number, inferenceMs: number): void {
    this.latency.observe({ model }, inferenceMs / 1000);
    this.batchSize.observe({ model }, size);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  async render(): Promise<string> {
    this.snapshot = { status: this.source.status(), stats: this.source.stats() };
    try {
      return await this.registry.metrics();
    } finally {
      this.snapshot = undefined;
    }
  }

  private current(): { status: StatusView; stats: PipelineStats | undefined } {
    this.snapshot ??= { status: this.source.status(), stats: this.source.stats() };
    return this.snapshot;
  }
}
