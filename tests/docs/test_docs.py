"""Documentation generated from code stays in sync with it (regenerate with the functions named)."""

from __future__ import annotations

from pathlib import Path

from openatc.errors import errors_markdown
from openatc.flags import flags_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_flags_doc_in_sync() -> None:
    assert (DOCS / "flags.md").read_text() == flags_markdown(), "regenerate docs/flags.md from flags_markdown()"


def test_errors_doc_in_sync() -> None:
    assert (DOCS / "errors.md").read_text() == errors_markdown(), "regenerate docs/errors.md from errors_markdown()"
