// Store-and-forward benchmark (issue 4, item 7): store write rate and the catch-up drain of an
// outage's backlog, each beside its raw ceiling measured in the same run:
//   - store write: SqliteStore.commit in batches of 64 (the pipeline's default max batch),
//     vs bare better-sqlite3 inserts of the same rows in transactions of the same size, with
//     the same pragmas (WAL, synchronous FULL);
//   - drain: the sync worker (HTTP destination, gzip, 500 records a batch) emptying a backlog
//     of N records into a receiver in another process, vs a bare node:http client posting the
//     same batches (same JSON, gzip, keep-alive, one request at a time) to the same receiver.
// Usage: npm run bench:sync [-- --records 1000000 --write-records 200000]
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { promisify } from "node:util";
import zlib from "node:zlib";
import Database from "better-sqlite3";
import { silentLogger } from "../src/system/logger.js";
import { SqliteStore } from "../src/store/sqlite.js";
import type { NewRecord } from "../src/store/types.js";
import { parseDestinations } from "../src/sync/config.js";
import { httpBody, recordJson } from "../src/sync/records.js";
import { SyncService } from "../src/sync/service.js";

const gzip = promisify(zlib.gzip);
const args = process.argv.slice(2);
const opt = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const N = opt("records", 1_000_000);
const WRITE_N = opt("write-records", 200_000);
const COMMIT_BATCH = 64;
const SYNC_BATCH = 500;
const GW = "bench-gw";

function prediction(i: number): NewRecord {
  const asset = `pump-${String(i % 50).padStart(2, "0")}`;
  const ts = 1_790_000_000_000 + i * 1000;
  return {
    kind: i % 100 === 99 ? "alert" : "prediction",
    asset,
    tsMs: ts,
    data: {
      gatewayId: GW,
      asset,
      model: "pump-health",
      modelVersion: "1.0.0",
      ts,
      windowStart: ts - 10_000,
      windowEnd: ts,
      outputs: { failure_probability: (i % 997) / 997, rul: 1000 - (i % 1000) },
    },
  };
}

const rate = (n: number, ms: number): number => Math.round((n * 1000) / ms);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-bench-sync-"));

async function benchStoreWrite(): Promise<{ vigil: number; raw: number }> {
  const rows = Array.from({ length: WRITE_N }, (_, i) => prediction(i));
  const store = new SqliteStore({ file: path.join(dir, "write.db") });
  let t = performance.now();
  // Each commit made durable (its group-commit sync awaited) before the next, as the raw
  // ceiling's synchronous=FULL commit is: the same promise, no batching of syncs credited.
  for (let i = 0; i < rows.length; i += COMMIT_BATCH) {
    store.commit(rows.slice(i, i + COMMIT_BATCH));
    await new Promise<void>((resolve, reject) =>
      store.afterDurable((err) => (err ? reject(err) : resolve())),
    );
  }
  const vigilMs = performance.now() - t;
  store.close();

  const db = new Database(path.join(dir, "raw.db"));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec(
    "CREATE TABLE r (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, kind TEXT, asset TEXT, ts_ms INTEGER, data TEXT)",
  );
  const ins = db.prepare("INSERT INTO r (id, kind, asset, ts_ms, data) VALUES (?, ?, ?, ?, ?)");
  const tx = db.transaction((batch: NewRecord[], base: number) => {
    batch.forEach((r, j) => ins.run(`id-${base + j}`, r.kind, r.asset, r.tsMs, JSON.stringify(r.data)));
  });
  t = performance.now();
  for (let i = 0; i < rows.length; i += COMMIT_BATCH) tx(rows.slice(i, i + COMMIT_BATCH), i);
  const rawMs = performance.now() - t;
  db.close();
  return { vigil: rate(WRITE_N, vigilMs), raw: rate(WRITE_N, rawMs) };
}

async function startReceiver(): Promise<{ port: number; stop(): void }> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", path.join(import.meta.dirname, "sync-receiver.ts")],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const line = await new Promise<string>((resolve) => {
    readline.createInterface({ input: child.stdout }).once("line", resolve);
  });
  return { port: Number(line), stop: () => child.kill() };
}

