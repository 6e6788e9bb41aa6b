/// <reference lib="dom" />
/**
 * The dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright-core):
 * every asset the broker carried is shown with its latest outputs and a drawn trend, active
 * alerts come first, models, store and the data-loss ledger are filled, and new predictions and
 * alerts appear live (server-sent events) without a reload. A full-page screenshot is taken and
 * checked: its size, and that it shows the warning colour and the trend line colour. Skips,
 * saying so, where /usr/bin/chromium is absent (.ci/run installs it).
 */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Collector,
  modelsDir,
  startGateway,
  tempDir,
  testConfig,
  type RunningGateway,
  apiUrl,
} from "../support/harness.js";

const CHROMIUM = process.env.VIGIL_CHROMIUM ?? "/usr/bin/chromium";
const hasChromium = fs.existsSync(CHROMIUM);
if (!hasChromium)
  console.warn(`SKIPPED dashboard browser test: ${CHROMIUM} not found (apt-get install chromium)`);

/** Where the screenshot is kept for people to look at (the test checks it too). */
export const SCREENSHOT = path.join(os.tmpdir(), "vigil-dashboard.png");

const GW = "gw-test";
const T0 = Date.UTC(2026, 0, 1);

async function publishRows(c: Collector, asset: string, s1: readonly number[]): Promise<void> {
  for (const [i, v] of s1.entries())
    await c.publish(`plant/${asset}/row`, { ts: T0 + i * 1000, values: { s1: v, s2: 20, s3: 5 } });
}

/** Names of the asset cards in page order. */
function assetOrder(page: Page): Promise<string[]> {
  return page.$$eval("#assets .asset", (cards) => cards.map((c) => (c as HTMLElement).dataset.asset ?? ""));
}

