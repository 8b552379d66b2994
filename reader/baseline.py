"""A reader that needs no trained weights: best-supported sentence, narrowed by question type.

Each clean sentence of the retrieved passages is scored by how much of the question it
supports (IDF-weighted overlap of stemmed content words, blended with embedding similarity
when an embedder is given). The best sentences are then narrowed to the span the question
asks for where a cue allows it: a date for "when", a number for "how many/much", a name for
"who/which", a place for "where", a reason for "why". Weak support means no answer.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from corpus import Passage
from reader.base import Answer

_STOP = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours also ever many much whose happen happened
    according kind
    """.split()
)
_ABBREV = {"jr", "sr", "st", "dr", "mr", "mrs", "ms", "inc", "ltd", "co", "corp"}
_WORD = re.compile(r"[A-Za-z0-9][\w'’-]*")
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_YEAR = r"(?:1[0-9]{3}|20[0-9]{2})"
_DATE = re.compile(
    rf"\b(?:\d{{1,2}}\s+{_MONTH}(?:[–-]\w+)?\s+{_YEAR}"
    rf"|{_MONTH}(?:[–-]{_MONTH})?\s+\d{{1,2}},?\s+{_YEAR}"
    rf"|{_MONTH}(?:[–-]{_MONTH})?\s+{_YEAR}"
    rf"|{_YEAR}s"
    rf"|{_YEAR}(?:[–-]{_YEAR})?"
    rf"|{_MONTH}\s+\d{{1,2}}(?:\s+and\s+\d{{1,2}})?)\b"
)
_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
    r"fifty|sixty|hundred|dozens?|hundreds|thousands|millions"
)
_NUMBER = re.compile(
    rf"(?:\b(?:approximately|about|around|over|nearly|some|at least)\s+)?"
    rf"(?:\b\d[\d,.]*\b|\b(?:{_NUMBER_WORDS})\b)"
    rf"(?:[ -](?:million|billion|thousand|hundred|percent)\b|%)?",
    re.IGNORECASE,
)
_CAP = r"[A-Z][\w'’.-]*"
_NAME = re.compile(rf"\b{_CAP}(?:\s+(?:(?:of|the|de|van|von|al|bin)\s+)?{_CAP})*")
_PLACE_CUE = re.compile(rf"\b(?:in|at|to|from|near|into|across)\s+(?:the\s+)?({_CAP}(?:\s+{_CAP})*)")
_REASON = re.compile(
    r"\b(?:because(?: of)?|due to|owing to|as a result of|since|so that|in order to)\s+[^.;]+"
)


@dataclass(frozen=True)
class _Sentence:
    passage: Passage
    start: int  # document offsets
    end: int
    text: str


def _trim_punct(text: str, span: tuple[int, int]) -> tuple[int, int]:
    """Drop trailing punctuation from a span, but keep the final dot of "U.S." or "Jr."."""
    start, end = span
    while end > start and text[end - 1] in ",;:.":
        last = text[start:end].split()[-1] if text[start:end].split() else ""
        if text[end - 1] == "." and ("." in last[:-1] or last.rstrip(".").lower() in _ABBREV):
            break
        end -= 1
    return start, end


