"""Translation between the KJV (A) and its cipher language B (tl.data.cipher_pair): BLEU
on held-out test verses both ways, next to word-by-word translation through --dictionary.

    --model unsupervised  Lample et al. 2018 on monolingual A and B: denoising + iterative
                          back-translation, iteration 0 word by word through --dictionary
                          ("muse": induced by adversarial MUSE and cached; "similarity":
                          MUSE's init="similarity" (Artetxe et al. 2018), cached; "cipher":
                          the hidden truth, for development only; or a word<TAB>word file);
                          --lambda-adv > 0 adds sec. 2.5's latent discriminator
    --model supervised    the same architecture on the A half and its exact translations
    --model dual          JointDual (He et al. 2016): --parallel pairs + monolingual loops
                          (--lambda-dual 0: its supervised-only baseline; --init: warm start)

    python examples/translate_kjv.py --model unsupervised --dictionary muse
    python examples/translate_kjv.py --steps 4 --eval-every 2 --test-verses 20   # smoke
Writes samples.txt, bleu.png, checkpoint.npz (--resume) under runs/translate_kjv/<model>.
"""
import argparse
import copy
import functools
import os
import sys

import matplotlib
import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.models import JointDual, UnsupervisedTranslation
from tinylatent.models.translation import (JointVocabulary, WordByWord,
                                           bilingual_dictionary, corpus_bleu)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--model", default="unsupervised",
                   choices=("unsupervised", "supervised", "dual"))
    p.add_argument("--dictionary", default="muse",
                   help="A->B word file, 'muse', 'similarity' or 'cipher'")
    for name, default in (("steps", 1500), ("iteration-steps", 250), ("eval-every", 250),
                          ("batch-size", 32), ("max-words", 20), ("vocab", 1000),
                          ("hidden", 128), ("parallel", 500), ("test-verses", 200),
                          ("seed", 0)):             # vocab: words per language
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--lambda-dual", type=float, default=0.5)
    p.add_argument("--lambda-adv", type=float, default=0.0)
    p.add_argument("--out", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--init", default=None, help="warm start: a checkpoint's model weights")
    return p.parse_args(argv)


@functools.lru_cache(maxsize=2)              # the resume test calls main three times
def data(L, size, test_verses):
    pair = tl.data.cipher_pair(seed=0)
    a = [s for s in pair.a_train if len(s) <= L]
    b = [s for s in pair.b_train if len(s) <= L]
    vocab = JointVocabulary([a, b], size)
    test = [t for t in pair.test if len(t[0]) <= L][:test_verses]
    xa, xb = vocab.encode(a, 0, L), vocab.encode(b, 1, L)
    ya = vocab.encode([pair.cipher.encipher(s) for s in a], 1, L)  # a's exact translations
    return pair, vocab, xa, xb, ya, test


def main(argv=None):
    args = parse_args(argv)
    out = args.out or os.path.join("runs", "translate_kjv", args.model)
    os.makedirs(out, exist_ok=True)
    pair, vocab, xa, xb, ya, test = data(args.max_words, args.vocab, args.test_verses)
    tl.manual_seed(args.seed)
    model = (JointDual(in_features=len(vocab), hidden_features=args.hidden,
                       lambda_dual=args.lambda_dual) if args.model == "dual" else
             UnsupervisedTranslation(in_features=len(vocab), hidden_features=args.hidden,
                                     lambda_adv=args.lambda_adv))
    adv = args.model == "unsupervised" and args.lambda_adv > 0
    opt = tl.optim.Adam(model.translation_parameters() if adv else model.parameters(),
                        lr=args.lr)   # D's parameters have their own optimizer (the paper's)
    opt_d = tl.optim.RMSprop(model.discriminator.parameters(), lr=5e-4) if adv else None
    cache = os.path.join(os.path.dirname(os.path.abspath(out)),
                         f"{args.dictionary}_dictionary.tsv")     # muse / similarity
    wbw = WordByWord(bilingual_dictionary(args.dictionary, pair, cache), vocab)
    frozen = None                            # the previous iteration's model (sec. 2.4)
    ckpt, step, hist = os.path.join(out, "checkpoint.npz"), 0, []
    if args.init:                            # He et al. warm-start from supervised models
        model.load_state_dict(tl.load(args.init)["model"])
    if args.resume and os.path.exists(ckpt):
        ck = tl.load(ckpt)
        tl.serialization.check_resume_args(ck["args"], vars(args), ("steps", "resume"))
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        if adv:
            opt_d.load_state_dict(ck["opt_d"])
        step, hist = int(ck["step"]), [tuple(h) for h in ck["history"]]
        if "frozen" in ck:                   # mid-iteration: the same frozen translator
            (frozen := copy.deepcopy(model)).load_state_dict(ck["frozen"])

    def evaluate(translate):                 # [(BLEU-4, BLEU-1, hypotheses)] A->B, B->A
        model.eval()
        r = [corpus_bleu(lambda x: translate(x, s), vocab, test, s) for s in (0, 1)]
        model.train()
        return [(b, tl.eval.bleu(h, [t[1 - s] for t in test], 1), h) for s, (b, h) in
                enumerate(r)]

    base = evaluate(lambda x, s: wbw(x))
    bar = tqdm(range(step, args.steps), initial=step, total=args.steps,
               disable=not sys.stderr.isatty())
    for step in bar:
        rng = np.random.default_rng((args.seed, step))      # batch and noise per step
        g = tl.Generator(args.seed * 100003 + step)
        if args.model == "unsupervised":
            if step % args.iteration_steps == 0 and step > 0:
                frozen = copy.deepcopy(model)               # M^(t) for iteration t + 1
            translator = frozen.translate if frozen is not None else wbw
            ia, ib = (rng.integers(0, len(x), args.batch_size) for x in (xa, xb))
            if adv:                                         # eq. 3: one step of D first
                d_loss, _ = model.discriminator_loss((tl.tensor(xa[ia]), tl.tensor(xb[ib])))
                opt_d.zero_grad(), d_loss.backward(), opt_d.step()
            loss, m = model.loss((tl.tensor(xa[ia]), tl.tensor(xb[ib])),
                                 translator=translator, generator=g)
        elif args.model == "supervised":
            i = rng.integers(0, len(xa), args.batch_size)
            loss, m = model.supervised_loss((tl.tensor(xa[i]), tl.tensor(ya[i])))
        else:                                   # pairs: the first --parallel A sentences
            i = rng.integers(0, args.parallel, args.batch_size)
            ia = rng.integers(args.parallel, len(xa), args.batch_size)
            ib = rng.integers(0, len(xb), args.batch_size)
            loss, m = model.loss((tl.tensor(xa[i]), tl.tensor(ya[i]), tl.tensor(xa[ia]),
                                  tl.tensor(xb[ib])), generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{float(m['loss'].item()):.3f}")
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            r = evaluate(lambda x, s: model.translate(x, s, 1 - s))
            hist.append((step + 1, float(m["loss"].item()), r[0][0], r[1][0], r[0][1], r[1][1]))
            w = (base[0][0], base[1][0], base[0][1], base[1][1])
            print(f"step {step + 1}: BLEU A->B, B->A %.2f, %.2f; BLEU-1 %.2f, %.2f "
                  "(word-by-word %.2f, %.2f; BLEU-1 %.2f, %.2f)" % (*hist[-1][2:], *w), flush=True)
            state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step + 1,
                     "history": hist, "args": vars(args),
                     **({"opt_d": opt_d.state_dict()} if adv else {})}
            tl.save({**state, "frozen": frozen.state_dict()} if frozen is not None else state,
                    ckpt)
            with open(os.path.join(out, "samples.txt"), "w") as f:
                f.writelines("\n".join(f"{n:5}{' '.join(t)}" for n, t in zip(
                    ("A", "B", "A->B", "B->A"), (a, b, r[0][2][k], r[1][2][k]))) + "\n\n"
                    for k, (a, b) in enumerate(test[:10]))
    h = np.array(hist).reshape(-1, 6)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for col, name, c in ((2, "A->B", "C0"), (3, "B->A", "C1")):
        ax.plot(h[:, 0], h[:, col], c, label=f"{args.model} {name}")
        ax.axhline(base[col - 2][0], color=c, ls=":", label=f"word-by-word {name}")
    ax.set(xlabel="step", ylabel="test BLEU")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "bleu.png"), dpi=100)
    plt.close(fig)
    return {"history": hist, "word_by_word": [b[:2] for b in base]}


if __name__ == "__main__":
    main()
