/**
 * Loads and validates the configuration.
 *
 * Contract: `loadConfig` returns a fully validated `VigilConfig` or throws one `ConfigError`
 * carrying every problem found (not only the first), each with the key path it concerns:
 * file parse errors, unknown keys, bad formats, unreadable secret files and cross-field rules
 * (a non-loopback embedded broker or HTTP API without credentials, invalid topic templates).
 * Precedence, lowest first: schema defaults, the file, `VIGIL_*` environment variables.
 */

import fs from "node:fs";
import path from "node:path";
import convict from "convict";
import YAML from "yaml";
import { ConfigError, errorMessage } from "../errors.js";
import { isLoopback } from "../system/net.js";
import { compileTemplate } from "../ingest/topics.js";
import { destinationIssues } from "../sync/config.js";
import { GATEWAY_ID_PATTERN, schema, schemaWithEnv, walkLeaves } from "./schema.js";
import type { VigilConfig } from "./types.js";
import { brokerUrlProblem } from "../system/endpoint-url.js";

export interface ConfigIssue {
  key: string;
  message: string;
}

export interface LoadOptions {
  /** JSON or YAML file; omitted: defaults and environment only. */
  file?: string;
  /** Environment to read `VIGIL_*` overrides from; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Values applied after the file and before validation (used by `vigil demo`). */
  overrides?: Record<string, unknown>;
}

let formatsAdded = false;

function fail(message: string): never {
  throw new Error(message);
}

function parseJsonIfString(value: unknown): unknown {
  if (typeof value !== "string") return value;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function addFormats(): void {
  if (formatsAdded) return;
  formatsAdded = true;
  convict.addFormats({
    "gateway-id": {
      validate(v: unknown) {
        if (typeof v !== "string" || !GATEWAY_ID_PATTERN.test(v))
          fail("must match [A-Za-z0-9_.-]+ (letters, digits, _ . -)");
      },
    },
    "non-empty-string": {
      validate(v: unknown) {
        if (typeof v !== "string" || v.trim() === "") fail("must be a non-empty string");
      },
    },
    "topic-level": {
      validate(v: unknown) {
        if (typeof v !== "string" || v === "" || /[+#/]/.test(v) || v.includes("\0"))
          fail("must be one non-empty topic level without / + #");
      },
    },
    "positive-int": {
      validate(v: unknown) {
        if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) fail("must be a positive integer");
      },
      coerce: (v: unknown) => (typeof v === "string" && v.trim() !== "" ? Number(v) : v),
    },
    "positive-number": {
      validate(v: unknown) {
        if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) fail("must be a positive number");
      },
      coerce: (v: unknown) => (typeof v === "string" && v.trim() !== "" ? Number(v) : v),
    },
    "mqtt-url": {
      validate(v: unknown) {
        if (typeof v !== "string") fail("must be a URL string");
        const problem = brokerUrlProblem(v);
        if (problem) fail(problem);
      },
    },
    "string-array": {
      validate(v: unknown) {
        if (!Array.isArray(v) || v.some((s) => typeof s !== "string" || s === ""))
          fail("must be a list of non-empty strings");
      },
      coerce: parseJsonIfString,
    },
    subscriptions: {
      validate(v: unknown) {
        if (!Array.isArray(v) || v.length === 0) fail("must be a non-empty list of {topic, format, qos}");
        v.forEach((s: unknown, i) => {
          if (!isPlainObject(s)) fail(`[${i}] must be an object {topic, format, qos}`);
          for (const k of Object.keys(s))
            if (!["topic", "format", "qos"].includes(k)) fail(`[${i}].${k} is not a known field`);
          if (typeof s.topic !== "string" || s.topic === "") fail(`[${i}].topic must be a non-empty string`);
          if (s.format !== undefined && s.format !== "json" && s.format !== "number")
            fail(`[${i}].format must be "json" or "number"`);
          if (s.qos !== undefined && s.qos !== 0 && s.qos !== 1) fail(`[${i}].qos must be 0 or 1`);
          try {
            compileTemplate(s.topic);
          } catch (err) {
            fail(`[${i}].topic: ${errorMessage(err)}`);
          }
        });
      },
      coerce: parseJsonIfString,
    },
    bindings: {
      validate(v: unknown) {
        if (!Array.isArray(v)) fail('must be a list of {"assets": glob, "models": [names]}');
        v.forEach((b: unknown, i) => {
          if (!isPlainObject(b)) fail(`[${i}] must be an object {assets, models}`);
          if (typeof b.assets !== "string" || b.assets === "") fail(`[${i}].assets must be a non-empty glob`);
          if (!Array.isArray(b.models) || b.models.some((m) => typeof m !== "string" || m === ""))
            fail(`[${i}].models must be a list of model names`);
        });
      },
      coerce: parseJsonIfString,
    },
    workers: {
      validate(v: unknown) {
        if (v !== "auto" && !(typeof v === "number" && Number.isInteger(v) && v >= 0))
          fail('must be "auto" or an integer >= 0');
      },
      coerce: (v: unknown) => (typeof v === "string" && /^\d+$/.test(v.trim()) ? Number(v) : v),
    },
    providers: {
      validate(v: unknown) {
        if (v === "auto") return;
        const known = ["cpu", "webgpu", "cuda", "tensorrt", "coreml", "dml"];
        if (!Array.isArray(v) || v.length === 0) fail('must be "auto" or a non-empty list of providers');
        for (const p of v) if (!known.includes(p as string)) fail(`unknown provider ${JSON.stringify(p)}`);
      },
      coerce: (v: unknown) => (v === "auto" ? v : parseJsonIfString(v)),
    },
    destinations: {
      validate(v: unknown) {
        const issues = destinationIssues(v);
        if (issues.length > 0) fail(issues.join("; "));
      },
      coerce: parseJsonIfString,
    },
  });
  convict.addParser([
    { extension: "json", parse: (text: string) => JSON.parse(text) as unknown },
    { extension: ["yml", "yaml"], parse: (text: string) => YAML.parse(text) as unknown },
  ]);
}

/** Turn convict's joined error text into one issue per line, each with its key path. */
export function parseConvictErrors(text: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const undeclared = /^configuration param '([^']+)' not declared in the schema/.exec(line);
    if (undeclared) {
      issues.push({ key: undeclared[1] ?? "?", message: "unknown key (not in the schema)" });
      continue;
    }
    const missing = /^configuration param '([^']+)' missing from config/.exec(line);
    if (missing) {
      issues.push({ key: missing[1] ?? "?", message: "missing (was its parent replaced by a non-object?)" });
      continue;
    }
    const keyed = /^([A-Za-z0-9_.]+): (.*)$/.exec(line);
    if (keyed) issues.push({ key: keyed[1] ?? "?", message: keyed[2] ?? "" });
    else issues.push({ key: "(config)", message: line });
  }
  return issues;
}

