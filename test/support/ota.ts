/**
 * Test support for over-the-air model updates: signing keys made in the test, real packages
 * (ONNX written by tools/onnx/writer.ts, signed, packed with the same code as `vigil models
 * pack`), hostile archives crafted entry by entry with node-tar's header encoder, and a
 * local node:http server that serves packages and can misbehave on purpose (reset, 503,
 * stall, cut a body short, send more than it announced). Everything on 127.0.0.1, port 0.
 */

import { createHash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import zlib from "node:zlib";
import { Header } from "tar";
import { packPackage } from "../../src/models/archive.js";
import { generateKeyPair, parsePrivateKey, signManifest } from "../../src/models/signing.js";
import { GraphBuilder, addDense, attr } from "../../tools/onnx/writer.js";
import type { VigilConfig } from "../../src/config/types.js";
import { Gateway } from "../../src/gateway.js";
import type { InferenceBackend } from "../../src/inference/ort.js";
import type { LoadedModel } from "../../src/models/package.js";
import { Pipeline } from "../../src/pipeline/pipeline.js";
import { systemClock } from "../../src/system/clock.js";
import { silentLogger } from "../../src/system/logger.js";
import { MemoryStore } from "../../src/store/memory.js";
import type { StoredRecord } from "../../src/store/types.js";
import {
  Collector,
  FIXTURES,
  modelsDir,
  startGateway,
  tempDir,
  testConfig,
  type RunningGateway,
} from "./harness.js";

export interface KeyPairFiles {
  keyFile: string;
  pubFile: string;
  id: string;
}

export function makeKeys(dir: string = tempDir("vigil-keys-"), name = "k"): KeyPairFiles {
  const pair = generateKeyPair();
  const keyFile = path.join(dir, `${name}.key`);
  const pubFile = path.join(dir, `${name}.pub`);
  fs.writeFileSync(keyFile, pair.privateKeyPem, { mode: 0o600 });
  fs.writeFileSync(pubFile, pair.publicKeyPem);
  return { keyFile, pubFile, id: pair.keyId };
}

/** The base fixture every test package derives from: count window 5/2, signals s1..s3, output rul. */
export const BASE = "count-ntc-zscore";

interface Weights {
  layers: { W: number[][]; b: number[] }[];
}

export type Variant =
  /** rul = b + W·x, as the fixture (with `bias` added to b). */
  | "dense"
  /** rul = b + W·sqrt(x): NaN for any negative input, fine for the self-test's positive ones. */
  | "sqrt"
  /** Reshapes to [1,15]: runs with batch 1 (the self-test), fails for any bigger batch. */
  | "batch1"
  /**
   * The same rul as "dense", plus a side branch of 64 MatMuls of [batch,512]×[512,512] whose
   * sum, times 0, is added to it: ~34 MFLOP per window, milliseconds per batch (slow on purpose).
   */
  | "heavy";

export interface PackageSpec {
  version: string;
  name?: string;
  variant?: Variant;
  bias?: number;
  /** Edit the manifest before hashing and signing (a signed change). */
  edit?: (m: ManifestJson, dir: string) => void;
  /** Change the folder after signing (tampering). */
  tamper?: (dir: string) => void;
  /** Sign with this key; false: unsigned. */
  sign: KeyPairFiles | false;
}

export interface ManifestJson {
  name: string;
  version: string;
  files: Record<string, string>;
  input: {
    tensor: string;
    signals: string[];
    window: Record<string, unknown>;
    normalize: { mean: number[]; std: number[] };
    [k: string]: unknown;
  };
  outputs: { tensor: string; name: string }[];
  selfTest: { input: number[]; output: number[]; tolerance: number }[];
  [k: string]: unknown;
}

export interface BuiltPackage {
  dir: string;
  tgz: string;
  sha256: string;
  size: number;
  bytes: Buffer;
}

const sha256 = (b: Buffer | Uint8Array | string): string => createHash("sha256").update(b).digest("hex");

function modelBytes(variant: Variant, W: number[], b: number): Uint8Array {
  const g = new GraphBuilder("test");
  g.input("input", ["batch", 5, 3]);
  let x = g.node("Flatten", ["input"], { axis: attr.int(1) }, "flat");
  if (variant === "sqrt") x = g.node("Sqrt", [x], {}, "root");
  if (variant === "batch1") {
    g.initializer("shape", [2], [1, 15], "int64");
    x = g.node("Reshape", [x, "shape"], {}, "one");
  }
  if (variant !== "heavy") {
    addDense(g, x, "rul", [W], [b], "rul");
    g.output("rul", ["batch", 1]);
    return g.encode();
  }
  const dense = addDense(g, x, "dense", [W], [b]);
  // Every weight 1/n: each layer averages, so values stay those of the input's scale.
  g.initializer("wide", [15, 512], new Array<number>(15 * 512).fill(1 / 15));
  g.initializer("square", [512, 512], new Array<number>(512 * 512).fill(1 / 512));
  let h = g.node("MatMul", [x, "wide"]);
  for (let i = 0; i < 64; i++) h = g.node("MatMul", [h, "square"]);
  g.initializer("axes", [1], [1], "int64");
  g.initializer("zero", [1], [0]);
  const side = g.node("Mul", [g.node("ReduceSum", [h, "axes"], { keepdims: attr.int(1) }), "zero"]);
  g.node("Add", [dense, side], {}, "rul");
  g.output("rul", ["batch", 1]);
  return g.encode();
}

/** A signed (or not) package derived from the base fixture, packed into a .tgz. */
export async function buildPackage(
  spec: PackageSpec,
  into: string = tempDir("vigil-pkg-"),
): Promise<BuiltPackage> {
  const variant = spec.variant ?? "dense";
  const dir = path.join(into, `${spec.name ?? BASE}-${spec.version}`);
  fs.mkdirSync(dir, { recursive: true });
  const base = path.join(FIXTURES, BASE);
  const m = JSON.parse(fs.readFileSync(path.join(base, "manifest.json"), "utf8")) as ManifestJson;
  const weights = JSON.parse(fs.readFileSync(path.join(base, "weights.json"), "utf8")) as Weights;
  const W = weights.layers[0]?.W[0] ?? [];
  const b = (weights.layers[0]?.b[0] ?? 0) + (spec.bias ?? 0);
  const onnx = modelBytes(variant, W, b);
  fs.writeFileSync(path.join(dir, "model.onnx"), onnx);
  m.name = spec.name ?? BASE;
  m.version = spec.version;
  m.files = { "model.onnx": sha256(onnx) };
  m.selfTest = m.selfTest.map((tc) => {
    const input = variant === "sqrt" ? tc.input.map((v) => Math.abs(v)) : tc.input;
    const f = (v: number): number => (variant === "sqrt" ? Math.sqrt(Math.fround(v)) : Math.fround(v));
    const out = input.reduce((acc, v, i) => acc + Math.fround(W[i] ?? 0) * f(v), Math.fround(b));
    return { input, output: [out], tolerance: 1e-3 };
  });
  spec.edit?.(m, dir);
  const text = `${JSON.stringify(m, null, 2)}\n`;
  fs.writeFileSync(path.join(dir, "manifest.json"), text);
  if (spec.sign) {
    const key = parsePrivateKey(fs.readFileSync(spec.sign.keyFile), spec.sign.keyFile);
    fs.writeFileSync(path.join(dir, "manifest.sig"), `${signManifest(Buffer.from(text), key)}\n`);
  }
  spec.tamper?.(dir);
  const tgz = `${dir}.tgz`;
  const files = fs.readdirSync(dir);
  await packPackage(dir, files, tgz);
  const bytes = fs.readFileSync(tgz);
  return { dir, tgz, sha256: sha256(bytes), size: bytes.length, bytes };
}

export interface RawEntry {
  path: string;
  type: "File" | "Directory" | "SymbolicLink" | "Link" | "CharacterDevice" | "FIFO";
  data?: Buffer;
  linkpath?: string;
}

/** A .tgz of exactly these entries (hostile ones included), for archive refusals. */
export function craftTgz(entries: readonly RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = e.data ?? Buffer.alloc(0);
    const h = new Header({
      path: e.path,
      type: e.type,
      size: data.length,
      mode: e.type === "Directory" ? 0o755 : 0o644,
      mtime: new Date(0),
      ...(e.linkpath !== undefined ? { linkpath: e.linkpath } : {}),
    });
    const block = Buffer.alloc(512);
    h.encode(block, 0);
    blocks.push(block, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return zlib.gzipSync(Buffer.concat(blocks));
}

/** The files of a built package folder as raw entries (to add a hostile one beside them). */
export function entriesOf(dir: string): RawEntry[] {
  return fs
    .readdirSync(dir)
    .map((f) => ({ path: f, type: "File" as const, data: fs.readFileSync(path.join(dir, f)) }));
}

export type Behaviour =
  | { kind: "ok" }
  /** Destroy the socket before answering. */
  | { kind: "reset" }
  | { kind: "status"; status: number; headers?: Record<string, string> }
  /** Send the headers and this many bytes, then never finish (until the server closes). */
  | { kind: "stall"; afterBytes: number }
  /** Send this many bytes of a full-length response, then destroy the socket. */
  | { kind: "cut"; afterBytes: number }
  /** Send these bytes with no Content-Length (chunked). */
  | { kind: "chunked" }
  /** Answer normally once `release()` is called. */
  | { kind: "hold" };

export interface Served {
  bytes: Buffer;
  /** Behaviour per request, in order; the last one repeats. */
  behaviours?: Behaviour[];
}

/** A package server on 127.0.0.1:0 that honours Range and misbehaves when told. */
export class PackageServer {
  readonly requests: { path: string; range?: string; ifRange?: string }[] = [];
  private readonly files = new Map<string, Served>();
  private readonly server: http.Server;
  private readonly waiters: { n: number; path: string; resolve: () => void }[] = [];
  private held: (() => void)[] = [];

  constructor() {
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
  }

  url(p: string): string {
    const a = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${a.port}${p}`;
  }

  serve(p: string, served: Served): string {
    this.files.set(p, served);
    return this.url(p);
  }

  count(p: string): number {
    return this.requests.filter((r) => r.path === p).length;
  }

  /** Resolves once `n` requests for `p` have arrived. */
  waitForRequests(p: string, n: number): Promise<void> {
    if (this.count(p) >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, path: p, resolve }));
  }

  /** Lets every held request go on. */
  release(): void {
    const held = this.held;
    this.held = [];
    for (const go of held) go();
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse, replay = false): void {
    const p = req.url ?? "/";
    if (replay) {
      this.answer(req, res, p, { kind: "ok" });
      return;
    }
    this.requests.push({
      path: p,
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(typeof req.headers["if-range"] === "string" ? { ifRange: req.headers["if-range"] } : {}),
    });
    for (const w of [...this.waiters]) {
      if (w.path === p && this.count(p) >= w.n) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }
    const served = this.files.get(p);
    if (!served) {
      res.writeHead(404).end();
      return;
    }
    const list = served.behaviours ?? [{ kind: "ok" }];
    const index = Math.min(this.count(p) - 1, list.length - 1);
    const b = list[index] ?? { kind: "ok" };
    if (b.kind === "hold") {
      this.held.push(() => this.handle(req, res, true));
      return;
    }
    this.answer(req, res, p, b);
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse, p: string, b: Behaviour): void {
    const served = this.files.get(p);
    if (!served) {
      res.writeHead(404).end();
      return;
    }
    const etag = `"${sha256(served.bytes).slice(0, 16)}"`;
    if (b.kind === "reset") {
      req.socket.destroy();
      return;
    }
    if (b.kind === "status") {
      res.writeHead(b.status, b.headers ?? {}).end();
      return;
    }
    if (b.kind === "chunked") {
      res.writeHead(200, { etag });
      res.end(served.bytes);
      return;
    }
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (range && req.headers["if-range"] === etag) start = Number(range[1]);
    const body = served.bytes.subarray(start);
    const headers: Record<string, string> = { etag, "content-length": String(body.length) };
    if (start > 0) {
      headers["content-range"] = `bytes ${start}-${served.bytes.length - 1}/${served.bytes.length}`;
      res.writeHead(206, headers);
    } else {
      res.writeHead(200, headers);
    }
    if (b.kind === "ok" || b.kind === "hold") {
      res.end(body);
      return;
    }
    // "cut": once these bytes are on their way, the connection breaks.
    res.write(body.subarray(0, b.afterBytes), () => {
      if (b.kind === "cut") setTimeout(() => res.socket?.destroy(), 20);
    });
    // "stall": nothing more until close() destroys the connection.
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------------------------
// A gateway under test with a stream of readings and request helpers

export const GW = "gw-test";
export const ROOT = `vigil/${GW}`;
/** 2024-01-01T00:00:00Z. */
export const T0 = Date.UTC(2024, 0, 1);

export interface Reply {
  transaction: string | null;
  status: "ok" | "error";
  data?: Record<string, unknown>;
  error?: string;
  code?: string;
}

export interface OtaEvent {
  transaction: string | null;
  name: string | null;
  version: string | null;
  stage: string;
  detail: string;
  data?: Record<string, unknown>;
}

/** Sends a request and waits for its answer (matched on the transaction). */
export async function request(
  col: Collector,
  pathName: string,
  body: object,
  timeoutMs = 15_000,
): Promise<Reply> {
  const transaction = (body as { transaction?: string }).transaction;
  const topic = `${ROOT}/response/${pathName}`;
  const before = col.on(topic).length;
  await col.publish(`${ROOT}/request/${pathName}`, body);
  const find = (): Reply | undefined =>
    col
      .on(topic)
      .slice(before)
      .map((m) => m.json<Reply>())
      .find((r) => r.transaction === (transaction ?? null));
  await col.waitFor(() => find() !== undefined, timeoutMs, `response to ${pathName} ${transaction ?? ""}`);
  return find() as Reply;
}

export function events(col: Collector, transaction?: string): OtaEvent[] {
  return col
    .on(`${ROOT}/models/events`)
    .map((m) => m.json<OtaEvent>())
    .filter((e) => transaction === undefined || e.transaction === transaction);
}

export function waitForEvent(
  col: Collector,
  stage: string,
  transaction?: string | null,
  timeoutMs = 15_000,
): Promise<OtaEvent> {
  const find = (): OtaEvent | undefined =>
    events(col).find(
      (e) => e.stage === stage && (transaction === undefined || e.transaction === transaction),
    );
  return col
    .waitFor(() => find() !== undefined, timeoutMs, `event ${stage} ${transaction ?? ""}`)
    .then(() => find() as OtaEvent);
}

export interface Prediction {
  modelVersion: string;
  windowEnd: number;
  windowStart: number;
  outputs: Record<string, number | null>;
  seq: number;
}

/**
 * One asset sending rows of s1, s2, s3 (one row per message, 1 s apart) to a count-window
 * model of size 5, hop 2; and the proof that every window got exactly one prediction.
 */
export class RowStream {
  rows = 0;

  constructor(
    private readonly col: Collector,
    readonly asset: string,
    private readonly startMs = T0,
  ) {}

  tsOf(i: number): number {
    return this.startMs + i * 1000;
  }

  /** s1 swings around its mean, so z-scores take both signs. */
  async send(n: number, rowsPerMessage = 1): Promise<void> {
    for (let k = 0; k < n; k += rowsPerMessage) {
      const batch = [];
      for (let j = 0; j < rowsPerMessage && k + j < n; j++) {
        const i = this.rows++;
        batch.push({ ts: this.tsOf(i), values: { s1: 100 + 8 * Math.sin(i), s2: 20 + Math.cos(i), s3: 5 } });
      }
      await this.col.publish(`plant/${this.asset}/row`, batch.length === 1 ? (batch[0] as object) : batch);
    }
  }

  /** Sends rows until `until` settles (at least `min`), then `after` more. */
  async during<T>(until: Promise<T>, min = 2, after = 4, rowsPerMessage = 1): Promise<T> {
    let settled = false;
    const watched = until.finally(() => {
      settled = true;
    });
    let sent = 0;
    while (!settled || sent < min) {
      await this.send(rowsPerMessage, rowsPerMessage);
      sent += rowsPerMessage;
      if (!settled) await new Promise<void>((r) => setImmediate(r));
    }
    const value = await watched;
    await this.send(after, rowsPerMessage);
    return value;
  }

  /** Window ends a count window (5, hop 2) emits over the rows sent. */
  expectedWindowEnds(): number[] {
    const out: number[] = [];
    for (let last = 4; last < this.rows; last += 2) out.push(this.tsOf(last));
    return out;
  }

  predictions(): Prediction[] {
    return this.col.on(`${ROOT}/predictions/${this.asset}`).map((m) => m.json<Prediction>());
  }

  /** Waits for every window's prediction; returns them in window order, and asserts no gap, no double. */
  async allWindows(timeoutMs = 15_000): Promise<Prediction[]> {
    const expected = this.expectedWindowEnds();
    await this.col.waitForCount(`${ROOT}/predictions/${this.asset}`, expected.length, timeoutMs);
    const got = this.predictions();
    const ends = got.map((p) => p.windowEnd).sort((a, b) => a - b);
    if (JSON.stringify(ends) !== JSON.stringify(expected)) {
      throw new Error(
        `windows of ${this.asset}: expected ends ${JSON.stringify(expected.map((e) => (e - this.startMs) / 1000))}, got ${JSON.stringify(ends.map((e) => (e - this.startMs) / 1000))}`,
      );
    }
    return [...got].sort((a, b) => a.windowEnd - b.windowEnd);
  }
}

export interface OtaGateway {
  running: RunningGateway;
  col: Collector;
  stream: RowStream;
  close(): Promise<void>;
}

/**
 * A gateway (optionally on another inference backend; on its embedded broker, or on the one
 * `mqtt.url` names when the embedded broker is off) with a collector on its status,
 * predictions, answers and model events, online, and an asset "m1" that has sent 6 rows.
 */
export async function startOtaGateway(config: VigilConfig, backend?: InferenceBackend): Promise<OtaGateway> {
  let running: RunningGateway;
  if (backend || !config.mqtt.embeddedBroker.enabled) {
    const gateway = new Gateway(config, silentLogger(), backend ? { backend } : {});
    await gateway.start();
    running = {
      gateway,
      config,
      brokerUrl: gateway.brokerUrl() ?? config.mqtt.url,
      stop: () => gateway.stop(),
    };
  } else {
    running = await startGateway(config);
  }
  const col = await Collector.connect(running.brokerUrl, [
    `${ROOT}/status`,
    `${ROOT}/predictions/+`,
    `${ROOT}/response/#`,
    `${ROOT}/models/events`,
  ]);
  await col.waitFor((ms) => ms.some((m) => m.topic === `${ROOT}/status` && m.json().state === "online"));
  const stream = new RowStream(col, "m1");
  await stream.send(6);
  return {
    running,
    col,
    stream,
    close: async () => {
      await col.close();
      await running.stop();
    },
  };
}

/**
 * A pipeline without MQTT (readings fed with `handleReadings`): limits off, an in-memory
 * store, committed records to `publish`. For swap tests and the OTA benchmark.
 */
export function standalonePipeline(
  models: readonly LoadedModel[],
  publish: (records: readonly StoredRecord[]) => void,
): Pipeline {
  return new Pipeline(
    {
      gatewayId: "t",
      ownTopicRoot: "vigil/t",
      subscriptions: [{ topic: "p/{asset}/{signal}", format: "json", qos: 0 }],
      limits: {
        maxPayloadBytes: 1e6,
        maxBatchItems: 1e6,
        maxAssets: 0,
        maxSignalsPerAsset: 0,
        maxReadingsPerSecond: 0,
        maxReadingsPerSecondPerAsset: 0,
        maxFutureMs: 0,
      },
      window: { allowedLatenessMs: 0, maxCatchUpWindows: 1000, maxPendingRows: 64 },
      bindings: [],
      maxBatch: 64,
      maxQueuedWindows: 1e7,
      rejectLogIntervalMs: 60_000,
    },
    models,
    new MemoryStore(),
    { publish },
    systemClock,
    silentLogger(),
  );
}

/** Signing keys, a package server and a gateway trusting the keys, serving `BASE` (config overrides on top). */
export async function startOtaSetup(
  overrides: Record<string, unknown> = {},
): Promise<{ keys: KeyPairFiles; server: PackageServer; gw: OtaGateway; close(): Promise<void> }> {
  const keys = makeKeys();
  const server = new PackageServer();
  await server.start();
  const gw = await startOtaGateway(
    testConfig({ "models.dir": modelsDir([BASE]), "models.trustedKeys": [keys.pubFile], ...overrides }),
  );
  return {
    keys,
    server,
    gw,
    close: async () => {
      await gw.close();
      await server.close();
    },
  };
}
