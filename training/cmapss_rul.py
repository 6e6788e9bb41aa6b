#!/usr/bin/env python3
"""Train, evaluate and package `turbofan-rul`: remaining useful life on NASA C-MAPSS FD001.

    npm run train:cmapss -- --data DIR            (DIR holds train_FD001.txt, test_FD001.txt, RUL_FD001.txt)

Contract: seeded and deterministic on one machine (same data, seed and thread count: the
same bytes). Reads only the three FD001 files; writes `models/turbofan-rul/<version>/`
(manifest.json, model.onnx) and prints the metrics that go into the model card. Never
writes any data row into the repository.

Set-up (the usual one for FD001, so that the numbers compare with the literature, plus the
engine's age):
- input: a count window of the last 30 cycles of the 14 informative sensors (s1, s5, s6,
  s10, s16, s18, s19 are constant in FD001 and carry nothing) and, by default
  (`--age-feature channel`), the `cycle` column as a 15th signal: the engine's age in operating
  cycles since its record began (a new engine in FD001); z-score with the mean and population
  std of the whole training set (one operating condition, so one normalisation);
- target: piecewise-linear RUL, min(cycles to failure, 125);
- model: an ensemble of small MLPs (`--arch`, default `mlp:h=32,drop=0.1`), three seeds per fold
  of a 5-fold split of the 100 training engines (each early-stopped on its held-out engines),
  averaged inside one ONNX graph;
- evaluation: the last window of each test engine against RUL_FD001.txt (RMSE and the PHM08
  score), against the true RUL as given and against it capped at 125 (the literature's habit).

The defaults are the shipped package's configuration (turbofan-rul 2.0.0); `--age-feature off
--version 1.0.0` trains 1.0.0's model again (14 sensors, the same model.onnx bytes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    data_fingerprint,
    default_data_dir,
    environment,
    export_onnx,
    f32_list,
    phm08_score,
    rmse,
    rounded,
    seed_everything,
    write_package,
)

COLUMNS = ["unit", "cycle", "op1", "op2", "op3"] + [f"s{i}" for i in range(1, 22)]
SENSORS = ["s2", "s3", "s4", "s7", "s8", "s9", "s11", "s12", "s13", "s14", "s15", "s17", "s20", "s21"]
# --age-feature (default "channel", the shipped 2.0.0): the engine's age, the `cycle` column (operating
# cycle number since the engine's record began), as one more input signal after the sensors, z-scored
# with the training mean and std like them. "channel": the MLP sees all 30 values; "last": the MLP sees
# only the window's last cycle number (the input tensor is still [batch, 30, 15], so the gateway's
# preprocessing is the same); "off": the 14 sensors only (1.0.0).
AGE = "cycle"
WINDOW = 30
CAP = 125.0
NAME = "turbofan-rul"
REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def read_cmapss(path: Path) -> np.ndarray:
    """Rows of 26 numbers (unit, cycle, op1..op3, s1..s21), float64 as parsed from the text."""
    arr = np.loadtxt(path, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < len(COLUMNS):
        raise SystemExit(f"{path}: expected {len(COLUMNS)} columns, got shape {arr.shape}")
    return arr[:, : len(COLUMNS)]


@dataclass
class Engine:
    unit: int
    x: np.ndarray  # [cycles, len(signals)] raw float64 (SENSORS, then AGE with --age-feature)
    rul: np.ndarray  # [cycles] true cycles to failure (training engines only)


def engines_of(arr: np.ndarray, final_rul: dict[int, float] | None = None, signals: list[str] = SENSORS) -> list[Engine]:
    cols = [COLUMNS.index(s) for s in signals]
    out = []
    for unit in np.unique(arr[:, 0]).astype(int):
        rows = arr[arr[:, 0] == unit]
        rows = rows[np.argsort(rows[:, 1], kind="stable")]
        n = len(rows)
        end = 0.0 if final_rul is None else final_rul[unit]
        rul = (n - np.arange(1, n + 1)) + end
        out.append(Engine(int(unit), rows[:, cols], rul.astype(np.float64)))
    return out


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Exactly what the gateway does: (x − mean) / std in float64 (std 0 as 1), then float32."""
    return ((x - mean) / np.where(std == 0, 1.0, std)).astype(np.float32)


