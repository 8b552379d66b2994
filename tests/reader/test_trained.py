"""The shipped trained reader: loading, exact offsets, windows over long passages, abstention."""

import pytest

from corpus import ChunkParams, Document, chunk
from reader import TrainedReader, shipped_reader
from reader.qa_model import MODEL_DIR, SMALL_DIR
from service.pipeline import make_reader

from . import TEXT


@pytest.fixture(scope="module", params=[MODEL_DIR, SMALL_DIR], ids=["6 layers", "4 layers"])
def reader(request):
    """Each shipped reader: the 6-layer one, and the student ``auto`` runs on CPUs without bf16."""
    r = TrainedReader(request.param)
    r.warm_up()
    return r


@pytest.fixture(scope="module")
def passages():
    return chunk(Document("d.txt", "t", TEXT))


def test_shipped_weights_are_small_and_load(reader):
    size_mb = (reader.model_dir / "model.safetensors").stat().st_size / 2**20
    assert size_mb <= 25, size_mb
    assert 0 < reader.threshold < 1
    assert {"a", "b"} <= set(reader.meta["calibration"])
    assert (reader.model_dir / "README.md").exists()  # the model card


def test_auto_runs_the_student_only_where_bfloat16_is_not_native(monkeypatch):
    from models.bert import int8_kernels, resolve_precision

    native = resolve_precision("auto") == "bf16"
    assert shipped_reader("auto") == (MODEL_DIR if native else SMALL_DIR)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # how the benchmark emulates an AVX2-only CPU
    assert shipped_reader("auto") == SMALL_DIR
    for named in ("fp32", "bf16", "int8"):  # a precision named outright runs the 6-layer reader
        assert shipped_reader(named) == MODEL_DIR
    reader = make_reader("trained", embedder=None)  # type: ignore[arg-type]
    assert isinstance(reader, TrainedReader) and reader.model_dir == SMALL_DIR
    assert resolve_precision(reader.precision) == "fp32"
    assert reader.run_precision == ("int8" if int8_kernels() else "fp32")  # smoothed int8 (test_smooth)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("When did North Korea and North Vietnam establish diplomatic relations?", "1950"),
        ("How many Vietnamese students received education in Korea?", "2,000"),
        ("Who visited Pyongyang in July 1957?", "Ho Chi Minh"),
        ("Where was the summit held?", "Hanoi"),
    ],
)
def test_answers_are_exact_spans(reader, passages, question, expected):
    answers = reader.read(question, passages)
    assert answers, question
    assert expected in answers[0].text
    for a in answers:
        assert TEXT[a.start : a.end] == a.text
        assert 0.0 <= a.score <= 1.0
    assert [a.score for a in answers] == sorted((a.score for a in answers), reverse=True)


def test_abstains_when_the_passages_do_not_answer(reader, passages):
    assert reader.read("What is the capital of Peru?", passages) == []
    assert reader.read("Who won the 1998 football world cup?", passages) == []
    assert reader.read("anything?", []) == []


def test_long_passages_are_read_in_windows(reader, monkeypatch):
    monkeypatch.setattr(reader, "focus", 0)  # whole passages, so the windows are what is tested
    filler = " ".join(
        f"Paragraph filler sentence number {i} mentions nothing of interest." for i in range(80)
    )
    text = filler + " The treaty was signed in Geneva in 1954 by the delegates."
    doc = Document("long.txt", "long", text)
    (passage,) = chunk(doc, ChunkParams(max_words=2000, overlap_words=0))
    assert len(passage.text.split()) > 500  # far beyond one 256-token window
    answers = reader.read("In which city was the treaty signed?", [passage])
    assert answers and "Geneva" in answers[0].text
    assert text[answers[0].start : answers[0].end] == answers[0].text


def test_very_long_question_does_not_break_windows(reader, passages):
    question = "When were diplomatic relations established " + "really " * 300 + "?"
    for a in reader.read(question, passages):
        assert TEXT[a.start : a.end] == a.text


