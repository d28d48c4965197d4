"""One exception family: each error knows its HTTP status and carries a one-line message."""

from __future__ import annotations


class JnqaError(Exception):
    status: int = 500
    headers: dict[str, str] | None = None  # sent with the HTTP error response

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(JnqaError):
    status = 500


class InvalidInput(JnqaError):
    status = 422


class NotFound(JnqaError):
    status = 404


class Forbidden(JnqaError):
    status = 403


class Unauthorized(JnqaError):
    status = 401
    headers = {"WWW-Authenticate": 'Bearer realm="jn-qa"'}


class TooLarge(JnqaError):
    status = 413


class UnsupportedSource(JnqaError):
    """A file jn-qa cannot read: wrong type, empty, corrupt, binary or undecodable."""

    status = 415


class CorpusError(JnqaError):
    status = 500


class NoSpace(JnqaError):
    """The disk (or quota) is full: nothing was changed; free some space and try again."""

    status = 507


class ReadOnly(JnqaError):
    """The corpus folder refuses writes (a read-only mount or permissions): nothing was changed; the server's
    operator must make it writable. 503: the request was fine, the service cannot do it now."""

    status = 503


def write_error(e: OSError) -> type[JnqaError]:
    """The error class for a failed write: NoSpace when the disk is full, ReadOnly when writes are refused,
    else `CorpusError`."""
    import errno

    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ReadOnly
    return CorpusError


class IndexUnavailable(JnqaError):
    """No usable index: missing, built with another model, or failing its checksums."""

    status = 503


class ModelMismatch(IndexUnavailable):
    """The index's vectors came from another model: no version built with it will do either."""


class BuildError(JnqaError):
    status = 500


class Busy(JnqaError):
    """Another build (or rebuild request) holds the index; retrying later will work."""

    status = 409
