/**
 * Over-the-air model updates (contract §6; docs/ota.md): requests in, packages checked,
 * installed, tried, activated, watched and rolled back, with the running version serving
 * throughout.
 *
 * Contract
 * - `load()` (before the pipeline exists; no network): reads `<dataDir>/models/state.json`,
 *   removes staging left by a crash, reads the trusted keys, and has the registry load the
 *   shipped packages (`models.dir`) and the installed ones (`<dataDir>/models/<name>/<version>/`,
 *   whose signatures are checked again when signatures are required), serving for each name
 *   the version the last update or rollback made active, else the highest valid one.
 * - `start(host)` takes up what a restart interrupted: an update in progress is resumed (a
 *   download continues from its partial file) unless it was interrupted `maxResumes` times, in
 *   which case it is abandoned and reported; a trial starts over; a probation starts over.
 * - Requests (from every attached `CommandSource`, answered where they came from):
 *   `models/deploy`, `models/rollback`, `models/promote`, `models/cancel`, `models/list`.
 *   One deploy runs at a time; another one is refused at once ("busy"). A deploy goes:
 *   download (size cap, timeouts, resume, retries with backoff while retriable, cancellable) →
 *   `.tgz` SHA-256 → safe extraction → signature → manifest → policy (no duplicate of the
 *   active version, no downgrade without `allowDowngrade`, no second trial of a name) → files
 *   → ONNX load → tensors → self-test → placed under `<dataDir>/models` → a shadow trial if the
 *   request or the package asks for one, else activation. Every stage is an event on
 *   `models/events`; the answer comes when the package is active or on trial, or on failure.
 * - Activation is a hot swap between two messages (Pipeline.swapModel): no window is lost or
 *   predicted twice. It is committed to state.json before it happens in memory. The new version
 *   is then on probation: runtime errors, non-finite outputs or batches far slower than its
 *   self-test roll it back to the previous version automatically (also a hot swap).
 * - On any failure nothing changes for the serving version. Installed versions beyond the
 *   active one and `keepVersions` previous ones are deleted (shipped packages never are).
 * - `stop()` interrupts a running update without forgetting it (it resumes at the next start),
 *   stops trials and probations, and releases every session it holds. A trial end already
 *   under way completes first; none begins once stop() has (a trial stopped so stays recorded
 *   and starts over at the next start).
 */

import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { PackageError, VigilError, errorMessage } from "../../errors.js";
import type { InferenceBackend, SessionOptions } from "../../inference/ort.js";
import type { PendingWindow, RunnerMonitor } from "../../pipeline/runner.js";
import type { Pipeline, SwapReport } from "../../pipeline/pipeline.js";
import { sameWindowInput } from "../../pipeline/pipeline.js";
import type { VigilConfig } from "../../config/types.js";
import type { Clock } from "../../system/clock.js";
import type { Logger } from "../../system/logger.js";
import { DownloadError, downloadFile } from "../download.js";
import type { Manifest } from "../manifest-types.js";
import type { LoadedModel, OutputValue } from "../package.js";
import type { ModelRegistry, PackageStatus } from "../registry.js";
import { compareSemver } from "../semver.js";
import { SIGNATURE_FILE, checkSignature, loadTrustedKeys, type TrustedKey } from "../signing.js";
import { firstFailure, timePerWindow, verifyPackageDir } from "../verify.js";
import type { Command, CommandSource } from "./commands.js";
import { PackageInstaller, type StagedPackage } from "./installer.js";
import { Probation, type ProbationLimits } from "./probation.js";
import {
  parseCancel,
  parseDeploy,
  parseNameRequest,
  parseRollback,
  type DeployRequest,
  type Parsed,
  type TrialCriteria,
} from "./requests.js";
import {
  DataDirLock,
  StateFile,
  emptyState,
  type OtaState,
  type TrialRecord,
  type UpdateResult,
} from "./state.js";
import { TrialComparison, type TrialReport } from "./trial.js";

export interface UpdaterConfig {
  dataDir: string;
  shippedDir: string;
  trustedKeys: readonly string[];
  requireSignature: boolean;
  /** Previous versions of each model kept installed beside the active one. */
  keepVersions: number;
  download: { maxBytes: number; timeoutMs: number; idleTimeoutMs: number; caFile: string };
  extract: { maxFiles: number; maxBytes: number };
  retry: { minDelayMs: number; maxDelayMs: number; giveUpAfterMs: number };
  probation: ProbationLimits;
  /** A restart takes an interrupted update up again at most this many times. */
  maxResumes: number;
}

export interface UpdaterDeps {
  registry: ModelRegistry;
  backend: InferenceBackend;
  sessionOptions: SessionOptions;
  clock: Clock;
  log: Logger;
  /** Called when anything the status shows has changed. */
  onChange?: () => void;
}

/** What the updater needs from the pipeline. */
export type ModelHost = Pick<
  Pipeline,
  "swapModel" | "setShadow" | "clearShadow" | "addMonitor" | "removeMonitor" | "replay"
>;

interface Job {
  transaction: string;
  source: string;
  request: DeployRequest;
  name: string | null;
  version: string | null;
  stage: string;
  startedAtMs: number;
  abort: AbortController;
  /** Restarts that took this update up again. */
  resumes: number;
  cancelledBy?: string;
  done?: Promise<void>;
}

interface RunningTrial {
  record: TrialRecord;
  candidate: LoadedModel;
  selfTestMsPerWindow: number;
  comparison: TrialComparison;
  activeMonitor: RunnerMonitor;
  timer: NodeJS.Timeout | undefined;
  state: "running" | "finishing" | "awaiting-promotion";
  report?: TrialReport;
  /** Settles when an end scheduled by `scheduleTrialEnd` has run (or was dropped because stop() began). */
  ending?: Promise<void>;
}

interface RunningProbation {
  version: string;
  previousVersion: string | null;
  previous: LoadedModel | undefined;
  /** Resolves when the runner of `previous` has finished its windows (then its session may go). */
  previousRetired: Promise<void>;
  probation: Probation;
  monitor: RunnerMonitor;
  timer: NodeJS.Timeout | undefined;
  transaction: string | null;
  rollingBack: boolean;
  /** Set once swapped back: failures of the old runner's last windows are replayed at once. */
  rolledBack: boolean;
  /** Windows the new version failed on; the previous version predicts them after a rollback. */
  failedWindows: PendingWindow[];
}

/** Deploy answers remembered for repeated requests. */
const MAX_REMEMBERED_ANSWERS = 100;

/** Failed windows kept per probation for a replay after rollback. */
const MAX_REPLAY_WINDOWS = 10_000;

const OK = "ok";

function hasNonFinite(o: Readonly<Record<string, OutputValue>>): boolean {
  return Object.values(o).some((v) => v === null);
}

