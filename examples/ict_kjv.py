"""The inverse cloze task (Lee et al. 2019) on the KJV: retrieve a verse's neighbours (the
verse before and after it) from the verse alone, on held-out chapters, next to TF-IDF and
BM25 computed here on the same split.

    python examples/ict_kjv.py                                 # towers from scratch
    python examples/ict_kjv.py --init runs/bert_kjv            # towers from BERT (Sec. 5)
    python examples/ict_kjv.py --mlm-steps 500                 # ... from a masked LM here
    python examples/ict_kjv.py --valid ...                     # choose settings (see below)
    python examples/ict_kjv.py --pooling cls --temperature 0   # the paper's [CLS] dot product
    python examples/ict_kjv.py ... --resume

Training pairs: tl.data.InverseClozePairs over the training chapters (context 1 verse each
side, the query removed 90% of the time), passages up to 128 tokens (99% fit; at 48, 76%
were cut, mostly the verse after the query). Test: every verse of the held-out chapters (every
10th chapter) is a query, its passage (neighbours, query always removed) must be found among
all held-out passages except the two that contain the query verse itself. --valid trains
without every 10th training chapter and scores on those instead: the settings were chosen
there (README row), never on the held-out chapters. Writes
results.txt, recall.png, loss_curve.png, checkpoint.npz under runs/ict_kjv/.
"""
import argparse
import os

import numpy as np

import tinylatent as tl
from tinylatent.models.bert import BERT, SPECIALS, encode_pair
from tinylatent.models.ict import ICT, recall_at_k

RESUMABLE = ("out", "epochs", "resume")


