import { describe, expect, it } from "vitest";
import * as api from "../../src/window/index.js";

describe("window public API", () => {
  it("sums stats across windows", () => {
    const a = new api.CountWindow({ size: 1, hop: 1 }, 1);
    const b = new api.CountWindow({ size: 2, hop: 1 }, 1);
    a.push(1, [1]);
    a.push(1, [1]);
    b.push(5, [1]);
    b.push(4, [1]);
    const total = api.addWindowStats(api.addWindowStats(api.newWindowStats(), a.stats), b.stats);
    expect(total).toEqual({
      accepted: 2,
      rejected: { duplicate: 1, late: 0, out_of_order: 1, incomplete_row: 0 },
      reordered: 0,
      emitted: 1,
      skipped: { unfillable: 0, gap: 0, signals_missing: 0 },
    });
  });

  it("wires rows into count windows into model input", () => {
    const spec: api.RowConsumer = { key: "m@1", signals: ["t", "p"] };
    const asm = new api.RowAssembler();
    const win = new api.CountWindow({ size: 2, hop: 1 }, 2);
    const builder = new api.InputBuilder({
      tensor: "x",
      signals: ["t", "p"],
      window: { type: "count", size: 2, hop: 1 },
      features: { type: "aggregate", functions: ["mean", "p2p"] },
      normalize: { type: "none" },
      layout: "NF",
    });
    const inputs: number[][] = [];
    const readings: [string, number, number][] = [
      ["p", 1000, 10],
      ["t", 1000, 1],
      ["t", 2000, 3],
      ["p", 2000, 30],
    ];
    for (const [signal, tsMs, value] of readings) {
      for (const row of asm.add({ asset: "a", signal, tsMs, value }, [spec]).rows) {
        const w = win.push(row.tsMs, row.values).window;
        if (w) inputs.push([w.windowStartMs, w.tsMs, ...builder.build(w.matrix)]);
      }
    }
    // t = [1, 3]: mean 2, p2p 2; p = [10, 30]: mean 20, p2p 20.
    expect(inputs).toEqual([[1000, 2000, 2, 2, 20, 20]]);
  });
});
