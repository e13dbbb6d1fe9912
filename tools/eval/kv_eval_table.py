#!/usr/bin/env python3
"""Markdown tables from fkv-kv-eval's JSON lines (tools/eval-kv-policies.sh): perplexity and passkey per
context length and KV policy, with the KV bytes each policy used."""
import json
import os
import sys
from collections import OrderedDict


def policy_label(r):
    p = r["policy"]
    if p == "window":
        return f"window W={r['window']}"
    if p == "fourier":
        prof = os.path.basename(r.get("profile", "heuristic"))
        ratio = r.get("fourier_ratio", -1)
        label = f"fourier W={r['window']} N={r['fourier_n']} {prof} norm={r.get('norm', 'range')}"
        return label + (f" ratio={ratio:g}" if ratio is not None and ratio >= 0 else "")
    return p


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    ppl = [r for r in rows if r.get("task") == "perplexity"]
    if ppl:
        print("| L | policy | KV bytes | ppl | ppl past S+W |")
        print("| --- | --- | --- | --- | --- |")
        for r in sorted(ppl, key=lambda r: r["length"]):
            print(f"| {r['length']} | {policy_label(r)} | {r['kv_bytes'] / 1e6:.1f} MB | {r['ppl']:.2f} "
                  f"| {r['ppl_past_window']:.2f} |")
        print()
    keys = [r for r in rows if r.get("task") == "passkey"]
    if keys:
        cells = OrderedDict()
        for r in sorted(keys, key=lambda r: r["length"]):
            cells.setdefault((r["length"], policy_label(r)), []).append(r)
        depths = sorted({r["depth"] for r in keys})
        print("| L | policy | KV bytes | correct | " + " | ".join(f"depth {d:g}" for d in depths) + " |")
        print("| --- | --- | --- | --- | " + " | ".join("---" for _ in depths) + " |")
        for (length, label), rs in cells.items():
            by_depth = {r["depth"]: r for r in rs}
            marks = [("yes" if by_depth[d]["correct"] else "no") if d in by_depth else "-" for d in depths]
            ok = sum(r["correct"] for r in rs)
            print(f"| {length} | {label} | {rs[0]['kv_bytes'] / 1e6:.1f} MB | {ok}/{len(rs)} | "
                  + " | ".join(marks) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: kv_eval_table.py kv-eval.jsonl")
    main(sys.argv[1])
