"""Shared helpers of the training scripts: determinism, package writing, ONNX export.

Contract: pure helpers, no training logic. `write_package` writes `manifest.json` with the
SHA-256 of every other file it is given (contract §4), so a package written here loads in
the gateway as is. JSON numbers are written with Python's shortest round-trip repr, so a
float64 read back by the gateway is the exact value used in training.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, threads: int = 2) -> None:
    """Same seed, same thread count, same machine: the same weights, bit for bit."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def f32_list(a: np.ndarray) -> list[float]:
    """float32 values as JSON-exact Python floats (every float32 is a float64)."""
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def rounded(a: np.ndarray, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in np.asarray(a).ravel()]


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path, output_names: list[str]) -> None:
    """torch.onnx.export with a dynamic batch axis on the input and every output."""
    model.eval()
    axes = {"input": {0: "batch"}, **{n: {0: "batch"} for n in output_names}}
    torch.onnx.export(
        model,
        example,
        str(path),
        input_names=["input"],
        output_names=output_names,
        dynamic_axes=axes,
        opset_version=13,
        do_constant_folding=True,
    )


def environment() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
    }


def data_fingerprint(paths: list[Path]) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in paths}


def write_package(directory: Path, manifest: dict[str, Any], files: list[str]) -> None:
    """Fills `manifest["files"]` with the hashes of `files` (relative to `directory`) and writes it."""
    manifest = dict(manifest)
    manifest["files"] = {name: sha256_file(directory / name) for name in files}
    order = [
        "schemaVersion",
        "name",
        "version",
        "task",
        "description",
        "files",
        "input",
        "outputs",
        "alerts",
        "selfTest",
        "reference",
        "training",
    ]
    ordered = {k: manifest[k] for k in order if k in manifest}
    ordered.update({k: v for k, v in manifest.items() if k not in ordered})
    text = json.dumps(ordered, indent=2) + "\n"
    (directory / "manifest.json").write_text(text)


def default_data_dir() -> Path:
    """VIGIL_DATA_DIR, else ../shared/data beside the repository."""
    env = os.environ.get("VIGIL_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def phm08_score(pred: np.ndarray, true: np.ndarray) -> float:
    """PHM08 challenge score: late predictions (d = pred − true > 0) cost more than early ones."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sqrt(np.mean(d * d)))
