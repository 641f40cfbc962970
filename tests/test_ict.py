"""The inverse cloze task (tinylatent/models/ict.py): the in-batch softmax loss, recall@k,
the pair construction, and examples/ict_kjv.py end to end with tiny settings (TF-IDF and
BM25 baselines on the same split, exact resume)."""
import numpy as np
import pytest
from example_runner import load_example

import tinylatent as tl
from tinylatent.models.ict import ICT, recall_at_k


def test_loss_is_the_in_batch_softmax_cross_entropy():
    tl.manual_seed(0)
    m = ICT(in_features=20, hidden_features=8, latent_features=4, num_layers=1,
            num_heads=2, block_size=7, dropout=0.0)
    rng = np.random.default_rng(0)
    q, b = rng.integers(5, 20, (6, 7)), rng.integers(5, 20, (6, 7))
    loss, metrics = m.loss((tl.tensor(q), tl.tensor(b)))
    s = m.scores(q, b)                                         # (6, 6)
    lse = np.log(np.exp(s - s.max(1, keepdims=True)).sum(1)) + s.max(1)
    np.testing.assert_allclose(loss.item(), np.mean(lse - np.diag(s)), rtol=1e-5)
    np.testing.assert_allclose(metrics["in_batch_accuracy"].item(),
                               np.mean(s.argmax(1) == np.arange(6)))
    stacked = tl.tensor(np.stack([q, b], axis=1))              # (B, 2, T)
    np.testing.assert_allclose(m.loss(stacked)[0].item(), loss.item(), rtol=1e-6)
    with pytest.raises(ValueError, match="ICT.loss: batch must be"):
        m.loss(tl.tensor(q))


def _tiny(**overrides):
    tl.manual_seed(0)
    return ICT(in_features=20, hidden_features=8, latent_features=4, num_layers=1,
               num_heads=2, block_size=10, dropout=0.0, **overrides)


