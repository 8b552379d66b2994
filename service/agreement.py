"""Agreement between sources: answers that state the same fact become one answer with several
citations, and incompatible answers from different documents are reported as a conflict.

An answer is normalised into a typed value where it can be: a date (a year or range of years,
month, day), a quantity (value and unit) or a name (lower-case tokens without titles). Two
values of the same type agree when the vaguer one is implied by the more specific one ("2019"
and "26 February 2019"; "200" and "200 pilots") and contradict when a field both state differs.
Anything else is free text: the same when the words match or one holds the other, and never a
contradiction, since differently worded text is no evidence that the sources disagree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from corpus.analysis import MONTHS, ONES, SCALES, TENS
from reader import Answer

Agreement = Literal["none", "single", "agree", "conflict"]
AGREEMENTS: tuple[Agreement, ...] = ("none", "single", "agree", "conflict")

# An answer counts against the best one only when its score is at least this share of the
# best's: weaker ones are the reader's other guesses, not a source that says otherwise.
# Chosen on eval/gold/agreement/dev.jsonl and the seed set's false conflicts (see the README's
# Agreement section): the reader scores a reworded second source low ("shut its doors in 1981"
# for "close": 0.29 against 0.89), so the share must stay below a third. That is the 6-layer
# reader's spread of scores; a reader's reader.json may set its own ("conflict_share": the 4-layer
# reader's is 0.55, fitted the same way), which the pipeline passes as ``ratio``.
CONFLICT_RATIO = 0.3
APPROX_TOLERANCE = 0.1  # "about 2,300" agrees with 2,300 to 10 %


@dataclass(frozen=True)
class Citation:
    """A place that states the answer: ``document.text[start:end] == text``."""

    doc_id: str
    start: int
    end: int
    passage_id: str
    text: str = ""


@dataclass(frozen=True)
class MergedAnswer:
    """The best-scored statement of a fact, and every place that states it (``citations``).

    ``conflict`` marks the answers that take part in a disagreement between documents.
    """

    answer: Answer
    citations: tuple[Citation, ...] = field(default_factory=tuple)
    conflict: bool = False

    @property
    def documents(self) -> int:
        """How many distinct documents state this answer."""
        return len({c.doc_id for c in self.citations} or {self.answer.doc_id})


# -- normalisation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Date:
    years: tuple[int, int] | None  # inclusive; a decade is (1950, 1959); None: no year given
    month: int | None = None
    day: int | None = None


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str | None = None  # singular, lower case; a currency is its symbol
    approx: bool = False  # "about", "some", "roughly"
    bound: bool = False  # "more than", "up to": a limit, not the value


@dataclass(frozen=True)
class Name:
    tokens: tuple[str, ...]


Value = Date | Quantity | Name

# words that may stand around a date without changing which date it is
DATE_WORDS = frozenset(
    "in on of the early late mid around about circa c since by from until till at end beginning "
    "start middle year during and or ad".split()
)
APPROX = frozenset("about around approximately roughly nearly almost some circa c approx estimated ~".split())
BOUND = frozenset("over more than less fewer under up to at least most above below exceeding".split())
CURRENCIES = {"$": "$", "€": "€", "£": "£", "¥": "¥", "usd": "$", "dollar": "$", "euro": "€", "pound": "£"}
UNIT_ALIASES = {
    "m": "metre", "meter": "metre", "km": "kilometre", "kilometer": "kilometre", "cm": "centimetre",
    "ft": "foot", "feet": "foot", "kg": "kilogram", "g": "gram", "ha": "hectare", "mi": "mile",
    "hr": "hour", "h": "hour", "min": "minute", "yr": "year", "percent": "%",
    "people": "person", "men": "man", "women": "woman", "children": "child",
}  # fmt: skip
ARTICLES = frozenset(("a", "an", "the"))
TITLES = frozenset(
    "mr mrs ms miss dr doctor prof professor sir dame lord lady madam president vice prime minister "
    "chancellor premier general gen secretary chairman chairwoman chair king queen prince princess "
    "emperor empress leader captain capt colonel col lieutenant lt sergeant major admiral commander "
    "rev reverend father brother sister saint st abbot abbess bishop pope judge justice senator "
    "governor mayor".split()
)
PARTICLES = frozenset("of de da di del della van von der den du la le al el bin ibn y dos das".split())

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_TOKEN = re.compile(rf"[$€£¥~%]|\d+(?:st|nd|rd|th)\b|\d{{3}}0s\b|{_NUM}|[^\W\d_]+")


def _fold(text: str) -> str:
    """Lower case without accents ("Nguyễn" -> "nguyen"), curly quotes made straight."""
    decomposed = unicodedata.normalize("NFKD", text.replace("’", "'"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def words(text: str) -> tuple[str, ...]:
    """Lower-case word tokens without punctuation, accents or articles."""
    return tuple(w for w in re.findall(r"[^\W_]+", _fold(text)) if w not in ARTICLES)


def _tokens(text: str) -> list[str]:
    folded = _fold(text).replace("'s", "").replace("per cent", "percent")
    return _TOKEN.findall(folded.replace("-", " ").replace("–", " "))


def parse_date(text: str) -> Date | None:
    """A date if ``text`` is one: "1950", "in 1950", "the 1950s", "July 1957", "January 31, 1950",
    "26 February 2019", "March 1 and 2", "the end of February"; else None."""
    if re.search(r"\d{4}-\d{2}-\d{2}", text):
        iso = re.search(r"(\d{4})-(\d{2})-(\d{2})", text)
        assert iso is not None
        y, m, d = (int(g) for g in iso.groups())
        return Date((y, y), m, d) if 1 <= m <= 12 and 1 <= d <= 31 else None
    years: set[tuple[int, int]] = set()
    months: set[int] = set()
    days: set[int] = set()
    for tok in _tokens(text):
        if tok in MONTHS:
            months.add(MONTHS[tok])
        elif re.fullmatch(r"\d{3}0s", tok):
            years.add((int(tok[:-1]), int(tok[:-1]) + 9))
        elif re.fullmatch(r"\d{4}", tok) and 1000 <= int(tok) <= 2099:
            years.add((int(tok), int(tok)))
        elif re.fullmatch(r"\d{1,2}(?:st|nd|rd|th)?", tok) and 1 <= int(re.sub(r"\D", "", tok)) <= 31:
            days.add(int(re.sub(r"\D", "", tok)))
        elif tok not in DATE_WORDS:
            return None
    if len(years) > 1 or not (years or months) or (days and not months):
        return None
    return Date(
        next(iter(years)) if years else None,
        next(iter(months)) if len(months) == 1 else None,
        # "March 1 and 2" names two days: keep only what both share, the month
        next(iter(days)) if len(days) == 1 and len(months) == 1 else None,
    )


def _number_words(tokens: list[str]) -> float | None:
    total, current = 0.0, 0.0
    for tok in tokens:
        if tok in ONES:
            current += ONES[tok]
        elif tok in TENS:
            current += TENS[tok]
        elif tok == "hundred":
            current = max(current, 1) * 100
        elif tok in SCALES:
            total += max(current, 1) * SCALES[tok]
            current = 0
        elif tok == "and":
            continue
        else:
            return None
    return total + current


def _singular(word: str) -> str:
    if word in UNIT_ALIASES:
        return UNIT_ALIASES[word]
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 2 and word.endswith("s") and not word.endswith("ss"):
        return UNIT_ALIASES.get(word[:-1], word[:-1])
    return word


def parse_quantity(text: str) -> Quantity | None:
    """A quantity if ``text`` states one number: "200 pilots", "two million", "2,000,000",
    "$345 million worth of goods", "about 2300 residents", "60-hour"; else None."""
    tokens = _tokens(text)
    spans: list[tuple[int, int]] = []  # [start, end) of each run of number tokens
    i = 0
    while i < len(tokens):
        j = i
        while j < len(tokens) and (
            re.fullmatch(_NUM, tokens[j])
            or tokens[j] in ONES
            or tokens[j] in TENS
            or tokens[j] in SCALES
            or (
                tokens[j] == "and"
                and j > i
                and j + 1 < len(tokens)
                and (tokens[j + 1] in ONES or tokens[j + 1] in TENS)
            )
        ):
            j += 1
        if j > i and not all(t in SCALES for t in tokens[i:j]):
            spans.append((i, j))
            i = j
        else:
            i += 1
    if len(spans) != 1:
        return None
    i, j = spans[0]
    run = tokens[i:j]
    digits = [t for t in run if re.fullmatch(_NUM, t)]
    if len(digits) > 1 or (digits and run[0] != digits[0]):
        return None
    if digits:
        value = float(digits[0].replace(",", ""))
        scale = _number_words(run[1:]) if run[1:] else 1.0
        if scale is None or any(t not in SCALES for t in run[1:]):
            return None
        value *= scale or 1.0
    else:
        words_value = _number_words(run)
        if words_value is None:
            return None
        value = words_value
    before, after = tokens[:i], tokens[j:]
    unit = next((CURRENCIES[t] for t in before[-1:] + after[:1] if t in CURRENCIES), None)
    if unit is None and after and after[0] not in ("and", "or", "to", "-"):
        unit = _singular(after[0])
    return Quantity(
        value, unit, approx=any(t in APPROX for t in before), bound=any(t in BOUND for t in before)
    )


def parse_name(text: str) -> Name | None:
    """A name if its words are capitalised after any lower-case lead-in ("the engineer"); titles,
    articles and particles are dropped: "President Ho Chi Minh" -> ho chi minh, "Gervais of
    Tours" -> gervais tours, "Kim Jong-un" -> kim jong un; else None."""
    if re.search(r"\d", text):
        return None
    tokens: list[str] = []
    for word in text.replace("’s", "").replace("'s", "").split():
        parts = re.findall(r"[^\W\d_]+", word)
        if not parts:
            continue
        low = _fold(parts[0])
        if low in ARTICLES or low in TITLES or low in PARTICLES:
            continue
        if not parts[0][0].isupper():
            if tokens:  # lower-case words after the name: a phrase, not a name
                return None
            continue
        tokens.extend(_fold(p) for p in parts)
    return Name(tuple(tokens)) if 0 < len(tokens) <= 6 else None


