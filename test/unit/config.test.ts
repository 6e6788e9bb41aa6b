/**
 * Configuration loading (CONTRACT §2): defaults, JSON and YAML files, `VIGIL_*` overrides,
 * every problem reported at once with its key path, secrets from files, the schema's own
 * completeness, and secrets kept out of log lines. Every call passes an explicit `env`.
 */

import fs from "node:fs";
import path from "node:path";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { envName, schema, schemaWithEnv, walkLeaves, GATEWAY_ID_PATTERN } from "../../src/config/schema.js";
import type { VigilConfig } from "../../src/config/types.js";
import { ConfigError } from "../../src/errors.js";
import { createLogger } from "../../src/system/logger.js";
import { tempDir } from "../support/harness.js";

function writeFile(name: string, text: string): string {
  const file = path.join(tempDir("vigil-config-"), name);
  fs.writeFileSync(file, text);
  return file;
}

const writeJson = (body: unknown): string => writeFile("vigil.json", JSON.stringify(body, null, 2));

/** Runs `fn`, expecting a ConfigError; returns it. */
function configError(fn: () => unknown): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, "expected a ConfigError").toBeInstanceOf(ConfigError);
  const e = caught as ConfigError;
  expect(e.code).toBe("CONFIG_INVALID");
  return e;
}

const issueKeys = (e: ConfigError): string[] => e.issues.map((i) => i.key);

