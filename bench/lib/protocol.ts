/** Messages between the measuring process and the publisher child (`bench/publisher.ts`), over IPC. */

import type { WorkloadName } from "./workload.js";

export interface RunPlan {
  /** Broker to publish to. */
  url: string;
  /** Which traffic (lib/workload.ts). */
  workload: WorkloadName;
  assets: number;
  /** Signals per row (the model's and others). */
  signals: number;
  /** First topic level: rows go to `<topicRoot>/<asset>/row` ("plant" for Vigil and Node-RED). */
  topicRoot: string;
  t0Ms: number;
  /** Rows [rowFrom, rowTo) of every asset, round-major. */
  rowFrom: number;
  rowTo: number;
  /**
   * `flood`: as fast as the connection takes them (at most `inflight` publishes waiting for the
   * socket). `paced`: `ratePerSec` messages a second, evenly spaced.
   */
  mode: "flood" | "paced";
  ratePerSec: number;
  inflight: number;
}

export type ToChild =
  { type: "ping"; id: number } | { type: "prepare"; plan: RunPlan } | { type: "go" } | { type: "exit" };

export type FromChild =
  | { type: "pong"; id: number; childMs: number }
  | { type: "prepared"; payloadBytes: number }
  | {
      type: "done";
      /** Child clock (see lib/clock.ts): first publish call, last publish completed. */
      startedMs: number;
      endedMs: number;
      sent: number;
      /** Child clock, per message in send order (row-major): when publish was called. */
      sentAtMs: Float64Array;
    }
  | { type: "error"; message: string };
