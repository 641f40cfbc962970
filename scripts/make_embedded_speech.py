"""Build tinylatent/data/embedded/speech_kjv_8k.npz: a real speech clip for WaveNet.

The first verses of Genesis (King James Bible, public domain; read from the embedded
kjv.tsv.xz) are synthesised by the espeak-ng speech synthesiser, resampled from its native
22,050 Hz to 8 kHz (polyphase filter, scipy.signal.resample_poly) and mu-law encoded to
8 bits (ITU-T G.711 mu = 255, as WaveNet, van den Oord et al. 2016, Sec. 2.2). Verses are
added in order until the next one would pass --seconds.

    apt-get update && apt-get install -y espeak-ng         # 1.51 in Debian 12
    python scripts/make_embedded_speech.py                  # prints the output's SHA-256

espeak-ng is deterministic: the same version, voice and rate give the same samples, so a
rebuild gives identical arrays (the .npz bytes differ: the zip entries carry a timestamp;
tinylatent/data/audio.py checks the SHA-256 of the committed file).
Stored arrays (np.savez_compressed; load with allow_pickle=False): `mulaw` uint8 (N,),
`sample_rate` (), `starts` int64 (V,) the first sample of each verse, `refs` and `texts`
(V,) unicode strings ("Genesis 1:1", verse text), `voice`, `synthesiser`.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tinylatent.data.audio import mu_law_encode  # noqa: E402
from tinylatent.data.text import load_kjv  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tinylatent", "data", "embedded",
                   "speech_kjv_8k.npz")


def synthesise(text: str, voice: str, rate_wpm: int) -> tuple:
    """(int16 samples, sample rate) of `text` spoken by espeak-ng."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "verse.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate_wpm), "-w", path, text],
                       check=True)
        rate, samples = wavfile.read(path)
    return samples, rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=150.0, help="total length at most")
    ap.add_argument("--sample-rate", type=int, default=8000)
    ap.add_argument("--voice", default="en-us")
    ap.add_argument("--rate-wpm", type=int, default=150, help="espeak-ng speaking rate")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    version = subprocess.run(["espeak-ng", "--version"], check=True, capture_output=True,
                             text=True).stdout.strip()
    pieces, starts, refs, texts, total = [], [], [], [], 0
    for verse in load_kjv():
        samples, rate = synthesise(verse.text, args.voice, args.rate_wpm)
        x = samples.astype(np.float64) / 32768.0
        # 22,050 -> 8,000 Hz: up 160, down 441 (gcd 50); the polyphase filter is the
        # anti-aliasing low-pass
        g = np.gcd(args.sample_rate, rate)
        y = resample_poly(x, args.sample_rate // g, rate // g)
        if total + len(y) > args.seconds * args.sample_rate:
            break
        starts.append(total)
        refs.append(f"{verse.book} {verse.chapter}:{verse.verse}")
        texts.append(verse.text)
        pieces.append(y)
        total += len(y)
    waveform = np.clip(np.concatenate(pieces), -1.0, 1.0)
    codes = mu_law_encode(waveform).astype(np.uint8)
    np.savez_compressed(args.out, mulaw=codes, sample_rate=np.int64(args.sample_rate),
                        starts=np.asarray(starts, dtype=np.int64), refs=np.asarray(refs),
                        texts=np.asarray(texts), voice=np.asarray(args.voice),
                        synthesiser=np.asarray(f"{version}, -s {args.rate_wpm}"))
    with open(args.out, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    print(f"wrote {args.out}: {len(refs)} verses ({refs[0]} - {refs[-1]}), "
          f"{total / args.sample_rate:.1f} s at {args.sample_rate} Hz, "
          f"{os.path.getsize(args.out)} bytes, sha256 {digest}")


if __name__ == "__main__":
    main()
