import { describe, expect, it } from "vitest";
import { recordPayload } from "../../src/output/payloads.js";
import type { StoredRecord } from "../../src/store/types.js";

const base: StoredRecord = {
  kind: "prediction",
  asset: "pump-1",
  tsMs: 1000,
  id: "019ab697-e87b-768f-aa09-1d6a73a929fe",
  seq: 42,
  createdMs: 2000,
  data: {
    gatewayId: "gw",
    asset: "pump-1",
    outputs: { health: 0.25, anomaly: null },
    note: 'a "quoted" \u2028 text',
  },
};

describe("recordPayload", () => {
  it("appends id and seq to the stored JSON text: the same bytes as serialising the record again", () => {
    const expected = JSON.stringify({ ...base.data, id: base.id, seq: base.seq });
    expect(recordPayload({ ...base, dataJson: JSON.stringify(base.data) })).toBe(expected);
    expect(recordPayload(base)).toBe(expected);
  });

  it("serialises afresh when the stored text is not an object with members", () => {
    expect(recordPayload({ ...base, data: {}, dataJson: "{}" })).toBe(
      JSON.stringify({ id: base.id, seq: 42 }),
    );
  });
});
