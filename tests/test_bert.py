"""BERT (tinylatent/models/bert.py): the masked-LM corruption rule (15% chosen, 80/10/10),
next-sentence pair construction and encoding, the losses' bookkeeping, and a short
pre-training on KJV verses that must beat the unigram baseline (the README figures are the
`long` runs of examples/bert_kjv.py)."""
import numpy as np
import pytest

import tinylatent as tl
from tinylatent.models.bert import (BERT, IGNORE, SPECIALS, BERTConfig, encode_pair,
                                    encode_pairs, mask_tokens, span_pair_datasets)
from tinylatent.models.bert_eval import warmup_decay


def test_mask_rule_frequencies():
    """Statistical (can fail by chance, p ~ 1e-6 per bound): of the non-special positions
    15% are chosen; of the chosen 80% become [MASK], 10% a random token, 10% stay; special
    tokens are never chosen; random replacements are uniform over non-special tokens."""
    cfg = BERTConfig(in_features=30)
    rng = np.random.default_rng(0)
    ids = rng.integers(cfg.num_special_tokens, 30, (400, 250))          # 100,000 tokens
    ids[:, 0], ids[:, -1] = cfg.cls_token_id, cfg.sep_token_id
    ids[:, -30:-1] = cfg.pad_token_id
    inputs, labels = mask_tokens(ids, cfg, generator=tl.Generator(3))
    special = ids < cfg.num_special_tokens
    chosen = labels != IGNORE
    assert not chosen[special].any() and (inputs[special] == ids[special]).all()
    np.testing.assert_array_equal(labels[chosen], ids[chosen])
    n = (~special).sum()

    def within(k, total, p):                          # 5 standard deviations
        return abs(k - total * p) < 5 * np.sqrt(total * p * (1 - p))
    m = chosen.sum()
    assert within(m, n, 0.15), m / n
    masked = chosen & (inputs == cfg.mask_token_id)
    kept = chosen & (inputs == ids)
    replaced = chosen & ~masked & ~kept
    assert within(masked.sum(), m, 0.8), masked.sum() / m
    # a random draw equal to the original counts as "kept": 0.1 + 0.1 / 25 of the chosen
    p_same = 0.1 / (30 - cfg.num_special_tokens)
    assert within(kept.sum(), m, 0.1 + p_same), kept.sum() / m
    assert within(replaced.sum(), m, 0.1 - p_same), replaced.sum() / m
    assert (inputs[~chosen] == ids[~chosen]).all()
    r = inputs[replaced]
    assert r.min() >= cfg.num_special_tokens and r.max() < 30
    counts = np.bincount(r - cfg.num_special_tokens, minlength=25)
    e = len(r) / 25
    assert ((counts - e) ** 2 / e).sum() < 60     # chi2(24 dof) 99.9999% quantile ~ 60


class _Tok:
    """A word-level stand-in tokenizer: one id per word, offset past the specials."""
    def encode(self, text):
        return [len(SPECIALS) + int(w) for w in text.split()]


def test_encode_pair_layout_and_truncation():
    cfg = BERTConfig()
    ids, seg = encode_pair(_Tok(), "1 2 3", "4 5", 12, cfg)
    c, s, p = cfg.cls_token_id, cfg.sep_token_id, cfg.pad_token_id
    assert ids.tolist() == [c, 6, 7, 8, s, 9, 10, s, p, p, p, p]
    assert seg.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    # too long: the longer of the two loses tokens from its end
    ids, seg = encode_pair(_Tok(), "1 2 3 4 5 6 7", "8 9", 8, cfg)
    assert ids.tolist() == [c, 6, 7, 8, s, 13, 14, s]
    ids, seg = encode_pair(_Tok(), "1 2 3", None, 6, cfg)
    assert ids.tolist() == [c, 6, 7, 8, s, p] and not seg.any()


def test_next_sentence_pairs_are_true_successors_or_from_another_document():
    docs = [[f"d{d} s{k}" for k in range(6)] for d in range(40)]
    pairs = tl.data.NextSentencePairs(docs, generator=tl.Generator(0))
    assert len(pairs) == 40 * 5
    where = {s: (d, k) for d, doc in enumerate(docs) for k, s in enumerate(doc)}
    for a, b, is_next in pairs:
        (da, ka), (db, kb) = where[a], where[b]
        if is_next:
            assert (db, kb) == (da, ka + 1)
        else:
            assert db != da
    share = np.mean([p[2] for p in pairs])
    assert abs(share - 0.5) < 5 * np.sqrt(0.25 / len(pairs))
    data = encode_pairs(pairs, _TokWords(docs), 10)
    ids, seg, is_next = data.tensors
    assert ids.shape == (200, 10) and (is_next.numpy() == [p[2] for p in pairs]).all()


