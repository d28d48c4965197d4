"""Plain-text views of answers and catalogues for the terminal."""

from __future__ import annotations

import textwrap
from typing import Any

from .citations import human_date
from .schema import Answer, Result
from .sourcecheck import SourceCheck
from .views import segments

BOLD_YELLOW, RESET = "\033[1;33m", "\033[0m"


def marked(result: Result, color: bool) -> str:
    """The passage with its supporting sentences marked (ANSI on a terminal, »…« otherwise)."""
    open_, close = (BOLD_YELLOW, RESET) if color else ("»", "«")
    return "".join(
        open_ + s.text + close if s.mark else s.text for s in segments(result.text, result.start, result.highlights)
    )


def answer_text(answer: Answer, color: bool = False, explain: bool = False) -> str:
    lines = [f"Q: {answer.query}"]
    if answer.searched_for:
        lines.append(f"Searched for: {answer.searched_for}")
    if answer.answer_found:
        lines.append(f"Answer found in the sources (confidence {answer.confidence:.2f}).")
    else:
        lines.append(
            f"The sources do not appear to answer this question (confidence {answer.confidence:.2f}). "
            "Nearest passages, not an answer:"
        )
    for r in answer.results:
        m = r.source
        by = (
            ", ".join(x for x in (m.author, m.publisher, human_date(m.published)) if x)
            or "author and publisher not stated"
        )
        where = [f"section “{r.section}”"] if r.section else []
        if r.page is not None:
            where.append(f"page {r.page}")
        where.append(f"characters {r.start}–{r.end} of {m.id}")
        lines.append("")
        lines.append(f"[{r.rank}] {m.title}")
        lines.append(f"    {by}")
        lines.append(f"    {'; '.join(where)}" + (f" · {m.url}" if m.url else ""))
        for para in marked(r, color).split("\n"):
            if para.strip():
                lines.extend(
                    textwrap.wrap(" ".join(para.split()), width=100, initial_indent="    ", subsequent_indent="    ")
                )
    if explain:
        lines += ["", explain_table(answer)]
    return "\n".join(lines)


def explain_table(answer: Answer) -> str:
    """Why each passage ranks where it does, as a table: each retriever's rank, the fused and final scores,
    and the features that moved it most."""
    header = ("#", "passage", "BM25 rank", "dense rank", "RRF", "score", "largest contributions")
    rows = []
    for r in answer.results:
        e = r.explain or {}
        contributions = sorted((e.get("contributions") or {}).items(), key=lambda kv: -abs(kv[1]))[:3]
        rows.append(
            (
                str(r.rank),
                str(e.get("passage", "—")),
                _rank(e.get("lexical_rank")),
                _rank(e.get("dense_rank")),
                f"{e['fused_score']:.4f}" if "fused_score" in e else "—",
                f"{e['reranked_score']:.3f}" if "reranked_score" in e else f"{r.score:.3f}",
                ", ".join(f"{name} {value:+.2f}" for name, value in contributions) or "—",
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    out = ["Why each passage ranks where it does (— : not among that retriever's candidates)"]
    for row in [header, *rows]:
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if answer.timings:
        stages = ", ".join(f"{name} {1000 * sec:.1f}" for name, sec in answer.timings.items())
        out.append(f"Time per stage (ms): {stages}")
    return "\n".join(out)


def _rank(value: Any) -> str:
    return "—" if value is None else str(value)


def sources_text(rows: list[dict[str, Any]]) -> str:
    out = []
    for r in rows:
        out.append(f"{r['id']}  {r['title']}")
        for key in ("author", "publisher", "published", "url"):
            out.append(f"    {key:<10} {r.get(key) or '—'}")
    out.append(f"{len(rows)} sources")
    return "\n".join(out)


def source_checks_text(checks: list[SourceCheck]) -> str:
    """`sources --check`: one block per source, then a count of sources with warnings."""
    out = []
    for c in checks:
        pages = f", {c.pages} pages" if c.pages else ""
        out.append(f"{c.id}  ({c.file}, {c.kind}, {c.bytes:,} bytes{pages})")
        out.append(f"    kept       {c.chars:,} characters, {c.headings} heading{'' if c.headings == 1 else 's'}")
        out.append(
            f"    metadata   {len(c.filled)}/{len(c.filled) + len(c.missing)} filled"
            + (f"; missing {', '.join(c.missing)}" if c.missing else "")
        )
        for w in c.warnings:
            out.append(f"    warning    {w}")
    warned = sum(1 for c in checks if c.warnings)
    out.append(f"{len(checks)} sources, {warned} with warnings")
    return "\n".join(out)
