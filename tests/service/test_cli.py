import json
import subprocess
import sys

import pytest

from service.cli import format_answers, main

from ..conftest import DEFAULT_CORPUS, ROOT
from ..corpus.samples import encrypted_pdf, otters_pdf, scanned_pdf

Q = "When did North Korea and North Vietnam establish formal diplomatic relations?"


def test_ask_json_prints_the_same_body_as_the_api(client, index_dir, capsys):
    assert main(["ask", Q, "--json", "--index-dir", str(index_dir)]) == 0
    cli_body = json.loads(capsys.readouterr().out)
    api_body = client.post("/ask", json={"question": Q}).json()
    assert cli_body == api_body
    assert cli_body["agreement"] in ("single", "agree", "conflict")


def test_ask_human_output_marks_the_answer(built_index, capsys):
    assert main(["ask", Q, "--index-dir", str(built_index)]) == 0
    out = capsys.readouterr().out
    assert "**January 31, 1950**" in out
    assert "002_4aa47291d7cb64dc.txt:" in out
    assert main(["ask", "What is the capital of Peru?", "--index-dir", str(built_index)]) == 0
    assert "No answer found" in capsys.readouterr().out


def test_reader_dir_chooses_the_trained_reader_folder(built_index, capsys, tmp_path):
    from reader import shipped_reader

    assert main(["ask", Q, "--json", "--index-dir", str(built_index)]) == 0
    shipped = json.loads(capsys.readouterr().out)
    copy = tmp_path / "reader"
    copy.mkdir()
    for f in shipped_reader("auto").iterdir():  # the folder auto reads with on this CPU, whole
        (copy / f.name).write_bytes(f.read_bytes())
    assert main(["ask", Q, "--json", "--index-dir", str(built_index), "--reader-dir", str(copy)]) == 0
    assert json.loads(capsys.readouterr().out)["answers"] == shipped["answers"]
    meta = json.loads((copy / "reader.json").read_text())
    (copy / "reader.json").write_text(json.dumps({**meta, "threshold": 1.0}))
    assert main(["ask", Q, "--json", "--index-dir", str(built_index), "--reader-dir", str(copy)]) == 0
    assert json.loads(capsys.readouterr().out)["answers"] == []  # the folder's own threshold is used


