"""The inverse cloze task (tinylatent/models/ict.py): the in-batch softmax loss, recall@k,
the pair construction, and examples/ict_kjv.py end to end with tiny settings (TF-IDF and
BM25 baselines on the same split, exact resume)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tinylatent as tl
from tinylatent.models.ict import ICT, recall_at_k

ROOT = Path(__file__).resolve().parent.parent


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
    spec = importlib.util.spec_from_file_location("ict_example", ROOT / "examples" / "ict_kjv.py")
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    tiny = ["--chapters", "30", "--layers", "1", "--dim", "16", "--max-len", "24",
            "--merges", "50", "--steps-per-epoch", "2", "--batch-size", "8"]
    full, hist = ex.main(tiny + ["--epochs", "2", "--out", str(tmp_path / "a")])
    assert set(full) == {"ICT", "TF-IDF", "BM25"}
    # word overlap with the neighbours finds some passages: the baselines beat chance
    n = int(open(tmp_path / "a" / "results.txt").read().split()[0])
    assert full["BM25"]["recall@10"] > 10 / n
    ex.main(tiny + ["--epochs", "1", "--out", str(tmp_path / "b")])
    resumed, hist_b = ex.main(tiny + ["--epochs", "2", "--resume", "--out", str(tmp_path / "b")])
    assert hist_b == hist and resumed == full
