/**
 * The benchmark's sensor traffic, shared by the publisher (which sends it) and the measuring
 * side (which knows, from the same numbers, which windows must close and when).
 *
 * Traffic: A assets (`pump-0001`, ...), each publishing one row per second of event time on
 * `plant/<asset>/row`, `{"ts": <epoch ms>, "values": {temperature, vibration, pressure,
 * current, aux01, ...}}` (QoS 0): S signals, the model's four from the demo plant's physics
 * (`src/demo/plant-physics.ts`), so the model sees realistic inputs and some pumps raise
 * alerts, and S − 4 more that no model reads (a site's other sensors: they are decoded,
 * validated and counted, then left out). Row r of every asset has
 * ts = t0 + r·1000, with t0 a multiple of the model's hop: sending is round by round (row r of
 * every asset, then row r+1). Event time is chosen by the publisher, so windows close
 * deterministically, whatever the wall clock does.
 *
 * Windows (pump-health: time window, size 10 s, hop 2 s, sample 1 s, allowed lateness 0): a
 * window [start, start + 10 s) closes when the asset's newest ts reaches its end, that is at
 * the row whose ts equals the end. The first complete window is [t0, t0 + 10 s), closed by
 * row 10; then every 2nd row closes the next. Windows ending at t0 + 2 s ... t0 + 8 s are
 * skipped by Vigil (nothing to fill their first slots) and never produce a prediction.
 */

import { createMachine, sample, type Machine } from "../../src/demo/plant-physics.js";

export const ROW_MS = 1_000;

export interface WindowGeometry {
  sizeMs: number;
  hopMs: number;
}

/** A hop-aligned event-time origin, `agoMs` before `nowMs`. */
export function alignedT0(nowEpochMs: number, hopMs: number, agoMs: number): number {
  return Math.floor((nowEpochMs - agoMs) / hopMs) * hopMs;
}

export function assetName(i: number): string {
  return `pump-${String(i + 1).padStart(4, "0")}`;
}

export function rowTopic(asset: string, root = "plant"): string {
  return `${root}/${asset}/row`;
}

/** Whether row r (ts = t0 + r·ROW_MS) closes a window, given that row 0 was the asset's first. */
export function rowClosesWindow(r: number, w: WindowGeometry): boolean {
  const offset = r * ROW_MS;
  return offset >= w.sizeMs && offset % w.hopMs === 0;
}

/** Windows (per asset) closed by rows [rowFrom, rowTo). */
export function windowsClosed(rowFrom: number, rowTo: number, w: WindowGeometry): number {
  let n = 0;
  for (let r = rowFrom; r < rowTo; r++) if (rowClosesWindow(r, w)) n++;
  return n;
}

/** Payloads of rows [rowFrom, rowTo) for `assets` assets, round-major (row, then asset). */
export class PayloadSource {
  private readonly machines: Machine[];

  constructor(
    readonly assets: number,
    readonly t0Ms: number,
    /** Signals per row, at least the model's 4. */
    readonly signals = 4,
    seed = 7,
  ) {
    this.machines = Array.from({ length: assets }, (_, i) =>
      createMachine(seed * 100_000 + i, { startMs: t0Ms }),
    );
  }

  payload(asset: number, row: number): string {
    const ts = this.t0Ms + row * ROW_MS;
    const machine = this.machines[asset];
    if (!machine) throw new RangeError(`no asset ${asset}`);
    const v = sample(machine, ts);
    const r3 = (x: number): number => Math.round(x * 1000) / 1000;
    const values: Record<string, number> = {
      temperature: r3(v.temperature),
      vibration: r3(v.vibration),
      pressure: r3(v.pressure),
      current: r3(v.current),
    };
    for (let k = 1; k <= this.signals - 4; k++) {
      // Other sensors of the site: plausible, deterministic, read by no model.
      values[`aux${String(k).padStart(2, "0")}`] = r3(50 + 10 * Math.sin((row + asset * 7) * 0.1 + k));
    }
    return JSON.stringify({ ts, values });
  }
}
