/**
 * The configuration schema: every key Vigil reads, with its doc, format, default and
 * environment override. This file is the single source of truth; `docs/configuration.md` is
 * generated from it (`npm run docs:config`) and a test fails when the two disagree.
 *
 * Environment overrides are derived from the key path: `mqtt.embeddedBroker.port` is
 * `VIGIL_MQTT_EMBEDDEDBROKER_PORT`. List-valued keys take JSON in the environment.
 * Secrets may be given inline or as a `...File` key holding a path; the file wins.
 */

import os from "node:os";

/** A leaf of the schema, in the shape convict expects (plus `env`, filled in below). */
export interface Leaf {
  doc: string;
  format: unknown;
  default: unknown;
  env?: string;
  sensitive?: boolean;
  nullable?: boolean;
}

export type SchemaNode = Leaf | { [key: string]: SchemaNode };

export function isLeaf(node: SchemaNode): node is Leaf {
  return typeof node === "object" && node !== null && "doc" in node && "default" in node;
}

const leaf = (doc: string, format: unknown, def: unknown, extra: Partial<Leaf> = {}): Leaf => ({
  doc,
  format,
  default: def,
  ...extra,
});

const secret = (doc: string): Leaf => leaf(doc, String, "", { sensitive: true });
const secretFile = (what: string): Leaf =>
  leaf(`Path of a file holding ${what} (trailing newline trimmed); overrides the inline value.`, String, "");

function defaultGatewayId(): string {
  const cleaned = os.hostname().replace(/[^A-Za-z0-9_.-]/g, "-");
  return cleaned.length > 0 ? cleaned : "vigil";
}

export const GATEWAY_ID_PATTERN = /^[A-Za-z0-9_.-]+$/;

