/**
 * sd_notify logic with a recording sender and fake timers: which messages go out, when the
 * watchdog is fed, and that nothing happens without NOTIFY_SOCKET. The real `systemd-notify`
 * against a real unix datagram socket is exercised by test/integration/service.test.ts.
 */

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SdNotify, type HealthCheck, type NotifySender } from "../../src/system/sd-notify.js";
import { silentLogger } from "../../src/system/logger.js";

function recorder(): { sender: NotifySender; sent: string[][] } {
  const sent: string[][] = [];
  return {
    sent,
    sender: (args) => {
      sent.push([...args]);
      return Promise.resolve();
    },
  };
}

const SOCKET = { NOTIFY_SOCKET: "/run/systemd/notify" };

describe("SdNotify", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("sends nothing and starts no watchdog without NOTIFY_SOCKET", async () => {
    const { sender, sent } = recorder();
    const n = new SdNotify({ WATCHDOG_USEC: "1000000" }, sender, silentLogger(), 42);
    expect(n.enabled).toBe(false);
    await n.ready("ready");
    await n.status("x");
    await n.stopping();
    await n.reloading();
    expect(n.startWatchdog(() => ({ ok: true, reasons: [] }))).toBeUndefined();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(sent).toEqual([]);
  });

  it("READY, STATUS, RELOADING with MONOTONIC_USEC, STOPPING, in order, one line each", async () => {
    const { sender, sent } = recorder();
    const n = new SdNotify(SOCKET, sender, silentLogger(), 42);
    void n.status("starting");
    void n.ready("ready: 1 model(s)\nserving");
    void n.reloading();
    await n.stopping();
    expect(sent[0]).toEqual(["STATUS=starting"]);
    expect(sent[1]).toEqual(["READY=1", "STATUS=ready: 1 model(s) serving"]);
    expect(sent[2]?.[0]).toBe("RELOADING=1");
    expect(sent[2]?.[1]).toMatch(/^MONOTONIC_USEC=\d+$/);
    expect(sent[3]).toEqual(["STOPPING=1", "STATUS=stopping: finishing windows in flight"]);
  });

  it("feeds the watchdog at half of WATCHDOG_USEC while healthy, and not while unhealthy", async () => {
    const { sender, sent } = recorder();
    const n = new SdNotify({ ...SOCKET, WATCHDOG_USEC: "2000000" }, sender, silentLogger(), 42);
    let health: HealthCheck = { ok: true, reasons: [] };
    expect(n.startWatchdog(() => health)).toBe(1_000);
    await vi.advanceTimersByTimeAsync(0);
    expect(sent).toEqual([["WATCHDOG=1"]]); // at once, then every second
    await vi.advanceTimersByTimeAsync(3_000);
    expect(sent.filter((m) => m[0] === "WATCHDOG=1")).toHaveLength(4);

    health = { ok: false, reasons: ["event loop blocked for 9000 ms (limit 5000 ms)"] };
    sent.length = 0;
    await vi.advanceTimersByTimeAsync(3_000);
    expect(sent.some((m) => m[0] === "WATCHDOG=1")).toBe(false);
    expect(sent[0]).toEqual(["STATUS=unhealthy: event loop blocked for 9000 ms (limit 5000 ms)"]);

    health = { ok: true, reasons: [] };
    sent.length = 0;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(sent).toEqual([["WATCHDOG=1"]]);
    n.stopWatchdog();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(sent).toHaveLength(1);
  });

  it("a health check that throws counts as unhealthy", async () => {
    const { sender, sent } = recorder();
    const n = new SdNotify({ ...SOCKET, WATCHDOG_USEC: "1000000" }, sender, silentLogger(), 42);
    n.startWatchdog(() => {
      throw new Error("boom");
    });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(sent.every((m) => m[0] !== "WATCHDOG=1")).toBe(true);
    expect(sent[0]?.[0]).toBe("STATUS=unhealthy: health check failed: boom");
    n.stopWatchdog();
  });

  it("no watchdog when WATCHDOG_PID names another process, or WATCHDOG_USEC is absent or bad", () => {
    const { sender } = recorder();
    const log = silentLogger();
    expect(
      new SdNotify({ ...SOCKET, WATCHDOG_USEC: "1000000", WATCHDOG_PID: "7" }, sender, log, 42).watchdogMs(),
    ).toBe(undefined);
    expect(
      new SdNotify({ ...SOCKET, WATCHDOG_USEC: "1000000", WATCHDOG_PID: "42" }, sender, log, 42).watchdogMs(),
    ).toBe(1_000);
    expect(new SdNotify(SOCKET, sender, log, 42).watchdogMs()).toBeUndefined();
    expect(new SdNotify({ ...SOCKET, WATCHDOG_USEC: "soon" }, sender, log, 42).watchdogMs()).toBeUndefined();
    expect(new SdNotify({ ...SOCKET, WATCHDOG_USEC: "0" }, sender, log, 42).watchdogMs()).toBeUndefined();
  });

  it("a failing sender is logged, never thrown; later messages still go out", async () => {
    const sent: string[][] = [];
    let fail = true;
    const sender: NotifySender = (args) => {
      sent.push([...args]);
      return fail ? Promise.reject(new Error("no socket")) : Promise.resolve();
    };
    const n = new SdNotify(SOCKET, sender, silentLogger(), 42);
    await expect(n.ready("ready")).resolves.toBeUndefined();
    fail = false;
    await n.status("still here");
    expect(sent).toEqual([["READY=1", "STATUS=ready"], ["STATUS=still here"]]);
  });

  it("skips a watchdog ping while an earlier message is still on its way", async () => {
    const sent: string[][] = [];
    let release: () => void = () => undefined;
    const sender: NotifySender = (args) => {
      sent.push([...args]);
      return args[0] === "STATUS=slow" ? new Promise((resolve) => (release = resolve)) : Promise.resolve();
    };
    const n = new SdNotify({ ...SOCKET, WATCHDOG_USEC: "1000000" }, sender, silentLogger(), 42);
    void n.status("slow");
    n.startWatchdog(() => ({ ok: true, reasons: [] }));
    await vi.advanceTimersByTimeAsync(2_000);
    expect(sent).toEqual([["STATUS=slow"]]);
    release();
    await vi.advanceTimersByTimeAsync(500);
    expect(sent.at(-1)).toEqual(["WATCHDOG=1"]);
    n.stopWatchdog();
  });
});
