import { describe, expect, it } from "vitest";

import {
  decodePayload,
  MAX_TS_MS,
  MIN_TS_MS,
  parseIsoMs,
  type DecodeContext,
} from "../../src/ingest/decode.js";

const ARRIVAL_MS = 1_800_000_000_000;

function ctx(over: Partial<DecodeContext> = {}): DecodeContext {
  return { format: "json", asset: "m1", signal: "temp", arrivalMs: ARRIVAL_MS, maxBatchItems: 100, ...over };
}
const noSignal = (over: Partial<DecodeContext> = {}): DecodeContext => {
  const c = ctx(over);
  delete c.signal;
  return c;
};

function decode(text: string | Buffer, c: DecodeContext = ctx()) {
  return decodePayload(typeof text === "string" ? Buffer.from(text, "utf8") : text, c);
}

describe("accepted forms", () => {
  it("single value with epoch ms", () => {
    expect(decode('{"ts": 1732230000123, "value": 12.5}')).toEqual({
      readings: [{ asset: "m1", signal: "temp", tsMs: 1732230000123, value: 12.5 }],
      rejects: [],
    });
  });

  it("row of many signals with ISO ts, on a topic without {signal}", () => {
    const r = decode('{"ts": "2026-11-22T10:00:00.123Z", "values": {"s2": 642.1, "s3": 1589.7}}', noSignal());
    const tsMs = Date.UTC(2026, 10, 22, 10, 0, 0, 123);
    expect(r).toEqual({
      readings: [
        { asset: "m1", signal: "s2", tsMs, value: 642.1 },
        { asset: "m1", signal: "s3", tsMs, value: 1589.7 },
      ],
      rejects: [],
    });
  });

  it("row on a topic with {signal} ignores the topic signal", () => {
    const r = decode('{"values": {"s2": 1}}');
    expect(r.readings).toEqual([{ asset: "m1", signal: "s2", tsMs: ARRIVAL_MS, value: 1 }]);
  });

  it("bare number in json format, ts = arrival", () => {
    expect(decode("12.5").readings).toEqual([{ asset: "m1", signal: "temp", tsMs: ARRIVAL_MS, value: 12.5 }]);
    expect(decode(" -3e2 \n").readings).toEqual([
      { asset: "m1", signal: "temp", tsMs: ARRIVAL_MS, value: -300 },
    ]);
  });

  it("absent or null ts → arrival", () => {
    expect(decode('{"value": 1}').readings[0]?.tsMs).toBe(ARRIVAL_MS);
    expect(decode('{"ts": null, "value": 1}').readings[0]?.tsMs).toBe(ARRIVAL_MS);
  });

  it("batch of mixed forms", () => {
    const r = decode(
      '[{"ts": 1732230000000, "value": 1}, 2, {"ts": 1732230001000, "values": {"a": 3, "b": 4}}]',
    );
    expect(r.rejects).toEqual([]);
    expect(r.readings).toEqual([
      { asset: "m1", signal: "temp", tsMs: 1732230000000, value: 1 },
      { asset: "m1", signal: "temp", tsMs: ARRIVAL_MS, value: 2 },
      { asset: "m1", signal: "a", tsMs: 1732230001000, value: 3 },
      { asset: "m1", signal: "b", tsMs: 1732230001000, value: 4 },
    ]);
  });

  it("empty batch yields nothing", () => {
    expect(decode("[]")).toEqual({ readings: [], rejects: [] });
  });

  it("unknown extra keys are ignored", () => {
    expect(decode('{"value": 7, "unit": "C", "quality": {"ok": true}}').readings).toEqual([
      { asset: "m1", signal: "temp", tsMs: ARRIVAL_MS, value: 7 },
    ]);
  });

  it("fractional ms are truncated to an integer", () => {
    expect(decode('{"ts": 1732230000123.9, "value": 1}').readings[0]?.tsMs).toBe(1732230000123);
  });

  it("UTF-8 BOM is accepted", () => {
    const buf = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"value":1}')]);
    expect(decode(buf).readings).toHaveLength(1);
  });

  it("zero and negative zero are values", () => {
    expect(decode("[0, -0]").readings.map((r) => r.value)).toEqual([0, -0]);
  });
});

