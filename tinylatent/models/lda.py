"""Latent Dirichlet allocation by batch variational EM (seed 000, latent discrete; Blei, Ng
& Jordan 2003, "Latent Dirichlet Allocation", JMLR 3, Sec. 5; the smoothed model of their
Sec. 5.4 with a variational Dirichlet q(beta_k) = Dir(lambda_k), in the notation of Hoffman,
Blei & Bach 2010, "Online learning for LDA", Algorithm 1 / eqs. 2-6).

Generative model: beta_k ~ Dir(eta) over the V words; per document theta_d ~ Dir(alpha);
each word picks z ~ Cat(theta_d), then w ~ Cat(beta_z). Mean field q(theta_d) = Dir(gamma_d),
q(z_dw) = Cat(phi_dw), q(beta_k) = Dir(lambda_k). Coordinate ascent (Hoffman eqs. 2-4):
    phi_dwk  propto  exp(E[log theta_dk] + E[log beta_kw]),   E[log theta_dk] =
                     digamma(gamma_dk) - digamma(sum_j gamma_dj) (same for beta, lambda);
    gamma_dk = alpha + sum_w n_dw phi_dwk        (E-step: iterated per document)
    lambda_kw = eta + sum_d n_dw phi_dwk         (M-step)
scikit-learn's LatentDirichletAllocation(learning_method="batch") runs the same updates with
the same names (components_ = lambda, doc_topic_prior = alpha, topic_word_prior = eta), so
the two are comparable at equal K, priors and iterations. Perplexity is exp(-ELBO / #words)
on held-out documents (Blei et al. Sec. 7.1; the ELBO is Hoffman et al. eq. 5).

    lda = LDA(20, max_iter=20, seed=0).fit(counts)      # counts: (D, V) word counts
    lda.perplexity(test_counts); lda.transform(counts)  # doc-topic proportions (D, K)
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import sparse
from scipy.special import gammaln, psi

from ..tensor import Tensor

__all__ = ["LDA"]

_EPS = np.finfo(np.float64).eps  # keeps the phi normaliser positive (scikit-learn's EPS)


@functools.lru_cache(maxsize=None)
def _kernels():
    from ..kernels.dispatch import load_numba_module
    return load_numba_module("tinylatent.kernels.numba.lda")


def _e_log_dirichlet(a):
    """E[log x] under Dir(a) per row: digamma(a) - digamma(sum a), (..., K)."""
    return psi(a) - psi(a.sum(-1, keepdims=True))


class LDA:
    """Batch variational EM for LDA, scikit-learn style: fit / transform / perplexity / score.

    n_components: K topics; doc_topic_prior alpha and topic_word_prior eta default to 1/K
    (scikit-learn's defaults); max_iter EM passes over the corpus; per document the E-step
    iterates gamma until its mean absolute change < mean_change_tol (at most
    max_doc_update_iter times).
    """

    def __init__(self, n_components: int = 10, doc_topic_prior: float | None = None,
                 topic_word_prior: float | None = None, max_iter: int = 10,
                 max_doc_update_iter: int = 100, mean_change_tol: float = 1e-3,
                 seed: int | None = None, use_numba: bool = True):
        if n_components < 1:
            raise ValueError(f"LDA: n_components must be >= 1, got {n_components}")
        self.n_components, self.max_iter, self.seed = n_components, max_iter, seed
        self.alpha = 1.0 / n_components if doc_topic_prior is None else doc_topic_prior
        self.eta = 1.0 / n_components if topic_word_prior is None else topic_word_prior
        self.max_doc_update_iter, self.mean_change_tol = max_doc_update_iter, mean_change_tol
        self.use_numba = use_numba  # the compiled E-step (kernels/numba/lda.py), if Numba
        # RandomState, drawn in scikit-learn's order (lambda, then gamma per E-step): the same
        # seed gives scikit-learn's start, so the two can be compared exactly
        self._rng = np.random.RandomState(seed)

    def _counts(self, X, name):
        A = np.asarray(X.detach().numpy() if isinstance(X, Tensor) else X, dtype=np.float64)
        if A.ndim != 2 or (A < 0).any():
            raise ValueError(f"LDA.{name}: X must be a (D, V) matrix of non-negative word "
                             f"counts, got shape {A.shape}")
        if hasattr(self, "components_") and A.shape[1] != self.components_.shape[1]:
            raise ValueError(f"LDA.{name}: X has {A.shape[1]} words, the model "
                             f"{self.components_.shape[1]}")
        return A

    @staticmethod
    def _nonzeros(A):
        """The corpus as its nonzero counts: document, word and count of each, (nnz,) each,
        sorted by document (documents are ~5% dense; every update below costs nnz x K)."""
        doc, word = np.nonzero(A)
        return doc, word, A[doc, word]

    def _e_step(self, A, lam, random_init=True):
        """gamma (D, K) and the sufficient statistics sum_d n_dw phi_dwk (K, V).
        All documents are iterated together; each stops updating once it has converged, so
        every document gets exactly the per-document iteration of Blei et al. Fig. 6."""
        (D, V), K = A.shape, self.n_components
        doc, word, cnt = self._nonzeros(A)
        exp_elog_beta_t = np.exp(_e_log_dirichlet(lam)).T.copy()  # (V, K)
        # Hoffman et al.'s random init when fitting; ones for transform / score (as sklearn)
        gamma = self._rng.gamma(100.0, 0.01, (D, K)) if random_init else np.ones((D, K))
        kern = _kernels() if self.use_numba else None
        if kern is not None:  # one document at a time, compiled; the NumPy twin below
            indptr = np.r_[0, np.cumsum(np.bincount(doc, minlength=D))]  # (D + 1,)
            sstats = kern.e_step(indptr, word.astype(np.int64), cnt, exp_elog_beta_t, gamma,
                                 float(self.alpha), int(self.max_doc_update_iter),
                                 float(self.mean_change_tol), _EPS, True)  # (V, K)
            return gamma, sstats.T * exp_elog_beta_t.T
        active = np.ones(D, bool)
        for _ in range(self.max_doc_update_iter):
            sel = active[doc]
            d, beta_w = doc[sel], exp_elog_beta_t[word[sel]]  # (n,), (n, K)
            exp_elog_theta = np.exp(_e_log_dirichlet(gamma))  # (D, K)
            # phi normaliser sum_k exp(E log theta_dk + E log beta_kw) per nonzero (d, w)
            ratio = cnt[sel] / ((exp_elog_theta[d] * beta_w).sum(1) + _EPS)  # (n,)
            # sum_w n_dw / norm_dw * exp(E log beta_kw), summed per document -> (D, K)
            starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])  # d is sorted
            acc = np.zeros((D, K))
            acc[d[starts]] = np.add.reduceat(ratio[:, None] * beta_w, starts, axis=0)
            new = self.alpha + exp_elog_theta * acc
            change = np.abs(new - gamma).mean(1)
            gamma = np.where(active[:, None], new, gamma)
            active &= change >= self.mean_change_tol
            if not active.any():
                break
        exp_elog_theta = np.exp(_e_log_dirichlet(gamma))
        beta_w = exp_elog_beta_t[word]  # (nnz, K)
        ratio = cnt / ((exp_elog_theta[doc] * beta_w).sum(1) + _EPS)
        # sum_d n_dw / norm_dw exp(E log theta_dk): (V, D) sparse @ (D, K) -> (V, K)
        ratio_mat = sparse.csr_matrix((ratio, (doc, word)), shape=(D, V))
        sstats = np.asarray(ratio_mat.T @ exp_elog_theta).T  # (K, V)
        return gamma, sstats * exp_elog_beta_t.T

    def fit(self, X) -> "LDA":
        """max_iter rounds of `em_step` from lambda ~ Gamma(100, 1/100) (Hoffman et al.)."""
        A = self._counts(X, "fit")
        self.components_ = self._rng.gamma(100.0, 0.01, (self.n_components, A.shape[1]))
        self.bounds_ = []
        for _ in range(self.max_iter):
            self.em_step(A)
        return self

    def em_step(self, X) -> float:
        """One pass: E-step over all documents, then the M-step lambda = eta + sstats.
        Appends the training ELBO (gamma of this E-step, new lambda) to `bounds_`."""
        A = self._counts(X, "em_step")
        gamma, sstats = self._e_step(A, self.components_)
        self.components_ = self.eta + sstats
        self.bounds_.append(self._bound(A, gamma))
        return self.bounds_[-1]

    def transform(self, X, normalize: bool = True) -> np.ndarray:
        """Doc-topic proportions E_q[theta_d] = gamma_d / sum gamma_d, (D, K) (or gamma)."""
        gamma = self._e_step(self._counts(X, "transform"), self.components_, False)[0]
        return gamma / gamma.sum(1, keepdims=True) if normalize else gamma

    def _bound(self, A, gamma):
        """ELBO (Hoffman et al. eq. 5): E_q[log p(w, theta, z, beta) - log q(theta, z, beta)]
        with phi optimised out: sum_dw n_dw log sum_k exp(E log theta_dk + E log beta_kw)
        + sum_d (E[log Dir(theta_d | alpha)] + H[q(theta_d)]) + sum_k (same for beta_k)."""
        lam, K, V = self.components_, self.n_components, A.shape[1]
        elog_theta, elog_beta = _e_log_dirichlet(gamma), _e_log_dirichlet(lam)
        doc, word, cnt = self._nonzeros(A)
        t = elog_theta[doc] + elog_beta.T[word]  # (nnz, K): log sum_k exp(.) per nonzero
        m = t.max(1)
        words = (cnt * (m + np.log(np.exp(t - m[:, None]).sum(1)))).sum()

        def dirichlet_terms(prior, q, elog, size):
            return ((prior - q) * elog).sum() + (gammaln(q) - gammaln(prior)).sum() \
                + (gammaln(prior * size) - gammaln(q.sum(1))).sum()
        return float(words + dirichlet_terms(self.alpha, gamma, elog_theta, K)
                     + dirichlet_terms(self.eta, lam, elog_beta, V))

    def score(self, X) -> float:
        """The ELBO of X under the fitted topics (gamma from a fresh E-step)."""
        A = self._counts(X, "score")
        return self._bound(A, self._e_step(A, self.components_, False)[0])

    def perplexity(self, X) -> float:
        """exp(-ELBO(X) / number of words in X): an upper bound on the true perplexity."""
        A = self._counts(X, "perplexity")
        return float(np.exp(-self.score(A) / A.sum()))

    def top_words(self, vocab, n: int = 10) -> list:
        """The n most probable words of each topic under E_q[beta_k] = lambda_k / sum lambda_k."""
        return [[vocab[i] for i in np.argsort(-row)[:n]] for row in self.components_]
