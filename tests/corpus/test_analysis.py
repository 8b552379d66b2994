"""The words BM25 indexes: bm25s's stop words, read without importing bm25s (and scipy)."""

import subprocess
import sys

from corpus.analysis import Analyzer, _stopwords

from ..conftest import ROOT


def test_stop_words_are_bm25s_english_list():
    from bm25s.stopwords import STOPWORDS_EN

    assert _stopwords() == frozenset(STOPWORDS_EN) and {"the", "and", "of"} <= _stopwords()


def test_the_analyzer_does_not_load_scipy():
    code = (
        "import sys\n"
        "from corpus.analysis import Analyzer\n"
        "Analyzer()\n"
        "assert 'scipy' not in sys.modules and 'bm25s' not in sys.modules, 'loaded'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert Analyzer()._stop == _stopwords()
