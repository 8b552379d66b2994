"""The training data as one file, for training where the data folder is not: a GPU machine that
gets the checkout and little else. ``python -m reader.bundle`` packs exactly the files that
``reader.train`` and ``reader.smooth`` read (gzipped tar: 17 MiB of 61), and both take the
file where they take the folder: ``python -m reader.train --data .citeqa/train-data.tar.gz``.

A bundle is unpacked into a temporary folder for the run, with the standard library's "data"
extraction filter: members that would land outside it, links and device files are refused.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from reader.train import DEFAULT_DATA, EXTRA, ROOT, SQUAD_FILE, UNANSWERABLE

DEFAULT_OUT = ROOT / ".citeqa" / "train-data.tar.gz"
# what the trainer reads (reader.train.load_examples, tune) and the smoothing fit (its SQuAD
# train windows are in the squad-v1.1-train.json of EXTRA)
FILES = (SQUAD_FILE, *(f"qa-extra/{name}" for name, _ in EXTRA), f"qa-extra/{UNANSWERABLE}")


class BundleError(Exception):
    """A bundle that cannot be read; the message says why in one line."""


def pack(data: Path, out: Path) -> tuple[list[str], list[str]]:
    """Write the files of ``FILES`` found under ``data`` to ``out``; (packed, missing)."""
    packed = [f for f in FILES if (data / f).is_file()]
    missing = [f for f in FILES if f not in packed]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for f in packed:
            tar.add(data / f, arcname=f, recursive=False)
    tmp.replace(out)
    return packed, missing


def unpack(bundle: Path, into: Path) -> None:
    """Extract ``bundle`` into ``into``, refusing members that would escape it."""
    try:
        with tarfile.open(bundle, "r:*") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, filter="data")
            else:  # a Python without extraction filters (before 3.11.4): the same checks by hand
                for m in tar.getmembers():
                    if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in Path(m.name).parts:
                        raise tarfile.TarError(f"member {m.name!r} would land outside the folder")
                tar.extractall(into)
    except (tarfile.TarError, OSError) as exc:
        raise BundleError(f"{bundle}: not a readable training-data bundle ({exc})") from None


@contextlib.contextmanager
def data_folder(path: Path) -> Iterator[Path]:
    """``path`` itself where it is a folder (or missing: the callers skip then); a bundle's
    contents, unpacked into a temporary folder for as long as the block runs, where it is a file."""
    if not path.is_file():
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="citeqa-data-") as tmp:
        unpack(path, Path(tmp))
        yield Path(tmp)


def no_data(args: argparse.Namespace, missing: Path) -> int:
    """A command's answer when a file it needs under ``--data`` is ``missing``: where ``--data``
    is the default, which a fresh clone lacks, it skips (exit 0: ``make test`` runs without the
    data); where the user named it, that is an error (exit 2)."""
    if getattr(args, "data_given", args.data) == DEFAULT_DATA:
        print(f"skipping: no training data at {missing} (pass --data DIR)", file=sys.stderr)
        return 0
    given = getattr(args, "data_given", args.data)
    print(f"error: --data {given}: no {missing.relative_to(args.data)} there", file=sys.stderr)
    return 2


def run_on_data(args: argparse.Namespace, run: Callable[[argparse.Namespace], int]) -> int:
    """``run(args)`` with ``args.data`` a folder: as given, or a bundle's contents while it runs.
    A bundle that cannot be read is a one-line error, exit status 2."""
    args.data_given = args.data
    try:
        with data_folder(args.data) as folder:
            args.data = folder
            return run(args)
    except BundleError as exc:
        print(f"error: --data: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reader.bundle", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder holding squad/ and qa-extra/")  # fmt: skip
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT.relative_to(ROOT)}")
    args = ap.parse_args(argv)
    if not (args.data / SQUAD_FILE).is_file():
        return no_data(args, args.data / SQUAD_FILE)
    if args.out.is_dir():
        print(f"error: --out {args.out} is a folder: name the bundle file", file=sys.stderr)
        return 2
    if any(args.out.resolve() == (args.data / f).resolve() for f in FILES):
        print(
            f"error: --out {args.out} is one of the data files it packs: name another file", file=sys.stderr
        )
        return 2
    packed, missing = pack(args.data, args.out)
    for f in missing:
        print(f"note: {args.data / f} not found, left out (training goes on without it)", file=sys.stderr)
    raw = sum((args.data / f).stat().st_size for f in packed) / 2**20
    size = os.path.getsize(args.out) / 2**20
    print(f"wrote {args.out}: {len(packed)} files, {raw:.1f} MiB, {size:.1f} MiB packed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
