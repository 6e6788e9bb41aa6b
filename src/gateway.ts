/**
 * The composition root: builds every service from the configuration, starts them in order,
 * and stops them in reverse.
 *
 * Contract: the constructor does no I/O. `start()` opens the store (SQLite, WAL; a corrupt
 * database is moved aside and replaced, with an event), starts the storage housekeeper and
 * the cloud sync, loads and
 * self-tests the model packages, starts the embedded broker when enabled, connects to the
 * plant broker (with a retained `status` and an `offline` will), subscribes, and serves the
 * local API; it rejects if a part that cannot be retried fails (the store, the broker port),
 * after undoing what it started. A broker that is down is not such a failure: the agent
 * keeps retrying and reports "not ready". `stop()` stops taking readings, finishes windows
 * already in flight (inference, commit, publish), publishes `{"state":"offline"}`, then closes
 * the API, the connection, the broker, the models and the store; it keeps going when a part
 * fails, and is safe to call twice.
 * Model updates (src/models/ota/, docs/ota.md): the updater loads the shipped and installed
 * packages in place of a plain registry scan, takes requests under `request/models/...` from
 * the plant broker and from every MQTT sync destination (one `CommandSource` each), and swaps
 * models in the running pipeline; it stops before the pipeline drains.
 */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { LiveFeed } from "./api/feed.js";
import { Metrics } from "./api/metrics.js";
import { ApiServer, type Readiness } from "./api/server.js";
import { dataLossLedger, syncView, type Check, type StatusView } from "./api/status-view.js";
import { EmbeddedBroker } from "./broker/embedded.js";
import type { VigilConfig } from "./config/types.js";
import { errorMessage } from "./errors.js";
import { MqttConnection } from "./ingest/mqtt-client.js";
import type { InferenceBackend } from "./inference/ort.js";
import { inferenceSetup, type InferenceSetup } from "./inference/setup.js";
import { ModelRegistry } from "./models/registry.js";
import { MqttCommandSource } from "./models/ota/commands.js";
import { ModelUpdater, updaterConfig, type OtaStatus } from "./models/ota/updater.js";
import { recordPayload, type StatusPayload } from "./output/payloads.js";
import { gatewayTopics, type GatewayTopics } from "./output/topics.js";
import { Pipeline, type PipelineStats } from "./pipeline/pipeline.js";
import type { RecordSink } from "./pipeline/runner.js";
import type { Clock } from "./system/clock.js";
import { systemClock } from "./system/clock.js";
import type { Logger } from "./system/logger.js";
import { LoopMonitor } from "./system/loop-monitor.js";
import { VERSION } from "./system/version.js";
import { NotifyingSink } from "./pipeline/sinks.js";
import { Housekeeper } from "./store/housekeeper.js";
import { uuidv7 } from "./store/ids.js";
import { openStore, type StoreReset } from "./store/recovery.js";
import type { KindUsage, NewRecord, Store, StoredRecord } from "./store/types.js";
import { parseDestinations } from "./sync/config.js";
import { SyncService } from "./sync/service.js";

/** Records read back from the store at start so the dashboard's trends survive a restart. */
const FEED_SEED_RECORDS = 10_000;

export interface GatewayDeps {
  clock?: Clock;
  backend?: InferenceBackend;
}

export interface PublishCounters {
  published: number;
  failed: number;
}

/** Publishes committed records on the plant broker (contract §5). */
class MqttRecordSink implements RecordSink {
  readonly counters: PublishCounters = { published: 0, failed: 0 };
  constructor(
    private readonly connection: MqttConnection,
    private readonly topics: GatewayTopics,
    private readonly qos: { predictions: 0 | 1 | 2; alerts: 1 | 2 },
    private readonly log: Logger,
  ) {}

  publish(records: readonly StoredRecord[]): void {
    for (const r of records) {
      if (r.asset === null || r.kind === "event") continue;
      const topic = r.kind === "alert" ? this.topics.alert(r.asset) : this.topics.prediction(r.asset);
      const qos = r.kind === "alert" ? this.qos.alerts : this.qos.predictions;
      const payload = recordPayload(r);
      this.connection.publish(topic, payload, { qos }).then(
        () => {
          this.counters.published++;
        },
        (err: unknown) => {
          // Not lost: the record is in the store, on its way to the cloud.
          this.counters.failed++;
          this.log.debug({ topic, err: errorMessage(err) }, "publish failed (record kept in the store)");
        },
      );
    }
  }

