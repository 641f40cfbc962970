"""BERT at CPU size on the King James Bible: masked LM + next-sentence prediction, then
fine-tuning on Old vs New Testament verses with few labels, pre-trained vs from scratch.

    python examples/bert_kjv.py                          # 2 x 128, 14 epochs of 500 steps
    python examples/bert_kjv.py ... --resume             # continue OUT/checkpoint.npz

Chapters are the documents; every 10th chapter is held out (NSP and MLM figures at the
end; verses of held-out chapters the fine-tuning test set) and every 10th of the rest is
the validation split, not trained on (NSP and MLM after every epoch: the learning curve
that settings are judged on). NSP pairs as the paper's (Sec. 3.1, A.2): A and B are spans
of consecutive verses filling 128 tokens together, B the continuation or verses of another
chapter (tl.data.NextSpanPairs); training pairs drawn afresh whenever a draw is used up (new
cuts, new random B: tl.data.RedrawLoader; `--dupe-factor K`: K draws fixed before training,
as the paper's static data). AdamW, peak rate 1e-3 after 700 warm-up steps, linear decay to
0 (A.2, per update: warmup_decay).
Fine-tuning sees single verses (48 tokens). Tokens: BPE (2,000 merges, lower case) with
[CLS] [SEP] [MASK] [PAD]. Writes to runs/bert_kjv/: loss_curve.png, finetune.png (balanced
accuracy vs labels), results.txt, tokenizer.json and checkpoint.npz (tl.train.Trainer,
after every epoch).
"""
import argparse
import json
import os

import matplotlib
import numpy as np

import tinylatent as tl
from tinylatent.models import BERT
from tinylatent.models.bert import SPECIALS, span_pair_datasets, span_pairs
from tinylatent.models.bert_eval import (evaluate_pretraining, nsp_overlap_baseline,
                                         warmup_decay)
