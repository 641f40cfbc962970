"""One BERT encoder (2 x 128) pre-trained on the King James Bible by four objectives, then
fine-tuned on Old vs New Testament verses with few labels, next to the same encoder from
scratch: BERT's masked LM + next-sentence prediction (models/bert.py), and the masked
denoising objective of seed 000, sentence (word-order) shuffling and word deletion of seed
002 (models/bert_pretext.py).

    python examples/bert_pretext_kjv.py                  # 4 objectives x 10 epochs of 200 steps
    python examples/bert_pretext_kjv.py ... --resume     # continue OUT/<objective>/checkpoint.npz

Split and protocol as examples/bert_kjv.py: every 10th chapter held out; BPE (2,000
merges); MLM + NSP sees verse pairs (tl.data.NextSentencePairs, truncated to --max-len: the
README's table), or with --pair-len N span pairs of consecutive verses filling N tokens
(the paper's Sec. 3.1 and A.2, tl.data.NextSpanPairs, as examples/bert_kjv.py), the other
objectives single verses of the same training chapters, all for the same number of steps
and batch size.
Fine-tuning: for each seed, balanced labelled subsets of the training verses, the same
subsets for every encoder; test: every verse of the held-out chapters (balanced accuracy,
as the test set is 77% Old Testament). Writes runs/bert_pretext_kjv/: finetune.png, results.txt,
tokenizer.json and <objective>/{checkpoint.npz, loss_curve.png} (tl.train.Trainer).
"""
import argparse
import json
import os

import matplotlib

import tinylatent as tl
from tinylatent.models import BERT, PretextBERT
from tinylatent.models.bert import SPECIALS, BERTConfig, encode_pairs, span_pair_datasets
from tinylatent.models.bert_eval import evaluate_pretraining, nsp_overlap_baseline
from tinylatent.models.bert_pretext import (encode_sentences, evaluate_objective, finetune_table,
                                            objective_baselines)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESUMABLE = ("out", "epochs", "resume", "labels", "finetune_steps", "finetune_lr",
             "finetune_seeds", "objectives")