  /** Records the store could not take: published all the same, without a seq, marked unstored. */
  uncommitted(records: readonly NewRecord[]): void {
    for (const r of records) {
      if (r.asset === null || r.kind === "event") continue;
      const topic = r.kind === "alert" ? this.topics.alert(r.asset) : this.topics.prediction(r.asset);
      const qos = r.kind === "alert" ? this.qos.alerts : this.qos.predictions;
      const payload = JSON.stringify({ ...r.data, id: uuidv7(), seq: null, stored: false });
      this.connection.publish(topic, payload, { qos }).then(
        () => {
          this.counters.published++;
        },
        () => {
          this.counters.failed++;
        },
      );
    }
  }
}

export class Gateway {
  private readonly clock: Clock;
  private readonly backend: InferenceBackend;
  private readonly inference: InferenceSetup;
  private readonly topics: GatewayTopics;
  private readonly startedAt = new Date();
  private store: Store | undefined;
  private housekeeper: Housekeeper | undefined;
  private sync: SyncService | undefined;
  private registry: ModelRegistry | undefined;
  private updater: ModelUpdater | undefined;
  private commands: MqttCommandSource | undefined;
  private broker: EmbeddedBroker | undefined;
  private connection: MqttConnection | undefined;
  private sink: MqttRecordSink | undefined;
  private pipeline: Pipeline | undefined;
  private api: ApiServer | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  private storeFile = "";
  // Operations (issue 7): metrics, dashboard feed, liveness, reloadable settings.
  private readonly loop = new LoopMonitor();
  private metrics: Metrics | undefined;
  private feed: LiveFeed | undefined;
  private statusIntervalMs: number;
  private maxLoopDelayMs: number;

  constructor(
    private readonly config: VigilConfig,
    private readonly log: Logger,
    deps: GatewayDeps = {},
  ) {
    this.clock = deps.clock ?? systemClock;
    this.inference = inferenceSetup(config);
    this.backend = deps.backend ?? this.inference.backend;
    this.topics = gatewayTopics(config.mqtt.baseTopic, config.gatewayId);
    this.statusIntervalMs = config.outputs.statusIntervalMs;
    this.maxLoopDelayMs = config.service.maxEventLoopDelayMs;
  }