export class ModelUpdater {
  readonly installer: PackageInstaller;
  private readonly stateFile: StateFile;
  private readonly lock: DataDirLock;
  private state: OtaState;
  private keys: TrustedKey[] = [];
  private keyErrors: { path: string; reason: string }[] = [];
  private readonly sources = new Map<string, CommandSource>();
  private host: ModelHost | undefined;
  private job: Job | undefined;
  private readonly trials = new Map<string, RunningTrial>();
  private readonly probations = new Map<string, RunningProbation>();
  /** Final answers of recent deploys by transaction: a repeated request gets the same answer. */
  private readonly answers = new Map<string, object>();
  private stopping = false;

  constructor(
    private readonly config: UpdaterConfig,
    private readonly deps: UpdaterDeps,
  ) {
    const root = path.join(config.dataDir, "models");
    this.stateFile = new StateFile(root);
    this.lock = new DataDirLock(root);
    this.state = emptyState();
    this.installer = new PackageInstaller({
      root,
      keys: () => this.keys,
      requireSignature: config.requireSignature,
      extract: config.extract,
      backend: deps.backend,
      sessionOptions: deps.sessionOptions,
    });
  }

  private get log(): Logger {
    return this.deps.log;
  }

  private now(): number {
    return this.deps.clock.nowMs();
  }

  // ---------------------------------------------------------------------------------------
  // Start and stop

  async load(): Promise<void> {
    const root = this.installer.root;
    fs.mkdirSync(root, { recursive: true });
    const other = this.lock.acquire();
    if (other !== undefined)
      this.log.warn(
        { pid: other, dir: root },
        "another process seemed to hold the model folder; taking it over",
      );
    const loaded = this.stateFile.load();
    if (loaded.warning) this.log.error(loaded.warning);
    this.state = loaded.state;
    const keys = loadTrustedKeys(this.config.trustedKeys);
    this.keys = keys.keys;
    this.keyErrors = keys.errors;
    for (const e of keys.errors) this.log.error({ path: e.path }, `trusted key not usable: ${e.reason}`);
    this.installer.clean();
    const dirs = [...new Set([path.resolve(this.config.shippedDir), path.resolve(root)])];
    await this.deps.registry.scan(dirs, {
      preferred: new Map(Object.entries(this.state.active)),
      check: (dir) => this.checkInstalledSignature(dir),
    });
  }

  private isInstalled(dir: string): boolean {
    return path.resolve(dir).startsWith(path.resolve(this.installer.root) + path.sep);
  }

  /** Installed packages came with a signature; check it again at load (files may change on disk). */
  private checkInstalledSignature(dir: string): Promise<void> {
    if (!this.isInstalled(dir) || !this.config.requireSignature) return Promise.resolve();
    const bytes = fs.readFileSync(path.join(dir, "manifest.json"));
    const sigFile = path.join(dir, SIGNATURE_FILE);
    const sig = checkSignature(
      bytes,
      fs.existsSync(sigFile) ? fs.readFileSync(sigFile, "utf8") : undefined,
      this.keys,
    );
    if (!sig.ok) return Promise.reject(new PackageError(sig.code, `installed package: ${sig.detail}`));
    return Promise.resolve();
  }

  attach(source: CommandSource): void {
    this.sources.set(source.name, source);
    source.start((cmd) => this.handle(cmd));
  }

  start(host: ModelHost): void {
    this.host = host;
    for (const [name, rec] of Object.entries(this.state.probation)) {
      const model = this.deps.registry.get(name);
      if (model?.manifest.version !== rec.version) {
        delete this.state.probation[name];
        continue;
      }
      void timePerWindow(model.manifest, model.session).then(
        (ms) => {
          if (this.stopping || this.deps.registry.get(name) !== model) return;
          this.beginProbation(
            model,
            ms,
            undefined,
            rec.previous,
            Promise.resolve(),
            rec.transaction,
            rec.startedAtMs,
          );
          this.event(
            rec.transaction,
            name,
            rec.version,
            "probation-restarted",
            "the gateway restarted during probation; it goes on",
          );
        },
        (err: unknown) =>
          this.log.error({ model: model.key, err: errorMessage(err) }, "cannot time the model for probation"),
      );
    }
    for (const [name, rec] of Object.entries(this.state.trials)) void this.restartTrial(name, rec);
    const pending = this.state.pending;
    if (pending) {
      if (pending.stage === "activated" || pending.stage === "trial") {
        // The update had reached its end before the restart; only the answer may be missing.
        const active = this.deps.registry.get(this.state.lastUpdate?.name ?? "");
        this.answerDeploy(pending.source, {
          transaction: pending.transaction,
          status: OK,
          data: {
            name: this.state.lastUpdate?.name ?? null,
            version: this.state.lastUpdate?.version ?? null,
            state: pending.stage === "trial" ? "trial" : "active",
            ...(active ? { active: active.manifest.version } : {}),
          },
        });
        this.state.pending = null;
        this.save();
      } else if (pending.resumes >= this.config.maxResumes) {
        const error = `interrupted by ${pending.resumes + 1} restarts (last at stage ${pending.stage}); abandoned. The previous version serves.`;
        this.event(pending.transaction, null, null, "failed", error);
        this.answerDeploy(pending.source, {
          transaction: pending.transaction,
          status: "error",
          error,
          code: "OTA_INTERRUPTED",
        });
        this.state.lastUpdate = {
          transaction: pending.transaction,
          action: "deploy",
          name: null,
          version: null,
          result: "error",
          error,
          atMs: this.now(),
        };
        this.state.pending = null;
        this.save();
      } else {
        this.event(
          pending.transaction,
          null,
          null,
          "resumed",
          `the gateway restarted at stage ${pending.stage}; the update goes on`,
        );
        this.runJob(pending.request, pending.source, pending.resumes + 1, pending.startedAtMs);
      }
    }
    this.changed();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const job = this.job;
    if (job) {
      job.abort.abort();
      await job.done?.catch(() => undefined);
    }
    for (const source of this.sources.values()) source.stop();
    // An end already under way completes first; one only scheduled is dropped (stopping).
    await Promise.all([...this.trials.values()].map((t) => t.ending ?? Promise.resolve()));
    for (const [name, t] of this.trials) {
      if (t.timer) clearTimeout(t.timer);
      this.host?.removeMonitor(name, t.activeMonitor);
      await this.host?.clearShadow(name);
      await t.candidate.session.release().catch(() => undefined);
    }
    this.trials.clear();
    for (const p of this.probations.values()) {
      if (p.timer) clearTimeout(p.timer);
      if (p.previous) {
        await p.previousRetired;
        await p.previous.session.release().catch(() => undefined);
      }
    }
    this.probations.clear();
    this.lock.release();
  }

  // ---------------------------------------------------------------------------------------
  // Requests

