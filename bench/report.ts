/** The benchmark's result shape and its printed report (a table people read; JSON has it all). */

import type { CpuShare } from "./lib/cpu.js";
import { fmt, mib, quantile, sig } from "./lib/stats.js";
import type { FsyncFigure } from "./fsync-ceiling.js";
import type { MachineInfo } from "./machine.js";
import type { OrtFigure } from "./ort-ceiling.js";
import type { RelayFigure } from "./relay-ceiling.js";
import type { StoreFigure } from "./store-stage.js";
import type { VigilRunFigure, VigilSummary } from "./vigil.js";

/** What `bench/cold-start.ts` prints. */
export interface ColdStart {
  importMs: number;
  startMs: number;
  stopMs: number;
  rssIdleBytes: number;
}

export interface BenchResult {
  date: string;
  command: string;
  machine: MachineInfo & { loadAverageBefore: number[]; loadAverageAfter: number[] };
  workload: Record<string, unknown>;
  ort: OrtFigure[];
  fsync: FsyncFigure;
  store: StoreFigure[];
  relay: { warmup: RelayFigure; paced: RelayFigure; floods: RelayFigure[] };
  vigil: {
    summary: VigilSummary;
    coldStart: ColdStart;
    warmup: VigilRunFigure;
    paced: VigilRunFigure;
    floods: VigilRunFigure[];
  };
  wallSeconds: number;
}

const median = (xs: readonly number[]): number => quantile(xs, 0.5);

/** `median (min–max)` of a per-rep figure, or the single value. */
function spread(xs: readonly number[], unit = ""): string {
  if (xs.length <= 1) return fmt(xs[0], unit);
  return `${fmt(median(xs), unit)} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`;
}

function ratio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return "n/a";
  return `${sig(a / b, 2)}×`;
}

function ortAt(ort: readonly OrtFigure[], batch: number): OrtFigure | undefined {
  const b = Math.max(1, Math.round(batch));
  return ort.find((f) => f.batch === b);
}

function cpuPerMessageUs(c: CpuShare | undefined, messages: number): number {
  return c ? (c.hostCpuSeconds * 1e6) / messages : Number.NaN;
}

function storeText(store: readonly StoreFigure[], batch: number): string {
  const f = store.find((x) => x.batch === Math.max(1, Math.round(batch)));
  return f ? `${fmt(f.msPerCommit, "ms")} (batch ${f.batch}, ${fmt(f.recordsPerSec)} records/s)` : "n/a";
}

