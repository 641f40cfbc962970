"""Train a binary RBM on binarised MNIST by CD-k or persistent CD; estimate the test
log-likelihood with AIS; compare RBM features with raw pixels under logistic regression.

    python examples/rbm_mnist.py                        # CD-1, 500 hidden units
    python examples/rbm_mnist.py --k 25                 # CD-25
    python examples/rbm_mnist.py --pcd                  # persistent CD (Tieleman 2008)
    python examples/rbm_mnist.py --dataset fashion-mnist
    python examples/rbm_mnist.py --k 25 --dbn 784 --dbn-lr 0.005   # then a greedy DBN 784-500-784

Offline this is the embedded 4,000 / 1,000 MNIST subset (the published anchor, CD-25 with 500
hidden units at -86.34 nats, Salakhutdinov & Murray 2008, is on the full 60k / 10k set).
Images are binarised once by x ~ Bernoulli(pixel) with fixed seeds. Writes under --out:
filters.png (the first 100 rows of W), gibbs_chain.png (chains from noise and from test
images), loss_curve.png, checkpoint.npz (--resume continues exactly), results.json.
--dbn H2 then trains a second RBM (H -> H2) on samples h1 ~ p(h1 | v) of the first, frozen
(Hinton et al. 2006), under OUT/dbn/, and reports the DBN's variational lower bound on the test
log p(v) with AIS for the top RBM's log Z (Salakhutdinov & Murray 2008, Sec. 5.1, Eq. 17)
next to the RBM's own AIS figure on the same split (their anchor: -86.22 vs -86.34, full MNIST).
The model is tinylatent/models/boltzmann.py; AIS is tinylatent/models/ais.py.
"""
import argparse
import json
import os

import numpy as np

import tinylatent as tl
from tinylatent.data import MNIST, DataLoader, TensorDataset, save_image_grid
from tinylatent.eval import linear_probe
from tinylatent.models import DBN, RBM



