/**
 * The `vigil` command line (contract §1) as a user runs it: a child process per command,
 * exit codes, one-line reasons, `check-config`, `batch`, and `replay` against a live gateway.
 * The live-vs-offline test is the contract's promise that `batch` computes exactly what the
 * gateway computes for the same recorded data.
 */

import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, type CliResult } from "../support/cli.js";
import {
  Collector,
  FIXTURES,
  modelsDir,
  startGateway,
  tempDir,
  testConfig,
  type RunningGateway,
} from "../support/harness.js";

const MODEL = "count-ntc-zscore";
const T0 = Date.UTC(2026, 0, 1);

/** The fixture model evaluated by hand from its manifest and weights.json (no ONNX, no src/). */
function referenceRul(rows: readonly (readonly number[])[]): number {
  const manifest = JSON.parse(fs.readFileSync(path.join(FIXTURES, MODEL, "manifest.json"), "utf8")) as {
    input: { normalize: { mean: number[]; std: number[] } };
  };
  const weights = JSON.parse(fs.readFileSync(path.join(FIXTURES, MODEL, "weights.json"), "utf8")) as {
    layers: { W: number[][]; b: number[] }[];
  };
  const { mean, std } = manifest.input.normalize;
  // NTC: time-major, each row's signals in manifest order; z-score with std 0 taken as 1.
  const x = rows.flatMap((row) =>
    row.map((v, c) => (v - (mean[c] ?? 0)) / ((std[c] ?? 1) === 0 ? 1 : (std[c] ?? 1))),
  );
  const layer = weights.layers[0];
  const w = layer?.W[0] ?? [];
  expect(w).toHaveLength(x.length);
  return (layer?.b[0] ?? 0) + x.reduce((sum, xi, i) => sum + xi * (w[i] ?? 0), 0);
}

/** s1, s2, s3 of row i of an asset: smooth, distinct per asset, two decimals. */
function signals(i: number, k: number): [number, number, number] {
  const r = (v: number): number => Math.round(v * 100) / 100;
  return [r(100 + 12 * Math.sin(i * 0.7 + k)), r(20 + 5 * Math.cos(i * 0.4 + 2 * k)), r(5 + 0.3 * i - k)];
}

interface Expected {
  asset: string;
  windowStart: number;
  windowEnd: number;
  rul: number;
}

/** Count window size 5, hop 2: windows end at rows 5, 7, 9, … (1-based) of each asset. */
function expectedWindows(
  asset: string,
  ts: readonly number[],
  rows: readonly (readonly number[])[],
): Expected[] {
  const out: Expected[] = [];
  for (let end = 5; end <= rows.length; end += 2) {
    out.push({
      asset,
      windowStart: ts[end - 5] as number,
      windowEnd: ts[end - 1] as number,
      rul: referenceRul(rows.slice(end - 5, end)),
    });
  }
  return out;
}

/** A CSV with `asset,ts,s1,s2,s3`, two assets interleaved, and what the model must say for it. */
function syntheticCsv(
  dir: string,
  rowsPerAsset: Record<string, number>,
): { file: string; expected: Expected[] } {
  const lines = ["asset,ts,s1,s2,s3"];
  const perAsset = Object.entries(rowsPerAsset).map(([asset, n], k) => {
    const ts = Array.from({ length: n }, (_, i) => T0 + i * 1000);
    const rows = ts.map((_, i) => signals(i, k));
    return { asset, ts, rows };
  });
  const longest = Math.max(...perAsset.map((a) => a.rows.length));
  for (let i = 0; i < longest; i++) {
    for (const a of perAsset) {
      const row = a.rows[i];
      if (row) lines.push([a.asset, a.ts[i], ...row].join(","));
    }
  }
  const file = path.join(dir, "plant.csv");
  fs.writeFileSync(file, `${lines.join("\n")}\n`);
  return { file, expected: perAsset.flatMap((a) => expectedWindows(a.asset, a.ts, a.rows)) };
}

