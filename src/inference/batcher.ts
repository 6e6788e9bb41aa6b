/**
 * Dynamic batching of one model's windows across assets, with bounded queues and in-order results.
 *
 * Contract: `push(item)` queues an item (a window of some asset). Batches of up to `maxBatch`
 * items are dispatched to `infer` while fewer than `maxInFlight` batches are outstanding — at
 * once when `maxBatch` items wait; otherwise when the oldest waiting item has waited
 * `maxDelayMs` (0: at the end of the current event-loop turn, so a burst of messages read in
 * one turn is one batch). While every slot is busy, items keep queueing, so batches grow with
 * the load. Results are handed to `deliver` strictly in dispatch order (a batch that finishes
 * early waits for the ones before it), and consecutive finished batches are handed over in ONE
 * call (up to `maxDeliveryItems`), so the caller can commit them in one transaction. Items of one asset therefore come out
 * in the order they were pushed. A failed batch is delivered as a failure, in its place.
 *
 * Overload policy (the newest data wins): at most `maxQueuedPerAsset` items of one asset wait;
 * a new one beyond that drops that asset's oldest waiting item (`asset_backlog`). At most
 * `maxQueued` items wait in all; beyond that the oldest waiting item of all is dropped
 * (`queue_full`). Items already dispatched are never dropped. Every drop is counted by reason.
 * `drain()` dispatches everything without waiting for `maxDelayMs` and resolves when all is
 * delivered. `holdUntil(p)` dispatches nothing until `p` settles (items keep queueing, with the
 * same overload policy): a new version of a model waits for the old version's windows. Timers are the global ones (fake timers in tests); time comes from `now`.
 */

export interface BatcherOptions {
  maxBatch: number;
  maxDelayMs: number;
  maxQueued: number;
  maxQueuedPerAsset: number;
  maxInFlight: number;
  /**
   * Most items handed over in one `deliver` call (at least one batch always is): bounds the
   * caller's work per call — one commit — and so the event-loop stall it causes. Default: no bound.
   */
  maxDeliveryItems?: number;
}

export type DropReason = "asset_backlog" | "queue_full";

export type Finished<T, R> = { items: T[]; ok: true; result: R } | { items: T[]; ok: false; error: unknown };

export interface BatcherCounters {
  pushed: number;
  batches: number;
  items: number;
  maxBatchSeen: number;
  /** Deliveries; fewer than batches when finished batches were handed over together. */
  deliveries: number;
  dropped: Record<DropReason, number>;
}

interface Entry<T> {
  item: T;
  key: string;
  atMs: number;
  /** The end-of-turn tick it was pushed in (maxDelayMs 0). */
  tick: number;
  dropped: boolean;
}

interface Flight<T, R> {
  items: T[];
  done: Finished<T, R> | undefined;
}