  async start(): Promise<void> {
    try {
      await this.startParts();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private async startParts(): Promise<void> {
    const c = this.config;
    this.loop.start();
    fs.mkdirSync(c.dataDir, { recursive: true });
    this.storeFile = c.store.path !== "" ? c.store.path : path.join(c.dataDir, "vigil.db");
    const opened = openStore({
      file: this.storeFile,
      clock: this.clock,
      synchronous: c.store.synchronous,
      integrityCheck: c.store.integrityCheck,
    });
    this.store = opened.store;
    const storeLog = this.log.child({ module: "store" });
    storeLog.info({ file: this.storeFile, lastSeq: this.store.lastSeq() }, "store open");
    if (opened.reset) this.recordStoreReset(opened.reset, storeLog);
    this.sync = new SyncService(
      parseDestinations(c.sync.destinations),
      this.store,
      c.gatewayId,
      this.log.child({ module: "sync" }),
    );
    const sync = this.sync;
    this.housekeeper = new Housekeeper(
      this.store,
      { ...c.storage, intervalMs: c.storage.checkIntervalMs },
      path.dirname(path.resolve(this.storeFile)),
      this.clock,
      storeLog,
      () => sync.reportLosses(),
    );
    this.housekeeper.start();
    this.sync.start();

    const sessionOptions = this.inference.sessionOptions;
    await this.backend.start?.();
    this.registry = new ModelRegistry(this.backend, sessionOptions, this.log.child({ module: "models" }));
    this.updater = new ModelUpdater(updaterConfig(c), {
      registry: this.registry,
      backend: this.backend,
      sessionOptions,
      clock: this.clock,
      log: this.log.child({ module: "ota" }),
      onChange: () => this.publishStatus(),
    });
    await this.updater.load(); // shipped and installed packages
    this.backend.beginServing?.(); // models loaded from now on are measured off the main thread

    let url = c.mqtt.url;
    if (c.mqtt.embeddedBroker.enabled) {
      const eb = c.mqtt.embeddedBroker;
      this.broker = new EmbeddedBroker(
        { host: eb.host, port: eb.port, username: eb.username, password: eb.password },
        this.log.child({ module: "broker" }),
      );
      await this.broker.start();
      url = this.broker.url();
    }

    const useEmbeddedCreds = c.mqtt.embeddedBroker.enabled && c.mqtt.embeddedBroker.username !== "";
    this.connection = new MqttConnection(
      {
        url,
        clientId: c.mqtt.clientId !== "" ? c.mqtt.clientId : `vigil-${c.gatewayId}`,
        username: useEmbeddedCreds ? c.mqtt.embeddedBroker.username : c.mqtt.username,
        password: useEmbeddedCreds ? c.mqtt.embeddedBroker.password : c.mqtt.password,
        keepaliveS: c.mqtt.keepaliveS,
        connectTimeoutMs: c.mqtt.connectTimeoutMs,
        reconnect: c.mqtt.reconnect,
        tls: c.mqtt.tls,
        will: {
          topic: this.topics.status,
          payload: JSON.stringify({ state: "offline", gatewayId: c.gatewayId }),
          retain: true,
          qos: 1,
        },
        ...(this.broker && c.mqtt.embeddedBroker.inProcess ? { local: this.broker.localBus() } : {}),
      },
      (topic, payload) => {
        if (this.commands?.deliver(topic, payload)) return;
        this.pipeline?.handleMessage(topic, payload, this.clock.nowMs());
      },
      this.log.child({ module: "mqtt" }),
    );
    this.sink = new MqttRecordSink(
      this.connection,
      this.topics,
      { predictions: c.outputs.predictionsQos, alerts: c.outputs.alertsQos },
      this.log.child({ module: "output" }),
    );
    this.feed = new LiveFeed(
      this.sink,
      { historyPoints: c.dashboard.historyPoints },
      this.log.child({ module: "dashboard" }),
    );
    this.feed.seed(
      this.store.readAfter(Math.max(0, this.store.lastSeq() - FEED_SEED_RECORDS), FEED_SEED_RECORDS),
    );
    this.metrics = new Metrics({ status: () => this.status(), stats: () => this.pipeline?.stats() });
    this.metrics.start();
    const housekeeper = this.housekeeper;
    const sink = new NotifyingSink(
      this.feed,
      {
        committed: () => {
          housekeeper.afterCommit();
          sync.notify();
        },
        failed: (records, err) => housekeeper.commitFailed(records, err),
      },
      this.log.child({ module: "output" }),
    );
    this.pipeline = new Pipeline(
      {
        gatewayId: c.gatewayId,
        ownTopicRoot: this.topics.root,
        subscriptions: c.ingest.subscriptions,
        limits: c.ingest,
        window: c.window,
        bindings: c.models.bindings,
        maxBatch: c.inference.maxBatch,
        maxQueuedWindows: this.inference.maxQueuedWindows,
        backpressure: this.inference.backpressure,
        batching: this.inference.batching,
        rejectLogIntervalMs: c.log.rejectIntervalMs,
        observer: this.metrics,
      },
      this.registry.active(),
      this.store,
      sink,
      this.clock,
      this.log.child({ module: "ingest" }),
    );
    this.connection.onConnect(() => this.publishStatus());
    const pipeline = this.pipeline;
    this.connection.setBackpressure(() => pipeline.whenCapacity());
    this.connection.start();
    this.connection.subscribe(this.pipeline.filters());
    if (c.models.ota.enabled) {
      this.commands = new MqttCommandSource(
        "plant",
        this.connection,
        this.topics,
        this.log.child({ module: "ota" }),
      );
      this.updater.attach(this.commands);
      this.attachCloudCommands();
    }
    this.updater.start(this.pipeline);

    if (c.http.enabled) {
      this.api = new ApiServer(
        { host: c.http.host, port: c.http.port, ...(c.http.token ? { token: c.http.token } : {}) },
        {
          status: () => this.status(),
          readiness: () => this.readiness(),
          health: () => this.health(),
          metrics: this.metrics,
          feed: this.feed,
          logLevel: { get: () => this.log.level, set: (level) => (this.log.level = level) },
        },
        this.log.child({ module: "api" }),
      );
      await this.api.start();
    }
    this.startStatusTimer();
    this.tickTimer = setInterval(() => this.pipeline?.tick(), Math.min(c.log.rejectIntervalMs, 10_000));
    this.tickTimer.unref();
    this.log.info(
      {
        gatewayId: c.gatewayId,
        models: this.registry.active().map((m) => m.key),
        subscriptions: this.pipeline.filters(),
      },
      "gateway started",
    );
  }

  /** The old database was moved aside: say so in the log, the ledger and an event for the cloud. */
  private recordStoreReset(reset: StoreReset, log: Logger): void {
    log.error(
      { movedTo: reset.movedTo, reason: reset.reason, lost: reset.lost ?? "unknown" },
      "store unreadable or corrupt: moved aside, started a fresh one",
    );
    const now = this.clock.nowMs();
    this.store?.commit([
      {
        kind: "event",
        asset: null,
        tsMs: now,
        data: {
          gatewayId: this.config.gatewayId,
          type: "store-reset",
          ts: now,
          reason: reset.reason,
          movedTo: reset.movedTo,
          lost: reset.lost ?? null,
        },
      },
    ]);
    if (reset.lost) this.store?.addLosses(reset.lost);
  }

  /**
   * Model-update requests from the cloud: each MQTT sync destination takes them under
   * `<topicPrefix>/<gatewayId>/request/models/...` and answers there (docs/ota.md).
   */
  private attachCloudCommands(): void {
    for (const d of this.sync?.mqttDestinations() ?? []) {
      const connection = d.mqttConnection;
      if (!connection || !this.updater) continue;
      const source = new MqttCommandSource(
        `cloud:${d.name}`,
        connection,
        gatewayTopics(d.topicPrefix, this.config.gatewayId),
        this.log.child({ module: "ota", destination: d.name }),
      );
      d.onMessage = (topic, payload) => {
        source.deliver(topic, payload);
      };
      this.updater.attach(source);
    }
  }

  /** The embedded broker's URL, when one runs (tests, demo). */
  brokerUrl(): string | undefined {
    return this.broker?.url();
  }

  apiAddress(): { host: string; port: number } | undefined {
    const a = this.api?.address();
    return a ? { host: a.address, port: a.port } : undefined;
  }

  /** Wait until every window emitted so far is committed and published. */
  async settle(): Promise<void> {
    await this.pipeline?.settle();
  }

  pipelineStats(): PipelineStats | undefined {
    return this.pipeline?.stats();
  }

  /** MQTT payloads the pipeline has received (cheap; `pipelineStats()` walks every asset). */
  payloadsReceived(): number {
    return this.pipeline?.payloadsReceived ?? 0;
  }

  readiness(): Readiness {
    const reasons: string[] = [];
    if (this.stopping) reasons.push("shutting down");
    if (!this.connection?.connectionState().connected) reasons.push("not connected to the broker");
    if ((this.registry?.active().length ?? 0) === 0) reasons.push("no model is serving");
    if (!this.store) reasons.push("store not open");
    else {
      try {
        this.store.checkWritable();
      } catch (err) {
        reasons.push(`store not writable: ${errorMessage(err)}`);
      }
    }
    return { ready: reasons.length === 0, reasons };
  }

  /** Liveness (`/healthz`, the systemd watchdog): the event loop turns and the store answers. */
  health(): Check {
    const reasons: string[] = [];
    const delayMs = this.loop.maxDelayMs();
    if (delayMs > this.maxLoopDelayMs)
      reasons.push(`event loop blocked for ${Math.round(delayMs)} ms (limit ${this.maxLoopDelayMs} ms)`);
    if (this.store) {
      try {
        this.store.lastSeq();
      } catch (err) {
        reasons.push(`store does not answer: ${errorMessage(err)}`);
      }
    }
    return { ok: reasons.length === 0, reasons };
  }

  /** SIGHUP: takes the keys that may change while running (the list: src/system/reload.ts). */
  applyReload(next: VigilConfig): void {
    this.api?.setToken(next.http.token);
    this.maxLoopDelayMs = next.service.maxEventLoopDelayMs;
    if (next.outputs.statusIntervalMs !== this.statusIntervalMs) {
      this.statusIntervalMs = next.outputs.statusIntervalMs;
      if (this.statusTimer) this.startStatusTimer();
    }
  }

  private startStatusTimer(): void {
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = setInterval(() => this.publishStatus(), this.statusIntervalMs);
    this.statusTimer.unref();
  }

  /** Commit time of the oldest record after `cursor` (what a destination still waits for). */
  private ledgerEntries(): { reason: string; kind: string; count: number }[] {
    try {
      return this.store?.ledger() ?? [];
    } catch {
      return [];
    }
  }

  private oldestPendingMs(cursor: number): number | null {
    try {
      return this.store?.readOutbox(cursor, 1)[0]?.createdMs ?? null;
    } catch {
      return null;
    }
  }

  private storeUsage(): KindUsage | undefined {
    try {
      return this.store?.kindUsage();
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, "store usage unavailable");
      return undefined;
    }
  }

  private storeFileBytes(): number {
    let total = 0;
    for (const f of [this.storeFile, `${this.storeFile}-wal`]) {
      try {
        total += fs.statSync(f).size;
      } catch {
        // no WAL file right now
      }
    }
    return total;
  }

  status(): StatusPayload & StatusView & { ota?: OtaStatus } {
    const stats = this.pipeline?.stats();
    const usage = this.storeUsage();
    const ready = this.readiness();
    return {
      state: "online",
      gatewayId: this.config.gatewayId,
      version: VERSION,
      startedAt: this.startedAt.toISOString(),
      ts: this.clock.nowMs(),
      host: os.hostname(),
      uptimeS: Math.round(process.uptime()),
      logLevel: this.log.level,
      ready: { ok: ready.ready, reasons: ready.reasons },
      health: this.health(),
      broker: {
        connected: this.connection?.connectionState().connected ?? false,
        connects: this.connection?.connectionState().connects ?? 0,
        embedded: this.broker?.url() ?? null,
      },
      models: (this.registry?.status() ?? []).map((s) => ({
        name: s.name,
        version: s.version,
        state: s.state,
        ...(s.provider ? { provider: s.provider } : {}),
        ...(s.selection ? { providerReason: s.selection.reason, providers: s.selection.attempts } : {}),
        ...(s.selection?.warmup ? { warmup: s.selection.warmup } : {}),
        ...(s.placement ? { placement: s.placement } : {}),
        ...(s.error ? { error: s.error } : {}),
      })),
      inference: { workers: this.inference.workers, pool: this.backend.stats?.() },
      ...(this.store
        ? {
            store: {
              file: this.storeFile,
              // From the kept tally: counts() would scan the table on every status.
              depth: usage
                ? {
                    prediction: usage.byKind.prediction.records,
                    alert: usage.byKind.alert.records,
                    event: usage.byKind.event.records,
                  }
                : this.store.counts(),
              ...(usage
                ? {
                    bytes: {
                      prediction: usage.byKind.prediction.bytes,
                      alert: usage.byKind.alert.bytes,
                      event: usage.byKind.event.bytes,
                    },
                    oldestCreatedMs: usage.oldestCreatedMs,
                  }
                : {}),
              fileBytes: this.storeFileBytes(),
              lastSeq: this.store.lastSeq(),
            },
          }
        : {}),
      storage: this.housekeeper?.status(),
      sync: {
        destinations: syncView(
          this.sync?.status().destinations ?? [],
          (cursor) => this.oldestPendingMs(cursor),
          this.clock.nowMs(),
        ),
      },
      ota: this.updater?.status(),
      alerts: this.pipeline?.activeAlerts() ?? [],
      dataLoss: dataLossLedger(stats, this.ledgerEntries()),
      counters: stats
        ? {
            payloads: stats.payloads,
            readingsAccepted: stats.readingsAccepted,
            rejected: stats.rejected,
            windows: stats.windows,
            rows: stats.rows,
            assets: stats.assets,
            models: stats.models,
            published: this.sink?.counters,
          }
        : undefined,
    };
  }

  private publishStatus(): void {
    const conn = this.connection;
    if (!conn?.connectionState().connected) return;
    conn
      .publish(this.topics.status, JSON.stringify(this.status()), { qos: 1, retain: true })
      .catch((err: unknown) => {
        this.log.debug({ err: errorMessage(err) }, "status publish failed");
      });
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopParts();
    return this.stopping;
  }

  private async stopParts(): Promise<void> {
    const step = async (name: string, fn: () => Promise<void> | void): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        this.log.error({ part: name, err: errorMessage(err) }, "error while stopping; continuing");
      }
    };
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = undefined;
    if (this.tickTimer) clearInterval(this.tickTimer);
    await step("unsubscribe", () => this.connection?.unsubscribeAll());
    await step("model updates", () => this.updater?.stop());
    await step("pipeline", () => this.pipeline?.drain());
    await step("sync", () => this.sync?.stop());
    await step("housekeeper", () => this.housekeeper?.stop());
    await step("api", () => this.api?.stop());
    await step("mqtt", () =>
      this.connection?.stop({
        topic: this.topics.status,
        payload: JSON.stringify({
          state: "offline",
          gatewayId: this.config.gatewayId,
          ts: this.clock.nowMs(),
        }),
        retain: true,
        qos: 1,
      }),
    );
    await step("broker", () => this.broker?.stop());
    await step("models", () => this.registry?.close());
    await step("inference", () => this.backend.close?.());
    await step("store", () => this.store?.close());
    this.metrics?.stop();
    this.loop.stop();
    this.log.info("gateway stopped");
  }
}