describe("format number", () => {
  const num = (over: Partial<DecodeContext> = {}) => ctx({ format: "number", ...over });

  it.each([
    ["12.5", 12.5],
    ["  42\r\n", 42],
    ["-0.5", -0.5],
    ["+7", 7],
    [".5", 0.5],
    ["1.", 1],
    ["6.02e23", 6.02e23],
  ])("%j → %s", (text, value) => {
    expect(decode(text, num())).toEqual({
      readings: [{ asset: "m1", signal: "temp", tsMs: ARRIVAL_MS, value }],
      rejects: [],
    });
  });

  it.each(["", "abc", "0x10", "1_000", "12.5.1", '{"value":1}', "[1]", "1 2", '"12"', "true"])(
    "%j → bad_shape",
    (text) => {
      const r = decode(text, num());
      expect(r.readings).toEqual([]);
      expect(r.rejects).toMatchObject([{ reason: "bad_shape", count: 1, asset: "m1" }]);
    },
  );

  it.each(["NaN", "Infinity", "-inf", "1e999", "-1e400"])("%j → non_finite", (text) => {
    expect(decode(text, num()).rejects).toMatchObject([{ reason: "non_finite", count: 1 }]);
  });

  it("needs {signal} in the topic", () => {
    expect(decode("1", num({ signal: undefined })).rejects).toMatchObject([
      { reason: "bad_shape", detail: "format number needs {signal} in the topic template" },
    ]);
  });

  it("invalid UTF-8 → bad_shape", () => {
    expect(decode(Buffer.from([0x31, 0xff]), num()).rejects).toMatchObject([{ reason: "bad_shape" }]);
  });
});

describe("reject reasons", () => {
  it("not_json", () => {
    for (const text of ["{", "{value: 1}", "NaN", "Infinity", "12,5", "'1'", "", "   "]) {
      const r = decode(text);
      expect(r.readings, text).toEqual([]);
      expect(r.rejects, text).toMatchObject([{ reason: "not_json", count: 1, asset: "m1" }]);
    }
    expect(decode("").rejects[0]?.detail).toBe("empty payload");
  });

  it("not_json for invalid UTF-8", () => {
    expect(decode(Buffer.from([0x7b, 0xc3, 0x28, 0x7d])).rejects).toEqual([
      { reason: "not_json", count: 1, detail: "payload is not valid UTF-8", asset: "m1" },
    ]);
  });

  it("payload_too_large before parsing", () => {
    expect(decode('{"value": 1}', ctx({ maxPayloadBytes: 5 })).rejects).toEqual([
      { reason: "payload_too_large", count: 1, detail: "payload is 12 bytes > max 5", asset: "m1" },
    ]);
    expect(decode('{"value": 1}', ctx({ maxPayloadBytes: 12 })).readings).toHaveLength(1);
    expect(decode('{"value": 1}', ctx({ maxPayloadBytes: 0 })).readings).toHaveLength(1);
  });

  it.each([
    ['"12.5"', "string, expected object or number"],
    ["null", "null, expected object or number"],
    ["true", "boolean, expected object or number"],
    ['{"value": "12.5"}', "value: expected a number, got string"],
    ['{"value": null}', "value: expected a number, got null"],
    ['{"value": true}', "value: expected a number, got boolean"],
    ['{"value": [1]}', "value: expected a number, got array"],
    ['{"value": {"x": 1}}', "value: expected a number, got object"],
    ['{"ts": 1732230000000}', "no value or values"],
    ["{}", "no value or values"],
    ['{"value": 1, "values": {"a": 1}}', "both value and values"],
    ['{"values": [1, 2]}', "values: expected an object, got array"],
    ['{"values": 3}', "values: expected an object, got number"],
    ['{"values": {}}', "values is empty"],
    ["[[1, 2]]", "item 0: nested array"],
  ])("bad_shape: %s", (text, detail) => {
    expect(decode(text)).toEqual({
      readings: [],
      rejects: [{ reason: "bad_shape", count: 1, detail, asset: "m1" }],
    });
  });

  it("bad_shape: value or bare number on a topic without {signal}", () => {
    expect(decode('{"value": 1}', noSignal()).rejects).toMatchObject([
      { reason: "bad_shape", count: 1, detail: '"value" needs {signal} in the topic; use "values"' },
    ]);
    expect(decode("1", noSignal()).rejects).toMatchObject([{ reason: "bad_shape", count: 1 }]);
  });

  it("non_finite: 1e999 parses as Infinity", () => {
    expect(decode('{"value": 1e999}').rejects).toEqual([
      { reason: "non_finite", count: 1, detail: "value is not finite", asset: "m1" },
    ]);
    expect(decode("-1e999").rejects).toMatchObject([{ reason: "non_finite", count: 1 }]);
    expect(decode('{"values": {"a": 1e999, "b": 2}}').rejects).toMatchObject([
      { reason: "non_finite", count: 1 },
    ]);
    // Underflow is a finite zero, not an error.
    expect(decode("1e-999").readings[0]?.value).toBe(0);
  });

  it("bad_name for invalid signal names in values", () => {
    const r = decode(
      `{"values": {"ok": 1, "a/b": 2, "": 3, "${"x".repeat(129)}": 4, "t\\u0000": 5, "__proto__": 6}}`,
    );
    expect(r.readings).toEqual([{ asset: "m1", signal: "ok", tsMs: ARRIVAL_MS, value: 1 }]);
    expect(r.rejects).toEqual([
      { reason: "bad_name", count: 5, detail: 'invalid signal name "a/b"', asset: "m1" },
    ]);
  });

  it("batch_too_large rejects the whole payload", () => {
    const r = decode(JSON.stringify([1, 2, 3, 4]), ctx({ maxBatchItems: 3 }));
    expect(r).toEqual({
      readings: [],
      rejects: [{ reason: "batch_too_large", count: 1, detail: "batch of 4 items > max 3", asset: "m1" }],
    });
    expect(decode(JSON.stringify([1, 2, 3]), ctx({ maxBatchItems: 3 })).readings).toHaveLength(3);
  });

  it("batch_too_large for a values row with too many keys (that row only)", () => {
    const big = Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`s${i}`, i]));
    const r = decode(JSON.stringify([{ values: big }, { values: { a: 1 } }]), ctx({ maxBatchItems: 3 }));
    expect(r.readings).toEqual([{ asset: "m1", signal: "a", tsMs: ARRIVAL_MS, value: 1 }]);
    expect(r.rejects).toEqual([
      { reason: "batch_too_large", count: 1, detail: "item 0: values has 4 keys > max 3", asset: "m1" },
    ]);
  });
});

