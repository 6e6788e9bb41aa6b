/**
 * Which configuration keys a running agent takes on SIGHUP, and which need a restart.
 *
 * Contract: `planReload(current, next)` is pure: it compares every key of the schema and
 * returns the changed ones, split into those applied while running (`RELOADABLE_KEYS`) and
 * those that take effect only after a restart. Secret values never appear in the result,
 * only key names. Reloadable, because nothing built from them has to be rebuilt:
 * - `log.level` — the level of every logger;
 * - `http.token` / `http.tokenFile` — the local API's bearer token (rotation without a restart);
 * - `outputs.statusIntervalMs` — the retained status timer;
 * - `service.stopTimeoutMs`, `service.maxEventLoopDelayMs` — shutdown budget, liveness limit.
 * Everything else (broker, subscriptions, limits, models, store, ports, ...) shapes objects
 * built at start and needs `systemctl restart vigil`.
 */

import type { VigilConfig } from "../config/types.js";
import { schema, walkLeaves } from "../config/schema.js";

export const RELOADABLE_KEYS: readonly string[] = [
  "log.level",
  "http.token",
  "http.tokenFile",
  "outputs.statusIntervalMs",
  "service.stopTimeoutMs",
  "service.maxEventLoopDelayMs",
];

export interface ReloadPlan {
  /** Changed keys applied while running. */
  applied: string[];
  /** Changed keys that need a restart to take effect. */
  restartNeeded: string[];
}

function valueAt(config: VigilConfig, path: string): unknown {
  let node: unknown = config;
  for (const part of path.split(".")) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

export function planReload(current: VigilConfig, next: VigilConfig): ReloadPlan {
  const plan: ReloadPlan = { applied: [], restartNeeded: [] };
  walkLeaves(schema, (path) => {
    if (JSON.stringify(valueAt(current, path)) === JSON.stringify(valueAt(next, path))) return;
    (RELOADABLE_KEYS.includes(path) ? plan.applied : plan.restartNeeded).push(path);
  });
  return plan;
}
