"""Exact properties of the translation models (issue 21): the noise model of Lample et al.
(2018, sec. 2.3), back-translation without a gradient into the translator (sec. 2.4), greedy
decoding that stops at <eos>, word-by-word translation, and JointDual's REINFORCE baseline."""
import numpy as np
import pytest

import tinylatent as tl
from tinylatent import nn
from tinylatent.models import JointDual, UnsupervisedTranslation
from tinylatent.models.translation import (EOS, PAD, JointVocabulary, Seq2Seq, WordByWord,
                                           corpus_bleu)
from tinylatent.models.unsupervised_translation import add_noise


def _ids(B, T, rng, V=50):
    """(B, T + 1) distinct word ids per row (so positions can be tracked), <eos>, <pad>."""
    x = np.full((B, T + 1), PAD)
    for i in range(B):
        n = rng.integers(1, T + 1)
        x[i, :n] = rng.permutation(np.arange(4, V))[:n]
        x[i, n] = EOS
    return x


def test_word_drop_rate_and_eos_kept():
    x = _ids(2000, 20, np.random.default_rng(0))
    y = add_noise(x, 0.1, 0, tl.Generator(0))
    n_in = ((x != PAD) & (x != EOS)).sum(1)
    n_out = ((y != PAD) & (y != EOS)).sum(1)
    assert (n_out >= 1).all() and (n_out <= n_in).all()
    assert ((y == EOS).sum(1) == 1).all() and (y[np.arange(len(y)), n_out] == EOS).all()
    rate = 1 - n_out.sum() / n_in.sum()            # ~21,000 words: sd of the rate ~0.002
    assert abs(rate - 0.1) < 0.01, rate
    for a, b, n in zip(x, y, n_out):               # k = 0: the kept words in their order
        kept = [w for w in a if w in set(b[:n])]
        assert list(b[:n]) == kept


@pytest.mark.parametrize("k", [1, 3])
def test_local_shuffle_moves_no_word_more_than_k(k):
    x = _ids(500, 20, np.random.default_rng(1))
    y = add_noise(x, 0.0, k, tl.Generator(1))
    shifts = []
    for a, b in zip(x, y):
        n = int(((a != PAD) & (a != EOS)).sum())
        assert sorted(b[:n]) == sorted(a[:n]) and b[n] == EOS     # a permutation
        pos = {w: i for i, w in enumerate(a[:n])}
        shifts += [abs(pos[w] - i) for i, w in enumerate(b[:n])]
    assert max(shifts) == k                        # reached, never exceeded


def test_back_translation_has_no_gradient_into_the_translator():
    tl.manual_seed(0)
    model = UnsupervisedTranslation(in_features=30, embedding_features=8, hidden_features=8,
                                    max_length=6)
    frozen = UnsupervisedTranslation(model.config)
    frozen.load_state_dict(model.state_dict())
    rng = np.random.default_rng(0)
    x_b = _ids(4, 5, rng, 17)
    x_b[x_b > EOS] += 13                           # language B's ids
    x_a = tl.tensor(_ids(4, 5, rng, 17))
    x_b = tl.tensor(x_b)
    y = model.back_translate(x_a, 0)               # the model itself as the translator
    assert not y.requires_grad and y.dtype.kind in "iu"
    loss, m = model.loss((x_a, x_b), translator=frozen.translate)
    loss.backward()
    assert all(p.grad is None for p in frozen.parameters())
    assert any(p.grad is not None for p in model.parameters())
    assert set(m) == {"loss", "auto_a", "auto_b", "cd_a", "cd_b"}


class _ScriptedOutput(nn.Module):
    """Logits that say word 5 until step stop[i] of row i, then <eos>."""

    def __init__(self, stop, V):
        super().__init__()
        self.stop, self.V, self.step = np.asarray(stop), V, 0

    def forward(self, o):
        logits = np.zeros((len(self.stop), 1, self.V), dtype=np.float32)
        logits[:, 0, 5] = 1.0
        logits[self.step >= self.stop, 0, EOS] = 2.0
        self.step += 1
        return tl.tensor(logits)


def test_greedy_decoding_stops_at_eos():
    tl.manual_seed(0)
    s2s = Seq2Seq(12, 4, 4)
    s2s.output = _ScriptedOutput([0, 2, 4], 12)
    y = s2s.generate(tl.tensor(_ids(3, 4, np.random.default_rng(0), 12)), 0, 1, 10).numpy()
    assert y.shape == (3, 5)                       # stopped once the last row ended
    np.testing.assert_array_equal(y, [[EOS, PAD, PAD, PAD, PAD], [5, 5, EOS, PAD, PAD],
                                      [5, 5, 5, 5, EOS]])
    s2s.output = _ScriptedOutput([99, 99, 99], 12)
    assert s2s.generate(tl.tensor(np.zeros((3, 2), dtype=np.int64) + 4), 0, 1, 7).shape == (3, 7)


