"""A sentence VAE (Bowman et al. 2016) on KJV verses against an LSTM language model of the
same size: KL annealing, word dropout, free bits or BN-VAE against posterior collapse, test
-ELBO and importance-weighted NLL vs the LM's NLL in nats per sentence, and homotopies
(greedy decodings between two verses' codes).

    python examples/text_vae_kjv.py --bn-gamma 0.4       # 2000 steps each; the README row
    python examples/text_vae_kjv.py --steps 20 --train-verses 500 --test-verses 100  # smoke
    python examples/text_vae_kjv.py --resume             # continue OUT/checkpoint.npz

Verses of <= --max-words words, lower-cased, the --vocab most frequent words (+ <unk>);
every 10th chapter is the test split. Writes homotopies.txt and curves.png under --out.
"""
import argparse
import functools
import os
import sys

import matplotlib
import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.data.text import kjv_chapter_split, pad_sequences
from tinylatent.data.tokenizers import WordTokenizer
from tinylatent.models import LSTMLanguageModel, TextVAE
from tinylatent.models.language_model import token_log_prob, with_bos
from tinylatent.models.text_vae import kl_anneal_weight

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# TextVAEConfig's ids: pad 0, bos 1, eos 2, unk 3. WordTokenizer puts <unk> first (ids
# <unk> 0, <pad> 1, <bos> 2, <eos> 3), so its <unk> is moved to 3: an out-of-vocabulary word
# is a token like any other, never the padding that the losses mask out.
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
UNK = 3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="sentence VAE on KJV verses",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=2000, help="Adam steps per model")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--vocab", type=int, default=2000)
    p.add_argument("--max-words", type=int, default=20)
    p.add_argument("--train-verses", type=int, default=20000)
    p.add_argument("--test-verses", type=int, default=1000)
    p.add_argument("--word-dropout", type=float, default=0.3)
    p.add_argument("--kl-warmup", type=int, default=1000, help="steps of linear KL annealing")
    p.add_argument("--latent", type=int, default=32)
    p.add_argument("--free-bits", type=float, default=0.0,
                   help="nats per latent dimension the KL is not pushed below (0: off)")
    p.add_argument("--bn-gamma", type=float, default=0.0,
                   help="BN-VAE (Zhu et al. 2020): fixed scale of the batch-normalized mu; "
                        "the KL then stays >= latent * gamma^2 / 2 (0: off)")
    p.add_argument("--iw-samples", type=int, default=50,
                   help="k of the importance-weighted test NLL (Burda et al. 2016)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/text_vae_kjv")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


@functools.lru_cache(maxsize=2)  # the smoke test calls main three times
def data(vocab, max_words, train_verses, test_verses):
    train_chapters, test_chapters = kjv_chapter_split(tl.data.load_kjv())  # every 10th: test
    split = {"train": [v.text.lower() for c in train_chapters for v in c],
             "test": [v.text.lower() for c in test_chapters for v in c]}
    counts = WordTokenizer.fit(split["train"], lower=True)  # words by decreasing count
    tok = WordTokenizer([w for w in counts.itos if w != "<unk>"][:vocab], SPECIALS, lower=True)
    out = []
    for name, limit in (("train", train_verses), ("test", test_verses)):
        seqs = [[UNK if i == 0 else i for i in tok.encode(t)] + [2]  # <unk> -> 3, + eos
                for t in split[name]]
        seqs = [s for s in seqs if len(s) <= max_words + 1][:limit]
        out.append(pad_sequences(seqs, max_words + 1, pad_id=0)[0])  # (N, T)
    return tok, out[0], out[1]


