/**
 * The systemd notification protocol (sd_notify): `READY=1` once serving, `WATCHDOG=1` while
 * the agent is healthy, `RELOADING=1` around a SIGHUP reload, `STOPPING=1` on shutdown, and
 * `STATUS=` lines that `systemctl status vigil` shows.
 *
 * How the datagram is sent: Node has no unix datagram sockets, so each notification runs
 * systemd's own `systemd-notify` (from the systemd package, present wherever systemd set
 * `NOTIFY_SOCKET`) with `KEY=VALUE` arguments. No native addon to compile on a Pi or a
 * Jetson, and no dependency. The unit needs `NotifyAccess=all` because the sender is a child
 * process; systemd-notify (systemd ≥ 246) waits until PID 1 has processed the message
 * (`BARRIER=1`), so the message is attributed to the unit although the sender then exits.
 * The cost is one short process per message (the watchdog: one per `WatchdogSec/2`).
 *
 * Contract: without `NOTIFY_SOCKET` nothing is sent and no process is started. Messages go
 * out one at a time, in order; a watchdog ping is skipped (not queued) while an earlier
 * message is still on its way. A failure to notify is logged (the first at warn, then at
 * debug) and never thrown: the agent runs on. The watchdog pings every half of
 * `WATCHDOG_USEC` (only when `WATCHDOG_PID` is unset or names this process), and only when
 * the health check passes; a failing check is logged and put in `STATUS=`, so systemd
 * restarts the agent if it stays unhealthy for `WatchdogSec`.
 */

import { execFile } from "node:child_process";
import { errorMessage } from "../errors.js";
import type { Logger } from "./logger.js";

/** Runs `systemd-notify` with these arguments; resolves on exit 0. */
export type NotifySender = (args: readonly string[]) => Promise<void>;

export interface HealthCheck {
  ok: boolean;
  reasons: string[];
}

const SEND_TIMEOUT_MS = 10_000;

export function systemdNotifySender(binary = "systemd-notify"): NotifySender {
  return (args) =>
    new Promise((resolve, reject) => {
      execFile(binary, [...args], { timeout: SEND_TIMEOUT_MS, windowsHide: true }, (err, _stdout, stderr) => {
        if (err) reject(new Error(`${binary} failed: ${stderr.trim() || errorMessage(err)}`));
        else resolve();
      });
    });
}

/** One line, no newlines (the protocol is newline-separated), at most 1 KiB. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, " ").slice(0, 1024);
}

export class SdNotify {
  private chain: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private failures = 0;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private lastHealthy = true;

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly sender: NotifySender,
    private readonly log: Logger,
    private readonly pid: number = process.pid,
  ) {}

  static fromEnv(log: Logger, env: NodeJS.ProcessEnv = process.env): SdNotify {
    return new SdNotify(env, systemdNotifySender(), log);
  }

  /** True when systemd asked for notifications (`NOTIFY_SOCKET` is set). */
  get enabled(): boolean {
    return (this.env.NOTIFY_SOCKET ?? "") !== "";
  }

  /** The watchdog interval systemd expects, ms, or undefined when there is none for us. */
  watchdogMs(): number | undefined {
    if (!this.enabled) return undefined;
    const usec = Number(this.env.WATCHDOG_USEC ?? "");
    if (!Number.isFinite(usec) || usec <= 0) return undefined;
    const pid = this.env.WATCHDOG_PID;
    if (pid !== undefined && pid !== "" && Number(pid) !== this.pid) return undefined;
    return usec / 1000;
  }

  /** Sends `KEY=VALUE` assignments as one message. Resolves when sent (or given up). */
  send(fields: Record<string, string>): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    const args = Object.entries(fields).map(([k, v]) => `${k}=${oneLine(v)}`);
    this.inFlight++;
    this.chain = this.chain.then(async () => {
      try {
        await this.sender(args);
        this.failures = 0;
      } catch (err) {
        this.failures++;
        const level = this.failures === 1 ? "warn" : "debug";
        this.log[level]({ err: errorMessage(err), message: args.join(" ") }, "sd_notify failed");
      } finally {
        this.inFlight--;
      }
    });
    return this.chain;
  }

  ready(status: string): Promise<void> {
    return this.send({ READY: "1", STATUS: status });
  }

  reloading(): Promise<void> {
    // MONOTONIC_USEC lets systemd ≥ 253 match this to the reload it asked for.
    const monotonicUs = process.hrtime.bigint() / 1000n;
    return this.send({
      RELOADING: "1",
      MONOTONIC_USEC: String(monotonicUs),
      STATUS: "reloading configuration",
    });
  }

  stopping(status = "stopping: finishing windows in flight"): Promise<void> {
    return this.send({ STOPPING: "1", STATUS: status });
  }

  status(text: string): Promise<void> {
    return this.send({ STATUS: text });
  }

  /**
   * Pings the watchdog every half interval while `check()` passes. No-op without a watchdog.
   * Returns the ping interval in ms (undefined when there is none).
   */
  startWatchdog(check: () => HealthCheck): number | undefined {
    const intervalMs = this.watchdogMs();
    if (intervalMs === undefined || this.watchdogTimer) return undefined;
    const everyMs = Math.max(1, Math.floor(intervalMs / 2));
    const tick = (): void => {
      let health: HealthCheck;
      try {
        health = check();
      } catch (err) {
        health = { ok: false, reasons: [`health check failed: ${errorMessage(err)}`] };
      }
      if (!health.ok) {
        if (this.lastHealthy)
          this.log.error({ reasons: health.reasons }, "unhealthy: not feeding the systemd watchdog");
        this.lastHealthy = false;
        void this.send({ STATUS: `unhealthy: ${health.reasons.join("; ")}` });
        return;
      }
      if (!this.lastHealthy) this.log.warn("healthy again: feeding the systemd watchdog");
      this.lastHealthy = true;
      if (this.inFlight > 0) return; // a ping queued behind a stuck message would come too late anyway
      void this.send({ WATCHDOG: "1" });
    };
    this.watchdogTimer = setInterval(tick, everyMs);
    this.watchdogTimer.unref();
    tick();
    return everyMs;
  }

  stopWatchdog(): void {
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    this.watchdogTimer = undefined;
  }

  /** Waits for messages already handed over (bounded by the sender's own timeout). */
  async flush(): Promise<void> {
    await this.chain;
  }
}