describe("ts", () => {
  const tsOf = (ts: unknown) => decode(JSON.stringify({ ts, value: 1 }));

  it.each([
    ["2026-11-22T10:00:00.123Z", Date.UTC(2026, 10, 22, 10, 0, 0, 123)],
    ["2026-11-22T10:00:00Z", Date.UTC(2026, 10, 22, 10, 0, 0)],
    ["2026-11-22T10:00Z", Date.UTC(2026, 10, 22, 10, 0)],
    ["2026-11-22t10:00:00z", Date.UTC(2026, 10, 22, 10, 0)],
    ["2026-11-22T11:00:00+01:00", Date.UTC(2026, 10, 22, 10, 0)],
    ["2026-11-22T05:30:00-04:30", Date.UTC(2026, 10, 22, 10, 0)],
    ["2026-11-22T15:30:00+0530", Date.UTC(2026, 10, 22, 10, 0)],
    ["2026-11-22T12:00:00+02", Date.UTC(2026, 10, 22, 10, 0)],
    ["2026-11-22T00:30:00+01:00", Date.UTC(2026, 10, 21, 23, 30)],
    ["2026-11-22T10:00:00-00:00", Date.UTC(2026, 10, 22, 10, 0)],
    ["2026-11-22T10:00:00.1Z", Date.UTC(2026, 10, 22, 10, 0, 0, 100)],
    ["2026-11-22T10:00:00,25Z", Date.UTC(2026, 10, 22, 10, 0, 0, 250)],
    ["2026-11-22T10:00:00.123999999Z", Date.UTC(2026, 10, 22, 10, 0, 0, 123)],
    ["2024-02-29T00:00:00Z", Date.UTC(2024, 1, 29)],
    ["2000-01-01T00:00:00Z", MIN_TS_MS],
  ])("ISO %s", (ts, expected) => {
    expect(tsOf(ts).readings[0]?.tsMs).toBe(expected);
  });

  it.each([
    "2026-11-22T10:00:00", // no zone: local time is ambiguous on a gateway
    "2026-11-22",
    "2026-11-22 10:00:00Z",
    "20261122T100000Z",
    "2026-13-01T00:00:00Z",
    "2026-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-11-22T24:00:00Z",
    "2026-11-22T10:60:00Z",
    "2026-11-22T23:59:60Z",
    "2026-11-22T10:00:00+25:00",
    "2026-11-22T10:00:00.Z",
    "2026-11-22T10:00:00.1234567890Z",
    " 2026-11-22T10:00:00Z",
    "next tuesday",
    "1732230000123",
    "",
  ])("bad ISO %j", (ts) => {
    expect(tsOf(ts).rejects).toMatchObject([{ reason: "bad_ts", count: 1 }]);
    expect(tsOf(ts).readings).toEqual([]);
  });

  it("ts in seconds is refused with a hint", () => {
    expect(tsOf(1732230000).rejects).toEqual([
      {
        reason: "bad_ts",
        count: 1,
        detail: "ts 1732230000 looks like seconds; expected epoch ms",
        asset: "m1",
      },
    ]);
  });

  it("ts in microseconds is refused with a hint", () => {
    expect(tsOf(1732230000123456).rejects[0]?.detail).toBe(
      "ts 1732230000123456 looks like microseconds; expected epoch ms",
    );
  });

  it("range is [2000, 2100)", () => {
    expect(tsOf(MIN_TS_MS).readings[0]?.tsMs).toBe(MIN_TS_MS);
    expect(tsOf(MIN_TS_MS - 1).rejects[0]?.reason).toBe("bad_ts");
    expect(tsOf(MAX_TS_MS - 1).readings[0]?.tsMs).toBe(MAX_TS_MS - 1);
    expect(tsOf(MAX_TS_MS).rejects[0]?.reason).toBe("bad_ts");
    expect(tsOf(0).rejects[0]?.detail).toBe("ts 0 outside 2000..2100");
    expect(tsOf(-1).rejects[0]?.reason).toBe("bad_ts");
    expect(tsOf("1999-12-31T23:59:59Z").rejects[0]?.reason).toBe("bad_ts");
    expect(tsOf("2100-01-01T00:00:00Z").rejects[0]?.reason).toBe("bad_ts");
  });

  it("wrong ts types are bad_ts", () => {
    for (const ts of [true, {}, [1732230000000]]) {
      expect(tsOf(ts).rejects, JSON.stringify(ts)).toMatchObject([{ reason: "bad_ts", count: 1 }]);
    }
    expect(decode('{"ts": 1e999, "value": 1}').rejects).toMatchObject([
      { reason: "bad_ts", detail: "ts is not finite" },
    ]);
  });

  it("a bad ts rejects every entry of its row", () => {
    expect(decode('{"ts": "yesterday", "values": {"a": 1, "b": 2, "c": 3}}', noSignal()).rejects).toEqual([
      { reason: "bad_ts", count: 3, detail: 'ts "yesterday" is not ISO-8601 with a zone', asset: "m1" },
    ]);
  });

  it("parseIsoMs does not map years 0..99 to the 1900s", () => {
    expect(parseIsoMs("0050-01-01T00:00:00Z")).toBe(Date.parse("0050-01-01T00:00:00Z"));
  });
});

