"""SQuAD 2.0 folders as gold questions: retrieval with abstention on text nobody here wrote.

A folder holds `corpus.jsonl` (one paragraph per line, BEIR style, `_id` = `<title>-p<N>`) and
`questions.jsonl` (`question`, `answerable`, `paragraph`, ...). An answerable question is a hit when a
shown passage comes from its own paragraph; an unanswerable one should be flagged `answer_found: false`.

The reader was trained on some of the dev folder's articles: `split` picks them out ("train": sorted
titles at even positions, "select": odd positions, "all"), so figures are reported on articles it never saw.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import InvalidInput
from .evaluate import Evidence, GoldItem, normalize

QUESTIONS = "questions.jsonl"
SPLITS = ("all", "train", "select")


def is_squad_folder(path: Path) -> bool:
    return path.is_dir() and (path / QUESTIONS).is_file() and (path / "corpus.jsonl").is_file()


def article(paragraph_id: str) -> str:
    return paragraph_id.rsplit("-p", 1)[0]


def split_titles(titles: list[str] | set[str]) -> dict[str, set[str]]:
    """The reader's split of article titles: sorted, even positions train, odd positions select."""
    ordered = sorted(set(titles))
    return {"all": set(ordered), "train": set(ordered[0::2]), "select": set(ordered[1::2])}


def _evidence(row: dict[str, Any]) -> tuple[Evidence, ...]:
    """Any passage of the question's paragraph is a hit (the empty text), and the answer spans say which
    highlighted sentence holds the answer (marked@1)."""
    paragraph = str(row["paragraph"])
    answers = row.get("evidence") or []
    spans = {normalize(str(e["text"])) for e in answers if isinstance(e, dict) and str(e.get("text", "")).strip()}
    return (Evidence(paragraph, ""), *(Evidence(paragraph, t) for t in sorted(spans)))


def load_squad(folder: Path, split: str = "all", file: str = QUESTIONS) -> list[GoldItem]:
    if split not in SPLITS:
        raise InvalidInput(f"split must be one of {', '.join(SPLITS)}")
    rows = []
    try:
        for line in (folder / file).read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInput(f"cannot read {folder / file}: {e}") from None
    try:
        titles = split_titles({article(r["paragraph"]) for r in rows})[split]
        items = [
            GoldItem(
                id=str(r["id"]),
                question=str(r["question"]).strip(),
                answerable=bool(r["answerable"]),
                evidence=_evidence(r) if r["answerable"] else (),
                type="answerable" if r["answerable"] else "unanswerable",
            )
            for r in rows
            if article(r["paragraph"]) in titles
        ]
    except (KeyError, TypeError, AttributeError) as e:
        raise InvalidInput(f"{folder / file}: not a SQuAD 2.0 question file ({e})") from None
    if not items:
        raise InvalidInput(f"{folder / file} holds no questions for split {split!r}")
    return items
