"""tinylatent.train.Trainer: exact resume, metric averaging, config check, outputs."""
from __future__ import annotations

import os

import numpy as np
import pytest

import tinylatent as tl
from tinylatent import nn
from tinylatent.data import DataLoader, TensorDataset
from tinylatent.train import Trainer, config_differences, fit


class NoisyAE(nn.Module):
    """A tiny denoising autoencoder: its loss draws from the global RNG, and dropout too, so
    resuming must restore the RNG state to reproduce the run."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Dropout(0.2), nn.Linear(4, 6))

    def loss(self, batch):
        (x,) = batch
        x_hat = self.net(x + 0.1 * tl.randn(*x.shape))
        mse = ((x_hat - x) ** 2).mean()
        return mse, {"loss": mse, "mse_sum": ((x_hat - x) ** 2).sum(-1).mean()}


def _run(out, epochs, resume=False, shuffle_seed=None, config=None, evaluate=None,
         interval="epoch"):
    tl.manual_seed(123 if not resume else 999)  # a resumed run must not depend on this seed
    data = TensorDataset(tl.tensor(np.random.default_rng(0).normal(size=(50, 6)),
                                   dtype=tl.float32))
    gen = tl.Generator(shuffle_seed) if shuffle_seed is not None else None
    loader = DataLoader(data, batch_size=8, shuffle=True, generator=gen)
    model = NoisyAE()
    opt = tl.optim.Adam(model.parameters(), lr=1e-2)
    sched = tl.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    trainer = Trainer(model, opt, str(out), config=config or {"lr": 1e-2, "epochs": epochs},
                      scheduler=sched, evaluate=evaluate, scheduler_interval=interval)
    history = trainer.fit(loader, epochs, resume=resume)
    return trainer, history


@pytest.mark.parametrize("shuffle_seed", [None, 7])
def test_resume_is_bitwise_exact(tmp_path, shuffle_seed):
    """2 epochs straight == 1 epoch, then a fresh process-like resume for 1 more: weights,
    optimizer moments, scheduler, RNG streams and history all equal bit for bit. With
    shuffle_seed=None the loader shuffles with the global generator."""
    straight, h_straight = _run(tmp_path / "a", 2, shuffle_seed=shuffle_seed)
    _run(tmp_path / "b", 1, shuffle_seed=shuffle_seed)
    resumed, h_resumed = _run(tmp_path / "b", 2, resume=True, shuffle_seed=shuffle_seed)
    assert h_resumed == h_straight and len(h_straight) == 2
    for (name, p), (_, q) in zip(straight.model.state_dict().items(),
                                 resumed.model.state_dict().items()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)
    a, b = straight.optimizer.state_dict(), resumed.optimizer.state_dict()
    for i in a["state"]:
        for key in a["state"][i]:
            np.testing.assert_array_equal(np.asarray(a["state"][i][key]),
                                          np.asarray(b["state"][i][key]))
    assert a["param_groups"][0]["lr"] == b["param_groups"][0]["lr"] == 1e-2 * 0.25
    assert tl.get_rng_state() == straight.state_dict()["rng"] == resumed.state_dict()["rng"]
    assert resumed.epoch == 2 and resumed.step == straight.step == 2 * 7


def test_scheduler_stepped_per_update_and_resumed(tmp_path):
    """scheduler_interval="step": the scheduler steps after every update (7 a epoch here),
    so StepLR(1, 0.5) halves the rate 14 times in 2 epochs; a resumed run continues it,
    bit for bit; any other interval is refused."""
    straight, h_straight = _run(tmp_path / "a", 2, interval="step")
    _run(tmp_path / "b", 1, interval="step")
    resumed, h_resumed = _run(tmp_path / "b", 2, resume=True, interval="step")
    assert h_resumed == h_straight
    assert straight.optimizer.param_groups[0]["lr"] == \
        resumed.optimizer.param_groups[0]["lr"] == 1e-2 * 0.5 ** 14
    for (name, p), (_, q) in zip(straight.model.state_dict().items(),
                                 resumed.model.state_dict().items()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)
    with pytest.raises(ValueError, match="scheduler_interval must be 'epoch' or 'step'"):
        Trainer(NoisyAE(), tl.optim.SGD(NoisyAE().parameters(), lr=0.1), str(tmp_path),
                scheduler_interval="batch")


def test_epoch_metrics_are_per_item_means_and_files_are_written(tmp_path):
    """With lr = 0 the weights never move, so the epoch's "loss" is the data-set mean of
    the per-batch losses weighted by batch size (7 batches of 8 and one of 2 ... of 50)."""
    tl.manual_seed(0)
    x = tl.tensor(np.random.default_rng(1).normal(size=(50, 6)), dtype=tl.float32)

    class Linear(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(6, 6)

        def loss(self, batch):
            (xb,) = batch
            err = ((self.lin(xb) - xb) ** 2).sum(-1).mean()
            return err, {"loss": err, "as_float": float(err.item())}

    model = Linear()
    with tl.no_grad():
        expected = float(((model.lin(x) - x) ** 2).sum(-1).mean().item())
    seen = []
    history = fit(model, tl.optim.SGD(model.parameters(), lr=0.0),
                  DataLoader(TensorDataset(x), batch_size=8), epochs=2, out=str(tmp_path),
                  evaluate=lambda m: seen.append(m.training) or {"test_loss": tl.tensor(1.5)})
    assert [h["epoch"] for h in history] == [1, 2]
    for h in history:
        assert h["loss"] == pytest.approx(expected, rel=1e-5)
        assert h["as_float"] == pytest.approx(expected, rel=1e-5)
        assert h["test_loss"] == 1.5 and isinstance(h["test_loss"], float)
    assert seen == [False, False]  # evaluate sees the model in eval mode
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "loss_curve.png"]
    ckpt = tl.load(str(tmp_path / "checkpoint.npz"))
    assert ckpt["epoch"] == 2 and [dict(h) for h in ckpt["history"]] == history


def test_resume_refuses_changed_settings_and_names_them(tmp_path):
    _run(tmp_path, 1, config={"lr": 1e-2, "hidden": 4, "epochs": 1})
    trainer_before = tl.load(str(tmp_path / "checkpoint.npz"))
    with pytest.raises(ValueError, match=r"hidden: 4 -> 8; lr: 0.01 -> 0.1"):
        _run(tmp_path, 2, resume=True, config={"lr": 0.1, "hidden": 8, "epochs": 2})
    # the failed resume changed nothing on disk; more epochs is an allowed change
    assert tl.load(str(tmp_path / "checkpoint.npz"))["epoch"] == trainer_before["epoch"] == 1
    _, history = _run(tmp_path, 2, resume=True, config={"lr": 1e-2, "hidden": 4, "epochs": 2})
    assert len(history) == 2
    assert config_differences({"a": (1, 2), "out": "x"}, {"a": [1, 2], "out": "y"}) == []
    assert config_differences({"a": 1}, {"b": 2}) == ["a: 1 -> '<absent>'",
                                                      "b: '<absent>' -> 2"]


def test_resume_without_checkpoint_starts_fresh_and_key_clash_is_refused(tmp_path, capsys):
    _, history = _run(tmp_path / "new", 1, resume=True)
    assert len(history) == 1 and "starting from scratch" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"evaluate returned keys \['loss'\]"):
        _run(tmp_path / "clash", 1, evaluate=lambda m: {"loss": 0.0})


def test_progress_bar_off_when_stdout_is_not_a_terminal(tmp_path):
    model = NoisyAE()
    assert Trainer(model, tl.optim.SGD(model.parameters(), lr=0.1), str(tmp_path)).progress \
        is False  # pytest captures stdout: not a tty


# ----------------------------------------------------------------- several optimizers (GANs)
def _run_gan(out, epochs, resume=False, n_critic=2):
    from tinylatent.models import GAN
    tl.manual_seed(5 if not resume else 77)   # a resumed run must not depend on this seed
    data = TensorDataset(tl.tensor(np.random.default_rng(0).normal(size=(40, 2)),
                                   dtype=tl.float32))
    loader = DataLoader(data, batch_size=8, shuffle=True, generator=tl.Generator(3))
    model = GAN(hidden_features=(6,), n_critic=n_critic)
    opts = model.optimizers()
    scheds = {"generator": tl.optim.lr_scheduler.StepLR(opts["generator"], 1, gamma=0.5)}
    trainer = Trainer(model, opts, str(out), config={"epochs": epochs}, scheduler=scheds)
    return trainer, trainer.fit(loader, epochs, resume=resume)


def test_two_optimizers_train_through_training_step_and_resume_exactly(tmp_path):
    """A dict of optimizers: the model's training_step does the updates (here D every step, G
    every 2nd, counted by the trainer's global step, 5 steps an epoch so the phase crosses
    the epoch boundary); 1 epoch + resume + 1 epoch == 2 epochs, bit for bit, both
    optimizers' moments and the generator's scheduler included."""
    straight, h_straight = _run_gan(tmp_path / "a", 2)
    _run_gan(tmp_path / "b", 1)
    resumed, h_resumed = _run_gan(tmp_path / "b", 2, resume=True)
    assert h_resumed == h_straight and len(h_straight) == 2
    assert {"loss", "d_loss", "g_loss", "d_real", "d_fake"} <= set(h_straight[0])
    # g_loss is logged on G's steps only: its epoch mean is over those batches (~0.7 at
    # the start, not halved by the batches without it)
    assert 0.3 < h_straight[0]["g_loss"] < 3.0
    for (name, p), (_, q) in zip(straight.model.state_dict().items(),
                                 resumed.model.state_dict().items()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)
    for key in ("discriminator", "generator"):
        a, b = straight.optimizer[key].state_dict(), resumed.optimizer[key].state_dict()
        assert a["state"] and a["state"].keys() == b["state"].keys()
        for i in a["state"]:
            for k in a["state"][i]:
                np.testing.assert_array_equal(np.asarray(a["state"][i][k]),
                                              np.asarray(b["state"][i][k]))
    assert resumed.optimizer["generator"].param_groups[0]["lr"] == pytest.approx(1e-3 / 4)
    assert resumed.optimizer["discriminator"].param_groups[0]["lr"] == 1e-3
    # the generator stepped on every 2nd of the 10 steps: Adam's step count says so
    g_state = next(iter(straight.optimizer["generator"].state_dict()["state"].values()))
    d_state = next(iter(straight.optimizer["discriminator"].state_dict()["state"].values()))
    assert int(np.asarray(g_state["step"])) == 5 and int(np.asarray(d_state["step"])) == 10


def test_several_optimizers_need_training_step_and_matching_names(tmp_path):
    model = NoisyAE()
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="must define training_step"):
        Trainer(model, {"a": opt}, str(tmp_path))
    with pytest.raises(ValueError, match="a dict of schedulers needs a dict of optimizers"):
        Trainer(model, opt, str(tmp_path),
                scheduler={"a": tl.optim.lr_scheduler.StepLR(opt, 1)})
    _run_gan(tmp_path, 1)
    from tinylatent.models import GAN
    gan = GAN(hidden_features=(6,), n_critic=2)
    only_d = {"discriminator": gan.optimizers()["discriminator"]}
    gan.training_step = lambda batch, optimizers, step: {"loss": tl.tensor(0.0)}
    with pytest.raises(ValueError, match=r"optimizers \['discriminator', 'generator'\] are "
                                         r"not this run's \['discriminator'\]"):
        Trainer(gan, only_d, str(tmp_path), config={"epochs": 1}).load_checkpoint(
            DataLoader(TensorDataset(tl.zeros(4, 2)), 2, generator=tl.Generator(3)))


def test_defaults_help_formatter_shows_every_default():
    """The examples' --help lists every option's default, with help text or without; a None
    default (decided at run time, the help says how) and an off store_true flag say nothing."""
    import argparse
    p = argparse.ArgumentParser(formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--lr", type=float, default=3e-4)                      # no help text
    p.add_argument("--epochs", type=int, default=None, help="10, or 50 offline")
    p.add_argument("--steps", type=int, default=0, help="0: one epoch")
    p.add_argument("--resume", action="store_true", help="continue")
    p.add_argument("--probe", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--hidden", default=7, help=argparse.SUPPRESS)
    text = " ".join(p.format_help().split())
    assert "--lr LR (default: 0.0003)" in text
    assert "10, or 50 offline --steps" in text and "(default: None)" not in text
    assert "0: one epoch (default: 0)" in text
    assert "continue --probe" in text and "(default: False)" not in text
    assert "(default: True)" in text and "hidden" not in text
    assert p.parse_args([]).lr == 3e-4 and p._actions[1].help is None   # actions untouched


def test_every_example_shows_its_defaults_in_help():
    """The style rule "examples show their defaults in --help": each example's parser uses
    DefaultsHelpFormatter (a new example that forgets it fails here)."""
    import glob
    import os
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples")
    missing = [os.path.basename(p) for p in sorted(glob.glob(os.path.join(root, "*.py")))
               if "argparse.ArgumentParser(" in open(p, encoding="utf-8").read()
               and "formatter_class=tl.train.DefaultsHelpFormatter"
               not in open(p, encoding="utf-8").read()]
    assert not missing, f"examples without tl.train.DefaultsHelpFormatter: {missing}"
