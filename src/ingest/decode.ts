/**
 * Sensor payload decoder (pure: no I/O, no clock; arrival time is an argument).
 *
 * Contract: `decodePayload(payload, ctx)` turns one MQTT payload into readings and rejects,
 * and never throws. Accepted forms (CONTRACT §3):
 * - `{"ts": …, "value": 12.5}` — one reading; the signal comes from the topic (`ctx.signal`),
 *   so on a topic without `{signal}` it is `bad_shape`;
 * - `{"ts": …, "values": {"s2": 642.1, …}}` — one row of many signals, on any topic; the
 *   topic's signal, if any, is ignored;
 * - `12.5` — a bare number; ts = arrival; needs `ctx.signal`;
 * - `[ …any of the above… ]` — a batch; at most `ctx.maxBatchItems` items, else the whole
 *   payload is `batch_too_large`. Nested arrays are `bad_shape`. `[]` yields nothing.
 * - format `number`: the whole payload is a decimal number as text (surrounding whitespace
 *   allowed, e.g. `" 12.5\n"`); needs `ctx.signal`; ts = arrival.
 *
 * Choices where the contract is silent:
 * - Strict types: numbers given as strings (`"12.5"`), booleans and null values are
 *   `bad_shape`. Unknown extra keys (`"unit"`, `"quality"`, even `"__proto__"`) are ignored,
 *   so publishers may add metadata. An object with both `value` and `values` is `bad_shape`.
 * - `ts`: absent or null → arrival time. A number is epoch milliseconds and must lie in
 *   [2000-01-01, 2100-01-01) UTC; anything outside (seconds or microseconds included; the
 *   detail says which it looks like) is `bad_ts`, never guessed. A string must be ISO-8601
 *   extended format with a date, a time (`T`), and a zone (`Z` or `±HH:MM`/`±HHMM`/`±HH`):
 *   `2026-11-22T10:00:00.123Z`, `2026-11-22T11:00+01:00`. Local times without a zone,
 *   date-only strings, basic format, leap second 60 and impossible dates are `bad_ts`.
 *   `tsMs` is always an integer: sub-millisecond digits are truncated (floor).
 * - Partial acceptance: inside a `values` row a bad entry rejects only that reading; inside a
 *   batch a bad item rejects only that item. A row whose `ts` is bad rejects all its entries
 *   (`count` = number of entries). The first failing check decides the reason.
 * - Bounds: a `values` object with more than `ctx.maxBatchItems` keys is `batch_too_large`
 *   (that row or item only). `ctx.maxPayloadBytes` (optional, 0 = off) gives
 *   `payload_too_large` before any parsing. JSON.parse is iterative in V8, so deep nesting
 *   cannot overflow the stack; the walker below never descends more than three levels.
 * - Rejects are merged per reason: one `Reject` per reason per payload, `count` summed,
 *   `detail` from the first occurrence (at most 80 characters, never the whole payload),
 *   `asset` = `ctx.asset`. Payload-level failures have `count` 1.
 */

import type { Reading, Reject, RejectReason } from "../types.js";
import { isValidName, type PayloadFormat } from "./topics.js";

export interface DecodeContext {
  format: PayloadFormat;
  asset: string;
  /** Signal captured from the topic, when the template has `{signal}`. */
  signal?: string;
  /** Arrival time, epoch milliseconds; the ts of readings that carry none. */
  arrivalMs: number;
  /** Most items in a batch array, and most keys in one `values` row. */
  maxBatchItems: number;
  /** Largest payload accepted, bytes; 0 or absent = no limit here. */
  maxPayloadBytes?: number;
}

export interface DecodeResult {
  readings: Reading[];
  rejects: Reject[];
}

/** Earliest accepted event time: 2000-01-01T00:00:00Z, epoch ms. */
export const MIN_TS_MS = 946_684_800_000;
/** First event time no longer accepted: 2100-01-01T00:00:00Z, epoch ms. */
export const MAX_TS_MS = 4_102_444_800_000;
/** Longest reject detail, characters. */
export const MAX_DETAIL_CHARS = 80;

const utf8 = new TextDecoder("utf-8", { fatal: true });

export function clipDetail(s: string, max = MAX_DETAIL_CHARS): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** A key quoted for a detail: escaped, and short enough to leave room for the rest. */
function quoteKey(key: string): string {
  return JSON.stringify(key.length > 24 ? `${key.slice(0, 23)}…` : key);
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

class Collector {
  readonly readings: Reading[] = [];
  private readonly rejects = new Map<RejectReason, Reject>();

  constructor(private readonly asset: string) {}

  reading(signal: string, tsMs: number, value: number): void {
    this.readings.push({ asset: this.asset, signal, tsMs, value });
  }

  reject(reason: RejectReason, count: number, detail: string): void {
    const prev = this.rejects.get(reason);
    if (prev) prev.count += count;
    else this.rejects.set(reason, { reason, count, detail: clipDetail(detail), asset: this.asset });
  }

  result(): DecodeResult {
    return { readings: this.readings, rejects: [...this.rejects.values()] };
  }
}

export type TsResult = { ok: true; tsMs: number } | { ok: false; detail: string };

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)$/;

