/** The benchmark's result shape and its printed report (tables people read; the JSON has it all). */

import type { FsyncFigure } from "./fsync-ceiling.js";
import type { ProfileSummary } from "./lib/profile.js";
import { fmt, quantile, sig } from "./lib/stats.js";
import type { MachineInfo } from "./machine.js";
import type { OrtFigure } from "./ort-ceiling.js";
import type { StageFigure } from "./inference-stage.js";
import type { StoreFigure } from "./store-stage.js";
import type { RunFigure } from "./target.js";
import type { GatewayStats } from "./hosts/gateway-host.js";

/** What `bench/cold-start.mjs` prints, with its label. */
export interface ColdStart {
  label: string;
  importMs: number;
  startMs: number;
  sinceProcessStartMs: number;
  stopMs: number;
  rssIdleBytes: number;
  provider?: string;
  optimizedModelCache?: string;
}

export interface BrokerResult {
  broker: string;
  relay: { warmup: RunFigure; paced: RunFigure; floods: RunFigure[]; half?: RunFigure };
  vigil: {
    startMs: number;
    rssAfterStartMiB: number;
    stopMs: number;
    status: Record<string, unknown>;
    final: GatewayStats;
    warmup: RunFigure;
    paced: RunFigure;
    floods: RunFigure[];
    half: RunFigure;
    profiled?: RunFigure;
    profile?: ProfileSummary;
  };
  vigilSamples: Record<string, Record<string, number>>;
}

export interface PeerResult {
  name: string;
  version: string;
  broker: string;
  startMs: number;
  warmup: RunFigure;
  paced: RunFigure;
  floods: RunFigure[];
  half: RunFigure;
  samples: Record<string, Record<string, number>>;
}

export interface BenchResult {
  date: string;
  command: string;
  machine: MachineInfo & { loadAverageBefore: number[]; loadAverageAfter: number[] };
  workload: Record<string, unknown>;
  coldStarts: ColdStart[];
  ort: OrtFigure[];
  fsync: FsyncFigure;
  store: StoreFigure[];
  inferenceStage: StageFigure[];
  brokers: BrokerResult[];
  peer?: PeerResult;
  skipped: Record<string, string>;
  wallSeconds: number;
}

const median = (xs: readonly number[]): number => quantile(xs, 0.5);
const ms = (x: number | undefined): string => fmt(x, "ms");

/** `median (min–max)` of a per-rep figure, or the single value. */
function spread(xs: readonly number[], unit = ""): string {
  if (xs.length <= 1) return fmt(xs[0], unit);
  return `${fmt(median(xs), unit)} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`;
}

function ratio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return "n/a";
  return `${sig(a / b, 2)}×`;
}

