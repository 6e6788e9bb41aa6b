/**
 * Cloud destinations (`sync.destinations`, contract §2 and §7): parsing and validation. Pure.
 *
 * Contract: `destinationIssues(list)` returns every problem of every entry (`[i].field: why`),
 * never only the first; `parseDestinations(list)` returns typed specs with every default
 * filled in, or throws with all issues. Unknown fields are refused, so a typo cannot silently
 * turn a feature off. A destination's `name` (default `<type>:<host><path>`) keys its cursor in
 * the store, so reordering the list never mixes up what was delivered where.
 */

import { validateWindow } from "./schedule.js";
import { BROKER_SCHEMES, HTTP_SCHEMES, endpointUrlProblem } from "../system/endpoint-url.js";

export interface BackoffSpec {
  minDelayMs: number;
  maxDelayMs: number;
}

export interface ScheduleSpec {
  /** Cron expressions (5 or 6 fields); sync runs in every minute (or second) one of them matches. */
  windows: string[];
  /** IANA time zone of the expressions; empty: the gateway's local time. */
  timezone: string;
  /** Alerts go out at once even while the window is closed. */
  alertsBypass: boolean;
}

export interface ThinSpec {
  /** Send every Nth prediction per asset and model (1: all). */
  every: number;
  /** Send a prediction only when an output moved by more than `minDelta` (or a label changed). */
  onChange: boolean;
  minDelta: number;
}

export interface TlsSpec {
  caFile: string;
  certFile: string;
  keyFile: string;
  rejectUnauthorized: boolean;
  servername: string;
}

interface CommonSpec {
  name: string;
  url: string;
  batchMaxRecords: number;
  batchMaxBytes: number;
  timeoutMs: number;
  backoff: BackoffSpec;
  schedule: ScheduleSpec | undefined;
  maxBytesPerSecond: number;
  predictions: ThinSpec;
  tls: TlsSpec;
}

export interface HttpDestinationSpec extends CommonSpec {
  type: "http";
  token: string;
  gzip: boolean;
}

export interface MqttDestinationSpec extends CommonSpec {
  type: "mqtt";
  topicPrefix: string;
  username: string;
  password: string;
  clientId: string;
  maxInFlight: number;
  keepaliveS: number;
}

export type DestinationSpec = HttpDestinationSpec | MqttDestinationSpec;

const COMMON_FIELDS = [
  "type",
  "name",
  "url",
  "batchMaxRecords",
  "batchMaxBytes",
  "timeoutMs",
  "minDelayMs",
  "maxDelayMs",
  "schedule",
  "maxBytesPerSecond",
  "predictions",
  "tls",
];
const HTTP_FIELDS = [...COMMON_FIELDS, "token", "tokenFile", "gzip"];
const MQTT_FIELDS = [
  ...COMMON_FIELDS,
  "topicPrefix",
  "username",
  "password",
  "passwordFile",
  "clientId",
  "maxInFlight",
  "keepaliveS",
];
const TLS_FIELDS = ["caFile", "certFile", "keyFile", "rejectUnauthorized", "servername"];

export const DESTINATION_DEFAULTS = {
  batchMaxRecords: 500,
  batchMaxBytes: 1_048_576, // 1 MiB of JSON before compression
  timeoutMs: 30_000,
  minDelayMs: 1_000,
  maxDelayMs: 300_000, // 5 minutes
  maxInFlight: 64,
  keepaliveS: 60,
  topicPrefix: "vigil",
} as const;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `type:host/path`, without credentials, query or a trailing slash. */
export function defaultDestinationName(type: string, url: string): string {
  try {
    const u = new URL(url);
    return `${type}:${u.host}${u.pathname.replace(/\/$/, "")}`;
  } catch {
    return `${type}:${url}`;
  }
}

class Reader {
  constructor(
    private readonly obj: Record<string, unknown>,
    private readonly at: string,
    readonly issues: string[],
  ) {}

  int(key: string, def: number, min: number): number {
    const v = this.obj[key];
    if (v === undefined) return def;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
      this.issues.push(`${this.at}.${key} must be an integer >= ${min}`);
      return def;
    }
    return v;
  }

  num(key: string, def: number, min: number): number {
    const v = this.obj[key];
    if (v === undefined) return def;
    if (typeof v !== "number" || !Number.isFinite(v) || v < min) {
      this.issues.push(`${this.at}.${key} must be a number >= ${min}`);
      return def;
    }
    return v;
  }

  str(key: string, def: string): string {
    const v = this.obj[key];
    if (v === undefined) return def;
    if (typeof v !== "string") {
      this.issues.push(`${this.at}.${key} must be a string`);
      return def;
    }
    return v;
  }

  bool(key: string, def: boolean): boolean {
    const v = this.obj[key];
    if (v === undefined) return def;
    if (typeof v !== "boolean") {
      this.issues.push(`${this.at}.${key} must be true or false`);
      return def;
    }
    return v;
  }

  object(key: string, fields: readonly string[]): Reader | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (!isObject(v)) {
      this.issues.push(`${this.at}.${key} must be an object`);
      return undefined;
    }
    for (const k of Object.keys(v))
      if (!fields.includes(k)) this.issues.push(`${this.at}.${key}.${k} is not a known field`);
    return new Reader(v, `${this.at}.${key}`, this.issues);
  }

  raw(key: string): unknown {
    return this.obj[key];
  }
}

