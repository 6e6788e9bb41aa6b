// Makes the built CLI executable (npm does this for installed bins; `npx vigil` from the repo
// root and `./dist/cli.js` need it too).
import fs from "node:fs";
fs.chmodSync(new URL("../dist/cli.js", import.meta.url), 0o755);
