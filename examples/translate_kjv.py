"""Translation between the KJV and its cipher language B (tl.data.cipher_pair), by BLEU on
held-out test verses in both directions:

    --model unsupervised   Lample et al. 2018: monolingual A and B only; denoising + iterative
                           back-translation, iteration 0 by word-by-word translation through
                           --dictionary (a "word<TAB>word" file, e.g. MUSE's; "cipher" = the
                           hidden true dictionary, for development only)
    --model supervised     the same architecture on the A half with its exact translations
    --model dual           JointDual (He et al. 2016): --parallel pairs + monolingual loops;
                           --lambda-dual 0 is its supervised-only baseline

    python examples/translate_kjv.py --model unsupervised --dictionary runs/muse/dict.tsv
    python examples/translate_kjv.py --steps 4 --eval-every 2 --test-verses 20   # smoke
    python examples/translate_kjv.py --resume

Writes samples.txt, bleu.png and checkpoint.npz under --out (runs/translate_kjv/<model>).
"""
import argparse
import copy
import os
import sys

import matplotlib
import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.models import JointDual, UnsupervisedTranslation
from tinylatent.models.translation import JointVocabulary, WordByWord, corpus_bleu

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", choices=("unsupervised", "supervised", "dual"),
                   default="unsupervised")
    p.add_argument("--dictionary", default="cipher", help="A->B word file, or 'cipher'")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--iteration-steps", type=int, default=250,
                   help="back-translation iteration length (frozen translator)")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--max-words", type=int, default=20)
    p.add_argument("--vocab", type=int, default=2000, help="words per language")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--parallel", type=int, default=500, help="pairs for --model dual")
    p.add_argument("--lambda-dual", type=float, default=0.5)
    p.add_argument("--test-verses", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def read_dictionary(name, cipher):
    if name == "cipher":
        return dict(cipher.dictionary)
    with open(name, encoding="utf-8") as f:
        return dict(line.rstrip("\n").split("\t")[:2] for line in f if "\t" in line)


def data(args):
    pair = tl.data.cipher_pair(seed=0)
    L = args.max_words
    a = [s for s in pair.a_train if len(s) <= L]
    b = [s for s in pair.b_train if len(s) <= L]
    vocab = JointVocabulary([a, b], args.vocab)
    test = [t for t in pair.test if len(t[0]) <= L][:args.test_verses]
    xa, xb = vocab.encode(a, 0, L), vocab.encode(b, 1, L)
    ya = vocab.encode([pair.cipher.encipher(s) for s in a], 1, L)  # a's exact translations
    return pair, vocab, xa, xb, ya, test


def main(argv=None):
    args = parse_args(argv)
    out = args.out or os.path.join("runs", "translate_kjv", args.model)
    os.makedirs(out, exist_ok=True)
    pair, vocab, xa, xb, ya, test = data(args)
    tl.manual_seed(args.seed)
    dual = args.model == "dual"
    model = (JointDual(in_features=len(vocab), hidden_features=args.hidden,
                       lambda_dual=args.lambda_dual) if dual else
             UnsupervisedTranslation(in_features=len(vocab), hidden_features=args.hidden))
    opt = tl.optim.Adam(model.parameters(), lr=args.lr)
    wbw = WordByWord(read_dictionary(args.dictionary, pair.cipher), vocab)
    frozen = None                            # the previous iteration's model (sec. 2.4)
    ckpt, step, hist = os.path.join(out, "checkpoint.npz"), 0, []
    if args.resume and os.path.exists(ckpt):
        ck = tl.load(ckpt)
        tl.serialization.check_resume_args(ck["args"], vars(args), ("steps", "resume"))
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, hist = int(ck["step"]), [tuple(h) for h in ck["history"]]
        if "frozen" in ck:
            frozen = copy.deepcopy(model)
            frozen.load_state_dict(ck["frozen"])

    def evaluate():
        model.eval()
        r = [corpus_bleu(lambda x: model.translate(x, s, 1 - s), vocab, test, s)
             for s in (0, 1)]
        model.train()
        return r

    base = [corpus_bleu(lambda x: wbw(x), vocab, test, s)[0] for s in (0, 1)]
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
            (bleu_ab, hyp_ab), (bleu_ba, hyp_ba) = evaluate()
            hist.append((step + 1, float(m["loss"].item()), bleu_ab, bleu_ba))
            print(f"step {step + 1}: BLEU A->B {bleu_ab:.2f}, B->A {bleu_ba:.2f} "
                  f"(word-by-word {base[0]:.2f}, {base[1]:.2f})", flush=True)
            state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step + 1,
                     "history": hist, "args": vars(args)}
            if frozen is not None:
                state["frozen"] = frozen.state_dict()
            tl.save(state, ckpt)
            with open(os.path.join(out, "samples.txt"), "w") as f:
                for k, (a, b) in enumerate(test[:10]):
                    f.write(f"A    {' '.join(a)}\nB    {' '.join(b)}\nA->B "
                            f"{' '.join(hyp_ab[k])}\nB->A {' '.join(hyp_ba[k])}\n\n")
    h = np.array(hist).reshape(-1, 4)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for col, name, c in ((2, "A->B", "C0"), (3, "B->A", "C1")):
        ax.plot(h[:, 0], h[:, col], c, label=f"{args.model} {name}")
        ax.axhline(base[col - 2], color=c, ls=":", label=f"word-by-word {name}")
    ax.set_xlabel("step")
    ax.set_ylabel("test BLEU")
    ax.legend(fontsize=7)
    plt.tight_layout()
    plt.savefig(os.path.join(out, "bleu.png"), dpi=100)
    plt.close()
    return {"history": hist, "word_by_word": base}


if __name__ == "__main__":
    main()
