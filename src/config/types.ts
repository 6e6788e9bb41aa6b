/**
 * The validated configuration, as the rest of the program sees it. Mirrors `schema.ts`;
 * secrets given as `...File` have already been read into their inline key.
 */

export interface SubscriptionConfig {
  topic: string;
  format: "json" | "number";
  qos: 0 | 1;
}

export interface BindingConfig {
  assets: string;
  models: string[];
}

export type DestinationConfig =
  | { type: "http"; url: string; token?: string; tokenFile?: string; gzip?: boolean; [k: string]: unknown }
  | { type: "mqtt"; url: string; topicPrefix?: string; [k: string]: unknown };

export interface VigilConfig {
  gatewayId: string;
  dataDir: string;
  log: { level: string; format: "auto" | "json" | "pretty"; rejectIntervalMs: number };
  mqtt: {
    url: string;
    username: string;
    password: string;
    passwordFile: string;
    clientId: string;
    baseTopic: string;
    keepaliveS: number;
    connectTimeoutMs: number;
    reconnect: { minDelayMs: number; maxDelayMs: number };
    tls: {
      caFile: string;
      certFile: string;
      keyFile: string;
      rejectUnauthorized: boolean;
      servername: string;
    };
    embeddedBroker: {
      enabled: boolean;
      host: string;
      port: number;
      username: string;
      password: string;
      passwordFile: string;
      inProcess: boolean;
    };
  };
  ingest: {
    subscriptions: SubscriptionConfig[];
    maxPayloadBytes: number;
    maxBatchItems: number;
    maxAssets: number;
    maxSignalsPerAsset: number;
    maxReadingsPerSecond: number;
    maxReadingsPerSecondPerAsset: number;
    maxFutureMs: number;
  };
  window: { allowedLatenessMs: number; maxCatchUpWindows: number; maxPendingRows: number };
  models: {
    dir: string;
    trustedKeys: string[];
    requireSignature: boolean;
    bindings: BindingConfig[];
    keepVersions: number;
    ota: {
      enabled: boolean;
      maxResumes: number;
      download: { maxBytes: number; timeoutMs: number; idleTimeoutMs: number; caFile: string };
      extract: { maxFiles: number; maxBytes: number };
      retry: { minDelayMs: number; maxDelayMs: number; giveUpAfterMs: number };
      probation: {
        windows: number;
        durationMs: number;
        maxErrors: number;
        maxNonFinite: number;
        latencyFactor: number;
        minLatencyMs: number;
        slowBatches: number;
      };
    };
  };
  inference: {
    executionProviders: "auto" | string[];
    providerBenchmark: boolean;
    workers: "auto" | number;
    mainThreadMaxBatchMs: number;
    maxBatch: number;
    maxDelayMs: number;
    maxQueuedWindows: number;
    maxQueuedWindowsPerAsset: number;
    backpressureWindows: number;
    backpressureMaxWaitMs: number;
    intraOpThreads: number;
    interOpThreads: number;
    graphOptimizationLevel: "disabled" | "basic" | "extended" | "all";
    optimizedModelCache: boolean;
    warmupRuns: number;
    benchmarkRuns: number;
  };
  outputs: { predictionsQos: 0 | 1 | 2; alertsQos: 1 | 2; statusIntervalMs: number };
  store: { path: string; synchronous: "full" | "normal"; integrityCheck: boolean };
  storage: {
    maxBytes: number;
    minFreeBytes: number;
    retentionMs: number;
    maxAgeMs: number;
    evictPredictions: "oldest" | "thin";
    checkIntervalMs: number;
  };
  sync: { destinations: DestinationConfig[] };
  http: { enabled: boolean; host: string; port: number; token: string; tokenFile: string };
  service: { stopTimeoutMs: number; maxEventLoopDelayMs: number };
  dashboard: { historyPoints: number };
  demo: {
    machines: number;
    sampleIntervalMs: number;
    meanLifeS: number;
    seed: number;
    engines: number;
    engineCycleMs: number;
  };
}