function ortAt(ort: readonly OrtFigure[], batch: number | undefined): OrtFigure | undefined {
  const b = Math.max(1, Math.round(batch ?? 1));
  return ort.find((f) => f.batch === b);
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

function storeText(store: readonly StoreFigure[], batch: number | undefined): string {
  const f = store.find((x) => x.batch === Math.max(1, Math.round(batch ?? 1)));
  return f ? `${fmt(f.msPerCommit, "ms")} at batch ${f.batch} (${fmt(f.recordsPerSec)} records/s)` : "n/a";
}

/** Inference stage (worker-timed) vs raw ORT at the same mean batch. */
function inferenceRatio(
  r: BenchResult,
  runs: readonly RunFigure[],
): { text: string; ceiling: string; ratio: number } {
  const rates = runs.map((f) => f.inference?.windowsPerSec ?? Number.NaN);
  const batch = median(runs.map((f) => f.inference?.meanBatch ?? Number.NaN));
  const raw = ortAt(r.ort, batch);
  const rate = median(rates);
  return {
    text: `${spread(rates)} (mean batch ${fmt(batch)})`,
    ceiling: `raw ORT at batch ${raw?.batch ?? "?"}: ${fmt(raw?.windowsPerSec)}`,
    ratio: raw ? rate / raw.windowsPerSec : Number.NaN,
  };
}

/** The Markdown table of one broker's results (printed, and pasted into docs/benchmarks.md). */
export function brokerTable(r: BenchResult, b: BrokerResult): string {
  const v = b.vigil;
  const relay = b.relay.floods;
  const relayRate = median(relay.map((x) => x.endToEndMessagesPerSec));
  const e2e = v.floods.map((f) => f.endToEndMessagesPerSec);
  const pairs = v.floods.map(
    (f, i) => f.endToEndMessagesPerSec / (relay[i]?.endToEndMessagesPerSec ?? Number.NaN),
  );
  const cpuV = v.floods.map((f) => f.cpuPerMessageUs);
  const cpuR = relay.map((f) => f.cpuPerMessageUs);
  const infFlood = inferenceRatio(r, v.floods);
  const infPaced = inferenceRatio(r, [v.paced]);
  const rows: string[][] = [
    ["Measure", "Vigil", "Raw ceiling, same run", "Vigil ÷ ceiling"],
    [
      "Messages/s ingested, flood (1 message = 1 row)",
      spread(v.floods.map((f) => f.messagesPerSec)),
      `relay ${spread(relay.map((x) => x.endToEndMessagesPerSec))}`,
      ratio(median(v.floods.map((f) => f.messagesPerSec)), relayRate),
    ],
    [
      "Messages/s end to end, flood (first send → last output at the subscriber)",
      spread(e2e),
      `relay ${fmt(relayRate)}`,
      `${ratio(median(e2e), relayRate)} (per pair ${spread(pairs.map((p) => p * 100))} %)`,
    ],
    [
      "CPU of the host process per message, flood (µs, all threads)",
      spread(cpuV),
      `relay ${spread(cpuR)}`,
      ratio(median(cpuV), median(cpuR)),
    ],
    [
      "Predictions/s committed and published, flood",
      spread(v.floods.map((f) => f.outputsReceived / f.endToEndSeconds)),
      "—",
      "—",
    ],
    [
      `Inference stage windows/s, flood (${v.floods[0]?.inference?.thread === "main" ? "main thread: ORT's computing time as the runner timed it" : "worker threads' own time"})`,
      infFlood.text,
      infFlood.ceiling,
      ratio(infFlood.ratio, 1),
    ],
    ["Inference stage windows/s, paced", infPaced.text, infPaced.ceiling, ratio(infPaced.ratio, 1)],
    [
      `Latency reading → prediction, paced ${fmt(v.paced.ratePerSec)} msg/s: p50 / p99`,
      `${ms(v.paced.latencyMs.p50)} / ${ms(v.paced.latencyMs.p99)}`,
      `relay ${ms(b.relay.paced.latencyMs.p50)} / ${ms(b.relay.paced.latencyMs.p99)}`,
      "—",
    ],
    [
      `Latency reading → prediction at half the max rate (${fmt(v.half.ratePerSec)} msg/s): p50 / p99`,
      `${ms(v.half.latencyMs.p50)} / ${ms(v.half.latencyMs.p99)}`,
      b.relay.half
        ? `relay ${ms(b.relay.half.latencyMs.p50)} / ${ms(b.relay.half.latencyMs.p99)} (same rate)`
        : "—",
      "—",
    ],
    [
      "Latency under flood (backlog in socket buffers): p50 / p99",
      `${ms(median(v.floods.map((f) => f.latencyMs.p50)))} / ${ms(median(v.floods.map((f) => f.latencyMs.p99)))}`,
      `relay ${ms(median(relay.map((f) => f.latencyMs.p50)))} / ${ms(median(relay.map((f) => f.latencyMs.p99)))}`,
      "—",
    ],
    [
      "Event-loop delay p99, gateway process: paced / half max / flood",
      `${ms(v.paced.host.eventLoopDelayMs.p99)} / ${ms(v.half.host.eventLoopDelayMs.p99)} / ${ms(median(v.floods.map((f) => f.host.eventLoopDelayMs.p99)))}`,
      `relay flood ${ms(median(relay.map((f) => f.host.eventLoopDelayMs.p99)))}`,
      "—",
    ],
    [
      "Peak RSS of the gateway process, flood (after start)",
      `${fmt(Math.max(...v.floods.map((f) => f.peakRssMiB)), "MiB")} (${fmt(v.rssAfterStartMiB, "MiB")})`,
      `relay ${fmt(Math.max(...relay.map((f) => f.peakRssMiB)), "MiB")}`,
      "—",
    ],
    [
      "Batches: mean size paced / half / flood; windows dropped (overload)",
      `${fmt(v.paced.meanBatch)} / ${fmt(v.half.meanBatch)} / ${fmt(median(v.floods.map((f) => f.meanBatch ?? 0)))}; ${[v.paced, v.half, ...v.floods].reduce((n, f) => n + (f.dropped ?? 0), 0)}`,
      "—",
      "—",
    ],
    [
      "SQLite commits/s (one per delivered run of batches), paced / flood",
      `${fmt((v.paced.batches ?? 0) / v.paced.endToEndSeconds)} (at most) / ${fmt(median(v.floods.map((f) => (f.batches ?? 0) / f.endToEndSeconds)))} (at most)`,
      `fdatasync ${ms(r.fsync.latencyMs.p50)} / ${ms(r.fsync.latencyMs.p99)} p50 / p99`,
      "—",
    ],
    [
      "Store stage alone (SqliteStore.commit), per commit at the paced / flood batch",
      `${storeText(r.store, v.paced.meanBatch)} / ${storeText(r.store, v.floods[0]?.meanBatch)}`,
      "—",
      "—",
    ],
  ];
  return table(rows);
}

export function peerTable(r: BenchResult, peer: PeerResult, vigil: BrokerResult | undefined): string {
  const nf = peer.floods;
  const vf = vigil?.vigil.floods ?? [];
  const rows: string[][] = [
    [
      "Measure",
      `Vigil (${vigil?.broker ?? "n/a"})`,
      `Node-RED ${peer.version} (${peer.broker})`,
      "Vigil ÷ Node-RED",
    ],
    [
      "Messages/s end to end, flood",
      spread(vf.map((f) => f.endToEndMessagesPerSec)),
      spread(nf.map((f) => f.endToEndMessagesPerSec)),
      ratio(median(vf.map((f) => f.endToEndMessagesPerSec)), median(nf.map((f) => f.endToEndMessagesPerSec))),
    ],
    [
      "CPU of the host process per message, flood (µs)",
      spread(vf.map((f) => f.cpuPerMessageUs)),
      spread(nf.map((f) => f.cpuPerMessageUs)),
      ratio(median(vf.map((f) => f.cpuPerMessageUs)), median(nf.map((f) => f.cpuPerMessageUs))),
    ],
    [
      `Latency, paced ${fmt(peer.paced.ratePerSec)} msg/s: p50 / p99`,
      vigil ? `${ms(vigil.vigil.paced.latencyMs.p50)} / ${ms(vigil.vigil.paced.latencyMs.p99)}` : "n/a",
      `${ms(peer.paced.latencyMs.p50)} / ${ms(peer.paced.latencyMs.p99)}`,
      "—",
    ],
    [
      "Latency at half its own max rate: rate; p50 / p99",
      vigil
        ? `${fmt(vigil.vigil.half.ratePerSec)}/s; ${ms(vigil.vigil.half.latencyMs.p50)} / ${ms(vigil.vigil.half.latencyMs.p99)}`
        : "n/a",
      `${fmt(peer.half.ratePerSec)}/s; ${ms(peer.half.latencyMs.p50)} / ${ms(peer.half.latencyMs.p99)}`,
      "—",
    ],
    [
      "Event-loop delay p99: paced / flood",
      vigil
        ? `${ms(vigil.vigil.paced.host.eventLoopDelayMs.p99)} / ${ms(median(vf.map((f) => f.host.eventLoopDelayMs.p99)))}`
        : "n/a",
      `${ms(peer.paced.host.eventLoopDelayMs.p99)} / ${ms(median(nf.map((f) => f.host.eventLoopDelayMs.p99)))}`,
      "—",
    ],
    [
      "Peak RSS of the process, flood",
      fmt(Math.max(...vf.map((f) => f.peakRssMiB)), "MiB"),
      fmt(Math.max(...nf.map((f) => f.peakRssMiB)), "MiB"),
      "—",
    ],
    [
      "Start to serving (in the bench process, warm disk)",
      vigil ? ms(vigil.vigil.startMs) : "n/a",
      ms(peer.startMs),
      "—",
    ],
    [
      "Same predictions: windows compared; largest |difference| of an output",
      ...sameOutputs(vigil, peer),
      "—",
    ],
  ];
  return table(rows);
}

/** Vigil's and Node-RED's outputs for the same asset and window. */
function sameOutputs(vigil: BrokerResult | undefined, peer: PeerResult): [string, string] {
  if (!vigil) return ["n/a", "n/a"];
  let n = 0;
  let worst = 0;
  for (const [key, out] of Object.entries(peer.samples)) {
    const mine = vigil.vigilSamples[key];
    if (!mine) continue;
    n++;
    for (const [k, v] of Object.entries(out)) worst = Math.max(worst, Math.abs(v - (mine[k] ?? Number.NaN)));
  }
  return [`${n} windows`, n === 0 ? "n/a" : `${worst.toExponential(1)}`];
}

export function stageTable(r: BenchResult): string {
  const where = r.inferenceStage[0]?.thread === "main" ? "Main thread" : "Pool";
  const rows: string[][] = [
    [
      "Batch",
      "Bare ORT windows/s",
      `${where}, 1 call at a time`,
      `${where}, 4 calls outstanding`,
      `${where} ÷ bare (4 outstanding)`,
    ],
  ];
  for (const b of [...new Set(r.inferenceStage.map((s) => s.batch))]) {
    const one = r.inferenceStage.find((s) => s.batch === b && s.depth === 1);
    const four = r.inferenceStage.find((s) => s.batch === b && s.depth === 4);
    const bare = ortAt(r.ort, b);
    rows.push([
      String(b),
      fmt(bare?.windowsPerSec),
      `${fmt(one?.windowsPerSec)} (${fmt(one?.usPerCall)} µs/call)`,
      `${fmt(four?.windowsPerSec)} (${fmt(four?.usPerCall)} µs/call)`,
      ratio(four?.windowsPerSec ?? Number.NaN, bare?.windowsPerSec ?? Number.NaN),
    ]);
  }
  return table(rows);
}

export interface TargetRow {
  target: string;
  required: string;
  measured: string;
  met: boolean | undefined;
}

export function targets(r: BenchResult): TargetRow[] {
  const rows: TargetRow[] = [];
  for (const b of r.brokers) {
    const v = b.vigil;
    const relayRate = median(b.relay.floods.map((x) => x.endToEndMessagesPerSec));
    const t = median(v.floods.map((f) => f.endToEndMessagesPerSec)) / relayRate;
    rows.push({
      target: `Throughput vs the relay ceiling (${b.broker})`,
      required: "≥ 0.9×",
      measured: `${sig(t, 2)}×`,
      met: t >= 0.9,
    });
    const inf = inferenceRatio(r, v.floods).ratio;
    rows.push({
      target: `Inference stage vs bare ONNX Runtime, same batch, in the flood (${b.broker})`,
      required: "≥ 0.8×",
      measured: `${sig(inf, 2)}×`,
      met: inf >= 0.8,
    });
    const p99 = v.half.latencyMs.p99;
    rows.push({
      target: `p99 reading → prediction at half the max rate (${fmt(v.half.ratePerSec)} msg/s, ${b.broker})`,
      required: "≤ 10 ms",
      measured: `${ms(p99)}${b.relay.half ? ` (relay at the same rate: ${ms(b.relay.half.latencyMs.p99)})` : ""}`,
      met: p99 <= 10,
    });
    const eld = median(v.floods.map((f) => f.host.eventLoopDelayMs.p99));
    rows.push({
      target: `Event-loop delay p99 at the max rate (${b.broker})`,
      required: "≤ 20 ms",
      measured: ms(eld),
      met: eld <= 20,
    });
    const rssMb = (Math.max(...v.floods.map((f) => f.peakRssMiB)) * 1024 * 1024) / 1e6;
    rows.push({
      target: `RSS of the gateway process at the max rate (${b.broker})`,
      required: "≤ 150 MB",
      measured: `${fmt(rssMb)} MB`,
      met: rssMb <= 150,
    });
  }
  const flood = r.brokers[0]?.vigil.floods ?? [];
  const batch = Math.max(1, Math.round(median(flood.map((f) => f.inference?.meanBatch ?? Number.NaN))));
  const alone = r.inferenceStage
    .filter((s) => s.depth === 4)
    .sort((a, b) => Math.abs(a.batch - batch) - Math.abs(b.batch - batch))[0];
  const bare = alone ? ortAt(r.ort, alone.batch) : undefined;
  if (alone && bare) {
    const x = alone.windowsPerSec / bare.windowsPerSec;
    rows.push({
      target: `Inference stage vs bare ONNX Runtime, same batch (${alone.batch}), stage alone`,
      required: "≥ 0.8×",
      measured: `${sig(x, 2)}×`,
      met: x >= 0.8,
    });
  }
  for (const c of r.coldStarts) {
    rows.push({
      target: `Cold start to serving, built gateway: ${c.label}`,
      required: "≤ 1 s",
      measured: ms(c.sinceProcessStartMs),
      met: c.sinceProcessStartMs <= 1000,
    });
  }
  return rows;
}

export function targetsTable(r: BenchResult): string {
  return table([
    [
      `Target (issue 6, this machine, 1,000 assets × 14 signals, shipped model; workload "${String(r.workload.name)}")`,
      "Required",
      "Measured",
      "Met",
    ],
    ...targets(r).map((t) => [
      t.target,
      t.required,
      t.measured,
      t.met === undefined ? "n/a" : t.met ? "yes" : "NO",
    ]),
  ]);
}

function runLine(run: RunFigure): string {
  const c = run.cpu;
  const cpu = c
    ? `ours ${c.ours.toFixed(2)}, others ${c.others.toFixed(2)}, steal ${c.steal.toFixed(2)} cores`
    : "n/a";
  return `  ${run.name.padEnd(9)} ${fmt(run.messagesPerSec).padStart(7)} | ${fmt(run.endToEndMessagesPerSec).padStart(7)} | ${run.outputsReceived}/${run.outputsExpected}${run.complete ? "" : " INCOMPLETE"} | ${run.meanBatch !== undefined ? fmt(run.meanBatch) : "—"} | ${fmt(run.latencyMs.p50)}/${fmt(run.latencyMs.p99)} ms | ELD ${fmt(run.host.eventLoopDelayMs.p99)} ms | ${fmt(run.cpuPerMessageUs)} µs/msg | ${fmt(run.peakRssMiB)} MiB | ${cpu}`;
}

function profileText(p: ProfileSummary): string {
  const lines = [`  main thread: ${fmt(p.busyMs)} ms busy, ${fmt(p.idleMs)} ms idle of ${fmt(p.wallMs)} ms`];
  lines.push("  by component (share of busy time):");
  for (const [name, t, share] of p.byComponent.slice(0, 15))
    lines.push(`    ${(share * 100).toFixed(1).padStart(5)} %  ${fmt(t).padStart(7)} ms  ${name}`);
  lines.push("  hottest functions (self time):");
  for (const [name, t, share] of p.byFunction.slice(0, 15))
    lines.push(`    ${(share * 100).toFixed(1).padStart(5)} %  ${fmt(t).padStart(7)} ms  ${name}`);
  return lines.join("\n");
}

export function printReport(r: BenchResult): void {
  const m = r.machine;
  const out: string[] = [];
  out.push("", `Vigil benchmark, ${r.date} (${r.wallSeconds.toFixed(0)} s): ${r.command}`);
  out.push(
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${m.ramGiB} GiB RAM, ${m.os}; node ${m.node}; onnxruntime-node ${m.onnxruntimeNode}; mqtt ${m.mqtt}; aedes ${m.aedes}; better-sqlite3 ${m.betterSqlite3}; temp dir ${m.tmpDir}`,
  );
  out.push(
    `Load average (1 min) before / after: ${m.loadAverageBefore[0]?.toFixed(2)} / ${m.loadAverageAfter[0]?.toFixed(2)}`,
  );
  const w = r.workload;
  out.push(
    `Workload "${String(w.name)}": ${fmt(Number(w.assets))} assets × ${String(w.signals)} signals, one row per asset per second of event time; ${String(w.describe)}; store synchronous=${String(w.storeSynchronous)}; embedded broker in-process=${String(w.inProcess ?? true)}; inference.workers=${String(w.workers)}; gateway NODE_OPTIONS "${String(w.gatewayNodeOptions ?? "")}", V8 flags "${String(w.gatewayV8Flags ?? "")}"; floods of ${fmt(Number(w.assets) * Number(w.floodRows))} messages × ${String(w.floodReps)}.`,
  );
  for (const [what, why] of Object.entries(r.skipped)) out.push(`SKIPPED ${what}: ${why}`);
  out.push("", "Cold start of the built gateway (fresh process → serving):");
  for (const c of r.coldStarts)
    out.push(
      `  ${c.label}: ${ms(c.sinceProcessStartMs)} (imports ${ms(c.importMs)}, Gateway.start() ${ms(c.startMs)}); idle RSS ${fmt(c.rssIdleBytes / 1024 / 1024, "MiB")}; provider ${c.provider}; optimised-model cache ${c.optimizedModelCache}`,
    );
  for (const b of r.brokers) {
    out.push("", `Broker: ${b.broker}`, brokerTable(r, b));
    out.push(
      "Per run (Vigil): ingested msg/s | end to end | outputs | mean batch | latency p50/p99 | ELD p99 | CPU | peak RSS | machine",
    );
    for (const run of [
      b.vigil.warmup,
      b.vigil.paced,
      ...b.vigil.floods,
      b.vigil.half,
      ...(b.vigil.profiled ? [b.vigil.profiled] : []),
    ])
      out.push(runLine(run));
    out.push("Per run (relay):");
    for (const run of [b.relay.warmup, b.relay.paced, ...b.relay.floods]) out.push(runLine(run));
    const models = (b.vigil.status.models ?? []) as {
      name: string;
      provider?: string;
      providerReason?: string;
      providers?: { provider: string; outcome: string; reason: string }[];
    }[];
    for (const mdl of models) {
      out.push(`Provider: ${mdl.name} on ${mdl.provider} — ${mdl.providerReason}`);
      for (const a of mdl.providers ?? [])
        if (a.outcome !== "selected") out.push(`  ${a.provider}: ${a.outcome} — ${a.reason.slice(0, 200)}`);
    }
    if (b.vigil.profile) out.push(`Profile of a Vigil flood (${b.broker}):`, profileText(b.vigil.profile));
  }
  if (r.peer) {
    const vigilSame = r.brokers.find((b) => b.broker === r.peer?.broker) ?? r.brokers[r.brokers.length - 1];
    out.push("", `Peer: Node-RED ${r.peer.version} on ${r.peer.broker}`, peerTable(r, r.peer, vigilSame));
    out.push("Per run (Node-RED):");
    for (const run of [r.peer.warmup, r.peer.paced, ...r.peer.floods, r.peer.half]) out.push(runLine(run));
  }
  out.push(
    "",
    `Raw ORT (main thread of the bench process): ${r.ort.map((f) => `batch ${f.batch}: ${fmt(f.windowsPerSec)} windows/s`).join("; ")}`,
  );
  out.push(`fdatasync: p50 ${ms(r.fsync.latencyMs.p50)}, p99 ${ms(r.fsync.latencyMs.p99)}`);
  out.push(
    "",
    `Inference stage alone (${r.inferenceStage[0]?.thread === "main" ? "on the main thread, where the gateway placed the model" : "the worker pool, 1 worker"}, nothing else running) vs bare ONNX Runtime:`,
  );
  out.push(stageTable(r));
  out.push("", "Targets:", targetsTable(r));
  const busy = r.brokers
    .flatMap((b) => b.vigil.floods.map((x) => x.cpu?.others ?? Number.NaN))
    .filter(Number.isFinite);
  if (busy.length > 0 && Math.max(...busy) > 0.25) {
    out.push(
      `NOTE: other processes used up to ${Math.max(...busy).toFixed(2)} of ${m.cores} cores during the runs; figures are lower and noisier than on an idle machine.`,
    );
  }
  console.log(out.join("\n"));
}
