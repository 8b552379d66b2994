"""Named errors of the service; the HTTP app and the CLI translate them in one place each."""


class CiteqaError(Exception):
    """Base class: ``status`` is the HTTP status, the CLI exits with 2."""

    status = 400


class BadInputError(CiteqaError):
    status = 422


class NotFoundError(CiteqaError):
    status = 404


class NotReadyError(CiteqaError):
    """The index is missing or stale."""

    status = 503


class UnauthorizedError(CiteqaError):
    status = 401


class ConflictError(CiteqaError):
    status = 409


class TooLargeError(CiteqaError):
    status = 413


class UnsupportedTypeError(CiteqaError):
    status = 415


def from_corpus_error(exc: Exception) -> CiteqaError:
    """The service error for a document that cannot be used: too large 413, otherwise 422."""
    from corpus import DocumentTooLargeError

    if isinstance(exc, DocumentTooLargeError):
        return TooLargeError(str(exc))
    return BadInputError(str(exc))
