"""Evaluating and training BERT (models/bert.py): held-out masked-LM and next-sentence
accuracy with fixed masks, a per-update warm-up and decay of the learning rate, few-label
fine-tuning with a linear head on the pooled [CLS] vector (Devlin et al. 2019, Sec. 4), and
a lexical next-sentence baseline that sees the same truncated pairs.
"""
from __future__ import annotations

import numpy as np

import tinylatent as tl
from tinylatent import nn
from tinylatent.distributions import Categorical

from .bert import BERT, IGNORE, BERTConfig, mask_tokens

__all__ = ["evaluate_pretraining", "finetune_classifier", "nsp_overlap_baseline",
           "warmup_decay"]


def warmup_decay(warmup: int, total: int, schedule: str = "linear"):
    """The factor f(t) of update t (t = 0, 1, ...) for tl.optim.lr_scheduler.LambdaLR stepped
    after every update (tl.train.Trainer(..., scheduler_interval="step")): a linear warm-up
    over `warmup` updates, f = (t + 1) / warmup, then with s = (t - warmup) / (total -
    warmup) "constant" f = 1, "linear" f = 1 - s (Devlin et al. 2019, A.2: warm-up over the
    first 10,000 steps, then linear decay) or "cosine" f = (1 + cos(pi s)) / 2."""
    if schedule not in ("constant", "linear", "cosine"):
        raise ValueError(f"warmup_decay: unknown schedule {schedule!r}")

    def factor(t: int) -> float:
        if t < warmup:
            return (t + 1) / warmup
        s = min(1.0, (t - warmup) / max(1, total - warmup))
        return {"constant": 1.0, "linear": 1.0 - s,
                "cosine": 0.5 + 0.5 * float(np.cos(np.pi * s))}[schedule]
    return factor


@tl.no_grad()
def evaluate_pretraining(model: BERT, data, batch_size: int = 128, seed: int = 123) -> tuple:
    """(MLM accuracy, NSP accuracy, the masked targets) on a TensorDataset (ids, segments,
    is_next) such as `encode_pairs` gives, with masks fixed by `seed`."""
    model.eval()
    ids, segs, is_next = (t.numpy() for t in data.tensors)
    inputs, labels = mask_tokens(ids, model.config, tl.Generator(seed))
    mlm, nsp, n_masked = 0.0, 0.0, 0
    for s in range(0, len(ids), batch_size):
        sl = slice(s, s + batch_size)
        _, m = model.pretraining_loss(tl.tensor(inputs[sl]), tl.tensor(segs[sl]), labels[sl],
                                      tl.tensor(is_next[sl]))
        k = int((labels[sl] != IGNORE).sum())
        mlm += float(m["mlm_accuracy"].item()) * k
        nsp += float(m["nsp_accuracy"].item()) * len(ids[sl])
        n_masked += k
    return mlm / n_masked, nsp / len(ids), labels[labels != IGNORE]


def finetune_classifier(model: BERT, train: tuple, test: tuple, steps: int, lr: float,
                        seed: int, num_classes: int = 2, batch_size: int = 16) -> float:
    """Fine-tuning (Sec. 4): a linear head on the pooled [CLS] vector, trained with the
    encoder by AdamW on (ids, labels) `train` for `steps` minibatches drawn with
    replacement; returns (accuracy, balanced accuracy = mean recall per class) on `test`."""
    tl.manual_seed(seed)
    head = nn.Linear(model.config.hidden_features, num_classes)
    opt = tl.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=lr,
                         weight_decay=0.01)
    (x, y), (xt, yt) = train, test
    g = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        b = g.integers(0, len(x), min(batch_size, len(x)))
        logits = head(model.encode(tl.tensor(x[b])))
        loss = -Categorical(logits=logits).log_prob(tl.tensor(y[b])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with tl.no_grad():
        pred = np.concatenate([head(model.encode(tl.tensor(xt[s:s + 256]))).numpy()
                               .argmax(-1) for s in range(0, len(xt), 256)])
    recalls = [np.mean(pred[yt == c] == c) for c in np.unique(yt)]
    return float((pred == yt).mean()), float(np.mean(recalls))


def nsp_overlap_baseline(train, test, config: BERTConfig) -> float:
    """Held-out accuracy of a lexical next-sentence baseline on encoded pairs (`encode_pairs`
    TensorDatasets, so it sees the same truncated tokens as BERT): logistic regression
    (tl.eval.linear_probe) on four features of each pair, the TF-IDF cosine of A and B,
    their shared token count and both lengths (log 1 + n); idf from the training pairs."""
    from scipy.sparse import csr_matrix

    def bags(data):                      # sparse token counts of A and B, (N, V) each
        ids, seg, y = (t.numpy() for t in data.tensors)
        r, c = np.nonzero(ids >= config.num_special_tokens)
        return [csr_matrix((np.ones(k.sum()), (r[k], ids[r, c][k])),
                           shape=(len(ids), config.in_features))
                for k in (seg[r, c] == 0, seg[r, c] == 1)], y
    (tr, y), (te, yt) = bags(train), bags(test)
    df = np.asarray(((tr[0] > 0).sum(0) + (tr[1] > 0).sum(0))).ravel()
    idf = np.log((1 + 2 * tr[0].shape[0]) / (1 + df)) + 1.0                    # (V,)

    def features(bag):
        a, b = (x.multiply(idf[None]).tocsr() for x in bag)
        norm = np.sqrt(np.asarray(a.multiply(a).sum(1)) * np.asarray(b.multiply(b).sum(1)))
        cos = np.asarray(a.multiply(b).sum(1)) / np.maximum(norm, 1e-12)
        shared = np.asarray(bag[0].minimum(bag[1]).sum(1))
        return np.hstack([cos, shared, np.log1p(np.asarray(bag[0].sum(1))),
                          np.log1p(np.asarray(bag[1].sum(1)))])                # (N, 4)
    return tl.eval.linear_probe(features(tr), y, features(te), yt, n_classes=2)
