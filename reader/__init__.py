"""Answer extraction: (question, passages) -> ranked answer spans with exact offsets."""

from reader.base import Answer, Reader
from reader.baseline import BaselineReader

__all__ = ["Answer", "BaselineReader", "Reader"]