def lm_sentence_nll(lm, x):
    """-log p(x) per sentence under the LM, padding masked, (B,)."""
    x = tl.tensor(x)
    lp = token_log_prob(lm(with_bos(x, 1))[0], x)  # (B, T)
    return -(lp * (x != 0).float()).sum(1)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    tok, train, test = data(args.vocab, args.max_words, args.train_verses, args.test_verses)
    V = len(tok.itos)
    tl.manual_seed(args.seed)
    vae = TextVAE(in_features=V, latent_features=args.latent, word_dropout=args.word_dropout,
                  free_bits=args.free_bits, mu_batchnorm=args.bn_gamma)
    lm = LSTMLanguageModel(in_features=V, embedding_features=128, hidden_features=256,
                           num_layers=1, dropout=0.0, bos_token_id=1)  # the VAE's decoder size
    models = {"vae": vae, "lm": lm}
    opts = {k: tl.optim.Adam(m.parameters(), lr=args.lr) for k, m in models.items()}
    ckpt, step, hist = os.path.join(args.out, "checkpoint.npz"), 0, []
    if args.resume and os.path.exists(ckpt):
        ck = tl.load(ckpt)
        tl.serialization.check_resume_args(ck["args"], vars(args), ("steps",))
        for k in models:
            models[k].load_state_dict(ck[k])
            opts[k].load_state_dict(ck["opt_" + k])
        step, hist = int(ck["step"]), [tuple(h) for h in ck["history"]]
    bar = tqdm(range(step, args.steps), initial=step, total=args.steps,
               disable=not sys.stderr.isatty())
    for step in bar:
        rng = np.random.default_rng((args.seed, step))  # batch and noise per step: resumable
        x = train[rng.integers(0, len(train), args.batch_size)]
        g = tl.Generator(args.seed * 100003 + step)
        beta = kl_anneal_weight(step, args.kl_warmup)
        loss, m = vae.loss(tl.tensor(x), kl_weight=beta, generator=g)
        losses = {"vae": loss, "lm": lm_sentence_nll(lm, x).mean()}
        for k, opt in opts.items():  # the LM sees the same batches
            opt.zero_grad()
            losses[k].backward()
            opt.step()
        hist.append((m["nll"].item(), m["kl"].item(), losses["lm"].item()))
        bar.set_postfix(dict(zip(("nll", "kl", "lm"), np.round(hist[-1], 2))))
        if (step + 1) % 250 == 0 or step + 1 == args.steps:
            tl.save({**{k: models[k].state_dict() for k in models}, "step": step + 1,
                     **{"opt_" + k: opts[k].state_dict() for k in opts},
                     "history": hist, "args": vars(args)}, ckpt)
    r = evaluate(vae.eval(), lm.eval(), test, args)
    r["history"] = hist
    print(f"{len(train)} training / {len(test)} test verses, vocabulary {V}, nats/sentence: "
          f"VAE -ELBO {r['neg_elbo']:.2f} (KL {r['kl']:.2f}, {r['active_units']} active "
          f"units), IW NLL (k={args.iw_samples}) {r['iw_nll']:.2f}; LSTM LM NLL "
          f"{r['lm_nll']:.2f}")
    lines = []
    for a, b in ((0, 10), (14, 24), (28, 38)):  # homotopies between test verses (sec. 5.2)
        path = vae.homotopy(tl.tensor(test[a]), tl.tensor(test[b]), steps=5).numpy()
        lines += ([f"FROM  {words(tok, test[a])}"] + [f"  {t:.2f} {words(tok, p)}" for t, p in
                  zip(np.linspace(0, 1, 5), path)] + [f"TO    {words(tok, test[b])}", ""])
    print("\n".join(lines))
    with open(os.path.join(args.out, "homotopies.txt"), "w") as f:
        f.write("\n".join(lines))
    plot_curves(np.array(hist), os.path.join(args.out, "curves.png"))
    return r


@tl.no_grad()
def evaluate(vae, lm, test, args):
    """Test means per sentence: -ELBO, KL, IW NLL, LM NLL; and the active units (Burda et al.
    2016, sec. 5.2: latents whose posterior mean moves with x, Var_x E_q[z_d] > 0.01)."""
    tl.manual_seed(args.seed)
    cols = {k: [] for k in ("neg_elbo", "kl", "iw_nll", "lm_nll", "mu")}
    for i in range(0, len(test), 200):
        xb = tl.tensor(test[i:i + 200])
        cols["neg_elbo"].append(vae.neg_elbo(xb).numpy())
        cols["kl"].append(np.full(len(xb), vae.loss(xb)[1]["kl"].item()))
        cols["iw_nll"].append(-vae.log_prob(xb, args.iw_samples, generator=tl.Generator(i))
                              .numpy())
        cols["lm_nll"].append(lm_sentence_nll(lm, test[i:i + 200]).numpy())
        cols["mu"].append(vae.encode(xb).numpy())
    mu = np.concatenate(cols.pop("mu"))  # (N, Z)
    r = {k: float(np.concatenate(v).mean()) for k, v in cols.items()}
    return {**r, "active_units": int((mu.var(0) > 0.01).sum())}


def plot_curves(h, path):
    """Training -ELBO and LM NLL, and the KL, against the step; h (steps, 3)."""
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(h[:, 0] + h[:, 1], label="VAE -ELBO (train)")
    ax[0].plot(h[:, 2], label="LSTM LM NLL (train)")
    ax[0].legend()
    ax[1].plot(h[:, 1])
    for a, ylabel in zip(ax, ("nats / sentence", "KL (nats / sentence)")):
        a.set(xlabel="step", ylabel=ylabel)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def words(tok, ids):
    """The words of ids up to the first eos (id 2), pad, bos and eos left out."""
    ids = list(ids)
    return " ".join(tok.itos[0 if i == UNK else i]
                    for i in ids[:ids.index(2) if 2 in ids else None] if i > 2)


if __name__ == "__main__":
    main()
