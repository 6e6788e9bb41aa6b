/**
 * Physics of a simulated rotating machine (a pump driven by an electric motor) that wears
 * out, fails, is repaired and starts again: the source of the demo plant's readings and of
 * the training data of the shipped `pump-health` model (scripts/make-models.ts).
 *
 * Contract:
 * - Pure and seeded: `sample(machine, tMs)` and `groundTruth(machine, tMs)` depend only on
 *   the machine's seed and options and on `tMs` (epoch ms). No clock, no timers, no I/O;
 *   any time may be asked, in any order, and gives the same answer every time.
 * - A machine lives through successive *lives*. Each starts as new (health 1) and its health
 *   falls, slowly then faster, to 0 at the life's end: the failure. The machine is repaired
 *   at once and the next life begins. `maintain(machine, tMs)` returns a machine that was
 *   serviced at `tMs` (the life in progress ends there without a failure).
 * - Time is accelerated for the demo: a life lasts `meanLifeMs` (default 5 minutes) ± 30 %,
 *   and a machine starts part-way through its first life, so failures show up within minutes.
 * - Readings: temperature °C (≈55 new, up to ≈95 worn), vibration mm/s RMS (≈1.5 → ≈12),
 *   discharge pressure bar (≈6 → ≈4), motor current A (≈10 → ≈16), with a slowly varying load
 *   and Gaussian sensor noise. The model trained on these assumes the defaults below: a demo
 *   that changes them should expect a less accurate model.
 * - `groundTruth` gives what a sensor cannot: health, time to the next failure, life index.
 * - The only mutable state is a private memo of life boundaries; it does not change answers.
 */

/** The signals a machine publishes, in the order the shipped model reads them. */
export const MACHINE_SIGNALS = ["temperature", "vibration", "pressure", "current"] as const;
export type MachineSignal = (typeof MACHINE_SIGNALS)[number];

export type MachineReadings = Record<MachineSignal, number>;

export interface MachineOptions {
  /** Mean duration of one life, new to failure, in (demo) ms. Default 300 000 (5 minutes). */
  meanLifeMs?: number;
  /** Each life lasts `meanLifeMs` × a factor drawn uniformly in [1 − spread, 1 + spread]. Default 0.3. */
  lifeSpread?: number;
  /** Epoch ms at which the machine is observed first; default 0. */
  startMs?: number;
  /**
   * Fraction of the first life already used at `startMs`, in [0, 1). Default: drawn from the
   * seed in [0, 0.7), so a fleet does not fail in step.
   */
  initialWear?: number;
  /** Multiplies the sensor noise; default 1 (0 gives noise-free readings). */
  noiseScale?: number;
}

export interface Machine {
  readonly seed: number;
  readonly options: Readonly<Required<MachineOptions>>;
  /** Sorted service times (epoch ms): each ends the life in progress without a failure. */
  readonly maintenanceMs: readonly number[];
  /** Per-machine constants drawn from the seed (manufacturing spread, load pattern). */
  readonly profile: Readonly<MachineProfile>;
  /** Memo of life boundaries; derived, never observable. */
  readonly lives: MachineLife[];
}

interface MachineProfile {
  temperatureBase: number;
  vibrationBase: number;
  pressureBase: number;
  currentBase: number;
  loadPeriodMs: number;
  loadPhase: number;
}

export interface MachineLife {
  index: number;
  startMs: number;
  /** When it ends: failure at `startMs + naturalMs`, or an earlier service. */
  endMs: number;
  /** Length of the life had nobody serviced it. */
  naturalMs: number;
  /** Wear curve exponent: wear = (age / naturalMs) ^ shape. */
  shape: number;
  endsInFailure: boolean;
}

export interface MachineTruth {
  /** 1 new … 0 failed. */
  health: number;
  /** Time until the current life's failure (as if nobody services it), ms. */
  remainingMs: number;
  /** Epoch ms of that failure. */
  failureAtMs: number;
  ageMs: number;
  lifeIndex: number;
}

export const DEFAULT_MACHINE_OPTIONS: Readonly<Required<Omit<MachineOptions, "initialWear">>> = {
  meanLifeMs: 300_000, // 5 minutes of demo time per life
  lifeSpread: 0.3,
  startMs: 0,
  noiseScale: 1,
};

// ---------------------------------------------------------------------------------------------
// Deterministic randomness: a 32-bit integer hash of (seed, salt, parts), so any draw can be
// recomputed from its coordinates without carrying generator state through time.
// ---------------------------------------------------------------------------------------------

function mix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Uniform in [0, 1) from integer coordinates. */
export function hashUniform(seed: number, salt: number, a = 0, b = 0): number {
  let h = mix32((seed | 0) ^ 0x9e3779b9);
  h = mix32(h ^ Math.imul(salt | 0, 0x85ebca6b));
  h = mix32(h ^ (a | 0));
  h = mix32(h ^ Math.imul(b | 0, 0xc2b2ae35));
  return h / 4294967296;
}

/** Standard normal from integer coordinates (Box–Muller). */
export function hashNormal(seed: number, salt: number, a: number, b: number): number {
  const u1 = hashUniform(seed, salt, a, b);
  const u2 = hashUniform(seed, salt + 7919, a, b);
  return Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
}

const SALT = {
  initialWear: 1,
  lifeLength: 2,
  lifeShape: 3,
  profile: 4,
  noise: 100, // + signal index
} as const;

