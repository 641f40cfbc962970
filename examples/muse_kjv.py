"""MUSE word translation without parallel data (Conneau et al. 2018) on the cipher-KJV pair.

    python examples/muse_kjv.py                 # word2vec x 2, adversarial, refinement
    python examples/muse_kjv.py --resume        # continue from OUT/checkpoint.npz

Language A: half of the KJV's chapters; B: the other half under a hidden word cipher
(tl.data.cipher_pair). Two word2vec spaces (OUT/a.vec, b.vec, reused when present) are
aligned by MUSE; translations of the most frequent A words are scored against the cipher's
dictionary (NN and CSLS), next to Procrustes on a few true pairs (+ refinement) and on all
of them (the upper bound), and MUSE with init="similarity" (Artetxe et al. 2018). Writes
results.txt, history.json, alignment.png (2-D PCA before / after) and checkpoint.npz.
"""
import argparse
import json
import os
import sys

import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.eval import plot_alignment
from tinylatent.models import MUSE, Word2Vec

RESUMABLE = ("out", "epochs", "stop_after")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="MUSE on the cipher-KJV pair (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--dim", type=int, default=100, help="word2vec vector size")
    p.add_argument("--w2v-epochs", type=int, default=15)
    p.add_argument("--verses", type=int, default=None, help="use only the first N verses")
    p.add_argument("--epochs", type=int, default=5, help="adversarial epochs")
    p.add_argument("--epoch-size", type=int, default=250000, help="words per epoch")
    p.add_argument("--hidden", type=int, default=256, help="discriminator width")
    p.add_argument("--most-frequent", type=int, default=2000, help="words D sees")
    p.add_argument("--eval-words", type=int, default=5000, help="most frequent A words")
    p.add_argument("--interval", type=int, default=50, help="init=similarity: stall length")
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
    in_b, k = set(b_words), args.seed_pairs
    seed = {w: reference[w] for w in a_words[:args.eval_words] if reference[w] in in_b}
    few, upper = (MUSE(**config).set_embeddings(a, b, a_words, b_words) for _ in range(2))
    few.fit_supervised(dict(list(seed.items())[:k]))
    upper.fit_supervised(seed)
    similarity = MUSE(**config, init="similarity", stochastic_interval=args.interval)
    similarity.set_embeddings(a, b, a_words, b_words)
    similarity.fit(refine=False)                   # Artetxe et al. 2018, no dictionary
    rows = {}
    for name, model, refine in (
            ("adversarial", muse, False), ("adversarial + refinement", muse, True),
            ("similarity init + self-learning", similarity, False),
            ("similarity init + self-learning + refinement", similarity, True),
            (f"Procrustes, the {k} most frequent true pairs", few, False),
            (f"Procrustes, {k} true pairs + refinement", few, True),
            (f"Procrustes, all {len(seed):,} true pairs (upper bound)", upper, False)):
        if refine:
            model.refine()
        rows[name] = {r: model.evaluate(reference, args.eval_words, (1, 5), r)
                      for r in ("nn", "csls")}
        rows[name]["criterion"] = model.criterion()
    t_index = {w: j for j, w in enumerate(b_words)}
    shown = [(i, t_index[reference[w]]) for i, w in enumerate(a_words[:300])
             if w.isalpha() and t_index.get(reference[w], 300) < 300][:12]
    plot_alignment(f"{args.out}/alignment.png", muse.source, muse.target, {
        "before (W = I)": np.eye(args.dim), "MUSE (adversarial + refinement)":
        muse.weight.data.numpy(), "similarity init (+ refinement)":
        similarity.weight.data.numpy(), "Procrustes on the true pairs":
        upper.weight.data.numpy()},
        a_words, b_words, shown)
    lines = [f"precision@k (%) of A -> B on the {rows[name]['nn']['words']:,} most frequent A "
             "words whose translation is in B's vocabulary; the unsupervised criterion",
             f"{'':50s}" + "".join(f"{h:>7s}" for h in ("NN@1", "NN@5", "CSLS@1", "CSLS@5",
                                                      "crit."))]
    for name, r in rows.items():
        lines.append(f"{name:50s}" + "".join(f"{100 * r[m][p]:7.1f}" for m in ("nn", "csls")
                                             for p in ("p@1", "p@5"))
                     + f"{r['criterion']:7.3f}")
    print("\n".join(lines))
    open(f"{args.out}/results.txt", "w", encoding="utf-8").write("\n".join(lines) + "\n")
    json.dump(history, open(f"{args.out}/history.json", "w"), indent=1)
    return history, rows


if __name__ == "__main__":
    main()
