/** Status derivations (data-loss ledger, sync lag) and the `vigil status` summary, all pure. */

import type { WorkerStatus } from "../../src/sync/worker.js";
import { describe, expect, it } from "vitest";
import { dataLossLedger, syncView, type StatusView } from "../../src/api/status-view.js";
import { safeUrl } from "../../src/system/net.js";
import type { PipelineStats } from "../../src/pipeline/pipeline.js";
import { newRunnerCounters, type RunnerCounters } from "../../src/pipeline/runner.js";
import { newWindowStats } from "../../src/window/types.js";
import { apiBaseUrl, formatStatus } from "../../src/tools/status.js";

function runner(over: Partial<RunnerCounters> = {}): RunnerCounters & { queued: number } {
  return { ...newRunnerCounters(), queued: 0, ...over };
}

function stats(models: PipelineStats["models"], gap = 0): PipelineStats {
  const windows = newWindowStats();
  windows.skipped.gap = gap;
  return {
    payloads: 0,
    readingsAccepted: 0,
    rejected: {},
    windows,
    rows: newWindowStats(),
    assets: 0,
    models,
    backpressure: { pauses: 0, pausedMs: 0, backlogWindows: 0 },
  };
}

describe("dataLossLedger", () => {
  it("is all zeros before anything ran", () => {
    expect(dataLossLedger(undefined)).toEqual({
      total: 0,
      causes: {
        windows_dropped_overload: 0,
        windows_lost_inference_error: 0,
        windows_lost_store_error: 0,
        windows_skipped_gap: 0,
      },
    });
  });

  it("sums every model's losses by cause", () => {
    const l = dataLossLedger(
      stats(
        {
          "a@1": runner({ overload: 3, windowsLostInference: 8, inferenceErrors: 1 }),
          "b@1": runner({ overload: 1, windowsLostStore: 4, storeErrors: 2 }),
        },
        5,
      ),
    );
    expect(l.causes).toEqual({
      windows_dropped_overload: 4,
      windows_lost_inference_error: 8,
      windows_lost_store_error: 4,
      windows_skipped_gap: 5,
    });
    expect(l.total).toBe(21);
  });

  it("adds the store's ledger as <reason>_<kind>", () => {
    const l = dataLossLedger(undefined, [
      { reason: "evicted", kind: "prediction", count: 7 },
      { reason: "dead_lettered", kind: "alert", count: 1 },
    ]);
    expect(l.causes).toMatchObject({ evicted_prediction: 7, dead_lettered_alert: 1 });
    expect(l.total).toBe(8);
  });
});

describe("syncView", () => {
  const worker: WorkerStatus = {
    name: "http:cloud.example/ingest",
    type: "http",
    url: "https://cloud.example/ingest",
    state: "idle",
    link: "up",
    cursor: 40,
    pending: 12,
    consecutiveFailures: 0,
    lastError: null,
    lastSuccessMs: 50_000,
    nextAttemptMs: null,
    windowOpen: true,
    counters: {
      batches: 3,
      records: 40,
      wireBytes: 9_000,
      failures: 1,
      deadLettered: 2,
      thinned: 0,
      splits: 1,
    },
  };
  it("reports the worker's status with the records still waiting and the age of the oldest", () => {
    const asked: number[] = [];
    const v = syncView(
      [worker],
      (cursor) => {
        asked.push(cursor);
        return 1_000;
      },
      61_000,
    );
    expect(asked).toEqual([40]);
    expect(v[0]).toMatchObject({
      type: "http",
      url: "https://cloud.example/ingest",
      state: "idle",
      link: "up",
      lagRecords: 12,
      lagSeconds: 60,
      outcomes: { delivered: 40, batches: 3, failures: 1, deadLettered: 2, thinned: 0 },
    });
    expect(safeUrl("https://user:pw@cloud.example/x")).toBe("https://cloud.example/x");
    expect(safeUrl("not a url")).toBe("(invalid url)");
  });
  it("nothing waiting means no lag, and the store is not asked", () => {
    const v = syncView(
      [{ ...worker, pending: 0 }],
      () => {
        throw new Error("must not be called");
      },
      5,
    );
    expect(v[0]?.lagSeconds).toBe(0);
  });
});

