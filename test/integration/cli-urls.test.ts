/**
 * A service URL given on the command line (`vigil replay --broker`, `vigil status --url`) with an
 * empty or invalid port, no host or an unsupported scheme is wrong usage: exit 2 with one line
 * naming the option and the value (password masked), before any file is read or any connection
 * is tried (`mqtt://127.0.0.1:` used to connect to 1883). Rules: src/system/endpoint-url.ts.
 */

import { describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";

const REPLAY = ["replay", "--file", "does-not-exist.csv", "--format", "csv"];

describe("URL options of the CLI", () => {
  it("replay --broker with an empty or invalid port, or another scheme, exits 2 naming the option and the value", async () => {
    const cases: [string, RegExp][] = [
      ["mqtt://127.0.0.1:", /empty port/],
      ["mqtt://127.0.0.1:18x3", /invalid port "18x3"/],
      ["mqtt://127.0.0.1:0", /invalid port "0"/],
      ["http://127.0.0.1:1883", /unsupported scheme "http:"/],
      ["mqtt://user:hunter2@127.0.0.1:", /empty port/],
    ];
    const results = await Promise.all(cases.map(([url]) => runCli([...REPLAY, "--broker", url])));
    results.forEach((r, i) => {
      const [url, reason] = cases[i] ?? ["", /./];
      expect(r.code, `${url}: ${r.stderr}`).toBe(2);
      const first = r.stderr.split("\n")[0] ?? "";
      expect(first).toMatch(/^vigil replay: --broker "/);
      expect(first).toMatch(reason);
      expect(first).not.toMatch(/does-not-exist/); // refused before the file is read
      expect(r.stderr).toMatch(/^usage: vigil replay/m);
    });
    expect(results[0]?.stderr).toContain('"mqtt://127.0.0.1:"');
    expect(results[4]?.stderr).toContain('"mqtt://user:***@127.0.0.1:"');
    expect(results[4]?.stderr).not.toContain("hunter2");
  });

  it("status --url with an empty port exits 2 naming the option and the value", async () => {
    const r = await runCli(["status", "--url", "http://127.0.0.1:"]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.split("\n")[0]).toMatch(
      /^vigil status: --url "http:\/\/127\.0\.0\.1:" has an empty port/,
    );
  });
});
