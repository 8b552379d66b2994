"""The installable tool: a wheel built from the checkout works from an empty folder."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from .conftest import ROOT

Q = "When did North Korea and North Vietnam establish formal diplomatic relations?"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # built from a copy: an in-place build would leave build/ and *.egg-info in the checkout
    src = out / "src"
    skip = (".venv", ".citeqa", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*skip))
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip, "-w", str(out), str(src)], check=True, capture_output=True, timeout=300, cwd=out)
    (built,) = out.glob("citeqa-*.whl")
    return built


def test_the_wheel_holds_the_reader_the_web_page_and_the_default_corpus(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in [
        "reader/model/model.safetensors", "reader/model/reader.json", "reader/model/config.json",
        "reader/model-small/model.safetensors", "reader/model-small/reader.json",
        "reader/model-small/config.json", "reader/model-small/README.md",
        "reader/model/int8-smoothing.safetensors", "reader/model-small/int8-smoothing.safetensors",
        "service/static/index.html", "service/static/app.js", "service/static/style.css",
        "corpus/docs/002_4aa47291d7cb64dc.txt", "eval/squad_split.json", "service/cli.py",
    ]:  # fmt: skip
        assert needed in names, needed
    assert not any(n.startswith(("tests/", ".citeqa/")) for n in names)


def test_the_installed_tool_answers_from_an_empty_folder(wheel, tmp_path):
    """Installed (without dependencies: they are this environment's) into its own folder and run
    from an empty one: it indexes the packaged corpus there and answers."""
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITEQA_")}  # the defaults, as installed
    env.update(PYTHONPATH=str(site), HF_HUB_OFFLINE="1")
    run = [sys.executable, "-c", "import sys; from service.cli import main; sys.exit(main())"]
    for args in (["index", "--quiet"], ["ask", Q, "--json"]):
        r = subprocess.run([*run, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["answers"][0]["text"] == "January 31, 1950"
    assert (work / ".citeqa" / "index").is_dir()  # the index lives where it is run
    probe = (
        "import reader.qa_model as q, service.api as a; from fastapi.testclient import TestClient;"
        "print(q.MODEL_DIR); print(TestClient(a.create_app(pipeline=object())).get('/').status_code)"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    model_dir, page = r.stdout.split()
    assert model_dir.startswith(str(site)) and page == "200"  # the packaged copies, not the checkout's