def test_word_by_word_translation_and_vocabulary():
    a, b = [["in", "the", "beginning"], ["the", "end"]], [["ka", "bo"], ["ka", "mu"]]
    vocab = JointVocabulary([a, b], size=10)
    assert vocab.itos[4:] == ["the", "beginning", "end", "in", "ka", "bo", "mu"]
    wbw = WordByWord({"the": "ka", "end": "mu", "in": "nope"}, vocab)
    x = vocab.encode([["the", "in", "unseen"]], 0, 4)
    assert vocab.decode(wbw(x)) == [["ka", "<unk>", "<unk>"]]
    assert vocab.decode(wbw(vocab.encode([["mu", "ka", "bo"]], 1, 3))) == \
        [["end", "the", "<unk>"]]
    bleu, hyps = corpus_bleu(lambda x: wbw(x), vocab, [(["the", "end"], ["ka", "mu"])], 0)
    assert hyps == [["ka", "mu"]] and bleu == pytest.approx(100.0 * np.exp(-0.0)) or bleu == 0
    with pytest.raises(ValueError, match="max_length=2"):
        vocab.encode([["the", "the", "the"]], 0, 2)


def test_joint_dual_baseline_cancels_a_reward_that_ignores_the_sample():
    """With the leave-one-out baseline, sum_k (r_k - b_k) = 0 per sentence: if the dual
    model's reconstruction log-likelihood does not depend on y (zero output weights), the
    loop gives the primal model no gradient at all, and the dual its own gradient."""
    tl.manual_seed(0)
    model = JointDual(in_features=20, embedding_features=6, hidden_features=6, max_length=5,
                      num_samples=3)
    nn.init.zeros_(model.dual.output.weight)
    x = tl.tensor(_ids(4, 4, np.random.default_rng(0), 12))
    surrogate, reward = model.loop_loss(x, 0, generator=tl.Generator(0))
    surrogate.backward()
    for p in model.primal.parameters():
        assert p.grad is None or np.abs(p.grad.numpy()).max() < 1e-6
    assert np.abs(model.dual.output.bias.grad.numpy()).max() > 1e-3
    assert reward.item() < 0


def test_dictionary_file_round_trip(tmp_path):
    from tinylatent.models.translation import load_dictionary, save_dictionary
    d = {"the": "kide", ",": "porita", "lord": "zaze"}
    save_dictionary(d, tmp_path / "d.tsv")
    (tmp_path / "d.tsv").open("a").write("a line without a tab\n")
    assert load_dictionary(tmp_path / "d.tsv") == d


def test_adversarial_latent_term_matches_a_hand_computation_and_spares_the_discriminator():
    """Sec. 2.5: L_adv (eq. 4) is the mean over real tokens of -log p_D(other language | z_t),
    computed here by hand from the encoder states and D; the translation loss leaves D
    without gradient (it is held fixed there) and reaches the encoder; discriminator_loss
    (eq. 3) reaches D only, on detached states, and labels each state with its own language."""
    tl.manual_seed(1)
    model = UnsupervisedTranslation(in_features=30, embedding_features=8, hidden_features=8,
                                    max_length=6, lambda_auto=0.0, lambda_cd=0.0,
                                    lambda_adv=1.0, adv_hidden=6, adv_layers=2)
    rng = np.random.default_rng(2)
    x_a, x_b = tl.tensor(_ids(3, 4, rng, 17)), tl.tensor(_ids(3, 5, rng, 17) + 0)
    loss, m = model.loss((x_a, x_b))
    assert set(m) == {"loss", "adv_a", "adv_b"}
    with tl.no_grad():
        for lang, x, key in ((0, x_a, "adv_a"), (1, x_b, "adv_b")):
            z, mask = model.seq2seq.encode_states(x, lang)
            logits = model.discriminator(z).numpy().astype(np.float64)           # (B, S, 2)
            logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            keep = mask.numpy() > 0
            want = -logp[..., 1 - lang][keep].mean()
            np.testing.assert_allclose(m[key].item(), want, rtol=1e-5)
    loss.backward()
    assert all(p.grad is None for p in model.discriminator.parameters())
    assert model.seq2seq.encoder.weight_ih_l0.grad is not None
    assert {id(p) for p in model.translation_parameters()}.isdisjoint(
        id(p) for p in model.discriminator.parameters())
    model.zero_grad()
    d_loss, dm = model.discriminator_loss((x_a, x_b))
    d_loss.backward()
    assert all(p.grad is None for p in model.translation_parameters())
    assert all(p.grad is not None for p in model.discriminator.parameters())
    # eq. 3 labels each state with its own language: by hand, the mean of both languages'
    # mean -log p_D(l | z_t), and D's accuracy at naming l
    want, acc = [], []
    with tl.no_grad():
        for lang, x in ((0, x_a), (1, x_b)):
            z, mask = model.seq2seq.encode_states(x, lang)
            logits = model.discriminator(z).numpy().astype(np.float64)
            logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            keep = mask.numpy() > 0
            want.append(-logp[..., lang][keep].mean())
            acc.append((logits.argmax(-1) == lang)[keep].mean())
    np.testing.assert_allclose(d_loss.item(), np.mean(want), rtol=1e-5)
    np.testing.assert_allclose(dm["d_accuracy"].item(), np.mean(acc), rtol=1e-6)


def test_without_the_adversarial_term_there_is_no_discriminator():
    model = UnsupervisedTranslation(in_features=30, embedding_features=8, hidden_features=8)
    assert not hasattr(model, "discriminator")
    with pytest.raises(ValueError, match="lambda_adv is 0"):
        model.discriminator_loss((tl.tensor(np.array([[5, EOS]])),) * 2)
    with pytest.raises(ValueError, match="lambda_adv must be >= 0"):
        UnsupervisedTranslation(in_features=30, lambda_adv=-1.0)