def question_type(question: str) -> str:
    q = question.lower().strip()
    if re.search(r"\bhow (many|much|long|old|far)\b|\bwhat (percentage|number|amount)\b", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (year|date|month|decade|century)\b|\bin which year\b", q):
        return "date"
    if re.search(r"\bwho(m|se)?\b", q):
        return "person"
    if re.search(r"\bwhere\b|\bwhat (country|city|place)\b|\bwhich (country|city|place)\b", q):
        return "place"
    if re.search(r"\bwhy\b|\bwhat (caused|led to)\b|\bfor what reason\b", q):
        return "reason"
    if re.search(r"\bwhich\b|\bwhat is the name\b|\bname\b", q):
        return "name"
    return "other"


class BaselineReader:
    """Sentence support plus answer-type cues; abstains below ``min_support``."""

    name = "baseline"
    conflict_share: float | None = None  # the default share (service.agreement.CONFLICT_RATIO)

    def __init__(self, embedder: Any = None, min_support: float = 0.45, sentences_read: int = 3) -> None:
        self.embedder = embedder
        self.min_support = min_support
        self.sentences_read = sentences_read
        self.fit_bonus = 0.2
        self._local = threading.local()  # a PyStemmer object per thread: they must not be shared
        self.cache_size = 100_000
        self._cache: dict[str, np.ndarray] = {}

    def warm_up(self) -> None:
        if self.embedder is not None:
            self.embedder.warm_up()

    def _terms(self, text: str) -> list[str]:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            import Stemmer

            stemmer = self._local.stemmer = Stemmer.Stemmer("english")
        words = [w.lower().strip("'’-") for w in _WORD.findall(text)]
        return [stemmer.stemWord(w) for w in words if w and w not in _STOP]

    def read(
        self, question: str, passages: Sequence[Passage], top_n: int = 3, ranked: bool = False
    ) -> list[Answer]:
        """``ranked`` changes nothing: this reader reads every passage's sentences."""
        sentences = [_Sentence(p, s, e, p.sentence_text((s, e))) for p in passages for s, e in p.sentences]
        q_terms = set(self._terms(question))
        if not sentences or not q_terms:
            return []
        support = self._support(question, q_terms, sentences)
        order = sorted(range(len(sentences)), key=lambda i: -support[i])
        qtype = question_type(question)
        answers: list[Answer] = []
        seen: set[tuple[str, int, int]] = set()
        # look a little deeper than we answer: a sentence whose typed span sits right next to
        # a question word ("200 pilots" for "how many pilots") can overtake a better-matching one
        for i in order[: self.sentences_read * 3]:
            if support[i] < self.min_support:
                break
            sent = sentences[i]
            start, end, typed, fits = self._narrow(question, qtype, q_terms, sent)
            key = (sent.passage.doc_id, start, end)
            if key in seen:
                continue
            seen.add(key)
            # a typed span that answers the question's type is more likely right than a
            # whole sentence; an untyped fallback for a typed question is less so
            factor = 1.0 if typed or qtype in ("other", "reason", "name") else 0.8
            score = support[i] * factor + (self.fit_bonus if fits else 0.0)
            offset = sent.passage.start
            answers.append(
                Answer(
                    text=sent.passage.text[start - offset : end - offset],
                    score=round(float(min(1.0, score)), 4),
                    doc_id=sent.passage.doc_id,
                    start=start,
                    end=end,
                    passage_id=sent.passage.passage_id,
                )
            )
        answers.sort(key=lambda a: -a.score)
        return answers[:top_n]

    def _support(self, question: str, q_terms: set[str], sentences: list[_Sentence]) -> np.ndarray:
        sent_terms = [set(self._terms(s.text)) for s in sentences]
        n = len(sentences)
        idf = {t: math.log(1 + (n + 1) / (1 + sum(t in st for st in sent_terms))) for t in q_terms}
        total = sum(idf.values())
        lexical = np.array([sum(idf[t] for t in q_terms & st) / total for st in sent_terms])
        if self.embedder is None:
            return lexical
        semantic = np.clip(
            self._sentence_vectors([s.text for s in sentences]) @ self.embedder.encode([question])[0],
            0.0,
            1.0,
        )
        return 0.5 * lexical + 0.5 * semantic

    def _sentence_vectors(self, texts: list[str]) -> np.ndarray:
        """Embeddings of corpus sentences, cached: the same passages come back request after request."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            if len(self._cache) + len(missing) > self.cache_size:
                self._cache.clear()
            self._cache.update(zip(missing, self.embedder.encode(missing)))
        return np.stack([self._cache[t] for t in texts])

    def _narrow(
        self, question: str, qtype: str, q_terms: set[str], sent: _Sentence
    ) -> tuple[int, int, bool, bool]:
        """Document offsets of the span to return, whether it is a typed span, and whether
        a question word directly follows it (a number's noun)."""
        text = sent.text
        q_lower = question.lower()
        anchors = [
            m.start()
            for m in _WORD.finditer(text)
            if m.group().lower() in q_lower and m.group().lower() not in _STOP
        ]
        candidates: list[tuple[int, int]] = []
        if qtype == "date":
            candidates = [m.span() for m in _DATE.finditer(text)]
        elif qtype == "number":
            candidates = [m.span() for m in _NUMBER.finditer(text) if not _DATE.fullmatch(m.group())]
        elif qtype in ("person", "name"):
            candidates = [m.span() for m in _NAME.finditer(text) if m.start() > 0 or qtype == "person"]
        elif qtype == "place":
            candidates = [m.span(1) for m in _PLACE_CUE.finditer(text)]
        elif qtype == "reason":
            candidates = [m.span() for m in _REASON.finditer(text)]
        candidates = [_trim_punct(text, c) for c in candidates]
        candidates = [
            c for c in candidates if c[1] > c[0] and not self._in_question(text[c[0] : c[1]], q_lower)
        ]
        if not candidates:
            return sent.start, sent.end, False, False

        def fits(c: tuple[int, int]) -> bool:
            after = self._terms(" ".join(text[c[1] :].split()[:2]))
            return qtype == "number" and any(t in q_terms for t in after)

        # a fitting candidate first, then the one nearest the words shared with the question
        center = sum(anchors) / len(anchors) if anchors else 0.0
        best = min(candidates, key=lambda c: (not fits(c), abs((c[0] + c[1]) / 2 - center), c[0]))
        return sent.start + best[0], sent.start + best[1], True, fits(best)

    @staticmethod
    def _in_question(span: str, q_lower: str) -> bool:
        words = [w.lower() for w in _WORD.findall(span) if w.lower() not in _STOP]
        return bool(words) and all(w in q_lower for w in words)
