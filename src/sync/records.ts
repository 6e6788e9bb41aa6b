/**
 * Records on the wire (contract §7) and prediction thinning. Pure.
 *
 * Contract: `recordJson` renders `{"id","seq","kind","ts","asset","data"}` splicing in the body
 * exactly as the store holds it (no parse and re-serialise on the drain path). `httpBody` wraps
 * records as `{"gatewayId","records":[...]}`. `PredictionThinner.keep` decides per record whether
 * a prediction goes to the cloud: every Nth per asset and model, and/or only on change; alerts
 * and events are always kept. Its memory is per process: after a restart, the first
 * prediction of each asset and model is kept.
 */

import { createHash } from "node:crypto";
import type { OutboxRecord } from "../store/types.js";
import type { ThinSpec } from "./config.js";

export function recordJson(r: OutboxRecord): string {
  return `{"id":${JSON.stringify(r.id)},"seq":${r.seq},"kind":"${r.kind}","ts":${r.tsMs},"asset":${JSON.stringify(r.asset)},"data":${r.dataJson}}`;
}

export function httpBody(gatewayId: string, recordJsons: readonly string[]): string {
  return `{"gatewayId":${JSON.stringify(gatewayId)},"records":[${recordJsons.join(",")}]}`;
}

/** The same for a retry of the same records, different for any other batch. */
export function idempotencyKey(gatewayId: string, records: readonly OutboxRecord[]): string {
  const h = createHash("sha256");
  h.update(gatewayId);
  for (const r of records) h.update(`\u0000${r.id}`);
  const first = records[0]?.seq ?? 0;
  const last = records.at(-1)?.seq ?? 0;
  return `${gatewayId}-${first}-${last}-${h.digest("hex").slice(0, 16)}`;
}

type Outputs = Record<string, unknown>;

function changed(prev: Outputs, next: Outputs, minDelta: number): boolean {
  const keys = new Set([...Object.keys(prev), ...Object.keys(next)]);
  for (const k of keys) {
    const a = prev[k];
    const b = next[k];
    if (typeof a === "number" && typeof b === "number") {
      if (Math.abs(a - b) > minDelta) return true;
    } else if (JSON.stringify(a) !== JSON.stringify(b)) return true;
  }
  return false;
}

export class PredictionThinner {
  private readonly seen = new Map<string, number>();
  private readonly lastSent = new Map<string, Outputs>();

  constructor(private readonly spec: ThinSpec) {}

  get active(): boolean {
    return this.spec.every > 1 || this.spec.onChange;
  }

  keep(r: OutboxRecord): boolean {
    if (r.kind !== "prediction" || !this.active) return true;
    let data: { model?: unknown; outputs?: Outputs };
    try {
      data = JSON.parse(r.dataJson) as { model?: unknown; outputs?: Outputs };
    } catch {
      return true;
    }
    const key = `${r.asset ?? ""}\u0000${String(data.model ?? "")}`;
    const n = this.seen.get(key) ?? 0;
    this.seen.set(key, n + 1);
    if (n % this.spec.every !== 0) return false;
    if (this.spec.onChange) {
      const outputs = data.outputs ?? {};
      const prev = this.lastSent.get(key);
      if (prev && !changed(prev, outputs, this.spec.minDelta)) return false;
      this.lastSent.set(key, outputs);
    }
    return true;
  }
}
