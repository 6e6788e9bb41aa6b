/**
 * Typed errors shared by every module.
 *
 * Contract: every error Vigil raises on purpose is a `VigilError` with a stable `code`
 * (for logs, status and tests) and, where it crosses an I/O boundary, `retriable`: whether
 * trying the same thing again later may succeed. The decision is made once, where the error
 * is created, and carried with it.
 */

export class VigilError extends Error {
  readonly code: string;
  readonly retriable: boolean;

  constructor(code: string, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/** Invalid configuration; `issues` holds every problem found, each naming its key path. */
export class ConfigError extends VigilError {
  readonly issues: readonly { key: string; message: string }[];
  constructor(issues: readonly { key: string; message: string }[]) {
    super(
      "CONFIG_INVALID",
      `invalid configuration:\n${issues.map((i) => `  ${i.key}: ${i.message}`).join("\n")}`,
    );
    this.issues = issues;
  }
}

/** A model package that cannot be served; `field` names the manifest field when there is one. */
export class PackageError extends VigilError {
  readonly field: string | undefined;
  constructor(code: string, message: string, options: { field?: string; cause?: unknown } = {}) {
    super(code, message, { retriable: false, cause: options.cause });
    this.field = options.field;
  }
}

/** Inference failed for a batch. */
export class InferenceError extends VigilError {}

/** The store could not complete an operation. SQLITE_BUSY/FULL/IOERR are retriable. */
export class StoreError extends VigilError {}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