/** A C-MAPSS text file (unit, cycle, op1..op3, s1..s21, two trailing spaces); s1..s3 carry the signals. */
function syntheticCmapss(
  dir: string,
  cyclesPerUnit: Record<number, number>,
): { file: string; expected: Expected[] } {
  const lines: string[] = [];
  const expected: Expected[] = [];
  for (const [unitText, cycles] of Object.entries(cyclesPerUnit)) {
    const unit = Number(unitText);
    const rows = Array.from({ length: cycles }, (_, i) => signals(i, unit));
    rows.forEach((row, i) => {
      const rest = Array.from({ length: 18 }, (_, j) => (500 + j + i / 10).toFixed(2));
      lines.push(`${unit} ${i + 1} -0.0007 0.0003 100.0 ${row.join(" ")} ${rest.join(" ")}  `);
    });
    const ts = rows.map((_, i) => (i + 1) * 1000); // batch: ts = cycle × 1000
    expected.push(...expectedWindows(`engine-${unit}`, ts, rows));
  }
  const file = path.join(dir, "train_FD001.txt");
  fs.writeFileSync(file, `${lines.join("\n")}\n`);
  return { file, expected };
}

interface CsvLine {
  asset: string;
  windowStart: number;
  windowEnd: number;
  rul: number;
}

function readBatchCsv(file: string): { header: string; lines: CsvLine[] } {
  const [header = "", ...rest] = fs.readFileSync(file, "utf8").trimEnd().split("\n");
  const lines = rest.map((l) => {
    const [asset = "", start, end, rul] = l.split(",");
    return { asset, windowStart: Number(start), windowEnd: Number(end), rul: Number(rul) };
  });
  return { header, lines };
}

const key = (w: { asset: string; windowStart: number }): string => `${w.asset}@${w.windowStart}`;

const TIME_MODEL = "time-nf-aggregate";

/**
 * A CSV of `asset,ts,temp,vib` read at irregular times (several readings in some 1 s slots,
 * none in others, a 3 s gap, a few empty `vib` cells) for the time-window fixture model.
 */
function syntheticTimeCsv(dir: string, assets: readonly string[]): string {
  const lines = ["asset,ts,temp,vib"];
  assets.forEach((asset, k) => {
    let t = T0 + 250 + k * 130;
    for (let i = 0; i < 70; i++) {
      t += i === 30 ? 3_000 : 400 + ((i * 37 + k * 11) % 500);
      const temp = (60 + 8 * Math.sin(i / 6 + k) + (i % 7) / 10).toFixed(3);
      const vib = i % 11 === 4 ? "" : (0.5 + 0.3 * Math.cos(i / 3) * (1 + k)).toFixed(4);
      lines.push([asset, t, temp, vib].join(","));
    }
  });
  const file = path.join(dir, "fans.csv");
  fs.writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

interface AnyLine {
  asset: string;
  windowStart: number;
  windowEnd: number;
  outputs: Record<string, string | number>;
}

/** Any batch CSV: `asset,windowStart,windowEnd,<outputs...>`, cells kept as text. */
function readAnyBatchCsv(file: string): { names: string[]; lines: AnyLine[] } {
  const [header = "", ...rest] = fs.readFileSync(file, "utf8").trimEnd().split("\n");
  const names = header.split(",").slice(3);
  const lines = rest.map((l) => {
    const [asset = "", start, end, ...cells] = l.split(",");
    const outputs = Object.fromEntries(names.map((n, i) => [n, cells[i] ?? ""]));
    return { asset, windowStart: Number(start), windowEnd: Number(end), outputs };
  });
  return { names, lines };
}

/** Same windows; numeric outputs within `tolerance`, labels equal. */
function expectSameOutputs(live: readonly AnyLine[], offline: readonly AnyLine[], tolerance = 1e-4): void {
  expect(live.map(key).sort()).toEqual(offline.map(key).sort());
  const byKey = new Map(offline.map((o) => [key(o), o]));
  for (const l of live) {
    const o = byKey.get(key(l));
    expect(l.windowEnd, key(l)).toBe(o?.windowEnd);
    for (const [name, want] of Object.entries(o?.outputs ?? {})) {
      const got = l.outputs[name];
      if (typeof got === "number") {
        expect(Math.abs(got - Number(want)), `${key(l)} ${name}: ${got} vs ${want}`).toBeLessThanOrEqual(
          tolerance,
        );
      } else {
        expect(got, `${key(l)} ${name}`).toBe(want);
      }
    }
  }
}

function expectSameWindows(
  actual: readonly CsvLine[],
  expected: readonly Expected[],
  tolerance = 1e-4,
): void {
  expect(actual.map(key).sort()).toEqual(expected.map(key).sort());
  const byKey = new Map(expected.map((e) => [key(e), e]));
  for (const a of actual) {
    const e = byKey.get(key(a));
    expect(a.windowEnd, key(a)).toBe(e?.windowEnd);
    expect(Math.abs(a.rul - (e?.rul ?? NaN)), `${key(a)}: ${a.rul} vs ${e?.rul}`).toBeLessThanOrEqual(
      tolerance,
    );
  }
}

/** The reason line of a failed command: stderr minus progress lines, which must be exactly one line. */
function reasonLine(r: CliResult): string {
  const lines = r.stderr
    .split("\n")
    .filter((l) => l.trim() !== "")
    .filter((l) => !/^(batch|replay): \d+%/.test(l));
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0] ?? "";
}

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", () => resolve()));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

