/**
 * How long the event loop has been blocked lately: the liveness signal behind `/healthz`
 * and the systemd watchdog.
 *
 * Contract: after `start()`, `maxDelayMs()` is the longest event-loop delay seen in the
 * current window and the one before it (each `windowMs` long), so a block is remembered for
 * at least one full window and forgotten after two. Sampling uses Node's
 * `monitorEventLoopDelay` (a libuv timer, 20 ms resolution); its timer is unref'd and never
 * keeps the process alive. `stop()` disables it; safe to call twice.
 */

import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";

export class LoopMonitor {
  private histogram: IntervalHistogram | undefined;
  private timer: NodeJS.Timeout | undefined;
  private previousMaxMs = 0;
  private windowStartedMs = 0;

  constructor(private readonly windowMs = 5_000) {}

  start(): void {
    if (this.histogram) return;
    this.histogram = monitorEventLoopDelay({ resolution: 20 });
    this.histogram.enable();
    this.windowStartedMs = performance.now();
    this.timer = setInterval(() => this.rotate(), this.windowMs);
    this.timer.unref();
  }

  /** The longest delay in the last one to two windows, ms. */
  maxDelayMs(): number {
    const h = this.histogram;
    if (!h) return 0;
    // A loop blocked past the rotation time has not rotated yet: its own lateness counts too.
    const overdueMs = Math.max(0, performance.now() - this.windowStartedMs - this.windowMs);
    const currentMs = h.count > 0 ? h.max / 1e6 : 0;
    return Math.max(this.previousMaxMs, currentMs, overdueMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.histogram?.disable();
    this.histogram = undefined;
  }

  private rotate(): void {
    const h = this.histogram;
    if (!h) return;
    const lateMs = Math.max(0, performance.now() - this.windowStartedMs - this.windowMs);
    this.previousMaxMs = Math.max(h.count > 0 ? h.max / 1e6 : 0, lateMs);
    h.reset();
    this.windowStartedMs = performance.now();
  }
}