describe("partial acceptance", () => {
  it("a bad value in a row rejects only that reading", () => {
    const r = decode('{"ts": 1732230000000, "values": {"a": 1, "b": "2", "c": 3, "d": null}}', noSignal());
    expect(r.readings.map((x) => [x.signal, x.value])).toEqual([
      ["a", 1],
      ["c", 3],
    ]);
    expect(r.rejects).toEqual([
      { reason: "bad_shape", count: 2, detail: 'values."b": expected a number, got string', asset: "m1" },
    ]);
  });

  it("a batch with mixed good and bad items", () => {
    const payload = JSON.stringify([
      { ts: 1732230000000, value: 1 },
      { ts: 1732230000, value: 2 },
      "3",
      [4],
      { ts: 1732230002000, values: { a: 5, "b/c": 6, d: true } },
      7,
      { ts: "nope", values: { x: 1, y: 2 } },
      { value: 1e308 },
    ]).replace("1e+308", "1e999");
    const r = decode(payload);
    expect(r.readings).toEqual([
      { asset: "m1", signal: "temp", tsMs: 1732230000000, value: 1 },
      { asset: "m1", signal: "a", tsMs: 1732230002000, value: 5 },
      { asset: "m1", signal: "temp", tsMs: ARRIVAL_MS, value: 7 },
    ]);
    expect(r.rejects).toEqual([
      {
        reason: "bad_ts",
        count: 3,
        detail: "item 1: ts 1732230000 looks like seconds; expected epoch ms",
        asset: "m1",
      },
      { reason: "bad_shape", count: 3, detail: "item 2: string, expected object or number", asset: "m1" },
      { reason: "bad_name", count: 1, detail: 'item 4: invalid signal name "b/c"', asset: "m1" },
      { reason: "non_finite", count: 1, detail: "item 7: value is not finite", asset: "m1" },
    ]);
  });
});