NOISY = (
    "Kim Il Sung visited Hanoi in 1958 with a large delegation.\n"
    "Kim Il Sung was the founder of North Korea and ruled the country from 1948 until his death in 1994, "
    "and many other things are said about him here...\n"
    "He met Ho Chi Minh there and they signed an agreement."
)


def test_noise_is_left_out_of_what_is_read_but_offsets_stay_exact(reader):
    from reader.trained import _View

    (passage,) = chunk(Document("g.txt", "g", NOISY))
    view = _View.of(passage)
    assert "founder" not in view.text  # the glossary pop-up line is not read
    for s, e in passage.sentences:  # each clean sentence maps back exactly
        piece = passage.text[s - passage.start : e - passage.start]
        i = view.text.index(piece)
        a, b = view.to_passage(i, i + len(piece))
        assert passage.text[a:b] == piece
    # a span that would run across the left-out line is refused
    assert view.to_passage(view.text.index("delegation"), view.text.index("Ho Chi")) is None
    answers = reader.read("Whom did Kim Il Sung meet in Hanoi?", [passage])
    assert answers and "Ho Chi Minh" in answers[0].text
    for a in answers:
        assert NOISY[a.start : a.end] == a.text


def test_answers_do_not_overlap_within_a_document(reader, passages):
    answers = reader.read(
        "When did North Korea and North Vietnam establish diplomatic relations?", passages, 5
    )
    for i, a in enumerate(answers):
        for b in answers[i + 1 :]:
            assert a.doc_id != b.doc_id or a.end <= b.start or b.end <= a.start, (a, b)


LISTY = (
    "The 923rd fighter squadron defended Hanoi in 1967. They stayed through 1968; 200 pilots served "
    "in all. Vietnam invaded Cambodia in 1978, and the two countries drifted apart.\n\n"
    "A new paragraph starts here with other facts about trade."
)


def test_answers_stay_inside_one_sentence_and_clause(reader):
    from reader.trained import _RUN_ON, _View

    (passage,) = chunk(Document("l.txt", "l", LISTY))
    view = _View.of(passage)

    def span(text: str, start: str, end: str) -> str | None:
        got = view.answer_span(text.index(start), text.index(end) + len(end))
        return None if got is None else passage.text[got[0] : got[1]]

    assert span(view.text, "The 923rd", "1967.") == "The 923rd fighter squadron defended Hanoi in 1967."
    assert span(view.text, " 200 pilots", "200 pilots") == "200 pilots"  # white space trimmed
    assert span(view.text, "Hanoi", "They stayed") is None  # across a sentence boundary
    assert span(view.text, "1968", "200") is None  # across a clause break
    assert span(view.text, "Cambodia", "the two countries") == "Cambodia in 1978, and the two countries"
    assert _RUN_ON.search("trade.\n\nA new") and not _RUN_ON.search("line\nwrapped")
    sentences = [(s, e) for s, e in passage.sentences]
    for question in (
        "How many North Korean pilots served?",
        "Which country did Vietnam invade in 1978?",
        "When did the squadron stay until?",
    ):
        for a in reader.read(question, [passage], top_n=5):
            assert LISTY[a.start : a.end] == a.text
            assert any(s <= a.start and a.end <= e for s, e in sentences), (question, a.text)
            assert not _RUN_ON.search(a.text), (question, a.text)


COUNTS = (
    "Marrow wrote 48 songs, three comic operas and a symphony. "
    "Her pupil wrote forty-eight songs and two operas."
)


@pytest.mark.parametrize(
    ("start", "end", "listed"),
    [
        ("48", "three", True),  # two counts of a list strung together
        ("forty-eight", "two", True),
        ("48", "songs", False),
        ("three", "operas", False),
    ],
)
def test_a_span_over_two_counted_list_items_is_not_an_answer(start, end, listed):
    from reader.trained import _COUNTED_LIST, _View

    (passage,) = chunk(Document("c.txt", "c", COUNTS))
    view = _View.of(passage)
    a, b = view.text.index(start), view.text.index(end) + len(end)
    assert bool(_COUNTED_LIST.search(view.text, a, b)) is listed
    assert (view.answer_span(a, b) is None) is listed
    # dates are not lists: no noun of their own between the numbers
    for date in ("January 31, 1950", "3 October, 1871", "5 May and 6"):
        assert not _COUNTED_LIST.search(date), date


