"""Decoding logits into candidate spans: the column table gives what a loop over every start and
end candidate gives, in the same order, ties included."""

import numpy as np
import pytest

from reader.qa_model import SpanTable, Windows, base_model_dir, decode_spans, span_table

from . import TEXT


def loop_spans(enc, start_logits, end_logits, max_answer_tokens=30, top=20):
    """The reference: each window's top starts by their ends, kept when in order and short
    enough, then all sorted best first (stable)."""
    out = []
    for w in range(len(start_logits)):
        ctx = [i for i, s in enumerate(enc.sequence_ids(w)) if s == 1]
        if not ctx:
            continue
        lo, hi = ctx[0], ctx[-1]
        s, e = start_logits[w], end_logits[w]
        for i in lo + np.argsort(-s[lo : hi + 1])[:top]:
            for j in lo + np.argsort(-e[lo : hi + 1])[:top]:
                if j >= i and j - i + 1 <= max_answer_tokens:
                    off = enc["offset_mapping"][w]
                    out.append((int(enc["overflow_to_sample_mapping"][w]), int(off[i][0]), int(off[j][1]),
                                float(s[i] + e[j]), float(s[0] + e[0])))  # fmt: skip
    out.sort(key=lambda t: -t[3])
    return out


@pytest.fixture(scope="module")
def enc():
    from models.bert import load_tokenizer

    contexts = [TEXT * 3, "A short one.", TEXT]  # the first needs several windows
    return Windows(load_tokenizer(base_model_dir()), "Who visited Pyongyang?", contexts, 96, 32)


@pytest.mark.parametrize("ties", [False, True])
def test_the_table_lists_what_the_loop_lists(enc, ties):
    rng = np.random.default_rng(7)
    assert len(enc) > 3
    for _ in range(10):
        s, e = (rng.normal(size=enc.input_ids.shape).astype(np.float32) for _ in range(2))
        if ties:  # one decimal: many spans score the same
            s, e = np.round(s, 1), np.round(e, 1)
        want = loop_spans(enc, s, e)
        assert [tuple(x.__dict__.values()) for x in decode_spans(enc, s, e)] == want
        t = span_table(enc, s, e)
        assert (
            list(zip(t.context.tolist(), t.start.tolist(), t.end.tolist(), t.score.tolist(), t.null.tolist()))
            == want
        )


class _Part:
    """The windows of some contexts of ``enc``, numbered among themselves, as a pass over those
    contexts alone would have them."""

    def __init__(self, enc, contexts):
        rows = enc["overflow_to_sample_mapping"]
        self.keep = np.isin(rows, contexts)
        self.windows = np.flatnonzero(self.keep)
        self.enc = enc
        self.columns = {
            "overflow_to_sample_mapping": np.array([contexts.index(c) for c in rows[self.keep]]),
            "offset_mapping": enc["offset_mapping"][self.keep],
        }

    def sequence_ids(self, w):
        return self.enc.sequence_ids(int(self.windows[w]))

    def __getitem__(self, key):
        return self.columns[key]


def test_tables_read_apart_join_as_one_table(enc):
    """Contexts read in two passes, renumbered and joined, list what one pass over all lists."""
    rng = np.random.default_rng(3)
    s, e = (np.round(rng.normal(size=enc.input_ids.shape), 1).astype(np.float32) for _ in range(2))
    parts = []
    for contexts in ([0, 2], [1]):
        part = _Part(enc, contexts)
        parts.append(span_table(part, s[part.keep], e[part.keep]).renumbered(contexts))
    joined, whole = SpanTable.joined(parts), span_table(enc, s, e)
    for k in ("context", "start", "end", "score", "null"):
        assert np.array_equal(getattr(joined, k), getattr(whole, k)), k