// ---------------------------------------------------------------------------------------------
// Machines and lives
// ---------------------------------------------------------------------------------------------

export function createMachine(seed: number, opts: MachineOptions = {}): Machine {
  const initialWear = opts.initialWear ?? 0.7 * hashUniform(seed, SALT.initialWear);
  if (!(initialWear >= 0 && initialWear < 1)) throw new RangeError("initialWear must be in [0, 1)");
  const options: Required<MachineOptions> = { ...DEFAULT_MACHINE_OPTIONS, ...opts, initialWear };
  if (!(options.meanLifeMs > 0)) throw new RangeError("meanLifeMs must be > 0");
  if (!(options.lifeSpread >= 0 && options.lifeSpread < 1))
    throw new RangeError("lifeSpread must be in [0, 1)");
  const u = (k: number): number => hashUniform(seed, SALT.profile, k);
  const profile: MachineProfile = {
    temperatureBase: 52 + 5 * u(0),
    vibrationBase: 1.3 + 0.4 * u(1),
    pressureBase: 6.0 + 0.4 * u(2),
    currentBase: 9.8 + 0.8 * u(3),
    loadPeriodMs: 60_000 + 60_000 * u(4),
    loadPhase: 2 * Math.PI * u(5),
  };
  return { seed, options, maintenanceMs: [], profile, lives: [] };
}

/** The same machine, serviced at `tMs`: the life in progress then ends without a failure. */
export function maintain(machine: Machine, tMs: number): Machine {
  const maintenanceMs = [...machine.maintenanceMs, tMs].sort((a, b) => a - b);
  return { ...machine, maintenanceMs, lives: [] };
}

function naturalLife(machine: Machine, index: number, startMs: number): MachineLife {
  const { meanLifeMs, lifeSpread } = machine.options;
  const factor = 1 + lifeSpread * (2 * hashUniform(machine.seed, SALT.lifeLength, index) - 1);
  const naturalMs = meanLifeMs * factor;
  const shape = 1.8 + hashUniform(machine.seed, SALT.lifeShape, index);
  const naturalEnd = startMs + naturalMs;
  const service = machine.maintenanceMs.find((m) => m > startMs && m < naturalEnd);
  return {
    index,
    startMs,
    naturalMs,
    shape,
    endMs: service ?? naturalEnd,
    endsInFailure: service === undefined,
  };
}

/** The life in progress at `tMs` (the first life for times before it began). */
function lifeAt(machine: Machine, tMs: number): MachineLife {
  const lives = machine.lives;
  if (lives.length === 0) {
    const first = naturalLife(machine, 0, 0);
    const startMs = machine.options.startMs - machine.options.initialWear * first.naturalMs;
    lives.push(naturalLife(machine, 0, startMs));
  }
  let last = lives[lives.length - 1] as MachineLife;
  while (tMs >= last.endMs) {
    last = naturalLife(machine, last.index + 1, last.endMs);
    lives.push(last);
  }
  // Binary search: the last life starting at or before tMs.
  let lo = 0;
  let hi = lives.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((lives[mid] as MachineLife).startMs <= tMs) lo = mid;
    else hi = mid - 1;
  }
  return lives[lo] as MachineLife;
}

function wearOf(life: MachineLife, tMs: number): number {
  const u = Math.min(1, Math.max(0, (tMs - life.startMs) / life.naturalMs));
  return Math.pow(u, life.shape);
}

export function groundTruth(machine: Machine, tMs: number): MachineTruth {
  const life = lifeAt(machine, tMs);
  const failureAtMs = life.startMs + life.naturalMs;
  return {
    health: 1 - wearOf(life, tMs),
    remainingMs: Math.max(0, failureAtMs - tMs),
    failureAtMs,
    ageMs: Math.max(0, tMs - life.startMs),
    lifeIndex: life.index,
  };
}

/** Load in [0.1, 0.9]: the pump's duty follows demand, a slow wave with a harmonic. */
function loadAt(p: MachineProfile, tMs: number): number {
  const x = (2 * Math.PI * tMs) / p.loadPeriodMs + p.loadPhase;
  return 0.5 + 0.3 * Math.sin(x) + 0.1 * Math.sin(3.1 * x + 1);
}

/** One set of readings at `tMs`. Noise is a function of (seed, signal, whole ms). */
export function sample(machine: Machine, tMs: number): MachineReadings {
  const p = machine.profile;
  const wear = wearOf(lifeAt(machine, tMs), tMs);
  const load = loadAt(p, tMs);
  const t = Math.floor(tMs);
  // Split the time into two 32-bit halves so that nearby times never share a noise draw.
  const lo = t % 4294967296;
  const hi = Math.floor(t / 4294967296);
  const noise = (k: number): number =>
    machine.options.noiseScale * hashNormal(machine.seed, SALT.noise + k, lo | 0, hi);
  const temperature = p.temperatureBase + 8 * load + 30 * Math.pow(wear, 1.3) + 0.4 * noise(0);
  const vibration = Math.max(
    0.1,
    p.vibrationBase * (1 + 0.3 * load) + 9.5 * wear * wear + (0.08 + 0.4 * wear) * noise(1),
  );
  const pressure = p.pressureBase - 0.3 * load - 2.2 * Math.pow(wear, 1.5) + 0.05 * noise(2);
  const current = p.currentBase + 2.5 * load + 3.2 * wear + 0.15 * noise(3);
  return { temperature, vibration, pressure, current };
}
