/**
 * The simulated plant of `vigil demo`: N machines (`pump-01`, …) wearing toward failure,
 * each publishing one row of every signal every `sampleIntervalMs` on `plant/<asset>/row`,
 * `{"ts", "values": {temperature, vibration, pressure, current}}`, like real sensors would.
 *
 * Contract: `start()` connects to the broker and starts publishing; `stop()` stops the timer
 * and disconnects, never throwing. The physics is `plant-physics.ts` (pure, seeded); this
 * module only adds the clock and the MQTT client. Readings are QoS 0, as typical sensors send.
 */

import { errorMessage } from "../errors.js";
import { connectOnce } from "../ingest/mqtt-client.js";
import type { Logger } from "../system/logger.js";
import { createMachine, groundTruth, sample, type Machine } from "./plant-physics.js";

export interface PlantOptions {
  brokerUrl: string;
  machines: number;
  sampleIntervalMs: number;
  meanLifeMs: number;
  seed: number;
  username?: string;
  password?: string;
}

export class SimulatedPlant {
  private timer: NodeJS.Timeout | undefined;
  private client: Awaited<ReturnType<typeof connectOnce>> | undefined;
  private machines: { asset: string; machine: Machine }[] = [];
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
    this.timer = undefined;
    const client = this.client;
    this.client = undefined;
    if (client) await client.endAsync().catch(() => undefined);
  }
}