function request(
  port: number,
  method: string,
  p: string,
  agent?: http.Agent,
  body?: Buffer,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method,
        path: p,
        ...(agent ? { agent } : {}),
        headers: body
          ? { "content-type": "application/json", "content-encoding": "gzip", "content-length": body.length }
          : {},
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (d: string) => (text += d));
        res.on("end", () =>
          res.statusCode === 200 ? resolve(text) : reject(new Error(`HTTP ${res.statusCode}`)),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function main(): Promise<void> {
  console.log(
    `# vigil sync benchmark — ${os.cpus()[0]?.model ?? "cpu"} ×${os.cpus().length}, Node ${process.version}, ${os.platform()} ${os.release()}`,
  );
  console.log(`records: ${N.toLocaleString("en")} (drain), ${WRITE_N.toLocaleString("en")} (store write)\n`);

  const write = await benchStoreWrite();
  console.log(`store write, commits of ${COMMIT_BATCH}, synchronous=FULL:`);
  console.log(`  vigil SqliteStore.commit   ${write.vigil.toLocaleString("en")} records/s`);
  console.log(
    `  raw better-sqlite3 insert  ${write.raw.toLocaleString("en")} records/s  (ratio ${(write.vigil / write.raw).toFixed(2)})\n`,
  );

  // The outage's backlog.
  const store = new SqliteStore({ file: path.join(dir, "outbox.db") });
  store.setDestinations(["cloud"]);
  let t = performance.now();
  const FILL = 1_000;
  for (let i = 0; i < N; i += FILL)
    store.commit(Array.from({ length: Math.min(FILL, N - i) }, (_, j) => prediction(i + j)));
  console.log(
    `backlog of ${N.toLocaleString("en")} records committed in ${((performance.now() - t) / 1000).toFixed(1)} s (${(store.usage().usedBytes / 1_048_576).toFixed(0)} MiB)`,
  );

  const receiver = await startReceiver();
  try {
    // Raw ceiling: the same batches, built, gzipped and posted one at a time over keep-alive.
    // Run before and after the worker (the better of the two counts), so that warm-up of the
    // receiver does not favour either side.
    const rawDrain = async (): Promise<number> => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const started = performance.now();
      let cursor = 0;
      for (;;) {
        const rows = store.readOutbox(cursor, SYNC_BATCH);
        if (rows.length === 0) break;
        const body = await gzip(httpBody(GW, rows.map(recordJson)), { level: 6 });
        await request(receiver.port, "POST", "/v1/records", agent, body);
        cursor = rows.at(-1)?.seq ?? cursor;
      }
      agent.destroy();
      return performance.now() - started;
    };
    const rawMs1 = await rawDrain();
    const rawCount = JSON.parse(await request(receiver.port, "GET", "/count")) as { unique: number };
    await request(receiver.port, "POST", "/reset");

    // Vigil: the sync service drains the same store to the same receiver.
    const sync = new SyncService(
      parseDestinations([
        {
          type: "http",
          url: `http://127.0.0.1:${receiver.port}/v1/records`,
          name: "cloud",
          batchMaxRecords: SYNC_BATCH,
        },
      ]),
      store,
      GW,
      silentLogger(),
    );
    t = performance.now();
    sync.start();
    const last = store.lastSeq();
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if ((store.cursors()[0]?.seq ?? 0) >= last) {
          clearInterval(poll);
          resolve();
        }
      }, 5);
    });
    const vigilMs = performance.now() - t;
    await sync.stop();
    const vigilCount = JSON.parse(await request(receiver.port, "GET", "/count")) as {
      unique: number;
      arrivals: number;
    };
    await request(receiver.port, "POST", "/reset");
    const rawMs = Math.min(rawMs1, await rawDrain());

    const vigilRate = rate(N, vigilMs);
    const rawRate = rate(N, rawMs);
    console.log(`\ndrain of the backlog, batches of ${SYNC_BATCH}, gzip, one request at a time:`);
    console.log(
      `  vigil sync worker          ${vigilRate.toLocaleString("en")} records/s  (${(vigilMs / 1000).toFixed(1)} s; receiver holds ${vigilCount.unique.toLocaleString("en")}, arrivals ${vigilCount.arrivals.toLocaleString("en")})`,
    );
    console.log(
      `  raw http client            ${rawRate.toLocaleString("en")} records/s  (${(rawMs / 1000).toFixed(1)} s; receiver held ${rawCount.unique.toLocaleString("en")})`,
    );
    console.log(`  ratio                      ${(vigilRate / rawRate).toFixed(2)}  (goal >= 0.80)`);

    const before = fs.statSync(path.join(dir, "outbox.db")).size;
    const tPrune = performance.now();
    while (store.prune(Number.MAX_SAFE_INTEGER, 50_000) > 0);
    store.reclaim();
    const after = fs.statSync(path.join(dir, "outbox.db")).size;
    console.log(
      `\nafter the drain: prune + reclaim in ${((performance.now() - tPrune) / 1000).toFixed(1)} s, file ${(before / 1_048_576).toFixed(0)} MiB -> ${(after / 1_048_576).toFixed(2)} MiB`,
    );
  } finally {
    receiver.stop();
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
