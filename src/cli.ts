#!/usr/bin/env node
/**
 * The `vigil` command line (contract §1). Parses arguments, calls into the gateway or a tool,
 * and sets the exit code: 0 done, 1 failed (with a one-line reason on stderr; for
 * `check-config`, every problem), 2 wrong usage. `--help` works on every command.
 */

import path from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { loadConfig } from "./config/load.js";
import type { VigilConfig } from "./config/types.js";
import { runDemo } from "./demo/demo.js";
import { ConfigError, VigilError, errorMessage } from "./errors.js";
import { createLogger, type Logger } from "./system/logger.js";
import { toggleDebugLevel } from "./system/log-toggle.js";
import { VERSION } from "./system/version.js";
import { BROKER_SCHEMES, HTTP_SCHEMES, endpointUrlProblem, maskUrlPassword } from "./system/endpoint-url.js";
import { runBatch, type DataFormat } from "./tools/batch.js";
import { ProgressBar } from "./tools/progress.js";
import { runReplay } from "./tools/replay.js";
import { DeadletterUsageError, runDeadletter } from "./sync/deadletter-cli.js";
import { MODELS_USAGE, ModelsUsageError, runModels } from "./tools/models.js";

const EXIT_OK = 0;
const EXIT_FAIL = 1;
const EXIT_USAGE = 2;

interface Command {
  summary: string;
  usage: string;
  /** More lines for `--help` (what the options mean, exit codes). */
  details?: string;
  options: NonNullable<ParseArgsConfig["options"]>;
  run(values: Record<string, string | boolean | undefined>, positionals: string[]): Promise<number>;
}

class UsageError extends Error {}

function required(values: Record<string, string | boolean | undefined>, name: string): string {
  const v = values[name];
  if (typeof v !== "string" || v === "") throw new UsageError(`--${name} is required`);
  return v;
}

function numberOption(
  values: Record<string, string | boolean | undefined>,
  name: string,
  fallback: number,
): number {
  const v = values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== "string" || !Number.isFinite(n) || n < 0)
    throw new UsageError(`--${name} must be a number >= 0`);
  return n;
}

/** A URL option, refused with a usage error naming the option and the value (src/system/endpoint-url.ts). */
function urlOption(name: string, value: string, schemes: readonly string[]): string {
  const problem = endpointUrlProblem(value, schemes);
  if (problem) throw new UsageError(`--${name} "${maskUrlPassword(value)}" ${problem}`);
  return value;
}

function formatOption(values: Record<string, string | boolean | undefined>): DataFormat {
  const f = required(values, "format");
  if (f !== "cmapss" && f !== "csv") throw new UsageError(`--format must be cmapss or csv, got ${f}`);
  return f;
}

function logFor(config: Pick<VigilConfig, "log">): Logger {
  return createLogger({ level: config.log.level, format: config.log.format });
}

function toolLogger(): Logger {
  return createLogger({ level: process.env.VIGIL_LOG_LEVEL ?? "warn", format: "auto" });
}

/** Resolves on the first SIGINT/SIGTERM; a second one exits at once. */
function onSignals(log: Logger): Promise<void> {
  return new Promise((resolve) => {
    let seen = false;
    const handler = (signal: NodeJS.Signals): void => {
      if (seen) {
        log.warn({ signal }, "second signal: exiting now");
        process.exit(signal === "SIGINT" ? 130 : 143);
      }
      seen = true;
      log.info({ signal }, "shutting down (send the signal again to exit at once)");
      resolve();
    };
    process.on("SIGINT", handler);
    process.on("SIGTERM", handler);
  });
}

/** Why `vigil demo` does not reload on SIGHUP (logged instead of dying on SIGHUP's default action). */
const DEMO_SIGHUP_IGNORED =
  "SIGHUP ignored: the demo does not reload its configuration (it is built from the defaults, --config and the command line, and may have moved to free ports); restart the demo to change it, or use vigil run --config FILE";

