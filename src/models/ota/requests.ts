/**
 * Model-update requests (contract §6) and trial criteria: untrusted JSON in, typed values or
 * every problem out. Pure.
 *
 * - deploy   `{transaction, url, sha256, size?, allowDowngrade?, trial?}`
 * - rollback `{transaction, name, version?}`
 * - promote  `{transaction, name}`     (end a trial now and make the candidate active)
 * - cancel   `{transaction, target?, name?}` (a deploy still downloading/retrying, by its
 *            transaction `target` or by model `name`; or the trial of `name`)
 * - list     `{transaction?}`
 * `trial` (in a request, or a top-level `trial` object in a package's manifest.json): `true`
 * for the defaults, `false` for none, or an object overriding any of `TRIAL_DEFAULTS`. A
 * request's `trial` wins over the package's.
 */

export interface TrialCriteria {
  /** The trial ends once both versions have predicted (or failed on) this many windows… */
  windows: number;
  /** …or after this long, whichever comes first. */
  durationMs: number;
  /** `auto`: promote when the criteria are met; `manual`: wait for `request/models/promote`. */
  promote: "auto" | "manual";
  /** Fraction of compared windows on which every shared output agrees. */
  minAgreement: number;
  /** Two numbers agree when |a − c| ≤ absTolerance + relTolerance·|a| (a: the serving version). */
  absTolerance: number;
  relTolerance: number;
  /** Candidate inference failures per window. */
  maxErrorRate: number;
  /** Candidate windows with a NaN or infinite output, per window. */
  maxNonFiniteRate: number;
  /** Candidate median inference time per window over the serving version's… */
  maxLatencyRatio: number;
  /** …and by more than this many ms per window (smaller differences are timer noise). */
  latencyToleranceMs: number;
}

export const TRIAL_DEFAULTS: TrialCriteria = {
  windows: 100,
  durationMs: 10 * 60_000, // 10 minutes
  promote: "auto",
  minAgreement: 0.9,
  absTolerance: 1e-6,
  relTolerance: 0.05,
  maxErrorRate: 0,
  maxNonFiniteRate: 0,
  maxLatencyRatio: 10,
  latencyToleranceMs: 1,
};

export interface DeployRequest {
  transaction: string;
  url: string;
  sha256: string;
  size?: number;
  allowDowngrade: boolean;
  /** undefined: as the package says; false: no trial; criteria: this trial. */
  trial?: TrialCriteria | false;
}

export interface RollbackRequest {
  transaction: string;
  name: string;
  version?: string;
}

export interface NameRequest {
  transaction: string;
  name: string;
}

