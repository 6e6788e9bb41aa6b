/**
 * `/metrics`, `/healthz`, the live feed (`/api/feed`, `/api/events`), the dashboard's static
 * files and `PUT /api/log-level` of a real gateway: embedded broker on port 0, real ONNX Runtime
 * on the count-ntc-zscore fixture (rul < 40 for two windows raises a warning), SQLite in a temp
 * folder. Every metric the issue lists is checked against `/api/status` of the same moment.
 */

import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/cli.js";
import {
  Collector,
  modelsDir,
  startGateway,
  testConfig,
  type RunningGateway,
  apiUrl,
} from "../support/harness.js";
import type { StatusView } from "../../src/api/status-view.js";
import type { FeedSnapshot, FeedUpdate } from "../../src/api/feed.js";

const GW = "gw-test";
const MODEL = "count-ntc-zscore@1.0.0";
const T0 = Date.UTC(2026, 0, 1);

/** Rows of the fixture's signals; s1 = 80 drives rul to about 35 (below the rule's 40). */
async function publishRows(
  c: Collector,
  asset: string,
  s1: readonly number[],
  startIndex = 0,
): Promise<void> {
  for (const [i, v] of s1.entries()) {
    await c.publish(`plant/${asset}/row`, {
      ts: T0 + (startIndex + i) * 1000,
      values: { s1: v, s2: 20, s3: 5 },
    });
  }
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format strictly: every line a comment, blank, or a sample. */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1] as string, type[2] as string);
      continue;
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+$/.test(line)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a Prometheus line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] as string] = l[2] as string;
    const value = Number(m[3]);
    // Go's ParseFloat (Prometheus) takes NaN in any case; prom-client writes "Nan".
    if (Number.isNaN(value) && (m[3] ?? "").toLowerCase() !== "nan") throw new Error(`bad value in ${line}`);
    samples.push({ name: m[1] as string, labels, value });
  }
  return { samples, types };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    ?.value;
}

/** Reads server-sent events from a fetch body. */
class EventReader {
  private buffer = "";
  private readonly decoder = new TextDecoder();
  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}

  async next(): Promise<{ event: string; data: unknown }> {
    for (;;) {
      const end = this.buffer.indexOf("\n\n");
      if (end >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event !== undefined && data !== undefined) return { event, data: JSON.parse(data) as unknown };
        continue;
      }
      const { value: chunk, done } = await this.reader.read();
      if (done) throw new Error("event stream ended");
      this.buffer += this.decoder.decode(chunk, { stream: true });
    }
  }

  /** The next event of this type (others are skipped). */
  async nextOf(event: string): Promise<unknown> {
    for (;;) {
      const e = await this.next();
      if (e.event === event) return e.data;
    }
  }
}

