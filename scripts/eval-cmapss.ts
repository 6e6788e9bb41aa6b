// npm run eval:cmapss -- [--data DIR] [--model DIR] [--rate N] [--json OUT]
// RMSE and PHM08 score of a RUL package on the C-MAPSS FD001 test set, through `vigil batch`
// and through a live gateway fed by `vigil replay`; exit 1 unless the two agree (src/tools/cmapss-eval.ts).
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { defaultDataRoot, evaluateCmapss, findCmapssDir, latestPackage } from "../src/tools/cmapss-eval.js";

const ROOT = path.resolve(import.meta.dirname, "..");
const { values } = parseArgs({
  options: {
    data: { type: "string" },
    model: { type: "string" },
    subset: { type: "string", default: "FD001" },
    rate: { type: "string", default: "0" },
    json: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(
    "usage: npm run eval:cmapss -- [--data DIR] [--model DIR] [--subset FD001] [--rate N] [--json OUT]",
  );
  process.exit(0);
}
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
try {
  const r = await evaluateCmapss({
    dataDir,
    subset: values.subset,
    modelDir,
    vigil: [process.execPath, "--import", "tsx", path.join("src", "cli.ts")],
    cwd: ROOT,
    rate: Number(values.rate),
    say: (l) => console.error(l),
  });
  const f = (v: number, d = 3): string => v.toFixed(d);
  console.log(
    `${r.model.name}@${r.model.version} on ${values.subset} (${dataDir}), output ${r.model.output}`,
  );
  console.log(
    "                   engines  RMSE     score     RMSE(truth≤125)  score(truth≤125)  windows  seconds",
  );
  for (const [label, s] of [
    ["vigil batch", r.offline],
    ["live (MQTT)", r.live],
  ] as const) {
    console.log(
      `${label.padEnd(18)} ${String(s.predicted).padStart(3)}/${s.engines}  ${f(s.rmse).padEnd(8)} ${f(s.score, 1).padEnd(9)} ${f(s.rmseCappedTruth).padEnd(16)} ${f(s.scoreCappedTruth, 1).padEnd(17)} ${String(s.windows).padEnd(8)} ${f(s.seconds, 1)}`,
    );
  }
  if (r.offline.missing.length > 0)
    console.log(`engines without a prediction (shorter than the window): ${r.offline.missing.join(", ")}`);
  const a = r.agreement;
  console.log(
    `agreement: ${a.windowsCompared} windows compared, max |live − batch| = ${a.maxAbsDiff.toExponential(2)} (last windows ${a.lastWindowMaxAbsDiff.toExponential(2)}), tolerance ${a.tolerance}; missing live ${a.missingLive}, extra live ${a.extraLive}`,
  );
  if (Object.keys(r.live.rejected).length > 0)
    console.log(`live gateway rejected: ${JSON.stringify(r.live.rejected)}`);
  for (const [rule, s] of Object.entries(r.alerts))
    console.log(`alert ${rule}: raised ${s.raised} (on ${s.engines} engines), cleared ${s.cleared}`);
  if (values.json) fs.writeFileSync(values.json, `${JSON.stringify(r, null, 2)}\n`);
  console.log(r.ok ? "OK: live and batch agree" : `FAILED: live and batch disagree (worst: ${a.worst})`);
  process.exit(r.ok ? 0 : 1);
} catch (err) {
  console.error(`eval:cmapss: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
