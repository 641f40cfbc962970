"""A sentence VAE (Bowman et al. 2016) on KJV verses against an LSTM language model of the
same size: KL annealing + word dropout against posterior collapse, test -ELBO vs the LM's
NLL in nats per sentence, and homotopies (greedy decodings between two verses' codes).

    python examples/text_vae_kjv.py                      # 2000 steps each
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
from tinylatent.data.text import pad_sequences
from tinylatent.data.tokenizers import WordTokenizer
from tinylatent.distributions import Categorical
from tinylatent.models import LSTMLanguageModel, TextVAE
from tinylatent.models.text_vae import kl_anneal_weight

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")  # ids 0..3, TextVAEConfig's defaults


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="sentence VAE on KJV verses",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/text_vae_kjv")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def data(args):
    return _data(args.vocab, args.max_words, args.train_verses, args.test_verses)


@functools.lru_cache(maxsize=2)  # the smoke test calls main three times
def _data(vocab, max_words, train_verses, test_verses):
    verses = tl.data.load_kjv()
    chapters, split = {}, {"train": [], "test": []}
    for v in verses:
        c = chapters.setdefault((v.book, v.chapter), len(chapters))
        split["test" if c % 10 == 9 else "train"].append(v.text.lower())
    counts = WordTokenizer.fit(split["train"], lower=True)  # words by decreasing count
    words = [w for w in counts.itos if w != "<unk>"][:vocab]
    tok = WordTokenizer(words, SPECIALS, lower=True)
    out = []
    for name, limit in (("train", train_verses), ("test", test_verses)):
        seqs = [tok.encode(t) + [2] for t in split[name]]  # + eos
        seqs = [s for s in seqs if len(s) <= max_words + 1][:limit]
        out.append(pad_sequences(seqs, max_words + 1, pad_id=0)[0])  # (N, T)
    return tok, out[0], out[1]


def lm_sentence_nll(lm, x):
    """-log p(x) per sentence under the LM, padding masked, (B,)."""
    bos = np.full((len(x), 1), 1)
    logits, _ = lm(tl.tensor(np.concatenate([bos, x[:, :-1]], 1)))
    lp = Categorical(logits=logits).log_prob(tl.tensor(x))  # (B, T)
    return -(lp * tl.tensor((x != 0).astype(np.float32))).sum(1)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    tok, train, test = data(args)
    V = len(tok.itos)
    tl.manual_seed(args.seed)
    vae = TextVAE(in_features=V, latent_features=args.latent, word_dropout=args.word_dropout,
                  free_bits=args.free_bits)
    lm = LSTMLanguageModel(in_features=V, embedding_features=128, hidden_features=256,
                           num_layers=1, dropout=0.0, bos_token_id=1)
    opts = {"vae": tl.optim.Adam(vae.parameters(), lr=args.lr),
            "lm": tl.optim.Adam(lm.parameters(), lr=args.lr)}
    ckpt, step, hist = os.path.join(args.out, "checkpoint.npz"), 0, []
    if args.resume and os.path.exists(ckpt):
        ck = tl.load(ckpt)
        tl.serialization.check_resume_args(ck["args"], vars(args), ("steps",))
        vae.load_state_dict(ck["vae"])
        lm.load_state_dict(ck["lm"])
        for k in opts:
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
        opts["vae"].zero_grad()
        loss.backward()
        opts["vae"].step()
        lm_loss = lm_sentence_nll(lm, x).mean()
        opts["lm"].zero_grad()
        lm_loss.backward()
        opts["lm"].step()
        hist.append((float(m["nll"].item()), float(m["kl"].item()), float(lm_loss.item())))
        bar.set_postfix(nll=f"{hist[-1][0]:.1f}", kl=f"{hist[-1][1]:.2f}",
                        lm=f"{hist[-1][2]:.1f}")
        if (step + 1) % 250 == 0 or step + 1 == args.steps:
            tl.save({"vae": vae.state_dict(), "lm": lm.state_dict(), "step": step + 1,
                     "opt_vae": opts["vae"].state_dict(), "opt_lm": opts["lm"].state_dict(),
                     "history": hist, "args": vars(args)}, ckpt)
    vae.eval()
    lm.eval()
    tl.manual_seed(args.seed)
    with tl.no_grad():
        elbo, kl, lm_nll = [], [], []
        for i in range(0, len(test), 200):
            xb = tl.tensor(test[i:i + 200])
            elbo.append(vae.neg_elbo(xb).numpy())
            _, m = vae.loss(xb)
            kl.append(float(m["kl"].item()) * len(xb))
            lm_nll.append(lm_sentence_nll(lm, test[i:i + 200]).numpy())
    r = {"neg_elbo": float(np.concatenate(elbo).mean()), "kl": sum(kl) / len(test),
         "lm_nll": float(np.concatenate(lm_nll).mean()), "history": hist}
    print(f"{len(train)} training / {len(test)} test verses, vocabulary {V}: test -ELBO "
          f"{r['neg_elbo']:.2f} nats/sentence (KL {r['kl']:.2f}), LSTM LM NLL "
          f"{r['lm_nll']:.2f}")
    words = lambda ids: " ".join(tok.itos[i] for i in ids if i > 2).strip()  # noqa: E731
    lines = []
    for a, b in ((0, 1), (2, 3), (4, 5)):
        x1, x2 = test[a * 7], test[b * 7 + 3]
        path = vae.homotopy(tl.tensor(x1), tl.tensor(x2), steps=5).numpy()
        lines += [f"FROM  {words(x1)}"] + [f"  {a_:.2f} {words(cut(p))}" for a_, p in
                                          zip(np.linspace(0, 1, 5), path)] + \
            [f"TO    {words(x2)}", ""]
    print("\n".join(lines))
    with open(os.path.join(args.out, "homotopies.txt"), "w") as f:
        f.write("\n".join(lines))
    h = np.array(hist)
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(h[:, 0] + h[:, 1], label="VAE -ELBO (train)")
    ax[0].plot(h[:, 2], label="LSTM LM NLL (train)")
    ax[0].set_ylabel("nats / sentence")
    ax[0].legend()
    ax[1].plot(h[:, 1])
    ax[1].set_ylabel("KL (nats / sentence)")
    for a in ax:
        a.set_xlabel("step")
    plt.tight_layout()
    plt.savefig(os.path.join(args.out, "curves.png"), dpi=100)
    plt.close()
    return r


def cut(ids):
    """Ids up to the first eos."""
    ids = list(ids)
    return ids[:ids.index(2)] if 2 in ids else ids


if __name__ == "__main__":
    main()
