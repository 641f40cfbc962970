"""word2vec (skip-gram or CBOW, negative sampling) on the King James Bible.

    python examples/word2vec_kjv.py                        # skip-gram, D=100, 5 epochs
    python examples/word2vec_kjv.py --architecture cbow --gensim   # + gensim side by side
    python examples/word2vec_kjv.py ... --resume           # continue OUT/checkpoint.npz

Mikolov et al. 2013a/b as word2vec.c / gensim run it: 5 noise words from unigram^0.75,
subsampling threshold 1e-3, windows shrunk at random from 5, lr 0.025 decaying linearly to
1e-4, sparse SGD in a serial Numba kernel. Writes to runs/word2vec_kjv/<architecture>/:
neighbours.txt (nearest neighbours), analogies.txt (the hand-built KJV analogy set,
tinylatent/data/embedded/kjv_analogies.txt), projection.png (2-D PCA of chosen words) and
checkpoint.npz (after every epoch). --gensim trains gensim with the same settings (if
installed) and reports neighbour overlap@10 and both analogy scores.
"""
import argparse
import os
import sys

import matplotlib
import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.models import PCA, Word2Vec
from tinylatent.eval.word_vectors import analogy_accuracy, load_analogies, neighbour_overlap
from tinylatent.models.word2vec import word_sentences

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESUMABLE = ("out", "gensim", "stop_after")
QUERIES = ["god", "king", "gold", "jerusalem", "sword", "water", "son", "love", "egypt",
           "sheep"]
PICTURE = [("father", "mother"), ("son", "daughter"), ("king", "queen"), ("man", "woman"),
           ("brother", "sister"), ("husband", "wife"), ("sons", "daughters"),
           ("men", "women"), ("he", "she"), ("manservant", "maidservant")]   # male, female


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="word2vec on the KJV (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--architecture", choices=["skipgram", "cbow"], default="skipgram")
    p.add_argument("--dim", type=int, default=100, help="vector size D")
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--negative", type=int, default=5, help="noise words per positive")
    p.add_argument("--sample", type=float, default=1e-3, help="subsampling threshold")
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.025)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--verses", type=int, default=None, help="use only the first N verses")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--gensim", action="store_true", help="compare with gensim")
    p.add_argument("--out", default=None, help="default runs/word2vec_kjv/<architecture>")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)   # the resume test
    return p.parse_args(argv)


