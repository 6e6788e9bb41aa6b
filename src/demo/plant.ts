/**
 * The simulated plant of `vigil demo`: N machines (`pump-01`, …) wearing toward failure,
 * each publishing one row of every signal every `sampleIntervalMs` on `plant/<asset>/row`,
 * `{"ts", "values": {temperature, vibration, pressure, current}}`, like real sensors would;
 * and E turbofan engines (`engine-01`, …) publishing one row per operating cycle every
 * `engineCycleMs`, `{"ts", "values": {cycle, op1..op3, s1..s21}}` (the C-MAPSS columns; `cycle`
 * is the engine's age counter since new, an input of turbofan-rul 2.x).
 *
 * Contract: `start()` connects to the broker, publishes each engine's last
 * `engineHistoryCycles` cycles at once (stamped in the past, as a data logger uploading its
 * buffer would), then publishes on timers; `stop()` stops the timers and disconnects, never
 * throwing. The physics is `plant-physics.ts` and `turbofan.ts` (pure, seeded); this module
 * only adds the clock and the MQTT client. Readings are QoS 0, as typical sensors send.
 * Engine cycle k is stamped `start + k × engineCycleMs`, so an engine's rows are strictly
 * increasing in time even if a timer fires late.
 */

import { errorMessage } from "../errors.js";
import { connectOnce } from "../ingest/mqtt-client.js";
import type { Logger } from "../system/logger.js";
import { createMachine, groundTruth, sample, type Machine } from "./plant-physics.js";
import { createTurbofan, engineRow, engineTruth, type Turbofan } from "./turbofan.js";
import { FD001_PARAMS } from "./turbofan-params.js";

export interface PlantOptions {
  brokerUrl: string;
  machines: number;
  sampleIntervalMs: number;
  meanLifeMs: number;
  seed: number;
  /** Simulated turbofan engines (0: none). */
  engines?: number;
  engineCycleMs?: number;
  /** Cycles of history each engine uploads at start (so the 30-cycle model predicts at once). */
  engineHistoryCycles?: number;
  username?: string;
  password?: string;
}

export class SimulatedPlant {
  private timer: NodeJS.Timeout | undefined;
  private engineTimer: NodeJS.Timeout | undefined;
  private client: Awaited<ReturnType<typeof connectOnce>> | undefined;
  private machines: { asset: string; machine: Machine }[] = [];
  private engines: { asset: string; engine: Turbofan }[] = [];
  private engineStartMs = 0;
  private nextCycle = 0;
  published = 0;

  constructor(
    private readonly options: PlantOptions,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const o = this.options;
    const now = Date.now();
    this.machines = Array.from({ length: o.machines }, (_, i) => ({
      asset: `pump-${String(i + 1).padStart(2, "0")}`,
      machine: createMachine(o.seed * 1000 + i, { meanLifeMs: o.meanLifeMs, startMs: now }),
    }));
    this.client = await connectOnce(o.brokerUrl, {
      clientId: `vigil-demo-plant-${process.pid}`,
      ...(o.username ? { username: o.username } : {}),
      ...(o.password ? { password: o.password } : {}),
    });
    this.log.info(
      { machines: this.machines.map((m) => m.asset), everyMs: o.sampleIntervalMs },
      "simulated plant publishing on plant/<asset>/row",
    );
    this.timer = setInterval(() => this.tick(), o.sampleIntervalMs);
    this.startEngines(now);
  }

  private startEngines(now: number): void {
    const o = this.options;
    const count = o.engines ?? 0;
    if (count <= 0) return;
    const cycleMs = o.engineCycleMs ?? 1000;
    this.engineStartMs = now;
    this.engines = Array.from({ length: count }, (_, i) => ({
      asset: `engine-${String(i + 1).padStart(2, "0")}`,
      engine: createTurbofan(o.seed * 1000 + 500 + i, FD001_PARAMS),
    }));
    const history = o.engineHistoryCycles ?? 30;
    for (let k = -history; k < 0; k++) this.publishCycle(k, cycleMs);
    this.nextCycle = 0;
    this.log.info(
      { engines: this.engines.map((e) => e.asset), cycleMs, historyCycles: history },
      "simulated turbofan engines (C-MAPSS FD001-like) publishing on plant/<asset>/row",
    );
    this.engineTimer = setInterval(() => {
      this.publishCycle(this.nextCycle, cycleMs);
      this.nextCycle++;
    }, cycleMs);
  }

  private publishCycle(k: number, cycleMs: number): void {
    const client = this.client;
    if (!client) return;
    const ts = this.engineStartMs + k * cycleMs;
    for (const { asset, engine } of this.engines) {
      const values = engineRow(engine, k);
      client.publish(`plant/${asset}/row`, JSON.stringify({ ts, values }), { qos: 0 }, (err) => {
        if (err) this.log.debug({ err: errorMessage(err) }, "plant publish failed");
      });
      this.published++;
    }
  }

  /** True remaining useful life (cycles) of a simulated engine at event time `tsMs`, if `asset` is one. */
  engineRul(asset: string, tsMs: number): number | undefined {
    const e = this.engines.find((x) => x.asset === asset);
    if (!e) return undefined;
    const cycleMs = this.options.engineCycleMs ?? 1000;
    return engineTruth(e.engine, Math.round((tsMs - this.engineStartMs) / cycleMs)).rul;
  }

  /** Remaining life of each machine now, for the demo's summary lines. */
  truth(nowMs: number): { asset: string; health: number; msToFailure: number }[] {
    return this.machines.map(({ asset, machine }) => {
      const t = groundTruth(machine, nowMs);
      return { asset, health: t.health, msToFailure: t.remainingMs };
    });
  }

  private tick(): void {
    const client = this.client;
    if (!client) return;
    const ts = Date.now();
    for (const { asset, machine } of this.machines) {
      const values = sample(machine, ts);
      client.publish(`plant/${asset}/row`, JSON.stringify({ ts, values }), { qos: 0 }, (err) => {
        if (err) this.log.debug({ err: errorMessage(err) }, "plant publish failed");
      });
      this.published++;
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.engineTimer) clearInterval(this.engineTimer);
    this.timer = undefined;
    this.engineTimer = undefined;
    const client = this.client;
    this.client = undefined;
    if (client) await client.endAsync().catch(() => undefined);
  }
}