function inRange(tsMs: number, shown: string): TsResult {
  if (tsMs >= MIN_TS_MS && tsMs < MAX_TS_MS) return { ok: true, tsMs: Math.floor(tsMs) };
  let hint = "outside 2000..2100";
  if (tsMs >= MIN_TS_MS / 1000 && tsMs < MAX_TS_MS / 1000) hint = "looks like seconds; expected epoch ms";
  else if (tsMs >= MIN_TS_MS * 1000 && tsMs < MAX_TS_MS * 1000)
    hint = "looks like microseconds; expected epoch ms";
  return { ok: false, detail: `ts ${shown} ${hint}` };
}

/** Parses a strict ISO-8601 timestamp with a zone to epoch ms (see the header), or null. */
export function parseIsoMs(s: string): number | null {
  if (s.length > 40) return null;
  const m = ISO.exec(s);
  if (!m) return null;
  const [, ys, mos, ds, hs, mis, ss, frac, z, sign, ohs, oms] = m;
  const y = Number(ys);
  const mo = Number(mos);
  const d = Number(ds);
  const h = Number(hs);
  const mi = Number(mis);
  const sec = ss === undefined ? 0 : Number(ss);
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return null;
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (d > daysInMonth) return null;
  let offsetMin = 0;
  if (z === undefined) {
    const oh = Number(ohs);
    const om = oms === undefined ? 0 : Number(oms);
    if (oh > 23 || om > 59) return null;
    offsetMin = (sign === "-" ? -1 : 1) * (oh * 60 + om);
  }
  const ms = frac === undefined ? 0 : Number(frac.padEnd(3, "0").slice(0, 3));
  const utc = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0..99 to 1900..1999.
  utc.setUTCFullYear(y, mo - 1, d);
  utc.setUTCHours(h, mi, sec, ms);
  return utc.getTime() - offsetMin * 60_000;
}

/** Parses a present, non-null `ts` value (epoch ms number or ISO-8601 string). */
export function parseTs(raw: unknown): TsResult {
  if (typeof raw === "number") {
    if (!Number.isFinite(raw)) return { ok: false, detail: "ts is not finite" };
    return inRange(raw, String(raw));
  }
  if (typeof raw === "string") {
    const tsMs = parseIsoMs(raw);
    const shown = JSON.stringify(raw.length > 40 ? `${raw.slice(0, 39)}…` : raw);
    if (tsMs === null) return { ok: false, detail: `ts ${shown} is not ISO-8601 with a zone` };
    return inRange(tsMs, shown);
  }
  return { ok: false, detail: `ts: expected a number or ISO string, got ${typeName(raw)}` };
}

// Decimal number, optionally signed, optional fraction and exponent. No hex, no `1_000`.
const NUMBER_TEXT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const NON_FINITE_TEXT = /^[+-]?(?:nan|inf|infinity)$/i;

/** Decodes one MQTT payload; never throws (see the header for the accepted forms). */
export function decodePayload(payload: Buffer, ctx: DecodeContext): DecodeResult {
  const out = new Collector(ctx.asset);
  try {
    decodeInto(payload, ctx, out);
  } catch (err) {
    // Not expected; kept so that a decoder bug costs one payload, never the agent.
    out.reject("bad_shape", 1, `decoder error: ${err instanceof Error ? err.message : String(err)}`);
  }
  return out.result();
}

