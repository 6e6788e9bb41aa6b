/**
 * Package archives (src/models/archive.ts) on a real file system: every kind of hostile entry
 * is refused with its path and nothing is left behind or written outside; `./`-prefixed and
 * nested files extract; packing is deterministic and round-trips.
 */

import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import { entryPath, extractPackage, packPackage } from "../../src/models/archive.js";
import { FIXTURES, tempDir } from "../support/harness.js";
import { craftTgz, type RawEntry } from "../support/ota.js";

const LIMITS = { maxFiles: 10, maxBytes: 10_000 };
const file = (p: string, text = "x"): RawEntry => ({ path: p, type: "File", data: Buffer.from(text) });

async function extract(
  entries: RawEntry[] | Buffer,
  limits = LIMITS,
): Promise<{ dest: string; error?: { code: string; message: string } }> {
  const root = tempDir("vigil-archive-");
  const archive = path.join(root, "pkg.tgz");
  fs.writeFileSync(archive, Buffer.isBuffer(entries) ? entries : craftTgz(entries));
  const dest = path.join(root, "out", "pkg");
  try {
    await extractPackage(archive, dest, limits);
    return { dest };
  } catch (err) {
    const e = err as { code: string; message: string };
    // Refused: nothing extracted stays, and nothing appeared beside the destination.
    expect(fs.existsSync(dest)).toBe(false);
    expect(fs.readdirSync(path.join(root, "out"))).toEqual([]);
    expect(fs.readdirSync(root).sort()).toEqual(["out", "pkg.tgz"]);
    return { dest, error: { code: e.code, message: e.message } };
  }
}

describe("archive extraction", () => {
  it("takes ./-prefixed and nested files", async () => {
    const { dest, error } = await extract([
      { path: "./", type: "Directory" },
      file("./manifest.json", "{}"),
      { path: "sub/", type: "Directory" },
      file("sub/a.bin", "abc"),
    ]);
    expect(error).toBeUndefined();
    expect(fs.readFileSync(path.join(dest, "sub", "a.bin"), "utf8")).toBe("abc");
    expect(fs.statSync(dest).mode & 0o777).toBe(0o700);
  });

  it.each([
    [
      "a .. segment",
      [file("ok"), file("a/../../x")],
      "ARCHIVE_UNSAFE_PATH",
      /"a\/\.\.\/\.\.\/x" contains a \.\. segment/,
    ],
    [
      "an absolute path",
      [file("/etc/cron.d/x")],
      "ARCHIVE_ABSOLUTE_PATH",
      /"\/etc\/cron\.d\/x" is an absolute path/,
    ],
    ["a drive letter", [file("C:/x")], "ARCHIVE_ABSOLUTE_PATH", /is an absolute path/],
    ["a backslash", [file("a\\..\\x")], "ARCHIVE_UNSAFE_PATH", /contains a backslash/],
    [
      "a symbolic link",
      [{ path: "l", type: "SymbolicLink", linkpath: "/etc" } as RawEntry, file("l/passwd")],
      "ARCHIVE_LINK",
      /"l" is a symbolic link/,
    ],
    [
      "a hard link",
      [file("a"), { path: "b", type: "Link", linkpath: "/etc/shadow" } as RawEntry],
      "ARCHIVE_LINK",
      /"b" is a hard link/,
    ],
    ["a FIFO", [{ path: "f", type: "FIFO" } as RawEntry], "ARCHIVE_DEVICE", /"f" is a FIFO/],
    [
      "a device",
      [{ path: "d", type: "CharacterDevice" } as RawEntry],
      "ARCHIVE_DEVICE",
      /"d" is a CharacterDevice/,
    ],
    ["the same path twice", [file("a", "1"), file("./a", "2")], "ARCHIVE_DUPLICATE", /"\.\/a" appears twice/],
    [
      "too many entries",
      Array.from({ length: 11 }, (_, i) => file(`f${i}`)),
      "ARCHIVE_TOO_LARGE",
      /more than 10 entries/,
    ],
    ["too many bytes", [file("big", "x".repeat(10_001))], "ARCHIVE_TOO_LARGE", /exceeds 10000 bytes/],
    ["no files", [{ path: "./", type: "Directory" } as RawEntry], "ARCHIVE_EMPTY", /holds no files/],
  ])("refuses %s", async (_what, entries, code, message) => {
    const { error } = await extract(entries as RawEntry[]);
    expect(error?.code).toBe(code);
    expect(error?.message).toMatch(message);
  });

  it("refuses what is not a tar, and a truncated archive", async () => {
    expect(
      (await extract(Buffer.from("just some text, not an archive at all ".repeat(20)))).error?.code,
    ).toBe("ARCHIVE_CORRUPT");
    const whole = craftTgz([file("manifest.json", "{}".repeat(2000))]);
    expect((await extract(whole.subarray(0, whole.length - 40))).error?.code).toBe("ARCHIVE_CORRUPT");
    expect((await extract(zlib.gzipSync(Buffer.alloc(100, 1)))).error?.code).toBe("ARCHIVE_CORRUPT");
  });

  it("entry paths: the checks in one place", () => {
    expect(entryPath("./a/b")).toEqual({ path: "a/b" });
    expect(entryPath("././")).toEqual({ path: "" });
    expect(entryPath("a//b")).toMatchObject({ code: "ARCHIVE_UNSAFE_PATH" });
    expect(entryPath("a/\u0001")).toMatchObject({ code: "ARCHIVE_UNSAFE_PATH" });
  });
});

describe("packing", () => {
  it("is deterministic and round-trips exactly the listed files", async () => {
    const src = path.join(FIXTURES, "count-ntc-zscore");
    const out = tempDir();
    const files = ["model.onnx", "manifest.json"];
    await packPackage(src, files, path.join(out, "a.tgz"));
    await packPackage(src, files, path.join(out, "b.tgz"));
    expect(fs.readFileSync(path.join(out, "a.tgz")).equals(fs.readFileSync(path.join(out, "b.tgz")))).toBe(
      true,
    );
    const dest = path.join(out, "x");
    const r = await extractPackage(path.join(out, "a.tgz"), dest, { maxFiles: 10, maxBytes: 1e6 });
    expect(r.files).toEqual(["manifest.json", "model.onnx"]);
    expect(
      fs.readFileSync(path.join(dest, "model.onnx")).equals(fs.readFileSync(path.join(src, "model.onnx"))),
    ).toBe(true);
  });
});
