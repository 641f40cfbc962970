"""The NADE recipe of examples/autoregressive_mnist.py written again in PyTorch, next to
tinylatent's NADE, side by side (as benchmarks/made_reference.py does for MADE).

Recipe (Larochelle & Murray 2011, Eqs. 5-7, natural pixel order):
    a_d = c + W[:, <d] x_<d,  h_d = sigmoid(a_d),  p(x_d = 1 | x_<d) = sigmoid(b_d + V_d . h_d)
computed for all d at once with a cumulative sum over the inputs (O(DH)); 500 hidden units;
Adam lr 1e-2 (the example's default), batches of 100, dynamic binarisation (fresh each epoch),
test set binarised once with a fixed seed. The twin starts from tinylatent's initial weights
and sees the same minibatches; NADE has no noise of its own, so the two trainings agree to
float32 rounding step by step.

    python -m benchmarks.nade_reference --epochs 5 --seeds 0 1 2                  # MNIST
    python -m benchmarks.nade_reference --dataset fashion-mnist --epochs 5 --seeds 0 1 2
"""
from __future__ import annotations

import tinylatent as tl
from benchmarks.made_reference import BinarySideBySide, reference_args, run_table
from benchmarks.twin_checkpoint import TwinCheckpoint
from tinylatent.models.autoregressive import NADE

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - the benchmark skips without PyTorch
    torch = None


if torch is not None:
    class TorchNADE(nn.Module):
        """NADE in PyTorch with tinylatent's parameter names: W (H, D), c (H,), V (D, H),
        b (D,). Written from the paper's equations, not from tinylatent's code."""

        def __init__(self, d=784, hidden=500):
            super().__init__()
            self.W = nn.Parameter(torch.zeros(hidden, d))
            self.c = nn.Parameter(torch.zeros(hidden))
            self.V = nn.Parameter(torch.zeros(d, hidden))
            self.b = nn.Parameter(torch.zeros(d))

        def logits(self, x):
            # a[:, d] = c + sum_{j<d} x_j W[:, j]: an exclusive cumulative sum over pixels
            contrib = x.unsqueeze(-1) * self.W.t()                    # (B, D, H)
            a = torch.cumsum(contrib, dim=1) - contrib + self.c
            return torch.einsum("bdh,dh->bd", torch.sigmoid(a), self.V) + self.b

        def nll(self, x):
            return F.binary_cross_entropy_with_logits(self.logits(x), x,
                                                      reduction="none").sum(1)


class SideBySide(BinarySideBySide):
    """tinylatent's NADE and the PyTorch twin."""

    def __init__(self, seed=0, hidden=500, lr=1e-2, batch_size=100, data_dir=None,
                 n_test=None, dataset="mnist"):
        super().__init__(seed, lr, batch_size, data_dir, n_test, dataset, hidden=hidden)

    def build(self, seed, hidden):
        return NADE(in_features=784, hidden_features=hidden), TorchNADE(784, hidden)

    def pt_train_loss(self, x):
        return self.pt_model.nll(x).mean()

    def tl_test_nll(self, x):
        return -self.tl_model.log_prob(tl.tensor(x)).numpy()

    def pt_test_nll(self, x):
        return self.pt_model.nll(x)


def main() -> None:
    args = reference_args("NADE recipe: tinylatent vs PyTorch, per epoch", epochs=5)
    torch.set_num_threads(1)
    run_table(SideBySide, f"NADE on {args.dataset}", args.epochs, args.seeds,
              TwinCheckpoint(args.checkpoint, vars(args)), args.resume,
              data_dir=args.data_dir, dataset=args.dataset)


if __name__ == "__main__":
    main()
