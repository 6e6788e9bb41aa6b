/** Status derivations (data-loss ledger, sync lag) and the `vigil status` summary, all pure. */

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
});

describe("syncView", () => {
  const usage = {
    byKind: {
      prediction: { records: 10, bytes: 1000 },
      alert: { records: 2, bytes: 200 },
      event: { records: 0, bytes: 0 },
    },
    oldestCreatedMs: 1_000,
  };
  it("every held record waits for every destination; credentials never appear", () => {
    const v = syncView([{ type: "http", url: "https://user:pw@cloud.example/ingest" }], usage, 61_000);
    expect(v).toEqual([
      {
        type: "http",
        url: "https://cloud.example/ingest",
        state: "not-started",
        lagRecords: 12,
        lagSeconds: 60,
        outcomes: { delivered: 0, retried: 0, rejected: 0 },
      },
    ]);
    expect(safeUrl("not a url")).toBe("(invalid url)");
  });
  it("an empty store has no lag", () => {
    const empty = { byKind: usage.byKind, oldestCreatedMs: null };
    expect(syncView([{ type: "mqtt", url: "mqtt://b:1883" }], empty, 5)[0]?.lagSeconds).toBe(0);
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