  handle(cmd: Command): void {
    const reply = (body: object): void => this.reply(cmd.source, cmd.path, body);
    if (cmd.parseError !== undefined) {
      reply({
        transaction: null,
        status: "error",
        error: `request ${cmd.path}: ${cmd.parseError}`,
        code: "OTA_BAD_REQUEST",
      });
      return;
    }
    const bad = <T>(parsed: Parsed<T>): parsed is Extract<Parsed<T>, { ok: false }> => {
      if (parsed.ok) return false;
      reply({
        transaction: parsed.transaction,
        status: "error",
        error: `invalid request: ${parsed.errors.join("; ")}`,
        code: "OTA_BAD_REQUEST",
      });
      return true;
    };
    try {
      switch (cmd.path) {
        case "models/deploy": {
          const parsed = parseDeploy(cmd.payload);
          if (!bad(parsed)) this.deploy(parsed.value, cmd.source);
          return;
        }
        case "models/rollback": {
          const parsed = parseRollback(cmd.payload);
          if (!bad(parsed))
            this.rollbackRequest(parsed.value.transaction, parsed.value.name, parsed.value.version).then(
              reply,
              (err: unknown) => reply(this.errorBody(parsed.value.transaction, err)),
            );
          return;
        }
        case "models/promote": {
          const parsed = parseNameRequest(cmd.payload);
          if (!bad(parsed))
            this.promoteRequest(parsed.value.transaction, parsed.value.name).then(reply, (err: unknown) =>
              reply(this.errorBody(parsed.value.transaction, err)),
            );
          return;
        }
        case "models/cancel": {
          const parsed = parseCancel(cmd.payload);
          if (!bad(parsed))
            reply(this.cancelRequest(parsed.value.transaction, parsed.value.target, parsed.value.name));
          return;
        }
        case "models/list": {
          const t = (cmd.payload as { transaction?: unknown } | null)?.transaction;
          reply({ transaction: typeof t === "string" ? t : null, status: OK, data: this.status() });
          return;
        }
        default:
          if (!cmd.path.startsWith("models/")) return; // another feature's request; not ours to answer
          reply({
            transaction: (cmd.payload as { transaction?: unknown } | null)?.transaction ?? null,
            status: "error",
            error: `unknown request ${cmd.path}; known: models/deploy, models/rollback, models/promote, models/cancel, models/list`,
            code: "OTA_BAD_REQUEST",
          });
      }
    } catch (err) {
      this.log.error({ path: cmd.path, err: errorMessage(err) }, "model-update request failed unexpectedly");
      reply(this.errorBody(null, err));
    }
  }

  private errorBody(transaction: string | null, err: unknown): object {
    return {
      transaction,
      status: "error",
      error: errorMessage(err),
      ...(err instanceof VigilError ? { code: err.code } : {}),
    };
  }

  private reply(source: string, requestPath: string, body: object): void {
    const target = this.sources.get(source);
    const targets = target ? [target] : [...this.sources.values()];
    for (const s of targets) s.respond(requestPath, body);
  }

  private event(
    transaction: string | null,
    name: string | null,
    version: string | null,
    stage: string,
    detail: string,
    data?: unknown,
  ): void {
    const body = {
      transaction,
      name,
      version,
      stage,
      detail,
      ts: this.now(),
      ...(data !== undefined ? { data } : {}),
    };
    this.log.info({ transaction, model: name, version, stage }, `model update: ${detail}`);
    for (const s of this.sources.values()) s.event(body);
  }

