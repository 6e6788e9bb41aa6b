/**
 * Over-the-air update timings: `npx tsx bench/ota.ts`.
 *
 * Prints, with the machine beside them:
 * - the hot swap itself (Pipeline.swapModel, synchronous, between two messages) with N assets
 *   holding an open count window that carries over, and the raw ceiling beside it: one
 *   InputBuilder per model, the least a swap must construct;
 * - deploy to active over a real embedded broker and a local node:http server, for the small
 *   test package (download, SHA-256, extraction, signature, manifest, hashes, ONNX load,
 *   tensors, self-test, install, swap), median of several deploys of new versions.
 * Not a test: nothing is asserted.
 */

import os from "node:os";
import { OrtBackend } from "../src/inference/ort.js";
import { loadPackage } from "../src/models/package.js";
import { InputBuilder } from "../src/window/preprocess.js";
import { FIXTURES, modelsDir, testConfig } from "../test/support/harness.js";
import {
  BASE,
  PackageServer,
  buildPackage,
  makeKeys,
  request,
  standalonePipeline,
  startOtaGateway,
} from "../test/support/ota.js";

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

async function swapTiming(assets: number): Promise<{ swapMs: number; ceilingMs: number }> {
  const session = { executionProviders: "auto", intraOpThreads: 1, graphOptimizationLevel: "all" } as const;
  const v1 = await loadPackage(`${FIXTURES}/${BASE}`, new OrtBackend(), session);
  const pipeline = standalonePipeline([v1], () => undefined);
  for (let a = 0; a < assets; a++)
    for (let r = 0; r < 3; r++)
      pipeline.handleReadings(
        ["s1", "s2", "s3"].map((signal) => ({ asset: `a${a}`, signal, tsMs: r * 1000, value: 100 })),
        0,
      );
  await pipeline.settle();
  const times: number[] = [];
  const ceilings: number[] = [];
  for (let i = 0; i < 9; i++) {
    const next = {
      ...v1,
      key: `${BASE}@1.0.${i + 1}`,
      manifest: { ...v1.manifest, version: `1.0.${i + 1}` },
    };
    const t0 = performance.now();
    const { retired } = pipeline.swapModel(next);
    times.push(performance.now() - t0);
    await retired;
    const t1 = performance.now();
    new InputBuilder(v1.manifest.input);
    ceilings.push(performance.now() - t1);
  }
  await pipeline.drain();
  await v1.session.release();
  return { swapMs: median(times), ceilingMs: median(ceilings) };
}

async function deployTiming(rounds: number): Promise<number> {
  const keys = makeKeys();
  const server = new PackageServer();
  await server.start();
  const gw = await startOtaGateway(
    testConfig({ "models.dir": modelsDir([BASE]), "models.trustedKeys": [keys.pubFile] }),
  );
  const times: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const pkg = await buildPackage({ version: `1.1.${i}`, sign: keys });
      const url = server.serve(`/b${i}.tgz`, { bytes: pkg.bytes });
      const t0 = performance.now();
      const reply = await request(gw.col, "models/deploy", {
        transaction: `b-${i}`,
        url,
        sha256: pkg.sha256,
      });
      times.push(performance.now() - t0);
      if (reply.status !== "ok") throw new Error(`deploy failed: ${reply.error ?? "?"}`);
    }
  } finally {
    await gw.close();
    await server.close();
  }
  return median(times);
}

const cpu = os.cpus()[0]?.model ?? "unknown CPU";
console.log(`machine: ${cpu} × ${os.cpus().length}, Node ${process.version}, ${os.platform()} ${os.arch()}`);
for (const n of [1, 1000, 10_000]) {
  const { swapMs, ceilingMs } = await swapTiming(n);
  console.log(
    `hot swap, ${n} assets with open windows carried over: ${swapMs.toFixed(3)} ms (ceiling: one InputBuilder ${ceilingMs.toFixed(3)} ms)`,
  );
}
console.log(
  `deploy request → answer "active" (1.2 KB package, all checks): median ${(await deployTiming(7)).toFixed(1)} ms`,
);
