/**
 * Batch-1 latency of a model package in onnxruntime-node, as the gateway runs it, for model cards.
 *
 *   npx tsx scripts/model-latency.ts models/milling-failure/1.0.0 [--runs 5000] [--threads 1]
 *
 * Contract: loads the package with every check the gateway makes (`loadPackage`: manifest,
 * hashes, tensors, self-test, warm-up) on the CPU provider with the gateway's default session
 * options (1 intra-op thread, all graph optimisations), then times `runs` back-to-back batch-1
 * `run` calls on the first self-test input, each awaited on its own, after `runs / 10` untimed
 * ones. Prints one JSON line: the model file's size and the median, p90, p99 and mean time per
 * call in microseconds (wall time of the awaited call, so it includes the binding and one
 * event-loop turn, as the main thread would see it; the gateway's worker pool adds messaging).
 */

import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { OrtBackend } from "../src/inference/ort.js";
import { inputShape } from "../src/models/manifest-types.js";
import { loadPackage } from "../src/models/package.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { runs: { type: "string", default: "5000" }, threads: { type: "string", default: "1" } },
});
const dir = positionals[0];
if (!dir) {
  console.error("usage: npx tsx scripts/model-latency.ts PACKAGE_DIR [--runs N] [--threads N]");
  process.exit(2);
}
const runs = Number(values.runs);
const threads = Number(values.threads);

const model = await loadPackage(dir, new OrtBackend(), {
  executionProviders: ["cpu"],
  intraOpThreads: threads,
  graphOptimizationLevel: "all",
});
try {
  const { manifest, session } = model;
  const first = manifest.selfTest[0]?.input;
  if (!first) throw new Error(`${dir}: the manifest has no selfTest input to time`);
  const dims = [1, ...inputShape(manifest.input)];
  const input = Float32Array.from(first);
  for (let i = 0; i < Math.ceil(runs / 10); i++) await session.run(manifest.input.tensor, input, dims);
  const us: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(manifest.input.tensor, input, dims);
    us.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  us.sort((a, b) => a - b);
  const q = (p: number): number =>
    Math.round((us[Math.min(us.length - 1, Math.floor(p * us.length))] ?? NaN) * 10) / 10;
  const mean = us.reduce((a, b) => a + b, 0) / us.length;
  console.log(
    JSON.stringify({
      package: `${manifest.name}@${manifest.version}`,
      modelBytes: fs.statSync(path.join(dir, manifest.modelFile)).size,
      provider: session.provider,
      intraOpThreads: threads,
      runs,
      medianUs: q(0.5),
      p90Us: q(0.9),
      p99Us: q(0.99),
      meanUs: Math.round(mean * 10) / 10,
    }),
  );
} finally {
  await model.session.release();
}
