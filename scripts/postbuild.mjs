// Makes the built CLI executable (npm does this for installed bins; `npx vigil` from the repo
// root and `./dist/cli.js` need it too), and copies the dashboard's static files beside the
// compiled API (tsc copies only TypeScript output).
import fs from "node:fs";
fs.chmodSync(new URL("../dist/cli.js", import.meta.url), 0o755);
fs.cpSync(
  new URL("../src/api/dashboard/", import.meta.url),
  new URL("../dist/api/dashboard/", import.meta.url),
  {
    recursive: true,
  },
);
