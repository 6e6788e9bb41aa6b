/**
 * Package archives (`.tgz`, contract §4): safe extraction and packing. The only importer of `tar`.
 *
 * Why `tar` (node-tar) and not our own reader: parsing is where the format's corner cases live
 * (pax and GNU long names, base-256 sizes, checksums, gzip detection), and node-tar is the
 * reader npm itself uses, kept up to date. We use only its *parser*: it never touches the file
 * system here. Every decision about what may be written is ours, below, and every write is
 * ours (a fresh folder, `O_EXCL` files), so a parser quirk cannot turn into a write outside the
 * staging folder.
 *
 * Contract of `extractPackage(archive, dest, limits)`:
 * - `dest` must not exist; it is created (mode 0700) and receives the archive's regular files
 *   and folders, with paths relative to the archive root (a leading `./` is dropped, so both
 *   `tar czf pkg.tgz -C DIR .` and `vigil models pack` archives work).
 * - Refused, with a `PackageError` naming the entry (code in brackets): an absolute path or a
 *   drive letter [ARCHIVE_ABSOLUTE_PATH]; a `..` segment, a backslash, an empty segment or a
 *   control character [ARCHIVE_UNSAFE_PATH]; symbolic or hard links [ARCHIVE_LINK]; character
 *   or block devices and FIFOs [ARCHIVE_DEVICE]; any other entry type [ARCHIVE_ENTRY_TYPE]; the
 *   same path twice [ARCHIVE_DUPLICATE]; more than `maxFiles` entries or more than `maxBytes`
 *   bytes in all [ARCHIVE_TOO_LARGE]; a file that is not a gzip'd (or plain) tar, or is
 *   truncated [ARCHIVE_CORRUPT]; an archive without files [ARCHIVE_EMPTY].
 * - On any refusal `dest` is removed: nothing half-extracted stays behind.
 * `packPackage(dir, files, out)` writes a gzip'd tar of exactly `files` (paths relative to `dir`,
 * sorted), with fixed mtime and no owner names, so the same package gives the same bytes.
 */

import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { Parser, create, type ReadEntry } from "tar";
import { PackageError, errorMessage } from "../errors.js";

export interface ExtractLimits {
  /** Most entries (files and folders). */
  maxFiles: number;
  /** Most bytes of file content in all, after decompression. */
  maxBytes: number;
}

export interface ExtractResult {
  /** Regular files written, relative `/`-separated paths, in archive order. */
  files: string[];
  bytes: number;
}

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

/** The entry's path relative to the archive root, or a refusal. */
export function entryPath(raw: string): { path: string } | { code: string; reason: string } {
  if (raw.startsWith("/") || /^[A-Za-z]:/.test(raw)) {
    return { code: "ARCHIVE_ABSOLUTE_PATH", reason: "is an absolute path" };
  }
  if (raw.includes("\\")) return { code: "ARCHIVE_UNSAFE_PATH", reason: "contains a backslash" };
  if (CONTROL_RE.test(raw)) return { code: "ARCHIVE_UNSAFE_PATH", reason: "contains a control character" };
  let p = raw;
  while (p.startsWith("./")) p = p.slice(2);
  if (p.endsWith("/")) p = p.slice(0, -1);
  if (p === "" || p === ".") return { path: "" };
  const segments = p.split("/");
  if (segments.includes("..")) return { code: "ARCHIVE_UNSAFE_PATH", reason: "contains a .. segment" };
  if (segments.some((s) => s === "" || s === ".")) {
    return { code: "ARCHIVE_UNSAFE_PATH", reason: "contains an empty or . segment" };
  }
  return { path: p };
}

function refusal(code: string, entry: string, reason: string): PackageError {
  return new PackageError(code, `archive entry ${JSON.stringify(entry)} ${reason}; package refused`);
}

