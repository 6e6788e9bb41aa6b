/**
 * The local HTTP API (contract §8) of a real gateway: embedded broker and API on free ports,
 * real ONNX Runtime on a fixture model, SQLite in a temp folder. Requests use the global fetch.
 */

import fs from "node:fs";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  Collector,
  modelsDir,
  startGateway,
  tempDir,
  testConfig,
  type RunningGateway,
} from "../support/harness.js";

const GW = "gw-test";
const STATUS_TOPIC = `vigil/${GW}/status`;

function baseUrl(running: RunningGateway): string {
  const a = running.gateway.apiAddress();
  if (!a) throw new Error("the gateway serves no API");
  return `http://${a.host}:${a.port}`;
}

/** Resolves once the gateway has published its retained `online` status, i.e. it is connected. */
async function waitOnline(running: RunningGateway): Promise<Collector> {
  const c = await Collector.connect(running.brokerUrl, [STATUS_TOPIC, `vigil/${GW}/predictions/#`]);
  await c.waitFor(
    (ms) => ms.some((m) => m.topic === STATUS_TOPIC && m.json<{ state: string }>().state === "online"),
    10_000,
    "online status",
  );
  return c;
}

interface StatusBody {
  gatewayId: string;
  models: { name: string; version: string; state: string; provider?: string }[];
  store: { depth: Record<string, number> };
  counters: { payloads: number; readingsAccepted: number; windows: { emitted: number } };
  [key: string]: unknown;
}

describe("local API with a model serving", () => {
  let running: RunningGateway;
  let collector: Collector;
  let url: string;

  beforeAll(async () => {
    running = await startGateway(testConfig({ "models.dir": modelsDir(["count-ntc-zscore"]) }));
    url = baseUrl(running);
    collector = await waitOnline(running);
  });

  afterAll(async () => {
    await collector?.close();
    await running?.stop();
  });

  it("binds loopback on a free port when http.port is 0", () => {
    const a = running.gateway.apiAddress();
    expect(a?.host).toBe("127.0.0.1");
    expect(a?.port).toBeGreaterThan(0);
  });

  it("GET /healthz → 200", async () => {
    const res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/application\/json/);
    await res.body?.cancel();
  });

  it("GET /readyz → 200 once connected with a model serving", async () => {
    const res = await fetch(`${url}/readyz`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { ready: boolean; reasons: string[] };
    expect(body).toEqual({ ready: true, reasons: [] });
  });

  it("GET /api/status: gatewayId, models with version, state and provider, store depth per kind, counters", async () => {
    // Five complete rows make one count window (size 5) of the fixture model: one prediction.
    const t0 = Date.UTC(2026, 0, 1);
    for (let i = 0; i < 5; i++) {
      await collector.publish("plant/pump-1/row", {
        ts: t0 + i * 1000,
        values: { s1: 100 + i, s2: 20, s3: 5 },
      });
    }
    await collector.waitForCount(`vigil/${GW}/predictions/pump-1`, 1);

    const res = await fetch(`${url}/api/status`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/application\/json/);
    const s = (await res.json()) as StatusBody;
    expect(s.gatewayId).toBe(GW);
    expect(s.models).toEqual([
      expect.objectContaining({
        name: "count-ntc-zscore",
        version: "1.0.0",
        state: "serving",
        provider: expect.any(String) as unknown,
      }),
    ]);
    expect(s.models[0]?.provider).not.toBe("");
    expect(s.store.depth).toEqual({ prediction: 1, alert: 0, event: 0 });
    expect(s.counters.payloads).toBe(5);
    expect(s.counters.readingsAccepted).toBe(15);
    expect(s.counters.windows.emitted).toBe(1);
  });

  it("unknown path → 404", async () => {
    for (const p of ["/nope", "/api", "/api/status/extra", "/healthz/x"]) {
      const res = await fetch(`${url}${p}`);
      expect(res.status, p).toBe(404);
      await res.body?.cancel();
    }
  });

  it("a query string does not change the route", async () => {
    const res = await fetch(`${url}/healthz?verbose=1`);
    expect(res.status).toBe(200);
    await res.body?.cancel();
  });

  it("POST, PUT, DELETE → 405", async () => {
    for (const method of ["POST", "PUT", "DELETE"]) {
      for (const p of ["/healthz", "/api/status"]) {
        const res = await fetch(`${url}${p}`, { method, body: method === "DELETE" ? null : "{}" });
        expect(res.status, `${method} ${p}`).toBe(405);
        await res.body?.cancel();
      }
    }
  });
});

