/**
 * Who used the CPU during a measurement: this benchmark's processes, or others on the same
 * machine (a shared or virtual machine makes figures move; printing the background load beside
 * them says how far to trust them). Linux only (/proc); elsewhere `stop()` returns undefined.
 *
 * Figures are in cores (2.0 = both cores of a 2-core machine busy the whole time).
 */

import fs from "node:fs";
import { nowMs } from "./clock.js";

/** Clock ticks per second of /proc (USER_HZ; 100 on every mainstream Linux build). */
const TICKS_PER_SEC = 100;

interface MachineTicks {
  busy: number;
  steal: number;
}

function machineTicks(): MachineTicks | undefined {
  try {
    const line = fs.readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
    return { busy: user + nice + system + irq + softirq, steal };
  } catch {
    return undefined;
  }
}

function processTicks(pid: number): number | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return undefined;
  }
}

export interface CpuShare {
  seconds: number;
  /** CPU seconds of this process (all its threads), from process.cpuUsage(). */
  hostCpuSeconds: number;
  /** Cores used by the listed processes (this one and the publisher child). */
  ours: number;
  /** Cores used by everything else on the machine (kernel work for our sockets included). */
  others: number;
  /** Cores the hypervisor gave to other guests while we wanted them (steal). */
  steal: number;
}

export class CpuMeter {
  private readonly startMs = nowMs();
  private readonly machine = machineTicks();
  private readonly host = process.cpuUsage();
  private readonly procs: Map<number, number | undefined>;

  constructor(private readonly pids: readonly number[]) {
    this.procs = new Map(pids.map((p) => [p, processTicks(p)]));
  }

  stop(): CpuShare | undefined {
    const seconds = (nowMs() - this.startMs) / 1000;
    const host = process.cpuUsage(this.host);
    const hostCpuSeconds = (host.user + host.system) / 1e6;
    const m = machineTicks();
    if (!m || !this.machine || seconds <= 0) return undefined;
    let ours = 0;
    for (const pid of this.pids) {
      const before = this.procs.get(pid);
      const after = processTicks(pid);
      if (before !== undefined && after !== undefined) ours += after - before;
    }
    const perSec = (ticks: number): number => ticks / TICKS_PER_SEC / seconds;
    return {
      seconds,
      hostCpuSeconds,
      ours: perSec(ours),
      others: Math.max(0, perSec(m.busy - this.machine.busy - ours)),
      steal: perSec(m.steal - this.machine.steal),
    };
  }
}