OBJECTIVES = ("mlm+nsp", "denoise", "shuffle", "delete")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="BERT pre-training objectives on the KJV",
                                formatter_class=tl.train.DefaultsHelpFormatter)
    p.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=OBJECTIVES)
    # model, pre-training and fine-tuning settings of examples/bert_kjv.py (10 epochs here)
    for name, default in (("layers", 2), ("dim", 128), ("heads", 4), ("max-len", 48),
                          ("pair-len", 0), ("dupe-factor", 5), ("merges", 2000),
                          ("batch-size", 32), ("lr", 5e-4), ("epochs", 10),
                          ("steps-per-epoch", 200), ("finetune-steps", 150),
                          ("finetune-lr", 2e-4), ("finetune-seeds", 3), ("seed", 1)):
        p.add_argument(f"--{name}", type=type(default), default=default, help=" ")
    p.add_argument("--chapters", type=int, default=None, help="use only N chapters")
    p.add_argument("--labels", type=int, nargs="+", default=[16, 64, 256],
                   help="fine-tuning label counts (balanced: n/2 per testament)")
    p.add_argument("--out", default="runs/bert_pretext_kjv")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    verses = tl.data.load_kjv()
    train_docs, test_docs = tl.data.text.kjv_chapter_split(verses, chapters=args.chapters)
    tok = tl.data.tokenizers.run_bpe_tokenizer(
        f"{args.out}/tokenizer.json", [v.text for d in train_docs for v in d], args.merges,
        SPECIALS, resume=args.resume)
    sizes = dict(in_features=len(tok), hidden_features=args.dim, num_layers=args.layers,
                 num_heads=args.heads, block_size=args.max_len)
    train_verses = [v for d in train_docs for v in d]
    test_verses = [v for d in test_docs for v in d]
    x_train = encode_sentences(tok, [v.text for v in train_verses], args.max_len, BERTConfig())
    x_test = encode_sentences(tok, [v.text for v in test_verses], args.max_len, BERTConfig())
    lines, states, history, all_baselines = [], {}, {}, {}
    for objective in args.objectives:
        tl.manual_seed(args.seed)            # the same initial encoder for every objective
        if objective == "mlm+nsp":
            texts = [[[v.text for v in d] for d in docs] for docs in (train_docs, test_docs)]
            if args.pair_len:                # span pairs of --pair-len tokens, as bert_kjv.py
                model = BERT(**{**sizes, "block_size": max(args.max_len, args.pair_len)})
                data, valid = span_pair_datasets(*texts, tok, args.pair_len, model.config,
                                                 args.seed, args.dupe_factor)
            else:                            # verse pairs truncated to --max-len
                model = BERT(**sizes)
                data, valid = (encode_pairs(tl.data.NextSentencePairs(
                    t, generator=tl.Generator(args.seed + k)), tok, args.max_len, model.config)
                    for k, t in enumerate(texts))

            def evaluate(m, valid=valid):
                mlm, nsp, _ = evaluate_pretraining(m, valid)
                return {"valid_mlm_accuracy": mlm, "valid_nsp_accuracy": nsp}
            baselines = {"nsp_accuracy": nsp_overlap_baseline(data, valid, model.config)}
        else:
            model = PretextBERT(objective=objective, **sizes)
            data = tl.data.TensorDataset(x_train)
            baselines = objective_baselines(model.config, x_train, x_test)

            def evaluate(m):
                return {f"valid_{k}": v for k, v in evaluate_objective(m, x_test).items()}
        loader = tl.data.DataLoader(data, batch_size=args.batch_size, shuffle=True,
                                    generator=tl.Generator(args.seed), drop_last=True)
        opt = tl.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
        trainer = tl.train.Trainer(model, opt, f"{args.out}/{objective}", evaluate=evaluate,
                                   config={**vars(args), "objective": objective},
                                   resumable_keys=RESUMABLE)
        history[objective] = trainer.fit(loader, args.epochs, resume=args.resume,
                                         max_steps_per_epoch=args.steps_per_epoch)
        held_out = {k[6:]: round(v, 4) for k, v in history[objective][-1].items()
                    if k.startswith("valid_") and "accuracy" in k}
        baselines = {k: round(v, 4) for k, v in baselines.items()}
        lines.append(f"{objective}: held-out {held_out}; baselines {baselines}")
        all_baselines[objective] = baselines
        states[objective] = (model.config, {k: v.detach().numpy().copy()
                                            for k, v in model.state_dict().items()})
    states["scratch"] = (BERT(**sizes).config, None)
    y_train = tl.data.text.kjv_testament(train_verses)
    test = (x_test, tl.data.text.kjv_testament(test_verses))
    seeds = [args.seed + k for k in range(args.finetune_seeds)]
    table = finetune_table(states, (x_train, y_train), test, args.labels, seeds,
                           args.finetune_steps, args.finetune_lr)
    lines.append(f"balanced accuracy, mean (sd) over seeds {seeds}; test: {len(test[1])} "
                 f"verses, {test[1].mean():.1%} New Testament")
    for i, n in enumerate(args.labels):
        lines.append(f"{n:5d} labels: " + ", ".join(
            f"{name} {r[i, :, 1].mean():.3f} ({r[i, :, 1].std():.3f})"
            for name, r in table.items()))
    print("\n".join(lines))
    with open(f"{args.out}/results.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n" + json.dumps(history) + "\n")
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, r in table.items():
        ax.errorbar(args.labels, r[:, :, 1].mean(1), r[:, :, 1].std(1), capsize=3,
                    marker="o", ls="--" if name == "scratch" else "-", label=name)
    ax.axhline(0.5, color="gray", ls=":", label="chance")
    ax.set(xscale="log", xlabel="labelled verses", ylabel="balanced test accuracy",
           title="Old vs New Testament, fine-tuned 2x128 encoder")
    ax.legend(fontsize=8), ax.grid(alpha=0.3)
    fig.savefig(f"{args.out}/finetune.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return {"table": {k: v.tolist() for k, v in table.items()}, "history": history,
            "baselines": all_baselines}


if __name__ == "__main__":
    main()
