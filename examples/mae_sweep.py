"""The masked autoencoder's mask-ratio sweep (He et al. 2022, Fig. 5): 50 / 75 / 90% masked.

    python examples/mae_sweep.py                                   # embedded MNIST offline
    python examples/mae_sweep.py --dataset fashion-mnist --limit-train 20000

Runs examples/mae_mnist.py once per ratio (same seed, data, sizes and epochs; each in
OUT/mask<percent>/ with its own checkpoint, so --resume continues every run) and gathers the
results: for each ratio the masked-patch MSE (normalised pixels) next to the mean-patch
baseline, and the linear probe on the frozen encoder next to the same ViT at random init and
raw pixels. L - round(L (1 - ratio)) of the L patches are masked (7x7 patches on 28x28:
L = 16, and "90%" masks 14 = 87.5%). The paper finds ~75% best for both fine-tuning and
linear probing on ImageNet; here it is measured. Writes OUT/sweep.png (each ratio's
reconstructions and the table), OUT/sweep.json and OUT/sweep.md (the table, as Markdown).
Other arguments go to mae_mnist.py.
"""
import argparse
import json
import os
import sys

import matplotlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mae_mnist  # noqa: E402  (the example next to this one)
import tinylatent as tl  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

COLUMNS = ("masked MSE", "mean-patch", "probe trained", "probe random", "probe pixels")


def table_rows(results):
    return [[f"{r['mask_ratio']:.0%} ({r['masked_patches'][0]}/{r['masked_patches'][1]})",
             f"{r['test_masked_mse']:.4f}",
             f"{r['mean_patch_baseline']:.4f}", f"{r['probe']['trained']:.4f}",
             f"{r['probe']['random init']:.4f}", f"{r['probe']['pixels']:.4f}"]
            for r in results]


def main(argv=None):
    p = argparse.ArgumentParser(description="MAE mask-ratio sweep (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--ratios", type=float, nargs="+", default=[0.5, 0.75, 0.9])
    p.add_argument("--out", default="runs/mae_sweep")
    args, rest = p.parse_known_args(argv)
    os.makedirs(args.out, exist_ok=True)
    results, folders = [], []
    for ratio in args.ratios:
        folder = f"{args.out}/mask{round(100 * ratio)}"
        print(f"--- mask ratio {ratio:.0%} -> {folder}")
        results.append(mae_mnist.main(rest + ["--mask-ratio", str(ratio), "--out", folder]))
        folders.append(folder)
    rows = table_rows(results)
    md = ["| mask ratio (masked patches) | " + " | ".join(COLUMNS) + " |",
          "|---" * (len(COLUMNS) + 1) + "|"]
    md += ["| " + " | ".join(row) + " |" for row in rows]
    print("\n".join(md))
    with open(f"{args.out}/sweep.md", "w") as f:
        f.write("\n".join(md) + "\n")
    with open(f"{args.out}/sweep.json", "w") as f:
        json.dump(results, f, indent=1)
    fig, axes = plt.subplots(len(results) + 1, 1, figsize=(7.5, 1.9 * len(results) + 1.4),
                             gridspec_kw={"height_ratios": [3] * len(results) + [2]})
    for ax, folder, r in zip(axes, folders, results):
        ax.imshow(plt.imread(f"{folder}/reconstructions.png"))
        ax.set_title(f"{r['mask_ratio']:.0%} masked ({r['masked_patches'][0]} of "
                     f"{r['masked_patches'][1]} patches): masked-patch MSE "
                     f"{r['test_masked_mse']:.3f} (mean-patch {r['mean_patch_baseline']:.3f}),"
                     f" probe {r['probe']['trained']:.3f}", fontsize=8)
        ax.axis("off")
    axes[-1].axis("off")
    tab = axes[-1].table(cellText=rows, colLabels=("mask",) + COLUMNS, loc="center",
                         cellLoc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(7)
    fig.savefig(f"{args.out}/sweep.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"pictures in {args.out}/")
    return results


if __name__ == "__main__":
    main()
