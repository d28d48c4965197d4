"""Shapes of the JSON API, for the OpenAPI document only.

Routes return plain dicts built from `schema` records; these models describe them (and the one error
shape) in /openapi.json and /docs without filtering or re-validating what the core produced.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    status: int = Field(..., description="The HTTP status, repeated.")
    message: str = Field(..., description="One line saying what went wrong and what to do.")


class ErrorBody(BaseModel):
    """Every error the API returns (validation, unknown source, no index, unknown route) has this shape."""

    error: ErrorDetail


class SourceRef(BaseModel):
    id: str
    title: str
    author: str | None
    publisher: str | None
    published: str | None = Field(None, description="As stated: YYYY, YYYY-MM or YYYY-MM-DD.")
    url: str | None


class HighlightOut(BaseModel):
    start: int
    end: int


class ResultOut(BaseModel):
    rank: int
    score: float = Field(..., description="Second-stage ranking score; only comparable within one answer.")
    text: str = Field(..., description="The passage, verbatim: source text[start:end].")
    start: int
    end: int
    highlights: list[HighlightOut] = Field(..., description="Supporting sentences, as offsets into the source text.")
    section: str | None
    page: int | None
    source: SourceRef
    citation: str = Field(..., description="Chicago-style note built from the source's fields only.")
    explain: dict[str, Any] | None = Field(None, description="Present when explain=true.")


class RewriteOut(BaseModel):
    kind: str = Field(
        ..., description="typo (a word neither the corpus's nor English) or acronym (the corpus defines it)."
    )
    typed: str
    meant: str


class FiltersOut(BaseModel):
    """The filters the search used, echoed back (empty lists and nulls when none)."""

    source: list[str]
    publisher: list[str]
    author: list[str]
    since: str | None
    until: str | None


class AnswerOut(BaseModel):
    query: str
    searched_for: str | None = Field(
        None, description="What was searched for when it differs from the query: typos corrected, acronyms noted."
    )
    rewrites: list[RewriteOut] = Field(default_factory=list, description="Each change made to the query.")
    answer_found: bool = Field(..., description="False when the sources do not appear to answer the question.")
    confidence: float = Field(..., description="Calibrated 0-1; compare with threshold.")
    threshold: float
    version: str = Field(..., description="Index version that answered.")
    filters: FiltersOut
    results: list[ResultOut] = Field(..., description="Answers, or the nearest passages when answer_found is false.")


class SourceOut(SourceRef):
    note: str | None = None
    passages: int


class SourceList(BaseModel):
    version: str
    sources: list[SourceOut]


class SourceText(SourceOut):
    version: str
    text: str = Field(..., description="Display text: every start/end offset points into it.")


class Health(BaseModel):
    status: str
    version: str
    model: str
    built_at: str | None
    counts: dict[str, int]
    note: str | None


_ERRORS = {
    401: "Admin route without a valid 'Authorization: Bearer TOKEN' header.",
    403: "Admin routes are disabled (no JNQA_ADMIN_TOKEN configured).",
    404: "Unknown source id (or route).",
    409: "Another build or corpus change is running; retry later.",
    413: "Upload larger than JNQA_MAX_UPLOAD_MB, or too many files.",
    415: "A file jn-qa cannot read: unsupported type, empty, corrupt, binary or undecodable.",
    422: "Invalid input; the message names the parameter (empty or over-long question, k outside 1-100 or not an "
    "integer, an unknown source id, publisher or author, an empty filter value, a malformed date or body, an unknown "
    "parameter or citation format).",
    503: "No index is loaded (build one with 'jn-qa build'); on admin routes, the corpus folder is read-only.",
    507: "The disk is full: nothing was added.",
}


def ok(model: type[BaseModel], *errors: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: its success shape and the errors it can return, all in one error shape."""
    return {200: {"model": model}, **fails(*errors)}


def fails(*errors: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for the errors a route can return, all in the one error shape."""
    return {code: {"model": ErrorBody, "description": _ERRORS[code]} for code in errors}
