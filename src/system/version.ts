/**
 * The running Vigil version, read once from package.json next to the build.
 */

import fs from "node:fs";

function readVersion(): string {
  for (const rel of ["../../package.json", "../package.json"]) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === "vigil" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // try the next location (src/ when run from source, dist/ when built)
    }
  }
  return "0.0.0";
}

export const VERSION = readVersion();
