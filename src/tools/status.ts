/**
 * `vigil status`: reads `GET /api/status` of a running agent and prints a summary a person can
 * read at a glance (or the JSON itself, for scripts).
 *
 * Contract: `fetchStatus` rejects with a VigilError (`STATUS_UNREACHABLE`, `STATUS_UNAUTHORIZED`,
 * `STATUS_HTTP`, `STATUS_BAD_BODY`) whose message is one line; it never waits longer than
 * `timeoutMs`. `formatStatus` is pure and takes the current time as an argument.
 */

import { VigilError, errorMessage } from "../errors.js";
import type { StatusView } from "../api/status-view.js";
import { otaStatusLines } from "../models/ota/status-text.js";
import type { OtaStatus } from "../models/ota/updater.js";

export interface FetchStatusOptions {
  url: string;
  token?: string;
  timeoutMs: number;
}

/** The base URL of a local API from its configured host and port (wildcards mean loopback). */
export function apiBaseUrl(host: string, port: number): string {
  const h = host === "0.0.0.0" || host === "::" || host === "" ? "127.0.0.1" : host;
  return `http://${h.includes(":") ? `[${h}]` : h}:${port}`;
}

export async function fetchStatus(options: FetchStatusOptions): Promise<StatusView> {
  const url = new URL("/api/status", options.url);
  let res: Response;
  try {
    res = await fetch(url, {
      headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    throw new VigilError(
      "STATUS_UNREACHABLE",
      `cannot reach ${url.origin}: ${cause ?? errorMessage(err)} (is vigil running? see --url)`,
      { retriable: true, cause: err },
    );
  }
  if (res.status === 401) {
    await res.body?.cancel();
    throw new VigilError(
      "STATUS_UNAUTHORIZED",
      `${url.origin} wants a bearer token (--token, or http.token in --config)`,
    );
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new VigilError("STATUS_HTTP", `${url.href} answered ${res.status}`);
  }
  try {
    const body = (await res.json()) as StatusView;
    if (typeof body.gatewayId !== "string") throw new Error("no gatewayId");
    return body;
  } catch (err) {
    throw new VigilError(
      "STATUS_BAD_BODY",
      `${url.href} did not answer a Vigil status: ${errorMessage(err)}`,
    );
  }
}

function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

const num = (n: number): string => n.toLocaleString("en-US");

/** "main thread (0.031 ms/batch of 64 < 0.25 ms)", "worker pool (inference.workers = 2)". */
export function placementText(p: NonNullable<StatusView["models"][number]["placement"]>): string {
  const where = p.thread === "main" ? "main thread" : "worker pool";
  const cost = (ms: number): string => (ms >= 1 ? ms.toFixed(2) : ms >= 0.01 ? ms.toFixed(3) : ms.toFixed(4));
  if (p.mode === "fixed") return `${where} (${p.reason.split(":")[0] ?? "inference.workers"})`;
  if (p.msPerBatch === null || p.thresholdMs === null) return `${where} (time per batch not measured)`;
  const sign = p.msPerBatch < p.thresholdMs ? "<" : "≥";
  const moved = p.moved && "error" in p.moved ? "; moving it failed" : "";
  return `${where} (${cost(p.msPerBatch)} ms/batch of ${p.batch ?? "?"} ${sign} ${cost(p.thresholdMs)} ms${moved})`;
}

const SEVERITY_ORDER: Record<string, number> = { critical: 0, error: 1, warning: 2, info: 3 };

export function formatStatus(s: StatusView, nowMs: number): string {
  const lines: string[] = [];
  const row = (label: string, text: string): void => {
    lines.push(`${label.padEnd(10)}${text}`);
  };
  const readiness = s.ready.ok ? "READY" : `NOT READY (${s.ready.reasons.join("; ")})`;
  lines.push(`vigil ${s.version} · gateway ${s.gatewayId} on ${s.host} · ${readiness}`);
  const health = s.health.ok ? "healthy" : `UNHEALTHY (${s.health.reasons.join("; ")})`;
  row("process", `${health}, up ${duration(s.uptimeS)}, log level ${s.logLevel}`);
  row(
    "broker",
    `${s.broker.connected ? "connected" : "DISCONNECTED"} (${s.broker.connects} connect(s))${s.broker.embedded ? `, embedded ${s.broker.embedded}` : ""}`,
  );
  if (s.models.length === 0) row("models", "none (nothing will be predicted)");
  s.models.forEach((m, i) =>
    row(
      i === 0 ? "models" : "",
      `${m.name} ${m.version} ${m.state}${m.provider ? ` on ${m.provider}` : ""}${m.placement ? `, ${placementText(m.placement)}` : ""}${m.error ? ` — ${m.error}` : ""}`,
    ),
  );
  otaStatusLines((s as StatusView & { ota?: OtaStatus }).ota).forEach((line, i) =>
    row(i === 0 ? "updates" : "", line),
  );
  if (s.store) {
    const d = s.store.depth;
    const size = s.store.fileBytes !== undefined ? ` · ${bytes(s.store.fileBytes)} on disk` : "";
    row(
      "store",
      `${num(d.prediction)} predictions, ${num(d.alert)} alerts, ${num(d.event)} events held${size} · last seq ${num(s.store.lastSeq)}`,
    );
  }
  if (s.sync.destinations.length === 0) row("sync", "no destinations configured");
  s.sync.destinations.forEach((d, i) => {
    const lag =
      d.lagRecords !== undefined
        ? `, ${num(d.lagRecords)} record(s) waiting${d.lagSeconds ? `, oldest ${duration(d.lagSeconds)}` : ""}`
        : "";
    row(i === 0 ? "sync" : "", `${d.type} ${d.url} ${d.state}${lag}`);
  });
  const alerts = [...s.alerts].sort(
    (a, b) =>
      (SEVERITY_ORDER[a.severity] ?? 9) - (SEVERITY_ORDER[b.severity] ?? 9) || a.asset.localeCompare(b.asset),
  );
  row("alerts", alerts.length === 0 ? "none active" : `${alerts.length} active`);
  for (const a of alerts) {
    const since =
      a.since !== undefined
        ? `, since ${new Date(a.since).toISOString()} (${duration((nowMs - a.since) / 1000)} ago)`
        : "";
    row("", `${a.severity.toUpperCase().padEnd(9)}${a.asset}  ${a.rule} (${a.model})${since}`);
  }
  const c = s.counters;
  if (c) {
    const rejected = Object.entries(c.rejected).filter(([, n]) => n > 0);
    const rejectedTotal = rejected.reduce((n, [, v]) => n + v, 0);
    row(
      "ingest",
      `${num(c.payloads)} payloads, ${num(c.readingsAccepted)} readings accepted, ${num(rejectedTotal)} rejected${rejected.length ? ` (${rejected.map(([k, v]) => `${k} ${num(v)}`).join(", ")})` : ""}; ${num(c.assets)} asset(s)`,
    );
    const skipped = Object.values(c.windows.skipped).reduce((a, b) => a + b, 0);
    const predictions = Object.values(c.models).reduce((n, m) => n + m.predictions, 0);
    row(
      "windows",
      `${num(c.windows.emitted)} emitted, ${num(skipped)} skipped; ${num(predictions)} predictions`,
    );
  }
  const losses = Object.entries(s.dataLoss.causes).filter(([, n]) => n > 0);
  row("data loss", losses.length === 0 ? "none" : losses.map(([k, v]) => `${k} ${num(v)}`).join(", "));
  return lines.join("\n");
}

export const EXIT_NOT_READY = 3;

export interface StatusCommandOptions extends FetchStatusOptions {
  json: boolean;
  out?: NodeJS.WritableStream;
}

/** `vigil status`: prints and returns the exit code (0 ready, 3 running but not ready). */
export async function runStatus(options: StatusCommandOptions): Promise<number> {
  const status = await fetchStatus(options);
  const out = options.out ?? process.stdout;
  out.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : `${formatStatus(status, Date.now())}\n`);
  return status.ready.ok ? 0 : EXIT_NOT_READY;
}
