/**
 * Model swaps inside the pipeline (src/pipeline/pipeline.ts), on time windows with real ONNX
 * Runtime: a swap in the middle of a window carries the open window over (no window lost,
 * none predicted twice, each by exactly one version), a version with another window restarts
 * the open windows and says so, a shadow sees exactly the serving version's windows and
 * publishes nothing, and a shadow needs the same window.
 */

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { OrtBackend } from "../../src/inference/ort.js";
import { loadPackage, type LoadedModel, type OutputValue } from "../../src/models/package.js";
import type { Pipeline } from "../../src/pipeline/pipeline.js";
import type { PendingWindow } from "../../src/pipeline/runner.js";
import { FIXTURES, tempDir } from "../support/harness.js";
import { standalonePipeline } from "../support/ota.js";

const NAME = "time-ntc-previous";
const SESSION = { executionProviders: "auto", intraOpThreads: 1, graphOptimizationLevel: "all" } as const;

async function version(
  v: string,
  edit: (m: { version: string; input: { window: Record<string, number | string> } }) => void = () =>
    undefined,
): Promise<LoadedModel> {
  const dir = path.join(tempDir(), v);
  fs.cpSync(path.join(FIXTURES, NAME), dir, { recursive: true });
  const file = path.join(dir, "manifest.json");
  const m = JSON.parse(fs.readFileSync(file, "utf8")) as {
    version: string;
    input: { window: Record<string, number | string> };
  };
  m.version = v;
  edit(m);
  fs.writeFileSync(file, JSON.stringify(m));
  return loadPackage(dir, new OrtBackend(), SESSION);
}

function pipelineWith(model: LoadedModel): {
  pipeline: Pipeline;
  published: { version: string; start: number; end: number }[];
} {
  const published: { version: string; start: number; end: number }[] = [];
  const pipeline = standalonePipeline([model], (records) => {
    for (const r of records) {
      const d = r.data as { modelVersion: string; windowStart: number; windowEnd: number };
      published.push({ version: d.modelVersion, start: d.windowStart, end: d.windowEnd });
    }
  });
  return { pipeline, published };
}

const feed = (p: Pipeline, fromS: number, toS: number): void => {
  for (let s = fromS; s < toS; s++)
    p.handleReadings([{ asset: "a", signal: "x", tsMs: s * 1000, value: s % 7 }], 0);
};

describe("pipeline swaps", () => {
  it("mid-window, the open window carries over: every window predicted once, by one version", async () => {
    const v1 = await version("1.0.0");
    const v2 = await version("1.1.0");
    const { pipeline, published } = pipelineWith(v1);
    feed(pipeline, 0, 17); // windows [0,5), [5,10), [10,15) closed; [15,20) open
    const { report, retired } = pipeline.swapModel(v2);
    expect(report).toEqual({ name: NAME, from: "1.0.0", to: "1.1.0", windows: "carried-over", assets: 1 });
    feed(pipeline, 17, 31);
    await pipeline.drain();
    await retired;
    expect(published.map((p) => [p.version, p.start / 1000])).toEqual([
      ["1.0.0", 0],
      ["1.0.0", 5],
      ["1.0.0", 10],
      ["1.1.0", 15],
      ["1.1.0", 20],
      ["1.1.0", 25],
    ]);
    await v1.session.release();
    await v2.session.release();
  });

  it("another window: open windows restart and the report says so", async () => {
    const v1 = await version("1.0.0");
    const v2 = await version("2.0.0", (m) => (m.input.window.hopMs = 1000));
    const { pipeline, published } = pipelineWith(v1);
    feed(pipeline, 0, 7);
    expect(pipeline.swapModel(v2).report).toMatchObject({ windows: "restarted", assets: 1 });
    feed(pipeline, 7, 15);
    await pipeline.drain();
    const v2Windows = published.filter((p) => p.version === "2.0.0").map((p) => p.start / 1000);
    // Restarted at 7 s: the first full 5 s window of the new version is [7,12); then one per second.
    expect(v2Windows).toEqual([7, 8, 9]);
    await v1.session.release();
    await v2.session.release();
  });

  it("a shadow sees the serving version's windows and publishes nothing; it needs the same window", async () => {
    const v1 = await version("1.0.0");
    const cand = await version("1.2.0");
    const other = await version("3.0.0", (m) => (m.input.window.fill = "linear"));
    const { pipeline, published } = pipelineWith(v1);
    const seen: { asset: string; end: number; outputs: Record<string, OutputValue> }[] = [];
    pipeline.setShadow(cand, [
      {
        batch: (items: readonly PendingWindow[], outputs) =>
          items.forEach((it, i) =>
            seen.push({ asset: it.asset, end: it.window.windowEndMs, outputs: outputs[i] ?? {} }),
          ),
        failed: () => undefined,
      },
    ]);
    expect(() => pipeline.setShadow(other, [])).toThrow(/reads other signals or another window/);
    feed(pipeline, 0, 21);
    await pipeline.clearShadow(NAME);
    feed(pipeline, 21, 26);
    await pipeline.drain();
    expect(published.every((p) => p.version === "1.0.0")).toBe(true);
    expect(seen.map((s) => s.end / 1000)).toEqual([5, 10, 15, 20]);
    expect(published.map((p) => p.end / 1000)).toEqual([5, 10, 15, 20, 25]);
    for (const m of [v1, cand, other]) await m.session.release();
  });
});
