"""Agreement between sources: normalisation, same/contradicting values, grouping, the agreement value."""

import pytest

from reader import Answer
from service.agreement import (
    CONFLICT_RATIO,
    Date,
    Name,
    Quantity,
    Relation,
    agreement_of,
    compatible,
    contradicts,
    group_answers,
    mentions_subject,
    merge_answers,
    normalise,
    relation,
    subject_words,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # dates: (years, month, day); a decade is a range of years; words around a date are ignored
        ("1950", Date((1950, 1950))),
        ("in 1950", Date((1950, 1950))),
        ("early 1967", Date((1967, 1967))),
        ("the 1950s", Date((1950, 1959))),
        ("July 1957", Date((1957, 1957), 7)),
        ("January 31, 1950", Date((1950, 1950), 1, 31)),
        ("26 February 2019", Date((2019, 2019), 2, 26)),
        ("26th of February 2019", Date((2019, 2019), 2, 26)),
        ("2019-02-26", Date((2019, 2019), 2, 26)),
        ("March 1 and 2", Date(None, 3)),  # two days: only the month is common to both
        ("At the end of February", Date(None, 2)),
        ("November–December 1958", Date((1958, 1958))),  # two months: only the year
        # quantities: value, unit (singular, aliases resolved), approximate or a bound
        ("200", Quantity(200)),
        ("200 pilots", Quantity(200, "pilot")),
        ("two million", Quantity(2_000_000)),
        ("2,000,000", Quantity(2_000_000)),
        ("two million sets of uniforms", Quantity(2_000_000, "set")),
        ("$345 million worth of goods", Quantity(345_000_000, "$")),
        ("12.3 million rubles", Quantity(12_300_000, "ruble")),
        ("forty-two kilometres", Quantity(42, "kilometre")),
        ("42 km", Quantity(42, "kilometre")),
        ("a 60-hour train ride", Quantity(60, "hour")),
        ("one hundred and twenty", Quantity(120)),
        ("2947 m", Quantity(2947, "metre")),  # not a year: years run to 2099, and "m" is a unit
        ("45 per cent", Quantity(45, "%")),
        ("about 2300 residents", Quantity(2300, "resident", approx=True)),
        ("more than 60,000", Quantity(60_000, bound=True)),
        # names: folded tokens without titles, articles, particles, possessives or a lead-in
        ("Kim Jong Un", Name(("kim", "jong", "un"))),
        ("Kim Jong-un", Name(("kim", "jong", "un"))),
        ("President Ho Chi Minh", Name(("ho", "chi", "minh"))),
        ("Dr. Mira Okafor", Name(("mira", "okafor"))),
        ("the engineer Thomas Aldane", Name(("thomas", "aldane"))),
        ("Gervais of Tours", Name(("gervais", "tours"))),
        ("Nguyễn Xuân Phúc", Name(("nguyen", "xuan", "phuc"))),
        ("Ilse Marrow's", Name(("ilse", "marrow"))),
        # free text: no typed value
        ("weapons and ammunition", None),
        ("North Korean engineers and technicians", None),
        ("fifth-largest", None),
        ("1966: 12.3 million rubles", None),  # two numbers
        ("between 1998 and 2002", None),  # two years
    ],
)
def test_normalise(text, value):
    assert normalise(text) == value


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # a more specific statement agrees with a vaguer one
        ("1950", "January 31, 1950", Relation.SAME),
        ("in 1950", "1950", Relation.SAME),
        ("the 1950s", "January 31, 1950", Relation.SAME),
        ("2019", "26 February 2019", Relation.SAME),
        ("February 2019", "26 February 2019", Relation.SAME),
        ("the end of February", "26 February 2019", Relation.SAME),
        ("2018", "2019", Relation.CONFLICT),
        ("2018", "26 February 2019", Relation.CONFLICT),
        ("the 1950s", "1968", Relation.CONFLICT),
        ("March 1 and 2", "26 February 2019", Relation.CONFLICT),
        ("March 2019", "26 March 2019", Relation.SAME),
        ("25 March 2019", "26 March 2019", Relation.CONFLICT),
        ("March 1 and 2", "2019", Relation.UNRELATED),  # neither implies the other
        ("200", "200 pilots", Relation.SAME),
        ("two million", "2,000,000", Relation.SAME),
        ("forty-two kilometres", "42 km", Relation.SAME),
        ("2,947 metres", "2947 m", Relation.SAME),
        ("about 2300 residents", "2,300", Relation.SAME),
        ("about 2,000", "1,950", Relation.SAME),  # within 10 %
        ("some 5,000", "3,000", Relation.CONFLICT),
        ("200 pilots", "300", Relation.CONFLICT),
        ("twelve", "14", Relation.CONFLICT),
        ("310 metres", "290-metre", Relation.CONFLICT),
        ("200 pilots", "87 aircraft", Relation.UNRELATED),  # different units: different things
        ("more than 60,000", "60,000", Relation.SAME),
        ("more than 60,000", "75,000", Relation.UNRELATED),  # a bound contradicts nothing
        ("1500", "1,500 troops", Relation.SAME),  # a bare year-like number may be a count
        ("Kim Jong Un", "North Korean leader Kim Jong Un", Relation.SAME),
        ("Donald Trump", "President Donald Trump", Relation.SAME),
        ("T. Aldane", "Thomas Aldane", Relation.SAME),
        ("U.S.", "United States", Relation.SAME),
        ("Kim Il Sung", "Kim Jong Un", Relation.CONFLICT),
        ("Ilona Varga", "Jonas Mirek", Relation.CONFLICT),
        # free text: the same words, or one inside the other; never a contradiction
        ("investment and trade disputes", "due to investment and trade disputes", Relation.SAME),
        ("weapons and ammunition", "ammunition and weapons", Relation.SAME),
        ("weapons and ammunition", "loans and investments", Relation.UNRELATED),
        ("Weapons", "weapons.", Relation.SAME),
        # different types say nothing about each other
        ("1950", "Kim Il Sung", Relation.UNRELATED),
        ("Brannock", "the Brannock town archive", Relation.UNRELATED),
    ],
)
def test_relation(a, b, expected):
    assert relation(a, b) is expected
    assert relation(b, a) is expected  # symmetric
    assert compatible(a, b) is (expected is Relation.SAME)
    assert contradicts(a, b) is (expected is Relation.CONFLICT)


