"""Documents, noise-aware sentence splitting and chunking into offset-exact passages."""

from corpus.chunking import ChunkParams, chunk, chunk_corpus
from corpus.documents import CorpusError, Document, load_corpus, load_document
from corpus.records import Passage
from corpus.sentences import Span, noise_spans, sentence_spans

__all__ = [
    "ChunkParams",
    "CorpusError",
    "Document",
    "Passage",
    "Span",
    "chunk",
    "chunk_corpus",
    "load_corpus",
    "load_document",
    "noise_spans",
    "sentence_spans",
]