  private changed(): void {
    try {
      this.deps.onChange?.();
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, "status listener failed");
    }
  }

  private save(): void {
    this.stateFile.save(this.state);
  }

  private setLast(result: Omit<UpdateResult, "atMs">): void {
    this.state.lastUpdate = { ...result, atMs: this.now() };
  }

  // ---------------------------------------------------------------------------------------
  // Deploy

  /** Answers a deploy for good (and remembers the answer for a repeated request). */
  private answerDeploy(source: string, body: { transaction: string; [k: string]: unknown }): void {
    this.answers.set(body.transaction, body);
    if (this.answers.size > MAX_REMEMBERED_ANSWERS) {
      const oldest = this.answers.keys().next().value;
      if (oldest !== undefined) this.answers.delete(oldest);
    }
    this.reply(source, "models/deploy", body);
  }

  private deploy(request: DeployRequest, source: string): void {
    const job = this.job;
    // MQTT delivers at least once, and operators retry: the same transaction is one deploy.
    if (job?.transaction === request.transaction) {
      this.log.debug({ transaction: request.transaction }, "deploy repeated while it runs; ignored");
      return;
    }
    const answered = this.answers.get(request.transaction);
    if (answered) {
      this.reply(source, "models/deploy", answered);
      return;
    }
    if (job) {
      const error = `busy: update ${job.transaction}${job.name ? ` (${job.name}${job.version ? `@${job.version}` : ""})` : ""} is at stage ${job.stage}; wait for its answer or cancel it (request/models/cancel)`;
      this.event(request.transaction, null, null, "refused", error, { code: "OTA_BUSY" });
      this.reply(source, "models/deploy", {
        transaction: request.transaction,
        status: "error",
        error,
        code: "OTA_BUSY",
      });
      return;
    }
    this.runJob(request, source, 0, this.now());
  }

  private runJob(request: DeployRequest, source: string, resumes: number, startedAtMs: number): void {
    const job: Job = {
      transaction: request.transaction,
      source,
      request,
      name: null,
      version: null,
      stage: "accepted",
      startedAtMs,
      abort: new AbortController(),
      resumes,
    };
    this.job = job;
    this.state.pending = {
      transaction: request.transaction,
      source,
      request,
      stage: "accepted",
      startedAtMs,
      resumes,
    };
    this.save();
    if (resumes === 0)
      this.event(job.transaction, null, null, "accepted", `deploy from ${safeUrl(request.url)}`);
    this.changed();
    job.done = this.deployJob(job).finally(() => {
      if (this.job === job) this.job = undefined;
      this.changed();
    });
  }

  private setStage(job: Job, stage: string): void {
    if (job.abort.signal.aborted) throw this.cancelled(job);
    job.stage = stage;
    if (this.state.pending?.transaction === job.transaction) {
      this.state.pending.stage = stage;
      this.save();
    }
  }

  private cancelled(job: Job): VigilError {
    return new VigilError(
      "OTA_CANCELLED",
      job.cancelledBy ? `cancelled by request ${job.cancelledBy}` : "interrupted by shutdown",
    );
  }

  private async deployJob(job: Job): Promise<void> {
    const { request } = job;
    let staged: StagedPackage | undefined;
    let placed: { model: LoadedModel; reused: boolean } | undefined;
    let archive: string | undefined;
    try {
      this.setStage(job, "download");
      archive = await this.fetch(job);
      this.event(
        job.transaction,
        null,
        null,
        "downloaded",
        `${fs.statSync(archive).size} bytes, SHA-256 matches`,
      );
      this.setStage(job, "verify");
      const stagingId = `${job.transaction.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 64)}-${shortHash(job.transaction)}`;
      staged = await this.installer.stage(archive, stagingId, (m) => this.deployPolicy(job, m));
      const { name, version } = staged.model.manifest;
      const checks = staged.verify.checks;
      this.event(
        job.transaction,
        name,
        version,
        "verified",
        checks.map((c) => `${c.step}: ${firstLine(c.detail)}`).join("; "),
        {
          checks,
          keyId: staged.verify.keyId ?? null,
        },
      );
      this.setStage(job, "install");
      const packageTrial = staged.trial;
      const selfTestMs = staged.selfTestMsPerWindow;
      placed = this.installer.place(staged);
      staged = undefined;
      const model = placed.model;
      this.deps.registry.setStatus({
        name,
        version,
        dir: model.dir,
        state: "standby",
        provider: model.session.provider,
      });
      this.event(
        job.transaction,
        name,
        version,
        "installed",
        placed.reused ? `already installed at ${model.dir}; reused` : `installed at ${model.dir}`,
      );
      fs.rmSync(archive, { force: true });
      fs.rmSync(`${archive}.validator`, { force: true });
      archive = undefined;
      const wanted = request.trial !== undefined ? request.trial : packageTrial;
      const active = this.deps.registry.get(name);
      if (wanted && active) {
        this.startTrial(model, selfTestMs, wanted, job.transaction, job.source);
        this.setLast({ transaction: job.transaction, action: "deploy", name, version, result: "trial" });
        if (this.state.pending) this.state.pending.stage = "trial";
        this.save();
        this.answerDeploy(job.source, {
          transaction: job.transaction,
          status: OK,
          data: { name, version, state: "trial", active: active.manifest.version, trial: wanted },
        });
      } else {
        if (wanted && !active)
          this.event(
            job.transaction,
            name,
            version,
            "trial-skipped",
            "no version of this model serves, so there is nothing to compare with; activating it directly",
          );
        this.setLast({ transaction: job.transaction, action: "deploy", name, version, result: "ok" });
        const report = this.activate(model, {
          transaction: job.transaction,
          probation: true,
          selfTestMsPerWindow: selfTestMs,
          rollback: false,
        });
        this.event(job.transaction, name, version, "activated", describeSwap(report), { swap: report });
        this.answerDeploy(job.source, {
          transaction: job.transaction,
          status: OK,
          data: { name, version, state: "active", previous: report.from, windows: report.windows },
        });
      }
      placed = undefined;
      this.state.pending = null;
      this.save();
    } catch (err) {
      if (staged) {
        await staged.model.session.release().catch(() => undefined);
        fs.rmSync(staged.dir, { recursive: true, force: true });
      }
      if (placed && this.deps.registry.get(placed.model.manifest.name) !== placed.model) {
        // Installed but never served (a trial could not start): take it out again.
        const { name, version } = placed.model.manifest;
        await placed.model.session.release().catch(() => undefined);
        if (!placed.reused) {
          this.installer.remove(name, version);
          this.deps.registry.forget(name, version);
        } else {
          this.deps.registry.setStatus({ name, version, dir: placed.model.dir, state: "standby" });
        }
      }
      if (this.stopping && !job.cancelledBy) {
        // Not a failure: the update resumes at the next start (state.pending stays).
        this.log.info(
          { transaction: job.transaction, stage: job.stage },
          "model update interrupted by shutdown; it resumes at the next start",
        );
        return;
      }
      const cancelled = job.cancelledBy !== undefined;
      const message = errorMessage(err);
      const code = err instanceof VigilError ? err.code : "OTA_FAILED";
      if (archive && !(err instanceof DownloadError && err.retriable)) {
        fs.rmSync(archive, { force: true });
        fs.rmSync(`${archive}.validator`, { force: true });
      }
      this.event(job.transaction, job.name, job.version, cancelled ? "cancelled" : "failed", message, {
        code,
        stage: job.stage,
      });
      this.setLast({
        transaction: job.transaction,
        action: "deploy",
        name: job.name,
        version: job.version,
        result: cancelled ? "cancelled" : "error",
        error: message,
      });
      this.state.pending = null;
      this.save();
      this.answerDeploy(job.source, {
        transaction: job.transaction,
        status: "error",
        error: message,
        code,
      });
    }
  }

  private deployPolicy(job: Job, m: Manifest): void {
    job.name = m.name;
    job.version = m.version;
    if (this.trials.has(m.name)) {
      const t = this.trials.get(m.name);
      throw new PackageError(
        "OTA_TRIAL_RUNNING",
        `${m.name}@${t?.record.version ?? "?"} is on trial; promote or cancel it before deploying another version`,
      );
    }
    const active = this.deps.registry.get(m.name);
    if (!active) return;
    const cmp = compareSemver(m.version, active.manifest.version);
    if (cmp === 0) {
      throw new PackageError(
        "OTA_DUPLICATE",
        `${m.name}@${m.version} is already the active version; nothing to do`,
      );
    }
    if (cmp < 0 && !job.request.allowDowngrade) {
      throw new PackageError(
        "OTA_DOWNGRADE",
        `${m.name}@${m.version} is lower than the active ${active.manifest.version}; a downgrade needs "allowDowngrade": true`,
      );
    }
  }

  private async fetch(job: Job): Promise<string> {
    const { request } = job;
    const dir = path.join(this.installer.root, ".downloads");
    fs.mkdirSync(dir, { recursive: true });
    // Keyed by content: a repeated or resumed request for the same package continues the part.
    const file = path.join(dir, `${request.sha256}.tgz.part`);
    const r = this.config.retry;
    const giveUpAt = this.now() + r.giveUpAfterMs;
    const ca = this.config.download.caFile !== "" ? fs.readFileSync(this.config.download.caFile) : undefined;
    let nextQuarter = 1;
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await downloadFile({
          url: request.url,
          file,
          expectedSha256: request.sha256,
          maxBytes: this.config.download.maxBytes,
          ...(request.size !== undefined ? { expectedSize: request.size } : {}),
          timeoutMs: this.config.download.timeoutMs,
          idleTimeoutMs: this.config.download.idleTimeoutMs,
          signal: job.abort.signal,
          ...(ca ? { ca } : {}),
          onProgress: (bytes, total) => {
            if (total === undefined || total === 0) return;
            while (nextQuarter < 4 && bytes >= (total * nextQuarter) / 4) {
              this.event(
                job.transaction,
                null,
                null,
                "download",
                `${nextQuarter * 25}% (${bytes} of ${total} bytes)`,
              );
              nextQuarter++;
            }
          },
        });
        if (result.resumed)
          this.event(
            job.transaction,
            null,
            null,
            "download",
            `resumed a partial download; ${result.bytes} bytes in all`,
          );
        return file;
      } catch (err) {
        if (job.abort.signal.aborted) throw this.cancelled(job);
        if (!(err instanceof DownloadError) || !err.retriable) throw err;
        const base = Math.min(r.maxDelayMs, r.minDelayMs * 2 ** Math.min(attempt - 1, 30));
        let delay = Math.round(base * (0.8 + Math.random() * 0.4));
        if (err.retryAfterMs !== undefined) delay = Math.min(r.maxDelayMs, Math.max(delay, err.retryAfterMs));
        if (this.now() + delay > giveUpAt) {
          throw new DownloadError(
            "DOWNLOAD_GAVE_UP",
            `gave up after ${attempt} attempt(s) over ${Math.round((this.now() - (giveUpAt - r.giveUpAfterMs)) / 1000)} s (models.ota.retry.giveUpAfterMs): ${err.message}`,
            { retriable: false },
          );
        }
        this.event(
          job.transaction,
          null,
          null,
          "retry",
          `attempt ${attempt} failed (${err.message}); next attempt in ${delay} ms`,
          {
            attempt,
            delayMs: delay,
            code: err.code,
          },
        );
        await sleep(delay, job.abort.signal);
        if (job.abort.signal.aborted) throw this.cancelled(job);
      }
    }
  }

  // ---------------------------------------------------------------------------------------
  // Activation, probation, rollback

  /** Makes `model` the serving version of its name: state first, then the hot swap. */
  private activate(
    model: LoadedModel,
    opts: { transaction: string | null; probation: boolean; selfTestMsPerWindow: number; rollback: boolean },
  ): SwapReport {
    const host = this.requireHost();
    const { name, version } = model.manifest;
    const prev = this.deps.registry.get(name);
    const history = (this.state.history[name] ??= []);
    if (opts.rollback) {
      const i = history.lastIndexOf(version);
      if (i >= 0) history.splice(i, 1);
    } else if (prev && prev.manifest.version !== version) {
      history.push(prev.manifest.version);
      if (history.length > 32) history.splice(0, history.length - 32);
    }
    this.state.active[name] = version;
    delete this.state.probation[name];
    const onProbation = opts.probation && prev !== undefined;
    if (onProbation) {
      this.state.probation[name] = {
        version,
        previous: prev.manifest.version,
        startedAtMs: this.now(),
        transaction: opts.transaction,
      };
    }
    if (this.state.pending && this.state.pending.transaction === opts.transaction)
      this.state.pending.stage = "activated";
    this.save();

    // The previous probation of this name, if any, ends here; its kept version is not needed.
    const older = this.probations.get(name);
    if (older) this.endProbation(name, older, model);
    this.deps.registry.setServing(model);
    const { report, retired } = host.swapModel(model);
    if (onProbation) {
      this.beginProbation(
        model,
        opts.selfTestMsPerWindow,
        prev,
        prev.manifest.version,
        retired,
        opts.transaction,
        this.now(),
      );
    } else if (prev && prev !== model) {
      void retired.then(() => prev.session.release().catch(() => undefined));
    }
    this.prune(name);
    this.changed();
    return report;
  }

  private beginProbation(
    model: LoadedModel,
    selfTestMsPerWindow: number,
    previous: LoadedModel | undefined,
    previousVersion: string | null,
    previousRetired: Promise<void>,
    transaction: string | null,
    startedAtMs: number,
  ): void {
    const name = model.manifest.name;
    const probation = new Probation(this.config.probation, selfTestMsPerWindow, startedAtMs);
    const running: RunningProbation = {
      version: model.manifest.version,
      previousVersion,
      previous,
      previousRetired,
      probation,
      timer: undefined,
      transaction,
      rollingBack: false,
      rolledBack: false,
      failedWindows: [],
      monitor: {
        batch: (items, outputs, elapsedMs) => {
          const reason = probation.batch(items.length, outputs.filter(hasNonFinite).length, elapsedMs);
          if (reason) this.scheduleAutoRollback(name, running, reason);
          else if (probation.done(this.now())) this.passProbation(name, running);
        },
        failed: (items, err) => {
          if (running.rolledBack) {
            // The rolled-back version's last queued windows: the restored version predicts them.
            this.host?.replay(name, items);
            return;
          }
          if (running.failedWindows.length + items.length <= MAX_REPLAY_WINDOWS)
            running.failedWindows.push(...items);
          const reason = probation.failed(items.length, errorMessage(err));
          if (reason) this.scheduleAutoRollback(name, running, reason);
        },
      },
    };
    this.probations.set(name, running);
    this.requireHost().addMonitor(name, running.monitor);
    const leftMs = Math.max(0, this.config.probation.durationMs - (this.now() - startedAtMs));
    running.timer = setTimeout(() => this.passProbation(name, running), leftMs);
    running.timer.unref();
  }

  private passProbation(name: string, running: RunningProbation): void {
    if (this.probations.get(name) !== running || running.rollingBack) return;
    const s = running.probation.summary();
    this.endProbation(name, running, undefined);
    delete this.state.probation[name];
    this.save();
    this.event(
      running.transaction,
      name,
      running.version,
      "probation-passed",
      `${s.windows} window(s) without a problem; ${name}@${running.version} stays`,
    );
    this.changed();
  }

  /** Forgets a probation; releases its kept previous version unless it is `keep`. */
  private endProbation(name: string, running: RunningProbation, keep: LoadedModel | undefined): void {
    if (running.timer) clearTimeout(running.timer);
    this.host?.removeMonitor(name, running.monitor);
    this.probations.delete(name);
    const prev = running.previous;
    if (prev && prev !== keep)
      void running.previousRetired.then(() => prev.session.release().catch(() => undefined));
  }

  private scheduleAutoRollback(name: string, running: RunningProbation, reason: string): void {
    if (running.rollingBack || this.probations.get(name) !== running) return;
    running.rollingBack = true;
    // Not inside the runner's batch: the swap replaces that very runner.
    setImmediate(() => {
      this.autoRollback(name, running, reason).catch((err: unknown) => {
        this.log.error(
          { model: name, err: errorMessage(err) },
          "automatic rollback failed; the new version keeps serving",
        );
        this.event(running.transaction, name, running.version, "rollback-failed", errorMessage(err));
      });
    });
  }

  private async autoRollback(name: string, running: RunningProbation, reason: string): Promise<void> {
    if (this.stopping) return;
    const target =
      running.previous ??
      (running.previousVersion ? await this.loadVersion(name, running.previousVersion) : undefined);
    if (!target) throw new VigilError("OTA_NO_PREVIOUS", `no previous version of ${name} to go back to`);
    const bad = this.deps.registry.get(name);
    if (bad?.manifest.version !== running.version) return; // something else was activated meanwhile
    // Not endProbation: the monitor stays on the old runner until it has drained (see failed()).
    if (running.timer) clearTimeout(running.timer);
    this.probations.delete(name);
    running.rolledBack = true;
    this.state.rejected[`${name}@${running.version}`] = reason;
    this.setLast({
      transaction: running.transaction,
      action: "rollback",
      name,
      version: target.manifest.version,
      result: "rolled-back",
      error: `${name}@${running.version}: ${reason}`,
    });
    const report = this.activate(target, {
      transaction: null,
      probation: false,
      selfTestMsPerWindow: 0,
      rollback: true,
    });
    const replayed = this.requireHost().replay(name, running.failedWindows.splice(0));
    this.deps.registry.setStatus({
      name,
      version: running.version,
      dir: bad.dir,
      state: "failed",
      error: `rolled back: ${reason}`,
      errorCode: "OTA_ROLLED_BACK",
    });
    this.event(
      running.transaction,
      name,
      target.manifest.version,
      "rolled-back",
      `${name}@${running.version} misbehaved in probation (${reason}); back to ${target.manifest.version}${
        replayed > 0 ? `, which predicts the ${replayed} window(s) the failed version lost` : ""
      }`,
      { swap: report, reason, from: running.version, replayed },
    );
  }

  /** Loads an installed or shipped version again, with every check. */
  private async loadVersion(name: string, version: string): Promise<LoadedModel> {
    const entry = this.deps.registry
      .status()
      .find((s) => s.name === name && s.version === version && s.state !== "failed");
    if (!entry)
      throw new VigilError("OTA_NOT_INSTALLED", `${name}@${version} is not installed (or failed its checks)`);
    const result = await verifyPackageDir(entry.dir, {
      keys: this.keys,
      requireSignature: this.isInstalled(entry.dir) && this.config.requireSignature,
      stopAtFirstFailure: true,
      load: { backend: this.deps.backend, sessionOptions: this.deps.sessionOptions },
    });
    const failed = firstFailure(result);
    if (!result.model || failed) {
      throw new PackageError(
        failed?.code ?? "PACKAGE_INVALID",
        `${name}@${version} no longer passes its checks: ${failed?.step ?? "?"}: ${failed?.detail ?? ""}`,
      );
    }
    return result.model;
  }

  private async rollbackRequest(
    transaction: string,
    name: string,
    version: string | undefined,
  ): Promise<object> {
    if (this.job?.name === name)
      throw new VigilError(
        "OTA_BUSY",
        `update ${this.job.transaction} of ${name} is in progress; wait for it or cancel it`,
      );
    if (this.trials.has(name))
      throw new VigilError(
        "OTA_TRIAL_RUNNING",
        `${name} has a candidate on trial; cancel or promote it first`,
      );
    const current = this.deps.registry.get(name);
    if (!current) throw new VigilError("OTA_NOT_SERVING", `no version of ${name} is serving`);
    const installed = this.versionsOf(name).filter(
      (s) => s.state !== "failed" && s.version !== current.manifest.version,
    );
    let target = version;
    if (target === undefined) {
      const history = this.state.history[name] ?? [];
      target = [...history].reverse().find((v) => installed.some((s) => s.version === v));
      target ??= installed
        .map((s) => s.version)
        .filter((v) => compareSemver(v, current.manifest.version) < 0)
        .sort((a, b) => compareSemver(b, a))[0];
    }
    if (target === undefined)
      throw new VigilError("OTA_NO_PREVIOUS", `no previous version of ${name} is installed to go back to`);
    if (target === current.manifest.version)
      throw new VigilError("OTA_DUPLICATE", `${name}@${target} is already active`);
    const running = this.probations.get(name);
    const model =
      running?.previous?.manifest.version === target
        ? running.previous
        : await this.loadVersion(name, target);
    if (this.deps.registry.get(name) !== current) {
      if (model !== running?.previous) await model.session.release().catch(() => undefined);
      throw new VigilError("OTA_BUSY", `${name} changed while the rollback was loading; ask again`);
    }
    if (running) this.endProbation(name, running, model);
    this.state.rejected[`${name}@${current.manifest.version}`] = `rolled back by request ${transaction}`;
    this.setLast({ transaction, action: "rollback", name, version: target, result: "ok" });
    const report = this.activate(model, {
      transaction,
      probation: false,
      selfTestMsPerWindow: 0,
      rollback: true,
    });
    this.event(
      transaction,
      name,
      target,
      "rolled-back",
      `back from ${current.manifest.version} to ${target} on request; ${describeSwap(report)}`,
      { swap: report, from: current.manifest.version },
    );
    return {
      transaction,
      status: OK,
      data: {
        name,
        version: target,
        state: "active",
        previous: current.manifest.version,
        windows: report.windows,
      },
    };
  }

  private versionsOf(name: string): PackageStatus[] {
    return this.deps.registry.status().filter((s) => s.name === name);
  }

  /** Deletes installed versions beyond the active one and the `keepVersions` most recent others. */
  private prune(name: string): void {
    const active = this.state.active[name];
    const protectedVersions = new Set<string>([
      ...(active ? [active] : []),
      ...(this.trials.get(name) ? [this.trials.get(name)?.record.version ?? ""] : []),
      ...(this.probations.get(name)?.previousVersion
        ? [this.probations.get(name)?.previousVersion ?? ""]
        : []),
    ]);
    const history = this.state.history[name] ?? [];
    const installed = this.versionsOf(name).filter(
      (s) => this.isInstalled(s.dir) && !protectedVersions.has(s.version),
    );
    const rank = (v: string): number => {
      const i = history.lastIndexOf(v);
      return i < 0 ? -1 : i;
    };
    installed.sort((a, b) => rank(b.version) - rank(a.version) || compareSemver(b.version, a.version));
    const keep = Math.max(0, this.config.keepVersions - (protectedVersions.size - 1));
    for (const s of installed.slice(keep)) {
      this.installer.remove(name, s.version);
      this.deps.registry.forget(name, s.version);
      this.log.info({ model: name, version: s.version }, "old model version removed (models.keepVersions)");
    }
  }

  // ---------------------------------------------------------------------------------------
  // Trials

  private startTrial(
    candidate: LoadedModel,
    selfTestMs: number,
    criteria: TrialCriteria,
    transaction: string,
    source: string,
    startedAtMs = this.now(),
  ): void {
    const host = this.requireHost();
    const name = candidate.manifest.name;
    const active = this.deps.registry.get(name);
    if (!active) throw new VigilError("OTA_NOT_SERVING", `no version of ${name} serves to compare with`);
    if (!sameWindowInput(active, candidate)) {
      throw new PackageError(
        "OTA_TRIAL_INPUT",
        `a trial feeds the candidate the windows of ${active.key}, so it must read the same signals with the same window; deploy it with "trial": false (probation still guards it)`,
      );
    }
    const activeNames = new Set(active.manifest.outputs.map((o) => o.name));
    const shared = candidate.manifest.outputs.map((o) => o.name).filter((n) => activeNames.has(n));
    const comparison = new TrialComparison(
      criteria,
      { active: active.key, candidate: candidate.key },
      shared,
      startedAtMs,
    );
    // Either side may finish a window first (separate runners and batches): whichever
    // completes the last window the criteria ask for ends the trial.
    const watch = (side: "active" | "candidate"): RunnerMonitor => {
      const ended = (): void => {
        if (comparison.done(this.now())) void this.scheduleTrialEnd(name, trial);
      };
      return {
        batch: (items, outputs, ms) => {
          comparison[side](items, outputs, ms);
          ended();
        },
        failed: (items) => {
          comparison[side === "active" ? "activeFailed" : "candidateFailed"](items);
          ended();
        },
      };
    };
    const record: TrialRecord = {
      transaction,
      source,
      version: candidate.manifest.version,
      criteria,
      startedAtMs,
    };
    const trial: RunningTrial = {
      record,
      candidate,
      selfTestMsPerWindow: selfTestMs,
      comparison,
      timer: undefined,
      state: "running",
      activeMonitor: watch("active"),
    };
    const candidateMonitor = watch("candidate");
    host.addMonitor(name, trial.activeMonitor);
    host.setShadow(candidate, [candidateMonitor]);
    this.trials.set(name, trial);
    this.state.trials[name] = record;
    this.deps.registry.setStatus({
      name,
      version: candidate.manifest.version,
      dir: candidate.dir,
      state: "trial",
      provider: candidate.session.provider,
      ...(candidate.selection ? { selection: candidate.selection } : {}),
      ...(candidate.placement ? { placement: candidate.placement } : {}),
    });
    const leftMs = Math.max(0, criteria.durationMs - (this.now() - startedAtMs));
    trial.timer = setTimeout(() => void this.scheduleTrialEnd(name, trial), leftMs);
    trial.timer.unref();
    this.event(
      transaction,
      name,
      candidate.manifest.version,
      "trial-started",
      `${candidate.key} runs beside ${active.key} for ${criteria.windows} windows or ${criteria.durationMs} ms; promotion ${criteria.promote}`,
      { criteria },
    );
    this.changed();
  }

  private scheduleTrialEnd(
    name: string,
    trial: RunningTrial,
    how: "criteria" | "promote" | "cancel" = "criteria",
    by?: string,
  ): Promise<void> {
    // Once stop() has begun it owns the trials: the candidate's last batches, which land while
    // its shadow drains, must not end the trial (it stays recorded and starts over at the next start).
    if (this.stopping) return Promise.resolve();
    if (this.trials.get(name) !== trial || trial.state === "finishing") return Promise.resolve();
    if (trial.state === "awaiting-promotion" && how === "criteria") return Promise.resolve();
    trial.state = "finishing";
    if (trial.timer) clearTimeout(trial.timer);
    trial.ending = new Promise<void>((resolve) => {
      setImmediate(() => {
        if (this.stopping) {
          resolve();
          return;
        }
        this.finishTrial(name, trial, how, by)
          .catch((err: unknown) => {
            this.log.error({ model: name, err: errorMessage(err) }, "ending a trial failed");
            this.event(
              trial.record.transaction,
              name,
              trial.record.version,
              "trial-failed",
              errorMessage(err),
            );
          })
          .finally(resolve);
      });
    });
    return trial.ending;
  }

  private async finishTrial(
    name: string,
    trial: RunningTrial,
    how: "criteria" | "promote" | "cancel",
    by?: string,
  ): Promise<void> {
    const host = this.requireHost();
    const { record, candidate } = trial;
    // The serving version stays watched until the candidate's last batch is in: its results
    // for windows the candidate is still running pair with them (a trial ended by time or by
    // request; one ended by its window count is already full).
    await host.clearShadow(name);
    host.removeMonitor(name, trial.activeMonitor);
    const report = trial.report ?? trial.comparison.report(this.now());
    trial.report = report;
    if (how !== "cancel" && trial.state !== "awaiting-promotion") {
      this.event(
        record.transaction,
        name,
        record.version,
        "trial-report",
        report.passed ? `passed: ${summary(report)}` : `failed: ${report.reasons.join("; ")}`,
        report,
      );
    }
    if (how === "promote" || (how === "criteria" && report.passed && record.criteria.promote === "auto")) {
      this.trials.delete(name);
      delete this.state.trials[name];
      this.setLast({
        transaction: by ?? record.transaction,
        action: "promote",
        name,
        version: record.version,
        result: "ok",
      });
      const swap = this.activate(candidate, {
        transaction: record.transaction,
        probation: true,
        selfTestMsPerWindow: trial.selfTestMsPerWindow,
        rollback: false,
      });
      this.event(
        by ?? record.transaction,
        name,
        record.version,
        "promoted",
        `${how === "promote" ? "on request" : "criteria met"}; ${describeSwap(swap)}`,
        { swap },
      );
      return;
    }
    if (how === "criteria" && report.passed) {
      trial.state = "awaiting-promotion";
      this.event(
        record.transaction,
        name,
        record.version,
        "trial-passed",
        "criteria met; waiting for request/models/promote (promote: manual)",
      );
      this.changed();
      return;
    }
    this.trials.delete(name);
    delete this.state.trials[name];
    const reason =
      how === "cancel"
        ? `trial cancelled by request ${by ?? "?"}`
        : `trial failed: ${report.reasons.join("; ")}`;
    this.state.rejected[`${name}@${record.version}`] = reason;
    this.setLast({
      transaction: by ?? record.transaction,
      action: "deploy",
      name,
      version: record.version,
      result: how === "cancel" ? "cancelled" : "trial-failed",
      error: reason,
    });
    this.save();
    await candidate.session.release().catch(() => undefined);
    this.installer.remove(name, record.version);
    this.deps.registry.forget(name, record.version);
    this.event(
      by ?? record.transaction,
      name,
      record.version,
      how === "cancel" ? "cancelled" : "trial-failed",
      `${reason}; ${this.deps.registry.get(name)?.key ?? name} keeps serving`,
    );
    this.changed();
  }

  private async restartTrial(name: string, rec: TrialRecord): Promise<void> {
    try {
      const model = await this.loadVersion(name, rec.version);
      const ms = await timePerWindow(model.manifest, model.session);
      if (this.stopping) {
        await model.session.release().catch(() => undefined);
        return;
      }
      this.startTrial(model, ms, rec.criteria, rec.transaction, rec.source);
      this.save();
      this.event(
        rec.transaction,
        name,
        rec.version,
        "trial-restarted",
        "the gateway restarted during the trial; it starts over",
      );
    } catch (err) {
      delete this.state.trials[name];
      this.save();
      this.event(
        rec.transaction,
        name,
        rec.version,
        "trial-failed",
        `the trial could not restart after a restart: ${errorMessage(err)}`,
      );
    }
  }

  private async promoteRequest(transaction: string, name: string): Promise<object> {
    const trial = this.trials.get(name);
    if (!trial) throw new VigilError("OTA_NO_TRIAL", `${name} has no candidate on trial`);
    if (trial.state === "finishing")
      throw new VigilError("OTA_BUSY", `the trial of ${name} is ending; see models/events`);
    await this.scheduleTrialEnd(name, trial, "promote", transaction);
    if (this.stopping && this.trials.get(name) === trial)
      throw new VigilError(
        "OTA_STOPPING",
        `the gateway is stopping; the trial of ${name}@${trial.record.version} starts over at the next start`,
        { retriable: true },
      );
    const active = this.deps.registry.get(name);
    if (active?.manifest.version !== trial.record.version)
      throw new VigilError(
        "OTA_FAILED",
        `${name}@${trial.record.version} could not be promoted; see models/events`,
      );
    return {
      transaction,
      status: OK,
      data: { name, version: trial.record.version, state: "active", report: trial.report ?? null },
    };
  }

  private cancelRequest(transaction: string, target: string | undefined, name: string | undefined): object {
    const job = this.job;
    if (
      job &&
      ((target !== undefined && job.transaction === target) || (name !== undefined && job.name === name))
    ) {
      if (job.stage === "install" || this.state.pending?.stage === "activated") {
        return {
          transaction,
          status: "error",
          error: `update ${job.transaction} is already installing; roll back afterwards instead`,
          code: "OTA_TOO_LATE",
        };
      }
      job.cancelledBy = transaction;
      job.abort.abort();
      return { transaction, status: OK, data: { cancelled: job.transaction, stage: job.stage } };
    }
    const trialName =
      name ?? [...this.trials.entries()].find(([, t]) => t.record.transaction === target)?.[0];
    const trial = trialName !== undefined ? this.trials.get(trialName) : undefined;
    if (trialName !== undefined && trial && trial.state !== "finishing") {
      void this.scheduleTrialEnd(trialName, trial, "cancel", transaction);
      return {
        transaction,
        status: OK,
        data: { cancelled: trial.record.transaction, trial: `${trialName}@${trial.record.version}` },
      };
    }
    return {
      transaction,
      status: "error",
      error: `nothing to cancel for ${target !== undefined ? `transaction ${target}` : `model ${name ?? "?"}`}`,
      code: "OTA_NOTHING_TO_CANCEL",
    };
  }

  private requireHost(): ModelHost {
    if (!this.host) throw new VigilError("OTA_NOT_STARTED", "the model updater has not started");
    return this.host;
  }

  // ---------------------------------------------------------------------------------------
  // Status

  status(): OtaStatus {
    const byName = new Map<string, PackageStatus[]>();
    for (const s of this.deps.registry.status()) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
    for (const name of this.trials.keys()) if (!byName.has(name)) byName.set(name, []);
    const job = this.job;
    return {
      requireSignature: this.config.requireSignature,
      trustedKeys: this.keys.map((k) => ({ id: k.id, source: k.source })),
      ...(this.keyErrors.length > 0 ? { keyErrors: this.keyErrors } : {}),
      busy: job
        ? {
            transaction: job.transaction,
            name: job.name,
            version: job.version,
            stage: job.stage,
            sinceMs: job.startedAtMs,
            resumes: job.resumes,
          }
        : null,
      models: [...byName.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, versions]) => {
          const t = this.trials.get(name);
          const p = this.probations.get(name);
          return {
            name,
            active: this.deps.registry.get(name)?.manifest.version ?? null,
            installed: versions.map((v) => ({
              version: v.version,
              source: this.isInstalled(v.dir) ? "installed" : "shipped",
              state: v.state,
              ...(v.error ? { error: v.error } : {}),
              ...(this.state.rejected[`${name}@${v.version}`]
                ? { rejected: this.state.rejected[`${name}@${v.version}`] }
                : {}),
            })),
            history: [...(this.state.history[name] ?? [])],
            trial: t
              ? {
                  version: t.record.version,
                  transaction: t.record.transaction,
                  state: t.state,
                  startedAtMs: t.record.startedAtMs,
                  windows: t.comparison.windows,
                  criteria: t.record.criteria,
                  report: t.report ?? t.comparison.report(this.now()),
                }
              : null,
            probation: p
              ? {
                  version: p.version,
                  previous: p.previousVersion,
                  startedAtMs: p.probation.startedAtMs,
                  ...p.probation.summary(),
                  limits: this.config.probation,
                }
              : null,
          };
        }),
      lastUpdate: this.state.lastUpdate,
    };
  }
}

