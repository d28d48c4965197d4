"""Train jn-qa's reader: a cross-encoder (question, sentence) -> does the sentence answer the question.

    .venv/bin/python -m train.reader --out artifacts/reader-run            # the shipped run (see docs/reader.md)
    .venv/bin/python -m train.reader --out /tmp/r --questions 300 --max-steps 20   # a smoke run (seconds)

Initialised from the bundled all-MiniLM-L6-v2 (Apache-2.0), cut to its first `--layers` layers, with the
word-embedding matrix and the bottom `--freeze` layers frozen (so the shipped weights leave them out and take
them from the installed model package), trained with sentence-transformers' CrossEncoderTrainer and binary
cross-entropy on pairs from
train/data.py. Deterministic given --seed (data order, initialisation of the head, dropout). Checkpoints
are written every --save-steps so a run can be stopped at any point; `python -m train.ship CHECKPOINT`
turns one into the package's reader folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from pathlib import Path

from train.data import Pair, squad2_pairs, squad2_split, squad2_titles, squad11_pairs

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "bench-data"


def build_pairs(args: argparse.Namespace) -> list[Pair]:
    rng = random.Random(args.seed)
    pairs = squad11_pairs(args.squad11 / "train-v1.1.json", args.questions, rng)
    train_titles, _ = squad2_split(squad2_titles(args.squad2))
    extra = squad2_pairs(args.squad2, train_titles)
    pairs += extra * args.squad2_repeat
    rng.shuffle(pairs)
    return pairs


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--squad11", type=Path, default=SHARED / "squad11-train")
    p.add_argument("--squad2", type=Path, default=SHARED / "squad2-dev")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--questions", type=int, default=60000, help="SQuAD 1.1 questions sampled")
    p.add_argument("--squad2-repeat", type=int, default=3, help="times the SQuAD 2.0 reader-train pairs are repeated")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--freeze", type=int, default=2, help="bottom layers kept as the bundled model has them")
    p.add_argument("--max-length", type=int, default=80)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=7e-5)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save-steps", type=int, default=250)
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument(
        "--resume", action="store_true", help="start from the shipped reader (src/jn_qa/reader) instead of MiniLM"
    )
    args = p.parse_args(argv)

    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import set_seed

    from jn_qa.embedding import offline, resolve_model

    offline()
    torch.set_num_threads(args.threads)
    set_seed(args.seed)
    t0 = time.time()
    cache = args.out.parent / f"{args.out.name}.pairs.jsonl"
    if cache.is_file():
        pairs = [Pair(**json.loads(line)) for line in cache.read_text(encoding="utf-8").splitlines()]
    else:
        pairs = build_pairs(args)
        args.out.mkdir(parents=True, exist_ok=True)
        cache.write_text("".join(json.dumps(dataclasses.asdict(p)) + "\n" for p in pairs), encoding="utf-8")
    print(f"{len(pairs)} pairs ({sum(p.label for p in pairs):.0f} positive) in {time.time() - t0:.0f}s", flush=True)
    data = Dataset.from_dict(
        {
            "question": [p.question for p in pairs],
            "sentence": [p.sentence for p in pairs],
            "label": [p.label for p in pairs],
        }
    )
    if args.resume:  # keep training what ships (its layer count wins over --layers)
        from jn_qa.reader import bundled_folder, materialise

        model = CrossEncoder(str(materialise(bundled_folder())), max_length=args.max_length, device="cpu")
    else:
        model = CrossEncoder(
            str(resolve_model("all-MiniLM-L6-v2")), num_labels=1, max_length=args.max_length, device="cpu"
        )
    bert = model.model.bert
    bert.encoder.layer = bert.encoder.layer[: args.layers]
    model.model.config.num_hidden_layers = len(bert.encoder.layer)
    bert.embeddings.word_embeddings.weight.requires_grad = False
    for layer in bert.encoder.layer[: args.freeze]:
        layer.requires_grad_(False)
    training = CrossEncoderTrainingArguments(
        output_dir=str(args.out),
        num_train_epochs=1,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch,
        learning_rate=args.lr,
        warmup_steps=min(100, max(1, int(0.05 * len(pairs) / args.batch))),
        lr_scheduler_type="linear",
        weight_decay=0.01,
        logging_steps=25,
        save_steps=args.save_steps,
        save_total_limit=3,
        seed=args.seed,
        data_seed=args.seed,
        use_cpu=True,
        dataloader_num_workers=0,
        report_to=[],
    )
    trainer = CrossEncoderTrainer(model=model, args=training, train_dataset=data, loss=BinaryCrossEntropyLoss(model))
    trainer.train()
    model.save_pretrained(str(args.out / "final"))
    print(f"done in {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
