"""The trained span reader: windows over the retrieved passages, spans scored on one scale,
calibrated probabilities, and abstention below the threshold chosen on tuning data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from corpus import Passage
from reader.base import Answer
from reader.qa_model import MODEL_DIR, decode_spans, encode_windows, load_model, load_tokenizer, sigmoid


class TrainedReader:
    """Reads every passage in one batched forward pass and keeps the best spans across them.

    A span's score is its start+end logit minus its window's no-answer logit, mapped by the
    logistic calibration fitted on the tuning articles to the probability that it is right.
    """

    name = "trained"

    def __init__(self, model_dir: str | Path = MODEL_DIR, threshold: float | None = None) -> None:
        self.model_dir = Path(model_dir)
        self._threshold = threshold
        self._model: Any = None
        self._tokenizer: Any = None
        self.meta: dict[str, Any] = {}

    @property
    def threshold(self) -> float:
        return float(self._threshold if self._threshold is not None else self.meta["threshold"])

    def warm_up(self) -> None:
        if self._model is not None:
            return
        if not (self.model_dir / "model.safetensors").exists():
            raise FileNotFoundError(f"no trained reader in {self.model_dir} (make train-reader builds one)")
        self._model, self.meta = load_model(self.model_dir)
        self._tokenizer = load_tokenizer()

    def probability(self, margin: float) -> float:
        cal = self.meta["calibration"]
        return sigmoid(cal["a"] * margin + cal["b"])

    def read(self, question: str, passages: Sequence[Passage], top_n: int = 3) -> list[Answer]:
        if not passages or not question.strip():
            return []
        self.warm_up()
        import torch

        enc = encode_windows(
            self._tokenizer, question, [p.text for p in passages], self.meta["max_len"], self.meta["stride"]
        )
        with torch.inference_mode():
            out = self._model(
                input_ids=torch.from_numpy(enc["input_ids"]),
                attention_mask=torch.from_numpy(enc["attention_mask"]),
                token_type_ids=torch.from_numpy(enc["token_type_ids"]),
            )
        spans = decode_spans(
            enc,
            out.start_logits.float().numpy(),
            out.end_logits.float().numpy(),
            self.meta["max_answer_tokens"],
        )
        answers: list[Answer] = []
        seen: set[tuple[str, int, int]] = set()
        for span in spans:
            p = passages[span.context]
            start, end = _trim(p.text, span.start, span.end)
            if end <= start:
                continue
            key = (p.doc_id, p.start + start, p.start + end)
            if key in seen:  # the same span found again in an overlapping window
                continue
            seen.add(key)
            prob = self.probability(span.score - span.null)
            if prob < self.threshold:
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
            if len(answers) >= top_n * 3:
                break
        answers.sort(key=lambda a: -a.score)
        return answers[:top_n]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
