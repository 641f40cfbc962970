"""The translation models' encoder-decoder (tinylatent.models.translation.Seq2Seq: BiLSTM
encoder, LSTM decoder, Luong "general" attention, language embeddings) in PyTorch, with the
same parameter names, so the twin starts from tinylatent's weights copied by name and sees
the same batches: the teacher-forced loss -log p(y | x) per target token, the step that
UnsupervisedTranslation (denoising, back-translation) and JointDual repeat.
"""
from __future__ import annotations

import numpy as np

import tinylatent as tl
from tinylatent.models.translation import EOS, PAD, Seq2Seq

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # pragma: no cover - the benchmark skips without PyTorch
    torch = None

if torch is not None:
    class TorchSeq2Seq(nn.Module):
        def __init__(self, V, E, H, num_languages=2):
            super().__init__()
            self.embedding = nn.Embedding(V, E, padding_idx=PAD)
            self.language = nn.Embedding(num_languages, E)
            self.encoder = nn.LSTM(E, H, batch_first=True, bidirectional=True)
            self.enc_proj = nn.Linear(2 * H, H)
            self.init_state = nn.Linear(H, H)
            self.decoder = nn.LSTM(E, H, batch_first=True)
            self.attn = nn.Linear(H, H, bias=False)
            self.combine = nn.Linear(2 * H, H)
            self.output = nn.Linear(H, V)

        def _embed(self, x, lang):
            return self.embedding(x) + self.language.weight[lang]

        def nll(self, src, src_lang, tgt, tgt_lang):
            mask = (src != PAD).float()
            h = self.enc_proj(self.encoder(self._embed(src, src_lang))[0])
            mean = (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
            s0 = torch.tanh(self.init_state(mean)).unsqueeze(0)
            inputs = torch.cat([torch.full_like(tgt[:, :1], 1), tgt[:, :-1]], 1)
            s, _ = self.decoder(self._embed(inputs, tgt_lang), (s0, torch.zeros_like(s0)))
            scores = (self.attn(s) @ h.transpose(1, 2)).masked_fill(
                mask.unsqueeze(1) == 0, -1e9)
            o = torch.tanh(self.combine(torch.cat([s, scores.softmax(-1) @ h], -1)))
            logp = self.output(o).log_softmax(-1).gather(-1, tgt.unsqueeze(-1))[..., 0]
            tmask = (tgt != PAD).float()
            return -(logp * tmask).sum() / tmask.sum()


def sentence_batch(B, T, V, seed=0):
    """(src, tgt): (B, T + 1) ids of random lengths, words then <eos> then <pad>; src in
    language 0's half of the vocabulary, tgt in language 1's."""
    rng = np.random.default_rng(seed)
    half = (V - 4) // 2
    out = []
    for lo in (4, 4 + half):
        x = np.full((B, T + 1), PAD, dtype=np.int64)
        for i, n in enumerate(rng.integers(T // 2, T + 1, B)):
            x[i, :n] = rng.integers(lo, lo + half, n)
            x[i, n] = EOS
        out.append(x)
    return out


class TranslationSideBySide:
    """A tinylatent Seq2Seq and its PyTorch twin, same weights, each with Adam."""

    def __init__(self, V=2004, E=64, H=128, lr=2e-3, seed=0):
        tl.manual_seed(seed)
        self.tl_model = Seq2Seq(V, E, H)
        self.pt_model = TorchSeq2Seq(V, E, H)
        state = self.tl_model.state_dict()
        with torch.no_grad():
            for name, p in self.pt_model.state_dict(keep_vars=True).items():
                p.copy_(torch.from_numpy(state[name].numpy()))
        self.tl_opt = tl.optim.Adam(self.tl_model.parameters(), lr=lr)
        self.pt_opt = torch.optim.Adam(self.pt_model.parameters(), lr=lr)

    def tl_step(self, src, tgt):
        loss = self.tl_model.nll(tl.tensor(src), 0, tl.tensor(tgt), 1)
        self.tl_opt.zero_grad()
        loss.backward()
        self.tl_opt.step()
        return float(loss.item())

    def pt_step(self, src, tgt):
        loss = self.pt_model.nll(torch.from_numpy(src), 0, torch.from_numpy(tgt), 1)
        self.pt_opt.zero_grad()
        loss.backward()
        self.pt_opt.step()
        return float(loss.item())