export const schema = {
  gatewayId: leaf(
    "This gateway's id, used in every topic and record. Letters, digits, `_`, `.` and `-`.",
    "gateway-id",
    defaultGatewayId(),
  ),
  dataDir: leaf(
    "Folder for the SQLite store and installed models; created if missing. Relative paths are taken from the working directory.",
    "non-empty-string",
    "./data",
  ),
  log: {
    level: leaf(
      "Log level: trace, debug, info, warn, error, fatal or silent. Reloadable (SIGHUP); SIGUSR2 toggles debug, `PUT /api/log-level` sets any level until the next restart.",
      ["trace", "debug", "info", "warn", "error", "fatal", "silent"],
      "info",
    ),
    format: leaf(
      "`json` (one object a line, for journald and log shippers), `pretty` (for people), or `auto`: pretty on a terminal, JSON otherwise.",
      ["auto", "json", "pretty"],
      "auto",
    ),
    rejectIntervalMs: leaf(
      "At most one log line per reject reason in this interval; the line says how many were suppressed.",
      "positive-int",
      10_000, // 10 s
    ),
  },
  mqtt: {
    url: leaf(
      "The plant broker, `mqtt://host:port` or `mqtts://host:port`. Ignored when the embedded broker is enabled (the agent then connects to it).",
      "mqtt-url",
      "mqtt://127.0.0.1:1883",
    ),
    username: leaf("Username for the plant broker.", String, ""),
    password: secret("Password for the plant broker."),
    passwordFile: secretFile("the plant broker password"),
    clientId: leaf("MQTT client id; empty means `vigil-<gatewayId>`.", String, ""),
    baseTopic: leaf(
      "Prefix of every topic the gateway publishes: `<baseTopic>/<gatewayId>/...`.",
      "topic-level",
      "vigil",
    ),
    keepaliveS: leaf("MQTT keep-alive in seconds.", "positive-int", 30),
    connectTimeoutMs: leaf("How long one connection attempt may take.", "positive-int", 10_000),
    reconnect: {
      minDelayMs: leaf(
        "First reconnect delay after the broker is lost; doubles on each failure.",
        "positive-int",
        1_000,
      ),
      maxDelayMs: leaf("Longest reconnect delay.", "positive-int", 30_000),
    },
    tls: {
      caFile: leaf(
        "PEM file of the CA(s) that sign the broker's certificate (mqtts). Empty: system CAs.",
        String,
        "",
      ),
      certFile: leaf("PEM client certificate for mutual TLS.", String, ""),
      keyFile: leaf("PEM private key of the client certificate.", String, ""),
      rejectUnauthorized: leaf(
        "Verify the broker's certificate. Turn off only for a test broker.",
        Boolean,
        true,
      ),
      servername: leaf("TLS server name (SNI) when it differs from the URL host.", String, ""),
    },
    embeddedBroker: {
      enabled: leaf("Run an MQTT broker (aedes) inside the agent for sensors to publish to.", Boolean, false),
      host: leaf(
        "Address the embedded broker binds. Any address other than loopback requires username and password.",
        "non-empty-string",
        "127.0.0.1",
      ),
      port: leaf("Port of the embedded broker; 0 picks a free one.", "port", 1883),
      username: leaf("Username clients must present to the embedded broker.", String, ""),
      password: secret("Password clients must present to the embedded broker."),
      passwordFile: secretFile("the embedded broker password"),
      inProcess: leaf(
        "The agent's own subscriptions and publishes on the embedded broker go through it in-process (no TCP hop, MQTT encoding or parsing per message; the same topics, retained and QoS semantics for every other client). `false`: the agent connects over TCP like any other client.",
        Boolean,
        true,
      ),
    },
  },
  ingest: {
    subscriptions: leaf(
      'Topics to read sensor readings from: a list of `{"topic", "format", "qos"}`. `topic` is a template with `{asset}` and optionally `{signal}` placeholders (whole levels or parts of levels); `format` is `json` (default) or `number`; `qos` 0 (default) or 1.',
      "subscriptions",
      [{ topic: "plant/{asset}/{signal}", format: "json", qos: 0 }],
    ),
    maxPayloadBytes: leaf(
      "Larger payloads are dropped and counted (`payload_too_large`).",
      "positive-int",
      65_536,
    ), // 64 KiB
    maxBatchItems: leaf(
      "Most readings one payload may carry (array items, or keys of `values`); more: `batch_too_large`.",
      "positive-int",
      1_000,
    ),
    maxAssets: leaf(
      "Most distinct assets; readings of further assets: `too_many_assets`.",
      "positive-int",
      10_000,
    ),
    maxSignalsPerAsset: leaf(
      "Most distinct signals per asset; further ones: `too_many_signals`.",
      "positive-int",
      256,
    ),
    maxReadingsPerSecond: leaf(
      "Readings accepted per second over all assets (token bucket, one second of burst); 0 = unlimited.",
      "nat",
      200_000,
    ),
    maxReadingsPerSecondPerAsset: leaf(
      "Readings accepted per second for one asset; 0 = unlimited.",
      "nat",
      5_000,
    ),
    maxFutureMs: leaf(
      "Readings whose `ts` is further than this ahead of the gateway's clock are dropped (`future_ts`), so one bad clock cannot push windows into the future; 0 = off.",
      "nat",
      86_400_000, // 1 day
    ),
  },
  window: {
    allowedLatenessMs: leaf(
      "Time windows close this long (in event time) after their end, to wait for readings that arrive out of order.",
      "nat",
      0,
    ),
    maxCatchUpWindows: leaf(
      "When event time jumps, emit at most this many time windows per asset and model; older ones are skipped and counted (`gap`).",
      "positive-int",
      1_000,
    ),
    maxPendingRows: leaf(
      "Rows per asset still waiting for some of their signals (count windows); beyond it the oldest is dropped (`incomplete_row`).",
      "positive-int",
      64,
    ),
  },
  models: {
    dir: leaf(
      "Folder of shipped model packages (`<name>/<version>/manifest.json`).",
      "non-empty-string",
      "models",
    ),
    trustedKeys: leaf(
      "Paths of Ed25519 public keys (PEM, SPKI) allowed to sign packages installed over the air or with `vigil models install` (`vigil models keygen` makes a pair).",
      "string-array",
      [],
    ),
    requireSignature: leaf(
      "Require a `manifest.sig` that verifies with one of `models.trustedKeys` for packages installed over the air or with `vigil models install` (and check it again at every start). Packages in `models.dir` are trusted as shipped.",
      Boolean,
      true,
    ),
    bindings: leaf(
      'Which models an asset runs: a list of `{"assets": "<glob>", "models": ["<name>", ...]}`; the first binding whose glob (`*`, `?`) matches an asset decides. Assets that match none run every model whose signals they publish.',
      "bindings",
      [],
    ),
    keepVersions: leaf(
      "Previous versions of each model kept installed under `<dataDir>/models` beside the active one (for rollback); older installed versions are deleted. Shipped packages are never deleted.",
      "nat",
      3,
    ),
    ota: {
      enabled: leaf(
        "Accept model-update requests (`<baseTopic>/<gatewayId>/request/models/...` on the plant broker, and under the `topicPrefix` of every MQTT sync destination).",
        Boolean,
        true,
      ),
      maxResumes: leaf(
        "How many times a restart takes an interrupted update up again before it is abandoned (and reported).",
        "nat",
        3,
      ),
      download: {
        maxBytes: leaf(
          "Largest package archive downloaded; a request's `size` lowers it.",
          "positive-int",
          268_435_456, // 256 MiB
        ),
        timeoutMs: leaf("Longest time one download attempt may take.", "positive-int", 600_000), // 10 minutes
        idleTimeoutMs: leaf("Longest silence of the server during a download.", "positive-int", 30_000),
        caFile: leaf("PEM file of extra CAs for https package URLs. Empty: system CAs.", String, ""),
      },
      extract: {
        maxFiles: leaf("Most entries a package archive may hold.", "positive-int", 1_100),
        maxBytes: leaf(
          "Most bytes a package archive may expand to.",
          "positive-int",
          1_073_741_824, // 1 GiB
        ),
      },
      retry: {
        minDelayMs: leaf(
          "First wait after a download failed for a reason that may pass (network, timeout, 408, 429, 5xx); doubles each time.",
          "positive-int",
          2_000,
        ),
        maxDelayMs: leaf("Longest wait between download attempts.", "positive-int", 300_000), // 5 minutes
        giveUpAfterMs: leaf(
          "Stop retrying a download after this long and answer with an error.",
          "positive-int",
          21_600_000, // 6 hours
        ),
      },
      probation: {
        windows: leaf(
          "A newly active version is on probation for this many windows (or `durationMs`, whichever ends first).",
          "positive-int",
          100,
        ),
        durationMs: leaf("Longest probation.", "positive-int", 600_000), // 10 minutes
        maxErrors: leaf(
          "Windows lost to inference errors allowed in probation; one more rolls back.",
          "nat",
          0,
        ),
        maxNonFinite: leaf(
          "Windows with a NaN or infinite output allowed in probation; one more rolls back.",
          "nat",
          0,
        ),
        latencyFactor: leaf(
          "A batch is slow when it takes longer than this × the self-test time per window × its windows (and longer than `minLatencyMs`).",
          "positive-number",
          20,
        ),
        minLatencyMs: leaf("Batches faster than this are never slow.", "positive-int", 100),
        slowBatches: leaf("Slow batches in a row that roll back.", "positive-int", 3),
      },
    },
  },
  inference: {
    executionProviders: leaf(
      "`auto`, or an ordered list of execution providers to try (`tensorrt`, `cuda`, `coreml`, `dml`, `webgpu`, `cpu`). `auto` tries TensorRT, CUDA, the platform's own (CoreML on macOS, DirectML on Windows), WebGPU, then CPU. A provider serves a model only if the model loads on it and its package's self-test passes on it; the status says which serves and why each other one does not (docs/accelerators.md).",
      "providers",
      "auto",
    ),
    providerBenchmark: leaf(
      "When several providers pass a model's self-test, time each at the serving batch (`warmupRuns` + `benchmarkRuns`) and serve the fastest (small models are often faster on the CPU); `false` serves the first that passes, in the order given.",
      Boolean,
      true,
    ),
    workers: leaf(
      "Where inference runs. `auto`: per model, on the main thread when its measured time per batch (the warm-up before it serves, at the serving batch) is below `mainThreadMaxBatchMs`, else on a pool of cores − 1 worker threads (at least 1, at most 4), where a slow model cannot stall MQTT handling; the pool runs no threads while no model needs it. A number fixes it for every model: `0` = the main thread, `N` = a pool of N workers. The choice and its reason are in the log, the status and /metrics (docs/accelerators.md).",
      "workers",
      "auto",
    ),
    mainThreadMaxBatchMs: leaf(
      "With `workers = auto`: a model whose batch takes less than this (ms, measured at the serving batch before it serves) runs on the main thread, where it costs less than the hop to a worker thread (0.1–0.3 ms per batch measured, docs/benchmarks.md); slower models run on the worker pool.",
      "positive-number",
      0.25,
    ),
    maxBatch: leaf("Most windows of one model in one inference call.", "positive-int", 64),
    maxDelayMs: leaf(
      "Dynamic batching: how long a window may wait for others to fill its batch; 0 = batch only what arrives in the same event-loop turn. Batches also grow on their own while earlier ones are inferred (at most 4 batches per worker and model at once).",
      "nat",
      2,
    ),
    maxQueuedWindows: leaf(
      "Windows of one model waiting for inference, at most (about 1 KiB each); beyond it the oldest waiting window is dropped and counted (`overload`, `dropped.queue_full`).",
      "positive-int",
      100_000,
    ),
    backpressureWindows: leaf(
      "Backpressure: with more windows than this waiting for inference (all models together), the agent takes no further message until they are down to half (nothing is dropped; over TCP the backlog waits in the broker and the socket buffers; on the embedded broker in-process it waits in a bounded inbox of 512 messages, beyond which the broker's delivery is held, which slows the embedded broker for every client while the agent is overloaded); it never waits longer than `backpressureMaxWaitMs` at a time. 0 = never: the agent takes every message and drops by `maxQueuedWindows`.",
      "nat",
      2_048,
    ),
    backpressureMaxWaitMs: leaf(
      "Longest one backpressure pause may last (ms); then messages are taken again, so a stalled model can never stop ingest for good.",
      "positive-int",
      1_000,
    ),
    maxQueuedWindowsPerAsset: leaf(
      "Windows of one asset and model waiting for inference, at most; beyond it that asset's oldest waiting window is dropped and counted (`dropped.asset_backlog`): the newest data wins, and one flooding asset cannot take the whole queue from the others. Large enough that a recorded file replayed at full speed (`vigil replay --rate 0`) into a model that keeps up loses nothing.",
      "positive-int",
      5_000,
    ),
    intraOpThreads: leaf("ONNX Runtime intra-op threads per session; 0 = ONNX Runtime's default.", "nat", 1),
    interOpThreads: leaf(
      "ONNX Runtime inter-op threads per session (sessions run sequentially, so 1 suffices); 0 = ONNX Runtime's default.",
      "nat",
      1,
    ),
    graphOptimizationLevel: leaf(
      "ONNX Runtime graph optimisation level.",
      ["disabled", "basic", "extended", "all"],
      "all",
    ),
    optimizedModelCache: leaf(
      "Keep the graph ONNX Runtime optimised for the CPU in `<dataDir>/cache/ort/` and load it, unoptimised, on the next start (keyed by the model's SHA-256, the ONNX Runtime version, the level and the CPU model; the self-test still runs on it).",
      Boolean,
      true,
    ),
    warmupRuns: leaf(
      "Untimed inference runs at the serving batch before a model serves (ONNX Runtime allocates and tunes on its first runs).",
      "nat",
      10,
    ),
    benchmarkRuns: leaf(
      "Timed runs at the serving batch, per provider, for `providerBenchmark` (and once on the serving provider, for the status).",
      "nat",
      30,
    ),
  },
  outputs: {
    predictionsQos: leaf("QoS of published predictions.", [0, 1, 2], 0),
    alertsQos: leaf("QoS of published alerts (at least 1).", [1, 2], 1),
    statusIntervalMs: leaf(
      "How often the retained status (with counters) is republished. Reloadable (SIGHUP).",
      "positive-int",
      60_000, // 1 minute
    ),
  },
  store: {
    path: leaf("SQLite database file; empty means `<dataDir>/vigil.db`.", String, ""),
    synchronous: leaf(
      "Durability of the SQLite store (WAL): `full` (the default, because a record a subscriber has seen must not be lost: every commit is on disk before it is published — a group commit, the WAL fdatasync'ed off the main thread, docs/sync.md) or `normal` (no sync; the last commits may be lost on power loss, never on a crash of the agent).",
      ["full", "normal"],
      "full",
    ),
    integrityCheck: leaf(
      "Check the database when opening it (`PRAGMA quick_check`; reads the whole file once). A database that fails, or is not a database, is moved aside as `<file>.corrupt-<time>` and a fresh one is started, with an event and a ledger entry.",
      Boolean,
      true,
    ),
  },
  storage: {
    maxBytes: leaf(
      "Most bytes the store may use; beyond it records are deleted by class: delivered ones, then predictions, then events, alerts last (each counted in the data-loss ledger). 0 = no limit.",
      "nat",
      1_073_741_824, // 1 GiB
    ),
    minFreeBytes: leaf(
      "Free space to leave on the store's file system; the store stops growing (and evicts as for `maxBytes`) rather than go below it. 0 = no floor.",
      "nat",
      268_435_456, // 256 MiB
    ),
    retentionMs: leaf(
      "How long records every destination has (every record, when none is configured) stay in the store for local use before they are deleted.",
      "nat",
      3_600_000, // 1 hour
    ),
    maxAgeMs: leaf(
      "Undelivered records older than this are deleted and counted as `expired`. 0 = keep them until delivered (or evicted).",
      "nat",
      0,
    ),
    evictPredictions: leaf(
      "How predictions are evicted when the store is full: `oldest` first, or `thin` (every second block of the oldest, so the span stays covered at half the resolution).",
      ["oldest", "thin"],
      "oldest",
    ),
    checkIntervalMs: leaf(
      "How often the store is pruned, expired, checked against its limits and shrunk after a drain.",
      "positive-int",
      5_000,
    ),
  },
  sync: {
    destinations: leaf(
      'Cloud destinations, each `{"type": "http", "url", ...}` or `{"type": "mqtt", "url", ...}`; every field is described in docs/sync.md. Common: `name`, `batchMaxRecords` (500), `batchMaxBytes` (1048576), `timeoutMs` (30000), `minDelayMs`/`maxDelayMs` (backoff, 1000/300000), `schedule` `{"windows": [cron...], "timezone", "alertsBypass"}`, `maxBytesPerSecond` (0 = no cap), `predictions` `{"every", "onChange", "minDelta"}`, `tls` `{"caFile", "certFile", "keyFile", "rejectUnauthorized", "servername"}`. HTTP: `token`/`tokenFile`, `gzip` (true). MQTT: `topicPrefix` ("vigil"), `username`, `password`/`passwordFile`, `clientId`, `maxInFlight` (64), `keepaliveS`. Records stay in the store until every destination has them.',
      "destinations",
      [],
    ),
  },
  http: {
    enabled: leaf("Serve the local HTTP API.", Boolean, true),
    host: leaf(
      "Address of the local HTTP API; any address other than loopback requires `http.token`.",
      "non-empty-string",
      "127.0.0.1",
    ),
    port: leaf("Port of the local HTTP API; 0 picks a free one.", "port", 8080),
    token: secret(
      "Bearer token of the local API: required when it is not on loopback, and on every address once set (the dashboard page and its scripts excepted: they carry no data). Reloadable (SIGHUP), also through `tokenFile`.",
    ),
    tokenFile: secretFile("the local API token"),
  },
  service: {
    stopTimeoutMs: leaf(
      "Graceful shutdown budget after SIGTERM/SIGINT: finish windows in flight, publish `offline`, close the store. Past it the agent logs what it gave up and exits with 1; keep it below the unit's `TimeoutStopSec` (30 s). Reloadable (SIGHUP).",
      "positive-int",
      25_000, // 25 s
    ),
    maxEventLoopDelayMs: leaf(
      "Liveness: when the event loop was blocked longer than this within the last 5 to 10 s, `/healthz` answers 503 and the systemd watchdog is not fed (systemd restarts the agent if it stays so for `WatchdogSec`). Reloadable (SIGHUP).",
      "positive-int",
      5_000, // 5 s
    ),
  },
  dashboard: {
    historyPoints: leaf(
      "Recent predictions kept in memory per asset and model for the dashboard's trend plots (seeded from the store at start).",
      "positive-int",
      240,
    ),
  },
  demo: {
    machines: leaf("Simulated machines in `vigil demo`.", "positive-int", 6),
    sampleIntervalMs: leaf(
      "How often each simulated machine publishes one row of every signal (the shipped pump-health model was trained on 1 s).",
      "positive-int",
      1_000,
    ),
    meanLifeS: leaf(
      "Mean time from new to failure of a simulated machine (the demo runs fast so that failures show within minutes).",
      "positive-int",
      300,
    ),
    seed: leaf("Seed of the simulated plant; the same seed gives the same machines.", "nat", 7),
    engines: leaf(
      "Simulated turbofan engines in `vigil demo` (C-MAPSS-like rows for the shipped `turbofan-rul` model); 0 = none.",
      "nat",
      3,
    ),
    engineCycleMs: leaf(
      "How often each simulated engine publishes one operating cycle (a life lasts about 200 cycles).",
      "positive-int",
      1_000,
    ),
  },
} satisfies Record<string, SchemaNode>;

