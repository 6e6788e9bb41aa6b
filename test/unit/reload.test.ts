/** SIGHUP reload planning: which changed keys apply while running and which need a restart. */

import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { RELOADABLE_KEYS, planReload } from "../../src/system/reload.js";
import { schema, walkLeaves } from "../../src/config/schema.js";

const base = (overrides: Record<string, unknown> = {}) =>
  loadConfig({ env: {}, overrides: { gatewayId: "gw-1", ...overrides } });

describe("planReload", () => {
  it("the same configuration changes nothing", () => {
    expect(planReload(base(), base())).toEqual({ applied: [], restartNeeded: [] });
  });

  it("splits changed keys into applied and restart-needed, naming keys and never values", () => {
    const current = base({ "http.token": "old-secret" });
    const next = base({
      "log.level": "debug",
      "http.token": "new-secret",
      "outputs.statusIntervalMs": 5_000,
      "service.maxEventLoopDelayMs": 1_000,
      "mqtt.keepaliveS": 10,
      "ingest.maxAssets": 5,
    });
    const plan = planReload(current, next);
    expect(plan.applied.sort()).toEqual(
      ["http.token", "log.level", "outputs.statusIntervalMs", "service.maxEventLoopDelayMs"].sort(),
    );
    expect(plan.restartNeeded.sort()).toEqual(["ingest.maxAssets", "mqtt.keepaliveS"]);
    expect(JSON.stringify(plan)).not.toContain("secret");
  });

  it("list-valued keys compare by content", () => {
    const subs = [{ topic: "plant/{asset}/{signal}", format: "json", qos: 0 }];
    expect(
      planReload(base({ "ingest.subscriptions": subs }), base({ "ingest.subscriptions": subs })),
    ).toEqual({
      applied: [],
      restartNeeded: [],
    });
    expect(
      planReload(
        base({ "ingest.subscriptions": subs }),
        base({ "ingest.subscriptions": [{ ...subs[0], topic: "x/{asset}/{signal}" }] }),
      ).restartNeeded,
    ).toEqual(["ingest.subscriptions"]);
  });

  it("every reloadable key exists in the schema", () => {
    const keys: string[] = [];
    walkLeaves(schema, (path) => keys.push(path));
    for (const k of RELOADABLE_KEYS) expect(keys).toContain(k);
  });
});
