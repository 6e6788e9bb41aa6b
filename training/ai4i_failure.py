#!/usr/bin/env python3
"""Train, evaluate and package `milling-failure`: failure risk of a milling machine on AI4I 2020.

    npm run train:ai4i -- --data DIR              (DIR holds ai4i2020.csv, or ai4i2020/ai4i2020.csv)

Contract: seeded and deterministic on one machine. Reads only ai4i2020.csv; writes
`models/milling-failure/<version>/` (manifest.json, model.onnx) and prints the metrics that
go into the model card. Never writes any data row into the repository.

Time base (AI4I rows carry no time): row i (0-based, file order = UDI order) happens at
start + i × 1000 ms, i.e. one machining process per second of replay time. This is what
`vigil replay --format csv` and `vigil batch --format csv` do with a CSV that has no time
column, so the raw file replays as it is, as one asset named after the file (`ai4i2020`).

Set-up:
- input: a time window of the last 3 processes (sizeMs 3 000, hopMs 1 000, sampleMs 1 000,
  fill previous: every 1 s slot holds exactly one row) of the five process signals; per
  signal the aggregates mean, std, min, max, slope (contract §4 semantics: population std,
  least-squares slope against the slot index) → 25 features, z-scored with the training
  windows' statistics, layout NF;
- target (`--horizon 0`, the default): the window's last process ends in a failure (column
  `Machine failure`: any of TWF, HDF, PWF, OSF, RNF); `--horizon N` instead asks for a failure
  in one of the next N processes after the window (a forecast; the model card reports how
  much weaker that is on this data);
- split in time, never shuffled (windows overlap, so a shuffled split would leak): the first
  60 % of rows train, the next 20 % validate (early stopping, thresholds, the choice of
  window and width), the last 20 % test;
- model: a small MLP, class-weighted binary cross-entropy, early stopping on validation ROC
  AUC; its logit is then calibrated on the validation part (Platt scaling, σ(a·logit + b)) so
  that `failure_probability` is a probability, not odds inflated by the class weight;
- alert thresholds: chosen on the validation part for a false-alarm rate (share of windows
  without a failure that raise) of 5 % (warning) and 1 % (critical);
- the file's last row ends no window: live, its window closes only when a later reading
  arrives, so neither the gateway nor `vigil batch` emits it.

The metrics printed (and stored under `training.metrics` in the manifest) are computed on the
exported graph's own output, which ONNX Runtime reproduces: `vigil batch` over the same file
gives the same test ROC AUC and average precision (test/integration/milling-failure.test.ts).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    data_fingerprint,
    default_data_dir,
    environment,
    export_onnx,
    f32_list,
    rounded,
    seed_everything,
    write_package,
)

NAME = "milling-failure"
REPO = Path(__file__).resolve().parent.parent
SIGNALS = [
    "Air temperature [K]",
    "Process temperature [K]",
    "Rotational speed [rpm]",
    "Torque [Nm]",
    "Tool wear [min]",
]
FUNCTIONS = ["mean", "std", "min", "max", "slope"]
LABEL = "Machine failure"
MODES = ["TWF", "HDF", "PWF", "OSF", "RNF"]


def aggregates(window: np.ndarray) -> np.ndarray:
    """[n, signals] -> features signal-major, FUNCTIONS order, exactly as contract §4 defines them."""
    n = window.shape[0]
    idx = np.arange(n, dtype=np.float64)
    ic = idx - idx.mean()
    feats = []
    for c in range(window.shape[1]):
        x = window[:, c]
        mean = x.mean()
        std = np.sqrt(np.mean((x - mean) ** 2))
        slope = float(np.sum(ic * (x - mean)) / np.sum(ic * ic)) if n > 1 else 0.0
        feats += [mean, std, x.min(), x.max(), slope]
    return np.array(feats, dtype=np.float64)


def build_windows(x: np.ndarray, fail: np.ndarray, size: int, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows ending at every row e (rows e−size+1..e) with a full horizon after it; label: a failure in rows e+1..e+horizon.

    The gateway closes the window of row e when event time reaches its end, i.e. when row e+1
    arrives; the file's last row never closes its window (live, nothing comes after it), so it
    ends no window here either and offline metrics match what the gateway emits one for one.
    """
    feats, labels, ends = [], [], []
    for e in range(size - 1, min(len(x) - 1, len(x) - horizon)):
        feats.append(aggregates(x[e - size + 1 : e + 1]))
        # horizon 0: the window's own last process; h > 0: one of the next h processes.
        labels.append(float(fail[e : e + 1].any() if horizon == 0 else fail[e + 1 : e + 1 + horizon].any()))
        ends.append(e)
    return np.array(feats), np.array(labels, dtype=np.float32), np.array(ends)