function decodeInto(payload: Buffer, ctx: DecodeContext, out: Collector): void {
  const maxBytes = ctx.maxPayloadBytes ?? 0;
  if (maxBytes > 0 && payload.length > maxBytes) {
    out.reject("payload_too_large", 1, `payload is ${payload.length} bytes > max ${maxBytes}`);
    return;
  }
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    out.reject(ctx.format === "json" ? "not_json" : "bad_shape", 1, "payload is not valid UTF-8");
    return;
  }
  if (ctx.format === "number") {
    decodeNumberText(text, ctx, out);
    return;
  }
  if (text.trim() === "") {
    out.reject("not_json", 1, "empty payload");
    return;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    out.reject("not_json", 1, `not JSON: ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  if (Array.isArray(parsed)) {
    if (parsed.length > ctx.maxBatchItems) {
      out.reject("batch_too_large", 1, `batch of ${parsed.length} items > max ${ctx.maxBatchItems}`);
      return;
    }
    parsed.forEach((item: unknown, i) => {
      decodeItem(item, ctx, out, `item ${i}: `);
    });
    return;
  }
  decodeItem(parsed, ctx, out, "");
}

function decodeNumberText(text: string, ctx: DecodeContext, out: Collector): void {
  const t = text.trim();
  if (ctx.signal === undefined) {
    out.reject("bad_shape", 1, "format number needs {signal} in the topic template");
    return;
  }
  if (NON_FINITE_TEXT.test(t)) {
    out.reject("non_finite", 1, `value ${JSON.stringify(t)} is not finite`);
    return;
  }
  if (!NUMBER_TEXT.test(t)) {
    const shown = t.length > 24 ? `${t.slice(0, 23)}…` : t;
    out.reject("bad_shape", 1, `not a number: ${JSON.stringify(shown)}`);
    return;
  }
  const value = Number(t);
  if (!Number.isFinite(value)) {
    out.reject("non_finite", 1, `value ${t.length > 24 ? "(long)" : t} is not finite`);
    return;
  }
  out.reading(ctx.signal, ctx.arrivalMs, value);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function decodeItem(item: unknown, ctx: DecodeContext, out: Collector, where: string): void {
  if (typeof item === "number") {
    if (ctx.signal === undefined) {
      out.reject("bad_shape", 1, `${where}bare number needs {signal} in the topic template`);
    } else if (!Number.isFinite(item)) {
      out.reject("non_finite", 1, `${where}value is not finite`);
    } else {
      out.reading(ctx.signal, ctx.arrivalMs, item);
    }
    return;
  }
  if (!isObject(item)) {
    const what = Array.isArray(item) ? "nested array" : `${typeName(item)}, expected object or number`;
    out.reject("bad_shape", 1, `${where}${what}`);
    return;
  }
  const hasValue = Object.hasOwn(item, "value");
  const hasValues = Object.hasOwn(item, "values");
  if (hasValue === hasValues) {
    out.reject("bad_shape", 1, `${where}${hasValue ? "both value and values" : "no value or values"}`);
    return;
  }
  if (hasValue) decodeSingle(item, ctx, out, where);
  else decodeRow(item, ctx, out, where);
}

/** Resolves an item's `ts`: absent or null → arrival. */
function itemTs(item: Record<string, unknown>, ctx: DecodeContext): TsResult {
  const raw = Object.hasOwn(item, "ts") ? item["ts"] : undefined;
  if (raw === undefined || raw === null) return { ok: true, tsMs: ctx.arrivalMs };
  return parseTs(raw);
}

function decodeSingle(
  item: Record<string, unknown>,
  ctx: DecodeContext,
  out: Collector,
  where: string,
): void {
  const value = item["value"];
  if (ctx.signal === undefined) {
    out.reject("bad_shape", 1, `${where}"value" needs {signal} in the topic; use "values"`);
    return;
  }
  if (typeof value !== "number") {
    out.reject("bad_shape", 1, `${where}value: expected a number, got ${typeName(value)}`);
    return;
  }
  const ts = itemTs(item, ctx);
  if (!ts.ok) {
    out.reject("bad_ts", 1, `${where}${ts.detail}`);
    return;
  }
  if (!Number.isFinite(value)) {
    out.reject("non_finite", 1, `${where}value is not finite`);
    return;
  }
  out.reading(ctx.signal, ts.tsMs, value);
}

function decodeRow(item: Record<string, unknown>, ctx: DecodeContext, out: Collector, where: string): void {
  const values = item["values"];
  if (!isObject(values)) {
    out.reject("bad_shape", 1, `${where}values: expected an object, got ${typeName(values)}`);
    return;
  }
  const keyCount = Object.keys(values).length;
  if (keyCount === 0) {
    out.reject("bad_shape", 1, `${where}values is empty`);
    return;
  }
  if (keyCount > ctx.maxBatchItems) {
    out.reject("batch_too_large", 1, `${where}values has ${keyCount} keys > max ${ctx.maxBatchItems}`);
    return;
  }
  const ts = itemTs(item, ctx);
  if (!ts.ok) {
    out.reject("bad_ts", keyCount, `${where}${ts.detail}`);
    return;
  }
  for (const [name, value] of Object.entries(values)) {
    if (!isValidName(name)) {
      out.reject("bad_name", 1, `${where}invalid signal name ${quoteKey(name)}`);
    } else if (typeof value !== "number") {
      out.reject(
        "bad_shape",
        1,
        `${where}values.${quoteKey(name)}: expected a number, got ${typeName(value)}`,
      );
    } else if (!Number.isFinite(value)) {
      out.reject("non_finite", 1, `${where}values.${quoteKey(name)} is not finite`);
    } else {
      out.reading(name, ts.tsMs, value);
    }
  }
}
