"""SimCSE (Gao et al. 2021) on KJV verses: a small Transformer sentence encoder trained
unsupervised (each verse twice through dropout) or supervised (a labelled proxy, below),
evaluated with the encoder FROZEN (eval mode, no_grad; nothing is fitted at test time).

    python examples/simcse_kjv.py                       # unsupervised
    python examples/simcse_kjv.py --mode sup            # supervised proxy
    python examples/simcse_kjv.py ... --resume          # continue from OUT/checkpoint.npz

Supervised proxy (no NLI data offline): a verse's positive is another verse of the same
chapter (same passage, usually the same topic and speaker: SimCSE's "entailment" role)
and its hard negative a verse of another book (different author, period and subject:
the "contradiction" role). Split: every 10th chapter is held out; 1,000 of its verses are
the test set. Test: each test verse is corrupted (30% of its words dropped, the rest
shuffled) and the corrupted copy must retrieve its verse among the 1,000 (recall@1,
cosine), next to averaged word embeddings (the token table at init and after training)
and the untrained encoder (the run's own initial weights); alignment (corrupted copy,
verse) and uniformity of the test verses (Wang & Isola 2020) for each encoder.
Writes results.txt, recall.png, similarity.png, loss_curve.png and checkpoint.npz.
"""
import argparse
import os

import numpy as np

import tinylatent as tl
from tinylatent.eval import (alignment, bar_picture, frozen_features, matrix_picture,
                             uniformity)
from tinylatent.models import SimCSE
from tinylatent.models.bert import SPECIALS, encode_pair
from tinylatent.models.ict import recall_at_k


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--mode", choices=["unsup", "sup"], default="unsup")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--max-len", type=int, default=48)
    p.add_argument("--merges", type=int, default=2000, help="BPE merges")
    p.add_argument("--pooling", choices=["cls", "mean"], default="mean",
                   help="mean: from scratch the [CLS] state barely depends on the words")
    p.add_argument("--batch-size", type=int, default=64, help="in-batch negatives: B - 1")
    p.add_argument("--lr", type=float, default=3e-4, help="AdamW")
    p.add_argument("--temperature", type=float, default=0.05)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--limit-train-batches", type=int, default=150, help="steps per epoch")
    p.add_argument("--drop", type=float, default=0.3, help="test corruption: words dropped")
    p.add_argument("--test-verses", type=int, default=1000)
    p.add_argument("--chapters", type=int, default=0, help="use only N chapters (smoke)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="default runs/simcse_kjv/<mode>")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def split(args):
    chapters = {}
    for v in tl.data.load_kjv():
        chapters.setdefault((v.book, v.chapter), []).append(v.text)
    keys = list(chapters)
    if args.chapters:
        keys = keys[::max(1, len(keys) // args.chapters)][:args.chapters]
    train = [(k, t) for i, k in enumerate(keys) if i % 10 != 9 for t in chapters[k]]
    held = [t for i, k in enumerate(keys) if i % 10 == 9 for t in chapters[k]]
    rng = np.random.default_rng(0)                    # the test set never depends on --seed
    test = [held[i] for i in rng.choice(len(held), min(args.test_verses, len(held)), False)]
    queries = [tl.data.corrupt_words(t, rng, args.drop) for t in test]
    return train, test, queries


def scores(fn, model, queries, database):
    q = frozen_features(fn, queries, 500, module=model)
    d = frozen_features(fn, database, 500, module=model)
    q, d = (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12) for v in (q, d))
    return q, d


def evaluate_all(named, model, q_ids, t_ids):
    """recall@1 of every named encoder fn; alignment / uniformity on the unit sphere."""
    out = {}
    for name, fn in named.items():
        q, d = scores(fn, model, q_ids, t_ids)
        out[name] = (recall_at_k(q @ d.T, 1), alignment(q, d), uniformity(d))
    return out


def main(argv=None):
    args = parse_args(argv)
    args.out = args.out or f"runs/simcse_kjv/{args.mode}"
    os.makedirs(args.out, exist_ok=True)
    train, test, queries = split(args)
    tok = tl.data.BPETokenizer.train([t for _, t in train], num_merges=args.merges,
                                     specials=SPECIALS, lower=True)
    enc = lambda texts: np.stack([encode_pair(tok, t, None, args.max_len)[0]  # noqa: E731
                                  for t in texts])
    ids, t_ids, q_ids = enc([t for _, t in train]), enc(test), enc(queries)   # (N, T) each
    tl.manual_seed(args.seed)
    model = SimCSE(in_features=len(tok), hidden_features=args.dim, num_layers=args.layers,
                   block_size=args.max_len, temperature=args.temperature,
                   pooling=args.pooling)
    table0 = model.encoder.tok_emb.weight.detach().numpy().copy()

    def avg_words(table):                     # mean of the word (non-special) embeddings
        def fn(x):
            keep = (x.numpy() >= len(SPECIALS)).astype(np.float32)[..., None]   # (B, T, 1)
            return tl.tensor((table[x.numpy()] * keep).sum(1) / np.maximum(keep.sum(1), 1))
        return fn
    init = SimCSE(model.config)
    init.load_state_dict(model.state_dict())                  # the untrained encoder, kept
    baseline = evaluate_all({"avg word emb. (init)": avg_words(table0),
                             "untrained encoder": init.encode}, init, q_ids, t_ids)
    data = (ids,) if args.mode == "unsup" else tuple(
        ids[c] for c in tl.data.chapter_triples([k for k, _ in train],
                                                np.random.default_rng(args.seed)).T)
    loader = tl.data.DataLoader(tl.data.TensorDataset(*data), args.batch_size, shuffle=True,
                                drop_last=True, generator=tl.Generator(args.seed))
    optimizer = tl.optim.AdamW(model.parameters(), lr=args.lr)

    def evaluate(m):
        q, d = scores(m.encode, m, q_ids, t_ids)
        return {"test_recall@1": recall_at_k(q @ d.T, 1)}

    trainer = tl.train.Trainer(model, optimizer, args.out, config=vars(args), evaluate=evaluate)
    trainer.fit(loader, args.epochs, resume=args.resume,
                max_steps_per_epoch=args.limit_train_batches or None)
    table = model.encoder.tok_emb.weight.detach().numpy()
    results = {**baseline, **evaluate_all({"avg word emb. (trained)": avg_words(table),
                                           f"SimCSE {args.mode}": model.encode},
                                          model, q_ids, t_ids)}
    lines = [f"SimCSE ({args.mode}) on KJV: {len(ids)} training verses; {len(test)} held-out "
             f"verses, each retrieved from a copy with {args.drop:.0%} of its words dropped "
             "and the rest shuffled; frozen encoders, cosine",
             f"  {'':26s} recall@1  alignment  uniformity"]
    lines += [f"  {k:26s} {r:.4f}    {a:<9.4g}  {u:.4g}" for k, (r, a, u) in results.items()]
    print("\n".join(lines))
    with open(os.path.join(args.out, "results.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    bar_picture({k: v[0] for k, v in results.items()}, f"{args.out}/recall.png",
                f"recall@1 among {len(test)} held-out verses", "recall@1")
    q, d = scores(model.encode, model, q_ids[:16], t_ids[:16])
    matrix_picture(q @ d.T, f"{args.out}/similarity.png", "cos(corrupted i, verse j), frozen",
                   vmin=-1, vmax=1)
    print(f"pictures and checkpoint in {args.out}/")
    return trainer.history, results


if __name__ == "__main__":
    main()
