"""Paths and small helpers shared by make_golden.py and check_numpy_reference.py (numpy only)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def shared_dir() -> Path:
    """../shared next to the checkout ($FKV_SHARED overrides); a git worktree also looks next to its main checkout."""
    if os.environ.get("FKV_SHARED"):
        return Path(os.environ["FKV_SHARED"])
    candidates = [REPO.parent / "shared"]
    dotgit = REPO / ".git"
    if dotgit.is_file():  # a worktree: ".git" says "gitdir: <main>/.git/worktrees/<name>"
        gitdir = Path(dotgit.read_text().split("gitdir:", 1)[1].strip())
        candidates.append(gitdir.parents[2].parent / "shared")
    return next((c for c in candidates if c.is_dir()), candidates[0])


def default_model() -> str:
    d = os.environ.get("FKV_MODELS") or os.path.join(os.environ.get("HOME", "/tmp"), ".cache", "fkv")
    return os.path.join(d, MODEL_NAME)


def default_stories() -> str:
    return str(shared_dir() / "models" / "stories260K.bin")


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def rel_err_per_position(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """||a - ref|| / ||ref|| along the last axis, in float64."""
    a64, r64 = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return np.linalg.norm(a64 - r64, axis=-1) / np.linalg.norm(r64, axis=-1)