def normalise(text: str) -> Value | None:
    """The typed value ``text`` states, or None for free text."""
    return parse_date(text) or parse_quantity(text) or parse_name(text)


# -- comparing two answers -------------------------------------------------------------------


class Relation(Enum):
    SAME = "same"  # they state the same fact (one may be more specific)
    CONFLICT = "conflict"  # same type of value, incompatible
    UNRELATED = "unrelated"  # nothing to tell: different types, or neither implies the other


def _implies(specific: Date, vague: Date) -> bool:
    if vague.years is not None and (
        specific.years is None
        or not (vague.years[0] <= specific.years[0] <= specific.years[1] <= vague.years[1])
    ):
        return False
    return (vague.month is None or vague.month == specific.month) and (
        vague.day is None or vague.day == specific.day
    )


def _dates(a: Date, b: Date) -> Relation:
    if _implies(a, b) or _implies(b, a):
        return Relation.SAME
    if a.years and b.years and (a.years[1] < b.years[0] or b.years[1] < a.years[0]):
        return Relation.CONFLICT
    if a.month and b.month and (a.month != b.month or (a.day and b.day and a.day != b.day)):
        return Relation.CONFLICT
    return Relation.UNRELATED


def _quantities(a: Quantity, b: Quantity) -> Relation:
    if a.unit and b.unit and a.unit != b.unit:
        return Relation.UNRELATED
    close = abs(a.value - b.value) <= max(abs(a.value), abs(b.value)) * (
        APPROX_TOLERANCE if a.approx or b.approx else 1e-9
    )
    if a.value == b.value or (close and not (a.bound or b.bound)):
        return Relation.SAME
    return Relation.UNRELATED if a.bound or b.bound else Relation.CONFLICT


