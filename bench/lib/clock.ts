/**
 * A wall clock with sub-millisecond resolution that two processes on one machine share:
 * `performance.timeOrigin` is the process's start in epoch ms (fractional), so
 * `timeOrigin + performance.now()` is comparable across processes. The residual offset between
 * two processes is measured by `ChildHandle.measureOffset` (IPC ping-pong) and subtracted.
 */

export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves once `check()` holds (polled every `everyMs`), or with false at `deadlineMs` (epoch). */
export async function waitUntil(check: () => boolean, deadlineMs: number, everyMs = 10): Promise<boolean> {
  while (!check()) {
    if (nowMs() > deadlineMs) return false;
    await sleep(everyMs);
  }
  return true;
}