/** The demo's SIGUSR2 (debug logging, as `vigil run`) and SIGHUP (ignored, saying why); returns the undo. */
function demoOperatorSignals(log: Logger, configuredLevel: string): () => void {
  const onToggle = (): void => void toggleDebugLevel(log, configuredLevel);
  const onHup = (): void => log.warn({ signal: "SIGHUP" }, DEMO_SIGHUP_IGNORED);
  process.on("SIGUSR2", onToggle);
  process.on("SIGHUP", onHup);
  return () => {
    process.off("SIGUSR2", onToggle);
    process.off("SIGHUP", onHup);
  };
}

const commands: Record<string, Command> = {
  run: {
    summary: "run the gateway daemon",
    usage: "vigil run --config FILE",
    options: { config: { type: "string", short: "c" } },
    details: [
      "signals: SIGTERM/SIGINT stop gracefully (a second one exits at once), SIGHUP reloads the",
      "reloadable keys of --config, SIGUSR2 toggles debug logging. Under systemd (Type=notify) it",
      "sends READY, WATCHDOG, STATUS and STOPPING. Exit codes: 0 stopped cleanly, 1 failed or",
      "shutdown overran service.stopTimeoutMs, 2 usage, 130/143 second signal.",
    ].join("\n"),
    async run(values) {
      const configFile = required(values, "config");
      const config = loadConfig({ file: configFile });
      // Loaded on demand: the service pulls in the whole gateway, metrics and dashboard.
      const { runService } = await import("./system/service.js");
      const code = await runService({ configFile, config, log: logFor(config) });
      // A shutdown that overran its budget left work behind that must not hold the exit.
      if (code !== EXIT_OK) process.exit(code);
      return code;
    },
  },
  status: {
    summary: "what a running agent is doing, from its local API",
    usage: "vigil status [--url URL | --config FILE] [--token TOKEN] [--json] [--timeout MS]",
    details: [
      "--url      the agent's local API (default http://127.0.0.1:8080, or http.host/port of --config)",
      "--config   read the API address and token from this configuration file",
      "--token    bearer token (default: http.token of --config, or VIGIL_HTTP_TOKEN)",
      "--json     print /api/status as JSON instead of the summary",
      "--timeout  give up after this many ms (default 5000)",
      "Exit codes: 0 ready, 1 unreachable or failed, 2 usage, 3 running but not ready.",
    ].join("\n"),
    options: {
      url: { type: "string" },
      config: { type: "string", short: "c" },
      token: { type: "string" },
      json: { type: "boolean" },
      timeout: { type: "string" },
    },
    async run(values) {
      const { apiBaseUrl, runStatus } = await import("./tools/status.js");
      let url = typeof values.url === "string" ? urlOption("url", values.url, HTTP_SCHEMES) : undefined;
      let token = typeof values.token === "string" ? values.token : process.env.VIGIL_HTTP_TOKEN;
      if (typeof values.config === "string") {
        const config = loadConfig({ file: values.config });
        url ??= apiBaseUrl(config.http.host, config.http.port);
        if (!token && config.http.token) token = config.http.token;
      }
      url ??= "http://127.0.0.1:8080";
      if (!URL.canParse(url)) throw new UsageError(`--url must be a URL, got "${url}"`);
      return runStatus({
        url,
        ...(token ? { token } : {}),
        json: values.json === true,
        timeoutMs: numberOption(values, "timeout", 5_000),
      });
    },
  },
  demo: {
    summary: "the gateway on embedded defaults with a simulated plant",
    usage: "vigil demo [--config FILE] [--machines N] [--engines N] [--duration SECONDS]",
    details: [
      "signals: SIGTERM/SIGINT stop cleanly (a second one exits at once), SIGUSR2 toggles debug",
      "logging as in vigil run; SIGHUP is logged and ignored (the demo does not reload its configuration).",
    ].join("\n"),
    options: {
      config: { type: "string", short: "c" },
      machines: { type: "string" },
      engines: { type: "string" },
      duration: { type: "string" },
    },
    async run(values) {
      const overrides: Record<string, unknown> = {
        "mqtt.embeddedBroker.enabled": true,
      };
      if (values.config === undefined) {
        overrides.dataDir = path.join("data", "demo");
        overrides.gatewayId = "demo";
      }
      if (values.machines !== undefined) overrides["demo.machines"] = numberOption(values, "machines", 6);
      if (values.engines !== undefined) overrides["demo.engines"] = numberOption(values, "engines", 3);
      const config = loadConfig({
        ...(typeof values.config === "string" ? { file: values.config } : {}),
        overrides,
      });
      const log = logFor(config);
      const durationS = numberOption(values, "duration", 0);
      const undo = demoOperatorSignals(log, config.log.level);
      try {
        await runDemo({ config, log, durationS, stopSignal: onSignals(log) });
      } finally {
        undo();
      }
      return EXIT_OK;
    },
  },
  "check-config": {
    summary: "validate a configuration file; print every problem",
    usage: "vigil check-config --config FILE",
    options: { config: { type: "string", short: "c" } },
    async run(values) {
      const file = required(values, "config");
      try {
        loadConfig({ file });
      } catch (err) {
        if (err instanceof ConfigError) {
          process.stderr.write(`${file}: ${err.issues.length} problem(s)\n`);
          for (const i of err.issues) process.stderr.write(`  ${i.key}: ${i.message}\n`);
          return EXIT_FAIL;
        }
        throw err;
      }
      process.stdout.write(`${file}: valid\n`);
      return EXIT_OK;
    },
  },
  replay: {
    summary: "publish recorded data as live sensor readings",
    usage:
      "vigil replay --file F --format cmapss|csv --broker URL [--rate N] [--topic T] [--start MS] [--username U --password P]",
    options: {
      file: { type: "string" },
      format: { type: "string" },
      broker: { type: "string" },
      rate: { type: "string" },
      topic: { type: "string" },
      start: { type: "string" },
      username: { type: "string" },
      password: { type: "string" },
    },
    async run(values) {
      if (typeof values.topic === "string" && !values.topic.includes("{asset}")) {
        throw new UsageError(`--topic must contain {asset}, got "${values.topic}"`);
      }
      const bar = new ProgressBar("replay");
      const result = await runReplay({
        file: required(values, "file"),
        format: formatOption(values),
        brokerUrl: urlOption("broker", required(values, "broker"), BROKER_SCHEMES),
        rate: numberOption(values, "rate", 0),
        topic: typeof values.topic === "string" ? values.topic : "plant/{asset}/row",
        startMs: numberOption(values, "start", Math.floor(Date.now() / 1000) * 1000),
        ...(typeof values.username === "string" ? { username: values.username } : {}),
        ...(typeof values.password === "string" ? { password: values.password } : {}),
        progress: (d, t) => bar.update(d, t),
      });
      process.stderr.write(
        `replayed ${result.messages} messages for ${result.assets} assets${result.skippedLines ? `, ${result.skippedLines} unreadable lines skipped` : ""}\n`,
      );
      return EXIT_OK;
    },
  },
  batch: {
    summary: "offline inference over recorded data, same windowing as live",
    usage: "vigil batch --model DIR --file F --format cmapss|csv --out OUT.csv",
    options: {
      model: { type: "string" },
      file: { type: "string" },
      format: { type: "string" },
      out: { type: "string" },
    },
    async run(values) {
      const bar = new ProgressBar("batch");
      const result = await runBatch({
        modelDir: required(values, "model"),
        file: required(values, "file"),
        format: formatOption(values),
        out: required(values, "out"),
        log: toolLogger(),
        progress: (d, t) => bar.update(d, t),
      });
      process.stderr.write(
        `${result.predictions} predictions from ${result.rows} rows written to ${String(values.out)}${result.skippedLines ? ` (${result.skippedLines} unreadable lines skipped)` : ""}\n`,
      );
      return EXIT_OK;
    },
  },
  deadletter: {
    summary: "list, retry or drop records a cloud destination refused",
    usage:
      "vigil deadletter list|retry|drop --config FILE [--destination NAME] [--id ID ...] [--all] [--json]",
    options: {
      config: { type: "string", short: "c" },
      destination: { type: "string" },
      id: { type: "string", multiple: true },
      all: { type: "boolean" },
      json: { type: "boolean" },
    },
    async run(values, positionals) {
      const [action, ...extra] = positionals;
      if (action !== "list" && action !== "retry" && action !== "drop")
        throw new UsageError(`expected list, retry or drop, got ${action ?? "nothing"}`);
      if (extra.length > 0) throw new UsageError(`unexpected argument ${extra.join(" ")}`);
      const config = loadConfig({ file: required(values, "config") });
      const ids = (values as Record<string, unknown>).id;
      try {
        process.stdout.write(
          runDeadletter(config, {
            action,
            ...(typeof values.destination === "string" ? { destination: values.destination } : {}),
            ...(Array.isArray(ids) ? { ids: ids as string[] } : {}),
            all: values.all === true,
            json: values.json === true,
          }),
        );
      } catch (err) {
        if (err instanceof DeadletterUsageError) throw new UsageError(err.message);
        throw err;
      }
      return EXIT_OK;
    },
  },
  models: {
    summary: "model packages: keygen, sign, verify, pack, install (docs/ota.md)",
    usage: MODELS_USAGE,
    options: {
      out: { type: "string" },
      name: { type: "string" },
      key: { type: "string", multiple: true },
      config: { type: "string", short: "c" },
      "no-onnx": { type: "boolean" },
      "allow-downgrade": { type: "boolean" },
    },
    async run(values, positionals) {
      try {
        return await runModels(values as Record<string, unknown>, positionals, loadConfig);
      } catch (err) {
        if (err instanceof ModelsUsageError) throw new UsageError(err.message);
        throw err;
      }
    },
  },
};

