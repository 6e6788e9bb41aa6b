import { describe, expect, it } from "vitest";
import { Fifo } from "../../src/system/fifo.js";

describe("Fifo", () => {
  it("gives items back oldest first across compactions, and drains what is left", () => {
    const q = new Fifo<number>();
    let next = 0;
    const out: number[] = [];
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 100; i++) q.push(next++);
      for (let i = 0; i < 60; i++) out.push(q.shift() as number);
    }
    expect(out).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    expect(q.length).toBe(2000);
    expect(q.drain()).toEqual(Array.from({ length: 2000 }, (_, i) => 3000 + i));
    expect(q.length).toBe(0);
    expect(q.shift()).toBeUndefined();
  });
});