def _token_matches(t: str, others: tuple[str, ...]) -> bool:
    # an initial ("T." in "T. Aldane") matches any word it begins
    return any(
        t == o or (len(t) == 1 and o.startswith(t)) or (len(o) == 1 and t.startswith(o)) for o in others
    )


def _names(a: Name, b: Name) -> Relation:
    if all(_token_matches(t, b.tokens) for t in a.tokens) or all(
        _token_matches(t, a.tokens) for t in b.tokens
    ):
        return Relation.SAME
    return Relation.CONFLICT


def _as_quantity(v: Value) -> Quantity | None:
    if isinstance(v, Quantity):
        return v
    if isinstance(v, Date) and v.years and v.years[0] == v.years[1] and v.month is None:
        return Quantity(float(v.years[0]))  # a bare "1500" may be a year or a count
    return None


def _typed(a: Value | None, b: Value | None) -> Relation:
    if isinstance(a, Date) and isinstance(b, Date):
        return _dates(a, b)
    if isinstance(a, Name) and isinstance(b, Name):
        return _names(a, b)
    qa, qb = _as_quantity(a) if a else None, _as_quantity(b) if b else None
    if qa is not None and qb is not None and (isinstance(a, Quantity) or isinstance(b, Quantity)):
        return _quantities(qa, qb)
    return Relation.UNRELATED


def _same_words(a: str, b: str) -> bool:
    wa, wb = words(a), words(b)
    if not wa or not wb:
        return False
    if set(wa) == set(wb):
        return True
    short, long_ = (wa, wb) if len(wa) <= len(wb) else (wb, wa)
    return any(long_[i : i + len(short)] == short for i in range(len(long_) - len(short) + 1))


def relation(a: str, b: str) -> Relation:
    """How two answer texts relate: the same fact, a contradiction, or neither."""
    if a == b or (words(a) and words(a) == words(b)):
        return Relation.SAME
    va, vb = normalise(a), normalise(b)
    if va is None and vb is None:  # free text: the same words, or one phrase inside the other
        return Relation.SAME if _same_words(a, b) else Relation.UNRELATED
    return _typed(va, vb)