describe("loadConfig: defaults", () => {
  it("the defaults alone are valid and match the contract", () => {
    const c = loadConfig({ env: {} });
    expect(c.gatewayId).toMatch(GATEWAY_ID_PATTERN);
    expect(c.mqtt.baseTopic).toBe("vigil");
    expect(c.mqtt.url).toMatch(/^mqtts?:\/\//);
    expect(c.mqtt.embeddedBroker.host).toBe("127.0.0.1");
    expect(c.http.host).toBe("127.0.0.1");
    expect(c.http.port).toBe(8080);
    expect(c.models.dir).toBe("models");
    expect(c.models.requireSignature).toBe(true);
    expect(c.models.trustedKeys).toEqual([]);
    expect(c.sync.destinations).toEqual([]);
    expect(c.ingest.subscriptions.length).toBeGreaterThan(0);
    for (const s of c.ingest.subscriptions) {
      expect(s.topic).toContain("{asset}");
      expect(["json", "number"]).toContain(s.format);
    }
  });

  it("each call returns its own copy (mutating one config does not leak into the next)", () => {
    const a = loadConfig({ env: {} });
    a.ingest.subscriptions.push({ topic: "x/{asset}/y", format: "json", qos: 0 });
    a.models.trustedKeys.push("k.pem");
    const b = loadConfig({ env: {} });
    expect(b.ingest.subscriptions).toHaveLength(1);
    expect(b.models.trustedKeys).toEqual([]);
  });
});

describe("loadConfig: files", () => {
  it("loads a JSON file", () => {
    const file = writeJson({
      gatewayId: "gw-json",
      mqtt: { url: "mqtts://broker.plant:8883", baseTopic: "acme" },
      ingest: { subscriptions: [{ topic: "plant/{asset}/{signal}", format: "number" }] },
      models: { trustedKeys: ["/etc/vigil/ops.pem"] },
      http: { port: 9090 },
    });
    const c = loadConfig({ file, env: {} });
    expect(c.gatewayId).toBe("gw-json");
    expect(c.mqtt.url).toBe("mqtts://broker.plant:8883");
    expect(c.mqtt.baseTopic).toBe("acme");
    expect(c.ingest.subscriptions).toEqual([{ topic: "plant/{asset}/{signal}", format: "number", qos: 0 }]);
    expect(c.models.trustedKeys).toEqual(["/etc/vigil/ops.pem"]);
    expect(c.http.port).toBe(9090);
    // Keys the file leaves out keep their defaults.
    expect(c.http.host).toBe("127.0.0.1");
    expect(c.mqtt.keepaliveS).toBe(loadConfig({ env: {} }).mqtt.keepaliveS);
  });

  it.each(["vigil.yaml", "vigil.yml"])("loads a YAML file (%s)", (name) => {
    const file = writeFile(
      name,
      [
        "# a comment",
        "gatewayId: gw-yaml",
        "mqtt:",
        "  url: mqtt://10.0.0.5:1883",
        "  reconnect:",
        "    minDelayMs: 500",
        "ingest:",
        "  subscriptions:",
        "    - topic: lines/{asset}/row",
        "      qos: 1",
        "sync:",
        "  destinations:",
        "    - type: http",
        "      url: https://cloud.example/ingest",
        "      gzip: true",
        "",
      ].join("\n"),
    );
    const c = loadConfig({ file, env: {} });
    expect(c.gatewayId).toBe("gw-yaml");
    expect(c.mqtt.url).toBe("mqtt://10.0.0.5:1883");
    expect(c.mqtt.reconnect.minDelayMs).toBe(500);
    expect(c.ingest.subscriptions).toEqual([{ topic: "lines/{asset}/row", format: "json", qos: 1 }]);
    expect(c.sync.destinations).toEqual([{ type: "http", url: "https://cloud.example/ingest", gzip: true }]);
  });

  it("a file that cannot be read is one issue naming the file", () => {
    const missing = path.join(tempDir("vigil-config-"), "nope.json");
    const e = configError(() => loadConfig({ file: missing, env: {} }));
    expect(e.issues).toHaveLength(1);
    expect(e.issues[0]?.message).toContain(missing);
    expect(e.message).toContain(missing);
  });

  it("a folder given as the file is an issue naming it", () => {
    const dir = tempDir("vigil-config-");
    const e = configError(() => loadConfig({ file: dir, env: {} }));
    expect(e.issues.map((i) => i.message).join("\n")).toContain(dir);
  });

  it("invalid JSON is an issue naming the file", () => {
    const file = writeFile("broken.json", '{ "mqtt": { "url": "mqtt://x:1883", } ');
    const e = configError(() => loadConfig({ file, env: {} }));
    expect(e.issues).toHaveLength(1);
    expect(e.issues[0]?.message).toContain(file);
  });

  it("invalid YAML is an issue naming the file", () => {
    const file = writeFile("broken.yaml", "mqtt:\n  url: [unclosed\n");
    const e = configError(() => loadConfig({ file, env: {} }));
    expect(e.issues[0]?.message).toContain(file);
  });

  it("a file whose top level is not an object is an issue naming the file", () => {
    const file = writeFile("list.json", "[1, 2]");
    const e = configError(() => loadConfig({ file, env: {} }));
    expect(e.issues[0]?.message).toContain(file);
  });
});

describe("loadConfig: environment overrides", () => {
  it("VIGIL_* variables win over the file, with strings coerced and lists as JSON", () => {
    const file = writeJson({
      mqtt: { url: "mqtt://from-file:1883", embeddedBroker: { port: 1000 } },
      ingest: { subscriptions: [{ topic: "file/{asset}/{signal}" }] },
      http: { port: 9000 },
    });
    const c = loadConfig({
      file,
      env: {
        VIGIL_MQTT_URL: "mqtt://from-env:1884",
        VIGIL_MQTT_EMBEDDEDBROKER_PORT: "2883",
        VIGIL_INGEST_SUBSCRIPTIONS: JSON.stringify([{ topic: "env/{asset}/row", qos: 1 }]),
        VIGIL_HTTP_ENABLED: "false",
        VIGIL_MODELS_TRUSTEDKEYS: JSON.stringify(["/keys/a.pem", "/keys/b.pem"]),
      },
    });
    expect(c.mqtt.url).toBe("mqtt://from-env:1884");
    expect(c.mqtt.embeddedBroker.port).toBe(2883);
    expect(c.ingest.subscriptions).toEqual([{ topic: "env/{asset}/row", format: "json", qos: 1 }]);
    expect(c.http.enabled).toBe(false);
    expect(c.models.trustedKeys).toEqual(["/keys/a.pem", "/keys/b.pem"]);
    // Keys without a variable keep the file's value.
    expect(c.http.port).toBe(9000);
  });

  it("variables not starting with VIGIL_ and unrelated ones are ignored", () => {
    const c = loadConfig({ env: { MQTT_URL: "mqtt://nope:1", HOME: "/root", VIGIL: "x" } });
    expect(c.mqtt.url).toBe(loadConfig({ env: {} }).mqtt.url);
  });

  it("an invalid variable is an issue on its key", () => {
    const e = configError(() =>
      loadConfig({ env: { VIGIL_MQTT_EMBEDDEDBROKER_PORT: "not-a-port", VIGIL_MQTT_URL: "ftp://x" } }),
    );
    expect(issueKeys(e)).toEqual(expect.arrayContaining(["mqtt.embeddedBroker.port", "mqtt.url"]));
  });

  it("a list variable that is not JSON is an issue on its key, not a crash", () => {
    const e = configError(() =>
      loadConfig({ env: { VIGIL_INGEST_SUBSCRIPTIONS: "plant/{asset}/{signal}" } }),
    );
    expect(issueKeys(e)).toContain("ingest.subscriptions");
  });
});

describe("loadConfig: every problem at once", () => {
  it("a file with many problems throws ONE ConfigError whose issues name every key path", () => {
    const file = writeJson({
      unknownTopLevel: true,
      log: { level: "loud" },
      mqtt: {
        url: "http://broker:1883",
        keepaliveS: "thirty",
        embeddedBroker: { enabled: true, host: "0.0.0.0" },
        tls: { notAKey: 1 },
      },
      ingest: { subscriptions: [{ topic: "plant/#/{asset}" }] },
      http: { host: "0.0.0.0" },
    });
    const e = configError(() => loadConfig({ file, env: {} }));
    const keys = issueKeys(e);
    expect(keys).toEqual(
      expect.arrayContaining([
        "unknownTopLevel",
        "mqtt.tls.notAKey",
        "log.level",
        "mqtt.url",
        "mqtt.keepaliveS",
        "ingest.subscriptions",
      ]),
    );
    // Cross-field rules name the keys that must be set.
    expect(keys.some((k) => k.startsWith("mqtt.embeddedBroker."))).toBe(true);
    expect(keys.some((k) => k.startsWith("http.token"))).toBe(true);
    expect(e.issues.length).toBeGreaterThanOrEqual(8);
    for (const issue of e.issues) expect(issue.message.length).toBeGreaterThan(0);
    // The message lists every issue with its key, for `vigil check-config`.
    for (const k of keys) expect(e.message).toContain(k);
    expect(e.issues.find((i) => i.key === "ingest.subscriptions")?.message).toContain("plant/#/{asset}");
  });

  it.each([
    [
      "the embedded broker on a non-loopback address with credentials",
      { mqtt: { embeddedBroker: { enabled: true, host: "0.0.0.0", username: "u", password: "p" } } },
    ],
    ["the HTTP API on a non-loopback address with a token", { http: { host: "0.0.0.0", token: "t" } }],
    [
      "loopback spelled as localhost and ::1",
      { mqtt: { embeddedBroker: { enabled: true, host: "localhost" } }, http: { host: "::1" } },
    ],
    ["a disabled HTTP API on any address", { http: { enabled: false, host: "0.0.0.0" } }],
  ])("accepts %s", (_what, body) => {
    expect(() => loadConfig({ file: writeJson(body), env: {} })).not.toThrow();
  });

  it.each([
    ["ingest.subscriptions", "a string", { ingest: { subscriptions: "plant/{asset}/{signal}" } }],
    ["ingest.subscriptions", "a number", { ingest: { subscriptions: 5 } }],
    [
      "ingest.subscriptions",
      "an object instead of a list",
      { ingest: { subscriptions: { topic: "a/{asset}/row" } } },
    ],
    [
      "sync.destinations",
      "an object instead of a list",
      { sync: { destinations: { type: "http", url: "https://c.example/in" } } },
    ],
    [
      "models.trustedKeys",
      "an object instead of a list",
      { models: { trustedKeys: { ops: "/keys/ops.pem" } } },
    ],
    ["mqtt", "a string where a section belongs", { mqtt: "mqtt://broker:1883" }],
    ["mqtt.embeddedBroker.host", "a number", { mqtt: { embeddedBroker: { enabled: true, host: 5 } } }],
  ])(
    "a wrongly shaped %s (%s) is a ConfigError on that key, never a crash or silently dropped",
    (key, _what, body) => {
      const e = configError(() => loadConfig({ file: writeJson(body), env: {} }));
      expect(issueKeys(e).some((k) => k === key || k.startsWith(`${key}.`) || k.startsWith(`${key}[`))).toBe(
        true,
      );
    },
  );
});

describe("loadConfig: secrets from files", () => {
  it("reads every *File secret, trimming one trailing newline", () => {
    const dir = tempDir("vigil-secrets-");
    const put = (name: string, text: string): string => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, text);
      return f;
    };
    const file = writeJson({
      mqtt: {
        password: "inline-loses",
        passwordFile: put("mqtt", "plant-secret\n"),
        embeddedBroker: {
          enabled: true,
          host: "0.0.0.0",
          username: "sensors",
          passwordFile: put("eb", "broker-secret\r\n"),
        },
      },
      http: { host: "0.0.0.0", tokenFile: put("http", "api-token") },
      sync: {
        destinations: [{ type: "http", url: "https://c.example/in", tokenFile: put("sync", "sync-token\n") }],
      },
    });
    const c = loadConfig({ file, env: {} });
    expect(c.mqtt.password).toBe("plant-secret");
    expect(c.mqtt.embeddedBroker.password).toBe("broker-secret");
    expect(c.http.token).toBe("api-token");
    const dest = c.sync.destinations[0];
    expect(dest?.type === "http" ? dest.token : undefined).toBe("sync-token");
  });

  it("keeps inner whitespace and only one trailing newline", () => {
    const secretFile = path.join(tempDir("vigil-secrets-"), "pw");
    fs.writeFileSync(secretFile, " a b \n");
    const c = loadConfig({ env: { VIGIL_MQTT_PASSWORDFILE: secretFile } });
    expect(c.mqtt.password).toBe(" a b ");
  });

  it("a missing secret file is an issue on its key (all of them, at once)", () => {
    const dir = tempDir("vigil-secrets-");
    const file = writeJson({
      mqtt: { passwordFile: path.join(dir, "no-mqtt") },
      http: { tokenFile: path.join(dir, "no-http") },
      sync: {
        destinations: [{ type: "http", url: "https://c.example/in", tokenFile: path.join(dir, "no-sync") }],
      },
    });
    const e = configError(() => loadConfig({ file, env: {} }));
    expect(issueKeys(e)).toEqual(
      expect.arrayContaining(["mqtt.passwordFile", "http.tokenFile", "sync.destinations[0].tokenFile"]),
    );
    expect(e.issues.find((i) => i.key === "mqtt.passwordFile")?.message).toContain("no-mqtt");
  });

  it("a secret file satisfies the non-loopback credential rules", () => {
    const dir = tempDir("vigil-secrets-");
    fs.writeFileSync(path.join(dir, "eb"), "pw\n");
    fs.writeFileSync(path.join(dir, "tok"), "tok\n");
    const c = loadConfig({
      env: {
        VIGIL_MQTT_EMBEDDEDBROKER_ENABLED: "true",
        VIGIL_MQTT_EMBEDDEDBROKER_HOST: "0.0.0.0",
        VIGIL_MQTT_EMBEDDEDBROKER_USERNAME: "u",
        VIGIL_MQTT_EMBEDDEDBROKER_PASSWORDFILE: path.join(dir, "eb"),
        VIGIL_HTTP_HOST: "0.0.0.0",
        VIGIL_HTTP_TOKENFILE: path.join(dir, "tok"),
      },
    });
    expect(c.mqtt.embeddedBroker.password).toBe("pw");
    expect(c.http.token).toBe("tok");
  });
});