function parseOne(d: unknown, i: number, issues: string[]): DestinationSpec | undefined {
  const at = `[${i}]`;
  if (!isObject(d)) {
    issues.push(`${at} must be an object`);
    return undefined;
  }
  if (d.type !== "http" && d.type !== "mqtt") {
    issues.push(`${at}.type must be "http" or "mqtt"`);
    return undefined;
  }
  const known = d.type === "http" ? HTTP_FIELDS : MQTT_FIELDS;
  for (const k of Object.keys(d))
    if (!known.includes(k)) issues.push(`${at}.${k} is not a known field of a ${d.type} destination`);
  const r = new Reader(d, at, issues);
  const url = typeof d.url === "string" ? d.url : "";
  if (typeof d.url !== "string") issues.push(`${at}.url must be a URL string`);
  else {
    const problem = endpointUrlProblem(d.url, d.type === "http" ? HTTP_SCHEMES : BROKER_SCHEMES);
    if (problem) issues.push(`${at}.url ${problem}`);
  }
  const backoff = {
    minDelayMs: r.int("minDelayMs", DESTINATION_DEFAULTS.minDelayMs, 1),
    maxDelayMs: r.int("maxDelayMs", DESTINATION_DEFAULTS.maxDelayMs, 1),
  };
  if (backoff.minDelayMs > backoff.maxDelayMs) issues.push(`${at}.minDelayMs must not exceed maxDelayMs`);

  let schedule: ScheduleSpec | undefined;
  const s = r.object("schedule", ["windows", "timezone", "alertsBypass"]);
  if (s) {
    const windows = s.raw("windows");
    if (!Array.isArray(windows) || windows.length === 0 || windows.some((w) => typeof w !== "string"))
      issues.push(`${at}.schedule.windows must be a non-empty list of cron expressions`);
    const timezone = s.str("timezone", "");
    const list = Array.isArray(windows) ? windows.filter((w): w is string => typeof w === "string") : [];
    for (const w of list) {
      const problem = validateWindow(w, timezone);
      if (problem) issues.push(`${at}.schedule.windows: "${w}": ${problem}`);
    }
    schedule = { windows: list, timezone, alertsBypass: s.bool("alertsBypass", true) };
  }
  const p = r.object("predictions", ["every", "onChange", "minDelta"]);
  const predictions: ThinSpec = {
    every: p?.int("every", 1, 1) ?? 1,
    onChange: p?.bool("onChange", false) ?? false,
    minDelta: p?.num("minDelta", 0, 0) ?? 0,
  };
  const t = r.object("tls", TLS_FIELDS);
  const tls: TlsSpec = {
    caFile: t?.str("caFile", "") ?? "",
    certFile: t?.str("certFile", "") ?? "",
    keyFile: t?.str("keyFile", "") ?? "",
    rejectUnauthorized: t?.bool("rejectUnauthorized", true) ?? true,
    servername: t?.str("servername", "") ?? "",
  };
  if ((tls.certFile === "") !== (tls.keyFile === ""))
    issues.push(`${at}.tls.certFile and tls.keyFile go together (mutual TLS needs both)`);
  const common: CommonSpec = {
    name: r.str("name", defaultDestinationName(d.type, url)),
    url,
    batchMaxRecords: r.int("batchMaxRecords", DESTINATION_DEFAULTS.batchMaxRecords, 1),
    batchMaxBytes: r.int("batchMaxBytes", DESTINATION_DEFAULTS.batchMaxBytes, 1_024),
    timeoutMs: r.int("timeoutMs", DESTINATION_DEFAULTS.timeoutMs, 1),
    backoff,
    schedule,
    maxBytesPerSecond: r.int("maxBytesPerSecond", 0, 0),
    predictions,
    tls,
  };
  if (common.name === "") issues.push(`${at}.name must not be empty`);
  if (d.type === "http") {
    return { ...common, type: "http", token: r.str("token", ""), gzip: r.bool("gzip", true) };
  }
  const topicPrefix = r.str("topicPrefix", DESTINATION_DEFAULTS.topicPrefix);
  if (
    topicPrefix === "" ||
    /[+#]/.test(topicPrefix) ||
    topicPrefix.startsWith("/") ||
    topicPrefix.endsWith("/")
  )
    issues.push(`${at}.topicPrefix must be a topic without + or # and without a leading or trailing /`);
  return {
    ...common,
    type: "mqtt",
    topicPrefix,
    username: r.str("username", ""),
    password: r.str("password", ""),
    clientId: r.str("clientId", ""),
    maxInFlight: r.int("maxInFlight", DESTINATION_DEFAULTS.maxInFlight, 1),
    keepaliveS: r.int("keepaliveS", DESTINATION_DEFAULTS.keepaliveS, 1),
  };
}

function parseAll(list: unknown): { specs: DestinationSpec[]; issues: string[] } {
  const issues: string[] = [];
  if (!Array.isArray(list)) return { specs: [], issues: ["must be a list of destinations"] };
  const specs: DestinationSpec[] = [];
  list.forEach((d, i) => {
    const spec = parseOne(d, i, issues);
    if (spec) specs.push(spec);
  });
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) issues.push(`two destinations are named "${s.name}": give them distinct \`name\`s`);
    seen.add(s.name);
  }
  return { specs, issues };
}

/** Every problem of the list, each starting with the entry's index. */
export function destinationIssues(list: unknown): string[] {
  return parseAll(list).issues;
}

export function parseDestinations(list: unknown): DestinationSpec[] {
  const { specs, issues } = parseAll(list);
  if (issues.length > 0) throw new Error(`invalid sync.destinations: ${issues.join("; ")}`);
  return specs;
}
