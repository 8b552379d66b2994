"""Loading and running the encoders (the embedder and the readers) on the fastest path the CPU allows.

A stage of its own so that ``index/`` (the embedder) and ``reader/`` (the readers) share it without
one reaching into the other. Importing it does not import torch.
"""

from models.bert import (
    PRECISIONS,
    Runner,
    is_plain_bert,
    load_encoder,
    load_qa,
    load_tokenizer,
    mean_pool,
    reader_precision,
    resolve_precision,
)

__all__ = [
    "PRECISIONS",
    "Runner",
    "is_plain_bert",
    "load_encoder",
    "load_qa",
    "load_tokenizer",
    "mean_pool",
    "reader_precision",
    "resolve_precision",
]