@pytest.mark.parametrize(
    ("question", "span", "other"),
    [
        ("How many operas did Ilse Marrow write?", "48", True),  # 48 counts songs; operas are counted
        ("How many operas did Ilse Marrow write?", "forty-eight", True),
        ("How many operas did Ilse Marrow write?", "48 songs", True),
        ("How many operas did Ilse Marrow write?", "three comic operas", False),
        ("How many operas did Ilse Marrow write?", "three", False),  # "three comic operas"
        ("How many operas did Ilse Marrow write?", "two", False),
        ("How many songs did she write?", "two", True),
        ("How many songs did she write?", "48", False),
        ("How many pieces did she write?", "48", False),  # pieces are counted nowhere: no evidence
        ("How many of her works were songs?", "48", False),  # no noun to check against
        ("When did she write 48 songs?", "48", False),  # not a how-many question
        ("How many operas did Ilse Marrow write?", "Marrow", False),  # not a count
    ],
)
def test_a_count_of_something_else_does_not_answer_how_many(question, span, other):
    from reader.trained import counts_other

    start = COUNTS.index(span)
    assert counts_other(question, COUNTS, start, start + len(span)) is other


def test_the_reader_answers_how_many_with_the_count_of_what_was_asked(reader):
    (passage,) = chunk(Document("c.txt", "c", COUNTS))
    for a in reader.read("How many operas did Ilse Marrow write?", [passage], top_n=5):
        assert COUNTS[a.start : a.end] == a.text
        assert a.text not in ("48", "forty-eight") and "songs" not in a.text, a.text


def test_a_span_of_filler_or_punctuation_is_never_an_answer():
    from reader.trained import answer_like

    for junk in (".", " , ", "the", "of the", "—", "It"):
        assert not answer_like(junk), junk
    for real in ("March 2023", "200", "the landlord", "two", "Kim Il Sung", "none", "A"):
        assert answer_like(real), real


def test_spans_below_the_threshold_only_count_as_seen_within_their_document(monkeypatch):
    """The reader walks spans best first; one below the threshold is no answer, but it marks its
    place as seen, so the same place found again in an overlapping passage of that document
    (a lower raw score, yet a higher probability) is not taken either. Spans of other documents
    are untouched, and when no span clears the threshold nothing is mapped at all."""
    import numpy as np
    import torch

    from reader import trained

    r = TrainedReader(SMALL_DIR)
    r.warm_up()
    text = "The treaty was signed in Geneva in 1954. Delegates came from many countries that year."
    a = chunk(Document("d1.txt", "d1", text))[0]
    b = a.__class__(**{**a.__dict__, "passage_id": a.passage_id + "-again"})  # same place, again
    c = chunk(Document("d2.txt", "d2", "Another treaty was signed in Paris in 1951."))[0]
    question = "Where was the treaty signed?"
    _, enc = r.windows(question, [a, b, c])
    cal = r.meta["calibration"]

    def margin(prob: float) -> float:  # score minus null that the calibration maps to prob
        return (np.log(prob / (1 - prob)) - cal["b"]) / cal["a"]

    def logits(plan: dict[int, tuple[str, float, float]]) -> np.ndarray:
        out = np.full((*enc.input_ids.shape, 2), -10.0, dtype=np.float32)
        for w, (word, score, prob) in plan.items():
            context = [a, b, c][enc["overflow_to_sample_mapping"][w]].text
            lo, hi = context.index(word), context.index(word) + len(word)
            tokens = [i for i, (s, e) in enumerate(enc["offset_mapping"][w])
                      if enc.sequence_ids(w)[i] == 1 and s < hi and lo < e]  # fmt: skip
            out[w, tokens[0], 0] = out[w, tokens[-1], 1] = score / 2
            out[w, 0, :] = (score - margin(prob)) / 2  # the window's null score
        return out

    low, high = r.threshold / 2, (1 + r.threshold) / 2
    plan = {0: ("Geneva", 16.0, low), 1: ("Geneva", 12.0, high), 2: ("Paris", 10.0, high)}
    monkeypatch.setattr(r, "_model", lambda *_: torch.from_numpy(logits(plan)))
    assert [x.text for x in r.read(question, [a, b, c])] == ["Paris"]
    plan[0] = ("Geneva", 16.0, high)  # the first sighting clears the threshold: it is the answer
    found = r.read(question, [a, b, c])
    assert [(x.text, x.passage_id) for x in found] == [("Geneva", a.passage_id), ("Paris", c.passage_id)]

    plan = {0: ("Geneva", 16.0, low), 1: ("Geneva", 12.0, low), 2: ("Paris", 10.0, low)}
    mapped = []
    answer_span = trained._View.answer_span
    monkeypatch.setattr(trained._View, "answer_span", lambda *x: mapped.append(x) or answer_span(*x))
    assert r.read(question, [a, b, c]) == [] and mapped == []


