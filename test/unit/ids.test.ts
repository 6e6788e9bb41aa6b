import { describe, expect, it } from "vitest";
import { uuidv7 } from "../../src/store/ids.js";

const FORMAT = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function msOf(id: string): number {
  return Number.parseInt(id.replace(/-/g, "").slice(0, 12), 16);
}

describe("uuidv7", () => {
  it("is an RFC 9562 version-7 UUID whose first 48 bits are the milliseconds", () => {
    for (const ms of [0, 1, 255, 256, 1_764_000_000_123, 2 ** 32 - 1, 2 ** 32, 2 ** 48 - 1]) {
      const id = uuidv7(ms);
      expect(id).toMatch(FORMAT);
      expect(msOf(id)).toBe(ms);
    }
    expect(msOf(uuidv7(-5))).toBe(0);
    expect(msOf(uuidv7(1234.9))).toBe(1234);
  });

  it("sorts by time across milliseconds and never repeats, across many refills of the random pool", () => {
    const seen = new Set<string>();
    let previous = "";
    for (let i = 0; i < 20_000; i++) {
      const id = uuidv7(1_764_000_000_000 + Math.floor(i / 7));
      expect(seen.has(id)).toBe(false);
      seen.add(id);
      if (i % 7 === 0) {
        expect(id > previous).toBe(true);
      }
      previous = id;
    }
    // Random bits differ within one millisecond (the pool advances per id).
    const same = new Set(Array.from({ length: 1000 }, () => uuidv7(42).slice(14)));
    expect(same.size).toBe(1000);
  });
});
