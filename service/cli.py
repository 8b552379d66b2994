"""The ``citeqa`` command line: index, ask, serve. Heavy libraries load only inside commands."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2


def _settings(args: argparse.Namespace) -> Any:
    from service.settings import Settings

    overrides = {
        k: v
        for k, v in {
            "corpus_dir": args.corpus,
            "index_dir": args.index_dir,
            "model_path": args.model,
            "reader": getattr(args, "reader", None),
            "reader_dir": getattr(args, "reader_dir", None),
            "precision": args.precision,
        }.items()
        if v is not None
    }
    return Settings(**overrides)


def _pipeline(args: argparse.Namespace) -> Any:
    from service.api import pipeline_from_settings

    return pipeline_from_settings(_settings(args))


def _ray_missing() -> str | None:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return "cluster mode needs Ray: pip install -e '.[ray]' (the ray extra)"
    return None


def cmd_index_shards(args: argparse.Namespace) -> int:
    """``citeqa index --shards N [--ray ADDRESS]``: split the corpus into shards and build them."""
    from cluster import Layout, is_sharded
    from cluster.build import build_shards
    from corpus import ChunkParams, CorpusError, load_corpus
    from service.errors import BadInputError, from_corpus_error

    settings = _settings(args)
    shards = args.shards
    if shards is None:
        if not is_sharded(settings.index_dir):
            raise BadInputError(f"{settings.index_dir} is not sharded yet: say how many shards (--shards N)")
        shards = Layout.load(settings.index_dir).count
    if not 1 <= shards <= 1024:
        raise BadInputError(f"--shards must be between 1 and 1024 (got {shards})")
    if args.ray and (missing := _ray_missing()):
        raise BadInputError(missing)
    try:
        docs = load_corpus(settings.corpus_dir, settings.load_options(), show_progress=not args.quiet)
    except CorpusError as exc:
        raise from_corpus_error(exc) from None
    try:
        report = build_shards(
            docs,
            settings.index_dir,
            shards,
            model_path=settings.model_path,
            precision=settings.precision,
            chunking=ChunkParams(settings.max_words, settings.overlap_words),
            ray_address=args.ray,
            show_progress=not args.quiet,
        )
    except (ValueError, ConnectionError) as exc:
        raise BadInputError(str(exc)) from None
    where = f"on the Ray cluster at {args.ray} ({report.workers} embedding actors)" if args.ray else "here"
    print(
        f"indexed {report.documents} documents into {report.passages} passages in {shards} shards "
        f"in {report.seconds:.1f}s (embedding {where}: {report.embed_seconds:.1f}s) -> {settings.index_dir}"
    )
    for i, r in enumerate(report.shards):
        print(
            f"  shard-{i:03d}: {r['documents']} documents, {r['passages']} passages, version {r['version']}"
        )
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from service.errors import BadInputError, NotReadyError

    if args.shards is not None or args.ray:
        if args.if_stale:
            raise BadInputError("--if-stale applies to a single-node index; --shards rebuilds every shard")
        return cmd_index_shards(args)
    p = _pipeline(args)
    if args.if_stale:
        try:
            p.warm_up(show_progress=not args.quiet)
            print(f"index at {p.index_dir} is up to date ({p.index.passage_count} passages); nothing to do")
            return 0
        except NotReadyError as exc:
            print(f"{exc}; building it now", file=sys.stderr)
    t0 = time.perf_counter()
    index = p.build(show_progress=not args.quiet)
    seconds = time.perf_counter() - t0
    m = index.manifest
    print(
        f"indexed {m['corpus']['documents']} documents into {m['corpus']['passages']} passages "
        f"in {seconds:.1f}s with {m['model']['name']} ({m['model']['dimension']}-d) -> {p.index_dir} "
        f"[fingerprint {m['fingerprint']}]"
    )
    return 0


def _marked(passage_text: str, start: int, end: int) -> str:
    return passage_text[:start] + "**" + passage_text[start:end] + "**" + passage_text[end:]


def _one_line(text: str, width: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _page(page: int | None) -> str:
    return f", p. {page}" if page is not None else ""


def _answer_lines(result: Any, n: int, m: Any, quote: bool) -> list[str]:
    """One answer: its text and score, where it is cited, and (``quote``) its sentence."""
    a = m.answer
    sources = f", {m.documents} documents" if m.documents > 1 else ""
    lines = [
        f"{n}. {a.text}    (score {a.score:.2f}{sources})",
        f"   cited from {a.doc_id}:{a.start}-{a.end}{_page(result.page(a.doc_id, a.start))} — "
        f"{result.title(a.doc_id)}",
    ]
    for c in m.citations[1:]:
        worded = "" if c.text == a.text else f" as “{c.text}”"
        page = _page(result.page(c.doc_id, c.start))
        lines.append(f"   also in {c.doc_id}:{c.start}-{c.end}{page} — {result.title(c.doc_id)}{worded}")
    if quote:  # the sentence that holds the answer, the answer in **bold**
        s, sentence = result.sentence(a.passage_id, a.doc_id, a.start, a.end)
        lines.append("   " + _one_line(_marked(sentence, a.start - s, a.end - s), 600))
    return lines


def format_answers(result: Any, verbose: bool = False) -> str:
    """What ``citeqa ask`` prints: the answers, the sides of a disagreement first, or the closest
    passages when the documents do not answer."""
    if not result.answers:
        lines = ["No answer found in the documents. Closest passages:"]
        for h in result.hits[:3]:
            ps = h.passage
            lines.append(
                f"  - {ps.doc_id}:{ps.start}-{ps.end}{_page(ps.page)} ({result.title(ps.doc_id)}): "
                f"{_one_line(ps.text, 200)}"
            )
        return "\n".join(lines)
    numbered = list(enumerate(result.answers, start=1))
    if result.agreement != "conflict":
        return "\n".join(line for n, m in numbered for line in _answer_lines(result, n, m, verbose or n == 1))
    lines = ["Sources disagree:"]
    for n, m in numbered:
        if m.conflict:
            lines += _answer_lines(result, n, m, quote=True)
    rest = [(n, m) for n, m in numbered if not m.conflict]
    if rest:
        lines.append("Other answers:")
        for n, m in rest:
            lines += _answer_lines(result, n, m, quote=verbose)
    return "\n".join(lines)


def _pairs(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    """``--where`` / ``--meta`` pairs as a dict (a malformed pair is a one-line error)."""
    from corpus import CorpusError
    from corpus.metadata import parse_where
    from service.errors import BadInputError

    try:
        return parse_where(pairs or [])
    except CorpusError as exc:
        raise BadInputError(str(exc).replace("--where", flag)) from None


def cmd_ask(args: argparse.Namespace) -> int:
    from service.pipeline import Filter
    from service.schemas import ask_response

    only = Filter.of(args.doc_ids, _pairs(args.where, "--where"))
    p = _pipeline(args)
    p.warm_up()
    result = p.ask(args.question, args.top_k, only=only)
    if args.json:
        print(ask_response(result).model_dump_json(indent=2))
    else:
        print(format_answers(result, args.verbose))
    return 0


def _paths_to_documents(paths: list[Path], options: Any, show_progress: bool) -> list[Any]:
    """Documents from files and folders (a folder's files get ids relative to it).

    A file named on the command line that cannot be used fails the command; inside a
    folder, such a file is skipped with a warning.
    """
    from corpus import SUFFIXES, CorpusError, check_doc_id, load_corpus, load_document
    from service.errors import BadInputError, from_corpus_error

    docs = []
    for path in paths:
        try:
            if path.is_dir():
                docs.extend(load_corpus(path, options, show_progress=show_progress))
            elif path.is_file():
                if path.suffix.lower() not in SUFFIXES:
                    raise BadInputError(f"{path}: unsupported file type (accepted: {', '.join(SUFFIXES)})")
                docs.append(
                    load_document(path, doc_id=check_doc_id(path.name), options=options, name=str(path))
                )
            else:
                raise BadInputError(f"{path}: no such file or folder")
        except CorpusError as exc:
            raise from_corpus_error(exc) from None
    return docs


def cmd_add(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from corpus import CorpusError, check_doc_id
    from service.errors import BadInputError

    meta = {}
    if args.meta:  # checked before any file is read
        from corpus.metadata import check_metadata

        try:
            meta = check_metadata(_pairs(args.meta, "--meta"))
        except CorpusError as exc:
            raise BadInputError(str(exc)) from None
    docs = _paths_to_documents(args.paths, _settings(args).load_options(), show_progress=not args.quiet)
    if args.doc_id:
        if len(docs) != 1:
            raise BadInputError("--doc-id needs exactly one file")
        try:
            check_doc_id(args.doc_id)
        except CorpusError as exc:
            raise BadInputError(str(exc)) from None
        docs = [replace(docs[0], doc_id=args.doc_id)]
    if meta:
        docs = [replace(d, metadata={**d.metadata, **meta}) for d in docs]
    p = _pipeline(args)
    p.warm_up(build_if_needed=True, load_reader=False)
    t0 = time.perf_counter()
    update = p.add_documents(docs, replace=args.replace, show_progress=not args.quiet)
    for doc_id in update.added:
        print(f"added {doc_id} ({len(p.index.entries[doc_id].keys)} passages)")
    for doc_id in update.replaced:
        print(f"replaced {doc_id} ({len(p.index.entries[doc_id].keys)} passages)")
    for doc_id in update.unchanged:
        print(f"unchanged {doc_id}")
    print(f"collection version {update.version}: {len(p.index.entries)} documents, "
          f"{p.index.passage_count} passages ({time.perf_counter() - t0:.1f}s)")  # fmt: skip
    return 0


def _collection(args: argparse.Namespace) -> Any:
    """The pipeline of an index that exists, brought up to date with the corpus folder: a
    command that reads or removes builds nothing at a mistyped ``--index-dir`` (``add`` does,
    as a collection's first command may be an add)."""
    from cluster import is_sharded
    from index.index import REBUILD_HINT
    from service.errors import NotReadyError

    folder = Path(_settings(args).index_dir)
    if not is_sharded(folder) and not any((folder / name).exists() for name in ("CURRENT", "manifest.json")):
        raise NotReadyError(f"no index at {folder}: {REBUILD_HINT.replace('rebuild', 'build')}")
    p = _pipeline(args)
    p.warm_up(build_if_needed=True, load_reader=False)
    return p


def cmd_remove(args: argparse.Namespace) -> int:
    p = _collection(args)
    update = p.remove_documents(args.doc_ids)
    for doc_id in update.removed:
        print(f"removed {doc_id}")
    print(f"collection version {update.version}: {len(p.index.entries)} documents, "
          f"{p.index.passage_count} passages")  # fmt: skip
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    import json

    p = _collection(args)
    rows = [
        {"doc_id": e.doc_id, "title": e.document.title, "length": len(e.document.text),
         "passages": len(e.keys), "origin": e.origin, "metadata": e.document.fields}
        for e in p.index.entries.values()
    ]  # fmt: skip
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    width = max([len(r["doc_id"]) for r in rows] + [6])
    print(f"{'doc_id':<{width}}  origin  type  pages  passages  title")
    for r in rows:
        kind, pages = r["metadata"].get("type", ""), r["metadata"].get("pages", "")
        print(
            f"{r['doc_id']:<{width}}  {r['origin']:<6}  {kind:<4}  {pages:>5}  {r['passages']:>8}  "
            f"{_one_line(r['title'], 60)}"
        )
    print(f"{len(rows)} documents, collection version {p.index.version}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.api import create_app

    settings = _settings(args)
    host = args.host or settings.host
    port = args.port or settings.port
    if args.ray:
        from service.errors import BadInputError

        if missing := _ray_missing():
            raise BadInputError(missing)
        from cluster import is_sharded

        if not is_sharded(settings.index_dir):
            raise BadInputError(
                f"{settings.index_dir} is not sharded: build it with `citeqa index --ray ADDRESS --shards N`"
            )
        if args.replicas < 1:
            raise BadInputError(f"--replicas must be at least 1 (got {args.replicas})")
        from cluster.serve import run

        try:
            run(settings, args.ray, args.replicas, host, port)
        except ConnectionError as exc:
            raise BadInputError(str(exc)) from None
        return 0
    from service.api import pipeline_from_settings

    # loaded before the server starts, so that a missing or damaged index is a one-line error and
    # exit 2, not a traceback from the server's start-up
    pipeline = pipeline_from_settings(settings)
    pipeline.warm_up()
    uvicorn.run(create_app(settings, pipeline), host=host, port=port, log_level="info")
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from service.mcp_server import build_mcp

    p = _pipeline(args)
    p.warm_up()  # before the protocol starts: errors surface as a one-line message and exit 2
    build_mcp(lambda: p).run("stdio")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    # the CLI is the one edge that reaches into eval/, and only when this command runs
    from eval.cli import cmd_eval as run

    return run(args, _settings(args))


def _reader_dir_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reader-dir",
        type=Path,
        metavar="DIR",
        help="trained reader folder written by `python -m reader.train --out` "
        "(env CITEQA_READER_DIR; default: the shipped reader/model)",
    )


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    from eval.options import add_arguments

    add_arguments(p)
    _reader_dir_argument(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citeqa",
        description="Extractive question answering over a folder of documents, with exact citations.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--corpus", type=Path, help="folder of documents (env CITEQA_CORPUS_DIR; default: corpus/docs)"
    )
    common.add_argument(
        "--index-dir", type=Path, help="index folder (env CITEQA_INDEX_DIR; default: .citeqa/index)"
    )
    common.add_argument(
        "--model", type=Path, help="local sentence-transformers folder (env CITEQA_MODEL_PATH)"
    )
    common.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "int8"),
        help="model arithmetic (env CITEQA_PRECISION; default auto: bf16 where the CPU has native bf16, "
        "else the 4-layer reader in smoothed int8)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_index = sub.add_parser("index", parents=[common], help="build or rebuild the index")
    p_index.add_argument("--if-stale", action="store_true", help="build only when missing or out of date")
    p_index.add_argument("--quiet", action="store_true", help="no progress bar")
    p_index.add_argument(
        "--shards", type=int, metavar="N", help="split the collection into N shards (a sharded index folder)"
    )
    p_index.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="embed on the Ray cluster at ADDRESS, e.g. 10.0.0.5:6379 (the ray extra)",
    )
    p_index.set_defaults(func=cmd_index)

    p_ask = sub.add_parser("ask", parents=[common], help="answer a question")
    p_ask.add_argument("question")
    p_ask.add_argument(
        "--top-k", type=int, default=3, help="passages to retrieve and read (1..50, default 3)"
    )
    p_ask.add_argument("--json", action="store_true", help="print exactly the /ask response body")
    p_ask.add_argument("--reader", help="answer extractor: trained (default) or baseline")
    _reader_dir_argument(p_ask)
    p_ask.add_argument("-v", "--verbose", action="store_true", help="show the passage of every answer")
    p_ask.add_argument(
        "--doc", dest="doc_ids", action="append", metavar="DOC_ID", help="only this document (repeatable)"
    )
    p_ask.add_argument(
        "--where",
        action="append",
        metavar="KEY=VALUE",
        help="only documents whose metadata has this value, e.g. type=pdf (repeatable; `citeqa list --json` "
        "shows the metadata)",
    )
    p_ask.set_defaults(func=cmd_ask)

    p_add = sub.add_parser("add", parents=[common], help="add documents (files or folders) to the index")
    p_add.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p_add.add_argument("--doc-id", help="store the (single) file under this id (default: its file name)")
    p_add.add_argument("--replace", action="store_true", help="replace documents that have the same id")
    p_add.add_argument(
        "--meta", action="append", metavar="KEY=VALUE", help="metadata to store with them (repeatable)"
    )
    p_add.add_argument("--quiet", action="store_true", help="no progress bar")
    p_add.set_defaults(func=cmd_add)

    p_remove = sub.add_parser("remove", parents=[common], help="remove documents from the index")
    p_remove.add_argument("doc_ids", nargs="+", metavar="DOC_ID")
    p_remove.set_defaults(func=cmd_remove)

    p_list = sub.add_parser("list", parents=[common], help="list the documents in the index")
    p_list.add_argument("--json", action="store_true", help="print JSON")
    p_list.set_defaults(func=cmd_list)

    p_serve = sub.add_parser("serve", parents=[common], help="serve the HTTP API")
    p_serve.add_argument("--host", help="default 127.0.0.1 (env CITEQA_HOST)")
    p_serve.add_argument("--port", type=int, help="default 8000 (env CITEQA_PORT)")
    p_serve.add_argument("--reader", help="answer extractor: trained (default) or baseline")
    _reader_dir_argument(p_serve)
    p_serve.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="serve a sharded index from Ray Serve on the cluster at ADDRESS (the ray extra)",
    )
    p_serve.add_argument("--replicas", type=int, default=1, help="with --ray: replicas per shard (default 1)")
    p_serve.set_defaults(func=cmd_serve)
    p_mcp = sub.add_parser("mcp", parents=[common], help="serve the MCP tools over stdio (for chat apps)")
    p_mcp.add_argument("--reader", help="answer extractor: trained (default) or baseline")
    _reader_dir_argument(p_mcp)
    p_mcp.set_defaults(func=cmd_mcp)

    p_eval = sub.add_parser("eval", parents=[common], help="measure answer accuracy against a gold set")
    _eval_arguments(p_eval)
    p_eval.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="citeqa: %(levelname)s: %(message)s")
    from pydantic import ValidationError

    from service.errors import CiteqaError

    try:
        return int(args.func(args))
    except CiteqaError as exc:
        print(f"citeqa: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"citeqa: error: bad setting: {msgs}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # a folder that cannot be written, a file that cannot be read, a full disk
        where = f": {exc.filename}" if exc.filename else ""
        print(f"citeqa: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
