/**
 * `vigil run` as a service: the gateway plus everything an init system and an operator expect
 * of a daemon.
 *
 * Contract:
 * - sd_notify (see sd-notify.ts): `STATUS=` while starting, `READY=1` once the gateway serves
 *   (store open, models loaded, API listening), `WATCHDOG=1` at half the watchdog interval
 *   while `gateway.health()` passes, a `STATUS=` summary every 30 s, `STOPPING=1` on shutdown.
 * - SIGTERM / SIGINT: graceful stop (no more readings; windows in flight inferred, committed,
 *   published; `offline` published; store closed) within `service.stopTimeoutMs`; past it, a
 *   log line says what was given up and the exit code is 1. A second signal exits at once
 *   (130 for SIGINT, 143 for SIGTERM).
 * - SIGHUP: reloads the configuration file. An invalid file changes nothing (every problem is
 *   logged); otherwise the reloadable keys (reload.ts) are applied and the others named in a
 *   log line as needing a restart.
 * - SIGUSR2: toggles the log level between `debug` and the configured level.
 * Resolves with the exit code; rejects only when the gateway cannot start.
 */

import { loadConfig } from "../config/load.js";
import type { VigilConfig } from "../config/types.js";
import { ConfigError, errorMessage } from "../errors.js";
import { Gateway } from "../gateway.js";
import { toggleDebugLevel } from "./log-toggle.js";
import type { Logger } from "./logger.js";
import { planReload } from "./reload.js";
import { SdNotify } from "./sd-notify.js";

export interface ServiceOptions {
  configFile: string;
  config: VigilConfig;
  log: Logger;
  notify?: SdNotify;
  /** Environment the configuration is read with on reload (default process.env). */
  env?: NodeJS.ProcessEnv;
}

const STATUS_EVERY_MS = 30_000;

/** One line for `systemctl status`: what the gateway is doing. */
export function statusLine(gateway: Gateway): string {
  const s = gateway.status();
  if (!s.ready.ok) return `not ready: ${s.ready.reasons.join("; ")}`;
  const serving = s.models.filter((m) => m.state === "serving").length;
  const held = s.store ? Object.values(s.store.depth).reduce((a, b) => a + b, 0) : 0;
  const alerts = s.alerts.length;
  return `ready: ${serving} model(s) serving, ${s.counters?.assets ?? 0} asset(s), ${alerts} active alert(s), ${held} record(s) held`;
}

export async function runService(options: ServiceOptions): Promise<number> {
  const { log, configFile } = options;
  let config = options.config;
  const notify = options.notify ?? SdNotify.fromEnv(log.child({ module: "systemd" }));
  const gateway = new Gateway(config, log);
  let configuredLevel = config.log.level;

  let signalled: NodeJS.Signals | undefined;
  let wake: () => void = () => undefined;
  const stopRequested = new Promise<void>((resolve) => (wake = resolve));
  const onStop = (signal: NodeJS.Signals): void => {
    if (signalled) {
      log.warn({ signal }, "second signal: exiting now");
      process.exit(signal === "SIGINT" ? 130 : 143);
    }
    signalled = signal;
    log.info({ signal }, "shutting down (send the signal again to exit at once)");
    wake();
  };

  let reloading = false;
  const onReload = (): void => {
    if (reloading || signalled) return;
    reloading = true;
    void (async () => {
      await notify.reloading();
      try {
        const next = loadConfig({ file: configFile, ...(options.env ? { env: options.env } : {}) });
        const plan = planReload(config, next);
        // Logged before a new level applies, so that raising it does not hide this line.
        log.info(
          { applied: plan.applied, restartNeeded: plan.restartNeeded },
          plan.restartNeeded.length > 0
            ? `configuration reloaded; ${plan.restartNeeded.length} changed key(s) take effect after a restart`
            : "configuration reloaded",
        );
        if (plan.applied.includes("log.level")) {
          log.level = next.log.level;
          configuredLevel = next.log.level;
        }
        gateway.applyReload(next);
        config = next;
      } catch (err) {
        if (err instanceof ConfigError)
          log.error(
            { issues: err.issues },
            "reload refused: the configuration file is invalid; nothing changed",
          );
        else log.error({ err: errorMessage(err) }, "reload failed; nothing changed");
      } finally {
        reloading = false;
        await notify.ready(statusLine(gateway));
      }
    })();
  };

  const onToggleDebug = (): void => {
    toggleDebugLevel(log, configuredLevel);
  };

  const handlers: [NodeJS.Signals, (signal: NodeJS.Signals) => void][] = [
    ["SIGTERM", onStop],
    ["SIGINT", onStop],
    ["SIGHUP", onReload],
    ["SIGUSR2", onToggleDebug],
  ];
  for (const [signal, handler] of handlers) process.on(signal, handler);
  let statusTimer: NodeJS.Timeout | undefined;
  try {
    void notify.status("starting: opening the store, loading models");
    try {
      await gateway.start();
    } catch (err) {
      await notify.status(`failed to start: ${errorMessage(err)}`);
      throw err;
    }
    if (!signalled) {
      await notify.ready(statusLine(gateway));
      const pingMs = notify.startWatchdog(() => gateway.health());
      if (pingMs !== undefined) log.info({ everyMs: pingMs }, "feeding the systemd watchdog");
      statusTimer = setInterval(() => {
        if (!reloading) void notify.status(statusLine(gateway));
      }, STATUS_EVERY_MS);
      statusTimer.unref();
    }
    await stopRequested;
    if (statusTimer) clearInterval(statusTimer);
    await notify.stopping();
    const budgetMs = config.service.stopTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      gateway.stop().then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), budgetMs);
      }),
    ]);
    if (timer) clearTimeout(timer);
    notify.stopWatchdog();
    if (!finished) {
      const stats = gateway.pipelineStats();
      const queued = Object.values(stats?.models ?? {}).reduce((n, m) => n + m.queued, 0);
      log.error(
        { stopTimeoutMs: budgetMs, windowsQueued: queued },
        "shutdown did not finish in time; exiting. Committed records are safe; windows still in flight are lost",
      );
      return 1;
    }
    await notify.flush();
    return 0;
  } finally {
    notify.stopWatchdog();
    if (statusTimer) clearInterval(statusTimer);
    for (const [signal, handler] of handlers) process.off(signal, handler);
  }
}
