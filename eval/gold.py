"""Gold sets: the project's JSONL format, and SQuAD v1.1 / v2.0 JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


class GoldFormatError(ValueError):
    """The gold file cannot be read."""


@dataclass(frozen=True)
class GoldItem:
    """One question. ``answers == []`` means the right output is an abstention.

    ``docs`` are the doc ids that answer it (JSONL); ``conflict`` says the documents give
    incompatible answers to it (JSONL; absent means false). For SQuAD, ``context`` is the
    question's own paragraph and ``doc_id`` names it.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    docs: tuple[str, ...] = ()
    context: str = ""
    doc_id: str = ""
    title: str = ""
    conflict: bool = False
    extra: dict[str, str] = field(default_factory=dict, compare=False)


def _strings(value: object, what: str) -> tuple[str, ...]:
    """A list of strings, as a tuple; a lone string is refused, not split into characters."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{what} must be a list of strings, not {type(value).__name__} {value!r:.60}")
    return tuple(value)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{what} must be a non-empty string, not {value!r:.60}")
    return value


def load_jsonl(path: str | Path) -> list[GoldItem]:
    items = []
    seen = set()
    with open(path, encoding="utf-8") as fh:
        try:
            lines = list(enumerate(fh, start=1))
        except UnicodeDecodeError as exc:
            raise GoldFormatError(f"{path}: not UTF-8 ({exc})") from None
    for n, line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise TypeError(f"a record is a JSON object, not {type(row).__name__}")
            if not isinstance(row.get("id"), str | int) or isinstance(row.get("id"), bool):
                raise TypeError(f"id must be a string or a number, not {row.get('id')!r:.60}")
            item = GoldItem(
                id=str(row["id"]),
                question=_text(row.get("question"), "question"),
                answers=_strings(row.get("answers"), "answers"),
                docs=_strings(row.get("docs", []), "docs"),
                conflict=row.get("conflict", False),
            )
            if not isinstance(item.conflict, bool):
                raise TypeError(f"conflict must be true or false, not {item.conflict!r}")
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            raise GoldFormatError(f"{path}:{n}: not a gold record ({exc})") from None
        if item.id in seen:
            raise GoldFormatError(f"{path}:{n}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    return items


def load_squad(path: str | Path, articles: set[str] | None = None) -> list[GoldItem]:
    """SQuAD v1.1 or v2.0 JSON; ``articles`` keeps only those titles."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
        if not isinstance(data, list):
            raise TypeError(f'"data" must be a list of articles, not {type(data).__name__}')
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError: ValueError
        raise GoldFormatError(f"{path}: not SQuAD JSON ({exc})") from None
    items = []
    seen: set[str] = set()
    for a_idx, article in enumerate(data):
        where = f"{path}: article {a_idx}"
        try:
            title = article.get("title", "")
            if not isinstance(title, str):
                raise TypeError(f"title must be a string, not {title!r:.60}")
            if articles is not None and title not in articles:
                continue
            for p_idx, para in enumerate(article["paragraphs"]):
                where = f"{path}: article {title or a_idx}, paragraph {p_idx}"
                doc_id = f"{title}/{p_idx}"
                context = _text(para["context"], "context")
                for qa in para["qas"]:
                    impossible = qa.get("is_impossible", False)
                    answers = [] if impossible else [a["text"] for a in qa["answers"]]
                    item = GoldItem(
                        id=str(qa["id"]),
                        question=_text(qa["question"], "question"),
                        answers=_strings(answers, "answers' text"),
                        docs=(doc_id,),
                        context=context,
                        doc_id=doc_id,
                        title=title.replace("_", " "),
                    )
                    if item.id in seen:
                        raise ValueError(f"duplicate question id {item.id!r}")
                    seen.add(item.id)
                    items.append(item)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise GoldFormatError(f"{where}: not SQuAD JSON ({what})") from None
    return items


def load_gold(path: str | Path, articles: set[str] | None = None) -> list[GoldItem]:
    """By extension: ``.jsonl`` is the project's format, ``.json`` is SQuAD."""
    p = Path(path)
    if not p.is_file():
        raise GoldFormatError(f"gold file not found: {p}")
    try:
        if p.suffix == ".jsonl":
            return load_jsonl(p)
        return load_squad(p, articles)
    except OSError as exc:
        raise GoldFormatError(f"{p}: cannot be read ({exc.strerror or exc})") from None
