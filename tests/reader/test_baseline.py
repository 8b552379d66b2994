import pytest

from corpus import Document, chunk
from reader import BaselineReader
from reader.baseline import question_type

from . import TEXT


@pytest.fixture(scope="module")
def passages():
    return chunk(Document("d.txt", "t", TEXT))


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("When did North Korea and North Vietnam establish diplomatic relations?", "January 31, 1950"),
        ("How many Vietnamese students received education in Korea?", "approximately 2,000"),
        ("Who visited Pyongyang in July 1957?", "President Ho Chi Minh"),
        ("Why did relations decline in the 1990s?", "due to investment and trade disputes"),
        ("Where was the summit held?", "Hanoi"),
    ],
)
@pytest.mark.parametrize("with_embedder", [False, True])
def test_typed_spans(question, expected, with_embedder, passages, embedder):
    reader = BaselineReader(embedder if with_embedder else None)
    answers = reader.read(question, passages)
    assert answers, question
    best = answers[0]
    assert best.text == expected
    assert TEXT[best.start : best.end] == best.text
    assert 0.0 <= best.score <= 1.0
    assert best.passage_id == passages[0].passage_id


def test_abstains_without_support(passages, embedder):
    for reader in (BaselineReader(None), BaselineReader(embedder)):
        assert reader.read("What is the capital of Peru?", passages) == []
        assert reader.read("the of and?", passages) == []
        assert reader.read("When was it?", []) == []


def test_question_types():
    assert question_type("How many pilots served?") == "number"
    assert question_type("What year did it end?") == "date"
    assert question_type("When did Kim visit?") == "date"
    assert question_type("Who founded it?") == "person"
    assert question_type("Where is the embassy?") == "place"
    assert question_type("Why did ties loosen?") == "reason"
