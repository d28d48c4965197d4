"""Crash-safe file writes: a reader sees the old bytes or the new ones, never a half-written file."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

TMP_PREFIX = ".jn-qa-"


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 4 MiB blocks (model weights and index files may be gigabytes)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (the directory entry itself must reach the disk)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write beside the target under a dot-name (ignored by corpus scans), fsync, then rename over it."""
    tmp = path.with_name(f"{TMP_PREFIX}{secrets.token_hex(6)}.tmp")
    try:
        with tmp.open("xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def clear_stale_temps(folder: Path) -> None:
    """Temporary files left by a writer that was killed; call only while holding the folder's lock."""
    for path in folder.glob(f"{TMP_PREFIX}*.tmp"):
        path.unlink(missing_ok=True)
