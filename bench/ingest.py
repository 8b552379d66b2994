"""Ingestion speed: reading each format into text, then cutting it into passages (``python -m bench.ingest``).

Part of ``make bench``, beside the suite's indexing figures (which add embedding). The documents are
made here from the default corpus's words, so the figures need no data from outside the checkout:

- PDF: the text laid out as pages of 40 lines (``--pdf-pages``), read with pypdfium2: pages/s;
- DOCX: the same text as paragraphs; HTML: as ``<p>`` paragraphs between navigation and a footer,
  read as main content (trafilatura) and as all visible text; Markdown and plain text: MB/s of the
  text that comes out (the UTF-8 size of ``Document.text``).

Each is read ``--repeats`` times and the fastest run counts (the others paid for warming caches).
Chunking (sentence splitting and passages) is timed on the text that came out. Writes
``bench/results/ingest-<date>.{json,md}`` with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ROOT, write_results
from bench.cpu import describe
from bench.documents import pdf_bytes


def _paragraphs(min_chars: int, seed: int = 0) -> list[str]:
    """Paragraphs of 3 to 6 sentences of 8 to 24 words drawn from the default corpus's words,
    until they hold ``min_chars`` characters. Drawn, not the corpus repeated, so that the text is
    like a real document's (no line repeated: the sentence splitter sets some repeated lines aside)."""
    import random

    from corpus import load_corpus

    words = [w for d in load_corpus(ROOT / "corpus" / "docs") for w in d.text.split() if w.isalpha()]
    rng = random.Random(seed)
    out, size = [], 0
    while size < min_chars:
        sentences = []
        for _ in range(rng.randint(3, 6)):
            s = " ".join(rng.choice(words) for _ in range(rng.randint(8, 24)))
            sentences.append(s[0].upper() + s[1:] + ".")
        out.append(" ".join(sentences))
        size += len(out[-1])
    return out


def make_pdf(paragraphs: list[str], pages: int) -> bytes:
    # Helvetica in a minimal PDF is Latin-1: other characters are dropped
    lines = [
        ln for p in paragraphs for ln in textwrap.wrap(p.encode("latin-1", "ignore").decode("latin-1"), 90)
    ]
    per_page = 40
    return pdf_bytes([lines[i * per_page : (i + 1) * per_page] for i in range(pages)])


def make_docx(paragraphs: list[str]) -> bytes:
    import docx

    d = docx.Document()
    d.add_heading("Benchmark document", level=1)
    for p in paragraphs:
        d.add_paragraph(p)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def make_html(paragraphs: list[str]) -> bytes:
    from html import escape

    nav = "<nav><ul>" + "".join(f"<li><a href='/{i}'>Section {i}</a></li>" for i in range(30)) + "</ul></nav>"
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    page = (
        f"<html><head><title>Benchmark page</title></head><body>{nav}<article><h1>Benchmark page</h1>"
        f"{body}</article><footer>Copyright. All rights reserved. Contact us.</footer></body></html>"
    )
    return page.encode("utf-8")


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def measure(name: str, data: bytes, suffix: str, repeats: int, **options: str) -> dict[str, Any]:
    from corpus import ChunkParams, LoadOptions, chunk, parse_document

    opts = LoadOptions(**options)  # type: ignore[arg-type]
    read_s, doc = _best(lambda: parse_document(data, suffix, f"bench{suffix}", options=opts), repeats)
    chunk_s, passages = _best(lambda: chunk(doc, ChunkParams()), repeats)
    text_mb = len(doc.text.encode("utf-8")) / 1e6
    row = {
        "format": name,
        "file_mb": round(len(data) / 1e6, 3),
        "text_mb": round(text_mb, 3),
        "pages": len(doc.pages) or None,
        "read_s": round(read_s, 4),
        "read_mb_per_s": round(text_mb / read_s, 2),
        "pages_per_s": round(len(doc.pages) / read_s, 1) if doc.pages else None,
        "passages": len(passages),
        "chunk_s": round(chunk_s, 4),
        "chunk_mb_per_s": round(text_mb / chunk_s, 2),
    }
    print(json.dumps(row), file=sys.stderr)
    return row


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    out = [
        f"# Ingestion {r['date']}", "",
        f"`{r['command']}` on {m['cpus']} CPUs ({m['model']}; {', '.join(m['instruction_sets'])}), "
        f"Python {m['python']}. Fastest of {r['repeats']} runs; MB are of the extracted text (UTF-8).", "",
        "| format | file MB | text MB | pages | read s | read MB/s | pages/s | passages | chunking MB/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for row in r["formats"]:
        keys = ("format", "file_mb", "text_mb", "pages", "read_s", "read_mb_per_s", "pages_per_s", "passages")
        cells = [row[k] if row[k] is not None else "" for k in (*keys, "chunk_mb_per_s")]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    ap.add_argument("--pdf-pages", type=int, default=200, help="pages of the PDF (default 200)")
    ap.add_argument(
        "--mb", type=float, default=1.0, help="about this many MB of text per document (default 1)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="runs per format; the fastest counts (default 3)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results", help="where results go")
    args = ap.parse_args(argv)
    paragraphs = _paragraphs(int(args.mb * 1e6))
    text = "Benchmark document\n\n" + "\n\n".join(paragraphs) + "\n"
    pdf = make_pdf(_paragraphs(args.pdf_pages * 40 * 90), args.pdf_pages)
    formats = [
        measure("PDF", pdf, ".pdf", args.repeats),
        measure("DOCX", make_docx(paragraphs), ".docx", args.repeats),
        measure("HTML, main content", make_html(paragraphs), ".html", args.repeats, html="main"),
        measure("HTML, visible text", make_html(paragraphs), ".html", args.repeats, html="visible"),
        measure("Markdown", text.encode("utf-8"), ".md", args.repeats),
        measure("plain text", text.encode("utf-8"), ".txt", args.repeats),
    ]
    date = time.strftime("%Y-%m-%d")
    result = {
        "date": date,
        "command": " ".join(["python -m bench.ingest", *(argv if argv is not None else sys.argv[1:])]),
        "machine": describe(),
        "repeats": args.repeats,
        "formats": formats,
    }
    write_results(args.out_dir, f"ingest-{date}", result, table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