def _a(text, score, doc="a.txt", start=0):
    return Answer(text, score, doc, start, start + len(text), f"{doc}#0")


def test_grouping_joins_a_group_only_when_it_agrees_with_every_member():
    groups = group_answers(
        [_a("26 February 2019", 0.9), _a("2019", 0.8, "b.txt"), _a("March 2019", 0.7, "c.txt")]
    )
    assert [[a.text for a in g] for g in groups] == [["26 February 2019", "2019"], ["March 2019"]]


def test_merged_answer_keeps_every_citation_with_its_own_text():
    [m] = merge_answers([_a("1950", 0.6, "a.txt", 10), _a("January 31, 1950", 0.5, "b.txt", 20)])
    assert m.answer.text == "1950" and m.answer.doc_id == "a.txt"  # the best-scored wording
    assert m.answer.score == pytest.approx(1 - 0.4 * 0.5)  # agreement nudges the score up
    assert [(c.doc_id, c.start, c.end, c.text) for c in m.citations] == [
        ("a.txt", 10, 14, "1950"),
        ("b.txt", 20, 36, "January 31, 1950"),
    ]
    assert m.documents == 2 and not m.conflict
    assert agreement_of([m]) == "agree"


@pytest.mark.parametrize(
    ("answers", "agreement", "conflicting"),
    [
        ([], "none", []),
        ([_a("1950", 0.9)], "single", []),
        # the same document twice is still one source
        ([_a("1950", 0.9), _a("in 1950", 0.6, start=50)], "single", []),
        ([_a("1950", 0.9), _a("January 31, 1950", 0.6, "b.txt")], "agree", []),
        ([_a("2018", 0.9), _a("26 February 2019", 0.8, "b.txt")], "conflict", ["2018", "26 February 2019"]),
        # a rival far weaker than the best is one of the reader's other guesses
        ([_a("2018", 0.9), _a("2019", 0.9 * CONFLICT_RATIO - 0.01, "b.txt")], "single", []),
        # one document giving two dates is not a disagreement between sources
        ([_a("2018", 0.9), _a("2019", 0.8, start=40)], "single", []),
        # free text worded differently is no evidence of disagreement
        ([_a("weapons and ammunition", 0.9), _a("loans and investments", 0.85, "b.txt")], "single", []),
        # values of different types say nothing about each other
        ([_a("1950", 0.9), _a("Kim Il Sung", 0.85, "b.txt")], "single", []),
        # an agreeing pair against a third document
        (
            [_a("1950", 0.9), _a("January 31, 1950", 0.7, "b.txt"), _a("1952", 0.8, "c.txt")],
            "conflict",
            ["1950", "1952"],
        ),
    ],
)
def test_agreement_values(answers, agreement, conflicting):
    merged = merge_answers(answers)
    assert agreement_of(merged) == agreement
    assert [m.answer.text for m in merged if m.conflict] == conflicting


