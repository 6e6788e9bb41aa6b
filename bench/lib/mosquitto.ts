/**
 * A private mosquitto for the bench: started from the `mosquitto` binary (Debian:
 * `apt-get install mosquitto`) with a temp config — one listener on 127.0.0.1 at a free port,
 * anonymous, no persistence, no logging, no queue limits (so QoS 0 floods are not thinned by
 * the broker) — and stopped with SIGTERM. `find()` says why it cannot run when it cannot.
 */

import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { sleep } from "./clock.js";

const CANDIDATES = [
  "/usr/sbin/mosquitto",
  "/usr/local/sbin/mosquitto",
  "/usr/bin/mosquitto",
  "/opt/homebrew/sbin/mosquitto",
];

export function findMosquitto(): { binary: string } | { missing: string } {
  const fromPath = (process.env.PATH ?? "").split(path.delimiter).map((d) => path.join(d, "mosquitto"));
  for (const file of [...fromPath, ...CANDIDATES]) {
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return { binary: file };
    } catch {
      // next
    }
  }
  return { missing: "no mosquitto binary on PATH or in /usr/sbin (Debian: apt-get install mosquitto)" };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

export class Mosquitto {
  private constructor(
    private readonly proc: ChildProcess,
    private readonly dir: string,
    readonly url: string,
    readonly version: string,
  ) {}

  get pid(): number {
    return this.proc.pid ?? 0;
  }

  static async start(binary: string): Promise<Mosquitto> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-bench-mosquitto-"));
    const port = await freePort();
    const conf = path.join(dir, "mosquitto.conf");
    fs.writeFileSync(
      conf,
      [
        `listener ${port} 127.0.0.1`,
        "allow_anonymous true",
        "persistence false",
        "log_dest none",
        "max_queued_messages 0",
        "max_queued_bytes 0",
        "max_inflight_messages 0",
        // Nagle off, as on the embedded broker (docs/operations.md): latency is what is measured.
        "set_tcp_nodelay true",
        "",
      ].join("\n"),
    );
    const proc = spawn(binary, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    proc.stderr?.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    for (let i = 0; i < 200; i++) {
      if (proc.exitCode !== null) throw new Error(`mosquitto exited (${proc.exitCode}): ${stderr.trim()}`);
      if (await canConnect(port)) {
        const version = await new Promise<string>((resolve) => {
          const v = spawn(binary, ["-h"], { stdio: ["ignore", "pipe", "ignore"] });
          let out = "";
          v.stdout.on("data", (d: Buffer) => (out += d.toString()));
          v.on("close", () => resolve(/mosquitto version (\S+)/.exec(out)?.[1] ?? "?"));
        });
        return new Mosquitto(proc, dir, `mqtt://127.0.0.1:${port}`, version);
      }
      await sleep(25);
    }
    proc.kill("SIGKILL");
    throw new Error(`mosquitto did not listen on 127.0.0.1:${port} within 5 s: ${stderr.trim()}`);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null) {
      const exited = new Promise<void>((resolve) => this.proc.once("exit", () => resolve()));
      this.proc.kill("SIGTERM");
      const timer = setTimeout(() => this.proc.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
