"""LSTM and Transformer language models (issue 16, items 3 and 4): exact properties
(causality, normalisation over every sequence, the BPTT state carry, weight tying, what
sampling draws), then short trainings on real text that must beat the unigram baseline of
the same split. The README's figures come from examples/language_model.py; its runs are
tests/test_example_language_model.py's `-m long` tests."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.data.text import LanguageModelStream, language_model_corpus
from tinylatent.models import LSTMLanguageModel, TransformerLM
from tinylatent.models.language_model import lm_nll, unigram_nll


def _lstm(**o):
    kw = dict(in_features=6, embedding_features=5, hidden_features=7, num_layers=2,
              dropout=0.0)
    return LSTMLanguageModel(**{**kw, **o})


def _gpt(**o):
    kw = dict(in_features=6, block_size=8, hidden_features=16, num_layers=2, num_heads=2)
    return TransformerLM(**{**kw, **o})


def _logits(model, idx):
    out = model(idx)
    return (out[0] if isinstance(out, tuple) else out).detach().numpy()


BUILDERS = {"lstm": _lstm, "transformer": _gpt}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_causality_by_perturbation(kind):
    """Changing the tokens after position t leaves logits[:, :t+1] bit for bit unchanged,
    and changing the token at t changes logits[:, t]."""
    tl.manual_seed(0)
    model = BUILDERS[kind]().eval()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, (3, 8))
    base = _logits(model, tl.tensor(x))
    for t in range(8):
        y = x.copy()
        y[:, t:] = (y[:, t:] + rng.integers(1, 6, y[:, t:].shape)) % 6     # every one differs
        out = _logits(model, tl.tensor(y))
        np.testing.assert_array_equal(out[:, :t], base[:, :t])
        assert np.all(np.abs(out[:, t] - base[:, t]).max(axis=-1) > 0), (kind, t)


def test_transformer_causality_by_jacobian():
    """d logits[t] / d pos_emb[s] (row s is used at position s only) is exactly zero for
    s > t and nonzero for every s <= t."""
    tl.manual_seed(1)
    model = _gpt(tie_weights=True).eval()
    x = tl.tensor(np.random.default_rng(1).integers(0, 6, (2, 8)))
    w = np.random.default_rng(2).standard_normal((2, 6)).astype(np.float32)
    for t in range(8):
        model.zero_grad()
        (model(x)[:, t] * tl.tensor(w)).sum().backward()
        g = np.abs(model.pos_emb.weight.grad.numpy()).sum(axis=1)       # (block_size,)
        assert np.all(g[t + 1:] == 0), (t, g)
        assert np.all(g[:t + 1] > 0), (t, g)


def test_lstm_causality_by_jacobian():
    """With distinct tokens, d logits[t] / d E[x_s] is exactly zero for s > t, nonzero for
    s <= t (untied, so E is used only at the input)."""
    tl.manual_seed(2)
    model = _lstm(in_features=8).eval()
    x = tl.tensor(np.random.default_rng(3).permutation(8)[None])             # (1, 8)
    for t in range(8):
        model.zero_grad()
        model(x)[0][:, t].sum().backward()
        g = np.abs(model.encoder.weight.grad.numpy()).sum(axis=1)[x.numpy()[0]]   # by position
        assert np.all(g[t + 1:] == 0) and np.all(g[:t + 1] > 0), (t, g)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_log_prob_sums_to_one_over_every_sequence(kind):
    """sum over all V^T sequences of p(x) = 1 (V = 3, T = 4: 81 sequences), and each
    conditional softmax sums to 1."""
    tl.manual_seed(3)
    model = BUILDERS[kind](in_features=3).eval()
    seqs = tl.tensor(np.array(list(itertools.product(range(3), repeat=4))))   # (81, 4)
    with tl.no_grad():
        lp = model.log_prob(seqs).numpy().astype(np.float64)
        p = tl.softmax(tl.tensor(_logits(model, seqs)), axis=-1).numpy()
    assert lp.shape == (81,)
    np.testing.assert_allclose(np.exp(lp).sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-5)
    # loss on one Tensor is -log_prob per token
    loss, m = model.loss(seqs)
    np.testing.assert_allclose(loss.item(), -lp.mean() / 4, rtol=1e-5)
    assert set(m) == {"loss", "nll", "perplexity"}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_samples_follow_log_prob(kind):
    """Frequencies of 3,000 sampled length-2 sequences match exp(log_prob) (9 outcomes;
    a chi-square statistic below the 0.999 quantile of chi2(8) = 26.1)."""
    tl.manual_seed(4)
    model = BUILDERS[kind](in_features=3).eval()
    s = model.sample(3000, length=2, generator=tl.Generator(5)).numpy()
    counts = np.bincount(s[:, 0] * 3 + s[:, 1], minlength=9)
    seqs = tl.tensor(np.array(list(itertools.product(range(3), repeat=2))))
    with tl.no_grad():
        expected = 3000 * np.exp(model.log_prob(seqs).numpy().astype(np.float64))
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 26.1, (counts, expected.round(1))


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_top_k_and_temperature(kind):
    """top_k=1 is greedy decoding (the argmax of each recomputed conditional); with top_k=2
    every token is among the 2 most likely; a prompt is continued, not repeated."""
    tl.manual_seed(6)
    model = BUILDERS[kind]().eval()
    prompt = tl.tensor(np.array([2, 4, 1]))
    for k in (1, 2):
        s = model.sample(4, length=5, top_k=k, temperature=0.7, prompt=prompt,
                         generator=tl.Generator(7)).numpy()
        full = np.concatenate([np.tile([2, 4, 1], (4, 1)), s], axis=1)      # (4, 8)
        logits = _logits(model, tl.tensor(full[:, :-1]))[:, 2:]            # predicts s
        rank = (logits > np.take_along_axis(logits, s[..., None], -1)).sum(-1)
        assert np.all(rank < k), (kind, k, rank)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(1, length=2, temperature=0.0)


def test_lstm_state_carry_equals_one_long_pass():
    """Truncated BPTT's forward: running 40 steps as windows of 7 with the (h, c) state
    carried gives the logits and final state of one 40-step pass."""
    tl.manual_seed(7)
    model = _lstm(dropout=0.3).eval()
    x = tl.tensor(np.random.default_rng(8).integers(0, 6, (3, 40)))
    with tl.no_grad():
        full, (h, c) = model(x)
        hidden, parts = None, []
        for i in range(0, 40, 7):
            out, hidden = model(x[:, i:i + 7], hidden)
            hidden = model.detach_hidden(hidden)
            parts.append(out.numpy())
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full.numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(hidden[0].numpy(), h.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hidden[1].numpy(), c.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_weight_tying_shares_one_parameter(kind):
    tl.manual_seed(9)
    tied = _lstm(embedding_features=7, tie_weights=True) if kind == "lstm" else _gpt()
    untied = _lstm(embedding_features=7) if kind == "lstm" else _gpt(tie_weights=False)
    emb, out = ("encoder", "decoder") if kind == "lstm" else ("tok_emb", "lm_head")
    w = getattr(tied, emb).weight
    assert getattr(tied, out).weight is w
    assert getattr(untied, out).weight is not getattr(untied, emb).weight
    assert tied.num_parameters() == untied.num_parameters() - w.numel()
    # one step moves the shared matrix by the sum of both uses' gradients, once
    opt = tl.optim.SGD(tied.parameters(), lr=0.1)
    x = tl.tensor(np.random.default_rng(10).integers(0, 6, (2, 5)))
    loss, _ = tied.loss(x)
    loss.backward()
    before, g = w.detach().numpy().copy(), w.grad.detach().numpy().copy()
    opt.step()
    np.testing.assert_allclose(getattr(tied, out).weight.detach().numpy(), before - 0.1 * g, rtol=1e-6)
    state = tied.state_dict()
    again = type(tied)(tied.config)
    again.load_state_dict(state)
    assert getattr(again, out).weight is getattr(again, emb).weight
    np.testing.assert_array_equal(getattr(again, out).weight.detach().numpy(), w.detach().numpy())


def test_bad_input_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"TransformerLM: sequence length 9 > block_size=8"):
        _gpt()(tl.tensor(np.zeros((1, 9), dtype=np.int64)))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, in_features=6\)"):
        _lstm()(tl.tensor(np.array([[0, 6]])))
    with pytest.raises(ValueError, match="tie_weights needs hidden_features"):
        _lstm(tie_weights=True)
    with pytest.raises(ValueError, match=r"batch must be \(inputs, targets\)"):
        _lstm().loss((tl.tensor(np.zeros((2, 3), dtype=np.int64)),
                      tl.tensor(np.zeros((2, 4), dtype=np.int64))))


# ------------------------------------------------------------------ trained figures
def _train_lstm(corpus, level, steps, batch_size=20, bptt=35, lr=20.0, **cfg):
    """The word_language_model loop (SGD at lr, clip 0.25, state carried over windows);
    returns (validation nats per token, unigram baseline nats per token)."""
    data = language_model_corpus(corpus, level)
    vocab = len(data.tokenizer)
    tl.manual_seed(1)
    model = LSTMLanguageModel(in_features=vocab, **cfg)
    opt = tl.optim.SGD(model.parameters(), lr=lr)
    stream = LanguageModelStream(data.train, batch_size, bptt)
    hidden = None
    for step, i in enumerate(range(0, len(stream.data) - 1, bptt)):
        if step == steps:
            break
        x, y = stream.get_batch(i)
        hidden = model.detach_hidden(hidden)
        logits, hidden = model(x.T, hidden)                      # (B, T, V)
        loss, _ = lm_nll(logits, y.T)
        opt.zero_grad()
        loss.backward()
        tl.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
    model.eval()
    valid = LanguageModelStream(data.valid, 10, bptt)
    total, n, hidden = 0.0, 0, None
    with tl.no_grad():
        for x, y in valid:
            logits, hidden = model(x.T, hidden)
            total += lm_nll(logits, y.T)[0].item() * y.numel()
            n += y.numel()
    return total / n, unigram_nll(data.train, valid.data[1:].ravel(), vocab)


def _train_gpt(corpus, level, steps, batch_size=16, lr=3e-3, warmup=20, **cfg):
    """nanoGPT's loop: random windows, AdamW(0.9, 0.99, wd 0.1), warm-up + cosine, clip 1."""
    data = language_model_corpus(corpus, level)
    vocab = len(data.tokenizer)
    tl.manual_seed(1)
    model = TransformerLM(in_features=vocab, **cfg)
    block = model.config.block_size
    opt = tl.optim.AdamW(model.param_groups(0.1), lr=lr, betas=(0.9, 0.99))
    sched = tl.optim.lr_scheduler.linear_warmup(
        opt, warmup, tl.optim.lr_scheduler.CosineAnnealingLR(opt, steps - warmup, lr / 10))
    rng = np.random.default_rng(1)
    for _ in range(steps):
        ix = rng.integers(0, len(data.train) - block - 1, batch_size)
        x = np.stack([data.train[i:i + block + 1] for i in ix])             # (B, block + 1)
        loss, _ = model.loss((tl.tensor(x[:, :-1]), tl.tensor(x[:, 1:])))
        opt.zero_grad()
        loss.backward()
        tl.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    model.eval()
    v = data.valid[:(len(data.valid) - 1) // block * block + 1]
    x, y = v[:-1].reshape(-1, block), v[1:].reshape(-1, block)               # (N, block)
    with tl.no_grad():
        nll = lm_nll(model(tl.tensor(x)), tl.tensor(y))[0].item()
    return nll, unigram_nll(data.train, y.ravel(), vocab)


@pytest.mark.slow
def test_lstm_char_botchan_beats_unigram():
    """300 windows (~20 s): a 64-64 LSTM on Botchan characters, validation NLL at least 0.5
    nats per char below the add-one unigram of the training split (measured 2.275 vs
    3.096, 0.82 below)."""
    nll, unigram = _train_lstm("botchan", "char", steps=300, lr=20.0,
                               embedding_features=64, hidden_features=64, dropout=0.0)
    msg = f"valid {nll:.3f} vs unigram {unigram:.3f} nats/char"
    print(msg)
    assert nll < unigram - 0.5, msg


@pytest.mark.slow
def test_transformer_char_botchan_beats_unigram():
    """150 steps (~8 s): a 2-layer d=64 GPT on Botchan characters, context 32, validation
    NLL at least 0.4 nats per char below the unigram of the training split (measured 2.486
    vs 3.096, 0.61 below)."""
    nll, unigram = _train_gpt("botchan", "char", steps=150, block_size=32,
                              hidden_features=64, num_layers=2, num_heads=4)
    msg = f"valid {nll:.3f} vs unigram {unigram:.3f} nats/char"
    print(msg)
    assert nll < unigram - 0.4, msg
