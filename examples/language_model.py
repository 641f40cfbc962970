"""Train an LSTM or a Transformer language model on the KJV or Botchan, words or characters.

    python examples/language_model.py --model lstm --corpus kjv --level word
    python examples/language_model.py --model transformer --corpus botchan --level char
    python examples/language_model.py ... --resume          # continue OUT/checkpoint.npz

lstm: pytorch/examples word_language_model (2x200 LSTM, dropout 0.2, SGD lr 20, clip 0.25,
BPTT 35, batch 20, lr / 4 when validation does not improve). transformer: nanoGPT at CPU
size (4 layers, 4 heads, d=128, context 64, batch 32, AdamW 1e-3, weight decay 0.1, warm-up
then cosine to 1e-4, clip 1.0). Every --eval-every steps: validation nats per token (vs the
unigram), loss_curve.png, samples.txt and checkpoint.npz in runs/language_model/<run>/.
"""
import argparse
import math
import os
import sys

import matplotlib
import numpy as np
from tqdm import tqdm

import tinylatent as tl
from tinylatent.data.text import LanguageModelStream, language_model_corpus
from tinylatent.models import LSTMLanguageModel, TransformerLM
from tinylatent.models.language_model import evaluate_nll, lm_nll, unigram_nll

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# --resume continues an interrupted run; only these may differ (--steps sets the schedule)
RESUMABLE = ("out", "eval_every", "temperature", "top_k", "sample_length", "stop_after")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="LSTM / Transformer language model (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--model", choices=["lstm", "transformer"], default="lstm")
    p.add_argument("--corpus", choices=["kjv", "botchan"], default="kjv")
    p.add_argument("--level", choices=["word", "char"], default="word")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--lr", type=float, default=None, help="default 20 (lstm), 1e-3")
    p.add_argument("--dropout", type=float, default=None, help="default 0.2 (lstm), 0.1")
    p.add_argument("--tied", action="store_true", help="lstm: tie encoder and decoder")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--sample-length", type=int, default=None, help="60 words / 300 chars")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)    # the resume test
    return p.parse_args(argv)


