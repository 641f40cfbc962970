"""Render a benchmark results file: the Markdown table and a bar chart of ratios.

    python -m benchmarks.report                      # this machine's latest run
    python -m benchmarks.report benchmarks/results/amd-epyc-f26m2-2c-cpu.json --mode quick
    python -m benchmarks.report FILE --png ratios.png

The chart shows tinylatent time / PyTorch time per benchmark on a log scale with 1.0 marked
(left of the line: tinylatent is faster). PNGs are written next to the JSON unless --png
says otherwise; they are not committed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import harness


def default_file() -> Path:
    """This machine's latest run (results/local/), else its committed record, else any."""
    for directory in (None, harness.RESULTS_DIR):
        for live in (True, False):
            path, _ = harness.results_paths("cpu", live=live, directory=directory)
            if path.exists():
                return path
    found = sorted(harness.RESULTS_DIR.glob("*.json"))
    if not found:
        raise SystemExit(f"report: no results in {harness.RESULTS_DIR}; run "
                         "`python -m pytest -q benchmarks` first")
    return found[0]


def plot_ratios(data: dict, mode: str, png: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = [f for f in data["modes"][mode]["figures"].values()
            if f.get("kind", "time") == "time" and f.get("ratio")]
    figs.sort(key=lambda f: (f.get("group", ""), f.get("test", ""), f.get("order", 0)))
    if not figs:
        raise SystemExit(f"report: no ratios in mode '{mode}'")
    names = [f["name"] + ("  (recorded)" if f["torch"].get("source") != "live" else "")
             for f in figs]
    ratios = [f["ratio"] for f in figs]
    colors = ["tab:green" if r <= 1.0 else "tab:red" for r in ratios]
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(figs) + 1.5))
    y = range(len(figs))
    ax.barh(list(y), ratios, color=colors)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1.0, label="1.0: same speed as PyTorch")
    for i, f in enumerate(figs):
        if f.get("goal"):
            ax.plot([f["goal"]], [i], marker="|", color="tab:blue", markersize=14)
        ax.text(f["ratio"], i, f" {f['ratio']:.3g}x", va="center", fontsize=8)
    ax.set_yticks(list(y))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time ratio tinylatent / PyTorch (log scale; < 1: tinylatent faster; "
                  "| = goal)")
    m = data.get("machine", {})
    ax.set_title(f"tinylatent vs PyTorch, {m.get('key', '?')} ({data.get('device', 'cpu')}), "
                 f"{mode} mode, {data['modes'][mode].get('date', '?')[:10]}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", type=Path, help="results JSON (default: this machine)")
    ap.add_argument("--mode", choices=["full", "quick"], default=None,
                    help="which run to chart (default: full if present)")
    ap.add_argument("--png", type=Path, default=None, help="chart path (default: next to file)")
    ap.add_argument("--no-png", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    path = args.file or default_file()
    if not path.exists():
        raise SystemExit(f"report: {path} does not exist")
    data = json.loads(path.read_text())
    if data.get("format") != 1 or "modes" not in data:
        raise SystemExit(f"report: {path} is not a tinylatent benchmark results file")
    print(harness.markdown_document(data))
    if args.no_png:
        return
    mode = args.mode or ("full" if "full" in data["modes"] else next(iter(data["modes"])))
    if mode not in data["modes"]:
        raise SystemExit(f"report: {path} has no '{mode}' run (has {list(data['modes'])})")
    png = args.png or path.with_name(f"{path.stem}-{mode}.png")
    print(f"\nchart: {plot_ratios(data, mode, png)}")


if __name__ == "__main__":
    main()