def test_mean_pooling_averages_the_tokens_and_ignores_padding():
    """The padded positions of a short input neither enter its mean nor change it: the same
    query padded to 5 (none), 7 and 10 tokens gives one embedding, the mean of its 5 token
    states (a sum over all T positions divided by T would shrink it with the padding)."""
    m = _tiny(pooling="mean").eval()
    ids = [2, 7, 9, 11, 3]                                    # [CLS] w w w [SEP]
    embeddings = [m.encode_query(tl.tensor([ids + [1] * (t - 5)])).detach().numpy()
                  for t in (5, 7, 10)]
    np.testing.assert_allclose(embeddings[1], embeddings[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(embeddings[2], embeddings[0], rtol=1e-5, atol=1e-6)
    h = m.query_encoder(tl.tensor([ids])).detach().numpy()[0]           # (5, d)
    w = m.query_proj.weight.detach().numpy()                             # (latent, d)
    np.testing.assert_allclose(embeddings[0][0], w @ h.mean(0), rtol=1e-5, atol=1e-6)


def test_temperature_scores_are_cosines_over_tau():
    m = _tiny(pooling="mean", temperature=0.1)
    rng = np.random.default_rng(1)
    q, b = rng.integers(5, 20, (3, 6)), rng.integers(5, 20, (4, 8))
    s = m.scores(q, b)                                        # (3, 4)
    m.eval()
    with tl.no_grad():
        hq = m.query_proj(m._pool(m.query_encoder, tl.tensor(q))).numpy()
        hb = m.context_proj(m._pool(m.context_encoder, tl.tensor(b))).numpy()
    cos = (hq / np.linalg.norm(hq, axis=1, keepdims=True)) @ \
        (hb / np.linalg.norm(hb, axis=1, keepdims=True)).T
    np.testing.assert_allclose(s, cos / 0.1, rtol=1e-4, atol=1e-5)
    assert np.abs(s).max() <= 10 + 1e-4


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="ICT: pooling must be"):
        _tiny(pooling="max")
    with pytest.raises(ValueError, match="ICT: temperature must be"):
        _tiny(temperature=0.0)


def test_recall_at_k():
    s = np.array([[0.9, 0.1, 0.5], [0.8, 0.2, 0.9], [0.0, 0.0, 0.0]])
    assert recall_at_k(s, 1) == pytest.approx(1 / 3)          # only query 0 ranks its own 1st
    assert recall_at_k(s, 2) == pytest.approx(1 / 3)          # query 1: rank 3; query 2: tie
    assert recall_at_k(s, 3) == 1.0


def test_inverse_cloze_pairs_remove_the_query_at_the_stated_rate():
    docs = [[f"d{d}s{k}" for k in range(8)] for d in range(60)]
    pairs = tl.data.InverseClozePairs(docs, context_size=1, p_remove=0.9,
                                      generator=tl.Generator(0))
    assert len(pairs) == 480
    kept = 0
    for sentence, context, k in pairs:
        d, i = (int(x) for x in sentence[1:].split("s"))
        around = [f"d{d}s{j}" for j in range(max(0, i - 1), min(8, i + 2))]
        expected = around if k else [w for w in around if w != sentence]
        assert context.split() == expected
        kept += k
    assert abs(kept / 480 - 0.1) < 5 * np.sqrt(0.09 / 480)


def test_example_runs_with_baselines_and_resumes(tmp_path):
    ex = load_example("ict_kjv")
    tiny = ["--chapters", "30", "--layers", "1", "--dim", "16", "--max-len", "24",
            "--merges", "50", "--steps-per-epoch", "2", "--batch-size", "8",
            "--query-len", "24", "--cosine-epochs", "2"]
    full, hist = ex.main(tiny + ["--epochs", "2", "--out", str(tmp_path / "a")])
    assert set(full) == {"ICT", "TF-IDF", "BM25"}
    assert (tmp_path / "a" / "recall.png").read_bytes()[:4] == b"\x89PNG"
    # word overlap with the neighbours finds some passages: the baselines beat chance
    n = int(open(tmp_path / "a" / "results.txt").read().split()[0])
    assert full["BM25"]["recall@10"] > 10 / n
    ex.main(tiny + ["--epochs", "1", "--out", str(tmp_path / "b")])
    resumed, hist_b = ex.main(tiny + ["--epochs", "2", "--resume", "--out", str(tmp_path / "b")])
    assert hist_b == hist and resumed == full


def test_example_starts_both_towers_from_a_bert_with_fewer_positions(tmp_path):
    """--init copies a bert_kjv.py checkpoint into both towers; its 24 positions fill the
    first 24 of the towers' 32 (lr 0: the checkpoint after one step still holds them)."""
    bert = load_example("bert_kjv")
    bert.main(["--chapters", "30", "--layers", "1", "--dim", "16", "--heads", "4",
               "--max-len", "24", "--verse-len", "24", "--merges", "50", "--steps-per-epoch",
               "1", "--batch-size", "8", "--labels", "8", "--finetune-steps", "1", "--epochs", "1",
               "--out", str(tmp_path / "bert")])
    ex = load_example("ict_kjv")
    ex.main(["--init", str(tmp_path / "bert"), "--chapters", "30", "--layers", "1", "--dim",
             "16", "--max-len", "32", "--query-len", "16", "--steps-per-epoch", "1",
             "--batch-size", "8", "--epochs", "1", "--lr", "0", "--out", str(tmp_path / "ict")])
    b = tl.load(str(tmp_path / "bert" / "checkpoint.npz"))["model"]
    m = tl.load(str(tmp_path / "ict" / "checkpoint.npz"))["model"]
    for tower in ("query_encoder", "context_encoder"):
        np.testing.assert_array_equal(m[f"{tower}.tok_emb.weight"], b["tok_emb.weight"])
        np.testing.assert_array_equal(m[f"{tower}.layers.0.linear1.weight"],
                                      b["layers.0.linear1.weight"])
        pos = m[f"{tower}.pos_emb.weight"]                      # (32, d)
        np.testing.assert_array_equal(pos[:24], b["pos_emb.weight"])
        assert pos.shape == (32, 16) and np.abs(pos[24:]).max() > 0


def test_load_towers_refuses_a_mismatched_checkpoint_naming_file_and_shapes(tmp_path):
    m = _tiny()
    other = tl.models.bert.BERT(in_features=20, hidden_features=12, num_layers=1,
                                num_heads=2, block_size=10)
    path = str(tmp_path / "other.npz")
    tl.save({"model": other.state_dict()}, path)
    with pytest.raises(ValueError, match=r"other\.npz: 'tok_emb\.weight' has shape \(20, 12\) "
                       r"in the checkpoint, \(20, 8\) in the towers"):
        m.load_towers(path)
    tl.save({"model": {"w": np.zeros(3)}}, path)
    with pytest.raises(ValueError, match="other.npz is not a BERT of these towers"):
        m.load_towers(path)


def test_shared_towers_are_one_bert():
    m, two = _tiny(shared=True), _tiny()
    assert m.context_encoder is m.query_encoder
    n_bert = m.query_encoder.num_parameters()
    assert two.num_parameters() - m.num_parameters() == n_bert
    loss, _ = m.loss((tl.tensor(np.full((3, 6), 7)), tl.tensor(np.full((3, 6), 9))))
    loss.backward()                                            # both passes reach one BERT
    assert np.abs(m.query_encoder.tok_emb.weight.grad.numpy()[[7, 9]]).sum(1).min() > 0


def test_example_pretrains_one_mlm_bert_on_the_validation_split(tmp_path):
    """--mlm-steps trains a BERT (masked LM) on the training passages and both towers start
    from it (lr 0 keeps them); --valid scores on every 10th training chapter."""
    ex = load_example("ict_kjv")
    tiny = ["--chapters", "100", "--layers", "1", "--dim", "16", "--max-len", "24",
            "--merges", "50", "--steps-per-epoch", "1", "--batch-size", "8", "--query-len",
            "16", "--epochs", "1", "--lr", "0"]
    ex.main(tiny + ["--mlm-steps", "3", "--valid", "--out", str(tmp_path / "v")])
    b = tl.load(str(tmp_path / "v" / "mlm" / "checkpoint.npz"))
    m = tl.load(str(tmp_path / "v" / "checkpoint.npz"))["model"]
    assert b["step"] == 3
    for tower in ("query_encoder", "context_encoder"):
        np.testing.assert_array_equal(m[f"{tower}.layers.0.linear1.weight"],
                                      b["model"]["layers.0.linear1.weight"])
    n_valid = int(open(tmp_path / "v" / "results.txt").read().split()[0])
    ex.main(tiny + ["--out", str(tmp_path / "t")])
    n_test = int(open(tmp_path / "t" / "results.txt").read().split()[0])
    docs = {}
    for v in tl.data.load_kjv():
        docs.setdefault((v.book, v.chapter), []).append(v)
    docs = list(docs.values())[::len(docs) // 100][:100]
    train = [d for i, d in enumerate(docs) if i % 10 != 9]
    assert n_valid == sum(len(d) for i, d in enumerate(train) if i % 10 == 4)
    assert n_test == sum(len(d) for i, d in enumerate(docs) if i % 10 == 9)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """`python examples/ict_kjv.py` (5 epochs of 438 steps of 64, one shared tower; ~39 min
    at 1 thread on 2 shared cores)."""
    results, _ = load_example("ict_kjv").main(["--out", str(tmp_path_factory.mktemp("ict"))])
    return results


@pytest.mark.long
def test_ict_retrieves_far_above_chance(full_run):
    """Measured (3,057 held-out passages, chance recall@1 / @10 0.0003 / 0.003): ICT with
    one shared tower 0.048 / 0.237 after 5 epochs (0.047 / 0.239 after 4); two towers (the
    former default) gave 0.058 / 0.249; the [CLS] dot-product recipe with passages cut at 48
    tokens (towers from bert_kjv.py) gave 0.012 / 0.086."""
    assert full_run["ICT"]["recall@1"] > 0.04, full_run
    assert full_run["ICT"]["recall@10"] > 0.2, full_run


@pytest.mark.long
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="not met: ICT from scratch stays below BM25 (README row)")
def test_ict_beats_bm25_on_the_same_split(full_run):
    """Issue 20's goal: recall@1 and @10 above BM25's (0.104 / 0.332) and TF-IDF's (0.095 /
    0.320); measured ICT (one shared tower) 0.048 / 0.237 after 5 epochs, recall@1 / @10 per
    epoch 0.038 / 0.180, 0.044 / 0.220, 0.048 / 0.233, 0.047 / 0.239, 0.048 / 0.237 (two
    towers: 0.058 / 0.249). Not met."""
    for baseline in ("BM25", "TF-IDF"):
        for k in ("recall@1", "recall@10"):
            assert full_run["ICT"][k] > full_run[baseline][k], full_run
