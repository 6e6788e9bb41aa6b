/**
 * Record ids: UUID version 7 (RFC 9562), time-ordered so that SQLite's unique index on `id`
 * stays append-mostly, and random enough to be globally unique across gateways and across a
 * store that was reset (a `seq` alone would repeat then).
 *
 * The 74 random bits come from a pool filled by `crypto.randomBytes` (a CSPRNG) for 256 ids at
 * a time, and the text is built from a byte → hex table: one `randomBytes` call and one hex
 * conversion per record cost ~10 µs, about a third of a record's commit (docs/benchmarks.md).
 */

import { randomBytes } from "node:crypto";

const IDS_PER_FILL = 256;
const RANDOM_BYTES_PER_ID = 10;
const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

let pool: Buffer = Buffer.alloc(0);
let offset = 0;

function hex(b: number): string {
  return HEX[b & 0xff] as string;
}

export function uuidv7(nowMs: number = Date.now()): string {
  if (offset + RANDOM_BYTES_PER_ID > pool.length) {
    pool = randomBytes(RANDOM_BYTES_PER_ID * IDS_PER_FILL);
    offset = 0;
  }
  const r = pool;
  const o = offset;
  offset += RANDOM_BYTES_PER_ID;
  // 48-bit big-endian milliseconds: the high 16 bits and the low 32 bits.
  const ms = Math.max(0, Math.floor(nowMs));
  const hi = Math.floor(ms / 0x1_0000_0000) & 0xffff;
  const lo = ms >>> 0;
  return (
    hex(hi >>> 8) +
    hex(hi) +
    hex(lo >>> 24) +
    hex(lo >>> 16) +
    "-" +
    hex(lo >>> 8) +
    hex(lo) +
    "-" +
    hex(((r[o] as number) & 0x0f) | 0x70) + // version 7
    hex(r[o + 1] as number) +
    "-" +
    hex(((r[o + 2] as number) & 0x3f) | 0x80) + // RFC 9562 variant
    hex(r[o + 3] as number) +
    "-" +
    hex(r[o + 4] as number) +
    hex(r[o + 5] as number) +
    hex(r[o + 6] as number) +
    hex(r[o + 7] as number) +
    hex(r[o + 8] as number) +
    hex(r[o + 9] as number)
  );
}
