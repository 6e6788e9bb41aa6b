/**
 * SIGUSR2's effect, shared by `vigil run` (service.ts) and `vigil demo` (cli.ts): the log level
 * flips between `debug` and the configured level, and a `warn` line (visible at any level) says
 * which level now applies. Returns that level.
 */

import type { Logger } from "./logger.js";

export function toggleDebugLevel(log: Logger, configuredLevel: string): string {
  const next = log.level === "debug" ? configuredLevel : "debug";
  log.level = next;
  log.warn({ level: next, via: "SIGUSR2" }, `log level now ${next} (SIGUSR2 again toggles back)`);
  return next;
}