def test_ranked_reading_reads_a_documents_further_passages_only_where_it_is_unsure(monkeypatch):
    """Passages in rank order: each document's first passage is read, and that document's further
    passages only where it gave no answer at least ``sure`` probable. The answers are those of
    reading the same passages in one pass (fp32: logits do not depend on what shares the pass)."""
    r = TrainedReader(SMALL_DIR, precision="fp32")
    r.warm_up()
    assert r.sure == 0.5  # the default: more likely right than wrong
    d1 = chunk(Document("d1.txt", "d1", TEXT), ChunkParams(max_words=14, overlap_words=0))
    d2 = chunk(
        Document("d2.txt", "d2", "The second summit of the two leaders was held in Hanoi in February 2019.")
    )
    visit = next(p for p in d1 if "Ho Chi Minh" in p.text)
    summit = next(p for p in d1 if "Hanoi" in p.text)
    first = d1[0]
    assert len({first.passage_id, visit.passage_id, summit.passage_id}) == 3
    passes: list[list[str]] = []
    windows = r.encode
    monkeypatch.setattr(
        r, "encode", lambda q, views: passes.append([v.passage.doc_id for v in views]) or windows(q, views)
    )

    def ids(answers):
        return [(a.text, a.passage_id, a.score) for a in answers]

    # the first passage of d1 answers surely: d1's further passage is not read
    question = "Who visited Pyongyang in July 1957?"
    assert r.read(question, [visit])[0].score >= r.sure
    passes.clear()
    got = r.read(question, [visit, summit, d2[0]], ranked=True)
    assert passes == [["d1.txt", "d2.txt"]]
    assert ids(got) == ids(r.read(question, [visit, d2[0]]))
    assert "Ho Chi Minh" in got[0].text

    # d1's first passage does not answer: its next one is read in a second pass; d2 answered
    question = "Where was the summit held?"
    assert all(a.score < r.sure for a in r.read(question, [first]))
    passes.clear()
    got = r.read(question, [first, summit, d2[0]], ranked=True)
    assert passes == [["d1.txt", "d2.txt"], ["d1.txt"]]
    assert ids(got) == ids(r.read(question, [first, summit, d2[0]]))
    assert {a.doc_id for a in got if a.text == "Hanoi"} == {"d1.txt", "d2.txt"}

    # unranked, or with sure 0, every passage is read in one pass
    for ranked, sure in ((False, 0.5), (True, 0.0)):
        monkeypatch.setattr(r, "sure", sure)
        passes.clear()
        r.read(question, [first, summit, d2[0]], ranked=ranked)
        assert passes == [["d1.txt", "d1.txt", "d2.txt"]]
    assert make_reader("trained", embedder=None, sure=0.25).sure == 0.25  # type: ignore[arg-type]
