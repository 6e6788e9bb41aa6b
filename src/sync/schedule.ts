/**
 * When a destination may send: always, or inside cron windows (for metered links). The only
 * importer of `node-cron`; only its parser and `match` are used, no timers.
 *
 * Contract: a window is a cron expression naming the minutes (5 fields) or seconds (6 fields)
 * in which sync runs, e.g. `* 1-4 * * *` = 01:00–04:59 every day. `isOpen(nowMs)` is true in a
 * minute (or second) that some window matches, in the schedule's time zone. Pure apart from the
 * parsed expressions: time is an argument.
 */

import cron, { type ScheduledTask } from "node-cron";

function noop(): void {}

/** Why an expression cannot be a window, or undefined when it can. */
export function validateWindow(expression: string, timezone = ""): string | undefined {
  const detail = cron.validateDetailed(expression);
  if (!detail.valid) return detail.errors.map((e) => e.message).join("; ") || "not a cron expression";
  if (timezone !== "") {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: timezone });
    } catch {
      return `unknown time zone "${timezone}"`;
    }
  }
  return undefined;
}

export class SyncSchedule {
  private readonly tasks: { task: ScheduledTask; seconds: boolean }[];

  /** No windows: always open. */
  constructor(windows: readonly string[] = [], timezone = "") {
    this.tasks = windows.map((w) => ({
      task: cron.createTask(w, noop, timezone !== "" ? { timezone } : {}),
      seconds: w.trim().split(/\s+/).length === 6,
    }));
  }

  get always(): boolean {
    return this.tasks.length === 0;
  }

  isOpen(nowMs: number): boolean {
    if (this.tasks.length === 0) return true;
    const second = new Date(Math.floor(nowMs / 1000) * 1000);
    const minute = new Date(Math.floor(nowMs / 60_000) * 60_000);
    return this.tasks.some(({ task, seconds }) => task.match(seconds ? second : minute));
  }

  /** How long until the window state may next change (the next second or minute boundary). */
  msUntilNextCheck(nowMs: number): number {
    const step = this.tasks.some((t) => t.seconds) ? 1_000 : 60_000;
    return step - (nowMs % step);
  }
}
