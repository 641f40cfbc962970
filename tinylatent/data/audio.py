"""Audio for WaveNet: mu-law companding, WAV files, an embedded speech clip, training windows.

    speech = load_speech()                         # embedded: KJV Genesis read by espeak-ng
    train = AudioWindows(speech.mulaw, window=4096, split="train")
    x, target = train[0]                           # (4096,) int64 codes each, target = x + 1

WaveNet (van den Oord et al. 2016, Sec. 2.2) models 8-bit mu-law codes with a 256-way
softmax. `load_speech()` reads the embedded clip (checked against its SHA-256; see
embedded/README.md); `load_wav` / `load_wav_folder` read users' own recordings with
scipy.io.wavfile (nothing else is needed for PCM WAV).
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .dataset import TensorDataset
from .mnist import _announce

__all__ = ["mu_law_encode", "mu_law_decode", "load_wav", "load_wav_folder", "load_speech",
           "Speech", "AudioWindows", "AudioFormatError", "EMBEDDED_SPEECH"]

EMBEDDED_SPEECH = Path(__file__).parent / "embedded" / "speech_kjv_8k.npz"
# SHA-256 of the embedded file, as printed by scripts/make_embedded_speech.py
SPEECH_SHA256 = "20985763de2d8c81cb2296a936f60760b1d1cb56da4111a7a8670d0952f04a9b"


class AudioFormatError(ValueError):
    """An audio file that cannot be read (corrupt, truncated, or not PCM WAV)."""


def mu_law_encode(x, quantization_channels: int = 256):
    """Waveform in [-1, 1] -> integer codes in [0, Q - 1] (ITU-T G.711 mu-law, mu = Q - 1).

        f(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu)        (compress: fine steps near 0)
        q    = floor((f(x) + 1) / 2 * mu + 1/2)           (uniform quantisation of f)

    Values outside [-1, 1] are clipped first. Returns int64 codes, same shape.
    """
    mu = quantization_channels - 1
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    f = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return np.floor((f + 1) / 2 * mu + 0.5).astype(np.int64)


def mu_law_decode(q, quantization_channels: int = 256):
    """Codes in [0, Q - 1] -> waveform in [-1, 1], the inverse of mu_law_encode's compression:

        y = 2 q / mu - 1,    x = sign(y) ((1 + mu)^|y| - 1) / mu

    Round trip error: |decode(encode(x)) - x| <= (1 + mu|x|) (1 + mu)^(1/mu) ln(1 + mu) / mu^2
    (the quantisation error 1/mu of f times the largest slope of f's inverse nearby).
    """
    mu = quantization_channels - 1
    q = np.asarray(q)
    if q.size and (q.min() < 0 or q.max() > mu):
        raise ValueError(f"mu_law_decode: codes must lie in [0, {mu}], got range "
                         f"[{q.min()}, {q.max()}]")
    y = 2 * q.astype(np.float64) / mu - 1
    return (np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu).astype(np.float32)


def load_wav(path: "str | os.PathLike", sample_rate: int | None = None) -> tuple:
    """(mono float32 waveform in [-1, 1], sample rate) of a PCM or float WAV file.

    Integer PCM is scaled by its full range (int16 / 32768, uint8 centred at 128); stereo is
    averaged to mono; with `sample_rate`, resampled by a polyphase filter to that rate.
    """
    from scipy.io import wavfile
    path = Path(path)
    try:
        rate, data = wavfile.read(path)
    except (ValueError, EOFError, OSError) as e:
        raise AudioFormatError(f"{path}: not a readable WAV file ({type(e).__name__}: {e})") \
            from None
    if data.dtype == np.uint8:
        x = (data.astype(np.float32) - 128) / 128
    elif data.dtype.kind == "i":
        x = data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    elif data.dtype.kind == "f":
        x = data.astype(np.float32)
    else:
        raise AudioFormatError(f"{path}: unsupported sample type {data.dtype}")
    if x.ndim == 2:
        x = x.mean(axis=1)                      # (N, channels) -> (N,)
    if x.size == 0:
        raise AudioFormatError(f"{path}: no samples")
    if sample_rate is not None and sample_rate != rate:
        from scipy.signal import resample_poly   # imported only when needed: it is slow
        g = np.gcd(int(sample_rate), int(rate))
        x = resample_poly(x, sample_rate // g, rate // g).astype(np.float32)
        rate = sample_rate
    return np.clip(x, -1.0, 1.0), int(rate)


def load_wav_folder(directory: "str | os.PathLike", sample_rate: int | None = None) -> list:
    """[(file name, waveform)] of every *.wav in `directory` (sorted by name), all at one rate.

    Without `sample_rate` every file must already share the first file's rate; with it,
    each is resampled to it.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"load_wav_folder: {directory} is not a directory")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() == ".wav")
    if not files:
        raise FileNotFoundError(f"load_wav_folder: no .wav files in {directory}")
    out, rate = [], sample_rate
    for path in files:
        x, r = load_wav(path, sample_rate)
        if rate is None:
            rate = r
        elif r != rate:
            raise AudioFormatError(f"{path}: sample rate {r} Hz differs from {rate} Hz of "
                                   f"{files[0].name}; pass sample_rate= to resample")
        out.append((path.name, x))
    _announce("wav", str(directory), f"{len(out)} WAV files at {rate} Hz from {directory}")
    return out