describe("vigil status summary", () => {
  const status: StatusView = {
    state: "online",
    gatewayId: "gw-7",
    version: "0.1.0",
    startedAt: "2026-01-01T00:00:00.000Z",
    ts: 1_767_229_200_000,
    host: "pi-7",
    uptimeS: 3_725,
    logLevel: "info",
    ready: { ok: false, reasons: ["not connected to the broker"] },
    health: { ok: true, reasons: [] },
    broker: { connected: false, connects: 3, embedded: null },
    models: [
      { name: "pump-health", version: "1.2.0", state: "serving", provider: "cpu" },
      { name: "bad", version: "0.1.0", state: "failed", error: "hash mismatch" },
    ],
    store: {
      file: "/var/lib/vigil/vigil.db",
      depth: { prediction: 12_345, alert: 6, event: 0 },
      fileBytes: 3 * 1024 * 1024,
      lastSeq: 12_351,
    },
    sync: {
      destinations: [
        { type: "http", url: "https://c/", state: "not-started", lagRecords: 12_351, lagSeconds: 90 },
      ],
    },
    alerts: [
      { model: "pump-health", asset: "pump-2", rule: "wear", severity: "warning", since: 1_767_229_100_000 },
      {
        model: "pump-health",
        asset: "pump-9",
        rule: "failure",
        severity: "critical",
        since: 1_767_229_140_000,
      },
    ],
    dataLoss: { total: 2, causes: { windows_dropped_overload: 2, windows_lost_store_error: 0 } },
    counters: {
      payloads: 5_000,
      readingsAccepted: 20_000,
      rejected: { not_json: 3, late: 0 },
      windows: newWindowStats(),
      rows: newWindowStats(),
      assets: 9,
      models: { "pump-health@1.2.0": runner({ predictions: 12_345 }) },
    },
  };

  it("says what matters, critical alerts first", () => {
    const text = formatStatus(status, status.ts);
    const lines = text.split("\n");
    expect(lines[0]).toBe("vigil 0.1.0 · gateway gw-7 on pi-7 · NOT READY (not connected to the broker)");
    expect(text).toContain("process   healthy, up 1h 2m, log level info");
    expect(text).toContain("broker    DISCONNECTED (3 connect(s))");
    expect(text).toContain("models    pump-health 1.2.0 serving on cpu");
    expect(text).toContain("bad 0.1.0 failed — hash mismatch");
    expect(text).toContain(
      "store     12,345 predictions, 6 alerts, 0 events held · 3.0 MiB on disk · last seq 12,351",
    );
    expect(text).toContain("sync      http https://c/ not-started, 12,351 record(s) waiting, oldest 1m 30s");
    expect(text).toContain("alerts    2 active");
    const critical = lines.findIndex((l) => l.includes("CRITICAL"));
    const warning = lines.findIndex((l) => l.includes("WARNING"));
    expect(critical).toBeGreaterThan(0);
    expect(warning).toBeGreaterThan(critical);
    expect(lines[critical]).toContain(
      "pump-9  failure (pump-health), since 2026-01-01T00:59:00.000Z (1m 0s ago)",
    );
    expect(text).toContain(
      "ingest    5,000 payloads, 20,000 readings accepted, 3 rejected (not_json 3); 9 asset(s)",
    );
    expect(text).toContain("windows   0 emitted, 0 skipped; 12,345 predictions");
    expect(text).toContain("data loss windows_dropped_overload 2");
  });

  it("a quiet, ready gateway", () => {
    const quiet: StatusView = {
      ...status,
      ready: { ok: true, reasons: [] },
      broker: { connected: true, connects: 1, embedded: "mqtt://127.0.0.1:1883" },
      alerts: [],
      sync: { destinations: [] },
      dataLoss: { total: 0, causes: { windows_dropped_overload: 0 } },
    };
    const text = formatStatus(quiet, quiet.ts);
    expect(text.split("\n")[0]).toMatch(/· READY$/);
    expect(text).toContain("alerts    none active");
    expect(text).toContain("sync      no destinations configured");
    expect(text).toContain("data loss none");
  });

  it("API base URL from http.host/port: wildcards mean loopback, IPv6 in brackets", () => {
    expect(apiBaseUrl("127.0.0.1", 8080)).toBe("http://127.0.0.1:8080");
    expect(apiBaseUrl("0.0.0.0", 9000)).toBe("http://127.0.0.1:9000");
    expect(apiBaseUrl("::", 9000)).toBe("http://127.0.0.1:9000");
    expect(apiBaseUrl("::1", 80)).toBe("http://[::1]:80");
  });
});
