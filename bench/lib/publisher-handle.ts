/**
 * The measuring process's handle on the publisher child (`bench/publisher.ts`): starts it with
 * tsx, measures the clock offset between the two processes, and runs plans.
 */

import { fork, type ChildProcess } from "node:child_process";
import { compiled } from "./paths.js";
import { nowMs } from "./clock.js";
import type { FromChild, RunPlan, ToChild } from "./protocol.js";

export interface PublishResult {
  /** Parent clock. */
  startedMs: number;
  endedMs: number;
  sent: number;
  /** Parent clock, per message (row-major). */
  sentAtMs: Float64Array;
}

export class PublisherHandle {
  private offsetMs = 0;
  private waiters: ((msg: FromChild) => boolean)[] = [];

  private constructor(private readonly child: ChildProcess) {
    child.on("message", (msg: FromChild) => {
      if (msg.type === "error") {
        console.error(`publisher error: ${msg.message}`);
      }
      this.waiters = this.waiters.filter((w) => !w(msg));
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  static async start(): Promise<PublisherHandle> {
    const file = compiled("publisher.js");
    const child = fork(file, [], {
      execArgv: [],
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const handle = new PublisherHandle(child);
    await handle.measureOffset();
    return handle;
  }

  private request<T extends FromChild["type"]>(
    msg: ToChild,
    type: T,
    timeoutMs = 60_000,
  ): Promise<Extract<FromChild, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`publisher: no ${type} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push((m) => {
        if (m.type === "error") {
          clearTimeout(timer);
          reject(new Error(m.message));
          return true;
        }
        if (m.type !== type) return false;
        clearTimeout(timer);
        resolve(m as Extract<FromChild, { type: T }>);
        return true;
      });
      this.child.send(msg);
    });
  }

  /** child clock − parent clock, from the IPC round trip with the smallest delay. */
  async measureOffset(rounds = 20): Promise<number> {
    let best = { rtt: Number.POSITIVE_INFINITY, offset: 0 };
    for (let id = 0; id < rounds; id++) {
      const t1 = nowMs();
      const pong = await this.request({ type: "ping", id }, "pong");
      const t2 = nowMs();
      if (t2 - t1 < best.rtt) best = { rtt: t2 - t1, offset: pong.childMs - (t1 + t2) / 2 };
    }
    this.offsetMs = best.offset;
    return best.offset;
  }

  async prepare(plan: RunPlan): Promise<number> {
    return (await this.request({ type: "prepare", plan }, "prepared")).payloadBytes;
  }

  /** Publishes the prepared plan; resolves when the child has sent everything. */
  async go(timeoutMs: number): Promise<PublishResult> {
    const done = await this.request({ type: "go" }, "done", timeoutMs);
    const o = this.offsetMs;
    const sentAtMs = done.sentAtMs.map((t) => t - o);
    return { startedMs: done.startedMs - o, endedMs: done.endedMs - o, sent: done.sent, sentAtMs };
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.send({ type: "exit" } satisfies ToChild);
    const timer = setTimeout(() => this.child.kill(), 5_000);
    await exited;
    clearTimeout(timer);
  }
}