def save_outputs(model, args, questions):
    open(f"{args.out}/neighbours.txt", "w", encoding="utf-8").write("".join(
        f"{word}: " + ", ".join(f"{w} ({s:.2f})" for w, s in model.most_similar(word, 10))
        + "\n" for word in QUERIES if word in model.stoi))
    scores = {name: model.analogy_accuracy(q) for name, q in questions.items()}
    scores["all"] = model.analogy_accuracy([q for v in questions.values() for q in v])
    with open(f"{args.out}/analogies.txt", "w", encoding="utf-8") as f:
        for name, (acc, n) in scores.items():
            f.write(f"{name:14s} {acc:6.1%} of {n} questions\n")
        for a, b, c, d in [("man", "king", "woman", "queen"), ("son", "sons", "daughter",
                           "daughters"), ("go", "went", "come", "came")]:
            if all(w in model.stoi for w in (a, b, c)):
                f.write(f"{a} : {b} :: {c} : {model.analogy(a, b, c, 3)}  (expected {d})\n")
    pairs = [p for p in PICTURE if all(w in model.stoi for w in p)]
    if len(pairs) >= 2:
        words = [w for p in pairs for w in p]
        v = model.vectors()[[model.stoi[w] for w in words]]
        z = PCA(2).fit(v).transform(v).numpy()
        fig, ax = plt.subplots(figsize=(6, 5))
        for k in range(len(pairs)):
            ax.plot(z[2 * k:2 * k + 2, 0], z[2 * k:2 * k + 2, 1], "-", color="gray", lw=0.8)
        ax.scatter(z[:, 0], z[:, 1], c=["C0", "C3"] * len(pairs), s=12)
        for w, (x, y) in zip(words, z):
            ax.annotate(w, (x, y), fontsize=8, xytext=(2, 2), textcoords="offset points")
        ax.set(title=f"word2vec {args.architecture} on the KJV: 2-D PCA of unit vectors",
               xticks=[], yticks=[])
        fig.savefig(f"{args.out}/projection.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
    return scores


def compare_with_gensim(model, sentences, args, questions):
    try:
        from gensim.models import Word2Vec as GensimWord2Vec
    except ImportError:
        return print("--gensim: gensim is not installed (pip install gensim); skipped")
    g = GensimWord2Vec(sentences, vector_size=args.dim, window=args.window,
                       negative=args.negative, sample=args.sample, min_count=args.min_count,
                       alpha=args.lr, min_alpha=1e-4, epochs=args.epochs, hs=0, workers=1,
                       sg=int(args.architecture == "skipgram"), seed=args.seed)
    every = [q for v in questions.values() for q in v]
    overlap = neighbour_overlap(model.vectors(), model.stoi, g.wv.vectors, g.wv.key_to_index,
                                model.itos[:1000], k=10)
    theirs = analogy_accuracy(g.wv.vectors, g.wv.key_to_index, every)[0]
    line = (f"gensim side by side: neighbour overlap@10 over the 1,000 most frequent words "
            f"{overlap:.3f}; analogies tinylatent {model.analogy_accuracy(every)[0]:.1%} vs "
            f"gensim {theirs:.1%}")
    print(line)
    open(f"{args.out}/gensim.txt", "w", encoding="utf-8").write(line + "\n")
    return overlap, theirs


def main(argv=None):
    args = parse_args(argv)
    args.out = args.out or f"runs/word2vec_kjv/{args.architecture}"
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = f"{args.out}/checkpoint.npz"
    verses = tl.data.load_kjv()[:args.verses]
    sentences = word_sentences(v.text for v in verses)
    tl.manual_seed(args.seed)
    model = Word2Vec.from_sentences(
        sentences, min_count=args.min_count, latent_features=args.dim, window=args.window,
        negative=args.negative, sample=args.sample, lr=args.lr, epochs=args.epochs,
        architecture=args.architecture)
    model.seed, start, history = args.seed, 0, []
    if args.resume and os.path.exists(ckpt_path):
        ck = tl.load(ckpt_path)
        tl.serialization.check_resume_args(ck["args"], vars(args), RESUMABLE)
        model.load_state_dict(ck["model"])
        model.seed, start, history = int(ck["seed"]), int(ck["epoch"]), list(ck["history"])
        print(f"resumed from {ckpt_path} after epoch {start}")
    print(f"{len(model.itos):,} words (min count {args.min_count}); "
          f"{sum(map(len, sentences)):,} running words in {len(sentences):,} verses")
    bar = tqdm(total=args.epochs, initial=start, disable=not sys.stderr.isatty())

    def after_epoch(epoch, stats):
        history.append({"epoch": epoch + 1, **stats})
        bar.update(1)
        tqdm.write(f"epoch {epoch + 1}: loss {stats['loss']:.3f} per word, "
                   f"{stats['words_per_second']:,.0f} words/s")
        tl.save({"model": model.state_dict(), "seed": model.seed, "epoch": epoch + 1,
                 "history": history, "args": vars(args)}, ckpt_path)
        if epoch + 1 == args.stop_after:
            raise StopIteration

    try:
        model.fit(sentences, callback=after_epoch, start_epoch=start, compute_loss=True)
    except StopIteration:
        return history, None
    bar.close()
    questions = load_analogies()
    scores = save_outputs(model, args, questions)
    print(open(f"{args.out}/neighbours.txt", encoding="utf-8").read().rstrip())
    print(f"analogies: {scores['all'][0]:.1%} of {scores['all'][1]} questions; outputs in "
          f"{args.out}/")
    if args.gensim:
        compare_with_gensim(model, sentences, args, questions)
    return history, scores


if __name__ == "__main__":
    main()
