"""The inverse cloze task (Lee et al. 2019) on the KJV: retrieve a verse's neighbours (the
verse before and after it) from the verse alone, on held-out chapters, next to TF-IDF and
BM25 computed here on the same split.

    python examples/ict_kjv.py                                 # towers from scratch
    python examples/ict_kjv.py --init runs/bert_kjv            # towers from BERT (Sec. 5)
    python examples/ict_kjv.py ... --resume

Training pairs: tl.data.InverseClozePairs over the training chapters (context 1 verse each
side, the query removed 90% of the time). Test: every verse of the held-out chapters (every
10th chapter) is a query, its passage (neighbours, query always removed) must be found among
all held-out passages except the two that contain the query verse itself. Writes
results.txt, loss_curve.png, checkpoint.npz under runs/ict_kjv/.
"""
import argparse
import collections
import os

import numpy as np

import tinylatent as tl
from tinylatent.data.tokenizers import split_words
from tinylatent.models.bert import SPECIALS, encode_pair
from tinylatent.models.ict import ICT, recall_at_k

RESUMABLE = ("out", "epochs", "resume")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="ICT retrieval on the KJV (tinylatent)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--init", default=None, help="a bert_kjv.py output folder: both towers "
                   "and the tokenizer start from its pre-trained BERT")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--max-len", type=int, default=48)
    p.add_argument("--merges", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32, help="in-batch negatives: B - 1")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--steps-per-epoch", type=int, default=150)
    p.add_argument("--chapters", type=int, default=None, help="use only N chapters")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="runs/ict_kjv")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def bm25_scores(queries, passages, k1=1.2, b=0.75):
    """Okapi BM25 (Robertson et al. 1994) of every passage for every query: (Q, P)."""
    docs = [collections.Counter(split_words(p, lower=True)) for p in passages]
    df = collections.Counter(w for d in docs for w in d)
    n, avg = len(docs), np.mean([sum(d.values()) for d in docs])
    vocab = {w: i for i, w in enumerate(df)}
    tf = np.zeros((len(vocab), n))
    for j, d in enumerate(docs):
        for w, c in d.items():
            tf[vocab[w], j] = c
    length = tf.sum(0)
    idf = np.log(1 + (n - np.asarray(list(df.values())) + 0.5) /
                 (np.asarray(list(df.values())) + 0.5))
    weight = idf[:, None] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg))
    out = np.zeros((len(queries), n))
    for i, q in enumerate(queries):
        ids = [vocab[w] for w in set(split_words(q, lower=True)) if w in vocab]
        out[i] = weight[ids].sum(0)
    return out


def tfidf_scores(queries, passages):
    """Cosine of log(1 + tf) * idf vectors (tl.data.tfidf), idf from the passages."""
    vocab = {w: i for i, w in enumerate(sorted({w for p in passages
                                                for w in split_words(p, lower=True)}))}

    def counts(texts):
        c = np.zeros((len(texts), len(vocab)), np.float64)
        for i, t in enumerate(texts):
            for w in split_words(t, lower=True):
                if w in vocab:
                    c[i, vocab[w]] += 1
        return tl.tensor(c)
    p, idf = tl.data.tfidf(counts(passages))
    q, _ = tl.data.tfidf(counts(queries), idf)
    p, q = p.numpy(), q.numpy()
    p /= np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    return q @ p.T


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    tl.manual_seed(args.seed)
    docs = {}
    for v in tl.data.load_kjv():
        docs.setdefault((v.book, v.chapter), []).append(v.text)
    docs = list(docs.values())
    if args.chapters:
        docs = docs[::max(1, len(docs) // args.chapters)][:args.chapters]
    train_docs = [d for i, d in enumerate(docs) if i % 10 != 9]
    test_docs = [d for i, d in enumerate(docs) if i % 10 == 9]
    if args.init:
        tok = tl.data.load_tokenizer(f"{args.init}/tokenizer.json")
    else:
        tok = tl.data.BPETokenizer.train([v for d in train_docs for v in d],
                                         num_merges=args.merges, specials=SPECIALS, lower=True)
    train = tl.data.InverseClozePairs(train_docs, context_size=1,
                                      generator=tl.Generator(args.seed))
    test = tl.data.InverseClozePairs(test_docs, context_size=1, p_remove=1.0)

    def encode(items):
        q = np.stack([encode_pair(tok, s, None, args.max_len)[0] for s, _, _ in items])
        b = np.stack([encode_pair(tok, c, None, args.max_len)[0] for _, c, _ in items])
        return q, b
    bert = tl.load(f"{args.init}/checkpoint.npz")["model"] if args.init else None
    # the towers keep all of a pre-trained BERT's positions (128 in bert_kjv.py's span pairs)
    model = ICT(in_features=len(tok), hidden_features=args.dim, num_layers=args.layers,
                block_size=len(bert["pos_emb.weight"]) if args.init else args.max_len)
    if args.init:                              # both towers from the pre-trained BERT
        for tower in (model.query_encoder, model.context_encoder):
            tower.load_state_dict(bert)
    loader = tl.data.DataLoader(tl.data.TensorDataset(*encode(train)),
                                batch_size=args.batch_size, shuffle=True, drop_last=True,
                                generator=tl.Generator(args.seed))
    test_q, test_b = encode(test)
    queries, passages = [s for s, _, _ in test], [c for _, c, _ in test]
    # the passages of a query's neighbours contain the query verse verbatim: left out of
    # its ranking, so neither ICT nor the baselines are scored on copying
    doc = np.repeat(np.arange(len(test_docs)), [len(d) if len(d) > 1 else 0 for d in test_docs])
    i = np.arange(len(doc))
    near = (np.abs(i[:, None] - i[None, :]) == 1) & (doc[:, None] == doc[None, :])

    def evaluate(m):
        s = m.scores(test_q, test_b)
        return {"recall@1": recall_at_k(s, 1, exclude=near),
                "recall@10": recall_at_k(s, 10, exclude=near)}

    opt = tl.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    trainer = tl.train.Trainer(model, opt, args.out, config=vars(args), evaluate=evaluate,
                               resumable_keys=RESUMABLE)
    history = trainer.fit(loader, args.epochs, resume=args.resume,
                          max_steps_per_epoch=args.steps_per_epoch)
    results = {"ICT": evaluate(model)}
    for name, f in (("TF-IDF", tfidf_scores), ("BM25", bm25_scores)):
        s = f(queries, passages)
        results[name] = {"recall@1": recall_at_k(s, 1, exclude=near),
                         "recall@10": recall_at_k(s, 10, exclude=near)}
    lines = [f"{len(test)} held-out queries, {len(passages)} candidate passages "
             f"(chance recall@10 {10 / len(passages):.4f})"]
    lines += [f"{k:7s} recall@1 {v['recall@1']:.3f}  recall@10 {v['recall@10']:.3f}"
              for k, v in results.items()]
    print("\n".join(lines))
    with open(f"{args.out}/results.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return results, history


if __name__ == "__main__":
    main()