def parse_args(argv=None):
    p = argparse.ArgumentParser(description="RBM on binarised MNIST (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--hidden", type=int, default=500, help="hidden units")
    p.add_argument("--k", type=int, default=1, help="Gibbs sweeps per update (CD-k / PCD-k)")
    p.add_argument("--pcd", action="store_true", help="persistent chains (PCD)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=2e-4)
    p.add_argument("--dbn", type=int, default=0, metavar="H2",
                   help="also train a DBN with a top RBM of H2 units on this RBM (0: no)")
    p.add_argument("--dbn-epochs", type=int, default=None, help="default --epochs")
    p.add_argument("--dbn-lr", type=float, default=None, help="default --lr")
    p.add_argument("--bound-samples", type=int, default=10,
                   help="draws of h1 ~ q(h1 | v) per test image in the DBN's bound")
    p.add_argument("--ais-chains", type=int, default=100)
    p.add_argument("--ais-betas", type=int, default=14500, help="0: skip AIS")
    p.add_argument("--probe", action=argparse.BooleanOptionalAction, default=True,
                   help="logistic regression on RBM features vs raw pixels")
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/rbm_mnist")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--limit-train", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def save_pictures(rbm, Xt, args):
    W = rbm.weight.detach().numpy_host()[:100]                                 # (100, 784)
    W = (W - W.min(1, keepdims=True)) / (np.ptp(W, 1, keepdims=True) + 1e-8)
    save_image_grid(W, f"{args.out}/filters.png", 10,
                    "filters: rows of W, each scaled to [0, 1]")
    g = tl.Generator(args.seed)
    steps = [0, 1, 10, 100, 1000]
    starts = np.concatenate([(np.random.default_rng(args.seed).random((5, 784)) < 0.5),
                             Xt[:5]]).astype(np.float32)      # 5 chains from noise, 5 from data
    v, frames = tl.tensor(starts), []
    for a, b in zip([0] + steps, steps):
        v = rbm.gibbs(v, b - a, generator=g)
        frames.append(rbm.visible_probs(rbm.hidden_probs(v)).detach().numpy_host())
    grid = np.stack(frames, 1).reshape(-1, 784)          # (10 chains * 5 steps, 784), per row
    save_image_grid(grid, f"{args.out}/gibbs_chain.png", len(steps),
                    f"Gibbs chains (p(v|h) after {steps} sweeps); rows 1-5 from noise, 6-10 from "
              "test images")


def binarised(args):
    """(X, y) train and test, binarised once, x ~ Bernoulli(pixel), as tl.data.binarize does
    (fixed seeds), and the data's source."""
    train, test = (MNIST(s, args.dataset, args.data_dir, flatten=True) for s in ("train", "test"))
    (xtr, ytr), (xte, yte) = ([t.numpy_host() for t in d.tensors] for d in (train, test))
    if args.limit_train:
        xtr, ytr = xtr[:args.limit_train], ytr[:args.limit_train]
    X, Xt = ((np.random.default_rng(i).random(x.shape) < x).astype(np.float32)
             for i, x in enumerate((xtr, xte)))
    return (X, ytr), (Xt, yte), train.source


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    (X, ytr), (Xt, yte), source = binarised(args)
    tl.manual_seed(args.seed)
    rbm = RBM(in_features=784, hidden_features=args.hidden, k=args.k, persistent=args.pcd,
              num_chains=args.batch_size)
    rbm.init_visible_bias(tl.tensor(X))
    base = rbm.v_bias.detach().clone()          # AIS base model: the data's pixel log-odds
    opt = tl.optim.SGD(rbm.parameters(), lr=args.lr, momentum=args.momentum,
                       weight_decay=args.weight_decay)
    loader = DataLoader(TensorDataset(tl.tensor(X)), args.batch_size, shuffle=True,
                        generator=tl.Generator(args.seed))

    def evaluate(model):   # monitors, not p(v): mean free energy, mean-field reconstruction
        with tl.no_grad():
            x = tl.tensor(Xt)
            r = tl.clamp(rbm.visible_probs(rbm.hidden_probs(x)), 1e-6, 1 - 1e-6)
            recon = -(x * tl.log(r) + (1 - x) * tl.log(1 - r)).sum(axis=1).mean()
            return {"test_free_energy": rbm.free_energy(x).mean(), "test_recon_nll": recon}

    evaluation_only = ("ais_chains", "ais_betas", "probe", "dbn", "dbn_epochs", "dbn_lr",
                       "bound_samples")
    config = {k: v for k, v in vars(args).items() if k not in evaluation_only}
    trainer = tl.train.Trainer(_Unbatch(rbm), opt, args.out, config=config, evaluate=evaluate)
    history = trainer.fit(loader, epochs=args.epochs, resume=args.resume)
    save_pictures(rbm, Xt, args)
    results = {"data": f"{args.dataset} ({source}: {len(X)} train / {len(Xt)} test)",
               "epochs": len(history), "k": args.k, "pcd": args.pcd, "hidden": args.hidden}
    if args.ais_betas:
        res = rbm.ais(base_v_bias=base, num_chains=args.ais_chains, num_betas=args.ais_betas,
                      generator=tl.Generator(args.seed))
        with tl.no_grad():
            lp = lambda x: float(rbm.log_prob(tl.tensor(x), log_z=res.log_z).mean().item())  # noqa
            results.update(log_z=res.log_z, log_z_3sd=[res.log_z_low, res.log_z_high],
                           train_ll=lp(X), test_ll=lp(Xt))
        p = X.mean(0).clip(1e-3, 1 - 1e-3)
        results["independent_pixels_test_ll"] = float((Xt * np.log(p) + (1 - Xt) *
                                                       np.log(1 - p)).sum(1).mean())
        print(f"AIS log Z = {res.log_z:.2f} (3 sd: [{res.log_z_low:.2f}, {res.log_z_high:.2f}]);"
              f" test log-likelihood {results['test_ll']:.2f} nats (independent pixels "
              f"{results['independent_pixels_test_ll']:.2f})")
    if args.dbn:
        results["dbn"] = train_dbn(rbm, X, Xt, args)
    if args.probe:
        with tl.no_grad():
            f, ft = rbm.encode(tl.tensor(X)).numpy_host(), rbm.encode(tl.tensor(Xt)).numpy_host()
        results.update(probe_rbm=linear_probe(f, ytr, ft, yte),
                       probe_pixels=linear_probe(X, ytr, Xt, yte))
        print(f"logistic regression accuracy: RBM features {results['probe_rbm']:.4f}, raw "
              f"pixels {results['probe_pixels']:.4f}")
    with open(f"{args.out}/results.json", "w") as fh:
        json.dump(results, fh, indent=1)
    print(f"pictures, checkpoint and results.json in {args.out}/")
    return history, results


def train_dbn(rbm, X, Xt, args):
    """Greedy second layer (Hinton et al. 2006, Sec. 4) on the trained RBM; the test bound."""
    dbn = DBN(in_features=784, hidden_features=(args.hidden, args.dbn), k=args.k,
              persistent=args.pcd, num_chains=args.batch_size)
    dbn.rbms[0].load_state_dict(rbm.state_dict())
    dbn.next_layer()                    # ties W2 = W1^T only when H2 = 784
    top, g = dbn.rbms[1], tl.Generator(args.seed + 1)
    with tl.no_grad():                  # the top RBM's data: h1's probabilities on the train set
        p1 = dbn.up(tl.tensor(X), 1, sample=False)
    if args.dbn != 784:
        top.init_visible_bias(p1)
    base = top.v_bias.detach().clone()  # AIS base for the top RBM: h1's mean log-odds
    lr = args.lr if args.dbn_lr is None else args.dbn_lr
    opt = tl.optim.SGD(top.parameters(), lr=lr, momentum=args.momentum,
                       weight_decay=args.weight_decay)
    loader = DataLoader(TensorDataset(tl.tensor(X)), args.batch_size, shuffle=True,
                        generator=tl.Generator(args.seed + 1))
    config = {"dbn": args.dbn, "k": args.k, "pcd": args.pcd, "lr": lr, "seed": args.seed}
    trainer = tl.train.Trainer(_Unbatch(dbn), opt, f"{args.out}/dbn", config=config)
    epochs = args.epochs if args.dbn_epochs is None else args.dbn_epochs
    history = trainer.fit(loader, epochs=epochs, resume=args.resume)
    if not args.ais_betas:
        return {"epochs": len(history)}
    res = top.ais(base_v_bias=base, num_chains=args.ais_chains, num_betas=args.ais_betas,
                  generator=g)
    bound = lambda x, log_z: float(dbn.log_prob_lower_bound(   # noqa: E731
        tl.tensor(x), log_z=log_z, num_samples=args.bound_samples, generator=g).mean().item())
    out = {"epochs": len(history), "sizes": [784, args.hidden, args.dbn], "top_log_z": res.log_z,
           "top_log_z_3sd": [res.log_z_low, res.log_z_high],
           "train_bound": bound(X, res.log_z), "test_bound": bound(Xt, res.log_z)}
    print(f"DBN 784-{args.hidden}-{args.dbn}: top RBM AIS log Z = {res.log_z:.2f} (3 sd: "
          f"[{res.log_z_low:.2f}, {res.log_z_high:.2f}]); test lower bound on log p(v) "
          f"{out['test_bound']:.2f} nats")
    return out


class _Unbatch(tl.nn.Module):
    """The Trainer hands over (x,) tuples from the TensorDataset; the RBM (or DBN) takes x."""

    def __init__(self, rbm):
        super().__init__()
        self.rbm = rbm

    def loss(self, batch):
        return self.rbm.loss(batch[0])


if __name__ == "__main__":
    main()