class MLM(BERT):
    """BERT whose loss takes the 1-tuples of a one-tensor TensorDataset (masked LM only)."""

    def loss(self, batch, generator=None):
        return super().loss(batch[0], generator)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="ICT retrieval on the KJV (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--init", default=None, help="a bert_kjv.py output folder: both towers "
                   "and the tokenizer start from its BERT (it saw the --valid chapters)")
    p.add_argument("--mlm-steps", type=int, default=0, help="masked-LM steps of one BERT "
                   "on the training passages, then both towers start from it (OUT/mlm/)")
    p.add_argument("--valid", action="store_true", help="train without every 10th training "
                   "chapter and score on those (to choose settings; the held-out chapters "
                   "are not touched)")
    p.add_argument("--towers", default="shared", choices=("shared", "two"), help="one BERT "
                   "for queries and passages, or two (the paper's)")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--max-len", type=int, default=128, help="passage tokens (99%% fit)")
    p.add_argument("--query-len", type=int, default=64)
    p.add_argument("--pooling", default="mean", choices=("mean", "cls"))
    p.add_argument("--temperature", type=float, default=0.05, help="cosine / tau; 0: dot")
    p.add_argument("--merges", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64, help="in-batch negatives: B - 1")
    p.add_argument("--lr", type=float, default=5e-4, help="cosine-annealed over the epochs")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--cosine-epochs", type=int, default=None, help="default: --epochs")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="default: all pairs")
    p.add_argument("--chapters", type=int, default=None, help="use only N chapters")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="runs/ict_kjv")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    tl.manual_seed(args.seed)
    halves = tl.data.text.kjv_chapter_split(tl.data.load_kjv(), 10, args.chapters)
    train_docs, test_docs = ([[v.text for v in d] for d in docs] for docs in halves)
    if args.valid:      # the held-out chapters are set aside unseen; validation from train
        train_docs, test_docs = ([d for i, d in enumerate(train_docs) if i % 10 != 4],
                                 [d for i, d in enumerate(train_docs) if i % 10 == 4])
    if args.init:
        tok = tl.data.load_tokenizer(f"{args.init}/tokenizer.json")
    else:
        tok = tl.data.BPETokenizer.train([v for d in train_docs for v in d],
                                         num_merges=args.merges, specials=SPECIALS, lower=True)
    train = tl.data.InverseClozePairs(train_docs, context_size=1,
                                      generator=tl.Generator(args.seed))
    test = tl.data.InverseClozePairs(test_docs, context_size=1, p_remove=1.0)

    def encode(items):
        q = np.stack([encode_pair(tok, s, None, args.query_len)[0] for s, _, _ in items])
        b = np.stack([encode_pair(tok, c, None, args.max_len)[0] for _, c, _ in items])
        return q, b
    model = ICT(in_features=len(tok), hidden_features=args.dim, num_layers=args.layers,
                block_size=max(args.max_len, args.query_len), pooling=args.pooling,
                temperature=args.temperature or None, shared=args.towers == "shared",
                dropout=args.dropout)
    train_q, train_b = encode(train)
    if args.mlm_steps:  # masked LM on the training passages only (Sec. 5 starts from BERT)
        bert = MLM(model.query_encoder.config)
        mlm_loader = tl.data.DataLoader(tl.data.TensorDataset(train_b), batch_size=
                                        args.batch_size, shuffle=True, drop_last=True,
                                        generator=tl.Generator(args.seed + 1))
        epochs = -(-args.mlm_steps // len(mlm_loader))
        tl.train.Trainer(bert, tl.optim.AdamW(bert.parameters(), lr=args.lr,
                                              weight_decay=0.01), f"{args.out}/mlm",
                         config=vars(args), resumable_keys=RESUMABLE).fit(
            mlm_loader, epochs, resume=args.resume,
            max_steps_per_epoch=-(-args.mlm_steps // epochs))
        model.load_towers(f"{args.out}/mlm/checkpoint.npz")
    if args.init:       # both towers from the pre-trained BERT; positions it lacks: own init
        model.load_towers(f"{args.init}/checkpoint.npz")
    loader = tl.data.DataLoader(tl.data.TensorDataset(train_q, train_b),
                                batch_size=args.batch_size, shuffle=True, drop_last=True,
                                generator=tl.Generator(args.seed))
    test_q, test_b = encode(test)
    queries, passages = [s for s, _, _ in test], [c for _, c, _ in test]
    # the passages of a query's neighbours contain the query verse verbatim: left out of
    # its ranking, so neither ICT nor the baselines are scored on copying
    doc = np.repeat(np.arange(len(test_docs)), [len(d) if len(d) > 1 else 0 for d in test_docs])
    i = np.arange(len(doc))
    near = (np.abs(i[:, None] - i[None, :]) == 1) & (doc[:, None] == doc[None, :])

    def recall(s):
        return {f"recall@{k}": recall_at_k(s, k, exclude=near) for k in (1, 10)}

    def evaluate(m):
        return recall(m.scores(test_q, test_b))

    opt = tl.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = tl.optim.lr_scheduler.CosineAnnealingLR(opt, args.cosine_epochs or args.epochs)
    trainer = tl.train.Trainer(model, opt, args.out, config=vars(args), evaluate=evaluate,
                               scheduler=sched, resumable_keys=RESUMABLE)
    history = trainer.fit(loader, args.epochs, resume=args.resume,
                          max_steps_per_epoch=args.steps_per_epoch)
    results = {"ICT": evaluate(model)}
    for name, f in (("TF-IDF", tl.eval.tfidf_scores), ("BM25", tl.eval.bm25_scores)):
        results[name] = recall(f(queries, passages))
    tl.eval.bar_picture({f"{name} {k}": v[k] for k in ("recall@1", "recall@10")
                         for name, v in results.items()}, f"{args.out}/recall.png",
                        f"held-out passage from its verse ({len(passages)} candidates)",
                        "recall")
    split = "validation" if args.valid else "held-out"
    lines = [f"{len(test)} {split} queries, {len(passages)} candidate passages "
             f"(chance recall@10 {10 / len(passages):.4f})"]
    lines += [f"{k:7s} recall@1 {v['recall@1']:.3f}  recall@10 {v['recall@10']:.3f}"
              for k, v in results.items()]
    print("\n".join(lines))
    with open(f"{args.out}/results.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return results, history


if __name__ == "__main__":
    main()
