"""Dual supervised learning (examples/dual_mnist.py's models) written again in PyTorch, next to
tinylatent's DualSupervised, side by side (as benchmarks/made_reference.py does for MADE).

The twin: an MLP classifier P(y|x) (784-H-10), a conditional MADE P(x|y) (one hidden layer
of H units, direct connections, a label embedding added to the hidden pre-activation and to
the output logits), a frozen unconditional MADE P^(x) and the empirical log label
frequencies, with the loss of Xia et al. 2017, eq. 4: both models' negative log-likelihoods
plus lambda_xy and lambda_yx times the squared duality gap (eq. 3), each model's term seeing
the other model's log-probability as a constant (Algorithm 1). Its masks come from
made_reference.twin_masks (computed independently of tinylatent from the same seeds); it
starts from tinylatent's weights and sees the same binarised, labelled minibatches.
"""
from __future__ import annotations

import numpy as np

import tinylatent as tl
from benchmarks.made_reference import BinarySideBySide, TorchMADE, torch
from tinylatent.data import binarize
from tinylatent.models import MADE, DualSupervised

if torch is not None:
    import torch.nn.functional as F
    from torch import nn

    class TorchDual(nn.Module):
        """The twin of DualSupervised (parameter names as tinylatent's state_dict)."""

        def __init__(self, d, k, hidden, seed, log_label_prior, lambdas):
            super().__init__()
            self.classifier = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(),
                                            nn.Linear(hidden, k))
            self.conditional = nn.Module()
            self.conditional.made = TorchMADE(d, hidden, 1, seed)
            self.conditional.context = nn.ModuleList([nn.Embedding(k, hidden),
                                                      nn.Embedding(k, d)])
            self.marginal = TorchMADE(d, hidden, 1, seed).requires_grad_(False)
            self.log_label_prior = torch.from_numpy(log_label_prior)
            self.lambdas = lambdas

        def log_p_x_given_y(self, x, y):
            made, (mh, mo, md) = self.conditional.made, self.conditional.made.masks[0]
            emb = self.conditional.context
            h = F.relu(F.linear(x, made.hidden[0].weight * mh, made.hidden[0].bias) + emb[0](y))
            logits = (F.linear(h, made.output.weight * mo, made.output.bias)
                      + F.linear(x, made.direct.weight * md) + emb[1](y))
            return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)

        def loss(self, x, y):
            log_py = F.log_softmax(self.classifier(x), 1).gather(1, y[:, None])[:, 0]
            log_px = self.log_p_x_given_y(x, y)
            with torch.no_grad():
                const = -self.marginal.nll(x, 0) - self.log_label_prior[y]
            gap_xy = const + log_py - log_px.detach()
            gap_yx = const + log_py.detach() - log_px
            return (-log_py.mean() - log_px.mean() + self.lambdas[0] * (gap_xy ** 2).mean()
                    + self.lambdas[1] * (gap_yx ** 2).mean())


class DualSideBySide(BinarySideBySide):
    """tinylatent's DualSupervised and the PyTorch twin, the marginal MADE trained
    `marginal_steps` steps first (tinylatent; the twin copies it)."""

    def __init__(self, seed=0, hidden=500, lambdas=(0.01, 0.01), marginal_steps=40, lr=1e-3,
                 batch_size=100, n_test=None):
        _, labels = tl.data.load_mnist("mnist", "train")
        _, y_test = tl.data.load_mnist("mnist", "test")
        self.labels, self.y_test = labels, y_test[:n_test]
        self.marginal_steps, self.lambdas = marginal_steps, lambdas
        super().__init__(seed, lr, batch_size, None, n_test, "mnist", hidden=hidden)

    def build(self, seed, hidden):
        marginal = MADE(in_features=784, hidden_features=(hidden,), seed=seed)
        opt = tl.optim.Adam(marginal.parameters(), lr=3e-3)
        rng = np.random.default_rng((seed, 9))
        for _ in range(self.marginal_steps):
            loss, _ = marginal.loss(tl.tensor(binarize(
                self.train[rng.integers(0, len(self.train), self.batch_size)], rng)))
            opt.zero_grad()
            loss.backward()
            opt.step()
        model = DualSupervised(hidden_features=(hidden,), density_hidden_features=(hidden,),
                               lambda_xy=self.lambdas[0], lambda_yx=self.lambdas[1],
                               seed=seed, marginal=marginal)
        model.set_label_marginal(self.labels)
        # the twin's weights, the frozen marginal's included, are copied by the base class
        return model, TorchDual(784, 10, hidden, seed, model.log_label_prior.numpy(),
                                self.lambdas)

    def batches(self):
        """One epoch of dynamically binarised, labelled minibatches."""
        perm = self.rng.permutation(len(self.train))
        for i in range(0, len(perm), self.batch_size):
            idx = perm[i: i + self.batch_size]
            yield binarize(self.train[idx], self.rng), self.labels[idx]

    def step(self, batch):
        """One training step of each on (x, y) -> (tl loss, pt loss)."""
        x, y = batch
        loss, _ = self.tl_model.loss((tl.tensor(x), tl.tensor(y)))
        self.tl_opt.zero_grad()
        loss.backward()
        self.tl_opt.step()
        pt_loss = self.pt_model.loss(torch.from_numpy(x), torch.from_numpy(y))
        self.pt_opt.zero_grad()
        pt_loss.backward()
        self.pt_opt.step()
        return float(loss.item()), float(pt_loss.item())

    def test_nll(self, batch: int = 500) -> tuple[float, float]:
        """Class-conditional test NLL -log P(x|y) (nats per image), both sides."""
        x, y = self.x_test, self.y_test
        with tl.no_grad():
            a = -self.tl_model.log_prob(tl.tensor(x), tl.tensor(y)).numpy().mean()
        with torch.no_grad():
            b = -self.pt_model.log_p_x_given_y(torch.from_numpy(x),
                                               torch.from_numpy(y)).mean()
        return float(a), float(b)