describe("hostile payloads", () => {
  it("1 MB of [[[[ is not_json, quickly and without a stack overflow", () => {
    const r = decode("[".repeat(1 << 20));
    expect(r.readings).toEqual([]);
    expect(r.rejects).toHaveLength(1);
    expect(r.rejects[0]?.reason).toBe("not_json");
    expect(r.rejects[0]?.detail?.length).toBeLessThanOrEqual(80);
  });

  it("deeply nested but valid JSON is bad_shape", () => {
    const depth = 500_000;
    const r = decode("[".repeat(depth) + "1" + "]".repeat(depth));
    expect(r).toEqual({
      readings: [],
      rejects: [{ reason: "bad_shape", count: 1, detail: "item 0: nested array", asset: "m1" }],
    });
    const obj = '{"value":'.repeat(10_000) + "1" + "}".repeat(10_000);
    expect(decode(obj).rejects).toMatchObject([
      { reason: "bad_shape", detail: "value: expected a number, got object" },
    ]);
  });

  it("100k keys in values is bounded by maxBatchItems", () => {
    const keys = Array.from({ length: 100_000 }, (_, i) => `"k${i}":${i}`).join(",");
    const r = decode(`{"values":{${keys}}}`, noSignal({ maxBatchItems: 1000 }));
    expect(r).toEqual({
      readings: [],
      rejects: [
        { reason: "batch_too_large", count: 1, detail: "values has 100000 keys > max 1000", asset: "m1" },
      ],
    });
  });

  it("100k top-level keys are ignored as extras", () => {
    const keys = Array.from({ length: 100_000 }, (_, i) => `"k${i}":${i}`).join(",");
    expect(decode(`{${keys},"value":3}`).readings).toEqual([
      { asset: "m1", signal: "temp", tsMs: ARRIVAL_MS, value: 3 },
    ]);
  });

  it("__proto__ keys pollute nothing", () => {
    const r = decode('{"__proto__":{"x":1},"value":1}');
    expect(r).toEqual({
      readings: [{ asset: "m1", signal: "temp", tsMs: ARRIVAL_MS, value: 1 }],
      rejects: [],
    });
    expect(Object.getPrototypeOf(r.readings[0])).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)["x"]).toBeUndefined();

    const row = decode('{"values":{"__proto__":{"polluted":1},"constructor":2,"a":3}}', noSignal());
    expect(row.readings.map((x) => x.signal)).toEqual(["constructor", "a"]);
    expect(row.rejects).toMatchObject([{ reason: "bad_name", count: 1 }]);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    const ts = decode('{"__proto__":{"ts":1732230000000},"value":1}');
    expect(ts.readings[0]?.tsMs).toBe(ARRIVAL_MS);
  });

  it("details are short even for huge keys and values", () => {
    const huge = "x".repeat(100_000);
    for (const text of [
      `{"values":{"${huge}/":1}}`,
      `{"value":"${huge}"}`,
      `{"ts":"${huge}","value":1}`,
      `${huge}`,
      `{"values":{"${huge}":"s"}}`,
    ]) {
      const r = decode(text);
      expect(r.rejects).toHaveLength(1);
      expect(r.rejects[0]?.detail?.length, text.slice(0, 30)).toBeLessThanOrEqual(80);
    }
    const r = decode(huge, ctx({ format: "number" }));
    expect(r.rejects[0]?.detail?.length).toBeLessThanOrEqual(80);
  });

  it("never throws on random bytes", () => {
    let seed = 42;
    const rand = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed;
    };
    for (let i = 0; i < 500; i++) {
      const buf = Buffer.from(Array.from({ length: rand() % 64 }, () => rand() % 256));
      for (const format of ["json", "number"] as const) {
        const r = decodePayload(buf, ctx({ format }));
        expect(r.readings.length + r.rejects.length).toBeGreaterThanOrEqual(0);
      }
    }
  });
});
