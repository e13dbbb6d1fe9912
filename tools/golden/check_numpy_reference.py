#!/usr/bin/env python3
"""Recomputes the numpy reference logits (tools/golden/numpy_llama.py) for every case of the committed golden
fixtures and compares them with the fixtures. Needs only numpy and gguf (tools/python-env.sh makes the venv).

Checks, per case and position: relative error ||numpy - ref|| / ||ref|| < --tolerance (default 1e-4) over the
reference's top-k ids, and over the whole vocabulary at the full_logits positions; the same argmax everywhere.

Exit status: 0 all checks pass, 1 a check failed, 2 a missing or unusable input (model, fixture, checkpoint).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy_llama  # noqa: E402
from golden_common import FIXTURES, default_model, default_stories, rel_err_per_position, sha256  # noqa: E402


class InputError(Exception):
    pass


def load_fixture(path: Path):
    if not path.is_file():
        raise InputError(f"missing fixture {path}")
    fx = json.loads(path.read_text())
    vocab = fx["vocab_size"]
    for case in fx["cases"]:
        f = path.parent / case["full_logits_file"]
        if not f.is_file():
            raise InputError(f"missing fixture {f}")
        full = np.fromfile(f, dtype="<f4")
        n = len(case["full_logits_positions"])
        if full.size != n * vocab:
            raise InputError(f"{f}: {full.size} floats, expected {n} x {vocab}")
        case["_full"] = full.reshape(n, vocab)
    return fx


def check(fx, model_path: str, tol: float, label: str):
    """Returns (ok, lines, worst rel err, n positions)."""
    if not os.path.isfile(model_path):
        raise InputError(f"missing model {model_path}")
    if sha256(model_path) != fx["model_sha256"]:
        raise InputError(f"{model_path}: SHA-256 differs from the fixture's model ({fx['model']})")
    model = numpy_llama.load(model_path)
    ok, lines, worst, npos = True, [], 0.0, 0
    for case in fx["cases"]:
        t0 = time.time()
        logits = numpy_llama.forward(model, case["tokens"])
        n = len(case["tokens"])
        npos += n
        # top-k: the reference's ids and logits per position
        ids = np.array([[e[0] for e in row] for row in case["topk"]], dtype=np.int64)
        ref_top = np.array([[e[1] for e in row] for row in case["topk"]], dtype=np.float32)
        rel_top = rel_err_per_position(np.take_along_axis(logits, ids, axis=1), ref_top)
        full_pos = case["full_logits_positions"]
        rel_full = rel_err_per_position(logits[full_pos], case["_full"])
        argmax = logits.argmax(axis=1)
        bad_argmax = [int(p) for p in np.nonzero(argmax != np.array(case["argmax"]))[0]]
        bad_top = [int(p) for p in np.nonzero(rel_top >= tol)[0]]
        bad_full = [int(full_pos[i]) for i in np.nonzero(rel_full >= tol)[0]]
        case_worst = float(max(rel_top.max(), rel_full.max()))
        worst = max(worst, case_worst)
        status = "ok" if not (bad_argmax or bad_top or bad_full) else "FAIL"
        ok &= status == "ok"
        line = (f"  {label}/{case['name']}: n={n} max rel err top-k {rel_top.max():.2e}, full {rel_full.max():.2e}; "
                f"argmax mismatches {len(bad_argmax)} [{status}] ({time.time() - t0:.1f} s)")
        if bad_argmax:
            line += f"\n    argmax differs at positions {bad_argmax[:10]}"
        if bad_top or bad_full:
            line += f"\n    rel err >= {tol:g} at positions {sorted(set(bad_top + bad_full))[:10]}"
        lines.append(line)
    return ok, lines, worst, npos


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=default_model(), help="SmolLM2 GGUF (default: $FKV_MODELS or ~/.cache/fkv)")
    ap.add_argument("--stories", default=default_stories(), help="stories260K.bin (default: ../shared/models)")
    ap.add_argument("--fixtures", default=str(FIXTURES), help="fixture folder (default: tests/fixtures)")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="relative error limit per position")
    args = ap.parse_args()
    t0 = time.time()
    fixtures = Path(args.fixtures)
    ok_all, worst_all, npos_all, ncases = True, 0.0, 0, 0
    try:
        for fixture, model, label in (
            ("golden_smollm2.json", args.model, "smollm2"),
            ("golden_stories260k.json", args.stories, "stories260k"),
        ):
            fx = load_fixture(fixtures / fixture)
            ok, lines, worst, npos = check(fx, model, args.tolerance, label)
            print("\n".join(lines), flush=True)
            ok_all &= ok
            worst_all = max(worst_all, worst)
            npos_all += npos
            ncases += len(fx["cases"])
    except (InputError, KeyError, ValueError) as e:
        print(f"check_numpy_reference: input error: {e}", file=sys.stderr)
        return 2
    verdict = "OK" if ok_all else "FAILED"
    print(f"check_numpy_reference: {verdict}: {ncases} cases, {npos_all} positions, max rel err {worst_all:.2e} "
          f"(limit {args.tolerance:g}), argmax {'equal everywhere' if ok_all else 'see above'}; "
          f"{time.time() - t0:.1f} s")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
