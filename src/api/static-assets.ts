/**
 * The dashboard's static files: our page, script and style (`src/api/dashboard/`, copied to
 * `dist/api/dashboard/` by the build) and uPlot, read from `node_modules` (an ordinary
 * dependency, so `npm ci --omit=dev` installs it and nothing is fetched at run time).
 *
 * Contract: `loadStaticAssets()` reads every file once (the API serves them from memory) and
 * rejects with a VigilError naming the missing file. Each asset carries its content type and
 * a strong ETag (hash of the bytes).
 */

import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { VigilError, errorMessage } from "../errors.js";

export interface StaticAsset {
  body: Buffer;
  contentType: string;
  etag: string;
}

const DASHBOARD_DIR = fileURLToPath(new URL("./dashboard/", import.meta.url));

/** URL path → where the file is. */
function sources(): Record<string, string> {
  const require = createRequire(import.meta.url);
  return {
    "/": `${DASHBOARD_DIR}index.html`,
    "/assets/app.js": `${DASHBOARD_DIR}app.js`,
    "/assets/app.css": `${DASHBOARD_DIR}app.css`,
    "/assets/uPlot.iife.min.js": require.resolve("uplot/dist/uPlot.iife.min.js"),
    "/assets/uPlot.min.css": require.resolve("uplot/dist/uPlot.min.css"),
  };
}

function contentType(file: string): string {
  if (file.endsWith(".html")) return "text/html; charset=utf-8";
  if (file.endsWith(".js")) return "text/javascript; charset=utf-8";
  if (file.endsWith(".css")) return "text/css; charset=utf-8";
  return "application/octet-stream";
}

export async function loadStaticAssets(): Promise<Map<string, StaticAsset>> {
  const out = new Map<string, StaticAsset>();
  let entries: [string, string][];
  try {
    entries = Object.entries(sources());
  } catch (err) {
    throw new VigilError("DASHBOARD_ASSETS", `dashboard assets not found: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  for (const [route, file] of entries) {
    let body: Buffer;
    try {
      body = await fs.readFile(file);
    } catch (err) {
      throw new VigilError(
        "DASHBOARD_ASSETS",
        `dashboard asset ${file} cannot be read: ${errorMessage(err)}`,
        {
          cause: err,
        },
      );
    }
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
    out.set(route, { body, contentType: contentType(file), etag });
  }
  out.set("/index.html", out.get("/") as StaticAsset);
  return out;
}
