"""Reading less: the sentences of a passage that match the question, with exact offsets kept."""

import pytest

from corpus import ChunkParams, Document, chunk
from reader import TrainedReader
from reader.focus import select, terms

FILLER = [
    "The harbour town grew slowly through the eighteenth century.",
    "Fishing fleets left before dawn and returned with the tide.",
    "Merchants traded salt, wool and timber along the coast.",
    "The old lighthouse was rebuilt in stone after the great storm of 1811.",
    "Its keeper, Agnes Morrow, kept the lamp lit for forty-two years.",
    "A railway line reached the town in 1872 and the harbour declined.",
    "Today the quay holds a small museum and a ferry landing.",
]
TEXT = " ".join(FILLER)


def one_passage(text: str = TEXT):
    (p,) = chunk(Document("town.txt", "town", text), ChunkParams(max_words=400, overlap_words=0))
    return p


def test_terms_are_stemmed_without_stop_words():
    assert terms("The lamps of the lighthouse") == {"lamp", "lighthous"}


def test_the_best_matching_sentence_and_its_neighbours_are_read():
    p = one_passage()
    (keep,) = select("Who kept the lighthouse lamp lit for forty-two years?", [p], budget=150)
    assert keep is not None
    assert 4 in keep  # the keeper's sentence
    assert list(keep) == list(range(keep[0], keep[-1] + 1))  # consecutive
    assert sum(len(p.sentence_text(p.sentences[i])) + 1 for i in keep) - 1 <= 150


def test_short_passages_weak_matches_and_passages_without_sentences_are_read_whole():
    p = one_passage()
    assert select("Who kept the lighthouse lamp lit?", [p], budget=10_000) == [None]
    # no sentence holds most of what the passage matches: "harbour" and "railway" lie apart
    assert select("harbour fishing railway museum", [p], budget=150, cover=0.8) == [None]
    bare = p.__class__(p.passage_id, p.doc_id, p.start, p.end, p.text, sentences=())
    assert select("Who kept the lamp lit?", [bare], budget=150) == [None]


@pytest.fixture(scope="module")
def reader():
    r = TrainedReader(focus=150)
    r.warm_up()
    return r


def test_focused_reading_keeps_offsets_exact(reader):
    p = one_passage()
    answers = reader.read("Who kept the lighthouse lamp lit for forty-two years?", [p])
    assert answers and "Agnes Morrow" in answers[0].text
    for a in answers:
        assert TEXT[a.start : a.end] == a.text
    # an answer outside the sentences read is not invented
    assert all("1872" not in a.text for a in answers)