class Speech(NamedTuple):
    mulaw: np.ndarray     # (N,) int64 codes in [0, 255]
    sample_rate: int
    starts: np.ndarray    # (V,) int64: first sample of each verse
    refs: list            # ["Genesis 1:1", ...]
    texts: list           # the verses' text


def load_speech(path: "str | os.PathLike | None" = None) -> Speech:
    """The embedded speech clip (or a file in its format): KJV verses read by espeak-ng."""
    file = Path(path) if path is not None else EMBEDDED_SPEECH
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise FileNotFoundError(f"load_speech: cannot read {file}: {e}") from None
    if path is None and hashlib.sha256(raw).hexdigest() != SPEECH_SHA256:
        raise AudioFormatError(f"{file}: SHA-256 {hashlib.sha256(raw).hexdigest()} != "
                               f"expected {SPEECH_SHA256} (corrupt or modified file)")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            speech = Speech(z["mulaw"].astype(np.int64), int(z["sample_rate"]),
                            z["starts"].astype(np.int64), [str(s) for s in z["refs"]],
                            [str(s) for s in z["texts"]])
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise AudioFormatError(f"{file}: not a speech file ({type(e).__name__}: {e})") \
            from None
    _announce("speech", str(file), f"speech: {len(speech.refs)} KJV verses, "
                                   f"{len(speech.mulaw) / speech.sample_rate:.0f} s at "
                                   f"{speech.sample_rate} Hz, from {file}")
    return speech


class AudioWindows(TensorDataset):
    """Fixed-length windows of a mu-law code stream for next-sample prediction.

    The stream is split in time: the first (1 - test_fraction) is "train", the rest "test",
    so no window of one split overlaps the other. Each split is cut into windows of
    window + 1 codes every `hop` samples (default: window, no overlap); items are
    (x (window,), target (window,)) int64 with target[t] = x[t + 1], the code to predict.
    """

    def __init__(self, codes, window: int = 4096, split: str = "train",
                 test_fraction: float = 0.1, hop: int | None = None):
        codes = np.asarray(codes, dtype=np.int64).ravel()
        if split not in ("train", "test"):
            raise ValueError(f"AudioWindows: split must be 'train' or 'test', got {split!r}")
        if not 0.0 < test_fraction < 1.0 or window < 1:
            raise ValueError(f"AudioWindows: need window >= 1 and 0 < test_fraction < 1, got "
                             f"{window} and {test_fraction}")
        cut = int(round(len(codes) * (1 - test_fraction)))
        part = codes[:cut] if split == "train" else codes[cut:]
        hop = window if hop is None else hop
        starts = np.arange(0, len(part) - window, hop)             # each needs window + 1
        if len(starts) == 0:
            raise ValueError(f"AudioWindows: the {split} part has {len(part)} samples, fewer "
                             f"than window + 1 = {window + 1}")
        frames = part[starts[:, None] + np.arange(window + 1)]     # (N, window + 1)
        super().__init__(frames[:, :-1].copy(), frames[:, 1:].copy())
        self.split, self.window, self.hop = split, window, hop
