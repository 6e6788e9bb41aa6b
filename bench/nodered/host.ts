/**
 * Node-RED, embedded the documented way (`RED.init(server, settings)`, `RED.start()`), in a
 * process of its own (a child of bench/run.ts), running the flow of `flow.ts` against the
 * bench's broker. The editor and admin API are off (a production-like runtime); the flow's
 * function nodes get onnxruntime-node, better-sqlite3 and `crypto.randomUUID` through
 * `functionGlobalContext`, and shared counters (payloads seen, predictions stored) the bench
 * reads. Node-RED is installed in bench/nodered/node_modules (`npm ci --prefix bench/nodered`).
 * Methods (bench/lib/rpc.ts): start, stats, runStart, runStop, stop.
 */

import { randomUUID } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import ort from "onnxruntime-node";
import { BENCH_SRC } from "../lib/paths.js";
import { RunMeter, memory, serve, type RunMeasure } from "../lib/rpc.js";
import { buildFlow } from "./flow.js";

interface NodeRed {
  init(server: http.Server, settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  version(): string;
}

/** Node-RED lives in its own install, bench/nodered/node_modules. */
const requireNodeRed = createRequire(path.join(BENCH_SRC, "nodered", "package.json"));
const counters = { payloads: 0, predictions: 0 };
const meter = new RunMeter();
let red: NodeRed | undefined;
let dir = "";

serve({
  async start(arg: { brokerUrl: string; modelDir: string }): Promise<{ version: string; startMs: number }> {
    const started = performance.now();
    red = requireNodeRed("node-red") as NodeRed;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-bench-nodered-"));
    const manifest = JSON.parse(
      fs.readFileSync(path.join(arg.modelDir, "manifest.json"), "utf8"),
    ) as Parameters<typeof buildFlow>[0];
    fs.writeFileSync(
      path.join(dir, "flows.json"),
      JSON.stringify(buildFlow(manifest, arg.brokerUrl), null, 2),
    );
    red.init(http.createServer(), {
      userDir: dir,
      flowFile: "flows.json",
      credentialSecret: false,
      httpAdminRoot: false,
      httpNodeRoot: false,
      disableEditor: true,
      telemetry: { enabled: false },
      diagnostics: { enabled: false },
      logging: { console: { level: "warn", metrics: false, audit: false } },
      functionExternalModules: false,
      functionGlobalContext: {
        ort,
        Database,
        randomUUID,
        counters,
        modelPath: path.join(arg.modelDir, "model.onnx"),
        dbFile: path.join(dir, "store.db"),
      },
    });
    await red.start();
    return { version: red.version(), startMs: performance.now() - started };
  },
  stats(): { payloads: number; predictions: number; rssBytes: number; peakRssBytes: number } {
    return { ...counters, ...memory() };
  },
  runStart(): void {
    meter.start();
  },
  runStop(): RunMeasure {
    return meter.stop();
  },
  async stop(): Promise<void> {
    await red?.stop();
    red = undefined;
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  },
  async shutdown(): Promise<void> {
    await red?.stop().catch(() => undefined);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  },
});
