"""Latent Dirichlet allocation on the King James Bible, chapters as documents (seed 000;
Blei, Ng & Jordan 2003), by batch variational EM; scikit-learn's LDA with the same K, priors
and iterations as the baseline when scikit-learn is installed.

    python examples/lda_kjv.py                        # 20 topics, 20 EM passes
    python examples/lda_kjv.py --topics 5 --iters 2 --docs 200     # a smoke run
    python examples/lda_kjv.py --resume               # continue OUT/checkpoint.npz

Every 10th chapter is held out. Prints held-out perplexity (exp(-ELBO / words)), the top
words per topic (also topics.txt) and writes book_topics.png (mean topic proportions of each
book's chapters, books in canonical order) and bound.png under --out.
"""
import argparse
import os
import sys

import matplotlib
import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.models import LDA

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="LDA topics of KJV chapters",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--topics", type=int, default=20, help="K")
    p.add_argument("--iters", type=int, default=20, help="EM passes over the corpus")
    p.add_argument("--alpha", type=float, default=None, help="doc-topic prior (1/K if unset)")
    p.add_argument("--eta", type=float, default=None, help="topic-word prior (1/K if unset)")
    p.add_argument("--docs", type=int, default=None, help="use only the first DOCS chapters")
    p.add_argument("--no-sklearn", action="store_true", help="skip the scikit-learn baseline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/lda_kjv")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    counts, _, meta = tl.data.load_kjv_bow()
    X = counts.numpy().astype(np.float64)[:args.docs]  # (D, V) chapter word counts
    book = np.asarray(meta["book"])[:args.docs]
    test = np.arange(len(X)) % 10 == 9
    train, held = X[~test], X[test]
    lda = LDA(args.topics, doc_topic_prior=args.alpha, topic_word_prior=args.eta,
              max_iter=args.iters, seed=args.seed)
    ckpt, start = os.path.join(args.out, "checkpoint.npz"), 0
    if args.resume and os.path.exists(ckpt):
        ck = tl.load(ckpt)
        tl.serialization.check_resume_args(ck["args"], vars(args), ("iters",))
        lda.components_, lda.bounds_ = np.asarray(ck["components"]), list(ck["bounds"])
        lda._rng.set_state(("MT19937", np.asarray(ck["rng_keys"]), *ck["rng_rest"]))
        start = int(ck["iteration"])
        print(f"resumed from {ckpt} at pass {start}")
    else:
        lda.components_ = lda._rng.gamma(100.0, 0.01, (args.topics, X.shape[1]))  # as fit()
        lda.bounds_ = []
    bar = tqdm(range(start, args.iters), initial=start, total=args.iters,
               disable=not sys.stderr.isatty())  # a bar on a terminal only
    for it in bar:
        bound = lda.em_step(train)
        bar.set_postfix(elbo_per_word=f"{bound / train.sum():.4f}")
        _, keys, *rest = lda._rng.get_state()
        tl.save({"components": lda.components_, "bounds": lda.bounds_, "iteration": it + 1,
                 "rng_keys": keys, "rng_rest": list(rest), "args": vars(args)}, ckpt)
    result = {"perplexity": lda.perplexity(held), "bounds": list(lda.bounds_)}
    print(f"{len(train)} training / {len(held)} held-out chapters, {X.shape[1]} words, "
          f"K={args.topics}: held-out perplexity {result['perplexity']:.1f}")
    if not args.no_sklearn:
        try:
            from sklearn.decomposition import LatentDirichletAllocation
        except ImportError:
            print("scikit-learn not installed: no baseline")
        else:
            ref = LatentDirichletAllocation(args.topics, doc_topic_prior=args.alpha,
                                            topic_word_prior=args.eta, max_iter=args.iters,
                                            learning_method="batch", random_state=args.seed + 1)
            result["sklearn"] = ref.fit(train).perplexity(held)
            print(f"scikit-learn (same K, priors, passes; seed {args.seed + 1}): held-out "
                  f"perplexity {result['sklearn']:.1f} (ours / sklearn = "
                  f"{result['perplexity'] / result['sklearn']:.3f})")
    lines = [f"topic {k:2d}: " + " ".join(words)
             for k, words in enumerate(lda.top_words(list(meta["vocab"]), 10))]
    print("\n".join(lines))
    with open(os.path.join(args.out, "topics.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    theta = lda.transform(X)  # (D, K) topic proportions of every chapter
    books = np.unique(book)
    per_book = np.stack([theta[book == b].mean(0) for b in books])  # (books, K)
    names = [str(meta["book_names"][b]) for b in books]
    fig, ax = plt.subplots(figsize=(0.35 * args.topics + 2.5, 0.16 * len(books) + 1.2))
    ax.imshow(per_book, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(books)), names, fontsize=6)
    ax.set_xticks(range(args.topics), [" ".join(w[:2]) for w in
                                      lda.top_words(list(meta["vocab"]), 2)],
                  rotation=90, fontsize=6)
    ax.set_title("mean topic proportion per book (x: topic's top 2 words)", fontsize=8)
    plt.tight_layout()
    plt.savefig(os.path.join(args.out, "book_topics.png"), dpi=110)
    plt.close()
    plt.figure(figsize=(5, 3.2))
    plt.plot(np.arange(1, len(lda.bounds_) + 1), np.array(lda.bounds_) / train.sum(), ".-")
    plt.xlabel("EM pass")
    plt.ylabel("training ELBO per word (nats)")
    plt.tight_layout()
    plt.savefig(os.path.join(args.out, "bound.png"), dpi=100)
    plt.close()
    return result


if __name__ == "__main__":
    main()
