"""A character-level hidden Markov model of the King James Bible, fitted by Baum-Welch EM
(seed 000, latent structure; Rabiner 1989), against unigram and bigram baselines.

    python examples/hmm_kjv.py                          # 32 states, 60 EM iterations
    python examples/hmm_kjv.py --states 8 --iters 5 --train-chars 20000   # a smoke run
    python examples/hmm_kjv.py --resume                 # continue OUT/checkpoint.npz

Every 10th chapter is held out. Characters are lower-cased; one sequence per verse.
Prints held-out bits per character of the HMM, the add-one unigram and the add-one bigram,
and each state's top characters; writes loglik.png (EM's training log-likelihood per
iteration, never decreasing), states.txt and checkpoint.npz under --out.
"""
import argparse
import math
import os
import sys

import matplotlib
import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.models import HMM

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="character HMM on the KJV by Baum-Welch",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--states", type=int, default=32, help="hidden states K")
    p.add_argument("--iters", type=int, default=60, help="EM iterations")
    p.add_argument("--train-chars", type=int, default=400000,
                   help="characters of training text (whole verses, from the start)")
    p.add_argument("--test-chars", type=int, default=100000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/hmm_kjv")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def corpus(limit_train, limit_test):
    """(train ids, train lengths, test ids, test lengths, alphabet): verses of every 10th
    chapter (counted over the whole Bible) are the test split."""
    verses = tl.data.load_kjv()
    chapter_ids, split = {}, {"train": [], "test": []}
    for v in verses:
        c = chapter_ids.setdefault((v.book, v.chapter), len(chapter_ids))
        split["test" if c % 10 == 9 else "train"].append(v.text.lower())
    alphabet = sorted(set("".join(split["train"])) | set("".join(split["test"])))
    index = {c: i for i, c in enumerate(alphabet)}
    out = []
    for name, limit in (("train", limit_train), ("test", limit_test)):
        texts, n = [], 0
        for t in split[name]:
            if n + len(t) > limit:
                break
            texts.append(t)
            n += len(t)
        ids = np.array([index[c] for c in "".join(texts)], dtype=np.int64)
        out += [ids, [len(t) for t in texts]]
    return (*out, alphabet)


def ngram_bits(train, test, lengths_tr, lengths_te, V):
    """Held-out bits per character of add-one unigram and bigram (first char of a verse
    scored by the unigram)."""
    uni = np.bincount(train, minlength=V) + 1.0
    log_uni = np.log2(uni / uni.sum())
    starts_tr = np.cumsum([0] + lengths_tr[:-1])
    keep = np.ones(len(train) - 1, bool)
    keep[starts_tr[1:] - 1] = False  # no bigram across verse boundaries
    big = np.ones((V, V))
    np.add.at(big, (train[:-1][keep], train[1:][keep]), 1.0)
    log_big = np.log2(big / big.sum(1, keepdims=True))
    first = np.zeros(len(test), bool)
    first[np.cumsum([0] + lengths_te[:-1])] = True
    prev = np.roll(test, 1)
    bits_big = np.where(first, log_uni[test], log_big[prev, test])
    return -log_uni[test].mean(), -bits_big.mean()


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    train, len_tr, test, len_te, alphabet = corpus(args.train_chars, args.test_chars)
    V = len(alphabet)
    model = HMM(latent_features=args.states, in_features=V,
                generator=tl.Generator(args.seed)).double()  # float64: EM stays monotone
    ckpt, history, start = os.path.join(args.out, "checkpoint.npz"), [], 0
    if args.resume and os.path.exists(ckpt):
        ck = tl.load(ckpt)
        tl.serialization.check_resume_args(ck["args"], vars(args), ("iters",))
        model.load_state_dict(ck["model"])
        history, start = list(ck["history"]), int(ck["iteration"])
        print(f"resumed from {ckpt} at iteration {start}")
    bar = tqdm(range(start, args.iters), initial=start, total=args.iters,
               disable=not sys.stderr.isatty())  # a bar on a terminal only
    for it in bar:
        model.fit(train, len_tr, n_iter=1)  # one E-step (records log p) and one M-step
        history.append(model.log_likelihoods_[0] / (len(train) * math.log(2)))
        bar.set_postfix(train_bits=f"{-history[-1]:.4f}")
        tl.save({"model": model.state_dict(), "history": history, "iteration": it + 1,
                 "args": vars(args)}, ckpt)
    hmm_bits = model.bits_per_symbol(test, len_te)
    uni_bits, big_bits = ngram_bits(train, test, len_tr, len_te, V)
    print(f"train {len(train)} chars / test {len(test)} chars, {V} symbols")
    print(f"held-out bits per character: HMM({args.states}) {hmm_bits:.4f}  "
          f"unigram {uni_bits:.4f}  bigram {big_bits:.4f}")
    emis = np.exp(model._params64()[2][0])  # (K, V)
    occupancy = model.forward_backward(test, len_te)[1].mean(0)  # (K,) share of test chars
    lines = []
    for k in np.argsort(-occupancy):
        top = np.argsort(-emis[k])[:8]
        chars = " ".join(f"{alphabet[v]!r}:{emis[k, v]:.2f}" for v in top)
        lines.append(f"state {k:2d} ({occupancy[k]:.3f} of chars)  {chars}")
    print("\n".join(lines))
    with open(os.path.join(args.out, "states.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    plt.figure(figsize=(5, 3.2))
    plt.plot(np.arange(1, len(history) + 1), -np.array(history), marker=".")
    plt.axhline(uni_bits, color="gray", ls="--", label="unigram (held out)")
    plt.axhline(hmm_bits, color="C1", ls=":", label="HMM (held out)")
    plt.xlabel("EM iteration")
    plt.ylabel("bits per character (train)")
    plt.legend()
    plt.tight_layout()
    plt.savefig(os.path.join(args.out, "loglik.png"), dpi=100)
    plt.close()
    return {"hmm": hmm_bits, "unigram": uni_bits, "bigram": big_bits, "history": history}


if __name__ == "__main__":
    main()
