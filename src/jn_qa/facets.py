"""Search filters -> the sources (and so the passages) a search may use; facet counts for the page.

One function, `allowed_sources`, decides which sources a `Filters` record admits; each candidate store
(stores/) translates that source list into its own filter: `source_mask` for the index folder, a payload
filter for Qdrant.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .cleaning import fold
from .errors import InvalidInput
from .schema import Filters, SourceMeta, date_bounds

if TYPE_CHECKING:
    import numpy as np

    from .store import PassageStore


def _words(value: str) -> list[str]:
    plain = "".join(c for c in unicodedata.normalize("NFKD", fold(value)) if not unicodedata.combining(c))
    return re.sub(r"[^\w\s]", " ", plain).split()


def matches(value: str, field: str | None) -> bool:
    """`value` names `field` when its words occur in it as a run, ignoring case, accents and punctuation:
    'Takahashi' and 'takahashi kosuke' match 'Takahashi Kosuke'; 'Taka' does not."""
    if not field:
        return False
    want, have = _words(value), _words(field)
    n = len(want)
    return n > 0 and any(have[i : i + n] == want for i in range(len(have) - n + 1))


def in_range(published: str | None, filters: Filters) -> bool:
    """Whether a source's stated date could fall inside [since, until] (at the precision each states)."""
    if not (filters.since or filters.until):
        return True
    bounds = date_bounds(published)
    if bounds is None:
        return False
    first, last = bounds
    since = date_bounds(filters.since)
    until = date_bounds(filters.until)
    return (since is None or last >= since[0]) and (until is None or first <= until[1])


def allowed_sources(metas: Sequence[SourceMeta], filters: Filters) -> list[int]:
    """Positions of the sources the filters admit, in catalogue order.

    A source id the index lacks, or a publisher or author no source has, is an error (422) naming the
    known values: a typo must never silently search everything or nothing. Facets combine with AND.
    """
    ids = {m.id: i for i, m in enumerate(metas)}
    for sid in filters.source:
        if sid not in ids:
            raise InvalidInput(f"source: unknown source id {sid!r}; GET /api/sources lists them")
    for name in ("publisher", "author"):
        for value in getattr(filters, name):
            if not any(matches(value, getattr(m, name)) for m in metas):
                known = sorted({v for m in metas if (v := getattr(m, name))})
                raise InvalidInput(f"{name}: no source has {name} {value!r}; known: {'; '.join(known) or 'none'}")
    wanted = {ids[s] for s in filters.source}
    out = []
    for i, m in enumerate(metas):
        if wanted and i not in wanted:
            continue
        if filters.publisher and not any(matches(v, m.publisher) for v in filters.publisher):
            continue
        if filters.author and not any(matches(v, m.author) for v in filters.author):
            continue
        if in_range(m.published, filters):
            out.append(i)
    return out


def source_mask(version: PassageStore, sources: Sequence[int]) -> np.ndarray:
    """1.0 for each passage of these sources (positions in the catalogue), 0.0 elsewhere."""
    import numpy as np  # here, not at import: the CLI's server path shares this module and needs no numpy

    mask = np.zeros(version.size, dtype=np.float32)
    for i in sources:
        r = version.source_passages(i)
        mask[r.start : r.stop] = 1.0
    return mask


def year(published: str | None) -> str | None:
    bounds = date_bounds(published)
    return str(bounds[0][0]) if bounds else None