describe("configuration schema", () => {
  it("every leaf has a doc, a format, a default and an environment variable", () => {
    const seen: string[] = [];
    walkLeaves(schema, (p, leaf) => {
      seen.push(p);
      expect(typeof leaf.doc, p).toBe("string");
      expect(leaf.doc.trim().length, `${p} doc`).toBeGreaterThan(10);
      expect(leaf.format, `${p} format`).toBeDefined();
      expect(Object.prototype.hasOwnProperty.call(leaf, "default"), `${p} default`).toBe(true);
      expect(leaf.default, `${p} default`).not.toBeUndefined();
    });
    expect(seen.length).toBeGreaterThan(50);

    const envs = new Map<string, string>();
    walkLeaves(schemaWithEnv(), (p, leaf) => {
      expect(leaf.env, `${p} env`).toBe(envName(p));
      expect(leaf.env).toMatch(/^VIGIL_[A-Z0-9_]+$/);
      expect(envs.has(leaf.env ?? ""), `${p}: env ${leaf.env} also used by ${envs.get(leaf.env ?? "")}`).toBe(
        false,
      );
      envs.set(leaf.env ?? "", p);
    });
    expect([...envs.values()]).toEqual(seen);
  });

  it("the contract's keys exist", () => {
    const paths: string[] = [];
    walkLeaves(schema, (p) => paths.push(p));
    expect(paths).toEqual(
      expect.arrayContaining([
        "gatewayId",
        "dataDir",
        "mqtt.url",
        "mqtt.username",
        "mqtt.password",
        "mqtt.baseTopic",
        "mqtt.embeddedBroker.enabled",
        "mqtt.embeddedBroker.host",
        "mqtt.embeddedBroker.port",
        "ingest.subscriptions",
        "models.dir",
        "models.trustedKeys",
        "models.requireSignature",
        "sync.destinations",
        "http.host",
        "http.port",
      ]),
    );
  });

  it("every secret is marked sensitive and has a *File companion", () => {
    const leaves = new Map<string, { sensitive?: boolean }>();
    walkLeaves(schema, (p, leaf) => leaves.set(p, leaf));
    const secrets = [...leaves.keys()].filter((p) => /(password|token)$/i.test(p));
    expect(secrets.length).toBeGreaterThanOrEqual(3);
    for (const p of secrets) {
      expect(leaves.get(p)?.sensitive, `${p} sensitive`).toBe(true);
      expect(leaves.has(`${p}File`), `${p}File`).toBe(true);
    }
  });
});