export interface OtaStatus {
  requireSignature: boolean;
  trustedKeys: { id: string; source: string }[];
  keyErrors?: { path: string; reason: string }[];
  busy: {
    transaction: string;
    name: string | null;
    version: string | null;
    resumes: number;
    stage: string;
    sinceMs: number;
  } | null;
  models: {
    name: string;
    active: string | null;
    installed: {
      version: string;
      source: "installed" | "shipped";
      state: string;
      error?: string;
      rejected?: string;
    }[];
    history: string[];
    trial: Record<string, unknown> | null;
    probation: Record<string, unknown> | null;
  }[];
  lastUpdate: UpdateResult | null;
}

function firstLine(s: string): string {
  return s.split("\n")[0] ?? "";
}

function describeSwap(r: SwapReport): string {
  const from = r.from === null ? "new model" : `from ${r.from}`;
  const windows =
    r.windows === "carried-over"
      ? `open windows of ${r.assets} asset(s) carried over`
      : r.windows === "restarted"
        ? `the input changed: open windows of ${r.assets} asset(s) restarted`
        : "no open windows";
  return `${r.name}@${r.to} serving (${from}); ${windows}`;
}

function summary(r: TrialReport): string {
  const pct = r.agreement === null ? "n/a" : `${(r.agreement * 100).toFixed(1)}%`;
  return `${r.compared} windows compared, agreement ${pct}, candidate errors ${r.candidateStats.errors}, NaN/Inf ${r.candidateStats.nonFinite}, latency ratio ${r.latencyRatio === null ? "n/a" : r.latencyRatio.toFixed(2)}`;
}

function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    u.search = "";
    return u.toString();
  } catch {
    return "(invalid url)";
  }
}

function shortHash(s: string): string {
  return createHash("sha256").update(s).digest("hex").slice(0, 12);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    timer.unref();
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** The updater's settings from the gateway configuration. */
export function updaterConfig(c: VigilConfig): UpdaterConfig {
  return {
    dataDir: c.dataDir,
    shippedDir: c.models.dir,
    trustedKeys: c.models.trustedKeys,
    requireSignature: c.models.requireSignature,
    keepVersions: c.models.keepVersions,
    download: c.models.ota.download,
    extract: c.models.ota.extract,
    retry: c.models.ota.retry,
    probation: c.models.ota.probation,
    maxResumes: c.models.ota.maxResumes,
  };
}
