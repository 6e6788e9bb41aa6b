/**
 * `vigil deadletter list|retry|drop` on a real store (child process, as a user runs it).
 */

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/store/sqlite.js";
import { runCli } from "../support/cli.js";
import { tempDir } from "../support/harness.js";

describe("vigil deadletter", () => {
  it("lists, retries and drops dead letters; drop is counted in the ledger", async () => {
    const dir = tempDir("vigil-dl-");
    const dataDir = path.join(dir, "data");
    const file = path.join(dataDir, "vigil.db");
    const config = path.join(dir, "vigil.json");
    fs.mkdirSync(dataDir);
    fs.writeFileSync(config, JSON.stringify({ gatewayId: "gw-dl", dataDir }));
    const store = new SqliteStore({ file });
    store.setDestinations(["cloud"]);
    store.commit([
      { kind: "prediction", asset: "pump-1", tsMs: 1, data: { n: 1 } },
      { kind: "alert", asset: "pump-2", tsMs: 2, data: { n: 2 } },
    ]);
    const [a, b] = store.readOutbox(0, 10);
    if (!a || !b) throw new Error("no records");
    store.acknowledge("cloud", 2, [
      { record: a, reason: "HTTP 422: bad unit" },
      { record: b, reason: "HTTP 400: schema" },
    ]);
    store.close();

    const list = await runCli(["deadletter", "list", "--config", config]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split("\n")[0]).toBe(
      "destination\tseq\tkind\tasset\tid\tstatus\tattempts\tsince\treason",
    );
    expect(list.stdout).toContain(`cloud\t1\tprediction\tpump-1\t${a.id}\tdead\t1\t`);
    expect(list.stdout).toContain("HTTP 400: schema");

    const json = await runCli(["deadletter", "list", "--config", config, "--json"]);
    const rows = json.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { id: string; data: unknown });
    expect(rows.map((r) => r.id)).toEqual([a.id, b.id]);
    expect(rows[1]?.data).toEqual({ n: 2 });

    const bare = await runCli(["deadletter", "drop", "--config", config]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain("needs --id ID (repeatable) or --all");

    const retry = await runCli(["deadletter", "retry", "--config", config, "--id", a.id]);
    expect(retry.stdout).toContain("1 dead letter(s) marked for retry");
    const drop = await runCli(["deadletter", "drop", "--config", config, "--all"]);
    expect(drop.stdout).toContain("2 dead letter(s) dropped");

    const check = new SqliteStore({ file });
    try {
      expect(check.deadLetters()).toEqual([]);
      expect(check.ledger().map((e) => [e.reason, e.kind, e.count])).toEqual(
        [
          ["dead_letter_dropped", "prediction", 1],
          ["dead_letter_dropped", "alert", 1],
          ["dead_lettered", "prediction", 1],
          ["dead_lettered", "alert", 1],
        ].sort((x, y) => `${x[0]}${x[1]}`.localeCompare(`${y[0]}${y[1]}`)),
      );
    } finally {
      check.close();
    }
  });
});