def test_a_conflict_needs_both_passages_to_be_about_the_question():
    q = "When was Harrow Point Lighthouse first lit?"
    assert subject_words(q) == {"harrow", "point", "lighthouse"}
    assert subject_words("when was it lit?") == set()
    answers = [_a("1871", 0.9), _a("1884", 0.8, "b.txt")]
    about = {
        "a.txt#0": "Harrow Point Lighthouse was first lit in 1871.",
        "b.txt#0": "The tower at Harrow Point, 1884.",
    }
    off = {**about, "b.txt#0": "The schooner was built in 1884."}
    assert agreement_of(merge_answers(answers, q, about)) == "conflict"
    assert agreement_of(merge_answers(answers, q, off)) == "single"
    assert mentions_subject("who?", "anything")  # a question that names nothing restricts nothing


# -- through the pipeline, with a scripted reader (fixed scores) ------------------------------


@pytest.mark.parametrize(
    ("question", "agreement"),
    [
        ("What colour is Harlow Mill?", "none"),
        ("Until when did Harlow Mill grind corn?", "single"),
        ("Who built Harlow Mill?", "agree"),
        ("When was Harlow Mill built?", "conflict"),
    ],
)
def test_the_four_agreement_values_through_the_pipeline(scripted_pipeline, question, agreement):
    result = scripted_pipeline.ask(question)
    assert result.agreement == agreement
    for m in result.answers:
        for c in m.citations:  # every citation quotes its document exactly
            assert scripted_pipeline.document(c.doc_id).text[c.start : c.end] == c.text


def test_the_pipeline_hands_the_reader_its_passages_best_first(scripted_pipeline, monkeypatch):
    """``ranked``: the trained reader may then leave a document's further passages unread
    (``TrainedReader.read``), while every document among them is still read once."""
    calls = []
    read = scripted_pipeline.reader.read

    def recording(question, passages, top_n=3, ranked=False):
        calls.append((list(passages), ranked))
        return read(question, passages, top_n)

    monkeypatch.setattr(scripted_pipeline.reader, "read", recording)
    result = scripted_pipeline.ask("Who built Harlow Mill?")
    [(passages, ranked)] = calls
    assert ranked and passages == [h.passage for h in result.hits] == [
        h.passage for h in result.retrieved[:3]
    ]


def test_agreeing_documents_are_one_answer_and_a_conflict_keeps_both_sides(scripted_pipeline):
    [carter] = scripted_pipeline.ask("Who built Harlow Mill?").answers
    assert carter.documents == 2 and [c.doc_id for c in carter.citations] == [
        "mill_register.txt",
        "mill_history.txt",
    ]
    built = scripted_pipeline.ask("When was Harlow Mill built?").answers
    assert [(m.answer.text, m.documents, m.conflict) for m in built] == [("1850", 2, True), ("1862", 1, True)]
    assert [c.text for c in built[0].citations] == ["1850", "3 May 1850"]


def test_the_readers_own_share_decides_what_counts_against_the_best(scripted_pipeline, monkeypatch):
    """1862 (0.8) against 1850 (0.96, from two places) is a conflict at the default share; a
    reader whose own share is 0.9 does not count it against the best answer."""
    assert scripted_pipeline.reader.conflict_share is None
    assert scripted_pipeline.ask("When was Harlow Mill built?").agreement == "conflict"
    monkeypatch.setattr(scripted_pipeline.reader, "conflict_share", 0.9)
    assert scripted_pipeline.ask("When was Harlow Mill built?").agreement == "agree"


def test_the_shipped_readers_carry_their_shares():
    """The 4-layer reader has its own share in reader.json (fitted on the agreement dev part and
    the seed set); the 6-layer one uses the default."""
    from reader import TrainedReader
    from reader.qa_model import MODEL_DIR, SMALL_DIR

    assert TrainedReader(SMALL_DIR).conflict_share == 0.55
    assert TrainedReader(MODEL_DIR).conflict_share is None