describe("local API without a serving model", () => {
  let running: RunningGateway | undefined;

  afterEach(async () => {
    await running?.stop();
    running = undefined;
  });

  it("GET /readyz → 503 with the reason; /healthz stays 200; status lists no models", async () => {
    running = await startGateway(testConfig({ "models.dir": tempDir("vigil-empty-models-") }));
    const url = baseUrl(running);
    const collector = await waitOnline(running);
    await collector.close();

    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(503);
    const body = (await ready.json()) as { ready: boolean; reasons: string[] };
    expect(body.ready).toBe(false);
    expect(body.reasons).toEqual([expect.stringMatching(/model/i)]);

    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    await health.body?.cancel();

    const status = (await (await fetch(`${url}/api/status`)).json()) as StatusBody;
    expect(status.models).toEqual([]);
  });

  it("lists a rejected package in /api/status as failed, and is not ready", async () => {
    const dir = modelsDir(["count-ntc-zscore"]);
    fs.writeFileSync(path.join(dir, "count-ntc-zscore", "model.onnx"), "not an onnx file");
    running = await startGateway(testConfig({ "models.dir": dir }));
    const url = baseUrl(running);
    const status = (await (await fetch(`${url}/api/status`)).json()) as StatusBody;
    expect(status.models).toEqual([
      expect.objectContaining({ name: "count-ntc-zscore", version: "1.0.0", state: "failed" }),
    ]);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(503);
    const body = (await ready.json()) as { reasons: string[] };
    expect(body.reasons).toContainEqual(expect.stringMatching(/model/i));
  });
});

describe("local API with http.token", () => {
  let running: RunningGateway;
  let url: string;
  const token = "t0ken-for-tests";

  beforeAll(async () => {
    running = await startGateway(
      testConfig({ "models.dir": modelsDir(["count-ntc-zscore"]), "http.token": token }),
    );
    url = baseUrl(running);
  });

  afterAll(async () => {
    await running?.stop();
  });

  it("no bearer, a wrong one or another scheme → 401 on every route", async () => {
    const cases: (Record<string, string> | undefined)[] = [
      undefined,
      { authorization: "Bearer wrong" },
      { authorization: `Bearer ${token}x` },
      { authorization: `Bearer ${token.slice(0, -1)}` },
      { authorization: `Basic ${Buffer.from(`u:${token}`).toString("base64")}` },
      { authorization: token },
    ];
    for (const headers of cases) {
      for (const p of ["/healthz", "/readyz", "/api/status", "/nope"]) {
        const res = await fetch(`${url}${p}`, headers ? { headers } : {});
        expect(res.status, `${p} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
        const text = await res.text();
        expect(text).not.toContain(token);
      }
    }
  });

  it("the right bearer → 200", async () => {
    const headers = { authorization: `Bearer ${token}` };
    const health = await fetch(`${url}/healthz`, { headers });
    expect(health.status).toBe(200);
    await health.body?.cancel();
    const status = await fetch(`${url}/api/status`, { headers });
    expect(status.status).toBe(200);
    const body = (await status.json()) as StatusBody;
    expect(body.gatewayId).toBe(GW);
    expect(JSON.stringify(body)).not.toContain(token);
  });
});
