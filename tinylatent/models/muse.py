"""MUSE: word translation without parallel data (Conneau et al. 2018, "Word Translation
Without Parallel Data"), seeds 000 and 003.

Two embedding spaces, source x (language A) and target y (language B), trained apart; a
linear map W sends x to W x in y's space, found without any dictionary:

1. Adversarial (Sec. 2.1). A discriminator D (MLP, 2 hidden LeakyReLU layers, input dropout
   0.1; Sec. 3.1) tells mapped source words W x from target words y, trained with label
   smoothing s = 0.1 (source labelled 1 - s, target s):

       L_D = -(1/n) sum log P(source = 1 | W x_i) - (1/m) sum log P(source = 0 | y_i)   (eq. 3)
       L_W = -(1/n) sum log P(source = 0 | W x_i) - (1/m) sum log P(source = 1 | y_i)   (eq. 4)

   by SGD, `dis_steps` steps of D per step of W, each followed by the orthogonality update
   W <- (1 + beta) W - beta (W W^T) W (Sec. 3.3). The words fed to D are drawn uniformly
   among the `most_frequent` of each language (Sec. 3.1).
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
from ..losses import binary_cross_entropy_with_logits
from ..ops import cat
from ..random import Generator
from ..tensor import Tensor
from .config import resolve_config
from .gan import frozen

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
    lr_decay: float = 0.98          # per epoch (0.98)
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
    seed: int = 0                   # word sampling and D's dropout


class MUSE(nn.Module):
    def __init__(self, config: MUSEConfig | None = None, **overrides):
        super().__init__()
        self.config = cfg = resolve_config(self, MUSEConfig, config, overrides)
        xl.normalize_embeddings(np.ones((2, 1)), cfg.normalize)     # checks the steps
        if cfg.in_features < 1 or cfg.hidden_features < 1 or cfg.batch_size < 1 \
                or cfg.dis_steps < 1 or not 0 <= cfg.smoothing < 0.5:
            raise ValueError(f"MUSE: need positive sizes and steps, smoothing in [0, 0.5), "
                             f"got {cfg}")
        d, h = cfg.in_features, cfg.hidden_features
        self.weight = nn.Parameter(np.eye(d, dtype=np.float32))        # W, initialised to I
        self.generator = Generator().manual_seed(cfg.seed)              # D's dropout stream
        self.discriminator = nn.Sequential(
            nn.Dropout(cfg.input_dropout, generator=self.generator), nn.Linear(d, h),
            nn.LeakyReLU(cfg.negative_slope), nn.Linear(h, h),
            nn.LeakyReLU(cfg.negative_slope), nn.Linear(h, 1))
        # model selection state (Sec. 3.5): the best W so far and its criterion
        self.register_buffer("best_weight", Tensor(np.eye(d, dtype=np.float32)))
        self.register_buffer("best_criterion", Tensor(np.full((), -np.inf, np.float32)))
        self.register_buffer("last_criterion", Tensor(np.full((), np.nan, np.float32)))
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

    # ------------------------------------------------------------------ adversarial losses
    def encode(self, x) -> Tensor:
        """W x for source vectors x (B, d): rows x @ W^T."""
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, np.float32))
        return x @ self.weight.transpose(0, 1)

    def _logits(self, mapped: Tensor, tgt: Tensor) -> tuple:
        x = cat([mapped, tgt], axis=0)                                   # (B_s + B_t, d)
        s = self.config.smoothing
        # eq. 3's labels with smoothing: mapped source 1 - s, target s
        y = np.r_[np.full(len(mapped), 1 - s), np.full(len(tgt), s)].astype(np.float32)
        return self.discriminator(x).reshape(-1), Tensor(y)             # (B_s + B_t,)

    def discriminator_loss(self, src: Tensor, tgt: Tensor) -> Tensor:
        """L_D (eq. 3) with W held fixed."""
        logits, y = self._logits(self.encode(src).detach(), tgt)
        return binary_cross_entropy_with_logits(logits, y)

    def mapping_loss(self, src: Tensor, tgt: Tensor) -> Tensor:
        """L_W (eq. 4): D's labels flipped, D's parameters frozen and in eval mode (no
        dropout, as MUSE's mapping step)."""
        was_training = self.discriminator.training
        self.discriminator.eval()
        try:
            with frozen(self.discriminator):
                logits, y = self._logits(self.encode(src), tgt)
                return binary_cross_entropy_with_logits(logits, 1 - y)
        finally:
            self.discriminator.train(was_training)

    def loss(self, batch) -> tuple:
        """(L_D + L_W, metrics) on batch = (source (B, d), target (B, d)) vectors, each
        player's gradient on its own loss (one optimizer step = both players' steps)."""
        src, tgt = batch
        d_loss, w_loss = self.discriminator_loss(src, tgt), self.mapping_loss(src, tgt)
        loss = d_loss + w_loss
        return loss, {"loss": loss.detach(), "d_loss": d_loss.detach(),
                      "w_loss": w_loss.detach()}

    # ------------------------------------------------------------------ training
    def optimizers(self) -> dict:
        """{"discriminator": SGD(D), "mapping": SGD(W)} at the config's lr (Sec. 3.1)."""
        from ..optim import SGD
        return {"discriminator": SGD(self.discriminator.parameters(), lr=self.config.lr),
                "mapping": SGD([self.weight], lr=self.config.map_lr)}

    def orthogonalize(self) -> None:
        """W <- (1 + beta) W - beta (W W^T) W (Sec. 3.3), in place."""
        w = self.weight.array.astype(np.float64)
        self.weight.array[...] = xl.orthogonalize(w, self.config.beta)

    def adversarial_step(self, src, tgt, optimizers: dict) -> tuple:
        """One round of Sec. 3.1: a D step (eq. 3) on each of src[:-1], tgt[:-1], then one W
        step (eq. 4) on src[-1], tgt[-1] and the orthogonality update. src, tgt:
        (dis_steps + 1, B, d) word vectors. Returns the last (L_D, L_W) as floats."""
        opt_d, opt_w = optimizers["discriminator"], optimizers["mapping"]
        for s, t in zip(src[:-1], tgt[:-1]):
            d_loss = self.discriminator_loss(Tensor(s), Tensor(t))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        w_loss = self.mapping_loss(Tensor(src[-1]), Tensor(tgt[-1]))
        opt_w.zero_grad()
        w_loss.backward()
        opt_w.step()
        self.orthogonalize()
        return d_loss.item(), w_loss.item()

    def adversarial_epoch(self, optimizers: dict, epoch: int = 0, progress=None) -> dict:
        """`epoch_size / batch_size` rounds of `dis_steps` D steps then one W step (each
        followed by the orthogonality update). Words drawn uniformly among the
        `most_frequent` of each language, from a stream seeded by (seed, epoch), so a
        resumed run repeats the same epoch. progress(i, n) after each round."""
        self._need_data("adversarial_epoch")
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, epoch])
        self.generator.manual_seed(cfg.seed * 100003 + epoch)
        n_src = min(cfg.most_frequent, len(self.source))
        n_tgt = min(cfg.most_frequent, len(self.target))
        rounds = max(1, cfg.epoch_size // cfg.batch_size)
        d_total = w_total = 0.0
        self.discriminator.train()
        for i in range(rounds):
            src = self.source[rng.integers(0, n_src, (cfg.dis_steps + 1, cfg.batch_size))]
            tgt = self.target[rng.integers(0, n_tgt, (cfg.dis_steps + 1, cfg.batch_size))]
            d_loss, w_loss = self.adversarial_step(src, tgt, optimizers)
            d_total, w_total = d_total + d_loss, w_total + w_loss
            if progress is not None:
                progress(i, rounds)
        return {"d_loss": d_total / rounds, "w_loss": w_total / rounds}

    def _select(self) -> float:
        """The criterion of the current W; kept as `best_weight` when it is the best."""
        value = self.criterion()
        if value > float(self.best_criterion.array):
            self.best_criterion.array[...] = value
            self.best_weight.array[...] = self.weight.array
        return value

    def fit(self, epochs: int | None = None, start_epoch: int = 0, optimizers=None,
            refine: bool = True, callback=None, progress=None) -> dict:
        """Adversarial epochs start_epoch..epochs-1 (SGD, lr decayed by `lr_decay` per
        epoch and W's shrunk by `lr_shrink` when the criterion drops), then (refine) the
        Procrustes refinement from the best W. callback(epoch, stats) after each epoch.
        Returns the last stats; W ends as the best by the criterion."""
        cfg = self.config
        epochs = cfg.epochs if epochs is None else epochs
        optimizers = self.optimizers() if optimizers is None else optimizers
        stats: dict = {}
        for epoch in range(start_epoch, epochs):
            stats = self.adversarial_epoch(optimizers, epoch, progress)
            stats["criterion"] = value = self._select()
            shrink = cfg.lr_shrink if value < float(self.last_criterion.array) else 1.0
            for group in optimizers["discriminator"].param_groups:
                group["lr"] *= cfg.lr_decay
            for group in optimizers["mapping"].param_groups:
                group["lr"] *= cfg.lr_decay * shrink
            self.last_criterion.array[...] = value
            if callback is not None:
                callback(epoch, stats)
        self.weight.array[...] = self.best_weight.array
        if refine:
            stats = {**stats, **self.refine()}
        return stats

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
