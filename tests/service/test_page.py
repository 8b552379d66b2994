"""The web page, end to end in a real headless Chromium driven by Playwright."""

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from ..conftest import ROOT
from ..corpus import samples

Q = "When did North Korea and North Vietnam establish formal diplomatic relations?"
SHOTS = ROOT / ".citeqa" / "screenshots"


def _chromium() -> str | None:
    for candidate in (os.environ.get("CITEQA_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


@pytest.fixture(scope="module")
def page(live_server):
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no Chromium found (install Debian's `chromium`, or set CITEQA_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=browser_path,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.set_default_timeout(30_000)
        yield page
        browser.close()


def _shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=False)
    return path


@contextmanager
def _answering(page, body):
    """Inside the block, every /ask the page sends gets ``body`` as its reply."""
    reply = json.dumps(body)
    page.route("**/ask", lambda route: route.fulfill(status=200, content_type="application/json", body=reply))
    try:
        yield
    finally:
        page.unroute("**/ask")


def test_ask_highlight_and_follow_the_citation(page, live_server):
    page.goto(live_server + "/")
    page.wait_for_function("document.querySelector('#status') !== null")
    assert not page.is_visible("#key-form")  # this server needs no key: the key form stays hidden
    page.fill("#question", Q)
    page.press("#question", "Enter")  # keyboard: Enter asks
    page.wait_for_selector("#answer-text")
    assert page.inner_text("#answer-text") == "January 31, 1950"
    assert page.inner_text("#answer mark") == "January 31, 1950"
    # what the reader left out of the passage (the scraped page's navigation) is dimmed, not the answer
    debris = page.locator("#answer .debris").all_inner_texts()
    assert any("TheInfoList" in d for d in debris) and not any("1950" in d for d in debris)
    assert "North Korea–Vietnam relations" in page.inner_text("#answer")
    assert page.locator("#others li").count() >= 1
    assert _shot(page, "answer.png").stat().st_size > 0

    page.click("#answer a.open-doc")
    page.wait_for_selector("#doc-view:not([hidden]) mark")
    assert page.inner_text("#doc-text mark") == "January 31, 1950"
    assert page.inner_text("#doc-title") == "North Korea–Vietnam relations"
    box = page.locator("#doc-text mark").bounding_box()
    assert box is not None and 0 <= box["y"] <= 800, box  # scrolled into view
    _shot(page, "document.png")

    page.click("#back")
    page.wait_for_selector("#result:not([hidden])")
    assert page.inner_text("#answer-text") == "January 31, 1950"


def test_not_found_state(page, live_server):
    page.goto(live_server + "/")
    page.fill("#question", "What is the capital of Peru?")
    page.click("#ask-button")
    page.wait_for_selector("#not-found")
    assert "Not found in the documents" in page.inner_text("#not-found")
    assert page.locator("#others li").count() == 3  # the passages read (the service default top_k)
    _shot(page, "not-found.png")


def test_error_state_when_the_server_is_unreachable(page, live_server):
    page.goto(live_server + "/")
    page.route("**/ask", lambda route: route.abort())
    try:
        page.fill("#question", Q)
        page.press("#question", "Enter")
        page.wait_for_selector("#status.error")
        assert "Cannot reach" in page.inner_text("#status")
    finally:
        page.unroute("**/ask")


def test_document_text_is_rendered_as_text_never_html(page, live_server):
    evil = "<img src=x onerror=\"document.title='pwned'\"><b>bold</b>"
    s = evil.index("<b>")
    body = {
        "question": "q",
        "answers": [{"text": "<b>bold</b>", "score": 0.9, "doc_id": "d", "start": s, "end": s + 11,
                     "passage_id": "d#0", "citations": []}],
        "passages": [{"passage_id": "d#0", "doc_id": "d", "title": "<i>t</i>", "start": 0, "end": len(evil),
                      "text": evil, "score": 0.1}],
    }  # fmt: skip
    assert evil[s : s + 11] == "<b>bold</b>"
    page.goto(live_server + "/")
    with _answering(page, body):
        page.fill("#question", "anything")
        page.press("#question", "Enter")
        page.wait_for_selector("#answer-text")
        assert page.locator("#result b, #result img, #result i").count() == 0
        assert page.inner_text("#answer mark") == "<b>bold</b>"
        assert page.title() == "citeqa"


def test_offsets_count_characters_even_beyond_the_basic_plane(page, live_server):
    """The API counts code points, as Python does; JavaScript strings count UTF-16 units, two per
    emoji, so slicing there once highlighted "om Baiko" for "Baikonur"."""
    text = "🚀 Launch log 🌍🌍: the rocket was launched from Baikonur in 1961."
    s = text.index("Baikonur")
    body = {
        "question": "q", "agreement": "single",
        "answers": [{"text": "Baikonur", "score": 0.9, "doc_id": "r.txt", "start": s, "end": s + 8,
                     "passage_id": "r.txt#0", "citations": [], "documents": 1}],
        "passages": [{"passage_id": "r.txt#0", "doc_id": "r.txt", "title": "Rocket", "start": 0,
                      "end": len(text), "text": text, "score": 0.1, "sentences": [[0, len(text)]]}],
    }  # fmt: skip
    document = json.dumps({"doc_id": "r.txt", "title": "Rocket", "text": text, "source": "", "metadata": {}})
    page.goto(live_server + "/")
    page.route(
        "**/documents/r.txt",
        lambda route: route.fulfill(status=200, content_type="application/json", body=document),
    )
    try:
        with _answering(page, body):
            page.fill("#question", "Where was the rocket launched from?")
            page.press("#question", "Enter")
            page.wait_for_selector("#answer-text")
            assert page.inner_text("#answer mark") == "Baikonur"
            assert page.locator("#answer .debris").count() == 0
            page.click("#answer a.open-doc")
            page.wait_for_selector("#doc-view:not([hidden]) mark")
            assert page.inner_text("#doc-text mark") == "Baikonur"
            assert page.inner_text("#doc-meta").endswith(f"characters {s}–{s + 8} of {len(text)}")
    finally:
        page.unroute("**/documents/r.txt")


def test_disagreeing_sources_get_a_notice_and_both_passages_highlighted(page, live_server, scripted_client):
    body = scripted_client.post("/ask", json={"question": "When was Harlow Mill built?"}).json()
    assert body["agreement"] == "conflict"
    page.goto(live_server + "/")
    with _answering(page, body):
        page.fill("#question", "When was Harlow Mill built?")
        page.press("#question", "Enter")
        page.wait_for_selector("#conflict")
        assert page.is_visible("#conflict") and "Sources disagree" in page.inner_text("#conflict")
        assert page.locator("#answer .answer-text").all_inner_texts() == ["1850", "1862"]
        assert page.locator("#answer mark").all_inner_texts() == ["1850", "1862"]  # each in its passage
        assert "Visiting Harlow Mill" in page.inner_text("#answer")
        assert "stated by 2 documents" in page.inner_text("#answer .meta")
        # the agreeing document's passage is listed with its own wording highlighted
        assert "3 May 1850" in page.locator("#others mark").all_inner_texts()
        _shot(page, "conflict.png")


def test_assets_are_served_by_the_app(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory, pipeline, index_dir):
    """A server of its own (documents get added and removed) that needs an API key."""
    from ..conftest import spawn_server, stop_server

    folder = shutil.copytree(index_dir, tmp_path_factory.mktemp("page") / "index")
    proc, url = spawn_server(folder, CITEQA_API_KEY="page-key")
    yield url
    stop_server(proc)


def test_key_prompt_then_add_ask_and_remove_a_document(page, keyed_server, tmp_path):
    otters = tmp_path / "otters.pdf"  # two pages: the answer is on the second
    otters.write_bytes(samples.otters_pdf())
    page.goto(keyed_server + "/")
    page.click("#docs-panel summary")
    page.wait_for_selector("#key-form:not([hidden])")
    assert "needs an API key" in page.inner_text("#status")
    page.fill("#api-key", "wrong")
    page.click("#key-button")
    page.wait_for_function("document.querySelector('#status').textContent.includes('refused')")
    page.fill("#api-key", "page-key")
    page.click("#key-button")
    page.wait_for_selector("#doc-list li")
    assert page.locator("#doc-list li").count() == 3

    # the file dialog offers every format the server reads (Playwright's set_input_files would not tell)
    from corpus import SUFFIXES

    assert set(page.get_attribute("#upload-file", "accept").split(",")) == set(SUFFIXES)
    page.set_input_files("#upload-file", str(otters))
    page.click("#upload-button")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('Added otters.pdf')")
    assert page.locator("#doc-list li").count() == 4
    _shot(page, "documents.png")

    page.fill("#question", "What do sea otters use to crack open shellfish?")
    page.click("#ask-button")
    page.wait_for_selector("#answer-text")
    assert "rocks" in page.inner_text("#answer-text")
    assert "otters.pdf" in page.inner_text("#answer .meta")
    assert ", p. 2" in page.inner_text("#answer .meta")  # the page the answer is on

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#doc-list button[data-doc='otters.pdf']")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('Removed otters.pdf')")
    assert page.locator("#doc-list li").count() == 3
    page.fill("#question", "What do sea otters use to crack open shellfish?")
    page.click("#ask-button")
    page.wait_for_function("!document.querySelector('#ask-button').disabled")
    assert "otters.pdf" not in page.inner_text("#result")
