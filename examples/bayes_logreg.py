"""Bayesian logistic regression on the Wisconsin breast-cancer set (scikit-learn's copy):
mean-field Gaussian variational inference (tl.vi, reparameterised ELBO) against a Laplace
approximation at the MAP, compared by their posterior predictive on held-out patients
(seed 004; Ranganath et al. 2014; Kingma & Welling 2014; MacKay 1992 for Laplace).

    python examples/bayes_logreg.py                    # 3000 Adam steps, 16 draws per step
    python examples/bayes_logreg.py --steps 50         # a smoke run
    python examples/bayes_logreg.py --resume           # continue OUT/checkpoint.npz

Prints test accuracy / NLL / Brier of the MAP plug-in, Laplace and VI predictives; writes
predictive.png (VI vs Laplace predictive probabilities per test patient), grad_variance.png
(ELBO gradient variance of the estimators vs the number of draws) under --out.
"""
import argparse
import os
import sys

import matplotlib
import numpy as np
from tqdm import tqdm

import tinylatent as tl

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="VI vs Laplace for Bayesian logistic regression",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=3000, help="Adam steps on the ELBO")
    p.add_argument("--samples", type=int, default=16, help="draws per ELBO estimate")
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--prior-precision", type=float, default=1.0, help="w ~ N(0, I / alpha)")
    p.add_argument("--test-fraction", type=float, default=0.3)
    p.add_argument("--variance-repeats", type=int, default=50,
                   help="gradient estimates per point of grad_variance.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bayes_logreg")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def data(test_fraction, seed):
    from sklearn.datasets import load_breast_cancer
    X, y = load_breast_cancer(return_X_y=True)  # (569, 30), y = 1 benign
    perm = np.random.default_rng(seed).permutation(len(X))
    n_test = int(test_fraction * len(X))
    te, tr = perm[:n_test], perm[n_test:]
    mean, std = X[tr].mean(0), X[tr].std(0)
    X = np.concatenate([(X - mean) / std, np.ones((len(X), 1))], 1)  # standardised + bias
    return X[tr], y[tr].astype(np.float64), X[te], y[te].astype(np.float64)


def laplace(X, y, alpha, iters=50):
    """MAP by Newton's method, then N(w_map, H^-1), H = X^T diag(p (1 - p)) X + alpha I."""
    w = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-X @ w))
        H = X.T @ (X * (p * (1 - p))[:, None]) + alpha * np.eye(len(w))
        w -= np.linalg.solve(H, X.T @ (p - y) + alpha * w)
    return w, np.linalg.inv(H)


