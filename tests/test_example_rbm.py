"""examples/rbm_mnist.py end to end with tiny settings (embedded data): pictures, results,
and a resumed PCD run (persistent chains in the checkpoint) equal bit for bit to a straight one."""
import json

import numpy as np
import pytest

import tinylatent as tl

from example_runner import load_example


pytestmark = pytest.mark.usefixtures("offline_data")


@pytest.fixture(scope="module")
def example():
    return load_example("rbm_mnist")


def test_pictures_results_and_exact_resume(example, tmp_path):
    common = ["--limit-train", "300", "--hidden", "20", "--pcd", "--k", "2",
              "--ais-chains", "20", "--ais-betas", "200"]
    _, results = example.main(common + ["--epochs", "2", "--out", str(tmp_path / "a")])
    example.main(common + ["--epochs", "1", "--out", str(tmp_path / "b"), "--no-probe"])
    example.main(common + ["--epochs", "2", "--out", str(tmp_path / "b"), "--resume"])
    for name in ("filters.png", "gibbs_chain.png", "loss_curve.png"):
        blob = (tmp_path / "b" / name).read_bytes()
        assert blob[:4] == b"\x89PNG" and len(blob) > 2000, name
    assert results["test_ll"] > results["independent_pixels_test_ll"] - 30
    assert 0.1 < results["probe_rbm"] <= 1 and 0.1 < results["probe_pixels"] <= 1
    assert json.loads((tmp_path / "a" / "results.json").read_text())["hidden"] == 20
    a = tl.load(str(tmp_path / "a" / "checkpoint.npz"))
    b = tl.load(str(tmp_path / "b" / "checkpoint.npz"))
    assert a["epoch"] == b["epoch"] == 2 and "rbm.chains" in a["model"]
    assert [dict(h) for h in a["history"]] == [dict(h) for h in b["history"]]
    for key in a["model"]:
        np.testing.assert_array_equal(a["model"][key].numpy(), b["model"][key].numpy(),
                                      err_msg=key)
    with pytest.raises(ValueError, match="k: 2 -> 3"):
        example.main(["--limit-train", "300", "--hidden", "20", "--pcd", "--k", "3",
                      "--epochs", "3", "--resume", "--out", str(tmp_path / "b")])


def test_dbn_bound_below_exact_log_p_and_top_ais_at_exact_log_z(example, tmp_path):
    """--dbn on a model small enough to enumerate (784-12-8): the top RBM's AIS log Z within
    0.1 nats of the exact one, and the DBN's test variational bound below the exact test
    log p(v) (enumerating h1), by a gap that is not zero (q(h1|v) is not the posterior)."""
    from tinylatent.models import DBN
    from tinylatent.models.boltzmann import exact_log_prob_dbn
    argv = ["--limit-train", "300", "--hidden", "12", "--dbn", "8", "--epochs", "2",
            "--ais-chains", "100", "--ais-betas", "2000", "--bound-samples", "200",
            "--no-probe", "--out", str(tmp_path)]
    _, results = example.main(argv)
    dbn = DBN(in_features=784, hidden_features=(12, 8))
    dbn.load_state_dict({k[4:]: v for k, v in tl.load(str(tmp_path / "dbn" / "checkpoint.npz"))
                         ["model"].items()})
    assert dbn.layer == 1
    exact_log_z = dbn.rbms[1].log_partition("exact")
    assert abs(results["dbn"]["top_log_z"] - exact_log_z) < 0.1, (results["dbn"], exact_log_z)
    _, (Xt, _), _ = example.binarised(example.parse_args(argv))
    exact = float(exact_log_prob_dbn(dbn, tl.tensor(Xt)).mean())
    gap = exact - results["dbn"]["test_bound"]
    assert 0.0 < gap < 10.0, (exact, results["dbn"]["test_bound"])
