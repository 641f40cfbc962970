"""MUSE word translation without parallel data (Conneau et al. 2018) on the cipher-KJV pair.

    python examples/muse_kjv.py                 # word2vec x 2, adversarial, refinement
    python examples/muse_kjv.py --resume        # continue from OUT/checkpoint.npz

Language A: half of the KJV's chapters; B: the other half under a hidden word cipher
(tl.data.cipher_pair). Two word2vec spaces (OUT/a.vec, b.vec, reused when present) are
aligned by MUSE; translations of the most frequent A words are scored against the cipher's
dictionary (NN and CSLS), next to Procrustes on a few true pairs (+ refinement) and on all
of them (the upper bound).
Writes results.txt, history.json, alignment.png (2-D PCA before / after), checkpoint.npz.
"""
import argparse
import json
import os
import sys

import matplotlib
import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.models import MUSE, PCA, Word2Vec

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESUMABLE = ("out", "epochs", "stop_after")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="MUSE on the cipher-KJV pair (tinylatent)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dim", type=int, default=100, help="word2vec vector size")
    p.add_argument("--w2v-epochs", type=int, default=15)
    p.add_argument("--verses", type=int, default=None, help="use only the first N verses")
    p.add_argument("--epochs", type=int, default=5, help="adversarial epochs")
    p.add_argument("--epoch-size", type=int, default=250000, help="words per epoch")
    p.add_argument("--hidden", type=int, default=256, help="discriminator width")
    p.add_argument("--most-frequent", type=int, default=2000, help="words D sees")
    p.add_argument("--eval-words", type=int, default=5000, help="most frequent A words")
    p.add_argument("--seed-pairs", type=int, default=100, help="true pairs, seeded rows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/muse_kjv")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)   # the resume test
    return p.parse_args(argv)


def word_vectors(sentences, path, args, seed):
    """word2vec on one language, cached in the word2vec text format."""
    if not os.path.exists(path):
        tl.manual_seed(seed)
        w2v = Word2Vec.from_sentences(sentences, min_count=5,
                                      latent_features=args.dim, epochs=args.w2v_epochs)
        w2v.seed = seed
        w2v.fit(sentences)
        tl.data.save_word_vectors(path, w2v.itos, w2v.vectors(normalized=False))
    return tl.data.load_word_vectors(path)


