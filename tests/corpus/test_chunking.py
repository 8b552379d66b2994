import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus import ChunkParams, Document, chunk, noise_spans, sentence_spans

WORDS = [
    "North", "Korea", "the", "U.S.", "1950", "Dr.", "e.g.", "Hanoi", "visited", "a", "relations",
    "“quoted”", "Kim", "(x)", "—", "é", "…", "2,000", "HOME", "OR:",
]  # fmt: skip
SEPS = [" ", " ", " ", ". ", ".\n", "\n", "\n\n", "? ", "! ", " \t", "\n \n", "... "]


@st.composite
def texts(draw):
    n = draw(st.integers(1, 300))
    parts = []
    for _ in range(n):
        parts.append(draw(st.sampled_from(WORDS) | st.text(min_size=1, max_size=8)))
        parts.append(draw(st.sampled_from(SEPS)))
    return "".join(parts)


@settings(max_examples=200, deadline=None)
@given(text=texts(), max_words=st.integers(5, 80), overlap=st.integers(0, 40))
def test_passages_are_exact_slices_and_cover_the_document(text, max_words, overlap):
    if overlap >= max_words:
        overlap = max_words - 1
    doc = Document(doc_id="d.txt", title="t", text=text)
    passages = chunk(doc, ChunkParams(max_words, overlap))
    for p in passages:
        assert p.text == text[p.start : p.end]
        assert p.doc_id == "d.txt"
        for s, e in p.sentences:
            assert p.start <= s < e <= p.end
        assert len(p.search_text.split()) <= max(max_words, 1) * 2  # a cut sentence may straddle
    starts = [p.start for p in passages]
    assert starts == sorted(starts)
    # every word character outside noise lines lies inside some passage's sentences
    noise = noise_spans(text)
    covered = sorted(s for p in passages for s in p.sentences)
    for m in re.finditer(r"\w", text):
        i = m.start()
        if any(a <= i < b for a, b in noise):
            continue
        assert any(a <= i < b for a, b in covered), (i, text[max(0, i - 20) : i + 20])


def test_passage_size_respects_max_words():
    text = " ".join(f"Sentence number {i} is here." for i in range(200))
    passages = chunk(Document("d", "t", text), ChunkParams(max_words=50, overlap_words=10))
    assert len(passages) > 5
    for p in passages:
        assert len(p.search_text.split()) <= 50
    # consecutive passages overlap by at least one sentence
    for a, b in zip(passages, passages[1:]):
        assert b.start < a.end


def test_sentence_split_keeps_abbreviations_and_joins_wrapped_lines():
    text = "Kim met the U.S. President in Hanoi.\nThe talks\nwere short. Dr. Smith agreed."
    got = [text[s:e] for s, e in sentence_spans(text)]
    assert got == ["Kim met the U.S. President in Hanoi.", "The talks\nwere short.", "Dr. Smith agreed."]


def test_noise_lines_are_skipped_but_offsets_stay_in_the_original():
    glossary = (
        "Kim Il Sung Kim Il-sung (born 15 April 1912) was a North Korean politician and the founder of ..."
    )
    text = f"Title\n   HOME\n\nTheInfoList\n\nOR:\n\nThe leader\n{glossary}\nvisited Hanoi in 1958.\n"
    spans = [text[s:e] for s, e in sentence_spans(text)]
    assert "HOME" not in " ".join(spans) and "TheInfoList" not in spans and "OR:" not in spans
    assert not any("politician" in s for s in spans)
    assert "visited Hanoi in 1958." in spans
    (p,) = chunk(Document("d", "t", text))
    assert "politician" not in p.search_text
    assert p.text == text[p.start : p.end]


def test_repeated_boilerplate_lines_are_noise():
    text = "".join(f"{c}.\n\nThursday January 01, 1970\n\n" for c in "ABC")
    assert len(noise_spans(text)) == 3


def test_repeated_sentences_and_table_rows_are_content():
    # a refrain, a FAQ's short answer and identical table rows repeat, and are still text to answer from
    refrain = "We shall overcome."
    table = "Site | Year\nBridge | 1820"
    text = "".join(f"Verse {c} goes on.\n{refrain}\n\n{table}\n\nYes.\nPage header\n\n" for c in "ABC")
    kept = " ".join(text[s:e] for s, e in sentence_spans(text))
    assert kept.count(refrain) == 3 and kept.count("Yes.") == 3 and kept.count(table) == 3
    assert "Page header" not in kept
    assert len(noise_spans(text)) == 3


def test_repeated_navigation_bars_and_trailing_lines_are_boilerplate():
    page = "Home | About | Contact\n\nThe bridge opened in {}.\n\nLoading...\n\n"
    text = "".join(page.format(year) for year in (1820, 1821, 1822))
    kept = [text[s:e] for s, e in sentence_spans(text)]
    assert kept == [f"The bridge opened in {year}." for year in (1820, 1821, 1822)]


def test_bad_params_are_refused():
    with pytest.raises(ValueError):
        ChunkParams(max_words=10, overlap_words=10)
