"""WaveNet on the embedded speech clip (8 kHz mu-law): test bits per sample against a
unigram mu-law baseline and a 2-layer MLP on the same receptive field; generated audio as a
WAV file and its spectrogram as a PNG.

    python examples/wavenet_speech.py --steps 1000                 # WaveNet, R = 1024
    python examples/wavenet_speech.py --model mlp --steps 1000     # the MLP baseline

The clip (146 s, KJV verses read by espeak-ng) is split in time: the first 90% trains, the
last 10% tests. Test positions are scored with a full past of R samples.
"""
import argparse
import os
import sys
import time

import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent import nn
from tinylatent.data.audio import load_speech, mu_law_decode
from tinylatent.models.wavenet import WaveNet

RESUMABLE = ("eval_every", "generate")   # --steps sets the cosine schedule: fixed


class ContextMLP(nn.Module):
    """The baseline: p(x_t | x_{t-R} .. x_{t-1}) = softmax(W2 relu(W1 [e(x_{t-R}), ...])),
    a 2-layer MLP on embeddings (8-d) of the same R past codes WaveNet sees."""

    def __init__(self, receptive_field: int, hidden: int = 256, q: int = 256, dim: int = 8):
        super().__init__()
        self.receptive_field = receptive_field
        self.embed = nn.Embedding(q, dim)
        self.hidden = nn.Linear(receptive_field * dim, hidden)
        self.out = nn.Linear(hidden, q)

    def log_prob_next(self, context: np.ndarray, target: np.ndarray) -> tl.Tensor:
        """context (B, R) codes, target (B,) -> log p(target | context), (B,)."""
        e = self.embed(tl.tensor(context)).reshape(len(context), -1)        # (B, R * dim)
        logits = self.out(tl.relu(self.hidden(e)))                          # (B, Q)
        return tl.distributions.Categorical(logits=logits).log_prob(target)


def contexts(codes: np.ndarray, positions: np.ndarray, R: int):
    return codes[positions[:, None] + np.arange(-R, 0)], codes[positions]   # (B, R), (B,)


def test_bits(model, test: np.ndarray, R: int, window: int = 4096) -> float:
    """Mean -log2 p(x_t | past) over every test position t >= R."""
    model.eval()
    total, n = 0.0, 0
    with tl.no_grad():
        for s in range(R, len(test), window):
            e = min(s + window, len(test))
            if isinstance(model, WaveNet):
                lp = model.log_prob_steps(test[None, s - R: e]).numpy()[0, R:]
            else:
                lp = np.concatenate([model.log_prob_next(*contexts(test, p, R)).numpy()
                                     for p in np.array_split(np.arange(s, e), 8)])
            total, n = total - lp.sum(), n + len(lp)
    model.train()
    return total / n / np.log(2)


def save_audio(codes: np.ndarray, rate: int, out: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.io import wavfile
    wave = mu_law_decode(codes)
    wavfile.write(f"{out}/generated.wav", rate, (wave * 32767).astype(np.int16))
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.specgram(wave, NFFT=256, Fs=rate, noverlap=192, cmap="magma")
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)", title="WaveNet sample")
    fig.savefig(f"{out}/generated_spectrogram.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=tl.train.DefaultsHelpFormatter)
    ap.add_argument("--model", choices=["wavenet", "mlp"], default="wavenet")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=8, help="windows (MLP: x 64 contexts)")
    ap.add_argument("--window", type=int, default=2048, help="training window (samples)")
    ap.add_argument("--lr", type=float, default=5e-3, help="Adam, cosine decay to 0")
    ap.add_argument("--hidden", type=int, default=32, help="residual channels (MLP: x 8)")
    ap.add_argument("--layers", type=int, default=10, help="dilations 1 .. 2^(layers-1)")
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--generate", type=float, default=1.0, help="seconds of audio to sample")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/wavenet_speech")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = f"{args.out}/checkpoint.npz"
    tl.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    speech = load_speech()
    cut = int(round(len(speech.mulaw) * 0.9))
    train, test = speech.mulaw[:cut], speech.mulaw[cut:]
    wavenet = WaveNet(hidden_channels=args.hidden, skip_channels=2 * args.hidden,
                      num_layers=args.layers, num_blocks=args.blocks)
    R = wavenet.receptive_field
    model = wavenet if args.model == "wavenet" else ContextMLP(R, hidden=8 * args.hidden)
    opt = tl.optim.Adam(model.parameters(), lr=args.lr)
    sched = tl.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps)
    p = (np.bincount(train, minlength=256) + 1.0) / (len(train) + 256)    # add-one smoothing
    unigram = float(-np.log2(p[test[R:]]).mean())
    print(f"{args.model}: {sum(q.numel() for q in model.parameters()):,} parameters, receptive "
          f"field {R} samples; unigram baseline {unigram:.3f} bits/sample")

    start, history = 1, []
    if args.resume and os.path.exists(ckpt_path):
        ckpt = tl.load(ckpt_path)
        try:
            tl.serialization.check_resume_args(ckpt.get("args"), vars(args), RESUMABLE)
        except ValueError as e:
            raise SystemExit(f"wavenet_speech.py: {e}") from None
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        tl.set_rng_state(ckpt["rng"])
        rng.bit_generator.state = ckpt["np_rng"]
        start, history = ckpt["step"] + 1, list(ckpt["history"])
        print(f"resumed from {ckpt_path} after step {ckpt['step']}")
    t0, c0 = time.time(), time.process_time()
    bits = history[-1]["test_bits"] if history else float("nan")
    bar = tqdm(range(start, args.steps + 1), desc=args.model, mininterval=1.0,
               disable=not sys.stderr.isatty())     # a bar on a terminal only, not in logs
    for step in bar:
        if args.model == "wavenet":
            s = rng.integers(0, len(train) - args.window, args.batch_size)
            loss, _ = model.loss(train[s[:, None] + np.arange(args.window)])   # (B, window)
        else:
            pos = rng.integers(R, len(train), args.batch_size * 64)
            loss = -model.log_prob_next(*contexts(train, pos, R)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(bits=f"{loss.item() / np.log(2):.3f}")
        if step % args.eval_every == 0 or step == args.steps:
            bits = test_bits(model, test, R)
            history.append({"step": step, "train_bits": loss.item() / np.log(2),
                            "test_bits": bits})
            tqdm.write(f"step {step:6d}  test {bits:.3f} bits/sample  "
                       f"({time.time() - t0:.0f} s, {time.process_time() - c0:.0f} CPU s)")
            tl.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "step": step,
                     "rng": tl.get_rng_state(), "np_rng": rng.bit_generator.state,
                     "history": history, "args": vars(args)}, ckpt_path)
    if args.model == "wavenet" and args.generate > 0:
        t1 = time.time()
        codes = model.eval().sample(1, int(args.generate * speech.sample_rate),
                                    generator=tl.Generator(args.seed)).numpy()[0]
        save_audio(codes, speech.sample_rate, args.out)
        print(f"generated {len(codes)} samples in {time.time() - t1:.0f} s (cached steps)")
    print(f"final test {bits:.3f} bits/sample ({args.model}, {args.steps} steps; unigram "
          f"{unigram:.3f}); outputs in {args.out}/")
    return history


if __name__ == "__main__":
    main()