def picture(muse, reference, path, maps):
    """2-D PCA of 300 frequent words of both spaces under each map {title: W}, with the true
    translation pairs of 12 words joined."""
    n = min(300, len(muse.source), len(muse.target))
    t_index = {w: j for j, w in enumerate(muse.target_words)}
    fig, axes = plt.subplots(1, len(maps), figsize=(5.5 * len(maps), 5))
    for ax, (title, w) in zip(axes, maps.items()):
        xs, ys = muse.source @ w.T, muse.target
        pca = PCA(2).fit(np.concatenate([xs[:n], ys[:n]]))
        zs, zt = pca.transform(xs[:n]).numpy(), pca.transform(ys[:n]).numpy()
        for z, c, label in ((zs, "C0", "language A (mapped)"), (zt, "C3", "language B")):
            ax.scatter(z[:, 0], z[:, 1], s=6, c=c, label=label)
        shown = [i for i in range(n) if muse.source_words[i].isalpha()
                 and t_index.get(reference.get(muse.source_words[i]), n) < n][:12]
        for i in shown:
            j = t_index[reference[muse.source_words[i]]]
            ax.plot([zs[i, 0], zt[j, 0]], [zs[i, 1], zt[j, 1]], "-", c="gray", lw=0.6)
            ax.annotate(muse.source_words[i], zs[i], fontsize=7)
            ax.annotate(muse.target_words[j], zt[j], fontsize=7, color="C3")
        ax.set(title=title, xticks=[], yticks=[])
    axes[0].legend(loc="lower left", fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = f"{args.out}/checkpoint.npz"
    verses = tl.data.load_kjv()[:args.verses] if args.verses else None
    pair = tl.data.cipher_pair(verses, seed=args.seed)
    reference = pair.cipher.dictionary                  # hidden: used to score only
    a_words, a = word_vectors(pair.a_train, f"{args.out}/a.vec", args, 1 + 2 * args.seed)
    b_words, b = word_vectors(pair.b_train, f"{args.out}/b.vec", args, 2 + 2 * args.seed)
    print(f"{len(a_words):,} A words, {len(b_words):,} B words (seen >= 5 times)")
    config = dict(in_features=args.dim, hidden_features=args.hidden, epochs=args.epochs,
                  epoch_size=args.epoch_size, most_frequent=args.most_frequent,
                  normalize="renorm,center,renorm", seed=args.seed)
    tl.manual_seed(args.seed)
    muse = MUSE(**config).set_embeddings(a, b, a_words, b_words)
    optimizers, start, history = muse.optimizers(), 0, []
    if args.resume and os.path.exists(ckpt_path):
        ck = tl.load(ckpt_path)
        tl.serialization.check_resume_args(ck["args"], vars(args), RESUMABLE)
        muse.load_state_dict(ck["model"])
        for name, opt in optimizers.items():
            opt.load_state_dict(ck["optimizers"][name])
        start, history = int(ck["epoch"]), list(ck["history"])
        print(f"resumed from {ckpt_path} after epoch {start}")
    rounds = max(1, args.epoch_size // 32)
    bar = tqdm(total=args.epochs * rounds, initial=start * rounds,
               disable=not sys.stderr.isatty())

    def after_epoch(epoch, stats):
        history.append({"epoch": epoch + 1, **stats,
                        **{f"csls_{k}": v for k, v in
                           muse.evaluate(reference, args.eval_words, (1,)).items()}})
        tqdm.write(f"epoch {epoch + 1}: D loss {stats['d_loss']:.3f}, W loss "
                   f"{stats['w_loss']:.3f}, criterion {stats['criterion']:.3f}, "
                   f"CSLS p@1 {history[-1]['csls_p@1']:.1%}")
        tl.save({"model": muse.state_dict(), "epoch": epoch + 1, "history": history,
                 "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                 "args": vars(args)}, ckpt_path)
        if epoch + 1 == args.stop_after:
            raise StopIteration

    try:
        muse.fit(start_epoch=start, optimizers=optimizers, refine=False,
                 callback=after_epoch, progress=lambda i, n: bar.update(1))
    except StopIteration:
        return history, None
    bar.close()
    def table(m):
        return {r: m.evaluate(reference, args.eval_words, (1, 5), r) for r in ("nn", "csls")}
    rows = {"adversarial": table(muse)}
    refined = muse.refine()
    rows["adversarial + refinement"] = table(muse)
    upper = MUSE(**config).set_embeddings(a, b, a_words, b_words)
    seed = {w: reference[w] for w in a_words[:args.eval_words] if reference[w] in
            set(b_words)}
    seeded = MUSE(**config).set_embeddings(a, b, a_words, b_words)
    seeded.fit_supervised(dict(list(seed.items())[:args.seed_pairs]))
    rows[f"Procrustes, the {args.seed_pairs} most frequent true pairs"] = table(seeded)
    seeded.refine()
    rows[f"Procrustes, {args.seed_pairs} true pairs + refinement"] = table(seeded)
    upper.fit_supervised(seed)
    rows[f"Procrustes, all {len(seed):,} true pairs (upper bound)"] = table(upper)
    picture(muse, reference, f"{args.out}/alignment.png", {
        "before (W = I)": np.eye(args.dim), "MUSE (adversarial + refinement)":
        muse.weight.data.numpy(), "Procrustes on the true pairs": upper.weight.data.numpy()})
    scored = rows["adversarial"]["csls"]["words"]
    lines = [f"precision@k (%) of A -> B on the {scored:,} most frequent A words whose "
             f"translation is in B's vocabulary", f"{'':48s}" + "".join(
                 f"{h:>7s}" for h in ("NN@1", "NN@5", "CSLS@1", "CSLS@5"))]
    for name, r in rows.items():
        lines.append(f"{name:48s}" + "".join(f"{100 * r[m][k]:7.1f}" for m in ("nn", "csls")
                                             for k in ("p@1", "p@5")))
    lines.append(f"refinement dictionary: {refined['dictionary_size']:,} mutual pairs; "
                 f"criterion {refined['criterion']:.3f} (upper bound {upper.criterion():.3f})")
    print("\n".join(lines))
    open(f"{args.out}/results.txt", "w", encoding="utf-8").write("\n".join(lines) + "\n")
    json.dump(history, open(f"{args.out}/history.json", "w"), indent=1)
    return history, rows


if __name__ == "__main__":
    main()
