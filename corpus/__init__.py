"""Documents of every supported format, noise-aware sentence splitting and offset-exact passages."""

from corpus.chunking import ChunkParams, chunk, chunk_corpus
from corpus.documents import (
    SUFFIXES,
    Document,
    check_doc_id,
    corpus_files,
    load_corpus,
    load_document,
    parse_document,
)
from corpus.errors import CorpusError, DocumentTooLargeError
from corpus.formats import LoadOptions
from corpus.records import Passage
from corpus.sentences import Span, noise_spans, sentence_spans

__all__ = [
    "SUFFIXES",
    "ChunkParams",
    "CorpusError",
    "Document",
    "DocumentTooLargeError",
    "LoadOptions",
    "Passage",
    "Span",
    "check_doc_id",
    "chunk",
    "chunk_corpus",
    "corpus_files",
    "load_corpus",
    "load_document",
    "noise_spans",
    "parse_document",
    "sentence_spans",
]
