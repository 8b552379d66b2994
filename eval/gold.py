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


def load_jsonl(path: str | Path) -> list[GoldItem]:
    items = []
    seen = set()
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                item = GoldItem(
                    id=str(row["id"]),
                    question=str(row["question"]),
                    answers=tuple(str(a) for a in row["answers"]),
                    docs=tuple(str(d) for d in row.get("docs", [])),
                    conflict=row.get("conflict", False),
                )
                if not isinstance(item.conflict, bool):
                    raise TypeError(f"conflict must be true or false, not {item.conflict!r}")
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
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
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise GoldFormatError(f"{path}: not SQuAD JSON ({exc})") from None
    items = []
    for article in data:
        title = article.get("title", "")
        if articles is not None and title not in articles:
            continue
        for p_idx, para in enumerate(article["paragraphs"]):
            doc_id = f"{title}/{p_idx}"
            for qa in para["qas"]:
                impossible = qa.get("is_impossible", False)
                answers = () if impossible else tuple(a["text"] for a in qa["answers"])
                items.append(
                    GoldItem(
                        id=str(qa["id"]),
                        question=qa["question"],
                        answers=answers,
                        docs=(doc_id,),
                        context=para["context"],
                        doc_id=doc_id,
                        title=title.replace("_", " "),
                    )
                )
    return items


def load_gold(path: str | Path, articles: set[str] | None = None) -> list[GoldItem]:
    """By extension: ``.jsonl`` is the project's format, ``.json`` is SQuAD."""
    p = Path(path)
    if not p.is_file():
        raise GoldFormatError(f"gold file not found: {p}")
    if p.suffix == ".jsonl":
        return load_jsonl(p)
    return load_squad(p, articles)