def compatible(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` state the same fact (a more specific one agrees with a vaguer one)."""
    return relation(a, b) is Relation.SAME


def contradicts(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` are values of one type that cannot both be right."""
    return relation(a, b) is Relation.CONFLICT


# -- grouping and the agreement value -------------------------------------------------------


def group_answers(answers: Sequence[Answer]) -> list[list[Answer]]:
    """Answers that state the same fact, best first; each group's first answer is its best.

    An answer joins the first group all of whose members it agrees with, so "2019" can join
    "26 February 2019" but "March 2019" then cannot.
    """
    groups: list[list[Answer]] = []
    for a in sorted(answers, key=lambda a: -a.score):
        for group in groups:
            if all(compatible(a.text, m.text) for m in group):
                group.append(a)
                break
        else:
            groups.append([a])
    return groups


def _merge(group: list[Answer]) -> MergedAnswer:
    best = group[0]
    miss = 1.0
    for a in group:
        miss *= 1.0 - a.score
    # several places stating it nudge the score up (1 - prod(1 - s))
    score = round(1.0 - miss, 4) if len(group) > 1 else best.score
    cites = tuple(Citation(a.doc_id, a.start, a.end, a.passage_id, a.text) for a in group)
    return MergedAnswer(Answer(best.text, score, best.doc_id, best.start, best.end, best.passage_id), cites)


QUESTION_WORDS = frozenset("who whom whose what which when where why how".split())


def subject_words(question: str) -> set[str]:
    """What a question is about: its capitalised words after the first ("Kim", "Vietnam")."""
    found = re.findall(r"[^\W\d_]+", question.replace("’s", "").replace("'s", ""))[1:]
    return {
        _fold(w)
        for w in found
        if w[0].isupper() and len(w) > 1 and _fold(w) not in TITLES | ARTICLES | QUESTION_WORDS
    }


def mentions_subject(question: str, text: str) -> bool:
    """Whether ``text`` names what ``question`` is about (true when the question names nothing)."""
    subject = subject_words(question)
    return not subject or not subject.isdisjoint(words(text))


def _disagrees(
    best: MergedAnswer, other: MergedAnswer, ratio: float, on_subject: Callable[[MergedAnswer], bool]
) -> bool:
    """``other`` is a strong answer, from a document of its own, that contradicts ``best``."""
    if other.answer.score < ratio * best.answer.score:
        return False
    mine = {c.doc_id for c in best.citations}
    theirs = {c.doc_id for c in other.citations}
    if not (mine - theirs and theirs - mine):  # one document saying two things is not two sources
        return False
    # two passages disagree about something only when both are about it: a date read from a
    # passage on another subject is the reader's mistake, not a second opinion
    if not (on_subject(best) and on_subject(other)):
        return False
    return any(contradicts(x.text, y.text) for x in best.citations for y in other.citations)


def conflict_ratio(reader: object) -> float:
    """The share ``reader`` counts conflicts at: its own (``conflict_share``) or the default."""
    share = getattr(reader, "conflict_share", None)
    return CONFLICT_RATIO if share is None else float(share)


def merge_answers(
    answers: Sequence[Answer],
    question: str = "",
    passages: Mapping[str, str] | None = None,
    ratio: float = CONFLICT_RATIO,
) -> list[MergedAnswer]:
    """Group answers by meaning, best first, and mark the ones that disagree across documents.

    ``passages`` maps passage ids to the text read there (with the document title), to check
    that both sides of a disagreement are about what ``question`` names.
    """
    merged = sorted((_merge(g) for g in group_answers(answers)), key=lambda m: -m.answer.score)
    if not merged:
        return []

    def on_subject(m: MergedAnswer) -> bool:
        return passages is None or any(
            mentions_subject(question, passages.get(c.passage_id, "")) for c in m.citations
        )

    rivals = {i for i, m in enumerate(merged[1:], start=1) if _disagrees(merged[0], m, ratio, on_subject)}
    if not rivals:
        return merged
    return [
        MergedAnswer(m.answer, m.citations, conflict=True) if i == 0 or i in rivals else m
        for i, m in enumerate(merged)
    ]


def agreement_of(answers: Sequence[MergedAnswer]) -> Agreement:
    """ "none" (no answer), "conflict" (documents disagree), "agree" (the best answer is stated by
    two or more documents), else "single"."""
    if not answers:
        return "none"
    if any(m.conflict for m in answers):
        return "conflict"
    return "agree" if answers[0].documents >= 2 else "single"