describe.skipIf(!hasChromium)("dashboard in headless Chromium", () => {
  let running: RunningGateway;
  let collector: Collector;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    running = await startGateway(testConfig({ "models.dir": modelsDir(["count-ntc-zscore"]) }));
    collector = await Collector.connect(running.brokerUrl, [`vigil/${GW}/#`]);
    await collector.waitForCount(`vigil/${GW}/status`, 1);
    // pump-b: low s1 → rul below 40 twice → a warning. pump-a, pump-c: normal.
    await publishRows(collector, "pump-a", [100, 101, 102, 103, 104, 105, 106]);
    await publishRows(collector, "pump-b", [80, 80, 80, 80, 80, 80, 80]);
    await publishRows(collector, "pump-c", [100, 99, 98, 97, 96]);
    await collector.waitForCount(`vigil/${GW}/alerts/pump-b`, 1);
    await collector.waitForCount(`vigil/${GW}/predictions/`, 5);

    context = await chromium.launchPersistentContext(tempDir("vigil-chromium-profile-"), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on("pageerror", (err) => pageErrors.push(err.message));
    page.on("console", (msg) => {
      if (msg.type() === "error") pageErrors.push(msg.text());
    });
    await page.goto(`${apiUrl(running)}/`);
    await page.waitForSelector('body[data-live="1"]');
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await collector?.close();
    await running?.stop();
  });

  it("shows every asset with its latest outputs and a drawn trend, alerting assets first", async () => {
    await page.waitForSelector('#assets .asset[data-asset="pump-c"] canvas');
    expect(await assetOrder(page)).toEqual(["pump-b", "pump-a", "pump-c"]);
    const card = page.locator('#assets .asset[data-asset="pump-b"]');
    await expect.poll(() => card.getAttribute("class")).toContain("alert-warning");
    expect(await card.locator(".asset-alert").textContent()).toBe("WARNING · rul-low");
    const rul = Number(await card.locator('.output[data-output="rul"] .v').textContent());
    expect(rul).toBeLessThan(40);
    expect(await card.locator(".model-line").textContent()).toMatch(/^count-ntc-zscore 1\.0\.0 · latest /);
    // Each trend is drawn: its canvas has the series colour in it.
    const drawn = await page.$$eval("#assets .asset canvas", (canvases) =>
      canvases.map((c) => {
        const canvas = c as HTMLCanvasElement;
        const data = canvas.getContext("2d")?.getImageData(0, 0, canvas.width, canvas.height).data;
        let line = 0;
        for (let i = 0; data && i < data.length; i += 4)
          if (Math.abs((data[i] ?? 0) - 0x2b) < 30 && Math.abs((data[i + 2] ?? 0) - 0xb0) < 30) line++;
        return line;
      }),
    );
    expect(drawn).toHaveLength(3);
    for (const n of drawn) expect(n).toBeGreaterThan(20);
  });

  it("lists active alerts first, then models with provider, store, and the data-loss ledger", async () => {
    const alertRows = page.locator("#alerts tbody tr");
    await expect.poll(() => alertRows.count()).toBe(1);
    expect(await alertRows.first().getAttribute("data-asset")).toBe("pump-b");
    expect(await alertRows.first().getAttribute("data-severity")).toBe("warning");
    // The alerts panel is the first thing in the page's main column.
    expect(await page.$eval("main > section", (s) => s.id)).toBe("alerts-section");
    const model = page.locator('#models tbody tr[data-model="count-ntc-zscore"] td');
    expect(await model.allTextContents()).toEqual(["count-ntc-zscore", "1.0.0", "serving", "cpu"]);
    expect(await page.locator("#store").textContent()).toMatch(/predictions5alerts1/);
    const causes = await page.$$eval("#loss tbody tr", (rows) =>
      rows.map((r) => (r as HTMLElement).dataset.cause),
    );
    expect(causes).toContain("windows_dropped_overload");
    expect(await page.locator("#loss-total").textContent()).toBe("0");
    expect(await page.locator("#ready").textContent()).toBe("ready");
  });

  it("updates live without reloading: a new asset and a new alert appear", async () => {
    const before = Number((await page.getAttribute("body", "data-updates")) ?? "0");
    let reloaded = false;
    page.once("load", () => (reloaded = true));
    await publishRows(collector, "pump-d", [100, 100, 100, 100, 100]);
    await page.waitForSelector('#assets .asset[data-asset="pump-d"] canvas');
    await publishRows(collector, "pump-e", [80, 80, 80, 80, 80, 80, 80]);
    await page.waitForSelector('#alerts tbody tr[data-asset="pump-e"]');
    expect(await assetOrder(page)).toEqual(["pump-b", "pump-e", "pump-a", "pump-c", "pump-d"]);
    expect(Number(await page.getAttribute("body", "data-updates"))).toBeGreaterThan(before);
    expect(reloaded).toBe(false);
    await expect.poll(() => page.locator("#asset-count").textContent()).toBe("5");
  });

  it("takes a full-page screenshot that shows the alert and the trends", async () => {
    const png = await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(png.subarray(1, 4).toString("latin1")).toBe("PNG");
    const width = png.readUInt32BE(16);
    const height = png.readUInt32BE(20);
    expect(width).toBe(1280);
    expect(height).toBeGreaterThanOrEqual(900);
    // Decode it in the page and count pixels of the warning colour and of the trend colour.
    const counts = await page.evaluate(async (b64) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const canvas = document.createElement("canvas");
      canvas.width = img.width;
      canvas.height = img.height;
      const ctx = canvas.getContext("2d");
      if (!ctx) return { warning: 0, trend: 0, distinct: 0 };
      ctx.drawImage(img, 0, 0);
      const d = ctx.getImageData(0, 0, img.width, img.height).data;
      const near = (i: number, r: number, g: number, b: number): boolean =>
        Math.abs((d[i] ?? 0) - r) < 24 &&
        Math.abs((d[i + 1] ?? 0) - g) < 24 &&
        Math.abs((d[i + 2] ?? 0) - b) < 24;
      let warning = 0;
      let trend = 0;
      const colours = new Set<number>();
      for (let i = 0; i < d.length; i += 4) {
        if (near(i, 0xb7, 0x79, 0x1f)) warning++;
        if (near(i, 0x2b, 0x6c, 0xb0)) trend++;
        if (i % 64 === 0) colours.add(((d[i] ?? 0) << 16) | ((d[i + 1] ?? 0) << 8) | (d[i + 2] ?? 0));
      }
      return { warning, trend, distinct: colours.size };
    }, png.toString("base64"));
    expect(counts.warning).toBeGreaterThan(100);
    expect(counts.trend).toBeGreaterThan(100);
    expect(counts.distinct).toBeGreaterThan(50);
    expect(pageErrors).toEqual([]);
  });
});
