"""Small documents of every supported format, made in the tests (one committed: an encrypted PDF).

``data/encrypted.pdf`` was made once with pypdf (RC4-128, user password "secret") from
``pdf_bytes([["Secret text about otters."]])``; pypdf is not a dependency.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from bench.documents import pdf_bytes

DATA = Path(__file__).resolve().parent / "data"

OTTER_PAGES = [
    ["Sea otters live along the North Pacific coast.", "They rarely come ashore."],
    ["Sea otters use rocks to crack open shellfish.", "An adult eats a quarter of its weight a day."],
]


def otters_pdf() -> bytes:
    return pdf_bytes(OTTER_PAGES, title="Sea otters")


def scanned_pdf() -> bytes:
    return pdf_bytes([[], []])


def corrupt_pdf() -> bytes:
    return otters_pdf()[:200]


def encrypted_pdf() -> bytes:
    return (DATA / "encrypted.pdf").read_bytes()


def docx_bytes() -> bytes:
    """A DOCX with a title heading, two paragraphs and a 2x2 table."""
    import docx

    d = docx.Document()
    d.add_heading("River otters", level=1)
    d.add_paragraph("River otters live in rivers and lakes.")
    table = d.add_table(rows=2, cols=2)
    for r, row in enumerate([("Species", "Weight"), ("Eurasian otter", "7 to 12 kg")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_paragraph("They eat mostly fish, and sometimes frogs.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def broken_docx() -> bytes:
    """A DOCX whose document.xml is not well-formed XML."""
    good = zipfile.ZipFile(io.BytesIO(docx_bytes()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for member in good.namelist():
            data = good.read(member)
            zf.writestr(member, b"<w:document><broken" if member == "word/document.xml" else data)
    return buf.getvalue()


def pptx_bytes() -> bytes:
    """A PPTX of three slides: a title slide, an empty one, and one with a 2x2 table."""
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Otter survey 2024"
    first.placeholders[1].text_frame.text = "We counted 212 sea otters in Monterey Bay."
    deck.slides.add_slide(deck.slide_layouts[6])  # blank
    third = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    third.shapes.title.text = "Counts"
    table = third.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    for r, row in enumerate([("Site", "Otters"), ("Elkhorn Slough", "98")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    buf = io.BytesIO()
    deck.save(buf)
    return buf.getvalue()


def zip_bomb_docx(unpacked: int = 50_000_000) -> bytes:
    """A DOCX-shaped zip whose document.xml unpacks to ``unpacked`` bytes of spaces."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", b" " * unpacked)
    return buf.getvalue()


BOILERPLATE_HTML = """<html><head><title>Otter facts</title></head><body>
<nav><a href="/">Home</a> | <a href="/about">About us</a> | <a href="/shop">Shop</a></nav>
<header><p>Subscribe to our newsletter for daily animal news!</p></header>
<main><article><h1>Sea otters</h1>
<p>Sea otters use rocks to crack open shellfish. They live along the North Pacific coast and rarely
come ashore.</p>
<p>An adult sea otter eats about a quarter of its body weight every day, mostly sea urchins, crabs
and clams.</p>
</article></main>
<footer><p>Copyright 2024 Animal News Ltd. All rights reserved. Privacy policy.</p></footer>
</body></html>"""