/** Environment variable name for a key path: `mqtt.url` -> `VIGIL_MQTT_URL`. */
export function envName(path: string): string {
  return `VIGIL_${path.replace(/\./g, "_").toUpperCase()}`;
}

/** Visit every leaf with its dotted path. */
export function walkLeaves(node: SchemaNode, visit: (path: string, leaf: Leaf) => void, prefix = ""): void {
  for (const [key, child] of Object.entries(node as Record<string, SchemaNode>)) {
    const path = prefix === "" ? key : `${prefix}.${key}`;
    if (isLeaf(child)) visit(path, child);
    else walkLeaves(child, visit, path);
  }
}

/** The schema with `env` set on every leaf, ready for convict. */
export function schemaWithEnv(): Record<string, SchemaNode> {
  const copy = structuredCloneSchema(schema);
  walkLeaves(copy, (path, l) => {
    l.env = envName(path);
  });
  return copy;
}

function structuredCloneSchema(node: Record<string, SchemaNode>): Record<string, SchemaNode> {
  const out: Record<string, SchemaNode> = {};
  for (const [key, child] of Object.entries(node)) {
    out[key] = isLeaf(child)
      ? { ...child, default: cloneValue(child.default) }
      : structuredCloneSchema(child as Record<string, SchemaNode>);
  }
  return out;
}

function cloneValue(v: unknown): unknown {
  return v !== null && typeof v === "object" ? (JSON.parse(JSON.stringify(v)) as unknown) : v;
}
