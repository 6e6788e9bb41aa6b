// Writes docs/configuration.md from the schema (see src/config/docs.ts).
import fs from "node:fs";
import { renderConfigReference } from "../src/config/docs.js";

fs.writeFileSync(new URL("../docs/configuration.md", import.meta.url), renderConfigReference());
console.log("wrote docs/configuration.md");
