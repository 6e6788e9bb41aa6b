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
import { Gateway } from "./gateway.js";
import { createLogger, type Logger } from "./system/logger.js";
import { VERSION } from "./system/version.js";
import { runBatch, type DataFormat } from "./tools/batch.js";
import { ProgressBar } from "./tools/progress.js";
import { runReplay } from "./tools/replay.js";
import * as modelTools from "./tools/models.js";

const EXIT_OK = 0;
const EXIT_FAIL = 1;
const EXIT_USAGE = 2;

interface Command {
  summary: string;
  usage: string;
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

const commands: Record<string, Command> = {
  run: {
    summary: "run the gateway daemon",
    usage: "vigil run --config FILE",
    options: { config: { type: "string", short: "c" } },
    async run(values) {
      const config = loadConfig({ file: required(values, "config") });
      const log = logFor(config);
      const gateway = new Gateway(config, log);
      const stop = onSignals(log);
      await gateway.start();
      await stop;
      await gateway.stop();
      return EXIT_OK;
    },
  },
  demo: {
    summary: "the gateway on embedded defaults with a simulated plant",
    usage: "vigil demo [--config FILE] [--machines N] [--duration SECONDS]",
    options: {
      config: { type: "string", short: "c" },
      machines: { type: "string" },
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
      const config = loadConfig({
        ...(typeof values.config === "string" ? { file: values.config } : {}),
        overrides,
      });
      const log = logFor(config);
      await runDemo({
        config,
        log,
        durationS: numberOption(values, "duration", 0),
        stopSignal: onSignals(log),
      });
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
        brokerUrl: required(values, "broker"),
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
  models: {
    summary: "model packages: keygen, sign, verify, pack, install",
    usage: [
      "vigil models keygen --out DIR [--name NAME]     Ed25519 key pair: NAME.key (secret), NAME.pub (trusted key)",
      "       vigil models sign DIR --key KEY.key             write DIR/manifest.sig",
      "       vigil models verify PKG [--key PUB]... [--config FILE] [--no-onnx]   check a folder or .tgz; say what fails",
      "       vigil models pack DIR --out PKG.tgz             package for deployment; prints its sha256 and size",
      "       vigil models install PKG.tgz [--config FILE] [--allow-downgrade]   offline install, same checks as OTA",
    ].join("\n"),
    options: {
      out: { type: "string" },
      name: { type: "string" },
      key: { type: "string", multiple: true },
      config: { type: "string", short: "c" },
      "no-onnx": { type: "boolean" },
      "allow-downgrade": { type: "boolean" },
    },
    async run(values, positionals) {
      const [sub, target, ...extra] = positionals;
      if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
      const keys = (values.key as unknown as string[] | undefined) ?? [];
      const needTarget = (what: string): string => {
        if (target === undefined) throw new UsageError(`vigil models ${sub ?? ""} needs ${what}`);
        return target;
      };
      let out: modelTools.ToolOutput;
      try {
        switch (sub) {
          case "keygen":
            out = modelTools.keygen(
              required(values, "out"),
              typeof values.name === "string" ? values.name : undefined,
            );
            break;
          case "sign":
            if (keys.length !== 1) throw new UsageError("--key KEY.key is required once");
            out = await modelTools.sign(needTarget("a package folder"), keys[0] as string);
            break;
          case "verify": {
            const config =
              typeof values.config === "string" ? loadConfig({ file: values.config }) : undefined;
            out = await modelTools.verify(needTarget("a package folder or .tgz"), {
              keyFiles: keys,
              ...(config ? { config } : {}),
              noOnnx: values["no-onnx"] === true,
            });
            break;
          }
          case "pack":
            out = await modelTools.pack(needTarget("a package folder"), required(values, "out"));
            break;
          case "install": {
            const config = loadConfig(typeof values.config === "string" ? { file: values.config } : {});
            out = await modelTools.install(
              needTarget("a .tgz package"),
              config,
              values["allow-downgrade"] === true,
            );
            break;
          }
          default:
            throw new UsageError(
              `unknown models command "${sub ?? ""}" (keygen, sign, verify, pack, install)`,
            );
        }
      } catch (err) {
        if (err instanceof UsageError || err instanceof ConfigError) throw err;
        // The reason names the subcommand: "vigil models install: ...".
        const code = err instanceof VigilError ? ` [${err.code}]` : "";
        process.stderr.write(`vigil models ${sub ?? ""}: ${errorMessage(err).split("\n")[0] ?? ""}${code}\n`);
        return EXIT_FAIL;
      }
      process.stdout.write(`${out.lines.join("\n")}\n`);
      if (!out.ok) {
        process.stderr.write(`vigil models ${sub}: ${out.reason ?? "failed"}\n`);
        return EXIT_FAIL;
      }
      return EXIT_OK;
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
    "vigil <command> --help shows a command's options. Exit codes: 0 ok, 1 failed, 2 usage.",
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
    process.stdout.write(`${command.summary}\n\nusage: ${command.usage}\noptions: ${opts} --help\n`);
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
