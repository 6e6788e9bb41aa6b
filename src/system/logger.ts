/**
 * Logging with pino. JSON lines by default (journald and log shippers keep them as they are),
 * readable lines on a terminal, a child logger per module (`{module: "ingest"}`), and secrets
 * redacted wherever they appear under the usual names.
 */

import { pino, type Logger, type LevelWithSilent } from "pino";
import pretty from "pino-pretty";

export type { Logger };

/** Paths pino replaces with "[redacted]". Secrets must never reach a log line. */
export const REDACT_PATHS = [
  // pino's `*` matches one level; secrets are redacted up to five levels deep, which covers
  // the whole configuration logged as a field (`{config}`).
  ...["password", "token", "authorization"].flatMap((key) =>
    [0, 1, 2, 3, 4].map((depth) => [...Array<string>(depth).fill("*"), key].join(".")),
  ),
  "headers.authorization",
  "sync.destinations[*].token",
  "*.sync.destinations[*].token",
  "*.*.sync.destinations[*].token",
  "destinations[*].token",
  "*.destinations[*].token",
  "sync.destinations[*].password",
  "*.sync.destinations[*].password",
  "destinations[*].password",
];

export interface LoggerOptions {
  level: string;
  format: "auto" | "json" | "pretty";
  /** Where lines go; default stdout. Tests pass a stream to read them back. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? process.stdout;
  const usePretty =
    options.format === "pretty" ||
    (options.format === "auto" && options.destination === undefined && process.stdout.isTTY === true);
  const base = {
    level: options.level as LevelWithSilent,
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (usePretty) {
    const stream = pretty({
      destination,
      sync: true,
      colorize: destination === process.stdout && process.stdout.isTTY === true,
      ignore: "pid,hostname",
      translateTime: "SYS:HH:MM:ss.l",
      messageFormat: "{if module}[{module}] {end}{msg}",
      hideObject: false,
    });
    return pino(base, stream);
  }
  return pino(base, destination);
}

/** A logger that writes nothing (tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
