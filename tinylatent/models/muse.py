"""MUSE: word translation without parallel data (Conneau et al. 2018, "Word Translation
Without Parallel Data"), seeds 000 and 003.

Two embedding spaces, source x (language A) and target y (language B), trained apart; a
linear map W sends x to W x in y's space, found without any dictionary:

1. Adversarial (Sec. 2.1, 3.1): a discriminator D tells mapped source words W x from target
   words y (eqs. 3-4), W trained to fool it and kept near-orthogonal (Sec. 3.3); the game
   is in muse_adversarial.AdversarialGame.
   Or, init="similarity", the seed dictionary and stochastic self-learning of Artetxe et al.
   2018 in its place (muse_similarity; fit_similarity).
2. Refinement (Sec. 2.2): the mutual CSLS nearest neighbours among the `max_rank` most
   frequent words form a dictionary, and W = U V^T from SVD(Y X^T) (Procrustes) on it;
   repeated `refinement_steps` times.
3. Retrieval by CSLS (Sec. 2.3): 2 cos(W x_s, y_t) - r_T(W x_s) - r_S(y_t), k = 10.
4. Model selection (Sec. 3.5): the mean cosine between the `criterion_words` most frequent
   mapped source words and their CSLS translations; the best W of all epochs and
   refinement steps is kept (`best_weight`).

Word vectors are rows sorted by frequency (as Word2Vec.from_sentences and .vec files keep
them), used as they are or normalised by `normalize` (MUSE's `--normalize_embeddings`, e.g.
"renorm,center,renorm"); cosines are taken in every case.

    muse = MUSE(in_features=100)
    muse.set_embeddings(x, y, a_words, b_words)
    muse.fit()                                       # adversarial epochs, then refinement
    muse.translate(["lord", "king"])                 # CSLS translations
    muse.induce_dictionary()                         # {A word: B word}
    muse.evaluate(reference)                         # {"p@1": ..., "p@5": ...}
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn
from ..eval import cross_lingual as xl
from ..random import Generator
from ..tensor import Tensor
from .config import resolve_config
from .muse_adversarial import AdversarialGame, discriminator
from .muse_similarity import self_learning, similarity_seed

__all__ = ["MUSE", "MUSEConfig"]


@dataclass(frozen=True)
class MUSEConfig:
    """Sec. 3.1's settings scaled down for a 400k-word corpus (the paper's / MUSE code's
    value in brackets)."""
    in_features: int = 100          # d of both spaces (300)
    hidden_features: int = 512      # discriminator width (2048)
    negative_slope: float = 0.2     # LeakyReLU of D
    input_dropout: float = 0.1      # dropout on D's input (0.1)
    smoothing: float = 0.1          # label smoothing s (0.1)
    beta: float = 0.001             # orthogonality update (0.001)
    lr: float = 0.1                 # SGD for D (0.1)
    map_lr: float = 0.1             # SGD for W (0.1)
    lr_decay: float = 0.98          # W's lr per epoch (0.98; D's lr stays, as MUSE's)
    lr_shrink: float = 0.5          # W's lr times this when the criterion drops (0.5)
    dis_steps: int = 5              # D steps per W step (5)
    batch_size: int = 32            # (32)
    most_frequent: int = 2000       # D sees these most frequent words (50000)
    epochs: int = 5                 # (5)
    epoch_size: int = 100000        # words per epoch per language (1000000)
    refinement_steps: int = 5       # Procrustes iterations (5)
    max_rank: int = 3000            # the refinement dictionary's most frequent words (15000)
    csls_k: int = 10                # CSLS neighbourhood (10)
    criterion_words: int = 10000    # model selection on these most frequent words (10000)
    normalize: str = ""             # steps "renorm" / "center", comma-separated ("")
    seed: int = 0                   # word sampling, D's dropout, stochastic induction
    # init="similarity": Artetxe et al. 2018 instead of the game (vecmap's value in brackets)
    init: str = "adversarial"       # or "similarity" (muse_similarity)
    similarity_words: int = 4000    # the seed dictionary's most frequent words (4000)
    vocabulary_cutoff: int = 20000  # self-learning's most frequent words (20000)
    keep_prob: float = 0.1          # stochastic dictionary induction's first p (0.1)
    stochastic_interval: int = 50   # iterations without improvement before p doubles (50)


class MUSE(AdversarialGame, nn.Module):
    def __init__(self, config: MUSEConfig | None = None, **overrides):
        super().__init__()
        self.config = cfg = resolve_config(self, MUSEConfig, config, overrides)
        xl.normalize_embeddings(np.ones((2, 1)), cfg.normalize)     # checks the steps
        if cfg.init not in ("adversarial", "similarity"):
            raise ValueError(f"MUSE: init must be 'adversarial' or 'similarity', got "
                             f"{cfg.init!r}")
        if cfg.in_features < 1 or cfg.hidden_features < 1 or cfg.batch_size < 1 \
                or cfg.dis_steps < 1 or not 0 <= cfg.smoothing < 0.5:
            raise ValueError(f"MUSE: need positive sizes and steps, smoothing in [0, 0.5), "
                             f"got {cfg}")
        d = cfg.in_features
        self.weight = nn.Parameter(np.eye(d, dtype=np.float32))        # W, initialised to I
        self.generator = Generator().manual_seed(cfg.seed)              # D's dropout stream
        self.discriminator = discriminator(cfg, self.generator)
        # model selection state (Sec. 3.5): the best W so far and its criterion
        self.register_buffer("best_weight", Tensor(np.eye(d, dtype=np.float32)))
        self.register_buffer("best_criterion", Tensor(np.full((), -np.inf, np.float32)))
        # MUSE's decrease_lr flag: the criterion has been below the best once already
        self.register_buffer("criterion_dropped", Tensor(np.zeros((), np.float32)))
        self.source = self.target = None
        self.source_words, self.target_words, self._source_index = [], [], {}

    # ------------------------------------------------------------------ data
    def set_embeddings(self, source, target, source_words=None, target_words=None):
        """Source (n, d) and target (m, d) word vectors, rows most frequent first, normalised
        by the config's steps (MUSE's --normalize_embeddings). Words default to "0", ..."""
        d, arrays, words = self.config.in_features, [], []
        for name, v, w in (("source", source, source_words), ("target", target, target_words)):
            v = np.asarray(v.array if isinstance(v, Tensor) else v, np.float64)
            if v.ndim != 2 or v.shape[1] != d or len(v) < 2:
                raise ValueError(f"MUSE.set_embeddings: {name} must be (n >= 2, {d}) word "
                                 f"vectors, got shape {v.shape}")
            w = [str(i) for i in range(len(v))] if w is None else list(w)
            if len(w) != len(v) or len(set(w)) != len(w):
                raise ValueError(f"MUSE.set_embeddings: {name}_words must be {len(v)} "
                                 f"distinct words, got {len(w)} ({len(set(w))} distinct)")
            arrays.append(xl.normalize_embeddings(v, self.config.normalize).astype(np.float32))
            words.append(w)
        (self.source, self.target), (self.source_words, self.target_words) = arrays, words
        self._source_index = {w: i for i, w in enumerate(self.source_words)}
        return self

    def _need_data(self, name):
        if self.source is None:
            raise RuntimeError(f"MUSE.{name}: call set_embeddings(source, target, ...) first")

    def encode(self, x) -> Tensor:
        """W x for source vectors x (B, d): rows x @ W^T."""
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, np.float32))
        return x @ self.weight.transpose(0, 1)

    # ------------------------------------------------------------------ training
    def _select(self) -> float:
        """The criterion of the current W; kept as `best_weight` when it is the best."""
        value = self.criterion()
        if value > float(self.best_criterion.array):
            self.best_criterion.array[...] = value
            self.best_weight.array[...] = self.weight.array
        return value

    def fit(self, epochs: int | None = None, start_epoch: int = 0, optimizers=None,
            refine: bool = True, callback=None, progress=None) -> dict:
        """Adversarial epochs start_epoch..epochs-1 (SGD; as MUSE's update_lr, W's lr decays
        by `lr_decay` per epoch and shrinks by `lr_shrink` each time the criterion is below
        the best, from the second such epoch on; D's lr is constant), then (refine) the
        Procrustes refinement from the best W. callback(epoch, stats) after each epoch.
        Returns the last stats; W ends as the best by the criterion. init="similarity":
        fit_similarity() instead of the epochs."""
        cfg = self.config
        if cfg.init == "similarity":
            stats = self.fit_similarity(callback)
            return {**stats, **self.refine()} if refine else stats
        epochs = cfg.epochs if epochs is None else epochs
        optimizers = self.optimizers() if optimizers is None else optimizers
        stats: dict = {}
        for epoch in range(start_epoch, epochs):
            stats = self.adversarial_epoch(optimizers, epoch, progress)
            best = float(self.best_criterion.array)          # before this epoch's
            stats["criterion"] = value = self._select()
            dropped = value < best
            shrink = cfg.lr_shrink if dropped and float(self.criterion_dropped.array) else 1.0
            for group in optimizers["mapping"].param_groups:
                group["lr"] *= cfg.lr_decay * shrink
            if dropped:
                self.criterion_dropped.array[...] = 1.0
            if callback is not None:
                callback(epoch, stats)
        self.weight.array[...] = self.best_weight.array
        if refine:
            stats = {**stats, **self.refine()}
        return stats

    def fit_similarity(self, callback=None) -> dict:
        """Artetxe et al. 2018 (muse_similarity): the seed dictionary of similarity
        distributions on the `similarity_words` most frequent words, then stochastic
        self-learning on the `vocabulary_cutoff` most frequent. callback(iteration,
        objective, keep_prob) after each induction. W ends as the best by the criterion."""
        self._need_data("fit_similarity")
        cfg, n = self.config, self.config.vocabulary_cutoff
        pairs = similarity_seed(self.source, self.target, cfg.similarity_words, cfg.csls_k)
        w, iterations = self_learning(self.source[:n], self.target[:n], pairs, cfg.csls_k,
                                      cfg.keep_prob, interval=cfg.stochastic_interval,
                                      seed=cfg.seed, callback=callback)
        self.weight.array[...] = w
        value = self._select()
        self.weight.array[...] = self.best_weight.array
        return {"iterations": iterations, "criterion": value}

    def refine(self, steps: int | None = None) -> dict:
        """Procrustes refinement (Sec. 2.2, 3.4): `steps` times, W = U V^T on the mutual
        CSLS dictionary of the `max_rank` most frequent words; W ends as the best by the
        criterion (adversarial W included)."""
        steps = self.config.refinement_steps if steps is None else steps
        self._select()
        size = 0
        for _ in range(steps):
            pairs = xl.mutual_dictionary(self.mapped_source(), self.target,
                                         self.config.max_rank, "csls", self.config.csls_k)
            size = len(pairs)
            if size < 2:
                break
            self.weight.array[...] = xl.procrustes(self.source[pairs[:, 0]],
                                                   self.target[pairs[:, 1]])
            self._select()
        self.weight.array[...] = self.best_weight.array
        return {"dictionary_size": size, "criterion": float(self.best_criterion.array)}

    def fit_supervised(self, dictionary: dict) -> int:
        """Procrustes on a seed dictionary {A word: B word} (the supervised upper bound of
        Sec. 4.1); pairs with a word outside either vocabulary are skipped. Returns the
        number of pairs used."""
        self._need_data("fit_supervised")
        t_index = {w: j for j, w in enumerate(self.target_words)}
        pairs = np.array([(self._source_index[a], t_index[b]) for a, b in dictionary.items()
                          if a in self._source_index and b in t_index], np.int64)
        if len(pairs) < 2:
            raise ValueError(f"MUSE.fit_supervised: only {len(pairs)} of {len(dictionary)} "
                             "pairs have both words in the vocabularies")
        self.weight.array[...] = xl.procrustes(self.source[pairs[:, 0]],
                                               self.target[pairs[:, 1]])
        return len(pairs)

    # ------------------------------------------------------------------ translating
    def mapped_source(self) -> np.ndarray:
        """W x for every source word, (n, d)."""
        self._need_data("mapped_source")
        return self.source @ self.weight.array.T

    def criterion(self) -> float:
        """Sec. 3.5's unsupervised validation criterion for the current W."""
        return xl.mean_cosine_criterion(self.mapped_source(), self.target,
                                        self.config.criterion_words, "csls",
                                        self.config.csls_k)

    def candidates(self, words, k: int = 5, method: str = "csls") -> dict:
        """{word: its k best translations, best first} by "csls" or "nn" (cosine)."""
        self._need_data("candidates")
        words = list(words)
        unknown = [w for w in words if w not in self._source_index]
        if unknown:
            raise KeyError(f"MUSE: {len(unknown)} word(s) not in the source vocabulary of "
                           f"{len(self.source_words)}, e.g. {unknown[:3]}")
        mapped = self.mapped_source()
        ids = xl.translate_ids(mapped[[self._source_index[w] for w in words]], self.target,
                               k, method, self.config.csls_k, all_queries=mapped)
        return {w: [self.target_words[j] for j in row] for w, row in zip(words, ids)}

    def translate(self, words, method: str = "csls") -> list:
        """The best translation of each source word, by "csls" or "nn"."""
        found = self.candidates(words, 1, method)
        return [found[w][0] for w in words]

    def induce_dictionary(self, mutual: bool = False, max_rank: int | None = None,
                          method: str = "csls") -> dict:
        """{A word: B word}. By default every source word with its best translation (for
        word-by-word translation); mutual=True keeps only the mutual nearest neighbours
        among the `max_rank` (config's by default) most frequent words (Sec. 3.4)."""
        if mutual:
            rank = self.config.max_rank if max_rank is None else max_rank
            pairs = xl.mutual_dictionary(self.mapped_source(), self.target, rank, method,
                                         self.config.csls_k)
            return {self.source_words[i]: self.target_words[j] for i, j in pairs}
        words = self.source_words if max_rank is None else self.source_words[:max_rank]
        return dict(zip(words, self.translate(words, method)))

    def evaluate(self, reference: dict, n_words: int = 5000, ks=(1, 5),
                 method: str = "csls") -> dict:
        """Precision@k of the translations of the `n_words` most frequent source words
        whose reference translation is in the target vocabulary (MUSE's protocol);
        {"p@1": ..., "p@5": ..., "words": how many were scored}."""
        targets = set(self.target_words)
        words = [w for w in self.source_words[:n_words] if w in reference
                 and ({reference[w]} if isinstance(reference[w], str)
                      else set(reference[w])) & targets]
        found = self.candidates(words, max(ks), method)
        out = {f"p@{k}": xl.translation_precision(found, reference, k) for k in ks}
        out["words"] = len(words)
        return out
