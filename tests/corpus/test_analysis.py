"""The words BM25 indexes: bm25s's stop words (read without importing bm25s and scipy: the
light-imports test in tests/service/test_cli.py checks that)."""

from corpus.analysis import Analyzer, _stopwords


def test_stop_words_are_bm25s_english_list():
    from bm25s.stopwords import STOPWORDS_EN

    assert _stopwords() == frozenset(STOPWORDS_EN) and {"the", "and", "of"} <= _stopwords()
    assert Analyzer()._stop == _stopwords()
