"""``citeqa eval``: load a gold set, run it, print the table, write the JSON and Markdown reports."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from corpus import ChunkParams, CorpusError, Document, load_corpus
from corpus.documents import corpus_fingerprint
from eval.gold import GoldFormatError, GoldItem, load_gold
from eval.runner import (
    format_table,
    run_open_mode,
    run_reader_mode,
    squad_documents,
    summarize,
    write_json,
    write_report,
)
from service.api import pipeline_from_settings
from service.errors import BadInputError
from service.pipeline import Pipeline

SPLIT_FILE = Path(__file__).resolve().parent / "squad_split.json"


def split_articles(split: str) -> set[str] | None:
    if split == "all":
        return None
    return set(json.loads(SPLIT_FILE.read_text())[split])


def _sample(items: list[GoldItem], limit: int | None, seed: int) -> list[GoldItem]:
    if limit is None or limit >= len(items):
        return items
    keep = set(random.Random(seed).sample(range(len(items)), limit))
    return [it for i, it in enumerate(items) if i in keep]


def _cached_pipeline(docs: list[Document], source: Path, settings: Any, chunking: ChunkParams) -> Pipeline:
    """A pipeline over ``docs``, indexed once into .citeqa/eval-cache/<their fingerprint>."""
    cache = Path(settings.index_dir).parent / "eval-cache" / corpus_fingerprint(docs)
    return Pipeline(
        corpus_dir=source, index_dir=cache, model_path=settings.model_path, reader=settings.reader,
        reader_threshold=settings.reader_threshold, chunking=chunking, precision=settings.precision,
        reader_focus=settings.reader_focus, reader_dir=settings.reader_dir, reader_sure=settings.reader_sure,
        max_question_chars=settings.max_question_chars, documents=docs,
    )  # fmt: skip


def corpus_with(folders: list[Path], corpus_dir: Path) -> list[Document]:
    """The corpus folder's documents plus those of ``folders`` (ids relative to each folder)."""
    try:
        docs = load_corpus(corpus_dir)
        for folder in folders:
            docs += load_corpus(folder)
    except CorpusError as exc:
        raise BadInputError(str(exc)) from None
    ids = [d.doc_id for d in docs]
    twice = sorted({d for d in ids if ids.count(d) > 1})
    if twice:
        raise BadInputError(f"--docs: document id {twice[0]!r} is in more than one folder")
    return docs


def _reader_fields(reader: Any, settings: Any) -> dict[str, Any]:
    """What the run read with: the settings asked for, and the reader folder, precision and int8
    kernels they came to (``auto`` may pick the 4-layer student: ``reader.shipped_reader``)."""
    from models.bert import int8_engine, resolve_precision
    from service.agreement import conflict_ratio

    folder = getattr(reader, "model_dir", None)
    run = getattr(reader, "run_precision", None) or resolve_precision(
        getattr(reader, "precision", settings.precision)
    )
    return {
        "reader": reader.name,
        "reader_threshold": getattr(reader, "threshold", None),
        "reader_focus": getattr(reader, "focus", None),
        "reader_sure": getattr(reader, "sure", None),
        "reader_dir": str(settings.reader_dir) if settings.reader_dir else None,
        "reader_model": folder.name if folder is not None else None,
        "precision": settings.precision,
        "precision_run": run,
        "int8_engine": int8_engine() if run == "int8" else None,  # FBGEMM and oneDNN round apart
        "conflict_share": conflict_ratio(reader),
    }


def check_outputs(gold: Path, outputs: dict[str, Path | None]) -> None:
    """Refuse, before a run, output paths that would fail after it (its figures lost) or that
    would overwrite the gold file or each other."""
    named = {flag: Path(path) for flag, path in outputs.items() if path is not None}
    for flag, path in named.items():
        if path.resolve() == gold.resolve():
            raise BadInputError(f"{flag} {path} is the gold file itself: name another file")
        if path.is_dir():
            raise BadInputError(f"{flag} {path} is a folder: name a file in it")
        folder = path.resolve().parent
        if not folder.is_dir():
            raise BadInputError(f"{flag} {path}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise BadInputError(f"{flag} {path}: not writable")
    flags = list(named)
    for i, a in enumerate(flags):
        for b in flags[i + 1 :]:
            if named[a].resolve() == named[b].resolve():
                raise BadInputError(f"{a} and {b} name the same file ({named[a]}): give each its own")


def cmd_eval(args: argparse.Namespace, settings: Any) -> int:
    if args.limit is not None and args.limit < 1:
        raise BadInputError("--limit must be at least 1")
    check_outputs(args.file, {"--json": args.json_out, "--report": args.report})
    is_squad = args.file.suffix != ".jsonl"
    if args.docs and is_squad:
        raise BadInputError("--docs adds documents to a JSONL gold set's corpus; SQuAD brings its own")
    if args.split != "all" and not is_squad:
        raise BadInputError("--split picks SQuAD articles (eval/squad_split.json); a JSONL gold set has none")
    try:
        items = load_gold(args.file, split_articles(args.split) if is_squad else None)
    except GoldFormatError as exc:
        raise BadInputError(str(exc)) from None
    if not items:
        raise BadInputError(f"no questions in {args.file} (split {args.split})")
    corpus_items = items
    items = _sample(items, args.limit, args.seed)
    chunking = ChunkParams(settings.max_words, settings.overlap_words)
    progress = not args.quiet and sys.stderr.isatty()

    if args.mode == "reader":
        if not is_squad:
            raise BadInputError("--mode reader needs SQuAD JSON (each question's own paragraph)")
        pipeline = pipeline_from_settings(settings)
        reader = pipeline.reader
        reader.warm_up()
        manifest: dict[str, Any] = {
            **_reader_fields(reader, settings),
            "model": {"name": pipeline.embedder.name, "fingerprint": pipeline.embedder.fingerprint},
            "chunking": chunking.as_dict(),
        }
        t0 = time.perf_counter()
        records = run_reader_mode(items, reader, chunking, progress=progress)
    else:
        if is_squad:
            pipeline = _cached_pipeline(squad_documents(corpus_items), args.file, settings, chunking)
        elif args.docs:
            docs = corpus_with(args.docs, Path(settings.corpus_dir))
            pipeline = _cached_pipeline(docs, Path(settings.corpus_dir), settings, chunking)
        else:
            pipeline = pipeline_from_settings(settings)
        pipeline.warm_up(build_if_needed=True)
        assert pipeline.index is not None
        manifest = {**pipeline.index.manifest, **_reader_fields(pipeline.reader, settings)}
        t0 = time.perf_counter()
        records = run_open_mode(items, pipeline, args.top_k, progress=progress)
    wall = time.perf_counter() - t0
    metrics = summarize(records, args.mode, wall)
    command = "citeqa " + " ".join(args.argv)
    print(format_table(metrics))
    if args.json_out:
        write_json(args.json_out, metrics, command, manifest, records)
        print(f"wrote {args.json_out}")
    if args.report:
        write_report(args.report, metrics, command, records)
        print(f"wrote {args.report}")
    return 0


__all__ = ["cmd_eval"]
