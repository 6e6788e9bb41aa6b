/**
 * The "updates" lines of `vigil status` (src/models/ota/status-text.ts).
 */

import { describe, expect, it } from "vitest";
import { otaStatusLines } from "../../src/models/ota/status-text.js";
import type { OtaStatus } from "../../src/models/ota/updater.js";

const base: OtaStatus = { requireSignature: true, trustedKeys: [], busy: null, models: [], lastUpdate: null };

describe("vigil status: updates", () => {
  it("says what runs, what is on trial or probation, and the last result", () => {
    const ota: OtaStatus = {
      ...base,
      busy: { transaction: "t-9", name: "pump", version: "1.3.0", stage: "download", sinceMs: 0, resumes: 0 },
      models: [
        {
          name: "pump",
          active: "1.2.0",
          installed: [],
          history: ["1.1.0"],
          trial: { version: "1.3.0", state: "running", windows: 42, report: { agreement: 0.981 } },
          probation: { version: "1.2.0", windows: 12, limits: { windows: 100 } },
        },
      ],
      lastUpdate: {
        transaction: "t-8",
        action: "deploy",
        name: "pump",
        version: "1.2.0",
        result: "ok",
        atMs: Date.UTC(2026, 0, 2),
      },
    };
    expect(otaStatusLines(ota)).toEqual([
      "deploying t-9 (pump 1.3.0): download",
      "trial pump 1.3.0 beside 1.2.0: running, 42 window(s), agreement 98.1%",
      "probation pump 1.2.0: 12 of 100 window(s)",
      "last deploy t-8 pump 1.2.0: ok (2026-01-02T00:00:00.000Z)",
    ]);
  });

  it("is quiet when nothing happened, absent without an updater", () => {
    expect(otaStatusLines(base)).toEqual(["none yet"]);
    expect(otaStatusLines(undefined)).toEqual([]);
  });
});