describe("secrets never reach a log line", () => {
  function capture(format: "json" | "pretty"): { log: ReturnType<typeof createLogger>; text: () => string } {
    const chunks: string[] = [];
    const destination = new PassThrough();
    destination.on("data", (b: Buffer) => chunks.push(b.toString()));
    const log = createLogger({ level: "info", format, destination });
    return { log, text: () => chunks.join("") };
  }

  const SECRETS = ["S3cr3t-plant", "S3cr3t-broker", "S3cr3t-api", "S3cr3t-sync"];

  function configWithSecrets(): VigilConfig {
    return loadConfig({
      env: {},
      overrides: {
        "mqtt.password": SECRETS[0],
        "mqtt.embeddedBroker.password": SECRETS[1],
        "http.token": SECRETS[2],
        "sync.destinations": [{ type: "http", url: "https://c.example/in", token: SECRETS[3] }],
      },
    });
  }

  const expectNoSecret = (text: string): void => {
    for (const s of SECRETS) expect(text).not.toContain(s);
  };

  it.each(["json", "pretty"] as const)(
    "redacts password and token fields at the usual places (%s)",
    (format) => {
      const { log, text } = capture(format);
      log.info({ password: SECRETS[0], token: SECRETS[2] }, "top level");
      log.child({ module: "mqtt" }).info({ mqtt: { password: SECRETS[0] } }, "one level down");
      log.info({ broker: { auth: { password: SECRETS[1], token: SECRETS[2] } } }, "two levels down");
      log.info({ headers: { authorization: `Bearer ${SECRETS[2]}` } }, "header");
      const out = text();
      expect(out).toContain("two levels down");
      expect(out).toContain("[redacted]");
      expectNoSecret(out);
    },
  );

  it("redacts every secret of a whole config logged as the object", () => {
    const { log, text } = capture("json");
    log.info(configWithSecrets(), "effective configuration");
    const out = text();
    expect(out).toContain("effective configuration");
    expectNoSecret(out);
    // Redaction replaces values only; the rest of the config is still there.
    const line = JSON.parse(out.trim().split("\n")[0] ?? "{}") as { mqtt?: { password?: string } };
    expect(line.mqtt?.password).toBe("[redacted]");
  });

  it("redacts every secret of a whole config logged under a key", () => {
    const { log, text } = capture("json");
    log.info({ config: configWithSecrets() }, "effective configuration");
    expectNoSecret(text());
  });

  it("redacts tokens inside lists of destinations", () => {
    const { log, text } = capture("json");
    log.info({ destinations: configWithSecrets().sync.destinations }, "destinations");
    expectNoSecret(text());
  });
});
