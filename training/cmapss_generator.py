#!/usr/bin/env python3
"""Fit the demo's turbofan degradation generator to C-MAPSS FD001 training engines.

    npm run train:generator -- --data DIR

Writes `src/demo/turbofan-params.ts`: a handful of numbers per column, never a data row.
The generator (src/demo/turbofan.ts) draws an engine as

    life T ~ lognormal(lifeLogMean, lifeLogSd), at least lifeMin cycles
    z_e ~ N(0, 1)                                    one drift factor per engine
    value_j(t) = mean_j + offset_e,j + degradation_j · exp(−(T − t) / tau)
                 + drift_j · z_e · (t / T − 1/2) + noise_j · ε_t,j                (then rounded)

with offset_e,j ~ N(0, offsetSd_j²), ε ~ N(0, 1) and t = 1..T the cycle. The fit: tau by a
grid search on the mean R² of the 14 informative sensors; per column, mean and degradation by
least squares against exp(−(T − t)/tau); offsetSd the spread of the engines' mean residuals;
drift the first principal loading of the engines' residual slopes against t/T (one shared
factor, so that s9 and s14, which drift together, stay consistent); noise the std of what is
left; decimals the resolution the column is recorded with.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_fingerprint, default_data_dir  # noqa: E402

COLUMNS = ["op1", "op2", "op3"] + [f"s{i}" for i in range(1, 22)]
INFORMATIVE = ["s2", "s3", "s4", "s7", "s8", "s9", "s11", "s12", "s13", "s14", "s15", "s17", "s20", "s21"]
REPO = Path(__file__).resolve().parent.parent


def decimals_of(path: Path) -> list[int]:
    most = [0] * len(COLUMNS)
    with open(path) as f:
        for line in f:
            cells = line.split()
            for j, cell in enumerate(cells[2 : 2 + len(COLUMNS)]):
                if "." in cell and "e" not in cell.lower():
                    most[j] = max(most[j], len(cell.split(".")[1]))
    return most


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "src" / "demo" / "turbofan-params.ts")
    args = ap.parse_args()
    data = args.data or default_data_dir() / "cmapss"
    train_file = data / "train_FD001.txt"
    if not train_file.is_file():
        train_file = data / "cmapss" / "train_FD001.txt"
    if not train_file.is_file():
        raise SystemExit(f"no train_FD001.txt in {data} (give --data DIR)")
    arr = np.loadtxt(train_file, dtype=np.float64)
    units = arr[:, 0].astype(int)
    ids = np.unique(units)
    life = {u: int((units == u).sum()) for u in ids}
    t = arr[:, 1]
    total = np.array([life[u] for u in units], dtype=np.float64)
    rem = total - t
    frac = t / total
    y_all = arr[:, 2 : 2 + len(COLUMNS)]

    def fit(tau: float) -> tuple[np.ndarray, np.ndarray, float]:
        g = np.exp(-rem / tau)
        a = np.c_[np.ones_like(g), g]
        coef = np.linalg.lstsq(a, y_all, rcond=None)[0]
        resid = y_all - a @ coef
        r2 = [1 - resid[:, COLUMNS.index(s)].var() / y_all[:, COLUMNS.index(s)].var() for s in INFORMATIVE]
        return coef, resid, float(np.mean(r2))

    grid = [float(v) for v in range(20, 121, 5)]
    tau = max(grid, key=lambda v: fit(v)[2])
    coef, resid, r2 = fit(tau)

    offsets = np.stack([resid[units == u].mean(axis=0) for u in ids])  # [engines, columns]
    within = resid - offsets[np.searchsorted(ids, units)]
    slopes = []
    for u in ids:
        m = units == u
        f = frac[m] - frac[m].mean()
        slopes.append((f[:, None] * within[m]).sum(axis=0) / (f * f).sum())
    slopes = np.stack(slopes)  # [engines, columns]: residual change from t=0 to t=T
    # One shared factor: the first principal direction of the slopes, scaled to their spread along it.
    # Only the informative sensors take part; the other columns do not degrade or drift.
    inf = np.array([COLUMNS.index(s) for s in INFORMATIVE])
    centred = slopes - slopes.mean(axis=0)
    scale = centred[:, inf].std(axis=0)
    _, _, vt = np.linalg.svd(centred[:, inf] / scale, full_matrices=False)
    direction = np.zeros(len(COLUMNS))
    direction[inf] = vt[0] * scale
    z = centred @ (direction / (direction @ direction))
    drift = direction * z.std()
    fitted = np.outer(z / z.std(), drift)
    noise = np.array([
        (within[:, j] - np.concatenate([fitted[k, j] * (frac[units == u] - frac[units == u].mean()) for k, u in enumerate(ids)])).std()
        for j in range(len(COLUMNS))
    ])
    decimals = decimals_of(train_file)
    lives = np.array(list(life.values()), dtype=np.float64)

    def r(v: float, d: int = 6) -> float:
        return float(f"{v:.{d}g}")

    columns = []
    for j, name in enumerate(COLUMNS):
        constant = y_all[:, j].std() < 1e-9
        informative = name in INFORMATIVE
        columns.append(
            {
                "name": name,
                "mean": r(coef[0, j] if informative else y_all[:, j].mean(), 9),
                "degradation": r(coef[1, j]) if informative else 0.0,
                "offsetSd": r(offsets[:, j].std()) if informative else 0.0,
                "drift": r(drift[j]) if informative else 0.0,
                "noise": 0.0 if constant else r(noise[j] if informative else y_all[:, j].std()),
                "decimals": decimals[j],
            }
        )
    params = {
        "source": "NASA C-MAPSS FD001 training set (100 engines), fitted by training/cmapss_generator.py",
        "data": data_fingerprint([train_file]),
        "tauCycles": tau,
        "meanR2Informative": round(r2, 4),
        "lifeLogMean": r(float(np.log(lives).mean())),
        "lifeLogSd": r(float(np.log(lives).std())),
        "lifeMin": int(lives.min()),
        "lifeMax": int(lives.max()),
        "columns": columns,
    }
    body = json.dumps(params, indent=2)
    text = (
        "// Generated by training/cmapss_generator.py (npm run train:generator); do not edit.\n"
        "// Parameters of the demo's turbofan degradation generator, fitted to C-MAPSS FD001\n"
        "// training engines: a few numbers per column, no data rows. See src/demo/turbofan.ts.\n\n"
        'import type { TurbofanParams } from "./turbofan.js";\n\n'
        f"export const FD001_PARAMS: TurbofanParams = {body};\n"
    )
    args.out.write_text(text)
    print(f"tau {tau} cycles, mean R² {r2:.3f} on the informative sensors; wrote {args.out}")


if __name__ == "__main__":
    main()
