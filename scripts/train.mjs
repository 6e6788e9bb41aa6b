// npm run train:cmapss | train:ai4i | train:generator -- [args]
// Runs a training script under training/ with a Python that has torch, numpy and pandas:
// $VIGIL_PYTHON, else Debian's /usr/bin/python3 (apt-get install python3-torch python3-numpy
// python3-pandas installs for it; a pyenv `python3` earlier on PATH usually lacks them), else python3.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const [name, ...args] = process.argv.slice(2);
const script = path.join(import.meta.dirname, "..", "training", `${name ?? ""}.py`);
if (!name || !fs.existsSync(script)) {
  console.error(`usage: node scripts/train.mjs <cmapss_rul|ai4i_failure|cmapss_generator> [args]`);
  process.exit(2);
}
const candidates = [process.env.VIGIL_PYTHON, "/usr/bin/python3", "python3"].filter(Boolean);
const python = candidates.find(
  (p) => spawnSync(p, ["-c", "import torch, numpy, pandas"], { stdio: "ignore" }).status === 0,
);
if (!python) {
  console.error(
    "no Python with torch, numpy and pandas found (tried " +
      candidates.join(", ") +
      "). On Debian: apt-get install -y python3-torch python3-numpy python3-pandas, or set VIGIL_PYTHON.",
  );
  process.exit(1);
}
const r = spawnSync(python, [script, ...args], { stdio: "inherit" });
process.exit(r.status ?? 1);
