/**
 * The durable record of model updates: `<dataDir>/models/state.json`.
 *
 * Contract: `StateFile.load()` returns the saved state, or an empty one when there is none; a
 * file that cannot be parsed is moved aside (`state.json.corrupt-<ms>`) and reported through
 * the returned `warning`, never thrown, so a damaged file cannot keep a gateway from serving.
 * `save(state)` is atomic and durable: it writes a temporary file, fsyncs it, renames it over
 * the old one and fsyncs the folder, so after a power cut the file is either the old or the
 * new state, never a mix. Writers: the running gateway, or `vigil models install` when no
 * gateway runs on the same data folder (see `DataDirLock`).
 *
 * What it holds: the version each update or rollback made active (it wins over "highest
 * version" at start-up), the versions that were active before (for rollback), the update in
 * progress (so a restart can finish or abandon it and say so), trials and probations under way,
 * the result of the last update, and versions rolled back with the reason.
 */

import fs from "node:fs";
import path from "node:path";
import { errorMessage } from "../../errors.js";
import type { DeployRequest, TrialCriteria } from "./requests.js";

export interface PendingUpdate {
  transaction: string;
  /** The command source that asked (`plant`, `cloud`), to answer there after a restart. */
  source: string;
  request: DeployRequest;
  stage: string;
  startedAtMs: number;
  /** How many times a restart has taken this update up again. */
  resumes: number;
}

export interface TrialRecord {
  transaction: string;
  source: string;
  version: string;
  criteria: TrialCriteria;
  startedAtMs: number;
}

export interface ProbationRecord {
  version: string;
  previous: string | null;
  startedAtMs: number;
  transaction: string | null;
}

export interface UpdateResult {
  transaction: string | null;
  action: "deploy" | "rollback" | "promote" | "install";
  name: string | null;
  version: string | null;
  result: "ok" | "error" | "cancelled" | "rolled-back" | "trial" | "trial-failed";
  error?: string;
  atMs: number;
}

export interface OtaState {
  schemaVersion: 1;
  active: Record<string, string>;
  history: Record<string, string[]>;
  pending: PendingUpdate | null;
  trials: Record<string, TrialRecord>;
  probation: Record<string, ProbationRecord>;
  lastUpdate: UpdateResult | null;
  /** `name@version` → why it was rolled back or rejected on trial. */
  rejected: Record<string, string>;
}

export function emptyState(): OtaState {
  return {
    schemaVersion: 1,
    active: {},
    history: {},
    pending: null,
    trials: {},
    probation: {},
    lastUpdate: null,
    rejected: {},
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export class StateFile {
  readonly file: string;

  constructor(root: string) {
    this.file = path.join(root, "state.json");
  }

  load(): { state: OtaState; warning?: string } {
    let text: string;
    try {
      text = fs.readFileSync(this.file, "utf8");
    } catch {
      return { state: emptyState() };
    }
    try {
      const json = JSON.parse(text) as unknown;
      if (!isRecord(json) || json.schemaVersion !== 1) throw new Error("not a schemaVersion 1 state");
      const base = emptyState();
      return { state: { ...base, ...json } as OtaState };
    } catch (err) {
      const aside = `${this.file}.corrupt-${Date.now()}`;
      fs.renameSync(this.file, aside);
      return {
        state: emptyState(),
        warning: `${this.file} could not be read (${errorMessage(err)}); moved to ${aside}, starting from an empty update record`,
      };
    }
  }

  save(state: OtaState): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp-${process.pid}`;
    const fd = fs.openSync(tmp, "w", 0o644);
    try {
      fs.writeSync(fd, `${JSON.stringify(state, null, 2)}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    syncDir(path.dirname(this.file));
  }
}

/** fsync a folder so a rename in it survives a power cut (best effort where unsupported). */
export function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on folders; the rename is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * One writer per data folder: the gateway holds `<root>/.lock` (its pid) while it runs, and
 * `vigil models install` refuses to write while a live process holds it.
 */
export class DataDirLock {
  private readonly file: string;
  private held = false;

  constructor(root: string) {
    this.file = path.join(root, ".lock");
  }

  /** The pid of a live process holding the lock, other than this one. */
  holder(): number | undefined {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(this.file, "utf8").trim());
    } catch {
      return undefined;
    }
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
    try {
      process.kill(pid, 0);
      return pid;
    } catch (err) {
      // EPERM: it exists but belongs to someone else; still alive.
      return (err as NodeJS.ErrnoException).code === "EPERM" ? pid : undefined;
    }
  }

  /**
   * Takes the lock. Returns the pid of a live process that seemed to hold it: the caller warns,
   * but does not refuse to start, because after a reboot a stale pid may name another program.
   */
  acquire(): number | undefined {
    const other = this.holder();
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    fs.writeFileSync(this.file, `${process.pid}\n`);
    this.held = true;
    return other;
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    try {
      if (fs.readFileSync(this.file, "utf8").trim() === String(process.pid)) fs.rmSync(this.file);
    } catch {
      // already gone
    }
  }
}