def predictive_metrics(prob, y):
    prob = np.clip(prob, 1e-12, 1 - 1e-12)
    return {"accuracy": float(((prob > 0.5) == y).mean()),
            "nll": float(-(y * np.log(prob) + (1 - y) * np.log(1 - prob)).mean()),
            "brier": float(((prob - y) ** 2).mean())}


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    Xtr, ytr, Xte, yte = data(args.test_fraction, args.seed)
    D, alpha = Xtr.shape[1], args.prior_precision
    Xt, yt = tl.tensor(Xtr, dtype=tl.float64), tl.tensor(ytr, dtype=tl.float64)

    def log_joint(w):  # (S, D) -> (S,): log-likelihood of y + log N(w | 0, I / alpha)
        z = w @ Xt.T  # (S, N) logits
        return (yt * z - tl.softplus(z)).sum(1) - 0.5 * alpha * (w * w).sum(1)

    q = tl.vi.MeanFieldNormal(D, log_scale=np.full(D, -2.0), dtype=tl.float64)
    opt = tl.optim.Adam(q.parameters(), lr=args.lr)
    ckpt, start, history = os.path.join(args.out, "checkpoint.npz"), 0, []
    if args.resume and os.path.exists(ckpt):
        ck = tl.load(ckpt)
        tl.serialization.check_resume_args(ck["args"], vars(args), ("steps",))
        q.loc.array[...], q.log_scale.array[...] = ck["loc"], ck["log_scale"]
        opt.load_state_dict(ck["optimizer"])
        start, history = int(ck["step"]), list(ck["history"])
        print(f"resumed from {ckpt} at step {start}")
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps,
               disable=not sys.stderr.isatty())  # a bar on a terminal only
    for step in bar:
        opt.zero_grad()
        # a generator per step: the run is reproducible and resumes exactly
        elbo = tl.vi.elbo(log_joint, q, args.samples, generator=tl.Generator(args.seed + step))
        (-elbo).backward()
        opt.step()
        history.append(float(elbo.item()))
        if (step + 1) % 100 == 0 or step + 1 == args.steps:
            bar.set_postfix(elbo=f"{np.mean(history[-100:]):.2f}")
            tl.save({"loc": q.loc.detach().numpy(), "log_scale": q.log_scale.detach().numpy(),
                     "optimizer": opt.state_dict(), "step": step + 1, "history": history,
                     "args": vars(args)}, ckpt)

    w_map, cov = laplace(Xtr, ytr, alpha)
    rng = np.random.default_rng(args.seed)
    sigmoid = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    mu, sd = q.loc.detach().numpy(), np.exp(q.log_scale.detach().numpy())
    w_vi = mu + sd * rng.standard_normal((4000, D))  # posterior predictive by Monte Carlo
    w_la = rng.multivariate_normal(w_map, cov, 4000)
    probs = {"MAP plug-in": sigmoid(Xte @ w_map), "Laplace": sigmoid(Xte @ w_la.T).mean(1),
             "mean-field VI": sigmoid(Xte @ w_vi.T).mean(1)}
    result = {name: predictive_metrics(p, yte) for name, p in probs.items()}
    print(f"{len(Xtr)} train / {len(Xte)} test patients, {D} weights; final ELBO "
          f"{np.mean(history[-100:]):.2f}")
    for name, m in result.items():
        print(f"{name:14s} test accuracy {m['accuracy']:.4f}  NLL {m['nll']:.4f}  "
              f"Brier {m['brier']:.4f}")
    print(f"posterior sd (mean over weights): VI {sd.mean():.3f}, Laplace "
          f"{np.sqrt(np.diag(cov)).mean():.3f}  (mean field under-estimates it)")
    plt.figure(figsize=(4, 4))
    plt.scatter(probs["Laplace"], probs["mean-field VI"], s=8, c=yte, cmap="coolwarm")
    plt.plot([0, 1], [0, 1], "k--", lw=0.8)
    plt.xlabel("Laplace p(benign | x)")
    plt.ylabel("mean-field VI p(benign | x)")
    plt.title("posterior predictive, test patients", fontsize=9)
    plt.tight_layout()
    plt.savefig(os.path.join(args.out, "predictive.png"), dpi=110)
    plt.close()
    # gradient variance vs draws at the fitted q (Ranganath et al. 2014 sec. 3)
    sizes, curves = [1, 2, 4, 8, 16, 32], {}
    for name, est, cv in [("reparameterised", "reparam", False),
                          ("score function", "score", False),
                          ("score + control variate", "score", True)]:
        curves[name] = [tl.vi.gradient_estimates(log_joint, q, s, args.variance_repeats, est,
                                                 cv, tl.Generator(s)).var(0).sum()
                        for s in (sizes if not cv else sizes[1:])]
    plt.figure(figsize=(5, 3.5))
    for name, v in curves.items():
        plt.loglog(sizes[-len(v):], v, "o-", label=name)
    plt.xlabel("draws per estimate")
    plt.ylabel("total variance of the ELBO gradient")
    plt.legend(fontsize=8)
    plt.tight_layout()
    plt.savefig(os.path.join(args.out, "grad_variance.png"), dpi=110)
    plt.close()
    result["grad_variance"] = {k: [float(x) for x in v] for k, v in curves.items()}
    result["elbo"] = history
    return result


if __name__ == "__main__":
    main()
