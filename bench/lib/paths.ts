/**
 * Where things are. The bench runs COMPILED (`npm run bench` compiles src/ and bench/ into
 * bench/.build/ with tsconfig.bench.json and runs it with plain `node`), so that every process
 * it measures runs the way the built gateway runs, without a TypeScript loader in it. Sources,
 * models, results and the Node-RED install are found from the repository root.
 */

import fs from "node:fs";
import path from "node:path";

function findRoot(from: string): string {
  let dir = from;
  for (;;) {
    const file = path.join(dir, "package.json");
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, "utf8")) as { name?: string };
      if (pkg.name === "vigil") return dir;
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no vigil package.json above ${from}`);
    dir = up;
  }
}

/** The repository root. */
export const ROOT = findRoot(import.meta.dirname);
/** The bench's source folder (results, the Node-RED install). */
export const BENCH_SRC = path.join(ROOT, "bench");
/** The compiled bench folder (this file is in its lib/). */
export const BENCH_BUILD = path.resolve(import.meta.dirname, "..");
/** A compiled bench module, e.g. `compiled("hosts/gateway-host.js")`. */
export function compiled(rel: string): string {
  return path.join(BENCH_BUILD, rel);
}