const COMMANDS = ["run", "demo", "check-config", "replay", "batch"];

describe("vigil usage", () => {
  it("--help on the top level lists every command and exits 0", async () => {
    const r = await runCli(["--help"]);
    expect(r.code, r.stderr).toBe(0);
    for (const c of COMMANDS) expect(r.stdout).toContain(c);
  });

  it("--help on each command exits 0 with its usage and options", async () => {
    const results = await Promise.all(COMMANDS.map((c) => runCli([c, "--help"])));
    results.forEach((r, i) => {
      const c = COMMANDS[i] ?? "";
      expect(r.code, `${c} --help: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(`vigil ${c}`);
      expect(r.stdout).toContain("--help");
    });
    // --help wins over missing required options
    const batch = results[COMMANDS.indexOf("batch")];
    for (const o of ["--model", "--file", "--format", "--out"]) expect(batch?.stdout).toContain(o);
  });

  it("an unknown command exits 2 and names it", async () => {
    const r = await runCli(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr.split("\n")[0]).toMatch(/unknown command "frobnicate"/);
  });

  it("a missing required option exits 2 with a one-line reason naming it", async () => {
    const cases: [string[], string][] = [
      [["run"], "--config"],
      [["batch", "--file", "x.csv", "--format", "csv", "--out", "o.csv"], "--model"],
      [["replay", "--file", "x.csv", "--format", "csv"], "--broker"],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    results.forEach((r, i) => {
      const [args, option] = cases[i] ?? [[], ""];
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(2);
      const first = r.stderr.split("\n")[0] ?? "";
      expect(first).toContain(option);
      expect(first).toMatch(/required/);
      expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace
    });
  });

  it("an unknown option or a bad value exits 2", async () => {
    const results = await Promise.all([
      runCli(["check-config", "--config", "x.json", "--bogus"]),
      runCli(["batch", "--model", "m", "--file", "f", "--format", "xml", "--out", "o.csv"]),
    ]);
    results.forEach((r, i) => {
      expect(r.code, `case ${i}: ${r.stderr}`).toBe(2);
      expect(r.stderr).not.toMatch(/^\s+at /m);
    });
    expect(results[0]?.stderr).toMatch(/--bogus/);
    expect(results[1]?.stderr).toMatch(/--format/);
  });

  it("replay --topic without {asset} is wrong usage: exit 2, before any file or broker is touched", async () => {
    const args = [
      "--file",
      "nope.csv",
      "--format",
      "csv",
      "--broker",
      "mqtt://127.0.0.1:1",
      "--topic",
      "plant/x",
    ];
    const r = await runCli(["replay", ...args]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.split("\n")[0]).toMatch(/--topic/);
  });
});

describe("vigil check-config", () => {
  it("a valid file exits 0; a file with several problems exits 1 and prints every key path", async () => {
    const dir = tempDir();
    const good = path.join(dir, "vigil.json");
    fs.writeFileSync(
      good,
      JSON.stringify({
        gatewayId: "gw-1",
        dataDir: path.join(dir, "data"),
        mqtt: { url: "mqtt://broker.local:1883" },
        ingest: { subscriptions: [{ topic: "plant/{asset}/{signal}", format: "json" }] },
        http: { port: 0 },
      }),
    );
    const bad = path.join(dir, "bad.json");
    fs.writeFileSync(
      bad,
      JSON.stringify({
        gatewayId: "not valid!",
        mqtt: { url: "http://broker:1883", keepaliveS: -5 },
        http: { port: 70000 },
        ingest: { subscriptions: [{ topic: "plant/{asset}", format: "xml" }] },
        noSuchKey: true,
      }),
    );
    const [ok, notOk] = await Promise.all([
      runCli(["check-config", "--config", good]),
      runCli(["check-config", "--config", bad]),
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/valid/);

    expect(notOk.code).toBe(1);
    for (const k of [
      "gatewayId",
      "mqtt.url",
      "mqtt.keepaliveS",
      "http.port",
      "ingest.subscriptions",
      "noSuchKey",
    ]) {
      expect(notOk.stderr, k).toMatch(new RegExp(`^\\s*${k.replace(/\./g, "\\.")}: `, "m"));
    }
  });
});

describe("vigil batch", () => {
  it("a tampered package exits 1 with a one-line reason and writes no output", async () => {
    const dir = tempDir();
    const pkg = path.join(modelsDir([MODEL], path.join(dir, "models")), MODEL);
    const onnx = path.join(pkg, "model.onnx");
    const bytes = fs.readFileSync(onnx);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
    fs.writeFileSync(onnx, bytes);
    const { file } = syntheticCsv(dir, { "pump-a": 6 });
    const out = path.join(dir, "pred.csv");
    const r = await runCli(["batch", "--model", pkg, "--file", file, "--format", "csv", "--out", out]);
    expect(r.code).toBe(1);
    const reason = reasonLine(r);
    expect(reason).toMatch(/^vigil batch: /);
    expect(reason).toMatch(/model\.onnx/);
    expect(reason).toMatch(/SHA-256|hash/i);
    expect(fs.existsSync(out)).toBe(false);
  });
});

/**
 * The same recorded files through `batch` (offline) and through `replay` into a live gateway:
 * both must give the model's outputs for the same windows.
 */
describe("vigil batch and vigil replay on the same recorded data", () => {
  const predictions = "vigil/gw-test/predictions/";
  const cmapssStartMs = Date.UTC(2026, 5, 1);
  let running: RunningGateway;
  let collector: Collector;
  let csv: { file: string; expected: Expected[]; out: string; batch: CliResult; replay: CliResult };
  let cmapss: { file: string; expected: Expected[]; out: string; batch: CliResult; replay: CliResult };
  let timed: { file: string; out: string; batch: CliResult; replay: CliResult };

  beforeAll(async () => {
    running = await startGateway(testConfig({ "models.dir": modelsDir([MODEL, TIME_MODEL]) }));
    collector = await Collector.connect(running.brokerUrl, ["vigil/gw-test/status", `${predictions}#`]);
    // The gateway's SUBSCRIBE goes out before its online status on the same connection:
    // once the status is here, the gateway is listening.
    await collector.waitFor(
      (ms) =>
        ms.some((m) => m.topic === "vigil/gw-test/status" && m.json<{ state: string }>().state === "online"),
      10_000,
      "online status",
    );
    const dir = tempDir();
    const csvData = syntheticCsv(dir, { "pump-a": 12, "pump-b": 9 });
    const cmapssData = syntheticCmapss(dir, { 1: 7, 2: 11 });
    const csvOut = path.join(dir, "out", "csv-pred.csv");
    const cmapssOut = path.join(dir, "cmapss-pred.csv");
    const timeFile = syntheticTimeCsv(dir, ["fan-1", "fan-2"]);
    const timeOut = path.join(dir, "time-pred.csv");
    const model = path.join(FIXTURES, MODEL);
    const broker = running.brokerUrl;
    const [csvBatch, cmapssBatch, timeBatch, csvReplay, cmapssReplay, timeReplay] = await Promise.all([
      runCli(["batch", "--model", model, "--file", csvData.file, "--format", "csv", "--out", csvOut]),
      runCli([
        "batch",
        "--model",
        model,
        "--file",
        cmapssData.file,
        "--format",
        "cmapss",
        "--out",
        cmapssOut,
      ]),
      runCli([
        "batch",
        "--model",
        path.join(FIXTURES, TIME_MODEL),
        "--file",
        timeFile,
        "--format",
        "csv",
        "--out",
        timeOut,
      ]),
      runCli(["replay", "--file", csvData.file, "--format", "csv", "--broker", broker, "--rate", "0"]),
      runCli([
        "replay",
        "--file",
        cmapssData.file,
        "--format",
        "cmapss",
        "--broker",
        broker,
        "--start",
        String(cmapssStartMs),
      ]),
      runCli(["replay", "--file", timeFile, "--format", "csv", "--broker", broker]),
    ]);
    csv = { ...csvData, out: csvOut, batch: csvBatch, replay: csvReplay };
    cmapss = { ...cmapssData, out: cmapssOut, batch: cmapssBatch, replay: cmapssReplay };
    timed = { file: timeFile, out: timeOut, batch: timeBatch, replay: timeReplay };
  });

  afterAll(async () => {
    await collector?.close();
    await running?.stop();
  });

  interface Prediction {
    asset: string;
    windowStart: number;
    windowEnd: number;
    ts: number;
    outputs: Record<string, string | number>;
  }

  async function liveAny(assetPrefix: string, n: number): Promise<AnyLine[]> {
    const mine = (): Prediction[] =>
      collector
        .on(predictions)
        .map((m) => m.json<Prediction>())
        .filter((p) => p.asset.startsWith(assetPrefix));
    await collector.waitFor(() => mine().length >= n, 10_000, `${n} predictions for ${assetPrefix}*`);
    return mine().map((p) => {
      expect(p.ts).toBe(p.windowEnd);
      return { asset: p.asset, windowStart: p.windowStart, windowEnd: p.windowEnd, outputs: p.outputs };
    });
  }

  async function live(assetPrefix: string, n: number): Promise<CsvLine[]> {
    return (await liveAny(assetPrefix, n)).map((l) => ({ ...l, rul: Number(l.outputs.rul) }));
  }

  it("batch --format csv writes asset,windowStart,windowEnd,rul, one line per window, as the model computes", () => {
    expect(csv.batch.code, csv.batch.stderr).toBe(0);
    expect(csv.expected).toHaveLength(4 + 3);
    const { header, lines } = readBatchCsv(csv.out);
    expect(header).toBe("asset,windowStart,windowEnd,rul");
    expectSameWindows(lines, csv.expected);
    for (const asset of ["pump-a", "pump-b"]) {
      const starts = lines.filter((l) => l.asset === asset).map((l) => l.windowStart);
      expect(starts, "emission order per asset").toEqual([...starts].sort((a, b) => a - b));
    }
  });

  it("batch --format cmapss: asset engine-<unit>, ts = cycle × 1000", () => {
    expect(cmapss.batch.code, cmapss.batch.stderr).toBe(0);
    expect(cmapss.expected).toHaveLength(2 + 4);
    const { lines } = readBatchCsv(cmapss.out);
    expectSameWindows(lines, cmapss.expected);
    expect(lines.find((l) => l.asset === "engine-1")).toMatchObject({ windowStart: 1000, windowEnd: 5000 });
  });

  it("replay --format csv into the live gateway: the same outputs per window as batch (1e-4)", async () => {
    expect(csv.replay.code, csv.replay.stderr).toBe(0);
    expect(csv.replay.stderr).toMatch(/replayed 21 messages for 2 assets/);
    const got = await live("pump-", csv.expected.length);
    expect(got).toHaveLength(csv.expected.length);
    expectSameWindows(got, readBatchCsv(csv.out).lines);
  });

  it("replay --format cmapss --start S: live ts = S + cycle × 1000, outputs as batch", async () => {
    expect(cmapss.replay.code, cmapss.replay.stderr).toBe(0);
    const got = await live("engine-", cmapss.expected.length);
    expect(got).toHaveLength(cmapss.expected.length);
    const shifted = got.map((l) => ({
      ...l,
      windowStart: l.windowStart - cmapssStartMs,
      windowEnd: l.windowEnd - cmapssStartMs,
    }));
    expectSameWindows(shifted, readBatchCsv(cmapss.out).lines);
  });

  it("time windows (linear fill, aggregates, a class label): replay into the gateway gives batch's outputs", async () => {
    expect(timed.batch.code, timed.batch.stderr).toBe(0);
    expect(timed.replay.code, timed.replay.stderr).toBe(0);
    const offline = readAnyBatchCsv(timed.out);
    expect(offline.names).toEqual(["state", "anomaly"]);
    for (const asset of ["fan-1", "fan-2"]) {
      const mine = offline.lines.filter((l) => l.asset === asset);
      expect(mine.length, asset).toBeGreaterThanOrEqual(5);
      for (const l of mine) {
        expect(l.windowStart % 5_000).toBe(0);
        expect(l.windowEnd - l.windowStart).toBe(10_000);
        expect(["ok", "wear", "fault"]).toContain(l.outputs.state);
      }
    }
    const got = await liveAny("fan-", offline.lines.length);
    expect(got).toHaveLength(offline.lines.length);
    expectSameOutputs(got, offline.lines);
  });

  it("replay against an unreachable broker exits 1 quickly with a one-line reason", async () => {
    const port = await closedPort();
    const r = await runCli(
      ["replay", "--file", csv.file, "--format", "csv", "--broker", `mqtt://127.0.0.1:${port}`],
      { timeoutMs: 8_000 },
    );
    expect(r.code).toBe(1);
    const reason = reasonLine(r);
    expect(reason).toMatch(/^vigil replay: /);
    expect(reason).toContain(String(port));
    expect(r.elapsedMs).toBeLessThan(5_000);
  });
});
