"""Fixtures for the precision tests: the models of ``_models`` written once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import _models


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _models.conv_net(tmp_path_factory.mktemp("conv") / "conv_net.onnx")


@pytest.fixture(scope="module")
def overflow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _models.overflow_model(tmp_path_factory.mktemp("overflow") / "overflow.onnx")