export async function extractPackage(
  archive: string,
  dest: string,
  limits: ExtractLimits,
): Promise<ExtractResult> {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.mkdirSync(dest, { mode: 0o700 }); // throws if it exists: we never extract over anything
  const seen = new Set<string>();
  const files: string[] = [];
  let bytes = 0;
  let entries = 0;
  const writes: Promise<void>[] = [];
  const streams: fs.WriteStream[] = [];
  let failure: Error | undefined;

  const parser = new Parser({ strict: true, maxMetaEntrySize: 64 * 1024 });
  const stop = (err: Error): void => {
    failure ??= err;
    parser.abort(err);
  };
  parser.on("entry", (entry: ReadEntry) => {
    if (failure) {
      entry.resume();
      return;
    }
    try {
      const write = acceptEntry(entry);
      if (write) writes.push(write.catch((err: unknown) => stop(asError(err))));
    } catch (err) {
      entry.resume();
      stop(asError(err));
    }
  });

  const acceptEntry = (entry: ReadEntry): Promise<void> | undefined => {
    const checked = entryPath(entry.path);
    if ("code" in checked) throw refusal(checked.code, entry.path, checked.reason);
    const rel = checked.path;
    entries++;
    if (entries > limits.maxFiles) {
      throw new PackageError(
        "ARCHIVE_TOO_LARGE",
        `archive has more than ${limits.maxFiles} entries; refused`,
      );
    }
    switch (entry.type) {
      case "SymbolicLink":
      case "Link":
        throw refusal("ARCHIVE_LINK", entry.path, `is a ${entry.type === "Link" ? "hard" : "symbolic"} link`);
      case "CharacterDevice":
      case "BlockDevice":
      case "FIFO":
        throw refusal("ARCHIVE_DEVICE", entry.path, `is a ${entry.type} (device or FIFO)`);
      case "Directory":
        entry.resume();
        if (rel !== "") fs.mkdirSync(path.join(dest, rel), { recursive: true, mode: 0o755 });
        return undefined;
      case "File":
      case "OldFile":
      case "ContiguousFile":
        break;
      default:
        throw refusal(
          "ARCHIVE_ENTRY_TYPE",
          entry.path,
          `has type ${entry.type}, which a package may not hold`,
        );
    }
    if (rel === "") throw refusal("ARCHIVE_UNSAFE_PATH", entry.path, "is a file without a name");
    if (seen.has(rel)) throw refusal("ARCHIVE_DUPLICATE", entry.path, "appears twice");
    seen.add(rel);
    bytes += entry.size;
    if (bytes > limits.maxBytes) {
      throw new PackageError(
        "ARCHIVE_TOO_LARGE",
        `archive content exceeds ${limits.maxBytes} bytes (at ${JSON.stringify(entry.path)}); refused`,
      );
    }
    files.push(rel);
    const target = path.join(dest, rel);
    fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
    // 'wx': never write through something that already exists (a link cannot exist here anyway).
    const out = fs.createWriteStream(target, { flags: "wx", mode: 0o644 });
    streams.push(out);
    return pipeline(entry, out);
  };

  try {
    await new Promise<void>((resolve, reject) => {
      parser.on("error", (err: Error) => {
        failure ??= err instanceof PackageError ? err : corrupt(err);
        reject(failure);
      });
      parser.on("abort", (err: Error) => reject(failure ?? err));
      parser.on("end", () => resolve());
      const input = fs.createReadStream(archive);
      input.on("error", (err) => reject(corrupt(err)));
      input.pipe(parser);
    });
    await Promise.all(writes);
    if (failure) throw failure;
    if (files.length === 0) throw new PackageError("ARCHIVE_EMPTY", "archive holds no files; refused");
    return { files, bytes };
  } catch (err) {
    // Stop and wait for every write in flight, so that nothing lands after the folder is gone.
    for (const out of streams) out.destroy();
    await Promise.allSettled(writes);
    fs.rmSync(dest, { recursive: true, force: true });
    throw failure ?? (err instanceof PackageError ? err : corrupt(err));
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function corrupt(err: unknown): PackageError {
  return new PackageError("ARCHIVE_CORRUPT", `not a readable .tgz package (${errorMessage(err)}); refused`, {
    cause: err,
  });
}

/** Writes `out` as a gzip'd tar of `files` (relative to `dir`), deterministic. */
export async function packPackage(dir: string, files: readonly string[], out: string): Promise<void> {
  const sorted = [...files].sort();
  await create(
    { gzip: { level: 9 }, file: out, cwd: dir, portable: true, mtime: new Date(0), noDirRecurse: true },
    sorted,
  );
}
