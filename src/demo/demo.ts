/**
 * `vigil demo`: the whole gateway on embedded defaults, fed by a simulated plant, with a
 * readable live log of what it predicts and the alerts it raises.
 *
 * Contract: builds the configuration from the defaults (or `--config`) with the embedded
 * broker on, data under `data/demo`, and the shipped models; if port 1883 or 8080 is taken it
 * falls back to a free port and says which. Prints how to watch the topics. Each prediction
 * and alert the gateway publishes is read back from the broker (as a maintenance system would
 * see it) and printed. Runs until SIGINT/SIGTERM or `durationS`, then stops cleanly and
 * resolves with a summary.
 */

import { VigilError, errorMessage } from "../errors.js";
import type { VigilConfig } from "../config/types.js";
import { Gateway } from "../gateway.js";
import { connectOnce } from "../ingest/mqtt-client.js";
import type { AlertPayload, PredictionPayload } from "../output/payloads.js";
import { gatewayTopics } from "../output/topics.js";
import type { Logger } from "../system/logger.js";
import { SimulatedPlant } from "./plant.js";

export interface DemoOptions {
  config: VigilConfig;
  log: Logger;
  /** Stop after this many seconds; 0 = run until a signal. */
  durationS: number;
  /** Resolves when the demo should stop (a signal); the CLI passes one. */
  stopSignal?: Promise<void>;
}

export interface DemoSummary {
  predictions: number;
  alertsRaised: number;
  alertsCleared: number;
  brokerUrl: string;
}

function fmt(v: unknown): string {
  if (typeof v === "number") return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3);
  if (Array.isArray(v)) return `[${v.map(fmt).join(" ")}]`;
  return String(v);
}

async function startGateway(
  config: VigilConfig,
  log: Logger,
): Promise<{ gateway: Gateway; config: VigilConfig }> {
  let current = config;
  for (let attempt = 0; attempt < 3; attempt++) {
    const gateway = new Gateway(current, log);
    try {
      await gateway.start();
      return { gateway, config: current };
    } catch (err) {
      const code = err instanceof VigilError ? err.code : "";
      if (code === "BROKER_LISTEN" && current.mqtt.embeddedBroker.port !== 0) {
        log.warn(
          `port ${current.mqtt.embeddedBroker.port} is taken; the embedded broker takes a free port instead`,
        );
        current = {
          ...current,
          mqtt: { ...current.mqtt, embeddedBroker: { ...current.mqtt.embeddedBroker, port: 0 } },
        };
        continue;
      }
      if (code === "API_LISTEN" && current.http.port !== 0) {
        log.warn(`port ${current.http.port} is taken; the local API takes a free port instead`);
        current = { ...current, http: { ...current.http, port: 0 } };
        continue;
      }
      throw err;
    }
  }
  throw new VigilError("DEMO_START", "could not start the demo gateway");
}

export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const log = options.log.child({ module: "demo" });
  const { gateway, config } = await startGateway(options.config, options.log);
  const brokerUrl = gateway.brokerUrl() ?? config.mqtt.url;
  const topics = gatewayTopics(config.mqtt.baseTopic, config.gatewayId);
  const summary: DemoSummary = { predictions: 0, alertsRaised: 0, alertsCleared: 0, brokerUrl };
  const plant = new SimulatedPlant(
    {
      brokerUrl,
      machines: config.demo.machines,
      sampleIntervalMs: config.demo.sampleIntervalMs,
      engines: config.demo.engines,
      engineCycleMs: config.demo.engineCycleMs,
      meanLifeMs: config.demo.meanLifeS * 1000,
      seed: config.demo.seed,
      ...(config.mqtt.embeddedBroker.username ? { username: config.mqtt.embeddedBroker.username } : {}),
      ...(config.mqtt.embeddedBroker.password ? { password: config.mqtt.embeddedBroker.password } : {}),
    },
    log.child({ module: "plant" }),
  );
  const creds = {
    ...(config.mqtt.embeddedBroker.username ? { username: config.mqtt.embeddedBroker.username } : {}),
    ...(config.mqtt.embeddedBroker.password ? { password: config.mqtt.embeddedBroker.password } : {}),
  };
  const watcher = await connectOnce(brokerUrl, { clientId: `vigil-demo-watch-${process.pid}`, ...creds });
  try {
    const url = new URL(brokerUrl);
    const api = gateway.apiAddress();
    log.info(
      [
        "Vigil demo running. Pumps: pump-health, a SYNTHETIC model (models/pump-health/README.md).",
        "  Engines: turbofan-rul, trained on NASA C-MAPSS FD001 (models/turbofan-rul/README.md), fed by a",
        "  degradation generator fitted to that data; each line shows the predicted and the true RUL.",
        "  Also loaded: milling-failure (AI4I 2020); no simulated asset feeds it, try `vigil replay --format csv`",
        "  on ai4i2020.csv (models/milling-failure/README.md).",
        `  watch everything:  mosquitto_sub -h ${url.hostname} -p ${url.port} -t '${topics.root}/#' -v`,
        `  alerts only:       mosquitto_sub -h ${url.hostname} -p ${url.port} -t '${topics.root}/alerts/#' -v`,
        api ? `  dashboard:         http://${api.host}:${api.port}/` : "",
        api ? `  status:            curl http://${api.host}:${api.port}/api/status` : "",
        "  stop:              Ctrl-C",
      ]
        .filter((l) => l !== "")
        .join("\n"),
    );
    await watcher.subscribeAsync([`${topics.root}/predictions/+`, `${topics.root}/alerts/+`], { qos: 1 });
    watcher.on("message", (topic, payload) => {
      try {
        const body = JSON.parse(payload.toString()) as PredictionPayload | AlertPayload;
        if (topic.startsWith(`${topics.root}/alerts/`)) {
          const a = body as AlertPayload;
          if (a.state === "raised") summary.alertsRaised++;
          else summary.alertsCleared++;
          const line = `ALERT ${a.state.toUpperCase()} ${a.severity} ${a.asset}: ${a.rule} (${a.model} value ${fmt(a.value)})`;
          if (a.state === "raised") log.warn({ seq: a.seq }, line);
          else log.info({ seq: a.seq }, line);
        } else {
          const p = body as PredictionPayload;
          summary.predictions++;
          const outs = Object.entries(p.outputs)
            .map(([k, v]) => `${k}=${fmt(v)}`)
            .join("  ");
          const trueRul = plant.engineRul(p.asset, p.ts);
          const truth = trueRul === undefined ? "" : `  (true rul ${trueRul})`;
          log.info(`${p.asset}  ${outs}${truth}  [${p.model}@${p.modelVersion} seq ${p.seq}]`);
        }
      } catch (err) {
        log.debug({ err: errorMessage(err) }, "unreadable message on a gateway topic");
      }
    });
    await plant.start();
    const waits: Promise<void>[] = [];
    if (options.stopSignal) waits.push(options.stopSignal);
    if (options.durationS > 0)
      waits.push(new Promise((resolve) => setTimeout(resolve, options.durationS * 1000)));
    if (waits.length > 0) await Promise.race(waits);
    else await new Promise<void>(() => undefined);
  } finally {
    await plant.stop();
    await gateway.stop();
    await watcher.endAsync().catch(() => undefined);
  }
  log.info(
    `demo stopped: ${summary.predictions} predictions, ${summary.alertsRaised} alerts raised, ${summary.alertsCleared} cleared`,
  );
  return summary;
}
