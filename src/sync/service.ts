/**
 * Cloud sync: one worker per configured destination, and the data-loss report.
 *
 * Contract: the constructor does no I/O. `start()` registers the destinations' cursors in the
 * store (new ones start with everything the store holds; cursors of destinations no longer
 * configured are dropped, so they no longer hold records back) and starts each worker.
 * `notify()` wakes the workers after a commit. When a destination has just delivered and the
 * ledger holds losses not yet reported, one `data-loss` event with those counts is committed
 * (it then travels like any record). `stop()` stops the workers (a batch in flight is left to
 * be re-sent after a restart) and never throws.
 */

import { errorMessage } from "../errors.js";
import type { Logger } from "../system/logger.js";
import type { Loss, NewRecord, Store } from "../store/types.js";
import type { DestinationSpec } from "./config.js";
import { HttpDestination } from "./http-destination.js";
import { MqttDestination } from "./mqtt-destination.js";
import type { Destination } from "./types.js";
import { SyncWorker, type WorkerStatus } from "./worker.js";

export interface SyncStatus {
  destinations: WorkerStatus[];
}

/** The `data-loss` event: what the ledger counted since the last report. */
export function dataLossEvent(gatewayId: string, losses: readonly Loss[], nowMs: number): NewRecord {
  return {
    kind: "event",
    asset: null,
    tsMs: nowMs,
    data: {
      gatewayId,
      type: "data-loss",
      ts: nowMs,
      losses: losses.map((l) => ({ reason: l.reason, kind: l.kind, count: l.count })),
      total: losses.reduce((n, l) => n + l.count, 0),
    },
  };
}

export class SyncService {
  private readonly workers: SyncWorker[] = [];
  private readonly mqtt: MqttDestination[] = [];
  private started = false;
  /** Set when a loss may have been counted; cleared once a report found nothing (cheap drain path). */
  private lossesMaybeUnreported = true;
  private lastLossCheckMs = 0;

  constructor(
    private readonly specs: readonly DestinationSpec[],
    private readonly store: Store,
    private readonly gatewayId: string,
    private readonly log: Logger,
    private readonly options: {
      random?: () => number;
      makeDestination?: (spec: DestinationSpec) => Destination;
    } = {},
  ) {}

  start(): void {
    if (this.started) return;
    this.started = true;
    this.store.setDestinations(this.specs.map((s) => s.name));
    for (const spec of this.specs) {
      const log = this.log.child({ destination: spec.name });
      const destination =
        this.options.makeDestination?.(spec) ??
        (spec.type === "http"
          ? new HttpDestination(spec, this.gatewayId)
          : new MqttDestination(spec, this.gatewayId, log));
      if (destination instanceof MqttDestination) this.mqtt.push(destination);
      const worker = new SyncWorker(spec, destination, this.store, log, {
        onDelivered: () => {
          // Losses may also be counted elsewhere (dead letters, another process's
          // `vigil deadletter drop`): look at the ledger at least once a second while delivering.
          const now = Date.now();
          if (this.lossesMaybeUnreported || now - this.lastLossCheckMs >= 1_000) {
            this.lastLossCheckMs = now;
            this.reportLosses();
          }
        },
        onDeadLettered: () => this.reportLosses(),
        ...(this.options.random ? { random: this.options.random } : {}),
      });
      this.workers.push(worker);
      worker.start();
    }
    if (this.specs.length > 0)
      this.log.info({ destinations: this.specs.map((s) => `${s.name} (${s.type})`) }, "cloud sync started");
  }

  notify(): void {
    for (const w of this.workers) w.notify();
  }

  /** Commits a data-loss event if the ledger has unreported counts and some destination works. */
  reportLosses(): void {
    this.lossesMaybeUnreported = true;
    if (this.workers.length > 0 && !this.workers.some((w) => w.linkUp())) return;
    try {
      const event = this.store.reportLosses((losses) => dataLossEvent(this.gatewayId, losses, Date.now()));
      if (!event) this.lossesMaybeUnreported = false;
      if (event) {
        this.log.warn({ seq: event.seq, losses: event.data.losses }, "data-loss event queued for the cloud");
        this.notify();
      }
    } catch (err) {
      this.log.debug({ err: errorMessage(err) }, "data-loss report not committed yet");
    }
  }

  /** The MQTT destinations, started (the gateway takes model-update requests on them). */
  mqttDestinations(): readonly MqttDestination[] {
    return this.mqtt;
  }

  status(): SyncStatus {
    return { destinations: this.workers.map((w) => w.status()) };
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.workers.map((w) =>
        w.stop().catch((err: unknown) => {
          this.log.error({ destination: w.name, err: errorMessage(err) }, "error stopping sync worker");
        }),
      ),
    );
    this.workers.length = 0;
    this.mqtt.length = 0;
  }
}