from tinylatent.models.bert_pretext import encode_sentences, finetune_table

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESUMABLE = ("out", "epochs", "resume", "labels", "finetune_steps", "finetune_lr",
             "finetune_seeds")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="BERT on the KJV (tinylatent)",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--max-len", type=int, default=128, help="tokens per NSP span pair")
    p.add_argument("--verse-len", type=int, default=48, help="tokens per fine-tuning verse")
    p.add_argument("--dupe-factor", type=int, default=0, help="draws of the training pairs, "
                   "fixed before training (0: a fresh draw whenever one is used up)")
    p.add_argument("--merges", type=int, default=2000, help="BPE merges")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=700, help="steps of linear warm-up from 0")
    p.add_argument("--schedule", choices=["constant", "linear", "cosine"], default="linear",
                   help="after the warm-up: constant, or decay to 0 at the last step")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=14)
    p.add_argument("--decay-epochs", type=int, default=None,
                   help="the schedule's length (default: --epochs; fix it to resume a run)")
    p.add_argument("--steps-per-epoch", type=int, default=500)
    p.add_argument("--chapters", type=int, default=None, help="use only N chapters")
    p.add_argument("--valid-every", type=int, default=10, help="every Kth training chapter is "
                   "the validation split (NSP and MLM after every epoch; 0: none)")
    p.add_argument("--labels", type=int, nargs="+", default=[16, 64, 256],
                   help="fine-tuning label counts")
    p.add_argument("--finetune-steps", type=int, default=150)
    p.add_argument("--finetune-lr", type=float, default=2e-4, help="both encoders")
    p.add_argument("--finetune-seeds", type=int, default=3, help="labelled subsets, averaged")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="runs/bert_kjv")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    tl.manual_seed(args.seed)
    train_docs, test_docs = tl.data.text.kjv_chapter_split(tl.data.load_kjv(),
                                                           chapters=args.chapters)
    tok = tl.data.tokenizers.run_bpe_tokenizer(
        f"{args.out}/tokenizer.json", [v.text for d in train_docs for v in d], args.merges,
        SPECIALS, resume=args.resume)
    assert tok.itos[:len(SPECIALS)] == list(SPECIALS)
    k = args.valid_every                              # validation: carved from training
    fit_docs = [d for i, d in enumerate(train_docs) if not k or i % k != k - 1]
    val_docs = [d for i, d in enumerate(train_docs) if k and i % k == k - 1]
    texts = [[[v.text for v in d] for d in docs] for docs in (fit_docs, val_docs, test_docs)]
    model = BERT(in_features=len(tok), hidden_features=args.dim, num_layers=args.layers,
                 num_heads=args.heads, block_size=max(args.max_len, args.verse_len),
                 dropout=args.dropout)
    train_set, valid_set = span_pair_datasets(texts[0], texts[1] or texts[2], tok,
                                              args.max_len, model.config, args.seed,
                                              max(1, args.dupe_factor))
    test_set = span_pairs(texts[2], tok, args.max_len, model.config, tl.Generator(args.seed))
    print(f"{model.num_parameters():,} parameters; vocabulary {len(tok)}; NSP pairs "
          f"{len(train_set):,} train{'' if args.dupe_factor else ' (one draw of many)'} / "
          f"{len(valid_set):,} validation / {len(test_set):,} held-out")
    loader = (tl.data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                                 generator=tl.Generator(args.seed), drop_last=True)
              if args.dupe_factor else tl.data.RedrawLoader(lambda rng: span_pairs(
                  texts[0], tok, args.max_len, model.config, rng), args.batch_size,
                  args.steps_per_epoch, generator=tl.Generator(args.seed)))
    opt = tl.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = tl.optim.lr_scheduler.LambdaLR(opt, warmup_decay(
        args.warmup, (args.decay_epochs or args.epochs) * args.steps_per_epoch, args.schedule))

    def evaluate(m):
        if not val_docs:
            return {}
        mlm, nsp, _ = evaluate_pretraining(m, valid_set)
        return {"valid_mlm_accuracy": mlm, "valid_nsp_accuracy": nsp}

    trainer = tl.train.Trainer(model, opt, args.out, config=vars(args), evaluate=evaluate,
                               resumable_keys=RESUMABLE, scheduler=schedule,
                               scheduler_interval="step")
    history = trainer.fit(loader, args.epochs, resume=args.resume,
                          max_steps_per_epoch=args.steps_per_epoch)
    mlm, nsp, targets = evaluate_pretraining(model, test_set)
    train_ids = train_set.tensors[0].numpy()
    counts = np.bincount(train_ids[train_ids >= len(SPECIALS)], minlength=len(tok))
    unigram = float((targets == counts.argmax()).mean())
    nsp_base = nsp_overlap_baseline(train_set, test_set, model.config)
    next_rate = float(test_set.tensors[2].numpy().mean())
    lines = [f"held-out MLM accuracy {mlm:.3f} (unigram baseline {unigram:.3f}: always "
             f"'{tok.itos[counts.argmax()]}'); held-out NSP accuracy {nsp:.3f} "
             f"({len(test_set)} pairs, {next_rate:.1%} IsNext; lexical-overlap logistic "
             f"regression {nsp_base:.3f})"]
    # fine-tuning: Old (Genesis-Malachi) vs New Testament (Matthew-Revelation), single verses
    verses = [[v for d in docs for v in d] for docs in (fit_docs, test_docs)]
    (x_all, y_all), test = ((encode_sentences(tok, [v.text for v in vs], args.verse_len,
                                              model.config), tl.data.text.kjv_testament(vs))
                            for vs in verses)
    pretrained = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    table = finetune_table({"pretrained": (model.config, pretrained),
                            "scratch": (model.config, None)}, (x_all, y_all), test, args.labels,
                           [args.seed + k for k in range(args.finetune_seeds)],
                           args.finetune_steps, args.finetune_lr)
    # (accuracy, balanced accuracy) for each number of labels, mean over the seeds
    results = {k: [tuple(r[i].mean(0)) for i in range(len(args.labels))]
               for k, r in table.items()}
    for n, (a, ba), (sa, sba) in zip(args.labels, results["pretrained"], results["scratch"]):
        lines.append(f"{n:5d} labels: balanced accuracy pre-trained {ba:.3f}, from scratch "
                     f"{sba:.3f} (accuracy {a:.3f} vs {sa:.3f}; mean of {args.finetune_seeds} "
                     f"seeds; test: {len(test[1])} verses, {test[1].mean():.1%} New Testament)")
    print("\n".join(lines))
    with open(f"{args.out}/results.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n" + json.dumps(history) + "\n")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for kind, style in (("pretrained", "o-"), ("scratch", "s--")):
        ax.plot(args.labels, [r[1] for r in results[kind]], style, label=kind)
    ax.axhline(0.5, color="gray", ls=":", label="chance")
    ax.set(xscale="log", xlabel="labelled verses", ylabel="balanced test accuracy",
           title="Old vs New Testament, fine-tuned BERT")
    ax.legend(), ax.grid(alpha=0.3)
    fig.savefig(f"{args.out}/finetune.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return {"mlm": mlm, "unigram": unigram, "nsp": nsp, "nsp_baseline": nsp_base,
            "next_rate": next_rate, **results, "history": history}


if __name__ == "__main__":
    main()
