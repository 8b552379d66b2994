"""Sentence spans and noise spans, as offsets into the original text.

Nothing here rewrites text: cleaning means choosing which spans to keep, so every offset
still points into the document as it was loaded.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Sequence

Span = tuple[int, int]

_LINE = re.compile(r"[^\n]+")
# A scraped glossary pop-up: a long line that trails off with an ellipsis.
_GLOSSARY = re.compile(r"\S.{60,}(?:\.\.\.|…)\s*$")
_TEMPLATE = re.compile(r"^\s*(\{\{|\}\}|\[\[Category:)")
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "no", "inc", "ltd", "co",
    "gen", "col", "lt", "sgt", "capt", "gov", "sen", "rep", "jan", "feb", "mar", "apr", "jun",
    "jul", "aug", "sep", "sept", "oct", "nov", "dec", "fig", "al", "approx", "dept", "est",
    "e.g", "i.e", "u.s", "u.k", "u.n",
}  # fmt: skip
# Sentence end: terminal punctuation, optional closing quotes/brackets, whitespace, then
# something that can start a sentence.
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9])")
_BLANK = re.compile(r"\n[ \t]*\n\s*")
_HAS_WORD = re.compile(r"\w")
# A line that reads as a sentence: it ends in terminal punctuation, maybe inside quotes or brackets.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")


def _is_debris(line: str) -> bool:
    words = line.split()
    if not words or len(words) > 2 or line.rstrip().endswith((".", "?", "!")):
        return False
    joined = "".join(words)
    if line.rstrip().endswith(":"):
        return True
    if joined.isupper() and len(joined) > 1:
        return True
    # CamelCase tokens such as site names ("TheInfoList")
    return len(words) == 1 and bool(re.fullmatch(r"[A-Z][a-z]+(?:[A-Z][a-z]+){2,}", joined))


def _is_boilerplate(lines: list[str], k: int) -> bool:
    """Whether ``lines[k]``, a line seen three or more times, may be dropped as boilerplate.

    A sentence is kept (a refrain, a FAQ's "Yes.", even a copyright line: losing an answer is worse
    than indexing a footer), unless it trails off ("Loading..."). So is a table row ("a | b") among
    other rows; a lone line of " | " is a navigation bar ("Home | About | Contact").
    """
    line = lines[k]
    if _SENTENCE_END.search(line) and not line.endswith(("...", "…")):
        return False
    neighbours = [lines[j] for j in (k - 1, k + 1) if 0 <= j < len(lines)]
    return not (" | " in line and any(" | " in n for n in neighbours))


def _anchor_length(line: str) -> int:
    """Length of the link text before a glossary pop-up ("Khmer Rouge The Khmer Rouge (...) ...").

    The pop-up restates its title, so the link text ends where a word repeats an earlier
    one or where a capitalised "The" starts the definition; 0 when no such point is near.
    """
    words = list(re.finditer(r"\S+", line))
    seen: set[str] = set()
    for k, w in enumerate(words[:12]):
        norm = re.sub(r"\W", "", w.group()).lower()
        if k and ((norm in seen and w.group()[0].isupper()) or w.group() == "The"):
            return words[k - 1].end()
        if w.group()[0].isupper():
            seen.add(norm)
    return 0


EDGE_LINES = 2  # lines at the top and at the bottom of a page where running headers and footers sit


def _at_page_edges(lines: list[tuple[int, int, str]], pages: Sequence[Span]) -> list[bool]:
    """For each line, whether it is among the first or last ``EDGE_LINES`` lines of its page."""
    edge = [False] * len(lines)
    starts = [start for start, _, _ in lines]
    for page_start, page_end in pages:
        first, last = bisect.bisect_left(starts, page_start), bisect.bisect_left(starts, page_end)
        for k in [*range(first, min(last, first + EDGE_LINES)), *range(max(first, last - EDGE_LINES), last)]:
            edge[k] = True
    return edge


def noise_spans(text: str, pages: Sequence[Span] = ()) -> list[Span]:
    """Spans of lines that are scraper noise rather than prose.

    Noise is: a line repeated three or more times (boilerplate such as placeholder dates or a
    running header) unless it reads as a sentence or is a table row (``_is_boilerplate``), a long
    line that trails off with an ellipsis (inline glossary pop-ups), one- or two-word navigation
    debris ("HOME", "OR:"), and wiki template lines.

    With ``pages`` (a PDF's or a slide deck's page spans), repeated lines and debris count only at
    a page's top or bottom (``EDGE_LINES``), where running headers, footers and page furniture
    sit: inside a page such lines are a table's cells ("N/A" in three rows, "UNESCO"), not noise.
    """
    lines = [(m.start(), m.end(), m.group().strip()) for m in _LINE.finditer(text)]
    lines = [line for line in lines if line[2]]
    texts = [stripped for _, _, stripped in lines]
    edge = _at_page_edges(lines, pages) if pages else [True] * len(lines)
    counts = Counter(t for t, at_edge in zip(texts, edge, strict=True) if at_edge)
    spans: list[Span] = []
    for k, (start, end, stripped) in enumerate(lines):
        if _GLOSSARY.match(stripped):
            # keep the link text the pop-up hangs on: it belongs to the sentence around it
            lead = len(text[start:end]) - len(text[start:end].lstrip())
            spans.append((start + lead + _anchor_length(stripped), end))
            continue
        if _TEMPLATE.match(stripped) or (
            edge[k]
            and (
                (counts[stripped] >= 3 and len(stripped) < 200 and _is_boilerplate(texts, k))
                or _is_debris(stripped)
            )
        ):
            spans.append((start, end))
    return spans


def _split_block(text: str, start: int, end: int) -> list[Span]:
    """Split ``text[start:end]`` (one paragraph) into trimmed sentence spans."""
    out: list[Span] = []
    cursor = start
    for m in _BOUNDARY.finditer(text, start, end):
        before = text[cursor : m.start()]
        last_word = re.findall(r"[\w.]+$", before)
        token = last_word[0].lower().rstrip(".") if last_word else ""
        # Do not end a sentence after an abbreviation, an initial ("J. Smith"), or an
        # acronym written with dots ("U.S.").
        if token in _ABBREVIATIONS or len(token) == 1 or "." in token:
            continue
        out.append((cursor, m.end()))
        cursor = m.end()
    out.append((cursor, end))
    spans = (_trim(text, s, e) for s, e in out)
    # a piece with no word character (a lone "." left after a cut-out line) is no sentence
    return [t for t in spans if t is not None and _HAS_WORD.search(text, t[0], t[1])]


def _trim(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def sentence_spans(text: str, skip_noise: bool = True, pages: Sequence[Span] = ()) -> list[Span]:
    """Sentence spans of ``text`` in order, each trimmed of surrounding whitespace.

    Paragraph breaks (blank lines) always end a sentence; single line breaks do not, so
    hard-wrapped prose is joined. With ``skip_noise`` the noise lines (``noise_spans``, which
    takes ``pages``) are cut out and act as boundaries.
    """
    cuts = noise_spans(text, pages) if skip_noise else []
    cuts += [(m.start(), m.end()) for m in _BLANK.finditer(text)]
    cuts.sort()
    spans: list[Span] = []
    cursor = 0
    for cut_start, cut_end in cuts + [(len(text), len(text))]:
        if cut_start > cursor:
            spans.extend(_split_block(text, cursor, cut_start))
        cursor = max(cursor, cut_end)
    return spans
