/**
 * The pure parts of cloud sync: destination config parsing, backoff and Retry-After, the
 * bandwidth cap, schedule windows (cron, time as data) and prediction thinning.
 */

import { describe, expect, it } from "vitest";
import type { OutboxRecord } from "../../src/store/types.js";
import { backoffDelayMs, nextSendAtMs, parseRetryAfter } from "../../src/sync/backoff.js";
import { destinationIssues, parseDestinations } from "../../src/sync/config.js";
import { PredictionThinner, httpBody, idempotencyKey, recordJson } from "../../src/sync/records.js";
import { SyncSchedule } from "../../src/sync/schedule.js";

describe("sync.destinations parsing", () => {
  it("fills defaults and names a destination after its type, host and path", () => {
    const [http, mqtt] = parseDestinations([
      { type: "http", url: "https://user:pw@cloud.example/v1/records/?x=1", token: "t" },
      { type: "mqtt", url: "mqtts://broker.example:8883", topicPrefix: "fleet/site-3" },
    ]);
    expect(http).toMatchObject({
      type: "http",
      name: "http:cloud.example/v1/records",
      gzip: true,
      token: "t",
      batchMaxRecords: 500,
      batchMaxBytes: 1_048_576,
      backoff: { minDelayMs: 1_000, maxDelayMs: 300_000 },
      maxBytesPerSecond: 0,
      predictions: { every: 1, onChange: false },
      schedule: undefined,
    });
    expect(mqtt).toMatchObject({
      type: "mqtt",
      name: "mqtt:broker.example:8883",
      topicPrefix: "fleet/site-3",
      maxInFlight: 64,
    });
  });

  it("reports every problem of every entry, with its index", () => {
    const issues = destinationIssues([
      { type: "http", url: "ftp://x", gzip: "yes", batchMaxRecords: 0, colour: "red" },
      { type: "mqtt", url: "mqtt://b", topicPrefix: "a/#", schedule: { windows: ["61 * * * *"] } },
      { type: "kafka", url: "x" },
      { type: "http", url: "http://a/b", minDelayMs: 10, maxDelayMs: 5, tls: { certFile: "c.pem" } },
      { type: "http", url: "http://a/b" },
    ]);
    expect(issues).toEqual(
      expect.arrayContaining([
        "[0].colour is not a known field of a http destination",
        '[0].url uses the unsupported scheme "ftp:" (use http://, https://)',
        "[0].batchMaxRecords must be an integer >= 1",
        "[0].gzip must be true or false",
        expect.stringMatching(/^\[1\]\.schedule\.windows: "61 \* \* \* \*": /),
        "[1].topicPrefix must be a topic without + or # and without a leading or trailing /",
        '[2].type must be "http" or "mqtt"',
        "[3].minDelayMs must not exceed maxDelayMs",
        "[3].tls.certFile and tls.keyFile go together (mutual TLS needs both)",
        'two destinations are named "http:a/b": give them distinct `name`s',
      ]),
    );
    expect(() => parseDestinations([{ type: "kafka" }])).toThrow(/\[0\]\.type/);
  });
});

describe("backoff", () => {
  const spec = { minDelayMs: 100, maxDelayMs: 1_000 };
  it("doubles from the minimum up to the maximum, with equal jitter", () => {
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffDelayMs(a, spec, () => 1))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    expect([0, 1, 2, 3, 4].map((a) => backoffDelayMs(a, spec, () => 0))).toEqual([50, 100, 200, 400, 500]);
  });
  it("reads Retry-After as seconds or an HTTP date", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("7", now)).toBe(7_000);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter("Wed, 31 Dec 2025 00:00:30 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
  it("spaces sends so the average stays under the byte rate", () => {
    expect(nextSendAtMs(0, 1_000, 500, 0)).toBe(1_000);
    expect(nextSendAtMs(0, 1_000, 500, 1_000)).toBe(1_500);
    expect(nextSendAtMs(1_500, 1_200, 1_000, 1_000)).toBe(2_500);
  });
});

describe("schedule windows", () => {
  it("is open in the minutes a window matches, in its time zone", () => {
    const s = new SyncSchedule(["* 1-4 * * *"], "UTC");
    expect(s.isOpen(Date.parse("2026-03-01T00:59:59Z"))).toBe(false);
    expect(s.isOpen(Date.parse("2026-03-01T01:00:00Z"))).toBe(true);
    expect(s.isOpen(Date.parse("2026-03-01T04:59:30Z"))).toBe(true);
    expect(s.isOpen(Date.parse("2026-03-01T05:00:00Z"))).toBe(false);
    const berlin = new SyncSchedule(["* 1-4 * * *"], "Europe/Berlin");
    expect(berlin.isOpen(Date.parse("2026-03-01T00:30:00Z"))).toBe(true); // 01:30 in Berlin
    expect(new SyncSchedule().isOpen(0)).toBe(true);
    expect(s.msUntilNextCheck(Date.parse("2026-03-01T01:00:45Z"))).toBe(15_000);
  });
});

function pred(
  seq: number,
  asset: string,
  rul: number,
  kind: OutboxRecord["kind"] = "prediction",
): OutboxRecord {
  return {
    seq,
    id: `id-${seq}`,
    kind,
    asset,
    tsMs: seq,
    createdMs: 0,
    dataJson: JSON.stringify({ model: "m", outputs: { rul } }),
  };
}

describe("records on the wire and thinning", () => {
  it("renders contract §7 records without re-serialising the body", () => {
    const r = pred(3, "pump-1", 42);
    expect(JSON.parse(recordJson(r))).toEqual({
      id: "id-3",
      seq: 3,
      kind: "prediction",
      ts: 3,
      asset: "pump-1",
      data: { model: "m", outputs: { rul: 42 } },
    });
    expect(JSON.parse(httpBody("gw", [recordJson(r)]))).toMatchObject({
      gatewayId: "gw",
      records: [{ seq: 3 }],
    });
    expect(idempotencyKey("gw", [r])).toBe(idempotencyKey("gw", [{ ...r }]));
    expect(idempotencyKey("gw", [r])).not.toBe(idempotencyKey("gw", [pred(4, "pump-1", 1)]));
  });
  it("keeps every Nth prediction per asset, and every alert", () => {
    const t = new PredictionThinner({ every: 2, onChange: false, minDelta: 0 });
    const kept = [
      pred(1, "a", 1),
      pred(2, "b", 1),
      pred(3, "a", 1),
      pred(4, "a", 1, "alert"),
      pred(5, "a", 1),
      pred(6, "b", 1),
    ].filter((r) => t.keep(r));
    expect(kept.map((r) => r.seq)).toEqual([1, 2, 4, 5]);
  });
  it("on change: only predictions whose outputs moved by more than minDelta", () => {
    const t = new PredictionThinner({ every: 1, onChange: true, minDelta: 0.5 });
    const kept = [10, 10.2, 10.4, 11, 11.3, 9].map((v, i) => pred(i + 1, "a", v)).filter((r) => t.keep(r));
    expect(kept.map((r) => r.seq)).toEqual([1, 4, 6]);
  });
});
