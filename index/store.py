"""Durable, atomic storage of a collection's states.

Layout of the index folder::

    CURRENT                 the committed version number, e.g. "7"
    LOCK                    writers hold an exclusive flock on it
    versions/00000007/      manifest.json, documents.json, passages.jsonl, dense.faiss, bm25.npz
    blobs/ab/abcdef….txt    document texts, named by their SHA-256, written once

A commit writes the new texts and a complete new version folder beside the old ones, flushes
them to disk, renames the folder into place, and only then replaces ``CURRENT`` by renaming a
flushed temporary file over it. A crash at any moment therefore leaves ``CURRENT`` naming a
complete version: the old one or the new one, never a mix. Leftovers of an interrupted commit
are removed by the next writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from corpus import Document, Passage
from index.bm25 import BM25Index
from index.dense import FaissIndex
from index.embedder import Embedder
from index.index import REBUILD_HINT, Entry, Index, IndexError_, text_sha256

KEEP_VERSIONS = 2  # the current one and the one before, for readers still loading it
_LEGACY = ("manifest.json", "passages.jsonl", "dense.faiss", "bm25")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a flushed temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Store:
    """The committed states of one collection in ``folder``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @property
    def versions_dir(self) -> Path:
        return self.folder / "versions"

    @property
    def blobs_dir(self) -> Path:
        return self.folder / "blobs"

    def _blob(self, sha: str) -> Path:
        return self.blobs_dir / sha[:2] / f"{sha}.txt"

    def _version_dir(self, version: int) -> Path:
        return self.versions_dir / f"{version:08d}"

    # -- reading -------------------------------------------------------------------------

    def current(self) -> int | None:
        """The committed version, or None when nothing was ever committed."""
        try:
            raw = (self.folder / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IndexError_(f"cannot read {self.folder / 'CURRENT'} ({exc})") from None
        if not raw.isdigit():
            raise IndexError_(f"{self.folder / 'CURRENT'} is damaged ({raw[:40]!r}): {REBUILD_HINT}")
        return int(raw)

    def token(self) -> tuple[int, int] | None:
        """Changes whenever a commit lands (cheap: one stat)."""
        try:
            st = os.stat(self.folder / "CURRENT")
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def load(self, embedder: Embedder) -> Index:
        """Load the committed state. Raises ``IndexError_`` when there is none or it is unusable."""
        for _attempt in range(3):
            version = self.current()
            if version is None:
                if (self.folder / "manifest.json").exists():
                    raise IndexError_(
                        f"the index at {self.folder} was written by an older citeqa: {REBUILD_HINT}"
                    )
                raise IndexError_(f"no index at {self.folder}: {REBUILD_HINT.replace('rebuild', 'build')}")
            folder = self._version_dir(version)
            if folder.exists():
                return self._load_version(folder, embedder)
            # a writer in another process committed and cleaned up meanwhile: read CURRENT again
        raise IndexError_(f"index at {self.folder}: version {version} is missing: {REBUILD_HINT}")

    def _load_version(self, folder: Path, embedder: Embedder) -> Index:
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            table = json.loads((folder / "documents.json").read_text(encoding="utf-8"))
            docs: dict[str, tuple[Document, str, str]] = {}
            for row in table["documents"]:
                doc = self._document(row)
                docs[doc.doc_id] = (doc, row["origin"], row["sha256"])
            passages: dict[int, Passage] = {}
            keys_of: dict[str, list[int]] = {d: [] for d in docs}
            with open(folder / "passages.jsonl", encoding="utf-8") as fh:
                for line in fh:
                    r = json.loads(line)
                    doc = docs[r["doc_id"]][0]
                    sentences = tuple((int(s), int(e)) for s, e in r["sentences"])
                    passages[int(r["key"])] = Passage(
                        r["passage_id"], r["doc_id"], r["start"], r["end"], doc.text[r["start"] : r["end"]],
                        sentences, r.get("page"),
                    )  # fmt: skip
                    keys_of[r["doc_id"]].append(int(r["key"]))
            dense = FaissIndex.load(folder / "dense.faiss")
            bm25 = BM25Index.load(folder / "bm25.npz")
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise IndexError_(f"damaged index at {folder} ({exc}): {REBUILD_HINT}") from None
        if dense.ntotal != len(passages) or bm25.size != len(passages):
            raise IndexError_(f"index at {folder} is inconsistent (passage counts differ): {REBUILD_HINT}")
        entries = {d: Entry(doc, origin, tuple(keys_of[d]), sha) for d, (doc, origin, sha) in docs.items()}
        return Index(entries, passages, dense, bm25, embedder, manifest, table.get("corpus_seen", {}))

    def _document(self, row: dict[str, Any]) -> Document:
        """The document a row of ``documents.json`` names, its text read from its blob."""
        # bytes, not read_text(): text mode would turn "\r\n" and "\r" into "\n", and the
        # text would no longer be the document's (nor match its checksum)
        text = self._blob(row["sha256"]).read_bytes().decode("utf-8")
        if text_sha256(text) != row["sha256"]:
            raise ValueError(f"text of {row['doc_id']!r} does not match its checksum")
        # "pages" is absent in versions written before documents had pages
        pages = tuple((int(s), int(e)) for s, e in row.get("pages", ()))
        # "metadata" is absent in versions written before documents had metadata
        metadata = row.get("metadata", {})
        return Document(row["doc_id"], row["title"], text, row.get("source", ""), pages, metadata)

    def salvage(self) -> tuple[dict[str, Entry], dict[str, str], list[str]] | None:
        """What a committed state that does not load (``load`` raised) still holds, for a
        rebuild that keeps it: its documents whose stored texts are intact, as entries without
        passages; the corpus folder's last sync (``corpus_seen``); the ids of documents whose
        text is lost. The newest version whose document table reads; None when none does.
        """
        try:
            current = self.current()
        except IndexError_:  # CURRENT unreadable: the newest version folder
            current = None
        folders = self.versions_dir.iterdir() if self.versions_dir.is_dir() else iter(())
        found = [int(p.name) for p in folders if p.name.isdigit()]
        # the committed version first, then the others, newest first
        for version in sorted(found, key=lambda v: (v != current, -v)):
            try:
                path = self._version_dir(version) / "documents.json"
                table = json.loads(path.read_text(encoding="utf-8"))
                rows, seen = table["documents"], dict(table.get("corpus_seen", {}))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
            entries: dict[str, Entry] = {}
            lost: list[str] = []
            for row in rows:
                try:
                    doc = self._document(row)
                    entries[doc.doc_id] = Entry(doc, row["origin"], (), row["sha256"])
                except (OSError, ValueError, KeyError, TypeError):
                    lost.append(str(row.get("doc_id", "?")) if isinstance(row, dict) else "?")
            return entries, seen, lost
        return None

    # -- writing -------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the collection's write lock (across processes)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "LOCK", "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def commit(self, index: Index) -> Index:
        """Make ``index`` the committed state (hold ``locked()`` around read-modify-commit).

        Returns the same state with its manifest's ``version`` set to the new number.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        self.versions_dir.mkdir(exist_ok=True)
        previous = self.current() or 0
        existing = [int(p.name) for p in self.versions_dir.iterdir() if p.name.isdigit()]
        version = max([previous, *existing]) + 1
        index.manifest["version"] = version
        for entry in index.entries.values():
            blob = self._blob(entry.sha256)
            if not blob.exists():
                blob.parent.mkdir(parents=True, exist_ok=True)
                _write_durably(blob, entry.document.text.encode("utf-8"))
        tmp = self.versions_dir / f".tmp-{version:08d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            self._write_version(index, tmp)
            final = self._version_dir(version)
            os.replace(tmp, final)
            _fsync_dir(self.versions_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _write_durably(self.folder / "CURRENT", f"{version}\n".encode())
        self.collect_garbage()
        return index

    def _write_version(self, index: Index, folder: Path) -> None:
        index.dense.save(folder / "dense.faiss")
        index.bm25.save(folder / "bm25.npz")
        with open(folder / "passages.jsonl", "w", encoding="utf-8") as fh:
            for key, p in index.by_key.items():
                row: dict[str, Any] = {"key": key, **asdict(p)}
                del row["text"]  # it is document.text[start:end], restored on load
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        table = {
            "documents": [
                {
                    "doc_id": e.doc_id,
                    "title": e.document.title,
                    "source": e.document.source,
                    "origin": e.origin,
                    "sha256": e.sha256,
                    **({"pages": [list(span) for span in e.document.pages]} if e.document.pages else {}),
                    "metadata": e.document.metadata,
                }
                for e in sorted(index.entries.values(), key=lambda e: e.doc_id)
            ],
            "corpus_seen": index.corpus_seen,
        }
        (folder / "documents.json").write_text(
            json.dumps(table, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
        (folder / "manifest.json").write_text(json.dumps(index.manifest, indent=2) + "\n", encoding="utf-8")
        for file in folder.iterdir():
            _fsync_file(file)
        _fsync_dir(folder)

    def collect_garbage(self) -> None:
        """Remove old versions, leftovers of interrupted commits and unreferenced texts."""
        current = self.current()
        if current is None:
            return
        versions = sorted(int(p.name) for p in self.versions_dir.iterdir() if p.name.isdigit())
        keep = {v for v in versions if v <= current}
        keep = set(sorted(keep)[-KEEP_VERSIONS:])
        for p in self.versions_dir.iterdir():
            if not (p.name.isdigit() and int(p.name) in keep):
                shutil.rmtree(p, ignore_errors=True)
        referenced: set[str] = set()
        for v in keep:
            with contextlib.suppress(OSError, ValueError, KeyError):
                table = json.loads((self._version_dir(v) / "documents.json").read_text(encoding="utf-8"))
                referenced.update(row["sha256"] for row in table["documents"])
        if self.blobs_dir.exists():
            for blob in self.blobs_dir.glob("*/*"):
                if blob.name.removesuffix(".txt") not in referenced:
                    blob.unlink(missing_ok=True)
        for name in _LEGACY:  # the single-folder layout of earlier versions
            path = self.folder / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
