"""Errors of the corpus stage; ``service/`` maps them to HTTP statuses and CLI messages."""


class CorpusError(ValueError):
    """A document or the corpus folder cannot be used (missing, empty, unreadable)."""


class DocumentTooLargeError(CorpusError):
    """A document is over a limit: bytes, pages, extracted text, or unpacked size (zip bomb)."""