def windows_of(engines: list[Engine], mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every full window of every engine: inputs [N, 30, C] (NTC), true RUL at the window's end, unit."""
    xs, ys, us = [], [], []
    for e in engines:
        if len(e.x) < WINDOW:
            continue
        z = normalise(e.x, mean, std)
        sw = np.lib.stride_tricks.sliding_window_view(z, (WINDOW, z.shape[1]))[:, 0]
        xs.append(sw)
        ys.append(e.rul[WINDOW - 1 :])
        us.append(np.full(len(sw), e.unit))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys), np.concatenate(us)


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class Cnn(nn.Module):
    """1-D CNN over time: three conv layers (same length), then a small dense head. Output in units of CAP."""

    def __init__(self, channels: int, hidden: int, kernel: int, dense: int, dropout: float):
        super().__init__()
        pad = kernel // 2
        self.conv = nn.Sequential(
            nn.Conv1d(channels, hidden, kernel, padding=pad),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, kernel, padding=pad),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, kernel, padding=pad),
            nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(hidden * WINDOW, dense),
            nn.ReLU(),
            nn.Linear(dense, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, time, signal]
        return self.head(self.conv(x.transpose(1, 2)))


class Dcnn(nn.Module):
    """Li, Ding & Sun 2018 ("DCNN"): temporal filters shared by every sensor (2-D conv, kernel k×1),
    a 3×1 conv to one map, then a dense head; tanh throughout."""

    def __init__(self, channels: int, filters: int, kernel: int, layers: int, dense: int, dropout: float):
        super().__init__()
        blocks: list[nn.Module] = []
        c_in = 1
        for _ in range(layers):
            blocks += [nn.Conv2d(c_in, filters, (kernel, 1), padding=(kernel // 2, 0)), nn.Tanh()]
            c_in = filters
        blocks += [nn.Conv2d(c_in, 1, (3, 1), padding=(1, 0)), nn.Tanh()]
        self.conv = nn.Sequential(*blocks)
        # Even kernels grow the time axis by one per layer; the head reads whatever length results.
        steps = WINDOW + layers * (1 - kernel % 2)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(steps * channels, dense),
            nn.Tanh(),
            nn.Linear(dense, 1),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, time, signal]
        return self.head(self.conv(x.unsqueeze(1)))


class Mlp(nn.Module):
    """Flatten the window, two ReLU layers, one output. With age_last, the last input channel (age) is
    read only at the window's last step: inputs (channels − 1) × WINDOW + 1."""

    def __init__(self, channels: int, hidden: int, dropout: float, age_last: bool = False):
        super().__init__()
        self.age_last = age_last
        inputs = (channels - 1) * WINDOW + 1 if age_last else channels * WINDOW
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(inputs, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden // 2),
            nn.ReLU(),
            nn.Linear(hidden // 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.age_last:
            x = torch.cat([x[:, :, :-1].flatten(1), x[:, -1, -1:]], dim=1)
        return self.net(x)


def build(arch: str, channels: int, age_last: bool = False) -> nn.Module:
    kind, _, rest = arch.partition(":")
    opts = {k: float(v) for k, v in (p.split("=") for p in rest.split(",") if p)}
    if age_last and kind != "mlp":
        raise SystemExit("--age-feature last is implemented for --arch mlp only")
    if kind == "cnn":
        return Cnn(
            channels,
            int(opts.get("h", 16)),
            int(opts.get("k", 5)),
            int(opts.get("fc", 32)),
            opts.get("drop", 0.3),
        )
    if kind == "dcnn":
        return Dcnn(
            channels,
            int(opts.get("f", 10)),
            int(opts.get("k", 9)),
            int(opts.get("layers", 4)),
            int(opts.get("fc", 100)),
            opts.get("drop", 0.5),
        )
    if kind == "mlp":
        return Mlp(channels, int(opts.get("h", 128)), opts.get("drop", 0.3), age_last)
    raise SystemExit(f"unknown --arch {arch}")


class Ensemble(nn.Module):
    """The shipped graph: the mean of the members, in cycles, never below 0. Output [batch, 1]."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.members[0](x)
        for m in self.members[1:]:
            total = total + m(x)
        return torch.clamp(total * (CAP / len(self.members)), min=0.0)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@dataclass
class Options:
    arch: str
    epochs: int
    patience: int
    lr: float
    weight_decay: float
    noise: float
    batch: int
    seed: int
    age_feature: str = "off"


def predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy().ravel()


def train_member(
    opts: Options, seed: int, xt: np.ndarray, yt: np.ndarray, xv: np.ndarray, yv: np.ndarray
) -> tuple[nn.Module, dict]:
    """Adam on MSE of RUL/125, cosine learning rate, early stopping on the held-out engines' RMSE."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build(opts.arch, xt.shape[2], opts.age_feature == "last")
    opt = torch.optim.Adam(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, opts.epochs)
    x_t = torch.from_numpy(xt)
    y_t = torch.from_numpy((np.minimum(yt, CAP) / CAP).astype(np.float32)).unsqueeze(1)
    yv_capped = np.minimum(yv, CAP)
    best = {"rmse": float("inf"), "epoch": -1}
    best_state = None
    started = time.time()
    for epoch in range(opts.epochs):
        model.train()
        perm = torch.randperm(len(x_t), generator=gen)
        for i in range(0, len(perm), opts.batch):
            idx = perm[i : i + opts.batch]
            xb = x_t[idx]
            if opts.noise > 0:
                xb = xb + opts.noise * torch.randn(xb.shape, generator=gen)
            opt.zero_grad()
            loss = torch.mean((model(xb) - y_t[idx]) ** 2)
            loss.backward()
            opt.step()
        sched.step()
        r = rmse(predict(model, xv) * CAP, yv_capped)
        if r < best["rmse"]:
            best = {"rmse": r, "epoch": epoch}
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        elif epoch - best["epoch"] >= opts.patience:
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    best["seconds"] = round(time.time() - started, 1)
    best["epochs_run"] = epoch + 1
    return model, best


def folds_of(units: list[int], k: int, seed: int) -> list[list[int]]:
    rng = np.random.RandomState(seed)
    shuffled = list(rng.permutation(units))
    return [sorted(int(u) for u in f) for f in np.array_split(shuffled, k)]


# ---------------------------------------------------------------------------------------------
# Alerts replayed on out-of-fold predictions (run-to-failure engines never seen by their member)
# ---------------------------------------------------------------------------------------------


def replay_rule(pred: np.ndarray, value: float, clear: float, for_windows: int) -> list[int]:
    """Indices of windows where a `rul < value` rule with hysteresis raises (contract §4)."""
    raised, run, raises = False, 0, []
    for i, p in enumerate(pred):
        if not raised:
            run = run + 1 if p < value else 0
            if run >= for_windows:
                raised, run = True, 0
                raises.append(i)
        elif p > clear:
            raised = False
    return raises


def alert_stats(oof: dict[int, tuple[np.ndarray, np.ndarray]], rule: dict) -> dict:
    leads, early, per_engine = [], 0, []
    for _, (pred, rul) in sorted(oof.items()):
        raises = replay_rule(pred, rule["value"], rule["clearValue"], rule["forWindows"])
        per_engine.append(len(raises))
        if raises:
            leads.append(float(rul[raises[0]]))
            # Raised while the engine still had more than twice the threshold left: a false alarm.
            early += sum(1 for r in raises if rul[r] > 2 * rule["value"])
    leads_a = np.array(leads) if leads else np.array([np.nan])
    return {
        "engines": len(oof),
        "raisedBeforeFailure": len(leads),
        "medianLeadCycles": float(np.median(leads_a)),
        "p10LeadCycles": float(np.percentile(leads_a, 10)),
        "minLeadCycles": float(np.min(leads_a)),
        "raisesPerEngine": float(np.mean(per_engine)),
        "raisesWithMoreThanTwiceTheThresholdLeft": early,
    }


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


ALERTS = [
    {
        "id": "rul-warning",
        "severity": "warning",
        "output": "rul",
        "op": "<",
        "value": 50,
        "forWindows": 3,
        "clearValue": 65,
    },
    {
        "id": "rul-critical",
        "severity": "critical",
        "output": "rul",
        "op": "<",
        "value": 20,
        "forWindows": 2,
        "clearValue": 30,
    },
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="folder with the FD001 files (default: $VIGIL_DATA_DIR/cmapss or ../shared/data/cmapss)")
    ap.add_argument("--version", default="2.0.0")
    ap.add_argument("--out", type=Path, default=None, help="package folder (default models/turbofan-rul/<version>)")
    ap.add_argument("--arch", default="mlp:h=32,drop=0.1")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds-per-fold", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--patience", type=int, default=15)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=3e-3)
    ap.add_argument("--noise", type=float, default=0.0, help="std of Gaussian noise added to training inputs (z units)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=2008)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--age-feature", choices=["off", "channel", "last"], default="channel",
                    help="add the engine's age (the `cycle` column, z-scored) as input signal 15: all 30 values "
                    "(channel, the default and the shipped 2.0.0) or only the window's last one (last); "
                    "off is the 14 sensors only (1.0.0)")
    ap.add_argument("--cv-only", action="store_true", help="report cross-validation only; do not look at the test set or write a package")
    args = ap.parse_args()

    data = args.data or default_data_dir() / "cmapss"
    files = [data / "train_FD001.txt", data / "test_FD001.txt", data / "RUL_FD001.txt"]
    for f in files:
        if not f.is_file():
            raise SystemExit(f"missing {f} (give --data DIR holding the C-MAPSS FD001 files)")
    seed_everything(args.seed, args.threads)
    opts = Options(args.arch, args.epochs, args.patience, args.lr, args.weight_decay, args.noise, args.batch, args.seed,
                   args.age_feature)
    signals = SENSORS if args.age_feature == "off" else SENSORS + [AGE]

    train = engines_of(read_cmapss(files[0]), signals=signals)
    all_x = np.concatenate([e.x for e in train])
    mean = all_x.mean(axis=0)
    std = all_x.std(axis=0)

    units = [e.unit for e in train]
    folds = folds_of(units, args.folds, args.seed)
    by_unit = {e.unit: e for e in train}
    members: list[nn.Module] = []
    member_log = []
    oof: dict[int, list[np.ndarray]] = {}
    for k, held in enumerate(folds):
        fit = [by_unit[u] for u in units if u not in held]
        val = [by_unit[u] for u in held]
        xt, yt, _ = windows_of(fit, mean, std)
        xv, yv, uv = windows_of(val, mean, std)
        for s in range(args.seeds_per_fold):
            seed = args.seed * 100 + k * 10 + s
            model, info = train_member(opts, seed, xt, yt, xv, yv)
            members.append(model)
            p = predict(model, xv) * CAP
            for u in held:
                oof.setdefault(u, []).append(p[uv == u])
            info.update({"fold": k, "seed": seed})
            member_log.append(info)
            print(f"fold {k} seed {seed}: held-out RMSE {info['rmse']:.3f} at epoch {info['epoch']} "
                  f"({info['epochs_run']} run, {info['seconds']} s)", flush=True)

    # Out-of-fold: each training engine predicted by the members that never saw it.
    oof_pred = {u: (np.maximum(np.mean(ps, axis=0), 0.0), by_unit[u].rul[WINDOW - 1 :]) for u, ps in oof.items()}
    p_all = np.concatenate([p for p, _ in oof_pred.values()])
    r_all = np.concatenate([r for _, r in oof_pred.values()])
    testlike = (r_all >= 7) & (r_all <= 145)
    cv = {
        "rmseAllWindowsCapped": rmse(p_all, np.minimum(r_all, CAP)),
        "rmseWindowsWithRul7to145Capped": rmse(p_all[testlike], np.minimum(r_all[testlike], CAP)),
        "windows": int(len(p_all)),
        "rmseByTrueRul": {
            f"{lo}-{hi}": rmse(p_all[(r_all >= lo) & (r_all < hi)], np.minimum(r_all[(r_all >= lo) & (r_all < hi)], CAP))
            for lo, hi in [(0, 25), (25, 50), (50, 75), (75, 100), (100, 125), (125, 150), (150, 400)]
        },
    }
    print(f"cross-validation (out-of-fold, {args.folds} folds): {json.dumps(cv)}", flush=True)
    alerts = {a["id"]: alert_stats(oof_pred, a) for a in ALERTS}
    print(f"alerts on out-of-fold run-to-failure engines: {json.dumps(alerts)}", flush=True)
    if args.cv_only:
        return

    ensemble = Ensemble(members).eval()
    rul_end = {i + 1: float(v) for i, v in enumerate(np.loadtxt(files[2], dtype=np.float64).ravel())}
    test = engines_of(read_cmapss(files[1]), rul_end, signals)
    short = [e.unit for e in test if len(e.x) < WINDOW]
    last_x = np.stack([normalise(e.x[-WINDOW:], mean, std) for e in test if len(e.x) >= WINDOW])
    last_true = np.array([e.rul[-1] for e in test if len(e.x) >= WINDOW])
    pred = predict(ensemble, last_x)
    singles = [rmse(np.maximum(predict(m, last_x) * CAP, 0), last_true) for m in members]
    metrics = {
        "engines": len(test),
        "enginesPredicted": int(len(pred)),
        "enginesShorterThanWindow": short,
        "rmse": rmse(pred, last_true),
        "score": phm08_score(pred, last_true),
        "rmseCappedTruth": rmse(pred, np.minimum(last_true, CAP)),
        "scoreCappedTruth": phm08_score(pred, np.minimum(last_true, CAP)),
        "meanSingleMemberRmse": float(np.mean(singles)),
    }
    print(f"FD001 test, last window per engine: {json.dumps(metrics)}", flush=True)

    out = args.out or REPO / "models" / NAME / args.version
    out.mkdir(parents=True, exist_ok=True)
    example = torch.from_numpy(last_x[:1])
    export_onnx(ensemble, example, out / "model.onnx", ["rul"])

    # Self-test: three real windows (healthy, mid-life, near failure of test engines), preprocessed.
    order = np.argsort(last_true)
    picks = [int(order[-1]), int(order[len(order) // 2]), int(order[0])]
    cases = []
    for i in picks:
        x = last_x[i : i + 1]
        cases.append({"input": f32_list(x), "output": rounded(predict(ensemble, x), 5), "tolerance": 0.001})

    ref_x = all_x
    manifest = {
        "schemaVersion": 1,
        "name": NAME,
        "version": args.version,
        "task": "regression",
        "description": (
            "Remaining useful life (cycles, capped at 125) of a turbofan engine from its last 30 cycles"
            + (" and its age (`cycle`: operating cycles since new)" if AGE in signals else "")
            + ", trained on NASA C-MAPSS FD001 (one operating condition, HPC degradation). "
            "Model card: models/turbofan-rul/README.md."
        ),
        "input": {
            "tensor": "input",
            "signals": signals,
            "window": {"type": "count", "size": WINDOW, "hop": 1},
            "features": {"type": "sequence"},
            "normalize": {"type": "zscore", "mean": [float(v) for v in mean], "std": [float(v) for v in std]},
            "layout": "NTC",
        },
        "outputs": [{"tensor": "rul", "name": "rul", "kind": "rul", "unit": "cycles"}],
        "alerts": ALERTS,
        "selfTest": cases,
        "reference": {
            "about": "raw training readings per signal (100 FD001 engines, every cycle), for drift monitoring",
            "features": signals,
            "count": int(len(ref_x)),
            "mean": rounded(ref_x.mean(axis=0), 6),
            "std": rounded(ref_x.std(axis=0), 6),
            "min": rounded(ref_x.min(axis=0), 6),
            "max": rounded(ref_x.max(axis=0), 6),
            "p01": rounded(np.percentile(ref_x, 1, axis=0), 6),
            "p99": rounded(np.percentile(ref_x, 99, axis=0), 6),
            "output": {"rul": {"mean": round(float(np.mean(p_all)), 3), "std": round(float(np.std(p_all)), 3)}},
        },
        "training": {
            "script": "training/cmapss_rul.py",
            "data": data_fingerprint(files),
            "options": {k: getattr(args, k.replace("-", "_")) for k in ["arch", "folds", "seeds_per_fold", "epochs", "patience", "lr", "weight_decay", "noise", "batch", "seed", "threads", "age_feature"]},
            "members": member_log,
            "crossValidation": cv,
            "alertsOutOfFold": alerts,
            "test": metrics,
            "environment": environment(),
        },
    }
    write_package(out, manifest, ["model.onnx"])
    size = (out / "model.onnx").stat().st_size
    print(f"wrote {out} (model.onnx {size} bytes, {sum(p.numel() for p in ensemble.parameters())} parameters)")
    if size > 1_000_000:
        raise SystemExit(f"model.onnx is {size} bytes, over the 1 MB budget")


if __name__ == "__main__":
    main()