def build(args, vocab, bos):
    lstm = args.model == "lstm"
    args.lr = args.lr or (20.0 if lstm else 1e-3)
    args.dropout = (0.2 if lstm else 0.1) if args.dropout is None else args.dropout
    if lstm:
        model = LSTMLanguageModel(in_features=vocab, dropout=args.dropout,
                                  tie_weights=args.tied, bos_token_id=bos)
        opt = tl.optim.SGD(model.parameters(), lr=args.lr)
        return model, opt, tl.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.25,
                                                                   patience=0, threshold=0)
    model = TransformerLM(in_features=vocab, dropout=args.dropout, bos_token_id=bos)
    opt = tl.optim.AdamW(model.param_groups(0.1), lr=args.lr, betas=(0.9, 0.99))
    S = tl.optim.lr_scheduler
    warm = max(1, min(100, args.steps // 10))
    return model, opt, S.linear_warmup(opt, warm, S.CosineAnnealingLR(opt, args.steps - warm,
                                                                      args.lr / 10))


def save_outputs(model, tok, history, args, baseline):
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for key, style in (("train", "o-"), ("valid", "s-")):
        ax.plot([h["step"] for h in history], [h[key] for h in history], style, label=key)
    ax.axhline(baseline, color="gray", ls="--", label="unigram (validation)")
    ax.set(xlabel="step", ylabel=f"nats per {args.level}", title=f"{args.model} on "
           f"{args.corpus} ({args.level}s)")
    ax.legend(), ax.grid(alpha=0.3)
    fig.savefig(f"{args.out}/loss_curve.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    length = args.sample_length or (60 if args.level == "word" else 300)
    ids = model.sample(4, length, generator=tl.Generator(args.seed),
                       temperature=args.temperature, top_k=args.top_k).numpy()
    texts = [tok.decode(row).replace(" <eos> ", "\n").replace("<eos>", "\n") for row in ids]
    with open(f"{args.out}/samples.txt", "w", encoding="utf-8") as f:
        f.write(f"# step {history[-1]['step']}, temperature {args.temperature}, top_k "
                f"{args.top_k}, valid ppl {math.exp(history[-1]['valid']):.2f}\n")
        f.write("\n\n---\n".join(texts) + "\n")


def main(argv=None):
    args = parse_args(argv)
    args.out = args.out or f"runs/language_model/{args.model}_{args.corpus}_{args.level}"
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = f"{args.out}/checkpoint.npz"
    tl.manual_seed(args.seed)
    data = language_model_corpus(args.corpus, args.level)
    tok = data.tokenizer                                    # a text starts after a line end:
    bos = tok.stoi.get("<eos>", tok.stoi.get("\n", 0))
    model, opt, sched = build(args, len(tok), bos)
    lstm = args.model == "lstm"
    stream = LanguageModelStream(data.train, 20, 35) if lstm else None
    windows = tl.Generator(args.seed)                       # the transformer's batch positions
    step, hidden, history = 0, None, []
    if args.resume and os.path.exists(ckpt_path):
        ck = tl.load(ckpt_path)
        tl.serialization.check_resume_args(ck["args"], vars(args), RESUMABLE)
        for key, obj in (("model", model), ("optimizer", opt), ("scheduler", sched)):
            obj.load_state_dict(ck[key])
        tl.set_rng_state(ck["rng"])
        windows.set_state(ck["windows"])
        step, history = ck["step"], list(ck["history"])
        hidden = tuple(ck["hidden"]) if ck["hidden"] is not None else None
        print(f"resumed from {ckpt_path} at step {step}")
    baseline = unigram_nll(data.train, data.valid[1:], len(tok))
    print(f"{model.num_parameters():,} parameters; vocabulary {len(tok)}; {len(data.train):,}"
          f" train / {len(data.valid):,} valid tokens; unigram valid {baseline:.3f} nats "
          f"(ppl {math.exp(baseline):.1f})")
    block = 35 if lstm else model.config.block_size
    bar = tqdm(range(step, args.steps), initial=step, total=args.steps, mininterval=1.0,
               disable=not sys.stderr.isatty())     # a bar on a terminal only, not in logs
    running = []
    for step in bar:
        model.train()
        if lstm:
            i = step * 35 % (len(stream.data) - 1)
            hidden = None if i == 0 else model.detach_hidden(hidden)   # a new epoch
            x, y = stream.get_batch(i)
            logits, hidden = model(x.T, hidden)                      # (B, T, V)
            loss, _ = lm_nll(logits, y.T)
        else:
            ix = tl.randint(0, len(data.train) - block - 1, (32,), generator=windows).numpy()
            w = np.stack([data.train[k:k + block + 1] for k in ix])    # (B, block + 1)
            loss, _ = model.loss((tl.tensor(w[:, :-1]), tl.tensor(w[:, 1:])))
        opt.zero_grad(), loss.backward()
        tl.nn.utils.clip_grad_norm_(model.parameters(), 0.25 if lstm else 1.0)
        opt.step()
        if not lstm:
            sched.step()
        running.append(float(loss.item()))
        bar.set_postfix(loss=f"{running[-1]:.3f}", lr=f"{opt.param_groups[0]['lr']:.2g}")
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            valid = evaluate_nll(model, data.valid)
            if lstm:
                sched.step(valid)                          # lr / 4 when valid did not improve
            history.append({"step": step + 1, "train": float(np.mean(running)),
                            "valid": valid})
            running = []
            tqdm.write(f"step {step + 1:6d}  train {history[-1]['train']:.3f}  valid "
                       f"{valid:.3f} nats (ppl {math.exp(valid):.2f})  lr "
                       f"{opt.param_groups[0]['lr']:.3g}")
            save_outputs(model, tok, history, args, baseline)
            tl.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "rng": tl.get_rng_state(),
                     "windows": windows.get_state(), "step": step + 1, "history": history,
                     "hidden": None if hidden is None else list(hidden),
                     "args": vars(args)}, ckpt_path)
            if step + 1 == args.stop_after:
                return history, None
    test = evaluate_nll(model, data.test)
    print(f"test {test:.3f} nats per {args.level} (ppl {math.exp(test):.2f}); unigram "
          f"{unigram_nll(data.train, data.test[1:], len(tok)):.3f}. Outputs in {args.out}/")
    return history, test


if __name__ == "__main__":
    main()
