"""Documents, noise-aware sentence splitting and chunking into offset-exact passages."""

from corpus.chunking import ChunkParams, chunk, chunk_corpus
from corpus.documents import (
    SUFFIXES,
    CorpusError,
    Document,
    check_doc_id,
    load_corpus,
    load_document,
    parse_document,
)
from corpus.records import Passage
from corpus.sentences import Span, noise_spans, sentence_spans

__all__ = [
    "SUFFIXES",
    "ChunkParams",
    "CorpusError",
    "Document",
    "Passage",
    "Span",
    "check_doc_id",
    "chunk",
    "chunk_corpus",
    "load_corpus",
    "load_document",
    "noise_spans",
    "parse_document",
    "sentence_spans",
]
