import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { renderConfigReference } from "../../src/config/docs.js";
import { envName, schema, walkLeaves } from "../../src/config/schema.js";

describe("configuration reference", () => {
  it("docs/configuration.md is what the schema renders (run `npm run docs:config`)", () => {
    const committed = fs.readFileSync(
      path.resolve(import.meta.dirname, "../../docs/configuration.md"),
      "utf8",
    );
    expect(committed).toBe(renderConfigReference());
  });

  it("documents every key with its environment variable", () => {
    const text = renderConfigReference();
    let keys = 0;
    walkLeaves(schema, (p) => {
      keys++;
      expect(text).toContain(`\`${p}\``);
      expect(text).toContain(`\`${envName(p)}\``);
    });
    expect(keys).toBeGreaterThan(50);
  });
});