function readSecret(file: string, key: string, issues: ConfigIssue[]): string | undefined {
  if (file === "") return undefined;
  try {
    return fs.readFileSync(file, "utf8").replace(/\r?\n$/, "");
  } catch (err) {
    issues.push({ key, message: `cannot read secret file: ${errorMessage(err)}` });
    return undefined;
  }
}

function readConfigFile(file: string, issues: ConfigIssue[]): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    issues.push({ key: "(file)", message: `cannot read ${file}: ${errorMessage(err)}` });
    return undefined;
  }
  try {
    const ext = path.extname(file).toLowerCase();
    const parsed: unknown = ext === ".yml" || ext === ".yaml" ? YAML.parse(text) : JSON.parse(text);
    if (!isPlainObject(parsed)) {
      issues.push({ key: "(file)", message: `${file} must hold an object at the top level` });
      return undefined;
    }
    return parsed;
  } catch (err) {
    issues.push({
      key: "(file)",
      message: `${file} is not valid ${path.extname(file) || "JSON"}: ${errorMessage(err)}`,
    });
    return undefined;
  }
}

/** Applies `{ "a.b": v }` dotted overrides onto a nested object. */
function applyOverrides(target: Record<string, unknown>, overrides: Record<string, unknown>): void {
  for (const [dotted, value] of Object.entries(overrides)) {
    const parts = dotted.split(".");
    let node: Record<string, unknown> = target;
    for (const part of parts.slice(0, -1)) {
      const next = node[part];
      if (!isPlainObject(next)) node[part] = {};
      node = node[part] as Record<string, unknown>;
    }
    node[parts[parts.length - 1] ?? dotted] = value;
  }
}

/** Keys whose default is a list must be given as lists (convict would drop an object silently). */
function checkListKeys(values: Record<string, unknown>): ConfigIssue[] {
  const found: ConfigIssue[] = [];
  walkLeaves(schema, (key, leaf) => {
    if (!Array.isArray(leaf.default)) return;
    let node: unknown = values;
    for (const part of key.split(".")) {
      if (!isPlainObject(node) || !Object.hasOwn(node, part)) return;
      node = node[part];
    }
    if (!Array.isArray(node)) found.push({ key, message: `must be a list, got ${JSON.stringify(node)}` });
  });
  return found;
}

