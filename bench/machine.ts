/** What the figures were measured on: printed beside every result (ARCHITECTURE habit 9). */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT } from "./lib/paths.js";

function packageVersion(name: string): string {
  try {
    const file = path.join(ROOT, "node_modules", name, "package.json");
    return (JSON.parse(fs.readFileSync(file, "utf8")) as { version?: string }).version ?? "?";
  } catch {
    return "?";
  }
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  ramGiB: number;
  os: string;
  node: string;
  onnxruntimeNode: string;
  executionProvider: string;
  mqtt: string;
  aedes: string;
  betterSqlite3: string;
  tmpDir: string;
}

export function machineInfo(executionProvider: string): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    cores: os.availableParallelism(),
    ramGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    onnxruntimeNode: packageVersion("onnxruntime-node"),
    executionProvider,
    mqtt: packageVersion("mqtt"),
    aedes: packageVersion("aedes"),
    betterSqlite3: packageVersion("better-sqlite3"),
    tmpDir: os.tmpdir(),
  };
}
