"""Knowledge distillation for the span reader: a teacher's start/end distributions as soft targets.

The teacher (MPNet) and the student (MiniLM) cut text into different word pieces, so the
teacher's distributions cannot be copied token for token. Both tokenisers give character
offsets, so the teacher's probability that the answer starts at a token is moved to the
student token holding that token's first character (its last character for the end). The
no-answer position ([CLS] / ``<s>``) maps to itself. The teacher reads exactly the
characters of context that the student's window holds, so the two see the same text.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def project(
    probs: np.ndarray,
    teacher_offsets: np.ndarray,
    teacher_ctx: np.ndarray,
    student_offsets: np.ndarray,
    student_ctx: np.ndarray,
    shift: int,
    side: str,
) -> np.ndarray:
    """The teacher's start (``side="start"``) or end distribution over the student's tokens.

    ``probs``: the teacher's probabilities over its tokens (index 0 = no answer);
    ``*_offsets``: (tokens, 2) character offsets, the teacher's relative to the context piece
    it read, which begins at character ``shift`` of the student's context; ``*_ctx``: boolean
    masks of the context tokens. Mass on teacher tokens outside the student's context goes
    nowhere; the result is renormalised.
    """
    out = np.zeros(len(student_offsets), dtype=np.float64)
    out[0] = probs[0]
    s_idx = np.flatnonzero(student_ctx)
    t_idx = np.flatnonzero(teacher_ctx)
    if len(s_idx) and len(t_idx):
        s_start, s_end = student_offsets[s_idx, 0], student_offsets[s_idx, 1]
        if side == "start":
            chars = teacher_offsets[t_idx, 0] + shift
            pos = np.searchsorted(s_start, chars, side="right") - 1  # the token holding that char
            ok = (pos >= 0) & (chars < s_end[np.clip(pos, 0, None)])
        else:
            chars = teacher_offsets[t_idx, 1] + shift
            pos = np.searchsorted(s_end, chars, side="left")  # the token whose end is at or after it
            ok = (pos < len(s_idx)) & (chars > s_start[np.clip(pos, None, len(s_idx) - 1)])
        np.add.at(out, s_idx[pos[ok]], probs[t_idx[ok]])
    total = out.sum()
    if total <= 0:
        out[0] = 1.0
        return out
    return out / total


def kd_loss(student_logits: Any, targets: Any, mask: Any, temperature: float) -> Any:
    """T² · KL(targets ‖ softmax(student / T)) per row, averaged; ``mask`` hides padding."""
    import torch

    logits = student_logits.float().masked_fill(~mask, -1e4) / temperature
    logp = torch.log_softmax(logits, dim=-1)
    kl = (targets * (torch.log(targets.clamp_min(1e-12)) - logp)).sum(-1)
    return kl.mean() * temperature**2


class Teacher:
    """A trained QA model (any ``transformers`` architecture) that scores the student's windows."""

    def __init__(self, model: Any, tokenizer: Any, max_len: int = 512, temperature: float = 2.0) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.temperature = temperature

    def targets(self, batch: list[dict[str, Any]], width: int, device: Any) -> tuple[Any, Any]:
        """Soft start and end targets, (rows, width) each, for a collated student batch."""
        import torch

        questions = [f["question"] for f in batch]
        pieces = [f["context"][f["span"][0] : f["span"][1]] for f in batch]
        enc = self.tokenizer(
            questions, pieces, truncation="only_second", max_length=self.max_len, padding="longest",
            return_offsets_mapping=True, return_tensors="np",
        )  # fmt: skip
        keys = ("input_ids", "attention_mask", "token_type_ids")  # segments where the model has them
        inputs = {k: torch.from_numpy(enc[k]).to(device) for k in keys if k in enc}
        with torch.no_grad():
            out = self.model(**inputs)
        t = self.temperature
        start = torch.softmax(out.start_logits.float() / t, -1).cpu().numpy()
        end = torch.softmax(out.end_logits.float() / t, -1).cpu().numpy()
        soft_start = np.zeros((len(batch), width))
        soft_end = np.zeros((len(batch), width))
        for r, f in enumerate(batch):
            t_ctx = np.array([s == 1 for s in enc.sequence_ids(r)])
            s_off, s_ctx = f["offsets"], f["ctx_mask"]
            n = len(s_off)
            args = (enc["offset_mapping"][r], t_ctx, s_off, s_ctx, f["span"][0])
            soft_start[r, :n] = project(start[r], *args, side="start")
            soft_end[r, :n] = project(end[r], *args, side="end")
        return torch.from_numpy(soft_start).float().to(device), torch.from_numpy(soft_end).float().to(device)
