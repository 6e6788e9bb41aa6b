/**
 * Cold start to serving, in a fresh plain-Node process on the compiled gateway (the bench runs
 * compiled, bench/lib/paths.ts): process start → modules imported → `Gateway.start()` resolved,
 * i.e. store open, worker threads up, every model loaded on its provider, self-tested, warmed
 * up, broker and API listening. Run twice by bench/run.ts on one data folder: the first start
 * with empty caches, the second with the optimised-model cache the first wrote. Prints one
 * JSON line. Arguments: DATA_DIR.
 */

import path from "node:path";
import { ROOT } from "./lib/paths.js";

interface StatusModel {
  provider?: string;
  providers?: { outcome: string; optimizedModelCache?: string }[];
  warmup?: unknown;
}

async function main(): Promise<void> {
  const dataDir = process.argv[2] ?? "";
  const importStarted = performance.now();
  const [{ Gateway }, { loadConfig }, { silentLogger }] = await Promise.all([
    import("../src/gateway.js"),
    import("../src/config/load.js"),
    import("../src/system/logger.js"),
  ]);
  const importMs = performance.now() - importStarted;
  const config = loadConfig({
    env: {},
    overrides: {
      gatewayId: "bench-cold",
      dataDir,
      "log.level": "silent",
      "mqtt.embeddedBroker.enabled": true,
      "mqtt.embeddedBroker.host": "127.0.0.1",
      "mqtt.embeddedBroker.port": 0,
      "http.host": "127.0.0.1",
      "http.port": 0,
      "models.dir": path.join(ROOT, "models"),
    },
  });
  const gateway = new Gateway(config, silentLogger());
  const started = performance.now();
  await gateway.start();
  const startMs = performance.now() - started;
  const sinceProcessStartMs = performance.now();
  const rssIdleBytes = process.memoryUsage.rss();
  const model = ((gateway.status().models ?? []) as StatusModel[])[0];
  const stopStarted = performance.now();
  await gateway.stop();
  const stopMs = performance.now() - stopStarted;
  process.stdout.write(
    `${JSON.stringify({
      importMs,
      startMs,
      sinceProcessStartMs,
      stopMs,
      rssIdleBytes,
      provider: model?.provider,
      optimizedModelCache: model?.providers?.find((p) => p.outcome === "selected")?.optimizedModelCache,
    })}\n`,
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exitCode = 1;
});
