#!/usr/bin/env python3
"""Heatmap of fkv-eval passkey results: accuracy by prompt length (rows) and key depth (columns).

    plot_heatmap.py RESULTS.json OUT.png

RESULTS.json is `fkv-eval passkey --json` output (fkv-eval --plot writes it and calls this script).
Needs matplotlib (tools/python-env.sh's venv plus `pip install matplotlib`)."""
import json
import sys


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_heatmap.py: matplotlib is not installed in this Python", file=sys.stderr)
        return 1
    with open(sys.argv[1]) as f:
        report = json.load(f)
    cells = report["results"]
    lengths = sorted({c["length"] for c in cells})
    depths = sorted({c["depth"] for c in cells})
    grid = [[float("nan")] * len(depths) for _ in lengths]
    for c in cells:
        grid[lengths.index(c["length"])][depths.index(c["depth"])] = c["accuracy"]

    fig, ax = plt.subplots(figsize=(1.2 * len(depths) + 2.5, 0.6 * len(lengths) + 1.8))
    im = ax.imshow(grid, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(depths)), [f"{d:g}" for d in depths])
    ax.set_yticks(range(len(lengths)), [str(n) for n in lengths])
    ax.set_xlabel("depth of the key in the filler")
    ax.set_ylabel("prompt length (tokens)")
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9)
    title = f"passkey retrieval, kv {report.get('kv', '?')}"
    if report.get("kv") in ("window", "fourier"):
        title += f" (sink {report.get('sink')}, window {report.get('window')})"
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="accuracy")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
