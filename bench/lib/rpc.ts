/**
 * Request/response over a child process's IPC channel, for the bench's host processes (the
 * gateway, the relay, Node-RED each run in a process of their own, so that RSS, CPU and
 * event-loop delay are theirs alone). Parent: `RpcChild.fork(file)` then `call(method, arg)`;
 * child: `serve({method: handler})`. Every call has a timeout; a child that exits fails every
 * call waiting on it.
 */

import { fork, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";

interface Request {
  rpc: "call";
  id: number;
  method: string;
  arg: unknown;
}

interface Response {
  rpc: "reply";
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

export class RpcChild {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private exited = false;

  private constructor(readonly child: ChildProcess) {
    child.on("message", (msg: Response) => {
      if (msg.rpc !== "reply") return;
      const w = this.waiting.get(msg.id);
      if (!w) return;
      this.waiting.delete(msg.id);
      if (msg.ok) w.resolve(msg.result);
      else w.reject(new Error(msg.error ?? "failed"));
    });
    child.on("exit", (code, signal) => {
      this.exited = true;
      for (const w of this.waiting.values()) w.reject(new Error(`host exited (${signal ?? code})`));
      this.waiting.clear();
    });
  }

  /** Forks the compiled module `file` with plain node. */
  static fork(file: string, env: NodeJS.ProcessEnv = {}): RpcChild {
    const child = fork(file, [], {
      execArgv: [],
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: { ...process.env, ...env },
    });
    return new RpcChild(child);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  call<T>(method: string, arg: unknown = undefined, timeoutMs = 60_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`host has exited; cannot call ${method}`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`host: ${method} took more than ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ rpc: "call", id, method, arg } satisfies Request);
    });
  }

  /** Asks the child to exit; kills it if it has not after `graceMs`. */
  async close(graceMs = 10_000): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.disconnect();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

export type Handlers = Record<string, (arg: never) => unknown>;

/** Child side: answers calls with `handlers`; exits when the parent disconnects. */
export function serve(handlers: Handlers): void {
  process.on("message", (msg: Request) => {
    if (msg.rpc !== "call") return;
    const handler = handlers[msg.method];
    const reply = (r: Omit<Response, "rpc" | "id">): void => {
      process.send?.({ rpc: "reply", id: msg.id, ...r } satisfies Response);
    };
    if (!handler) {
      reply({ ok: false, error: `no method ${msg.method}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(msg.arg as never))
      .then(
        (result) => reply({ ok: true, result }),
        (err: unknown) =>
          reply({ ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
      );
  });
  process.on("disconnect", () => {
    const stop = handlers.shutdown as (() => Promise<void>) | undefined;
    Promise.resolve(stop?.())
      .catch(() => undefined)
      .finally(() => process.exit(0));
  });
}

/** VmRSS and VmHWM (peak) of this process, bytes (Linux; RSS only elsewhere). */
export function memory(): {
  rssBytes: number;
  peakRssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
} {
  const mu = process.memoryUsage();
  const rssBytes = mu.rss;
  const heap = { heapUsedBytes: mu.heapUsed, heapTotalBytes: mu.heapTotal, externalBytes: mu.external };
  try {
    const text = fs.readFileSync("/proc/self/status", "utf8");
    const hwm = /VmHWM:\s+(\d+) kB/.exec(text)?.[1];
    return { rssBytes, peakRssBytes: hwm ? Number(hwm) * 1024 : rssBytes, ...heap };
  } catch {
    return { rssBytes, peakRssBytes: rssBytes, ...heap };
  }
}

/**
 * Per-run measurements inside a host: event-loop delay (1 ms resolution, subtracted), the
 * largest RSS seen (sampled every 50 ms), CPU time of the whole process (all threads).
 */
export class RunMeter {
  private eld: IntervalHistogram | undefined;
  private peak = 0;
  private timer: NodeJS.Timeout | undefined;
  private cpu = process.cpuUsage();

  start(): void {
    this.eld?.disable();
    this.eld = monitorEventLoopDelay({ resolution: 1 });
    this.eld.enable();
    this.peak = process.memoryUsage.rss();
    this.cpu = process.cpuUsage();
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => {
      this.peak = Math.max(this.peak, process.memoryUsage.rss());
    }, 50);
  }

  stop(): RunMeasure {
    const eld = this.eld;
    eld?.disable();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.peak = Math.max(this.peak, process.memoryUsage.rss());
    const cpu = process.cpuUsage(this.cpu);
    const delay = (ns: number | undefined): number => Math.max(0, (ns ?? 0) / 1e6 - 1);
    return {
      eventLoopDelayMs: {
        p50: delay(eld?.percentile(50)),
        p99: delay(eld?.percentile(99)),
        max: delay(eld?.max),
      },
      peakRssBytes: this.peak,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
  }
}

export interface RunMeasure {
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  peakRssBytes: number;
  /** CPU time of the host process (all its threads) during the run. */
  cpuSeconds: number;
}
