/**
 * `vigil deadletter list|retry|drop`: the records a destination refused (4xx), set aside.
 *
 * Contract: opens the store of the given configuration (safe while the daemon runs: WAL, a
 * busy timeout). `list` prints one line per dead letter (or JSON lines with `--json`);
 * `retry` marks them to be sent again (the running daemon picks them up within a second,
 * else at its next start; refused again, they return to the dead letters); `drop` deletes
 * them for good and counts them in the data-loss ledger (`dead_letter_dropped`). `retry` and
 * `drop` need `--id` (repeatable) or `--all`; `--destination` narrows any of them.
 */

import path from "node:path";
import type { VigilConfig } from "../config/types.js";
import { SqliteStore } from "../store/sqlite.js";
import type { DeadLetterFilter } from "../store/types.js";

export type DeadletterAction = "list" | "retry" | "drop";

export interface DeadletterOptions {
  action: DeadletterAction;
  destination?: string;
  ids?: string[];
  all?: boolean;
  json?: boolean;
}

export class DeadletterUsageError extends Error {}

export function storeFileOf(config: Pick<VigilConfig, "dataDir" | "store">): string {
  return config.store.path !== "" ? config.store.path : path.join(config.dataDir, "vigil.db");
}

/** Runs the action; returns the text to print on stdout. */
export function runDeadletter(config: VigilConfig, o: DeadletterOptions): string {
  const filter: DeadLetterFilter = {
    ...(o.destination !== undefined ? { destination: o.destination } : {}),
    ...(o.ids && o.ids.length > 0 ? { ids: o.ids } : {}),
  };
  if (o.action !== "list" && !o.all && filter.ids === undefined)
    throw new DeadletterUsageError(`deadletter ${o.action} needs --id ID (repeatable) or --all`);
  const store = new SqliteStore({ file: storeFileOf(config), integrityCheck: false });
  try {
    if (o.action === "retry") {
      const n = store.retryDeadLetters(filter);
      return `${n} dead letter(s) marked for retry; the running gateway sends them within a second\n`;
    }
    if (o.action === "drop") {
      const n = store.dropDeadLetters(filter);
      return `${n} dead letter(s) dropped (counted in the data-loss ledger as dead_letter_dropped)\n`;
    }
    const rows = store.deadLetters(filter);
    if (o.json)
      return rows
        .map((d) =>
          JSON.stringify({
            destination: d.destination,
            id: d.record.id,
            seq: d.record.seq,
            kind: d.record.kind,
            asset: d.record.asset,
            ts: d.record.tsMs,
            status: d.status,
            attempts: d.attempts,
            reason: d.reason,
            deadAt: new Date(d.deadMs).toISOString(),
            data: JSON.parse(d.record.dataJson) as unknown,
          }),
        )
        .map((l) => `${l}\n`)
        .join("");
    if (rows.length === 0) return "no dead letters\n";
    const lines = rows.map((d) =>
      [
        d.destination,
        String(d.record.seq),
        d.record.kind,
        d.record.asset ?? "-",
        d.record.id,
        d.status,
        String(d.attempts),
        new Date(d.deadMs).toISOString(),
        d.reason,
      ].join("\t"),
    );
    return `${["destination", "seq", "kind", "asset", "id", "status", "attempts", "since", "reason"].join("\t")}\n${lines.join("\n")}\n`;
  } finally {
    store.close();
  }
}