@pytest.mark.parametrize("share", ["0.5", 0, 1.5, True])
def test_a_reader_folder_with_a_bad_conflict_share_exits_2_with_a_message(share, index_dir, capsys, tmp_path):
    from reader import shipped_reader

    copy = tmp_path / "reader"
    copy.mkdir()
    for f in shipped_reader("auto").iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    meta = json.loads((copy / "reader.json").read_text())
    (copy / "reader.json").write_text(json.dumps({**meta, "conflict_share": share}))
    assert main(["ask", "ok?", "--index-dir", str(index_dir), "--reader-dir", str(copy)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("citeqa: error:") and "conflict_share must be a number in (0, 1]" in err
    assert err.count("\n") == 1


def test_disagreeing_sources_are_printed_side_by_side(scripted_pipeline):
    out = format_answers(scripted_pipeline.ask("When was Harlow Mill built?"))
    lines = out.splitlines()
    assert lines[0] == "Sources disagree:"
    assert lines[1].startswith("1. 1850    (score 0.96, 2 documents)")
    assert "cited from mill_register.txt:" in out and "also in mill_history.txt:" in out
    assert "as “3 May 1850”" in out  # the other wording, where the citation words it differently
    assert any(line.startswith("2. 1862    (score 0.80)") for line in lines)
    assert "cited from mill_blog.txt:" in out
    assert "was built in **1850** by" in out and "dates from **1862**, when" in out  # both passages


def test_agreeing_sources_are_one_answer_with_both_citations(scripted_pipeline):
    out = format_answers(scripted_pipeline.ask("Who built Harlow Mill?"))
    assert "Sources disagree" not in out
    assert out.startswith("1. John Carter    (score 0.97, 2 documents)")
    assert "also in mill_history.txt:" in out and "2." not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", "  "], "empty"),
        (["ask", "x" * 2001], "2000"),
        (["ask", "ok?", "--top-k", "0"], "top_k"),
        (["ask", "caf\udce9?"], "lone surrogate"),  # a command line that is not UTF-8 ("caf\xe9?")
        (["ask", "ok?", "--reader", "nope"], "unknown reader"),
        (
            ["ask", "ok?", "--reader-dir", "no-such-folder"],
            "has no model.safetensors or reader.json or config.json",
        ),
        (["ask", "ok?", "--reader", "baseline", "--reader-dir", "x"], "is for the trained reader"),
    ],
)
def test_bad_cli_input_exits_2_with_a_message(args, message, index_dir, capsys):
    assert main([*args, "--index-dir", str(index_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("citeqa: error:") and message in err


def test_a_bad_setting_from_the_environment_exits_2_with_a_message(index_dir, capsys, monkeypatch):
    monkeypatch.setenv("CITEQA_INT8_ENGINE", "mkl")
    assert main(["ask", "ok?", "--index-dir", str(index_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("citeqa: error: bad setting: int8_engine") and "'fbgemm'" in err and "\n" not in err


def test_missing_empty_corpus_and_missing_index(tmp_path, capsys):
    assert main(["index", "--corpus", str(tmp_path / "nope"), "--index-dir", str(tmp_path / "i")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["index", "--corpus", str(tmp_path / "empty"), "--index-dir", str(tmp_path / "i")]) == 2
    assert "no usable documents" in capsys.readouterr().err
    assert main(["ask", "who?", "--index-dir", str(tmp_path / "none")]) == 2
    assert "citeqa index" in capsys.readouterr().err
    # list and remove build nothing at a mistyped --index-dir
    for command in (["list"], ["remove", "a.txt"]):
        assert main([*command, "--index-dir", str(tmp_path / "typo")]) == 2
        assert "no index at" in capsys.readouterr().err and not (tmp_path / "typo").exists()
    # serve loads before the server starts: one line and exit 2, not a traceback from its start-up
    assert main(["serve", "--index-dir", str(tmp_path / "none"), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("citeqa: error: no index at") and err.count("\n") == 1


def test_index_if_stale_rebuilds_only_when_needed(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Hanoi\n\nHanoi is the capital of Vietnam.")
    args = ["index", "--quiet", "--corpus", str(docs), "--index-dir", str(tmp_path / "i")]
    assert main([*args, "--if-stale"]) == 0
    assert "indexed 1 documents" in capsys.readouterr().out
    assert main([*args, "--if-stale"]) == 0
    assert "up to date" in capsys.readouterr().out
    (docs / "b.txt").write_text("Pyongyang is the capital of North Korea.")
    assert main(["ask", "capital?", "--corpus", str(docs), "--index-dir", str(tmp_path / "i")]) == 2
    assert "stale" in capsys.readouterr().err
    assert main([*args, "--if-stale"]) == 0
    assert "indexed 2 documents" in capsys.readouterr().out


def test_usage_errors_exit_2():
    r = subprocess.run([sys.executable, "-m", "service", "ask"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "usage" in r.stderr


def test_help_and_light_imports_do_not_load_torch():
    code = (
        "import sys, contextlib, io\n"
        "import corpus, reader.base\n"
        "from service.cli import build_parser\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: build_parser().parse_args(['--help'])\n"
        "    except SystemExit: pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'faiss' not in sys.modules, 'faiss imported'\n"
        "for lib in ('pypdfium2', 'docx', 'pptx', 'trafilatura'):\n"
        "    assert lib not in sys.modules, lib + ' imported'\n"
        "from corpus.analysis import Analyzer\n"
        "Analyzer()  # BM25's words: bm25s's stop words, without bm25s's scipy\n"
        "assert 'scipy' not in sys.modules and 'bm25s' not in sys.modules, 'scipy imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_default_corpus_is_the_shipped_one():
    from service.settings import Settings

    assert Settings().corpus_dir == DEFAULT_CORPUS


def test_add_a_folder_of_pdfs_skips_bad_files_and_ask_prints_the_page(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "hanoi.md").write_text("# Hanoi\n\nHanoi is the capital of Vietnam.")
    folder = tmp_path / "papers"
    (folder / "animals").mkdir(parents=True)
    (folder / "animals" / "otters.pdf").write_bytes(otters_pdf())
    (folder / "scan.pdf").write_bytes(scanned_pdf())
    (folder / "locked.pdf").write_bytes(encrypted_pdf())
    (folder / "fake.pdf").write_text("not a pdf")
    where = ["--corpus", str(corpus), "--index-dir", str(tmp_path / "i")]
    r = subprocess.run(
        [sys.executable, "-m", "service", "add", str(folder), "--quiet", *where],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "added animals/otters.pdf (1 passages)" in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 4, r.stderr
    assert lines[0].startswith("citeqa: WARNING: skipping fake.pdf: the content is text")
    assert lines[1].startswith("citeqa: WARNING: skipping locked.pdf: the PDF is encrypted")
    assert (
        lines[2] == "citeqa: WARNING: skipping scan.pdf: the PDF has no text layer "
        "(scanned or image-only pages); it needs OCR"
    )
    assert (
        lines[3]
        == f"citeqa: WARNING: read 1 of 4 documents in {folder}; skipped 3 that cannot be used (see above)"
    )

    # a single bad file fails the command as a whole
    assert main(["add", str(folder / "scan.pdf"), "--quiet", *where]) == 2
    err = capsys.readouterr().err
    assert err.startswith("citeqa: error: ") and "OCR" in err and err.count("\n") == 1

    assert main(["ask", "What do sea otters use to crack open shellfish?", *where]) == 0
    out = capsys.readouterr().out
    assert "cited from animals/otters.pdf:" in out and ", p. 2 — Sea otters" in out


def test_an_os_error_is_one_line_and_exit_2(monkeypatch, capsys):
    """A read-only index folder, an unreadable file, a full disk: no traceback."""
    import service.cli as cli

    def read_only(args):
        raise PermissionError(13, "Permission denied", "/srv/index/LOCK")

    monkeypatch.setattr(cli, "cmd_remove", read_only)
    assert main(["remove", "a.txt"]) == 2
    assert capsys.readouterr().err == "citeqa: error: Permission denied: /srv/index/LOCK\n"
