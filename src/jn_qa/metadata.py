"""One check for every way metadata arrives: form fields and CLI options, sidecars, front matter,
HTML meta, PDF info, BEIR titles. Pure functions, no I/O.

What a caller types is refused with a one-line InvalidInput (`given`); what a file states about itself
is only a claim, so a value that fails is dropped with the reason and the source is still read
(`stated`). Either way no value that fails is ever stored or served.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import InvalidInput
from .schema import META_FIELDS, PUBLISHED

MAX_FIELD_CHARS = 500
MAX_URL_CHARS = 2000
MAX_NOTE_CHARS = 2000
FIELDS = (*META_FIELDS, "note")  # `note` is kept in sidecars only, never offered as a form field
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class BadValue(ValueError):
    """One field's value fails its check; the message says which field and why, in one line."""


@dataclass(frozen=True)
class Checked:
    """The fields that passed, and a one-line reason for each one dropped."""

    fields: dict[str, str]
    dropped: tuple[str, ...] = ()


def check_value(key: str, value: Any) -> str | None:
    """A field's value as it may be stored (None when empty), or BadValue."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | dt.date):
        raise BadValue(f"{key} must be text, not {type(value).__name__}")
    if isinstance(value, dt.date):  # YAML reads `published: 2024-07-08` as a date
        value = value.isoformat()[:10]
    text = str(value)
    limit = {"url": MAX_URL_CHARS, "note": MAX_NOTE_CHARS}.get(key, MAX_FIELD_CHARS)
    if len(text) > 4 * limit:  # before any work on it: a huge value is refused, not normalised
        raise BadValue(f"{key} is longer than {limit} characters")
    text = text.strip() if key == "url" else " ".join(text.split())
    if not text:
        return None
    if len(text) > limit:
        raise BadValue(f"{key} is longer than {limit} characters")
    if _CONTROL.search(text):
        raise BadValue(f"{key} contains control characters")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise BadValue(f"{key} is not valid text (it holds a lone surrogate)")
    if key == "published":
        _check_date(text)
    elif key == "url":
        _check_url(text)
    return text


def _check_date(value: str) -> None:
    m = PUBLISHED.fullmatch(value)
    if m:
        year, month, day = (int(x) if x else 1 for x in m.groups())
        try:
            dt.date(year, month, day)
            return
        except ValueError:
            pass
    raise BadValue(f"published must be a date like 2024-07-08, 2024-07 or 2024, not {_short(value)}")


def _check_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(ch.isspace() for ch in value):
        raise BadValue(f"url must be an http(s) address, not {_short(value)}")


def _short(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def given(fields: Mapping[str, Any] | None) -> dict[str, str]:
    """Metadata a caller typed (form fields, CLI options): the checked non-empty fields, or InvalidInput."""
    out: dict[str, str] = {}
    for key, value in (fields or {}).items():
        if key not in META_FIELDS:
            raise InvalidInput(f"unknown metadata field {key!r}; use {', '.join(META_FIELDS)}")
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"{key} must be text")
        try:
            checked = check_value(key, value)
        except BadValue as e:
            raise InvalidInput(str(e)) from None
        if checked is not None:
            out[key] = checked
    return out


def stated(fields: Mapping[Any, Any] | None, where: str) -> Checked:
    """Metadata a file states (sidecar, front matter, HTML meta, PDF info, BEIR title): unknown keys are
    ignored, values that fail are dropped with `where: reason`."""
    out: dict[str, str] = {}
    dropped: list[str] = []
    for key, value in (fields or {}).items():
        if key not in FIELDS:
            continue
        try:
            checked = check_value(key, value)
        except BadValue as e:
            dropped.append(f"{where}: {e}; ignored")
            continue
        if checked is not None:
            out[key] = checked
    return Checked(out, tuple(dropped))