describe("metrics, health, live feed and dashboard files", () => {
  let running: RunningGateway;
  let collector: Collector;
  let url: string;

  beforeAll(async () => {
    running = await startGateway(testConfig({ "models.dir": modelsDir(["count-ntc-zscore"]) }));
    url = apiUrl(running);
    collector = await Collector.connect(running.brokerUrl, [`vigil/${GW}/#`]);
    await collector.waitFor((ms) => ms.some((m) => m.topic === `vigil/${GW}/status`), 10_000, "online");
    // pump-a: 7 low rows → windows at rows 5 and 7 → two predictions and a raised warning.
    // pump-b: 5 normal rows → one prediction. Then one payload that is not JSON.
    await publishRows(collector, "pump-a", [80, 80, 80, 80, 80, 80, 80]);
    await publishRows(collector, "pump-b", [100, 100, 100, 100, 100]);
    await collector.publish("plant/pump-b/row", "{not json");
    await collector.waitForCount(`vigil/${GW}/alerts/pump-a`, 1);
    await collector.waitForCount(`vigil/${GW}/predictions/`, 3);
    await running.gateway.settle();
  });

  afterAll(async () => {
    await collector?.close();
    await running?.stop();
  });

  it("GET /metrics: Prometheus text with every listed metric, agreeing with /api/status", async () => {
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const { samples, types } = parseMetrics(await res.text());
    const status = (await (await fetch(`${url}/api/status`)).json()) as StatusView;

    // readings by result, rejects by reason
    expect(value(samples, "vigil_readings_total", { result: "accepted" })).toBe(
      status.counters?.readingsAccepted,
    );
    expect(value(samples, "vigil_readings_total", { result: "accepted" })).toBe(36);
    expect(value(samples, "vigil_ingest_rejects_total", { reason: "not_json" })).toBe(1);
    expect(value(samples, "vigil_readings_total", { result: "rejected" })).toBe(1);
    expect(value(samples, "vigil_payloads_total")).toBe(13);
    // windows, predictions
    expect(value(samples, "vigil_windows_total")).toBe(3);
    expect(value(samples, "vigil_predictions_total", { model: MODEL })).toBe(3);
    // inference latency histogram and batch sizes
    expect(types.get("vigil_inference_duration_seconds")).toBe("histogram");
    expect(types.get("vigil_inference_batch_size")).toBe("histogram");
    const calls = value(samples, "vigil_inference_duration_seconds_count", { model: MODEL }) ?? 0;
    expect(calls).toBeGreaterThanOrEqual(1);
    expect(value(samples, "vigil_inference_batch_size_count", { model: MODEL })).toBe(calls);
    expect(value(samples, "vigil_inference_batch_size_sum", { model: MODEL })).toBe(3);
    expect(value(samples, "vigil_inference_duration_seconds_bucket", { model: MODEL, le: "+Inf" })).toBe(
      calls,
    );
    // provider
    expect(
      samples.find((s) => s.name === "vigil_model_info" && s.labels.model === "count-ntc-zscore")?.labels,
    ).toMatchObject({ version: "1.0.0", state: "serving", provider: status.models[0]?.provider });
    // every provider tried, with its outcome (the reasons are in the status)
    const attempts = samples.filter(
      (s) => s.name === "vigil_model_provider_attempt" && s.labels.model === "count-ntc-zscore",
    );
    expect(attempts.map((s) => `${s.labels.provider}:${s.labels.outcome}`)).toEqual(
      (status.models[0]?.providers ?? []).map((a) => `${a.provider}:${a.outcome}`),
    );
    expect(attempts.some((s) => s.labels.outcome === "selected")).toBe(true);
    expect(value(samples, "vigil_inference_worker_restarts_total")).toBe(0);
    // alerts by severity
    expect(value(samples, "vigil_alerts_total", { severity: "warning", state: "raised" })).toBe(1);
    expect(value(samples, "vigil_alerts_active", { severity: "warning" })).toBe(1);
    // store depth and bytes per kind
    expect(value(samples, "vigil_store_records", { kind: "prediction" })).toBe(
      status.store?.depth.prediction,
    );
    expect(value(samples, "vigil_store_records", { kind: "alert" })).toBe(1);
    expect(value(samples, "vigil_store_bytes", { kind: "prediction" })).toBe(status.store?.bytes?.prediction);
    expect(value(samples, "vigil_store_bytes", { kind: "prediction" }) ?? 0).toBeGreaterThan(100);
    expect(value(samples, "vigil_store_file_bytes") ?? 0).toBeGreaterThan(0);
    // data-loss ledger, one series per cause
    for (const cause of Object.keys(status.dataLoss.causes))
      expect(value(samples, "vigil_data_lost_total", { cause })).toBe(0);
    // readiness, broker, event loop and process
    expect(value(samples, "vigil_ready")).toBe(1);
    expect(value(samples, "vigil_healthy")).toBe(1);
    expect(value(samples, "vigil_broker_connected")).toBe(1);
    expect(value(samples, "vigil_publish_total", { result: "published" })).toBeGreaterThanOrEqual(3);
    expect(value(samples, "nodejs_eventloop_lag_p99_seconds")).toBeGreaterThanOrEqual(0);
    expect(value(samples, "process_resident_memory_bytes") ?? 0).toBeGreaterThan(0);
    expect(value(samples, "vigil_info", { gateway_id: GW })).toBe(1);
  });

  it("the Grafana dashboard in docs/ asks only for metrics that /metrics serves", async () => {
    const { samples } = parseMetrics(await (await fetch(`${url}/metrics`)).text());
    const served = new Set(samples.map((s) => s.name));
    const dashboard = fs.readFileSync(path.join(REPO_ROOT, "docs", "grafana-dashboard.json"), "utf8");
    const wanted = new Set(
      [...dashboard.matchAll(/\b((?:vigil|nodejs|process)_[a-z0-9_]+)/g)].map((m) => m[1] as string),
    );
    expect(wanted.size).toBeGreaterThan(20);
    // Sync series exist only with a destination (checked below); the rest must be served here.
    const missing = [...wanted].filter((m) => !served.has(m) && !m.startsWith("vigil_sync_"));
    expect(missing).toEqual([]);
  });

  it("sync lag and delivery outcomes appear per destination", async () => {
    const other = await startGateway(
      testConfig({
        "models.dir": modelsDir(["count-ntc-zscore"]),
        "sync.destinations": [{ type: "http", url: "https://user:pw@cloud.example/ingest" }],
      }),
    );
    try {
      const res = await fetch(`${apiUrl(other)}/metrics`);
      const { samples } = parseMetrics(await res.text());
      const destination = "https://cloud.example/ingest";
      expect(value(samples, "vigil_sync_lag_records", { destination })).toBe(0);
      expect(value(samples, "vigil_sync_lag_seconds", { destination })).toBe(0);
      expect(value(samples, "vigil_sync_records_total", { destination, outcome: "delivered" })).toBe(0);
      expect(samples.some((s) => JSON.stringify(s.labels).includes("pw@"))).toBe(false);
    } finally {
      await other.stop();
    }
  });

  it("GET /api/feed: every asset with its latest outputs and its recent trend", async () => {
    const feed = (await (await fetch(`${url}/api/feed`)).json()) as FeedSnapshot;
    expect(feed.assets.map((a) => a.asset)).toEqual(["pump-a", "pump-b"]);
    const a = feed.assets[0]?.series[0];
    expect(a).toMatchObject({ model: "count-ntc-zscore", modelVersion: "1.0.0", outputs: ["rul"] });
    expect(a?.points).toHaveLength(2);
    expect(a?.latest.outputs.rul).toBeLessThan(40);
    expect(feed.alertEvents).toEqual([
      expect.objectContaining({ asset: "pump-a", rule: "rul-low", severity: "warning", state: "raised" }),
    ]);
  });

  it("GET /api/events: a snapshot, then records as they are committed, then status", async () => {
    const controller = new AbortController();
    const res = await fetch(`${url}/api/events`, { signal: controller.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const events = new EventReader((res.body as ReadableStream<Uint8Array>).getReader());
    try {
      const snapshot = (await events.nextOf("snapshot")) as { status: StatusView; feed: FeedSnapshot };
      expect(snapshot.status.gatewayId).toBe(GW);
      expect(snapshot.status.alerts).toEqual([
        expect.objectContaining({ asset: "pump-a", rule: "rul-low", severity: "warning" }),
      ]);
      expect(snapshot.feed.assets.map((a) => a.asset)).toEqual(["pump-a", "pump-b"]);

      await publishRows(collector, "pump-c", [100, 100, 100, 100, 100]);
      const update = (await events.nextOf("records")) as FeedUpdate;
      expect(update.predictions).toEqual([
        expect.objectContaining({ asset: "pump-c", model: "count-ntc-zscore", modelVersion: "1.0.0" }),
      ]);
      const status = (await events.nextOf("status")) as StatusView;
      expect(status.counters?.assets).toBe(3);
    } finally {
      controller.abort();
    }
  });

  it("serves the dashboard page and its scripts with a strict CSP, ETags and no token needed", async () => {
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toContain('<script src="assets/uPlot.iife.min.js" defer></script>');
    for (const asset of ["app.js", "app.css", "uPlot.iife.min.js", "uPlot.min.css"]) {
      const res = await fetch(`${url}/assets/${asset}`);
      expect(res.status, asset).toBe(200);
      const etag = res.headers.get("etag") ?? "";
      expect((await res.arrayBuffer()).byteLength, asset).toBeGreaterThan(500);
      const again = await fetch(`${url}/assets/${asset}`, { headers: { "if-none-match": etag } });
      expect(again.status, asset).toBe(304);
    }
    expect((await fetch(`${url}/assets/nope.js`)).status).toBe(404);
    expect((await fetch(`${url}/assets/app.js`, { method: "POST" })).status).toBe(405);
  });

  it("PUT /api/log-level changes the level of every logger; a bad level is refused", async () => {
    const put = (body: string): Promise<Response> => fetch(`${url}/api/log-level`, { method: "PUT", body });
    const ok = await put(JSON.stringify({ level: "debug" }));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ level: "debug", previous: "silent" });
    expect(((await (await fetch(`${url}/api/status`)).json()) as StatusView).logLevel).toBe("debug");
    expect((await (await fetch(`${url}/api/log-level`)).json()) as unknown).toEqual({ level: "debug" });
    expect((await put(JSON.stringify({ level: "loud" }))).status).toBe(400);
    expect((await put("level=debug")).status).toBe(400);
    expect((await put(JSON.stringify({ level: "x".repeat(2000) }))).status).toBe(413);
    expect((await put(JSON.stringify({ level: "silent" }))).status).toBe(200);
  });
});

