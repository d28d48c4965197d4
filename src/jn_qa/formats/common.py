"""The record every format extractor yields: the document as blocks, plus the metadata it states."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BlockKind = Literal["text", "heading", "code", "table"]


@dataclass(frozen=True)
class Block:
    """One structural unit of a document, in reading order.

    A heading comes from the document's own structure (h1-h6, a PDF outline or its layout, a Word heading
    style), never from how its text looks; code keeps its lines and is never a heading.
    """

    text: str
    kind: BlockKind = "text"
    level: int = 0  # 1-6 for a heading
    page: int = 0  # zero-based page it starts on (PDF); 0 elsewhere


@dataclass(frozen=True)
class Extraction:
    blocks: tuple[Block, ...]
    stated: dict[str, str] = field(default_factory=dict)  # META_FIELDS the file itself states
    found: dict[str, str] = field(default_factory=dict)  # field -> where in the file it was found (for the note)