/** Load, validate and return the configuration, or throw a ConfigError with every issue. */
export function loadConfig(options: LoadOptions = {}): VigilConfig {
  addFormats();
  const issues: ConfigIssue[] = [];
  const conf = convict(schemaWithEnv() as convict.Schema<VigilConfig>, {
    env: options.env ?? process.env,
    args: [],
  });
  const fromFile = options.file === undefined ? {} : readConfigFile(options.file, issues);
  if (fromFile === undefined) throw new ConfigError(issues);
  const layered: Record<string, unknown> = structuredClone(fromFile);
  if (options.overrides) applyOverrides(layered, options.overrides);
  issues.push(...checkListKeys(layered));
  try {
    conf.load(layered);
  } catch (err) {
    issues.push({ key: "(file)", message: errorMessage(err) });
    throw new ConfigError(issues);
  }
  try {
    conf.validate({ allowed: "strict" });
  } catch (err) {
    issues.push(...parseConvictErrors(errorMessage(err)));
  }
  const config = conf.getProperties() as VigilConfig;
  crossCheck(config, issues);
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}

/** Rules that relate keys to each other, and reading secrets from files. Runs on values that
 * may have failed validation, so it checks types before relying on them. */
function crossCheck(config: VigilConfig, issues: ConfigIssue[]): void {
  const str = (v: unknown): string => (typeof v === "string" ? v : "");
  const mqtt = isPlainObject(config.mqtt) ? config.mqtt : undefined;
  const eb = mqtt && isPlainObject(mqtt.embeddedBroker) ? mqtt.embeddedBroker : undefined;
  const http = isPlainObject(config.http) ? config.http : undefined;

  if (mqtt) {
    const password = readSecret(str(mqtt.passwordFile), "mqtt.passwordFile", issues);
    if (password !== undefined) mqtt.password = password;
  }
  if (eb) {
    const password = readSecret(str(eb.passwordFile), "mqtt.embeddedBroker.passwordFile", issues);
    if (password !== undefined) eb.password = password;
  }
  if (http) {
    const token = readSecret(str(http.tokenFile), "http.tokenFile", issues);
    if (token !== undefined) http.token = token;
  }
  const destinations =
    isPlainObject(config.sync) && Array.isArray(config.sync.destinations) ? config.sync.destinations : [];
  destinations.forEach((d: unknown, i) => {
    if (isPlainObject(d) && d.type === "http" && typeof d.tokenFile === "string") {
      const token = readSecret(d.tokenFile, `sync.destinations[${i}].tokenFile`, issues);
      if (token !== undefined) d.token = token;
    }
    if (isPlainObject(d) && d.type === "mqtt" && typeof d.passwordFile === "string") {
      const password = readSecret(d.passwordFile, `sync.destinations[${i}].passwordFile`, issues);
      if (password !== undefined) d.password = password;
    }
  });

  if (
    eb?.enabled === true &&
    typeof eb.host === "string" &&
    !isLoopback(eb.host) &&
    (str(eb.username) === "" || str(eb.password) === "")
  ) {
    issues.push({
      key: "mqtt.embeddedBroker.username",
      message: `the embedded broker binds ${eb.host}, which is not loopback: set mqtt.embeddedBroker.username and password (or passwordFile)`,
    });
  }
  if (
    http?.enabled === true &&
    typeof http.host === "string" &&
    !isLoopback(http.host) &&
    str(http.token) === ""
  ) {
    issues.push({
      key: "http.token",
      message: `the local API binds ${http.host}, which is not loopback: set http.token (or http.tokenFile)`,
    });
  }
  const reconnect = mqtt && isPlainObject(mqtt.reconnect) ? mqtt.reconnect : undefined;
  if (
    reconnect &&
    typeof reconnect.minDelayMs === "number" &&
    typeof reconnect.maxDelayMs === "number" &&
    reconnect.minDelayMs > reconnect.maxDelayMs
  ) {
    issues.push({ key: "mqtt.reconnect.minDelayMs", message: "must not exceed mqtt.reconnect.maxDelayMs" });
  }
  const subs =
    isPlainObject(config.ingest) && Array.isArray(config.ingest.subscriptions)
      ? config.ingest.subscriptions
      : [];
  for (const sub of subs as unknown[]) {
    if (!isPlainObject(sub)) continue;
    sub.format ??= "json";
    sub.qos ??= 0;
  }
}
