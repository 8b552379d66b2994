"""The trained span reader: windows over the retrieved passages, spans scored on one scale,
calibrated probabilities, and abstention below the threshold chosen on tuning data."""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corpus import Passage
from corpus.analysis import MONTHS, ONES, SCALES, TENS, alternation
from reader.base import Answer
from reader.qa_model import MODEL_DIR, SMALL_DIR, SpanTable, Windows, base_model_dir, span_table

# Characters read per passage around its best-matching sentences (0: whole passages). Reading
# 300 cuts the tokens read by about 36 % and cost nothing on the tuning articles (citeqa eval
# --split tune: reader mode F1 76.91 -> 77.78, open mode 72.54 -> 73.10), but the seed set
# (web text, long questions) lost 3 F1 (78.08 -> 75.13), so it is offered, not the default:
# CITEQA_READER_FOCUS=300 trades that for speed where the CPU is slow.
DEFAULT_FOCUS = 0

# Passages in rank order: a document's further passages are read only where its first one gave no
# answer at least this probable (0: every passage at once). 0.5 is where the calibration says an
# answer is more likely right than wrong; it was chosen so, not fitted.
DEFAULT_SURE = 0.5


def shipped_reader(precision: str = "auto") -> Path:
    """The shipped reader folder for ``precision``.

    ``auto`` means the fastest path that keeps accuracy on this CPU. Where bfloat16 is native,
    that is the 6-layer reader (``MODEL_DIR``) in bf16. Elsewhere it is the 4-layer student
    (``SMALL_DIR``), in int8 with its fitted smoothing where torch has x86 int8 kernels, else in
    fp32 (``models.bert.reader_precision``): both within 0.2 F1 of the 6-layer reader in fp32 on
    the validation articles and above it on the seed set (``reader/model-small/README.md``). A
    precision named outright runs the 6-layer reader, as does every precision when the student
    is missing.
    """
    from models.bert import resolve_precision

    small = precision == "auto" and resolve_precision("auto") == "fp32"
    return SMALL_DIR if small and (SMALL_DIR / "model.safetensors").exists() else MODEL_DIR


