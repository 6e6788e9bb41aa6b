// npm run eval:cmapss -- [--data DIR] [--model DIR] [--subset FD001] [--rate N] [--json OUT] [--engines]
// RMSE and PHM08 score of a RUL package on a C-MAPSS test set, through `vigil batch` and through
// a live gateway fed by `vigil replay` (src/tools/cmapss-eval.ts; docs/evaluation.md).
// Exit 0 when live and batch agree (every window, to 1e-4), 1 when they do not or a step fails,
// 2 on wrong usage.
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import {
  defaultDataRoot,
  evaluateCmapss,
  findCmapssDir,
  latestPackage,
  type CmapssEvalResult,
} from "../src/tools/cmapss-eval.js";

const ROOT = path.resolve(import.meta.dirname, "..");
const USAGE =
  "usage: npm run eval:cmapss -- [--data DIR] [--model DIR] [--subset FD001] [--rate N] [--tolerance X] [--json OUT] [--engines]";

function usage(reason: string): never {
  console.error(`eval:cmapss: ${reason}\n${USAGE}`);
  process.exit(2);
}

function parse() {
  try {
    return parseArgs({
      options: {
        data: { type: "string" },
        model: { type: "string" },
        subset: { type: "string", default: "FD001" },
        rate: { type: "string", default: "0" },
        tolerance: { type: "string", default: "1e-4" },
        json: { type: "string" },
        engines: { type: "boolean", default: false },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (err) {
    return usage(err instanceof Error ? err.message : String(err));
  }
}
const values = parse();
if (values.help) {
  console.log(USAGE);
  console.log(
    "  --data DIR    folder with test_<subset>.txt and RUL_<subset>.txt, or its parent (default: $VIGIL_DATA_DIR or ../shared/data)",
  );
  console.log("  --model DIR   package folder (default: the highest version under models/turbofan-rul/)");
  console.log(
    "  --rate N      replay rate in messages per second; 0 (default): as fast as the broker takes them",
  );
  console.log("  --json OUT    write the full result (per-engine figures included) as JSON");
  console.log("  --engines     also print one line per engine");
  process.exit(0);
}
const rate = Number(values.rate);
if (!Number.isFinite(rate) || rate < 0) usage(`--rate must be a number >= 0, got ${values.rate}`);
const tolerance = Number(values.tolerance);
if (!Number.isFinite(tolerance) || tolerance < 0)
  usage(`--tolerance must be a number >= 0, got ${values.tolerance}`);
const dataArg = values.data ?? defaultDataRoot(ROOT);
const dataDir = findCmapssDir(dataArg, values.subset);
if (!dataDir) {
  console.error(
    `eval:cmapss: no test_${values.subset}.txt and RUL_${values.subset}.txt in ${dataArg} (give --data DIR)`,
  );
  process.exit(1);
}
const modelDir = values.model ?? latestPackage(path.join(ROOT, "models"), "turbofan-rul");
if (!modelDir) {
  console.error("eval:cmapss: no models/turbofan-rul/<version> package (give --model DIR)");
  process.exit(1);
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length))) ?? [];
  return rows
    .map((r) =>
      r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join("  "),
    )
    .join("\n");
}

function report(r: CmapssEvalResult, wallS: number): string {
  const f = (v: number, d: number): string => (Number.isFinite(v) ? v.toFixed(d) : String(v));
  const out: string[] = [];
  out.push(`${r.model.name}@${r.model.version} on ${r.subset} (${dataDir}), output "${r.model.output}"`);
  out.push("");
  out.push(
    table([
      ["", "engines", "RMSE", "score", "RMSE truth≤125", "score truth≤125", "windows", "seconds"],
      ...(
        [
          ["vigil batch", r.offline],
          ["live via MQTT", r.live],
        ] as const
      ).map(([label, s]) => [
        label,
        `${s.predicted}/${s.engines}`,
        f(s.rmse, 3),
        f(s.score, 1),
        f(s.rmseCappedTruth, 3),
        f(s.scoreCappedTruth, 1),
        String(s.windows),
        f(s.seconds, 1),
      ]),
    ]),
  );
  out.push(
    "(each engine's last window against the RUL file; the ≤125 columns cap the truth at 125 as many papers do)",
  );
  if (r.offline.missing.length > 0) {
    out.push(`engines without a window (fewer cycles than the window): ${r.offline.missing.join(", ")}`);
  }
  const a = r.agreement;
  out.push("");
  out.push(
    `agreement: ${a.windowsCompared} windows compared, max |live − batch| ${a.maxAbsDiff.toExponential(2)} ` +
      `(last windows ${a.lastWindowMaxAbsDiff.toExponential(2)}), tolerance ${a.tolerance}; ` +
      `missing live ${a.missingLive}, extra live ${a.extraLive}`,
  );
  out.push(
    `live: ${r.live.replayedMessages} messages replayed at ${rate === 0 ? "full speed" : `${rate}/s`}` +
      (r.live.redelivered > 0 ? `, ${r.live.redelivered} QoS 1 redeliveries ignored` : "") +
      (Object.keys(r.live.rejected).length > 0 ? `, gateway refused ${JSON.stringify(r.live.rejected)}` : ""),
  );
  for (const [rule, s] of Object.entries(r.alerts)) {
    out.push(`alert ${rule}: raised ${s.raised} times on ${s.engines} engines, cleared ${s.cleared}`);
  }
  if (values.engines) {
    out.push("");
    out.push(
      table([
        ["unit", "true RUL", "batch", "live", "|live − batch|", "windows"],
        ...r.engines.map((e) => [
          String(e.unit),
          String(e.truth),
          e.batch === undefined ? "-" : f(e.batch, 3),
          e.live === undefined ? "-" : f(e.live, 3),
          e.windows === 0 ? "-" : e.maxAbsDiff.toExponential(1),
          String(e.windows),
        ]),
      ]),
    );
  }
  out.push("");
  out.push(
    r.ok
      ? `OK: live and batch agree (${wallS.toFixed(1)} s)`
      : `FAILED: live and batch disagree — ${a.firstMissing || a.worst}`,
  );
  return out.join("\n");
}

const t0 = Date.now();
try {
  const r = await evaluateCmapss({
    dataDir,
    subset: values.subset,
    modelDir,
    vigil: [process.execPath, "--import", "tsx", path.join("src", "cli.ts")],
    cwd: ROOT,
    rate,
    tolerance,
    say: (l) => console.error(`» ${l}`),
    progress: (l) => console.error(`  ${l}`),
  });
  if (values.json) fs.writeFileSync(values.json, `${JSON.stringify(r, null, 2)}\n`);
  console.log(report(r, (Date.now() - t0) / 1000));
  process.exit(r.ok ? 0 : 1);
} catch (err) {
  console.error(`eval:cmapss: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