export interface CancelRequest {
  transaction: string;
  target?: string;
  name?: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; transaction: string | null; errors: string[] };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function own(o: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

function transactionOf(o: unknown): string | null {
  if (!isRecord(o)) return null;
  const t = own(o, "transaction");
  return typeof t === "string" && t !== "" && t.length <= 128 && !CONTROL_RE.test(t) ? t : null;
}

class Problems {
  readonly list: string[] = [];
  add(msg: string): undefined {
    this.list.push(msg);
    return undefined;
  }
}

function start(
  json: unknown,
  known: readonly string[],
): { o: Record<string, unknown>; p: Problems; transaction: string | null } {
  const p = new Problems();
  if (!isRecord(json)) {
    p.add("the request must be a JSON object");
    return { o: {}, p, transaction: null };
  }
  const transaction = transactionOf(json);
  if (transaction === null)
    p.add("transaction: required, a string of 1..128 characters without control characters");
  for (const key of Object.keys(json)) {
    if (!known.includes(key)) p.add(`${key}: not a known field (expected: ${known.join(", ")})`);
  }
  return { o: json, p, transaction };
}

function notAnObject(): { ok: false; transaction: null; errors: string[] } {
  return { ok: false, transaction: null, errors: ["the request must be a JSON object"] };
}

function finish<T>(p: Problems, transaction: string | null, value: () => T): Parsed<T> {
  if (p.list.length > 0 || transaction === null) return { ok: false, transaction, errors: p.list };
  return { ok: true, value: value() };
}

function nameAt(p: Problems, o: Record<string, unknown>, required: boolean): string | undefined {
  const v = own(o, "name");
  if (v === undefined) return required ? p.add("name: required") : undefined;
  if (typeof v !== "string" || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(v))
    return p.add(`name: not a package name, got ${JSON.stringify(v)}`);
  return v;
}

export function parseDeploy(json: unknown): Parsed<DeployRequest> {
  if (!isRecord(json)) return notAnObject();
  const { o, p, transaction } = start(json, [
    "transaction",
    "url",
    "sha256",
    "size",
    "allowDowngrade",
    "trial",
  ]);
  const url = own(o, "url");
  let urlOk: string | undefined;
  if (typeof url !== "string") p.add("url: required, an http: or https: URL");
  else {
    try {
      const u = new URL(url);
      if (u.protocol !== "http:" && u.protocol !== "https:")
        p.add(`url: must be http: or https:, got ${u.protocol}`);
      else urlOk = url;
    } catch {
      p.add(`url: not a URL: ${JSON.stringify(url.slice(0, 200))}`);
    }
  }
  const sha = own(o, "sha256");
  if (typeof sha !== "string" || !/^[0-9a-fA-F]{64}$/.test(sha))
    p.add("sha256: required, the SHA-256 of the .tgz as 64 hex digits");
  const size = own(o, "size");
  if (size !== undefined && (typeof size !== "number" || !Number.isSafeInteger(size) || size <= 0)) {
    p.add(`size: must be a positive integer (bytes of the .tgz), got ${JSON.stringify(size)}`);
  }
  const allow = own(o, "allowDowngrade");
  if (allow !== undefined && typeof allow !== "boolean") p.add("allowDowngrade: must be true or false");
  const trialRaw = own(o, "trial");
  const trial = trialRaw === undefined ? undefined : parseTrial(trialRaw, "trial", p);
  return finish(p, transaction, () => ({
    transaction: transaction as string,
    url: urlOk as string,
    sha256: (sha as string).toLowerCase(),
    ...(typeof size === "number" ? { size } : {}),
    allowDowngrade: allow === true,
    ...(trialRaw !== undefined && trial !== undefined ? { trial } : {}),
  }));
}

export function parseRollback(json: unknown): Parsed<RollbackRequest> {
  if (!isRecord(json)) return notAnObject();
  const { o, p, transaction } = start(json, ["transaction", "name", "version"]);
  const name = nameAt(p, o, true);
  const version = own(o, "version");
  if (version !== undefined && (typeof version !== "string" || version === "" || version.length > 64)) {
    p.add("version: must be a version string");
  }
  return finish(p, transaction, () => ({
    transaction: transaction as string,
    name: name as string,
    ...(typeof version === "string" ? { version } : {}),
  }));
}

export function parseNameRequest(json: unknown): Parsed<NameRequest> {
  if (!isRecord(json)) return notAnObject();
  const { o, p, transaction } = start(json, ["transaction", "name"]);
  const name = nameAt(p, o, true);
  return finish(p, transaction, () => ({ transaction: transaction as string, name: name as string }));
}

export function parseCancel(json: unknown): Parsed<CancelRequest> {
  if (!isRecord(json)) return notAnObject();
  const { o, p, transaction } = start(json, ["transaction", "target", "name"]);
  const target = own(o, "target");
  if (target !== undefined && typeof target !== "string")
    p.add("target: must be the transaction of the deploy to cancel");
  const name = nameAt(p, o, false);
  if (target === undefined && name === undefined)
    p.add("target or name: say which deploy or trial to cancel");
  return finish(p, transaction, () => ({
    transaction: transaction as string,
    ...(typeof target === "string" ? { target } : {}),
    ...(name !== undefined ? { name } : {}),
  }));
}

const TRIAL_KEYS = Object.keys(TRIAL_DEFAULTS);

/** `true` → defaults, `false` → no trial, object → defaults overridden; problems go to `p`. */
export function parseTrial(
  v: unknown,
  field: string,
  p: Problems = new Problems(),
): TrialCriteria | false | undefined {
  if (v === false) return false;
  if (v === true) return { ...TRIAL_DEFAULTS };
  if (!isRecord(v)) return p.add(`${field}: must be true, false or an object of criteria`);
  const out: TrialCriteria = { ...TRIAL_DEFAULTS };
  const before = p.list.length;
  for (const [key, value] of Object.entries(v)) {
    const f = `${field}.${key}`;
    if (!TRIAL_KEYS.includes(key)) {
      p.add(`${f}: not a known criterion (expected: ${TRIAL_KEYS.join(", ")})`);
      continue;
    }
    if (key === "promote") {
      if (value !== "auto" && value !== "manual") p.add(`${f}: must be "auto" or "manual"`);
      else out.promote = value;
      continue;
    }
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      p.add(`${f}: must be a finite number ≥ 0, got ${JSON.stringify(value)}`);
      continue;
    }
    if ((key === "windows" || key === "durationMs") && (!Number.isInteger(value) || value < 1)) {
      p.add(`${f}: must be a positive integer, got ${value}`);
      continue;
    }
    if ((key === "minAgreement" || key === "maxErrorRate" || key === "maxNonFiniteRate") && value > 1) {
      p.add(`${f}: is a fraction, must be ≤ 1, got ${value}`);
      continue;
    }
    (out as unknown as Record<string, number>)[key] = value;
  }
  return p.list.length === before ? out : undefined;
}

/** The `trial` object of a package's manifest.json (the validator leaves top-level extras alone). */
export function manifestTrial(manifestBytes: Buffer): { trial?: TrialCriteria | false; errors: string[] } {
  let json: unknown;
  try {
    json = JSON.parse(manifestBytes.toString("utf8")) as unknown;
  } catch {
    return { errors: [] }; // reported by manifest validation
  }
  if (!isRecord(json) || !Object.hasOwn(json, "trial")) return { errors: [] };
  const p = new Problems();
  const trial = parseTrial(json.trial, "trial", p);
  return trial === undefined ? { errors: p.list } : { trial, errors: [] };
}
