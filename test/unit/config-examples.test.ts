import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";

const root = path.resolve(import.meta.dirname, "../..");

describe("shipped configuration files", () => {
  it("config/default.json is valid and runs the embedded broker on loopback", () => {
    const c = loadConfig({ file: path.join(root, "config/default.json"), env: {} });
    expect(c.mqtt.embeddedBroker).toMatchObject({ enabled: true, host: "127.0.0.1" });
    expect(c.http.host).toBe("127.0.0.1");
  });

  it("config/production.example.yaml is valid except for the secret files this machine lacks", () => {
    let issues: readonly { key: string }[] = [];
    try {
      loadConfig({ file: path.join(root, "config/production.example.yaml"), env: {} });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      issues = (err as ConfigError).issues;
    }
    expect(issues.map((i) => i.key).sort()).toEqual(["mqtt.passwordFile", "sync.destinations[0].tokenFile"]);
  });
});
