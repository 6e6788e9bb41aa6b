/**
 * Time as a dependency. Pure cores take `nowMs` as an argument; services that need the time
 * take a `Clock`, so tests drive them with a `ManualClock` instead of waiting.
 */

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  nowMs(): number;
}

export const systemClock: Clock = { nowMs: () => Date.now() };

export class ManualClock implements Clock {
  constructor(private timeMs = 1_700_000_000_000) {}
  nowMs(): number {
    return this.timeMs;
  }
  set(timeMs: number): void {
    this.timeMs = timeMs;
  }
  advance(deltaMs: number): void {
    this.timeMs += deltaMs;
  }
}
