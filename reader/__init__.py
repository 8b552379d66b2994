"""Answer extraction: (question, passages) -> ranked answer spans with exact offsets."""

from reader.base import Answer, Reader
from reader.baseline import BaselineReader
from reader.trained import TrainedReader, shipped_reader

__all__ = ["Answer", "BaselineReader", "Reader", "TrainedReader", "shipped_reader"]