def test_span_pair_datasets_draw_the_training_chapters_dupe_factor_times():
    docs = [[f"d{d} s{k} x" for k in range(7)] for d in range(30)]
    tok = _TokWords(docs)
    train, held_out = span_pair_datasets(docs[:20], docs[20:], tok, 12, BERTConfig(), seed=3,
                                         dupe_factor=3)
    once = [tl.data.NextSpanPairs(docs[:20], tok, 9, generator=tl.Generator(4 + k))
            for k in range(3)]
    assert len(train) == sum(map(len, once)) and len(held_out) == len(
        tl.data.NextSpanPairs(docs[20:], tok, 9, generator=tl.Generator(3)))
    ids, seg, is_next = (t.numpy() for t in train.tensors)
    assert (is_next == [p[2] for draw in once for p in draw]).all()
    assert ids.shape == (len(train), 12) and ((ids == BERTConfig().sep_token_id).sum(1) == 2).all()
    # chunks of 3 sentences of 3 tokens (2 a document): an IsNext pair fills all 12 tokens
    assert len(train) == 3 * 20 * 2 and (ids[is_next == 1] != BERTConfig().pad_token_id).all()
    assert (seg[is_next == 1, -1] == 1).all()


class _TokWords:
    def __init__(self, docs):
        words = sorted({w for d in docs for s in d for w in s.split()})
        self.stoi = {w: len(SPECIALS) + i for i, w in enumerate(words)}

    def encode(self, text):
        return [self.stoi[w] for w in text.split()]


def test_losses_and_padding():
    tl.manual_seed(0)
    m = BERT(in_features=40, block_size=12, dropout=0.0)
    rng = np.random.default_rng(1)
    ids = rng.integers(5, 40, (6, 12))
    ids[:, 9:] = m.config.pad_token_id
    inputs, labels = mask_tokens(ids, m.config, tl.Generator(2))
    # padding is invisible: the 9 real tokens' states are those of the unpadded input
    m.eval()
    h1 = m(tl.tensor(ids)).detach().numpy()
    np.testing.assert_allclose(h1[:, :9], m(tl.tensor(ids[:, :9])).detach().numpy(), rtol=1e-4,
                               atol=1e-5)
    segs = np.zeros_like(ids)
    segs[:, 5:9] = 1
    h2 = m(tl.tensor(ids), tl.tensor(segs)).detach().numpy()
    assert not np.allclose(h1[:, :9], h2[:, :9])           # segments matter
    loss, metrics = m.pretraining_loss(tl.tensor(inputs), None, labels)
    rows, cols = np.nonzero(labels != IGNORE)
    logits = m.mlm_logits(m(tl.tensor(inputs))[rows, cols]).detach().numpy()
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    np.testing.assert_allclose(loss.item(), np.mean(lse - logits[np.arange(len(rows)),
                                                                 labels[rows, cols]]),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="BERT.loss: batch must be"):
        m.loss((tl.tensor(ids),))
    with pytest.raises(ValueError, match="block_size"):
        m(tl.tensor(np.full((1, 13), 7)))


def test_warmup_decay_per_update():
    """Update t runs at lr * (t + 1) / warmup for the first `warmup` updates, then linear (or
    cosine) decay to 0 at `total`: LambdaLR with warmup_decay, stepped after each update."""
    def rates(schedule, n):
        opt = tl.optim.AdamW([tl.nn.Parameter(tl.zeros(3))], lr=0.1)
        sched = tl.optim.lr_scheduler.LambdaLR(opt, warmup_decay(4, 12, schedule))
        out = []
        for _ in range(n):
            out.append(opt.param_groups[0]["lr"])       # the rate of this update
            sched.step()
        return out
    np.testing.assert_allclose(rates("linear", 12), [0.025, 0.05, 0.075, 0.1, 0.1, 0.0875,
                                                     0.075, 0.0625, 0.05, 0.0375, 0.025,
                                                     0.0125])
    np.testing.assert_allclose(rates("cosine", 12)[4:],
                               0.05 * (1 + np.cos(np.pi * np.arange(8) / 8)))
    assert rates("constant", 12)[4:] == [0.1] * 8
    with pytest.raises(ValueError, match="unknown schedule"):
        warmup_decay(1, 2, "step")


def test_span_pairs_is_one_encoded_draw():
    from tinylatent.models.bert import span_pairs
    docs = [[f"d{d} s{k} x" for k in range(7)] for d in range(30)]
    tok = _TokWords(docs)
    a, b = (span_pairs(docs, tok, 12, BERTConfig(), tl.Generator(s)) for s in (5, 5))
    c = span_pairs(docs, tok, 12, BERTConfig(), tl.Generator(6))
    draw = tl.data.NextSpanPairs(docs, tok, 9, generator=tl.Generator(5))
    assert (a.tensors[2].numpy() == [p[2] for p in draw]).all()
    assert all((x.numpy() == y.numpy()).all() for x, y in zip(a.tensors, b.tensors))
    assert not (a.tensors[2].numpy() == c.tensors[2].numpy()).all()
