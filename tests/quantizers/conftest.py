"""Fixtures for the INT8 tests: the example encoder, written once per module."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def text_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example encoder (``examples/make_text_encoder.py``), written into a module tmp dir."""
    script = Path(__file__).resolve().parents[2] / "examples" / "make_text_encoder.py"
    spec = importlib.util.spec_from_file_location("make_text_encoder", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_model(tmp_path_factory.mktemp("encoder") / "text_encoder.onnx")