class TrainedReader:
    """Reads the passages in batched forward passes and keeps the best spans across them.

    Spans that overlap a better span of the same document are dropped as variants of it, and so
    are spans that run across a sentence boundary or a clause break: an answer is read inside one
    sentence.

    With ``focus``, each passage is read only around its sentences that match the question best
    (``reader.focus``), up to that many characters; 0 reads whole passages. With ``sure``, passages
    given in rank order are read in two steps (``read``).

    A span's score is its start+end logit minus its window's no-answer logit, mapped by the
    logistic calibration fitted on the tuning articles to the probability that it is right.
    """

    name = "trained"

    def __init__(
        self,
        model_dir: str | Path = MODEL_DIR,
        threshold: float | None = None,
        precision: str = "auto",
        focus: int = DEFAULT_FOCUS,
        sure: float = DEFAULT_SURE,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.focus = focus
        self.sure = sure
        self._threshold = threshold
        self.precision = precision
        self._model: Any = None
        self._tokenizer: Any = None
        self.meta: dict[str, Any] = {}

    @property
    def threshold(self) -> float:
        return float(self._threshold if self._threshold is not None else self.meta["threshold"])

    @property
    def conflict_share(self) -> float | None:
        """This reader's own share for conflicts (``service.agreement.CONFLICT_RATIO``), where its
        ``reader.json`` has one: how close to the best answer's score another answer must come to
        count against it depends on how this reader spreads its scores. None: the default."""
        if not self.meta:  # read before the model loads, without loading it
            import json

            self.meta = json.loads((self.model_dir / "reader.json").read_text())
        share = self.meta.get("conflict_share")
        return None if share is None else float(share)

    def warm_up(self) -> None:
        if self._model is not None:
            return
        if not (self.model_dir / "model.safetensors").exists():
            raise FileNotFoundError(f"no trained reader in {self.model_dir} (make train-reader builds one)")
        import json

        from models.bert import load_qa, load_tokenizer

        base = base_model_dir()
        self.meta = json.loads((self.model_dir / "reader.json").read_text())
        self._tokenizer = load_tokenizer(base)
        self._model = load_qa(self.model_dir, base, self.run_precision)

    @property
    def run_precision(self) -> str:
        """What ``precision`` comes to for this reader on this CPU (``models.bert.reader_precision``)."""
        from models.bert import reader_precision

        return reader_precision(self.precision, self.model_dir)

    def probability(self, margin: np.ndarray) -> np.ndarray:
        """The calibrated probability that a span of this score minus null is right."""
        cal = self.meta["calibration"]
        return np.asarray(1.0 / (1.0 + np.exp(-(cal["a"] * margin + cal["b"]))))

    def views(self, question: str, passages: Sequence[Passage]) -> list[_View]:
        """What is read of each passage: all of it, or with ``focus`` its best-matching sentences
        (chosen over all of ``passages`` together)."""
        if not self.focus:
            return [_View.of(p) for p in passages]
        from reader.focus import select

        chosen = select(question, passages, self.focus)
        return [_View.of(p, keep) for p, keep in zip(passages, chosen, strict=True)]

    def windows(self, question: str, passages: Sequence[Passage]) -> tuple[list[_View], Windows]:
        """What is read: each passage's view (whole, or focused) and the model's windows over them."""
        self.warm_up()
        views = self.views(question, passages)
        return views, self.encode(question, views)

    def encode(self, question: str, views: Sequence[_View]) -> Windows:
        """The model's windows over ``views``."""
        return Windows(
            self._tokenizer, question, [v.text for v in views], self.meta["max_len"], self.meta["stride"]
        )

    def read(
        self, question: str, passages: Sequence[Passage], top_n: int = 3, ranked: bool = False
    ) -> list[Answer]:
        """The best ``top_n`` answers in ``passages``, best first.

        ``ranked`` says the passages come best first (retrieval's order). Then, with ``sure``,
        each document's first passage is read, and that document's further passages only where
        it gave no answer at least ``sure`` probable: a document that already answered is not
        read again, while every document is still read once, so agreement between documents
        (``service.agreement``) sees each of them. The answers are those the same reading in one
        pass would give for the passages read.
        """
        if not passages or not question.strip():
            return []
        self.warm_up()
        views = self.views(question, passages)
        if not (ranked and self.sure):
            return self._answers(
                question, passages, views, self._table(question, views, range(len(views))), top_n
            )
        firsts: list[int] = []
        for i, p in enumerate(passages):
            if all(passages[j].doc_id != p.doc_id for j in firsts):
                firsts.append(i)
        table = self._table(question, views, firsts)
        if len(firsts) == len(passages):
            return self._answers(question, passages, views, table, top_n)
        found = self._answers(question, passages, views, table, len(table))  # every answer
        settled = {a.doc_id for a in found if a.score >= self.sure}
        later = [i for i, p in enumerate(passages) if i not in firsts and p.doc_id not in settled]
        if not later:
            return found[:top_n]  # answers are kept best first: the first top_n are those
        table = SpanTable.joined([table, self._table(question, views, later)])
        return self._answers(question, passages, views, table, top_n)

    def _table(self, question: str, views: Sequence[_View], which: Sequence[int]) -> SpanTable:
        """The candidate spans of the views at ``which`` (their ``context`` an index into ``views``),
        best score first."""
        enc = self.encode(question, [views[i] for i in which])
        logits = self._model(enc.input_ids, enc.attention_mask, enc.token_type_ids).numpy()
        table = span_table(enc, logits[:, :, 0], logits[:, :, 1], self.meta["max_answer_tokens"])
        return table.renumbered(which)

    def _answers(
        self, question: str, passages: Sequence[Passage], views: Sequence[_View], table: SpanTable, top_n: int
    ) -> list[Answer]:
        probs = self.probability(table.score - table.null)
        # Only spans above the threshold can be answers; one below it matters only by marking its
        # place as seen, which can turn away a later span of the same document. So the walk
        # stops at the last span above the threshold, and skips those below it in documents no
        # such span is in: the same answers, without mapping and testing hundreds of spans.
        above = np.flatnonzero(probs >= self.threshold)
        if not len(above):
            return []
        stop = int(above[-1]) + 1
        contexts = table.context[:stop].tolist()
        wanted = {passages[contexts[i]].doc_id for i in above.tolist()}
        answers: list[Answer] = []
        seen: set[tuple[str, int, int]] = set()
        walk = zip(
            contexts,
            table.start[:stop].tolist(),
            table.end[:stop].tolist(),
            probs[:stop].tolist(),
            strict=True,
        )
        for context, span_start, span_end, prob in walk:
            p = passages[context]
            if p.doc_id not in wanted:
                continue
            mapped = views[context].answer_span(span_start, span_end)
            if mapped is None:
                continue
            start, end = mapped
            if not answer_like(p.text[start:end]):
                continue
            key = (p.doc_id, p.start + start, p.start + end)
            if key in seen:  # the same span found again in an overlapping window
                continue
            seen.add(key)
            if prob < self.threshold or counts_other(question, p.text, start, end):
                continue
            answers.append(
                Answer(
                    text=p.text[start:end],
                    score=round(prob, 4),
                    doc_id=p.doc_id,
                    start=p.start + start,
                    end=p.start + end,
                    passage_id=p.passage_id,
                )  # fmt: skip
            )
        # best first; a span overlapping a better one in the same document is a variant of it
        answers.sort(key=lambda a: -a.score)
        kept: list[Answer] = []
        for a in answers:
            if any(k.doc_id == a.doc_id and a.start < k.end and k.start < a.end for k in kept):
                continue
            kept.append(a)
            if len(kept) >= top_n:
                break
        return kept


# words that are never an answer on their own: a span of nothing else ("the", "of the") is a
# slip of the span head, seen as a second answer next to a right one
FILLER = frozenset(
    "a an the of and or to in on at for by with from as is was are were be been it its this that these "
    "those he she they his her their".split()
)
_WORD = re.compile(r"\w+")


def answer_like(text: str) -> bool:
    """Whether a span can be an answer: it has a word that is not filler (a lone capital letter,
    a grade or a blood type, counts as a word)."""
    if re.fullmatch(r"[A-Z]", text.strip()):
        return True
    words = _WORD.findall(text.lower())
    return any(w not in FILLER for w in words)


@dataclass(frozen=True)
class _View:
    """What the reader reads of a passage: its clean sentences joined by single spaces.

    Noise inside a passage (navigation debris, glossary pop-ups) is left out, so the model reads
    fewer and better tokens; ``to_passage`` maps a span back to offsets into ``passage.text``.
    """

    text: str
    pieces: tuple[tuple[int, int, int], ...]  # (start in text, start in passage, length)
    passage: Passage

    @functools.cached_property
    def starts(self) -> list[int]:
        return [q[0] for q in self.pieces]

    @classmethod
    def of(cls, p: Passage, keep: Sequence[int] | None = None) -> _View:
        """The view of ``p``: all its sentences, or those at the indices ``keep``."""
        if not p.sentences:
            return cls(p.text, ((0, 0, len(p.text)),), p)
        parts, pieces, pos = [], [], 0
        for s, e in p.sentences if keep is None else [p.sentences[i] for i in keep]:
            parts.append(p.text[s - p.start : e - p.start])
            pieces.append((pos, s - p.start, e - s))
            pos += e - s + 1
        return cls(" ".join(parts), tuple(pieces), p)

    def _locate(self, i: int) -> int:
        return max(bisect.bisect_right(self.starts, i) - 1, 0)

    def answer_span(self, start: int, end: int) -> tuple[int, int] | None:
        """Passage offsets of text[start:end], white space trimmed, if it reads like an answer:
        inside one sentence (a passage without sentence spans is one), with no clause break, not
        empty; else None."""
        if self._locate(start) != self._locate(max(end - 1, start)):
            return None
        mapped = self.to_passage(start, end)
        if mapped is None:
            return None
        a, b = _trim(self.passage.text, *mapped)
        if b <= a or _RUN_ON.search(self.passage.text, a, b) or _COUNTED_LIST.search(self.passage.text, a, b):
            return None
        return a, b

    def to_passage(self, start: int, end: int) -> tuple[int, int] | None:
        """Passage offsets of text[start:end]; None if it spans a gap that is not just white space."""
        a, b = self._locate(start), self._locate(max(end - 1, start))
        for k in range(a, b):
            gap_from = self.pieces[k][1] + self.pieces[k][2]
            if self.passage.text[gap_from : self.pieces[k + 1][1]].strip():
                return None
        ra, pa, la = self.pieces[a]
        rb, pb, lb = self.pieces[b]
        return pa + min(start - ra, la), pb + min(end - rb, lb)


# Inside a sentence, what still makes a span read like fragments strung together rather than an
# answer: a clause break ("...through 1968; 200") or a blank line.
_RUN_ON = re.compile(r";\s|\n\s*\n")

# Items of a counted list strung together: "48 songs, three" (of "48 songs, three operas"),
# "forty-eight songs and two". A count is the number before its own noun, so a span that runs
# from one count over its noun into the next is two answers, not one; the next best span
# ("three") is read instead. Dates ("January 31, 1950", "3 October, 1871") are not lists.
_COUNT = rf"(?:\d[\d,.]*|{alternation([*ONES, *TENS, *SCALES])}(?:-[a-z]+)?)"
_MONTH = alternation(MONTHS)
_COUNTED_LIST = re.compile(
    rf"(?i)(?<![\w,.]){_COUNT}\s+(?!{_MONTH}\b)[^\W\d_]+(?:\s+[^\W\d_]+){{0,3}}\s*(?:,\s*(?:and\s+)?|\s+and\s+){_COUNT}\b"
)


# "how many N ...": N is the last word of the noun phrase, which ends where an auxiliary, a
# preposition or an article begins ("How many North Korean pilots were ..." -> pilots)
_PHRASE_END = (
    r"(?:are|were|is|was|do|did|does|have|has|had|can|could|will|would|may|might|must|should|of|in|"
    r"on|at|to|for|by|from|with|about|during|since|per|the|a|an|that|which|who)"
)
_HOW_MANY = re.compile(
    rf"(?i)\bhow\s+many\s+((?:(?!{_PHRASE_END}\b)[^\W\d_]+[\s-]+){{0,3}}?)(?!{_PHRASE_END}\b)([^\W\d_]+)(?=\s+{_PHRASE_END}\b|\s*[?,.]|\s*$)"
)
# "how many more X": the noun comes later; "how many others": no noun to check a count against
_NOT_NOUNS = frozenset("more other others different".split())
_A_COUNT = re.compile(rf"(?i)(?<![\w-]){_COUNT}(?![\w-])")
_WORDS_AFTER = re.compile(r"\s*(?:-\s*)?([^\W\d_]+)(?:\s+([^\W\d_]+))?(?:\s+([^\W\d_]+))?")


def _stem(word: str) -> str:
    word = word.lower()
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def counts_other(question: str, text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is a count of something other than what "how many N" asks for.

    "How many operas did she write?" over "she wrote 48 songs, three operas": "48" and "48 songs"
    count songs. A span is set aside only when N is not among the three words after its last
    count and the text counts N elsewhere ("three operas"), so a count whose noun is left out or
    reworded stays.
    """
    asked = _asked(question)
    if asked is None:
        return False
    noun, counted = asked
    counts = list(_A_COUNT.finditer(text, start, end))
    if not counts:
        return False
    after = _WORDS_AFTER.match(text, counts[-1].end())
    if after is None or any(w and _stem(w) == noun for w in after.groups()):
        return False
    return any(not start <= m.start() < end for m in counted.finditer(text))


@functools.lru_cache(maxsize=256)
def _asked(question: str) -> tuple[str, re.Pattern[str]] | None:
    """The noun a "how many" question counts, and the pattern of a count of it; None if none."""
    asked = _HOW_MANY.search(question)
    if asked is None or asked.group(2).lower() in _NOT_NOUNS:
        return None
    noun = _stem(asked.group(2))
    # a count, at most two words between ("three comic operas"), then the noun
    return noun, re.compile(rf"(?i)(?<![\w-]){_COUNT}\s+(?:[^\W\d_]+\s+){{0,2}}{re.escape(noun)}s?\b")


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
