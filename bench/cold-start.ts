/**
 * Cold start in a fresh process (run as a child by run.ts): how long importing the gateway
 * module takes (under tsx, so TypeScript is transpiled on the way; `dist/` would be faster),
 * then `Gateway.start()` (store, model load and self-test, embedded broker, API), and the RSS
 * of an idle gateway. The bench process itself cannot say: by the time it starts its gateway,
 * ONNX Runtime and every module are loaded and warm. Prints one JSON line on stdout.
 */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "..");

async function main(): Promise<void> {
  const importStarted = performance.now();
  const [{ Gateway }, { loadConfig }, { silentLogger }] = await Promise.all([
    import("../src/gateway.js"),
    import("../src/config/load.js"),
    import("../src/system/logger.js"),
  ]);
  const importMs = performance.now() - importStarted;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-bench-cold-"));
  try {
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
    const rssIdleBytes = process.memoryUsage.rss();
    const stopStarted = performance.now();
    await gateway.stop();
    const stopMs = performance.now() - stopStarted;
    process.stdout.write(`${JSON.stringify({ importMs, startMs, stopMs, rssIdleBytes })}\n`);
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exitCode = 1;
});