describe("liveness", () => {
  it("/healthz is 503 after the event loop was blocked longer than service.maxEventLoopDelayMs", async () => {
    const running = await startGateway(
      testConfig({ "models.dir": modelsDir(["count-ntc-zscore"]), "service.maxEventLoopDelayMs": 100 }),
    );
    try {
      const url = apiUrl(running);
      const until = performance.now() + 400;
      while (performance.now() < until) {
        // a handler that hogs the event loop
      }
      const res = await fetch(`${url}/healthz`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { status: string; reasons: string[] };
      expect(body.status).toBe("unhealthy");
      expect(body.reasons).toEqual([
        expect.stringMatching(/^event loop blocked for \d+ ms \(limit 100 ms\)$/),
      ]);
      expect(((await (await fetch(`${url}/api/status`)).json()) as StatusView).health.ok).toBe(false);
    } finally {
      await running.stop();
    }
  });

  it("/readyz says 'shutting down' while the gateway stops", async () => {
    const running = await startGateway(testConfig({ "models.dir": modelsDir(["count-ntc-zscore"]) }));
    const stopping = running.stop();
    expect(running.gateway.readiness().reasons).toContain("shutting down");
    await stopping;
  });
});

describe("token on the dashboard's data", () => {
  it("static files need none; data routes need the bearer or ?access_token=", async () => {
    const token = "dash-token-1";
    const running = await startGateway(
      testConfig({ "models.dir": modelsDir(["count-ntc-zscore"]), "http.token": token }),
    );
    try {
      const url = apiUrl(running);
      expect((await fetch(`${url}/`)).status).toBe(200);
      expect((await fetch(`${url}/assets/app.js`)).status).toBe(200);
      for (const p of ["/metrics", "/api/feed", "/api/events", "/api/log-level"]) {
        const res = await fetch(`${url}${p}`);
        expect(res.status, p).toBe(401);
        await res.body?.cancel();
      }
      expect((await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(
        200,
      );
      expect((await fetch(`${url}/api/feed?access_token=${token}`)).status).toBe(200);
      expect((await fetch(`${url}/api/feed?access_token=wrong`)).status).toBe(401);
      const controller = new AbortController();
      const stream = await fetch(`${url}/api/events?access_token=${token}`, { signal: controller.signal });
      expect(stream.status).toBe(200);
      controller.abort();

      // Rotation (what SIGHUP does with a new http.token): the old one stops working at once.
      running.gateway.applyReload({
        ...running.config,
        http: { ...running.config.http, token: "dash-token-2" },
      });
      expect((await fetch(`${url}/api/feed?access_token=${token}`)).status).toBe(401);
      expect((await fetch(`${url}/api/feed?access_token=dash-token-2`)).status).toBe(200);
    } finally {
      await running.stop();
    }
  });
});
