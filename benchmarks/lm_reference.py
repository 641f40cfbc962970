"""The two language-model recipes of issue 16 in PyTorch, next to tinylatent's, side by side.

LSTM: pytorch/examples word_language_model (embedding, 2-layer LSTM, dropout, SGD at lr 20,
gradient clipping 0.25, BPTT 35 with the state carried, batch 20; the lr /4 on a validation
plateau happens between epochs, beyond these runs). Transformer: nanoGPT at CPU size
(4 layers, 4 heads, d=128, context 64, AdamW(0.9, 0.99) with weight decay 0.1 on matrices,
linear warm-up then cosine decay, clipping 1.0, random windows).

Both libraries start from the SAME weights (PyTorch's copied from tinylatent's by parameter
name: the models use torch.nn's names) and see the SAME batches in the same order. Dropout
noise is each library's own (with dropout=0 the two trainings agree to float rounding: the
test that the recipes are identical). Validation: the whole validation split, the state
carried (LSTM, batch 10) or in consecutive context windows (Transformer). As a script:

    python -m benchmarks.lm_reference --model lstm --corpus kjv --level word --steps 1000
    python -m benchmarks.lm_reference --model transformer --corpus botchan --level char
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import tinylatent as tl
from tinylatent.data.text import LanguageModelStream, language_model_corpus
from tinylatent.models import LSTMLanguageModel, TransformerLM
from tinylatent.models.language_model import lm_nll

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - the benchmark skips without PyTorch
    torch = None


if torch is not None:
    class TorchLSTMLM(nn.Module):
        """word_language_model's RNNModel (LSTM), batch first."""

        def __init__(self, ntoken, ninp=200, nhid=200, nlayers=2, dropout=0.2, tie=False):
            super().__init__()
            self.drop = nn.Dropout(dropout)
            self.encoder = nn.Embedding(ntoken, ninp)
            self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout, batch_first=True)
            self.decoder = nn.Linear(nhid, ntoken)
            if tie:
                self.decoder.weight = self.encoder.weight

        def forward(self, idx, hidden=None):
            output, hidden = self.rnn(self.drop(self.encoder(idx)), hidden)
            return self.decoder(self.drop(output)), hidden

    class TorchGPT(nn.Module):
        """nanoGPT's model from torch.nn blocks (pre-LN TransformerEncoderLayer, GELU)."""

        def __init__(self, vocab, block_size=64, d=128, layers=4, heads=4, dropout=0.0):
            super().__init__()
            self.tok_emb = nn.Embedding(vocab, d)
            self.pos_emb = nn.Embedding(block_size, d)
            self.drop = nn.Dropout(dropout)
            self.layers = nn.ModuleList([
                nn.TransformerEncoderLayer(d, heads, 4 * d, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
                for _ in range(layers)])
            self.norm = nn.LayerNorm(d)
            self.lm_head = nn.Linear(d, vocab, bias=False)
            self.lm_head.weight = self.tok_emb.weight

        def forward(self, idx):
            t = idx.shape[1]
            mask = nn.Transformer.generate_square_subsequent_mask(t)
            x = self.drop(self.tok_emb(idx) + self.pos_emb(torch.arange(t)))
            for layer in self.layers:
                x = layer(x, src_mask=mask, is_causal=True)
            return self.lm_head(self.norm(x))


def _nll_pt(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _copy_weights(tl_model, pt_model):
    state = tl_model.state_dict()
    with torch.no_grad():
        for name, p in pt_model.state_dict(keep_vars=True).items():
            p.copy_(torch.from_numpy(state[name].numpy()))


class LMSideBySide:
    """Two identical language models (tinylatent, PyTorch) trained on one batch order."""

    def __init__(self, model="lstm", corpus="kjv", level="word", seed=1, dropout=None,
                 total_steps=1000, **cfg):
        torch.manual_seed(seed)
        tl.manual_seed(seed)
        self.kind, self.seed = model, seed
        self.data = data = language_model_corpus(corpus, level)
        vocab = len(data.tokenizer)
        if model == "lstm":
            d = 0.2 if dropout is None else dropout
            self.tl_model = LSTMLanguageModel(in_features=vocab, dropout=d, **cfg)
            c = self.tl_model.config
            self.pt_model = TorchLSTMLM(vocab, c.embedding_features, c.hidden_features,
                                        c.num_layers, d, c.tie_weights)
            self.lr, self.clip = 20.0, 0.25
            self.tl_opt = tl.optim.SGD(self.tl_model.parameters(), lr=self.lr)
            self.pt_opt = torch.optim.SGD(self.pt_model.parameters(), lr=self.lr)
            self.stream = LanguageModelStream(data.train, 20, 35)
            self.tl_hidden = self.pt_hidden = None
            self.window = 0
        else:
            d = 0.0 if dropout is None else dropout
            self.tl_model = TransformerLM(in_features=vocab, dropout=d, **cfg)
            c = self.tl_model.config
            self.pt_model = TorchGPT(vocab, c.block_size, c.hidden_features, c.num_layers,
                                     c.num_heads, d)
            self.lr, self.clip, warmup = 1e-3, 1.0, min(100, total_steps // 10)
            self.tl_opt = tl.optim.AdamW(self.tl_model.param_groups(0.1), lr=self.lr,
                                         betas=(0.9, 0.99))
            pt_params = dict(self.pt_model.named_parameters())
            groups = [[pt_params[n] for n, p in self.tl_model.named_parameters() if
                       (p.ndim >= 2) == decay] for decay in (True, False)]
            self.pt_opt = torch.optim.AdamW([{"params": groups[0], "weight_decay": 0.1},
                                             {"params": groups[1], "weight_decay": 0.0}],
                                            lr=self.lr, betas=(0.9, 0.99))
            S = tl.optim.lr_scheduler
            self.tl_sched = S.linear_warmup(self.tl_opt, warmup, S.CosineAnnealingLR(
                self.tl_opt, total_steps - warmup, self.lr / 10))
            P = torch.optim.lr_scheduler
            self.pt_sched = P.SequentialLR(self.pt_opt, [
                P.LinearLR(self.pt_opt, 1e-3, 1.0, warmup),
                P.CosineAnnealingLR(self.pt_opt, total_steps - warmup, self.lr / 10)],
                milestones=[warmup])
            self.rng = np.random.default_rng(seed)
            self.batch_size = 32
        _copy_weights(self.tl_model, self.pt_model)

    def next_batch(self):
        """The next (inputs, targets), (B, T) int64 NumPy arrays, the same for both sides."""
        if self.kind == "lstm":
            if self.window >= len(self.stream.data) - 1:
                self.window, self.tl_hidden, self.pt_hidden = 0, None, None  # a new epoch
            x, y = self.stream.get_batch(self.window)
            self.window += self.stream.bptt
            return x.numpy().T.copy(), y.numpy().T.copy()
        block, train = self.tl_model.config.block_size, self.data.train
        ix = self.rng.integers(0, len(train) - block - 1, self.batch_size)
        w = np.stack([train[i:i + block + 1] for i in ix])                  # (B, block + 1)
        return w[:, :-1], w[:, 1:]

    def tl_step(self, x, y) -> float:
        m = self.tl_model
        m.train()
        x, y = tl.tensor(x), tl.tensor(y)
        if self.kind == "lstm":
            self.tl_hidden = m.detach_hidden(self.tl_hidden)
            logits, self.tl_hidden = m(x, self.tl_hidden)
            loss = lm_nll(logits, y)[0]
        else:
            loss = m.loss((x, y))[0]
        self.tl_opt.zero_grad()
        loss.backward()
        tl.nn.utils.clip_grad_norm_(m.parameters(), self.clip)
        self.tl_opt.step()
        if self.kind != "lstm":
            self.tl_sched.step()
        return float(loss.item())

    def pt_step(self, x, y) -> float:
        m = self.pt_model
        m.train()
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        if self.kind == "lstm":
            if self.pt_hidden is not None:
                self.pt_hidden = tuple(h.detach() for h in self.pt_hidden)
            logits, self.pt_hidden = m(x, self.pt_hidden)
        else:
            logits = m(x)
        loss = _nll_pt(logits, y)
        self.pt_opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), self.clip)
        self.pt_opt.step()
        if self.kind != "lstm":
            self.pt_sched.step()
        return float(loss.item())

    def paired_steps(self, n: int) -> tuple[list, list, float, float]:
        """n steps of each on the same batches -> both loss lists and both seconds."""
        batches = [self.next_batch() for _ in range(n)]
        t0 = time.perf_counter()
        tl_losses = [self.tl_step(x, y) for x, y in batches]
        t1 = time.perf_counter()
        pt_losses = [self.pt_step(x, y) for x, y in batches]
        return tl_losses, pt_losses, t1 - t0, time.perf_counter() - t1

    def valid_losses(self) -> tuple[float, float]:
        """Validation nats per token, (tinylatent, PyTorch)."""
        self.tl_model.eval()
        self.pt_model.eval()
        if self.kind == "lstm":
            stream = LanguageModelStream(self.data.valid, 10, 35)
            tot, h_tl, h_pt, n = [0.0, 0.0], None, None, 0
            with tl.no_grad(), torch.no_grad():
                for x, y in stream:
                    xn, yn = x.numpy().T.copy(), y.numpy().T.copy()
                    logits, h_tl = self.tl_model(tl.tensor(xn), h_tl)
                    tot[0] += lm_nll(logits, tl.tensor(yn))[0].item() * yn.size
                    logits, h_pt = self.pt_model(torch.from_numpy(xn), h_pt)
                    tot[1] += _nll_pt(logits, torch.from_numpy(yn)).item() * yn.size
                    n += yn.size
            return tot[0] / n, tot[1] / n
        block, v = self.tl_model.config.block_size, self.data.valid
        v = v[:(len(v) - 1) // block * block + 1]
        x, y = v[:-1].reshape(-1, block), v[1:].reshape(-1, block)            # (N, block)
        out = [0.0, 0.0]
        with tl.no_grad(), torch.no_grad():
            for i in range(0, len(x), 64):
                xb, yb = x[i:i + 64], y[i:i + 64]
                out[0] += lm_nll(self.tl_model(tl.tensor(xb)), tl.tensor(yb))[0].item() * yb.size
                out[1] += _nll_pt(self.pt_model(torch.from_numpy(xb)),
                                  torch.from_numpy(yb)).item() * yb.size
        return out[0] / y.size, out[1] / y.size


def main() -> None:
    p = argparse.ArgumentParser(description="LM recipes: tinylatent vs PyTorch")
    p.add_argument("--model", choices=["lstm", "transformer"], default="lstm")
    p.add_argument("--corpus", choices=["kjv", "botchan"], default="kjv")
    p.add_argument("--level", choices=["word", "char"], default="word")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(1)
    s = LMSideBySide(args.model, args.corpus, args.level, args.seed, args.dropout,
                     total_steps=args.steps)
    print(f"{args.model} on {args.corpus}/{args.level}: {s.tl_model.num_parameters():,} "
          f"parameters, vocabulary {len(s.data.tokenizer)}")
    print(" step  tl_train  pt_train  tl_valid  pt_valid    diff  tl_s/step  pt_s/step")
    tl_s = pt_s = 0.0
    for done in range(args.eval_every, args.steps + 1, args.eval_every):
        a, b, ta, tb = s.paired_steps(args.eval_every)
        tl_s, pt_s = tl_s + ta, pt_s + tb
        va, vb = s.valid_losses()
        print(f"{done:5d}  {np.mean(a):8.4f}  {np.mean(b):8.4f}  {va:8.4f}  {vb:8.4f}  "
              f"{va - vb:+.4f}  {ta / args.eval_every:9.4f}  {tb / args.eval_every:9.4f}",
              flush=True)
    print(f"step-time ratio tinylatent / PyTorch: {tl_s / pt_s:.2f}")


if __name__ == "__main__":
    main()