export class DynamicBatcher<T, R> {
  readonly counters: BatcherCounters = {
    pushed: 0,
    batches: 0,
    items: 0,
    maxBatchSeen: 0,
    deliveries: 0,
    dropped: { asset_backlog: 0, queue_full: 0 },
  };
  private queue: Entry<T>[] = [];
  private head = 0;
  private live = 0;
  private readonly perKey = new Map<string, Entry<T>[]>();
  /** Dispatched batches, oldest first, until delivered. */
  private readonly flights: Flight<T, R>[] = [];
  private delivering = false;
  /** `drain()` calls in progress: while any, nothing waits for `maxDelayMs`. */
  private draining = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerDueMs = Number.POSITIVE_INFINITY;
  private immediate: NodeJS.Immediate | undefined;
  private tick = 0;
  /** `holdUntil` promises not settled yet: while any, nothing is dispatched. */
  private holds = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly options: BatcherOptions,
    private readonly keyOf: (item: T) => string,
    private readonly infer: (items: T[]) => Promise<R>,
    private readonly deliver: (finished: Finished<T, R>[]) => void | Promise<void>,
    private readonly hooks: {
      now?: () => number;
      onDrop?: (item: T, reason: DropReason) => void;
      onDeliverError?: (err: unknown) => void;
    } = {},
  ) {
    if (options.maxBatch < 1 || options.maxInFlight < 1)
      throw new RangeError("maxBatch and maxInFlight must be >= 1");
  }

  private now(): number {
    return this.hooks.now ? this.hooks.now() : performance.now();
  }

  /** Items waiting to be dispatched. */
  get queued(): number {
    return this.live;
  }

  /** Batches dispatched and not yet delivered. */
  get inFlight(): number {
    return this.flights.length;
  }

  push(item: T): void {
    this.counters.pushed++;
    const key = this.keyOf(item);
    let mine = this.perKey.get(key);
    if (!mine) {
      mine = [];
      this.perKey.set(key, mine);
    }
    if (mine.length >= this.options.maxQueuedPerAsset) {
      const oldest = mine.shift();
      if (oldest) this.drop(oldest, "asset_backlog");
    } else if (this.live >= this.options.maxQueued) {
      const oldest = this.oldestLive();
      if (oldest) {
        const list = this.perKey.get(oldest.key);
        list?.shift(); // the oldest of all is the oldest of its key
        if (list?.length === 0 && oldest.key !== key) this.perKey.delete(oldest.key);
        this.drop(oldest, "queue_full");
      }
    }
    const entry: Entry<T> = { item, key, atMs: this.now(), tick: this.tick, dropped: false };
    mine.push(entry);
    this.queue.push(entry);
    this.live++;
    this.pump();
  }

  private drop(entry: Entry<T>, reason: DropReason): void {
    entry.dropped = true;
    this.live--;
    this.counters.dropped[reason]++;
    this.hooks.onDrop?.(entry.item, reason);
  }

  private oldestLive(): Entry<T> | undefined {
    while (this.head < this.queue.length) {
      const e = this.queue[this.head];
      if (e && !e.dropped) return e;
      this.head++;
    }
    return undefined;
  }

  /** Takes up to `n` items from the front of the queue. */
  private take(n: number): T[] {
    const items: T[] = [];
    while (items.length < n) {
      const e = this.oldestLive();
      if (!e) break;
      this.head++;
      this.live--;
      const list = this.perKey.get(e.key);
      list?.shift();
      if (list?.length === 0) this.perKey.delete(e.key);
      items.push(e.item);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return items;
  }

  /** Whether the oldest waiting item may go now without waiting for more. */
  private isDue(e: Entry<T>): boolean {
    return this.options.maxDelayMs <= 0 ? e.tick < this.tick : this.now() >= e.atMs + this.options.maxDelayMs;
  }

  /** Dispatches nothing until `previous` settles (fulfilled or rejected). */
  holdUntil(previous: Promise<unknown>): void {
    this.holds++;
    const release = (): void => {
      this.holds--;
      this.pump();
    };
    previous.then(release, release);
  }

  private pump(): void {
    if (this.holds > 0) return;
    while (this.flights.length < this.options.maxInFlight && this.live > 0) {
      const oldest = this.oldestLive();
      if (!oldest) break;
      if (!(this.draining > 0 || this.live >= this.options.maxBatch || this.isDue(oldest))) {
        this.schedule(oldest);
        break;
      }
      this.dispatch(this.take(this.options.maxBatch));
    }
    if (this.live === 0 && this.flights.length === 0) this.wakeIdle();
  }

  /** Comes back when the oldest item is due: the end of this turn, or its `maxDelayMs`. */
  private schedule(oldest: Entry<T>): void {
    if (this.options.maxDelayMs <= 0) {
      this.immediate ??= setImmediate(() => {
        this.immediate = undefined;
        this.tick++;
        this.pump();
      });
      return;
    }
    this.arm(oldest.atMs + this.options.maxDelayMs);
  }

  private arm(dueMs: number): void {
    if (this.timer && this.timerDueMs <= dueMs) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerDueMs = dueMs;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerDueMs = Number.POSITIVE_INFINITY;
        this.pump();
      },
      Math.max(0, dueMs - this.now()),
    );
  }

  private dispatch(items: T[]): void {
    if (items.length === 0) return;
    this.counters.batches++;
    this.counters.items += items.length;
    this.counters.maxBatchSeen = Math.max(this.counters.maxBatchSeen, items.length);
    const flight: Flight<T, R> = { items, done: undefined };
    this.flights.push(flight);
    let started: Promise<R>;
    try {
      started = this.infer(items);
    } catch (err) {
      started = Promise.reject(err);
    }
    started.then(
      (result) => this.finish(flight, { items, ok: true, result }),
      (error: unknown) => this.finish(flight, { items, ok: false, error }),
    );
  }

  private finish(flight: Flight<T, R>, done: Finished<T, R>): void {
    flight.done = done;
    this.deliverReady().catch((err: unknown) => this.hooks.onDeliverError?.(err));
  }

  /** Hands every finished batch at the front over, in order, one call per run of finished batches. */
  private async deliverReady(): Promise<void> {
    if (this.delivering) return;
    this.delivering = true;
    try {
      for (;;) {
        const ready: Finished<T, R>[] = [];
        let items = 0;
        const cap = this.options.maxDeliveryItems ?? Number.POSITIVE_INFINITY;
        for (const f of this.flights) {
          if (!f.done || (ready.length > 0 && items + f.items.length > cap)) break;
          ready.push(f.done);
          items += f.items.length;
        }
        if (ready.length === 0) break;
        this.counters.deliveries++;
        try {
          await this.deliver(ready);
        } catch (err) {
          this.hooks.onDeliverError?.(err);
        }
        this.flights.splice(0, ready.length);
        this.pump();
      }
    } finally {
      this.delivering = false;
    }
    if (this.live === 0 && this.flights.length === 0) this.wakeIdle();
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Dispatches everything waiting (no `maxDelayMs` wait) and resolves when all is delivered. */
  async drain(): Promise<void> {
    this.draining++;
    try {
      this.pump();
      while (this.live > 0 || this.flights.length > 0) {
        await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      }
    } finally {
      this.draining--;
    }
  }
}
