"""Documentation generated from code stays in sync with it."""

from __future__ import annotations

from pathlib import Path

from openatc.errors import errors_markdown
from openatc.flags import flags_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_flags_doc_in_sync() -> None:
    assert (DOCS / "flags.md").read_text() == flags_markdown(), (
        'regenerate: python -c \'from openatc.flags import flags_markdown as f; open("docs/flags.md","w").write(f())\''
    )


def test_errors_doc_in_sync() -> None:
    assert (DOCS / "errors.md").read_text() == errors_markdown(), (
        'regenerate: python -c \'from openatc.errors import errors_markdown as f; open("docs/errors.md","w").write(f())\''
    )