def roc_auc(score: np.ndarray, y: np.ndarray) -> float:
    """Mann–Whitney: probability that a positive outranks a negative (ties count half)."""
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(score: np.ndarray, y: np.ndarray) -> float:
    order = np.argsort(-score, kind="mergesort")
    yy = y[order]
    tp = np.cumsum(yy)
    precision = tp / np.arange(1, len(yy) + 1)
    return float(np.sum(precision * yy) / max(1, yy.sum()))


def threshold_at_fpr(score: np.ndarray, y: np.ndarray, fpr: float) -> float:
    """Smallest threshold t such that the share of negatives with score > t is at most fpr."""
    neg = np.sort(score[y == 0])[::-1]
    k = int(np.floor(fpr * len(neg)))
    return float(neg[k]) if k < len(neg) else float(neg[-1])


def rates(score: np.ndarray, y: np.ndarray, t: float) -> dict:
    alarm = score > t
    pos = y == 1
    return {
        "threshold": t,
        "recall": float(alarm[pos].mean()),
        "falseAlarmRate": float(alarm[~pos].mean()),
        "precision": float(alarm[pos].sum() / max(1, alarm.sum())),
    }


class Net(nn.Module):
    def __init__(self, features: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Shipped(nn.Module):
    """The exported graph: calibrated probability in [0, 1], [batch, 1].

    σ(a·logit + b) with (a, b) fitted on the validation part (Platt scaling): the class-weighted
    loss inflates the odds by the weight, so the raw sigmoid is not a probability. σ is written
    as 1 / (1 + e^−z) (ONNX Exp, Add, Reciprocal) rather than the Sigmoid operator, whose
    ONNX Runtime kernel has an absolute error of ~1e-7, which near 0 reorders close scores
    against torch; this form keeps the relative precision of float32 in both.
    """

    def __init__(self, net: nn.Module, a: float, b: float):
        super().__init__()
        self.net = net
        self.register_buffer("a", torch.tensor([a], dtype=torch.float32))
        self.register_buffer("b", torch.tensor([b], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x) * self.a + self.b
        return torch.reciprocal(torch.exp(-z) + 1.0)


def platt(logit: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) minimising the log loss of σ(a·logit + b) against y (float64, L-BFGS)."""
    lt = torch.from_numpy(logit.astype(np.float64))
    yt = torch.from_numpy(y.astype(np.float64))
    ab = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([ab], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(ab[0] * lt + ab[1], yt)
        loss.backward()
        return loss

    opt.step(closure)
    return float(ab[0]), float(ab[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--window", type=int, default=3, help="processes (rows, seconds of replay time) per window")
    ap.add_argument("--horizon", type=int, default=0, help="0: the window's last process fails; N > 0: a failure in the next N processes (a forecast)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--patience", type=int, default=30)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--false-alarm-rate", type=float, default=0.05, help="alert threshold chosen on validation for this false-alarm rate")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    root = args.data or default_data_dir()
    csv = next((p for p in [root / "ai4i2020.csv", root / "ai4i2020" / "ai4i2020.csv"] if p.is_file()), None)
    if csv is None:
        raise SystemExit(f"no ai4i2020.csv in {root} (give --data DIR)")
    seed_everything(args.seed, args.threads)
    df = pd.read_csv(csv, encoding="utf-8-sig")
    for col in SIGNALS + [LABEL]:
        if col not in df.columns:
            raise SystemExit(f"{csv}: no column {col!r}")
    x = df[SIGNALS].to_numpy(dtype=np.float64)
    fail = df[LABEL].to_numpy().astype(bool)
    n = len(df)
    cut1, cut2 = int(n * 0.6), int(n * 0.8)

    feats, labels, ends = build_windows(x, fail, args.window, args.horizon)
    # A window belongs to the part holding its last future row, so no label crosses a boundary.
    part = np.where(ends + args.horizon < cut1, 0, np.where(ends + args.horizon < cut2, 1, 2))
    part[(ends - args.window + 1 < cut1) & (ends + args.horizon >= cut1)] = -1
    part[(ends - args.window + 1 < cut2) & (ends + args.horizon >= cut2)] = -1
    tr, va, te = part == 0, part == 1, part == 2
    mean = feats[tr].mean(axis=0)
    std = feats[tr].std(axis=0)
    z = ((feats - mean) / np.where(std == 0, 1.0, std)).astype(np.float32)

    net = Net(z.shape[1], args.hidden, args.dropout)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    xt, yt = torch.from_numpy(z[tr]), torch.from_numpy(labels[tr]).unsqueeze(1)
    pos_weight = torch.tensor([(1 - labels[tr].mean()) / labels[tr].mean()])
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    gen = torch.Generator().manual_seed(args.seed)
    best, best_state, best_epoch = -1.0, None, -1
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(perm), 256):
            idx = perm[i : i + 256]
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            pv = net(torch.from_numpy(z[va])).numpy().ravel()
        auc = roc_auc(pv, labels[va])
        if auc > best:
            best, best_epoch = auc, epoch
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        elif epoch - best_epoch >= args.patience:
            break
    assert best_state is not None
    net.load_state_dict(best_state)
    net.eval()
    with torch.no_grad():
        logit_va = net(torch.from_numpy(z[va])).numpy().ravel()
    cal_a, cal_b = platt(logit_va, labels[va])
    shipped = Shipped(net, cal_a, cal_b).eval()
    with torch.no_grad():
        prob = shipped(torch.from_numpy(z)).numpy().ravel()

    t_warn = threshold_at_fpr(prob[va], labels[va], args.false_alarm_rate)
    t_crit = threshold_at_fpr(prob[va], labels[va], args.false_alarm_rate / 5)
    metrics = {}
    for name, m in [("train", tr), ("validation", va), ("test", te)]:
        metrics[name] = {
            "windows": int(m.sum()),
            "positives": int(labels[m].sum()),
            "rocAuc": roc_auc(prob[m], labels[m]),
            "averagePrecision": average_precision(prob[m], labels[m]),
            "warning": rates(prob[m], labels[m], t_warn),
            "critical": rates(prob[m], labels[m], t_crit),
        }
    # Per failure (row) in the test part: did the warning rule (one window above its threshold)
    # flag it: the window ending at it (horizon 0), or one of the windows before it (horizon h)?
    covered = {int(e) for e in ends[te]} if args.horizon == 0 else {int(e) + k for e in ends[te] for k in range(1, args.horizon + 1)}
    test_fail_rows = [int(r) for r in np.where(fail)[0] if int(r) in covered]

    def flagged(r: int) -> bool:
        m = (ends == r) if args.horizon == 0 else (ends >= r - args.horizon) & (ends < r)
        return bool(np.any(prob[m] > t_warn))

    metrics["test"]["failuresFlaggedByWarning"] = {
        "failures": len(test_fail_rows),
        "flagged": sum(flagged(r) for r in test_fail_rows),
        "byMode": {
            mode: {
                "failures": sum(1 for r in test_fail_rows if df[mode].iloc[r] == 1),
                "flagged": sum(flagged(r) for r in test_fail_rows if df[mode].iloc[r] == 1),
            }
            for mode in MODES
        },
    }
    metrics["bestEpoch"] = best_epoch
    metrics["calibration"] = {"a": cal_a, "b": cal_b}
    print(json.dumps(metrics, indent=1), flush=True)

    out = args.out or REPO / "models" / NAME / args.version
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(shipped, torch.from_numpy(z[:1]), out / "model.onnx", ["failure_probability"])
    # Self-test cases that pin the whole curve, not only its saturated ends: the windows whose
    # probability is closest to 0.9, 0.5, 0.1 and 0.01.
    picks = [int(np.argmin(np.abs(prob - q))) for q in (0.9, 0.5, 0.1, 0.01)]
    cases = []
    for i in picks:
        with torch.no_grad():
            y = shipped(torch.from_numpy(z[i : i + 1])).numpy()
        cases.append({"input": f32_list(z[i]), "output": rounded(y, 6), "tolerance": 0.0001})
    feature_names = [f"{s}.{f}" for s in SIGNALS for f in FUNCTIONS]
    manifest = {
        "schemaVersion": 1,
        "name": NAME,
        "version": args.version,
        "task": "classification",
        "description": (
            (
                f"Probability that the latest process of a milling machine ends in a failure"
                if args.horizon == 0
                else f"Probability that a milling machine fails in one of its next {args.horizon} processes"
            )
            + f", from aggregates of its last {args.window} processes (one process per second of replay time). "
            "Trained on AI4I 2020 (synthetic, UCI, CC BY 4.0). Model card: models/milling-failure/README.md."
        ),
        "input": {
            "tensor": "input",
            "signals": SIGNALS,
            "window": {"type": "time", "sizeMs": args.window * 1000, "hopMs": 1000, "sampleMs": 1000, "fill": "previous"},
            "features": {"type": "aggregate", "functions": FUNCTIONS},
            "normalize": {"type": "zscore", "mean": [float(v) for v in mean], "std": [float(v) for v in std]},
            "layout": "NF",
        },
        "outputs": [{"tensor": "failure_probability", "name": "failure_probability", "kind": "probability"}],
        "alerts": [
            {
                "id": "failure-risk",
                "severity": "warning",
                "output": "failure_probability",
                "op": ">",
                "value": round(t_warn, 4),
                "forWindows": 1,
                "clearValue": round(t_warn * 0.8, 4),
            },
            {
                "id": "failure-likely",
                "severity": "critical",
                "output": "failure_probability",
                "op": ">",
                "value": round(t_crit, 4),
                "forWindows": 1,
                "clearValue": round(t_crit * 0.8, 4),
            },
        ],
        "selfTest": cases,
        "reference": {
            "about": "aggregate features of the training windows, before normalisation, for drift monitoring",
            "features": feature_names,
            "count": int(tr.sum()),
            "mean": rounded(feats[tr].mean(axis=0), 6),
            "std": rounded(feats[tr].std(axis=0), 6),
            "min": rounded(feats[tr].min(axis=0), 6),
            "max": rounded(feats[tr].max(axis=0), 6),
            "output": {"failure_probability": {"mean": round(float(prob[tr].mean()), 6)}},
        },
        "training": {
            "script": "training/ai4i_failure.py",
            "data": data_fingerprint([csv]),
            "timeBase": "row i at start + i × 1000 ms (one process per second)",
            "split": {"trainRows": [0, cut1], "validationRows": [cut1, cut2], "testRows": [cut2, n]},
            "options": {k: v if not isinstance(v, Path) else None for k, v in vars(args).items() if k not in ("data", "out")},
            "metrics": metrics,
            "environment": environment(),
        },
    }
    write_package(out, manifest, ["model.onnx"])
    print(f"wrote {out} (model.onnx {(out / 'model.onnx').stat().st_size} bytes)")


if __name__ == "__main__":
    main()
