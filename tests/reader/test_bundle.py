"""The training data as one file: packed, read by the trainer as its folder is, and refused when
it is not a bundle or would write outside its folder."""

import io
import tarfile

from reader import bundle, train
from tests.reader.test_train import data, keep_threads  # noqa: F401 (fixtures)


def test_a_bundle_holds_what_training_reads_and_unpacks_to_the_same_bytes(data, tmp_path):  # noqa: F811
    (data / "qa-extra" / "not-read.json").write_text("{}")
    out = tmp_path / "b" / "data.tar.gz"
    packed, missing = bundle.pack(data, out)
    assert packed == [train.SQUAD_FILE, "qa-extra/squad-v1.1-train.json", f"qa-extra/{train.UNANSWERABLE}"]
    assert "qa-extra/covid-qa.json" in missing and len(packed) + len(missing) == len(bundle.FILES)
    with bundle.data_folder(out) as folder:
        assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.json")) == sorted(packed)
        for f in packed:
            assert (folder / f).read_bytes() == (data / f).read_bytes()
    assert not folder.exists()  # unpacked for the run only
    with bundle.data_folder(data) as same:  # a folder is used as it is
        assert same == data


def _first_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "examples ->" in line or line.startswith("training:")]


def test_training_reads_a_bundle_as_it_reads_the_folder(data, tmp_path, capsys, keep_threads):  # noqa: F811
    out = tmp_path / "data.tar.gz"
    assert bundle.main(["--data", str(data), "--out", str(out)]) == 0
    said = capsys.readouterr()
    assert f"wrote {out}: 3 files" in said.out and "covid-qa.json not found" in said.err
    args = ["--out", str(tmp_path / "out"), "--checkpoint", str(tmp_path / "ckpt"), "--batch-size", "2",
            "--max-len", "64", "--stride", "16", "--precision", "fp32", "--threads", "1",
            "--pause-at", "1"]  # fmt: skip
    assert train.main(["--data", str(data), *args]) == 0
    from_folder = _first_lines(capsys.readouterr().out)
    assert train.main(["--data", str(out), *args]) == 0
    from_bundle = capsys.readouterr().out
    assert _first_lines(from_bundle) == from_folder and len(from_folder) == 2
    assert "paused at step 1" in from_bundle


def test_a_bundle_that_writes_outside_its_folder_or_is_no_bundle_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    assert train.main(["--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --data: ") and err.count("\n") == 1
    assert not (tmp_path.parent / "escaped.json").exists()
    junk = tmp_path / "junk.tar.gz"
    junk.write_text("not a tar file")
    assert train.main(["--data", str(junk)]) == 2
    assert "not a readable training-data bundle" in capsys.readouterr().err


def test_bundle_skips_without_data(tmp_path, capsys, monkeypatch):
    out = tmp_path / "data.tar.gz"
    monkeypatch.setattr(bundle, "DEFAULT_DATA", tmp_path / "missing")  # the default, absent on a fresh clone
    assert bundle.main(["--out", str(out)]) == 0
    assert "skipping: no training data" in capsys.readouterr().err and not out.exists()
    # a folder the user names and that is not there is an error
    assert bundle.main(["--data", str(tmp_path / "typo"), "--out", str(out)]) == 2
    assert "error: --data" in capsys.readouterr().err and not out.exists()


def test_bundle_refuses_an_out_that_is_a_folder_or_inside_the_data(data, tmp_path, capsys):  # noqa: F811
    for out, words in ((tmp_path, "is a folder"), (data / train.SQUAD_FILE, "one of the data files")):
        before = out.stat().st_mtime_ns
        assert bundle.main(["--data", str(data), "--out", str(out)]) == 2
        assert words in capsys.readouterr().err and out.stat().st_mtime_ns == before
