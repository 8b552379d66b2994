"""Metrics as pure functions: SQuAD-official EM/F1, retrieval recall and MRR, conflict
detection, percentiles.

``normalize_answer``, ``exact_match`` and ``token_f1`` follow the official SQuAD v1.1
evaluation script line for line; ``score_prediction`` adds SQuAD 2.0's convention for
questions with no gold answer (a correct abstention scores 1, any answer scores 0).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse white space."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def token_f1(prediction: str, truth: str) -> float:
    pred = normalize_answer(prediction).split()
    gold = normalize_answer(truth).split()
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred)
    recall = same / len(gold)
    return 2 * precision * recall / (precision + recall)


def score_prediction(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """(EM, F1) in [0, 1], the best over the gold answers.

    No gold answers means the question is unanswerable: an empty prediction (abstention)
    scores (1, 1), anything else (0, 0).
    """
    if not golds:
        return (1.0, 1.0) if not prediction else (0.0, 0.0)
    return (
        max(exact_match(prediction, g) for g in golds),
        max(token_f1(prediction, g) for g in golds),
    )


def first_relevant_rank(relevant: Sequence[bool]) -> int | None:
    """1-based rank of the first relevant item, or None."""
    for i, rel in enumerate(relevant, start=1):
        if rel:
            return i
    return None


def recall_at_k(ranks: Sequence[int | None], k: int) -> float:
    """Share of questions whose first relevant passage is at rank <= k."""
    if not ranks:
        return 0.0
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def mrr_at_k(ranks: Sequence[int | None], k: int = 10) -> float:
    """Mean reciprocal rank of the first relevant passage, counting only ranks <= k."""
    if not ranks:
        return 0.0
    return sum(1.0 / r for r in ranks if r is not None and r <= k) / len(ranks)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation, as numpy's default."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _conflict_counts(gold: Sequence[bool], predicted: Sequence[bool]) -> tuple[int, int, int, int]:
    """(true positives, false positives, false negatives, true negatives) of conflict calls."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold flags but {len(predicted)} predictions")
    pairs = list(zip(gold, predicted))
    return (
        sum(1 for g, p in pairs if g and p),
        sum(1 for g, p in pairs if not g and p),
        sum(1 for g, p in pairs if g and not p),
        sum(1 for g, p in pairs if not g and not p),
    )


def conflict_precision(gold: Sequence[bool], predicted: Sequence[bool]) -> float | None:
    """Share of the questions called a conflict that are one; None when none was called."""
    tp, fp, _, _ = _conflict_counts(gold, predicted)
    return tp / (tp + fp) if tp + fp else None


def conflict_recall(gold: Sequence[bool], predicted: Sequence[bool]) -> float | None:
    """Share of the real conflicts that were called; None when there are none."""
    tp, _, fn, _ = _conflict_counts(gold, predicted)
    return tp / (tp + fn) if tp + fn else None


def false_conflict_rate(gold: Sequence[bool], predicted: Sequence[bool]) -> float | None:
    """Share of the questions without a conflict that were called one; None when there are none."""
    _, fp, _, tn = _conflict_counts(gold, predicted)
    return fp / (fp + tn) if fp + tn else None
