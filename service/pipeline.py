"""retrieve -> read -> merge and agree: the one verb every front end calls."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from corpus import ChunkParams, CorpusError, Document, LoadOptions, corpus_files, load_corpus
from corpus.metadata import Value, check_metadata, check_unicode, matches
from index import (
    Change,
    Embedder,
    Entry,
    Hit,
    Index,
    IndexError_,
    Store,
    build_index,
    incompatibilities,
    text_sha256,
)
from index.index import REBUILD_HINT
from reader import BaselineReader, Reader, TrainedReader, shipped_reader
from reader.trained import DEFAULT_FOCUS as READ_FOCUS
from reader.trained import DEFAULT_SURE as READ_SURE
from service.agreement import Agreement, MergedAnswer, agreement_of, conflict_ratio, merge_answers
from service.errors import BadInputError, ConflictError, NotFoundError, NotReadyError, from_corpus_error

log = logging.getLogger(__name__)
MAX_TOP_K = 50
# passages read per question by default: 3 reads half the tokens of 5 and cost 0.12 F1 on the
# tuning articles (citeqa eval --mode open --split tune --top-k 3 vs 5)
READ_K = 3
READERS = ("trained", "baseline")


MAX_FILTER_IDS = 10_000


@dataclass(frozen=True)
class Filter:
    """Which documents a question may be answered from: those of ``doc_ids`` (all when None)
    whose metadata has every key of ``where`` with an equal value (``corpus.metadata.matches``)."""

    doc_ids: tuple[str, ...] | None = None
    where: Mapping[str, Value] = field(default_factory=dict)

    @classmethod
    def of(cls, doc_ids: Sequence[str] | None = None, where: Mapping[str, object] | None = None) -> Filter:
        """A checked filter (``BadInputError`` saying what is wrong); None and empty mean no limit."""
        if doc_ids is not None:
            if isinstance(doc_ids, str) or not all(isinstance(d, str) for d in doc_ids):
                raise BadInputError("doc_ids must be a list of document ids")
            if len(doc_ids) > MAX_FILTER_IDS:
                raise BadInputError(f"doc_ids lists {len(doc_ids)} documents; at most {MAX_FILTER_IDS}")
            if not doc_ids:  # never "all": a list of what a user may see can come out empty
                raise BadInputError("doc_ids is empty: name at least one document, or leave doc_ids out")
        try:
            checked = check_metadata(where or {}, allow_reserved=True)
        except CorpusError as exc:
            raise BadInputError(str(exc).replace("metadata", "where", 1)) from None
        return cls(tuple(dict.fromkeys(doc_ids)) if doc_ids is not None else None, checked)

    @property
    def active(self) -> bool:
        return self.doc_ids is not None or bool(self.where)

    def documents(self, index: Index) -> list[str] | None:
        """The ids of the documents allowed (None: all of them).

        An unknown id is refused (404); a filter that leaves no document is refused (422), so
        a mistyped key or value is not taken for a question the documents cannot answer.
        """
        if not self.active:
            return None
        ids = list(self.doc_ids) if self.doc_ids is not None else list(index.entries)
        unknown = [d for d in ids if d not in index.entries]
        if unknown:
            raise NotFoundError(f"unknown document id: {unknown[0]!r} (GET /documents lists them)")
        if self.where:
            ids = [d for d in ids if matches(index.entries[d].document.fields, self.where)]
            if not ids:
                shown = ", ".join(f"{k}={v}" for k, v in self.where.items())
                raise BadInputError(
                    f"no document matches where {shown}"
                    + (" among doc_ids" if self.doc_ids is not None else "")
                    + " (GET /documents shows each document's metadata)"
                )
        return None if len(ids) == len(index.entries) else ids


NO_FILTER = Filter()


@dataclass(frozen=True)
class AskResult:
    question: str
    answers: list[MergedAnswer]
    hits: list[Hit]  # the passages that were read (top_k)
    retrieved: list[Hit] = field(default_factory=list)  # everything retrieved (>= hits), for evaluation
    index: Index | None = None  # the collection state it was answered from

    @property
    def agreement(self) -> Agreement:
        """Whether the documents agree on the answer: none, single, agree or conflict."""
        return agreement_of(self.answers)

    @property
    def version(self) -> int:
        return self.index.version if self.index is not None else 0

    def title(self, doc_id: str) -> str:
        return self.index.title(doc_id) if self.index is not None else ""

    def text(self, doc_id: str, start: int, end: int) -> str:
        doc = self.index.document(doc_id) if self.index is not None else None
        return doc.text[start:end] if doc is not None else ""

    def page(self, doc_id: str, offset: int) -> int | None:
        """The 1-based page of the document that holds ``offset`` (None for formats without pages)."""
        doc = self.index.document(doc_id) if self.index is not None else None
        return doc.page_at(offset) if doc is not None else None

    def sentence(self, passage_id: str, doc_id: str, start: int, end: int) -> tuple[int, str]:
        """The passage sentence that holds [start, end): its document offset and its text
        (the span itself where there is none)."""
        read = (h.passage for h in [*self.hits, *self.retrieved] if h.passage.passage_id == passage_id)
        passage = next(read, None) or (self.index.passage(passage_id) if self.index is not None else None)
        if passage is not None:
            for s, e in passage.sentences:
                if s <= start and end <= e:
                    return s, passage.text[s - passage.start : e - passage.start]
        return start, self.text(doc_id, start, end)


def make_reader(
    name: str,
    embedder: Embedder,
    threshold: float | None = None,
    precision: str = "auto",
    focus: int = READ_FOCUS,
    model_dir: str | Path | None = None,
    sure: float = READ_SURE,
) -> Reader:
    if name == "baseline":
        if model_dir is not None:  # a folder the user named and would silently not get
            raise BadInputError(f"reader folder {model_dir} is for the trained reader, not --reader baseline")
        return BaselineReader(embedder)
    if name == "trained":
        if model_dir is None:
            folder = shipped_reader(precision)
            return TrainedReader(folder, threshold=threshold, precision=precision, focus=focus, sure=sure)
        folder = Path(model_dir)
        needed = ("model.safetensors", "reader.json", "config.json")
        missing = [f for f in needed if not (folder / f).is_file()]
        if missing:
            raise BadInputError(
                f"reader folder {model_dir} has no {' or '.join(missing)} "
                "(python -m reader.train --out DIR writes one)"
            )
        try:
            meta = json.loads((folder / "reader.json").read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise BadInputError(f"reader folder {model_dir}: reader.json cannot be read ({exc})") from None
        if not isinstance(meta, dict) or "threshold" not in meta:
            raise BadInputError(f"reader folder {model_dir}: reader.json is not a trained reader's settings")
        if "base" in meta:
            raise BadInputError(
                f"reader folder {model_dir} holds a reader on another base model (reader.train --base "
                "or --lora); the service serves readers on the bundled MiniLM only"
            )
        share = meta.get("conflict_share")
        number = isinstance(share, int | float) and not isinstance(share, bool)
        if share is not None and not (number and 0 < share <= 1):
            raise BadInputError(
                f"reader folder {model_dir}: reader.json's conflict_share must be a number in (0, 1], "
                f"not {share!r}"
            )
        return TrainedReader(model_dir, threshold=threshold, precision=precision, focus=focus, sure=sure)
    raise BadInputError(f"unknown reader {name!r} (choose from: {', '.join(READERS)})")


@dataclass(frozen=True)
class Update:
    """What a write did: the documents it added, replaced or removed, and the new version."""

    version: int
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def plan_add(base: Index, documents: Sequence[Document], replace: bool) -> tuple[Change, Update]:
    """The change that adds ``documents`` to ``base`` and what it will do (version 0 until
    committed); with ``replace`` False, a document whose id exists is refused (409)."""
    ids = [d.doc_id for d in documents]
    twice = sorted(d for d, n in Counter(ids).items() if n > 1)
    if twice:
        raise BadInputError(f"document id {twice[0]!r} appears twice (two files with the same name?)")
    exists = [d for d in ids if d in base.entries]
    if exists and not replace:
        raise ConflictError(
            f"document {exists[0]!r} already exists (replace it with PUT /documents/{{doc_id}} "
            "or `citeqa add --replace`)"
        )
    same = [
        d.doc_id
        for d in documents
        if d.doc_id in base.entries
        and base.entries[d.doc_id].document.text == d.text
        and base.entries[d.doc_id].document.title == d.title
        and base.entries[d.doc_id].document.metadata == d.metadata
    ]
    update = Update(
        0,
        added=[d for d in ids if d not in base.entries],
        replaced=[d for d in exists if d not in same],
        unchanged=same,
    )
    return Change(add=tuple((d, "added") for d in documents)), update


def plan_remove(base: Index, doc_ids: Sequence[str]) -> tuple[Change, Update]:
    """The change that removes ``doc_ids``; an unknown id is refused (404)."""
    missing = [d for d in doc_ids if d not in base.entries]
    if missing:
        raise NotFoundError(f"unknown document id: {missing[0]!r}")
    return Change(remove=tuple(doc_ids)), Update(0, removed=list(doc_ids))


def replace_version(update: Update, version: int) -> Update:
    return dataclasses.replace(update, version=version)


def _check_unicode(text: str, what: str) -> None:
    """JSON allows lone surrogates ("\\ud800"), and so does a command line that is not UTF-8;
    the tokenizers do not (the check metadata and filters already have, as a 422)."""
    try:
        check_unicode(text, what)
    except CorpusError as exc:
        raise BadInputError(str(exc)) from None


class Pipeline:
    """Owns the collection (its committed state), the embedder and the reader.

    Cheap to construct; ``warm_up`` loads. Queries run against one immutable ``Index`` state,
    picked up at the start of the query; writes build the next state beside it, commit it to
    disk, then swap the reference, so readers never see a mix. Writes are serialised, across
    processes too (the store's lock), and a change committed by another process (``citeqa
    add`` next to a running server) is picked up on the next query.
    """

    RELOAD_CHECK_S = 0.5

    def __init__(
        self,
        corpus_dir: str | Path,
        index_dir: str | Path,
        model_path: str | Path | None = None,
        reader: str = "trained",
        chunking: ChunkParams = ChunkParams(),
        max_question_chars: int = 2000,
        documents: list[Document] | None = None,
        embedder: Embedder | None = None,
        write_embedder: Embedder | None = None,
        reader_threshold: float | None = None,
        precision: str = "auto",
        load_options: LoadOptions = LoadOptions(),
        reader_focus: int = READ_FOCUS,
        reader_dir: str | Path | None = None,
        reader_sure: float = READ_SURE,
    ) -> None:
        """``documents``, when given, are used instead of reading ``corpus_dir``.

        ``embedder`` and ``write_embedder`` share already loaded models (tests, tools); writes
        use their own copy by default, so embedding a large upload does not hold up queries.
        """
        self.corpus_dir = Path(corpus_dir)
        self._given = documents
        self.load_options = load_options
        self._folder: tuple[object, list[Document]] | None = None  # the last read: (files' stats, documents)
        self.index_dir = Path(index_dir)
        self.store = Store(self.index_dir)
        self.chunking = chunking
        self.max_question_chars = max_question_chars
        self.model_path = model_path
        self.precision = precision
        self.embedder = embedder or Embedder(model_path, precision=precision)
        self.reader = make_reader(
            reader,
            self.embedder,
            reader_threshold,
            precision,
            reader_focus,
            model_dir=reader_dir,
            sure=reader_sure,
        )
        self.index: Index | None = None
        # queries run in parallel: the tokenizers are set up once and never changed, and the
        # models' forward passes take turns (models.bert.COMPUTE), each on every core
        self._write_lock = threading.Lock()
        self._writer = write_embedder  # writes embed with their own copy, off the read lock
        self._token: object = None
        self._checked = 0.0

    # -- the collection ------------------------------------------------------------------

    @property
    def documents(self) -> dict[str, Document]:
        index = self.current()
        return index.documents if index is not None else {}

    def _folder_documents(self, show_progress: bool = False) -> list[Document]:
        """The corpus folder's documents, read again only when its files changed since the last read."""
        if self._given is not None:
            return self._given
        try:
            files, _ = corpus_files(self.corpus_dir) if self.corpus_dir.is_dir() else ([], 0)
            stats = [(f, f.stat().st_mtime_ns, f.stat().st_size) for f in files]
        except OSError:
            stats = []
        if self._folder is not None and stats and self._folder[0] == stats:
            return self._folder[1]
        try:
            docs = load_corpus(self.corpus_dir, self.load_options, show_progress=show_progress)
        except CorpusError as exc:
            raise from_corpus_error(exc) from None
        self._folder = (stats, docs)
        return docs

    def _sync(
        self, entries: Mapping[str, Entry], seen: Mapping[str, str], folder: list[Document]
    ) -> Change | None:
        """The change that brings a collection (its ``entries`` and the corpus folder's last
        sync, ``seen``) up to date with the corpus folder.

        Only what changed in the folder since the last sync is applied: a document added or
        removed through the API stays as it is until its file changes.
        """
        now = {d.doc_id: (d, text_sha256(d.text)) for d in folder}

        def retagged(d: Document) -> bool:
            """Same text, other file facts (an index written before documents had metadata, a
            renamed folder); a new modification time alone is not a change."""
            e = entries.get(d.doc_id)
            if e is None or e.origin != "corpus":
                return False
            old = {k: v for k, v in e.document.metadata.items() if k != "modified"}
            return old != {k: v for k, v in d.metadata.items() if k != "modified"}

        add = tuple((d, "corpus") for d, sha in now.values() if seen.get(d.doc_id) != sha or retagged(d))
        remove = tuple(
            doc_id
            for doc_id, sha in seen.items()
            if doc_id not in now
            and doc_id in entries
            and entries[doc_id].origin == "corpus"
            and entries[doc_id].sha256 == sha
        )
        fresh = {doc_id: sha for doc_id, (_, sha) in now.items()}
        if not add and not remove and fresh == seen:
            return None
        return Change(add=add, remove=remove, corpus_seen=fresh)

    def _write_embedder(self) -> Embedder:
        if self._writer is None:
            self._writer = Embedder(self.model_path, precision=self.precision)
        return self._writer

    def _latest(self) -> Index:
        """The latest committed state (call with the write locks held)."""
        if self.index is not None and self.store.token() == self._token:
            return self.index
        return self.store.load(self.embedder)

    def _publish(self, index: Index) -> Index:
        """Serve ``index`` from now on (queries embed with the read embedder)."""
        index.embedder = self.embedder
        self.index = index
        self._token = self.store.token()
        self._checked = time.monotonic()
        return index

    def build(self, show_progress: bool = False) -> Index:
        """Rebuild the whole collection from its texts (and the corpus folder), then commit it.

        Documents added through the API are kept: they are re-chunked and re-embedded too.
        """
        folder = self._folder_documents(show_progress)
        with self._write_lock, self.store.locked():
            entries: Mapping[str, Entry] = {}
            seen: dict[str, str] = {}
            try:
                old = self.store.load(self.embedder)
                entries, seen = old.entries, dict(old.corpus_seen)
            except IndexError_ as exc:
                # a state that does not load (damaged, or from a citeqa that read it otherwise)
                # may still hold documents added through the API, which the corpus folder
                # cannot give back: keep every one whose stored text is intact
                salvaged = self.store.salvage()
                if salvaged is not None:
                    entries, seen, lost = salvaged
                    why = str(exc).removesuffix(f": {REBUILD_HINT}")
                    gone = f" (texts lost: {', '.join(lost)})" if lost else ""
                    log.warning("%s; rebuilding it with the %d documents whose texts are intact%s",
                                why, len(entries), gone)  # fmt: skip
            docs = {d: (e.document, e.origin) for d, e in entries.items()}
            change = self._sync(entries, seen, folder)
            if change is not None:
                for doc_id in change.remove:
                    docs.pop(doc_id, None)
                docs.update({d.doc_id: (d, origin) for d, origin in change.add})
                seen = dict(change.corpus_seen or {})
            index = build_index(
                [d for d, _ in docs.values()],
                self._write_embedder(),
                self.chunking,
                show_progress=show_progress,
                origin={doc_id: origin for doc_id, (_, origin) in docs.items()},
                corpus_seen=seen,
            )
            self.store.commit(index)
            return self._publish(index)

    def warm_up(
        self, build_if_needed: bool = False, load_reader: bool = True, show_progress: bool = False
    ) -> None:
        """Load the committed collection and the reader.

        A missing or incompatible index, or a corpus folder that changed since the last sync,
        is refused with a hint, unless ``build_if_needed``: then it is built or brought up to
        date (incrementally when only documents changed). ``show_progress``: a progress bar
        while the corpus folder is read.
        """
        folder = self._folder_documents(show_progress)
        try:
            index = self.store.load(self.embedder)
            problems = incompatibilities(index.manifest, self.embedder, self.chunking)
            if problems:
                raise IndexError_(
                    f"index at {self.index_dir} is stale ({'; '.join(problems)}): {REBUILD_HINT}"
                )
        except IndexError_ as exc:
            if not build_if_needed:
                raise NotReadyError(str(exc)) from None
            log.info("%s; building it now", exc)
            self.build()
        else:
            change = self._sync(index.entries, index.corpus_seen, folder)
            if change is None:
                self._publish(index)
            elif not build_if_needed:
                raise NotReadyError(
                    f"index at {self.index_dir} is stale (the documents in {self.corpus_dir} changed "
                    "since it was built): run `citeqa index` to rebuild it"
                )
            else:
                self._apply(change)
        self.warm_models(load_reader)

    def warm_models(self, load_reader: bool = True) -> None:
        """Load the query embedder and (``load_reader``) the reader."""
        self.embedder.warm_up()
        if load_reader:
            try:
                self.reader.warm_up()
            except FileNotFoundError as exc:
                raise NotReadyError(f"{exc}; or choose the baseline reader (--reader baseline)") from None

    def _apply(self, change: Change, show_progress: bool = False) -> Index:
        """Commit ``change`` on top of the latest committed state (caller holds no lock)."""
        with self._write_lock, self.store.locked():
            base = self._latest()
            index = base.updated(change, self._write_embedder(), show_progress=show_progress)
            self.store.commit(index)
            return self._publish(index)

    def add_documents(
        self, documents: list[Document], replace: bool = True, show_progress: bool = False
    ) -> Update:
        """Add documents (``replace``: overwrite ones with the same id, else refuse with 409)."""
        with self._write_lock, self.store.locked():
            base = self._latest()
            change, update = plan_add(base, documents, replace)
            index = base.updated(change, self._write_embedder(), show_progress=show_progress)
            self.store.commit(index)
            self._publish(index)
            return replace_version(update, index.version)

    def remove_documents(self, doc_ids: list[str]) -> Update:
        """Remove documents by id; an unknown id is refused (404) and nothing is removed."""
        with self._write_lock, self.store.locked():
            base = self._latest()
            change, update = plan_remove(base, doc_ids)
            index = base.updated(change, self._write_embedder())
            self.store.commit(index)
            self._publish(index)
            return replace_version(update, index.version)

    def current(self) -> Index | None:
        """The state to answer from: the latest committed one (checked at most every 0.5 s)."""
        index = self.index
        if index is None:
            return None
        now = time.monotonic()
        if now - self._checked >= self.RELOAD_CHECK_S:
            self._checked = now
            if self.store.token() != self._token and self._write_lock.acquire(blocking=False):
                # another process committed a change: serve it from now on
                try:
                    token = self.store.token()
                    index = self._publish(self.store.load(self.embedder))
                    self._token = token
                except IndexError_ as exc:
                    log.warning("could not load the committed collection: %s", exc)
                finally:
                    self._write_lock.release()
        return index

    def _ready(self) -> Index:
        index = self.current()
        if index is None:
            raise NotReadyError("the index is not loaded")
        return index

    # -- queries -------------------------------------------------------------------------

    def check_question(self, question: str, top_k: int, what: str = "question") -> str:
        if not isinstance(question, str) or not question.strip():
            raise BadInputError(f"{what} must not be empty")
        _check_unicode(question, what)
        if len(question) > self.max_question_chars:
            raise BadInputError(
                f"{what} is longer than {self.max_question_chars} characters ({len(question)})"
            )
        if not 1 <= top_k <= MAX_TOP_K:
            raise BadInputError(f"top_k must be between 1 and {MAX_TOP_K} (got {top_k})")
        return question.strip()

    def search(self, query: str, top_k: int = 5, only: Filter = NO_FILTER) -> AskResult:
        """Retrieval only: the ``top_k`` passages (as ``hits``) and the state they came from."""
        query = self.check_question(query, top_k, "the search query")
        index = self._ready()
        hits = index.search(query, top_k, only=only.documents(index))
        return AskResult(query, [], hits, hits, index)

    def ask(
        self,
        question: str,
        top_k: int = READ_K,
        retrieve_k: int | None = None,
        query: str | None = None,
        only: Filter = NO_FILTER,
    ) -> AskResult:
        """Retrieve ``max(top_k, retrieve_k)`` passages, read the best ``top_k``, group the answers
        that state the same fact and mark the ones on which documents disagree.

        ``query``, when given, is what retrieval searches for (a question refined by earlier
        turns of a chat); the reader still reads ``question``. ``only`` limits the documents
        searched, before ranking.
        """
        from models.bert import one_request

        with one_request():
            return self._ask(question, top_k, retrieve_k, query, only)

    def _ask(
        self, question: str, top_k: int, retrieve_k: int | None, query: str | None, only: Filter
    ) -> AskResult:
        question = self.check_question(question, top_k)
        if query is not None:
            _check_unicode(query, "the search query")
        index = self._ready()
        allowed = only.documents(index)
        retrieved = index.search(query or question, max(top_k, retrieve_k or 0), only=allowed)
        hits = retrieved[:top_k]
        answers = self.reader.read(question, [h.passage for h in hits], top_n=max(3, top_k), ranked=True)
        read = {h.passage.passage_id: f"{index.title(h.passage.doc_id)}\n{h.passage.text}" for h in hits}
        merged = merge_answers(answers, question, read, conflict_ratio(self.reader))
        return AskResult(question, merged, hits, retrieved, index)

    def document(self, doc_id: str) -> Document:
        index = self.current()
        doc = index.document(doc_id) if index is not None else None
        if doc is None:
            raise NotFoundError(f"unknown document id: {doc_id!r}")
        return doc

    def title(self, doc_id: str) -> str:
        return self.index.title(doc_id) if self.index is not None else ""
