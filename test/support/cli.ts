/**
 * Runs the `vigil` CLI as a child process from the TypeScript sources (`node --import tsx
 * src/cli.ts ...`, no build needed), in the repo root. `runCli` waits for the exit and
 * collects the output; `spawnCli` hands back the running child with helpers that wait on
 * events (a JSON log line, the exit), never on sleeps.
 */

import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import readline from "node:readline";

export const REPO_ROOT = path.resolve(import.meta.dirname, "../..");

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from spawn to exit. */
  elapsedMs: number;
}

function cliEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  // Stray VIGIL_* variables from the developer's shell must not change what a test sees.
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("VIGIL_")));
  return { ...clean, NO_COLOR: "1", ...env };
}

function nodeArgs(args: readonly string[]): string[] {
  return ["--import", "tsx", path.join("src", "cli.ts"), ...args];
}

/** Runs `vigil <args>` to completion; rejects only when it outlives `timeoutMs` (then kills it). */
export function runCli(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliResult> {
  const started = Date.now();
  const child = spawn(process.execPath, nodeArgs(args), {
    cwd: REPO_ROOT,
    env: cliEnv(options.env ?? {}),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const timeoutMs = options.timeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `vigil ${args.join(" ")} still running after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`,
        ),
      );
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, elapsedMs: Date.now() - started });
    });
  });
}

export interface LogLine {
  level?: number;
  msg?: string;
  [key: string]: unknown;
}

/** A long-running `vigil` child (e.g. `run`) whose stdout carries JSON log lines. */
export class CliProcess {
  readonly logs: LogLine[] = [];
  stderr = "";
  /** Stdout lines that were not JSON (there should be none with `log.format: json`). */
  readonly otherLines: string[] = [];
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: { check: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  constructor(readonly child: ChildProcess) {
    const out = child.stdout;
    if (!out || !child.stderr) throw new Error("CliProcess needs piped stdout and stderr");
    readline.createInterface({ input: out }).on("line", (line) => {
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        this.otherLines.push(line);
        return;
      }
      this.logs.push(parsed);
      this.waiters = this.waiters.filter((w) => {
        if (!w.check(parsed)) return true;
        w.resolve(parsed);
        return false;
      });
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => (this.stderr += d));
    // 'close' comes after 'exit' once stdout and stderr are drained, so every log line the
    // child wrote has been seen by the time a test looks at `logs` after the exit.
    this.exited = new Promise((resolve) => {
      child.on("close", (code, signal) => resolve({ code, signal }));
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error("child has no pid");
    return this.child.pid;
  }

  /** Resolves with the first log line (already seen or to come) whose `msg` is `msg`. */
  waitForLog(msg: string, timeoutMs = 10_000): Promise<LogLine> {
    const seen = this.logs.find((l) => l.msg === msg);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no log line "${msg}" after ${timeoutMs} ms; stderr: ${this.stderr}`));
      }, timeoutMs);
      const exitFirst = (): void => {
        clearTimeout(timer);
        reject(new Error(`exited before logging "${msg}"; stderr: ${this.stderr}`));
      };
      void this.exited.then(exitFirst);
      this.waiters.push({
        check: (l) => l.msg === msg,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }

  /** Resolves with the exit code and signal; rejects (and kills the child) after `timeoutMs`. */
  waitForExit(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.child.kill("SIGKILL");
        reject(new Error(`still running ${timeoutMs} ms later; stderr: ${this.stderr}`));
      }, timeoutMs);
      void this.exited.then((r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
  }

  /** Kills the child if it still runs (for afterEach). */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }
}

export function spawnCli(args: readonly string[], options: { env?: NodeJS.ProcessEnv } = {}): CliProcess {
  const child = spawn(process.execPath, nodeArgs(args), {
    cwd: REPO_ROOT,
    env: cliEnv(options.env ?? {}),
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new CliProcess(child);
}
