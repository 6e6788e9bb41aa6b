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
 */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ApiServer, type Readiness } from "./api/server.js";
import { EmbeddedBroker } from "./broker/embedded.js";
import type { VigilConfig } from "./config/types.js";
import { errorMessage } from "./errors.js";
import { MqttConnection } from "./ingest/mqtt-client.js";
import { OrtBackend, type InferenceBackend } from "./inference/ort.js";
import { ModelRegistry } from "./models/registry.js";
import type { StatusPayload } from "./output/payloads.js";
import { gatewayTopics, type GatewayTopics } from "./output/topics.js";
import { Pipeline, type PipelineStats } from "./pipeline/pipeline.js";
import type { RecordSink } from "./pipeline/runner.js";
import type { Clock } from "./system/clock.js";
import { systemClock } from "./system/clock.js";
import type { Logger } from "./system/logger.js";
import { VERSION } from "./system/version.js";
import { NotifyingSink } from "./pipeline/sinks.js";
import { Housekeeper } from "./store/housekeeper.js";
import { uuidv7 } from "./store/ids.js";
import { openStore, type StoreReset } from "./store/recovery.js";
import type { NewRecord, Store, StoredRecord } from "./store/types.js";
import { parseDestinations } from "./sync/config.js";
import { SyncService } from "./sync/service.js";

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
      const payload = JSON.stringify({ ...r.data, id: r.id, seq: r.seq });
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
  private readonly topics: GatewayTopics;
  private readonly startedAt = new Date();
  private store: Store | undefined;
  private housekeeper: Housekeeper | undefined;
  private sync: SyncService | undefined;
  private registry: ModelRegistry | undefined;
  private broker: EmbeddedBroker | undefined;
  private connection: MqttConnection | undefined;
  private sink: MqttRecordSink | undefined;
  private pipeline: Pipeline | undefined;
  private api: ApiServer | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  private storeFile = "";

  constructor(
    private readonly config: VigilConfig,
    private readonly log: Logger,
    deps: GatewayDeps = {},
  ) {
    this.clock = deps.clock ?? systemClock;
    this.backend = deps.backend ?? new OrtBackend();
    this.topics = gatewayTopics(config.mqtt.baseTopic, config.gatewayId);
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

    this.registry = new ModelRegistry(
      this.backend,
      {
        executionProviders: c.inference.executionProviders,
        intraOpThreads: c.inference.intraOpThreads,
        graphOptimizationLevel: c.inference.graphOptimizationLevel,
      },
      this.log.child({ module: "models" }),
    );
    await this.registry.scan(c.models.dir);

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
      },
      (topic, payload) => this.pipeline?.handleMessage(topic, payload, this.clock.nowMs()),
      this.log.child({ module: "mqtt" }),
    );
    this.sink = new MqttRecordSink(
      this.connection,
      this.topics,
      { predictions: c.outputs.predictionsQos, alerts: c.outputs.alertsQos },
      this.log.child({ module: "output" }),
    );
    const housekeeper = this.housekeeper;
    const sink = new NotifyingSink(
      this.sink,
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
        maxQueuedWindows: 100_000,
        rejectLogIntervalMs: c.log.rejectIntervalMs,
      },
      this.registry.active(),
      this.store,
      sink,
      this.clock,
      this.log.child({ module: "ingest" }),
    );
    this.connection.onConnect(() => this.publishStatus());
    this.connection.start();
    this.connection.subscribe(this.pipeline.filters());

    if (c.http.enabled) {
      this.api = new ApiServer(
        { host: c.http.host, port: c.http.port, ...(c.http.token ? { token: c.http.token } : {}) },
        { status: () => this.status(), readiness: () => this.readiness() },
        this.log.child({ module: "api" }),
      );
      await this.api.start();
    }
    this.statusTimer = setInterval(() => this.publishStatus(), c.outputs.statusIntervalMs);
    this.statusTimer.unref();
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

  readiness(): Readiness {
    const reasons: string[] = [];
    if (!this.connection?.connectionState().connected) reasons.push("not connected to the broker");
    if ((this.registry?.active().length ?? 0) === 0) reasons.push("no model is serving");
    if (!this.store) reasons.push("store not open");
    return { ready: reasons.length === 0, reasons };
  }

  status(): StatusPayload & Record<string, unknown> {
    const stats = this.pipeline?.stats();
    return {
      state: "online",
      gatewayId: this.config.gatewayId,
      version: VERSION,
      startedAt: this.startedAt.toISOString(),
      ts: this.clock.nowMs(),
      host: os.hostname(),
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
        ...(s.error ? { error: s.error } : {}),
      })),
      store: this.store
        ? { file: this.storeFile, depth: this.store.counts(), lastSeq: this.store.lastSeq() }
        : undefined,
      storage: this.housekeeper?.status(),
      sync: this.sync?.status(),
      alerts: this.pipeline?.activeAlerts() ?? [],
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
    if (this.tickTimer) clearInterval(this.tickTimer);
    await step("unsubscribe", () => this.connection?.unsubscribeAll());
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
    await step("store", () => this.store?.close());
    this.log.info("gateway stopped");
  }
}
