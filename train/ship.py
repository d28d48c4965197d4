"""Turn a reader checkpoint into the package's reader folder: layers and head in fp16, no word embeddings.

    .venv/bin/python -m train.ship artifacts/reader-run/checkpoint-N [--out src/jn_qa/reader]

Whatever was frozen in training (the word embeddings, the bottom layers) equals the bundled
all-MiniLM-L6-v2's tensors and is left out: jn_qa.reader.materialise puts it back from the installed
package. Checked on the way: the word-embedding matrix really is unchanged.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

KEEP = (
    "config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "sentence_bert_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
)


def ship(checkpoint: Path, out: Path, about: dict[str, object]) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    from jn_qa.embedding import resolve_model
    from jn_qa.reader import SHIPPED_WEIGHTS, WORD_EMBEDDINGS, bundled_state

    state = load_file(str(checkpoint / "model.safetensors"))
    base = bundled_state(load_file(str(resolve_model("all-MiniLM-L6-v2") / "model.safetensors")))
    if not torch.equal(state[WORD_EMBEDDINGS], base[WORD_EMBEDDINGS]):
        raise SystemExit("the checkpoint's word embeddings differ from the bundled model's: they were not frozen")
    frozen = {k for k, v in state.items() if k in base and torch.equal(v, base[k])}
    small = {k: v.to(torch.float16).contiguous() for k, v in state.items() if k not in frozen}
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in KEEP:
        shutil.copy2(checkpoint / name, out / name)
    save_file(small, str(out / SHIPPED_WEIGHTS), metadata={"format": "pt"})
    (out / "about.json").write_text(json.dumps(about, indent=1) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "src" / "jn_qa" / "reader")
    args = p.parse_args(argv)
    state_file = args.checkpoint / "trainer_state.json"
    steps = json.loads(state_file.read_text())["global_step"] if state_file.exists() else None
    about = {
        "model": "jn-qa reader: cross-encoder (question, sentence) -> answers or not",
        "initialised_from": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), first layers only",
        "trained_on": [
            "SQuAD 1.1 train (CC BY-SA 4.0; Rajpurkar et al. 2016)",
            "SQuAD 2.0 dev, reader-train articles only (CC BY-SA 4.0; Rajpurkar, Jia and Liang 2018)",
        ],
        "licence": "weights: CC BY-SA 4.0 (trained on SQuAD), code: MIT",
        "training_steps": steps,
        "made_by": "python -m train.reader, then python -m train.ship (docs/reader.md)",
    }
    print(ship(args.checkpoint, args.out, about))


if __name__ == "__main__":
    main()