function mainHelp(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    `vigil ${VERSION} — predictive-maintenance gateway`,
    "",
    "usage: vigil <command> [options]",
    "",
    "commands:",
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    "",
    "vigil <command> --help shows a command's options. Exit codes: 0 ok, 1 failed, 2 usage",
    "(vigil status: 3 running but not ready). Reference: docs/cli.md.",
  ].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${mainHelp()}\n`);
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (name === "--version" || name === "-v") {
    process.stdout.write(`${VERSION}\n`);
    return EXIT_OK;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`vigil: unknown command "${name}"\n\n${mainHelp()}\n`);
    return EXIT_USAGE;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    const opts = Object.keys(command.options)
      .map((o) => `--${o}`)
      .join(" ");
    const details = command.details ? `\n${command.details}\n` : "";
    process.stdout.write(
      `${command.summary}\n\nusage: ${command.usage}\noptions: ${opts} --help\n${details}`,
    );
    return EXIT_OK;
  }
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      options: command.options,
      allowPositionals: true,
      strict: true,
    });
    return await command.run(values as Record<string, string | boolean | undefined>, positionals);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`vigil ${name}: ${errorMessage(err)}\nusage: ${command.usage}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`vigil ${name}: invalid configuration\n`);
      for (const i of err.issues) process.stderr.write(`  ${i.key}: ${i.message}\n`);
      return EXIT_FAIL;
    }
    const code = err instanceof VigilError ? ` [${err.code}]` : "";
    process.stderr.write(`vigil ${name}: ${errorMessage(err).split("\n")[0] ?? ""}${code}\n`);
    return EXIT_FAIL;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Anything left (sockets, timers) must not keep a finished command alive.
    setTimeout(() => process.exit(code), 2_000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`vigil: ${errorMessage(err)}\n`);
    process.exit(EXIT_FAIL);
  },
);