function cpuText(c: CpuShare | undefined): string {
  if (!c) return "n/a";
  return `host process ${(c.hostCpuSeconds / c.seconds).toFixed(2)}, ours ${c.ours.toFixed(2)}, others ${c.others.toFixed(2)}, steal ${c.steal.toFixed(2)} cores`;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  const line = (r: readonly string[]): string =>
    `| ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  const [head, ...body] = rows;
  return [line(head ?? []), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...body.map(line)].join(
    "\n",
  );
}

/** The Markdown table of the results (printed, and pasted into docs/benchmarks.md). */
export function resultsTable(r: BenchResult): string {
  const v = r.vigil;
  const floods = v.floods;
  const relay = r.relay.floods;
  const pairs = floods.map((f, i) => f.endToEndMessagesPerSec / (relay[i]?.messagesPerSec ?? Number.NaN));
  const relayRate = median(relay.map((x) => x.messagesPerSec));
  const ingest = floods.map((f) => f.messagesPerSec);
  const e2e = floods.map((f) => f.endToEndMessagesPerSec);
  const floodBatch = median(floods.map((f) => f.meanBatch));
  const ortB1 = ortAt(r.ort, 1);
  const ortB64 = ortAt(r.ort, 64);
  const ortPaced = ortAt(r.ort, v.paced.meanBatch);
  const ortFlood = ortAt(r.ort, floodBatch);
  const runnerFlood = median(floods.map((f) => f.runnerWindowsPerSec));
  const nativeFlood = median(floods.map((f) => f.ortWindowsPerSec));
  const ms = (x: number): string => fmt(x, "ms");
  const rows: string[][] = [
    ["Measure", "Vigil", "Raw ceiling, same run", "Vigil ÷ ceiling"],
    [
      "Messages/s ingested, flood (1 message = 1 row = 4 readings)",
      spread(ingest),
      `relay ${spread(relay.map((x) => x.messagesPerSec))}`,
      ratio(median(ingest), relayRate),
    ],
    [
      "Readings/s accepted, flood",
      spread(floods.map((f) => f.readingsPerSec)),
      `relay ${fmt(relayRate * 4)} (×4)`,
      ratio(median(floods.map((f) => f.readingsPerSec)), relayRate * 4),
    ],
    [
      "Messages/s end to end, flood (first send → last output at the subscriber)",
      spread(e2e),
      `relay ${fmt(relayRate)}`,
      `${ratio(median(e2e), relayRate)} (per pair ${spread(pairs.map((p) => p * 100))} %)`,
    ],
    [
      "CPU of the host process per message, flood: gateway process vs relay process (µs; robust to background load)",
      spread(floods.map((f) => cpuPerMessageUs(f.cpu, f.messages))),
      `relay ${spread(relay.map((f) => cpuPerMessageUs(f.cpu, f.messages)))}`,
      ratio(
        median(floods.map((f) => cpuPerMessageUs(f.cpu, f.messages))),
        median(relay.map((f) => cpuPerMessageUs(f.cpu, f.messages))),
      ),
    ],
    [
      `Windows → predictions/s committed (SQLite ${String(r.workload.storeSynchronous).toUpperCase()}) and published, flood`,
      spread(floods.map((f) => f.predictionsPerSec)),
      "—",
      "—",
    ],
    [
      `Inference stage windows/s, paced (mean batch ${v.paced.meanBatch.toFixed(1)}): runner counters / native ORT call only`,
      `${fmt(v.paced.runnerWindowsPerSec)} / ${fmt(v.paced.ortWindowsPerSec)}`,
      `raw ORT batch ${ortPaced?.batch ?? "?"}: ${fmt(ortPaced?.windowsPerSec)}`,
      `${ratio(v.paced.runnerWindowsPerSec, ortPaced?.windowsPerSec ?? Number.NaN)} / ${ratio(v.paced.ortWindowsPerSec, ortPaced?.windowsPerSec ?? Number.NaN)}`,
    ],
    [
      `Inference stage windows/s, flood (mean batch ${floodBatch.toFixed(1)}): runner counters / native ORT call only`,
      `${fmt(runnerFlood)} / ${fmt(nativeFlood)}`,
      `raw ORT batch ${ortFlood?.batch ?? "?"}: ${fmt(ortFlood?.windowsPerSec)}`,
      `${ratio(runnerFlood, ortFlood?.windowsPerSec ?? Number.NaN)} / ${ratio(nativeFlood, ortFlood?.windowsPerSec ?? Number.NaN)}`,
    ],
    [
      "Raw ORT ceiling, batch 1 / batch 64",
      "—",
      `${fmt(ortB1?.windowsPerSec)} / ${fmt(ortB64?.windowsPerSec)} windows/s`,
      "—",
    ],
    [
      `Latency, closing reading → prediction at a subscriber, paced ${fmt(Number(r.workload.pacedRatePerSec))} msg/s: p50 / p99`,
      `${ms(v.paced.latencyMs.p50)} / ${ms(v.paced.latencyMs.p99)}`,
      `relay ${ms(r.relay.paced.latencyMs.p50)} / ${ms(r.relay.paced.latencyMs.p99)}`,
      "—",
    ],
    [
      "Latency under flood (queueing in socket buffers): p50 / p99",
      `${ms(median(floods.map((f) => f.latencyMs.p50)))} / ${ms(median(floods.map((f) => f.latencyMs.p99)))}`,
      `relay ${ms(median(relay.map((f) => f.latencyMs.p50)))} / ${ms(median(relay.map((f) => f.latencyMs.p99)))}`,
      "—",
    ],
    [
      "SQLite commits/s on the main thread (one per batch), paced / flood",
      `${fmt(v.paced.batches / v.paced.endToEndSeconds)} / ${fmt(median(floods.map((f) => f.batches / f.endToEndSeconds)))}`,
      `fdatasync ${ms(r.fsync.latencyMs.p50)} / ${ms(r.fsync.latencyMs.p99)} p50 / p99 (${fmt(r.fsync.syncsPerSec)}/s)`,
      "—",
    ],
    [
      "Store stage alone (SqliteStore.commit, same synchronous), ms per commit at the paced / flood batch",
      `${storeText(r.store, v.paced.meanBatch)} / ${storeText(r.store, floodBatch)}`,
      "—",
      "—",
    ],
    [
      "Event-loop delay p99 (gateway process): paced / flood",
      `${ms(v.paced.eventLoopDelayMs.p99)} / ${ms(median(floods.map((f) => f.eventLoopDelayMs.p99)))}`,
      "—",
      "—",
    ],
    [
      "Peak RSS of the bench process hosting the gateway (RSS before Gateway.start())",
      `${fmt(v.summary.peakRssMiB, "MiB")} (${fmt(v.summary.rssBeforeStartMiB, "MiB")})`,
      "—",
      "—",
    ],
    [
      "Cold start, fresh process: Gateway.start() (module import under tsx); idle RSS after start",
      `${ms(v.coldStart.startMs)} (${ms(v.coldStart.importMs)}); ${fmt(mib(v.coldStart.rssIdleBytes), "MiB")}`,
      "—",
      "—",
    ],
    [
      "Gateway.start() / stop() in the warm bench process",
      `${ms(v.summary.coldStartMs)} / ${ms(v.summary.stopMs)}`,
      "—",
      "—",
    ],
  ];
  return table(rows);
}

export function printReport(r: BenchResult): void {
  const m = r.machine;
  const v = r.vigil;
  const out: string[] = [];
  out.push("");
  out.push(`Vigil benchmark, ${r.date} (${r.wallSeconds.toFixed(0)} s)`);
  out.push(
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${m.ramGiB} GiB RAM, ${m.os}; node ${m.node}; onnxruntime-node ${m.onnxruntimeNode} (${m.executionProvider} EP; Vigil's session: ${v.summary.provider}); mqtt ${m.mqtt}; aedes ${m.aedes}; better-sqlite3 ${m.betterSqlite3}; temp dir ${m.tmpDir}`,
  );
  out.push(
    `Load average (1 min) before / after: ${m.loadAverageBefore[0]?.toFixed(2)} / ${m.loadAverageAfter[0]?.toFixed(2)}`,
  );
  const w = r.workload;
  out.push(
    `Workload: ${fmt(Number(w.assets))} assets, one row {"ts","values":{4 signals}} per asset per second of event time; ${modelText(w)}; store synchronous=${String(w.storeSynchronous)}; flood runs of ${fmt(Number(w.assets) * Number(w.floodRows))} messages × ${String(w.floodReps)} pairs (relay, then Vigil, same rows).`,
  );
  out.push("");
  out.push(resultsTable(r));
  out.push("");
  out.push(
    "Per run (Vigil): messages/s ingested | end to end | predictions | mean batch | latency p50/p99 | ELD p99 | CPU",
  );
  for (const run of [v.warmup, v.paced, ...v.floods]) {
    out.push(
      `  ${run.name.padEnd(8)} ${fmt(run.messagesPerSec).padStart(7)} | ${fmt(run.endToEndMessagesPerSec).padStart(7)} | ${run.predictionsReceived}/${run.predictionsExpected}${run.complete ? "" : " INCOMPLETE"} | ${run.meanBatch.toFixed(1)} | ${fmt(run.latencyMs.p50)}/${fmt(run.latencyMs.p99)} ms | ${fmt(run.eventLoopDelayMs.p99)} ms | ${cpuText(run.cpu)}`,
    );
  }
  out.push("Per run (relay): messages/s | latency p50/p99 | CPU");
  for (const [name, run] of [
    ["warm-up", r.relay.warmup],
    ["paced", r.relay.paced],
    ...r.relay.floods.map((f, i) => [`flood ${i + 1}`, f] as const),
  ] as const) {
    out.push(
      `  ${name.padEnd(8)} ${fmt(run.messagesPerSec).padStart(7)} | ${fmt(run.latencyMs.p50)}/${fmt(run.latencyMs.p99)} ms${run.complete ? "" : " INCOMPLETE"} | ${cpuText(run.cpu)}`,
    );
  }
  out.push(
    `Raw ORT: ${r.ort.map((f) => `batch ${f.batch}: ${fmt(f.windowsPerSec)} windows/s (${fmt(f.msPerRun * 1000)} µs/run)`).join("; ")}`,
  );
  const s = v.summary;
  out.push(
    `Vigil totals: ${s.windowsEmitted} windows emitted, skipped ${JSON.stringify(s.windowsSkipped)}, rejected ${JSON.stringify(s.rejected)}, published ${JSON.stringify(s.published)}, store ${JSON.stringify(s.storeDepth)}`,
  );
  const busy = [v.paced, ...v.floods].map((x) => x.cpu?.others ?? Number.NaN).filter(Number.isFinite);
  if (busy.length > 0 && Math.max(...busy) > 0.25) {
    out.push(
      `NOTE: other processes used up to ${Math.max(...busy).toFixed(2)} of ${m.cores} cores during the runs; figures are lower and noisier than on an idle machine.`,
    );
  }
  console.log(out.join("\n"));
}

function modelText(w: Record<string, unknown>): string {
  const g = w.window as { sizeMs: number; hopMs: number } | undefined;
  return `${String(w.model)} (time window ${(g?.sizeMs ?? 0) / 1000} s, hop ${(g?.hopMs ?? 0) / 1000} s: one window per asset every 2 rows)`;
}
