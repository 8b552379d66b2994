"""One settings object, read at the edge: CLI flags and ``CITEQA_*`` variables map onto it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from corpus import LoadOptions
from reader.trained import DEFAULT_FOCUS, DEFAULT_SURE

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "docs"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITEQA_", extra="ignore")

    corpus_dir: Path = Field(DEFAULT_CORPUS, description="folder of documents to index")
    index_dir: Path = Field(Path(".citeqa/index"), description="where the built index is saved")
    model_path: Path | None = Field(
        None, description="local sentence-transformers folder (default: bundled MiniLM)"
    )
    reader: str = Field(
        "trained", description="answer extractor: trained (the shipped span reader) or baseline"
    )
    reader_dir: Path | None = Field(
        None,
        description="trained reader: a folder written by `python -m reader.train --out` "
        "(default: the shipped reader/model)",
    )
    reader_threshold: float | None = Field(
        None, ge=0, le=1, description="trained reader: abstain below this probability (default: tuned)"
    )
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        "auto",
        description="model arithmetic: auto (fastest that keeps accuracy on this CPU; without native "
        "bf16 that is the 4-layer reader in smoothed int8, or fp32 without x86 int8 kernels), fp32, "
        "bf16 or int8",
    )
    int8_engine: Literal["auto", "fbgemm", "onednn"] = Field(
        "auto",
        description="whose int8 kernels run int8: auto (oneDNN where AMX is native, else FBGEMM), "
        "fbgemm or onednn (read by the models from CITEQA_INT8_ENGINE)",
    )
    reader_focus: int = Field(
        DEFAULT_FOCUS,
        ge=0,
        le=100_000,
        description="trained reader: per passage, read the sentences that best match the question, "
        "up to this many characters (0: whole passages)",
    )
    reader_sure: float = Field(
        DEFAULT_SURE,
        ge=0,
        le=1,
        description="trained reader: read a document's further passages only where its best-ranked "
        "passage gave no answer at least this probable (0: read every passage)",
    )
    max_words: int = Field(120, ge=16, le=400, description="passage size in words")
    overlap_words: int = Field(30, ge=0, le=200, description="words repeated between passages")
    max_question_chars: int = Field(2000, ge=1)
    api_key: str | None = Field(
        None, description="when set, every endpoint but /health needs 'Authorization: Bearer <key>'"
    )
    max_upload_bytes: int = Field(10_000_000, ge=1, description="largest document accepted (bytes)")
    max_file_bytes: int = Field(
        200_000_000, ge=1, description="largest file read from a folder (bytes); larger ones are skipped"
    )
    max_pages: int = Field(2000, ge=1, description="most pages of a PDF")
    max_text_chars: int = Field(10_000_000, ge=1, description="most characters of text in one document")
    html_text: Literal["main", "visible"] = Field(
        "main", description="HTML: main (main content, boilerplate removed) or visible (all visible text)"
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='origins allowed by CORS, e.g. ["https://example.org"] (default: none)',
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    def load_options(self) -> LoadOptions:
        return LoadOptions(
            max_bytes=self.max_file_bytes, max_pages=self.max_pages, max_chars=self.max_text_chars,
            html=self.html_text,
        )  # fmt: skip
