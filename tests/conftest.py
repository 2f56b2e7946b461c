"""Shared fixtures for the whole test suite.

Environment
    ``_isolated_home`` (session, autouse): ``HOME`` and ``XDG_CACHE_HOME`` point into a temporary
    directory for the whole session (ONNX Runtime and friends write caches there); the previous
    values are restored at the end. ``_restore_openatc_logging`` (autouse): the CLI reconfigures
    the ``openatc`` logger (its handler holds the stream that was ``sys.stderr`` at the time, i.e.
    pytest's capture); the logger's handlers, level and propagation are restored after each test.

Models (each fixture writes a fresh file under the test's ``tmp_path`` and returns its Path)
    ``tiny_model``: ``x`` float32 ``[N, 4]`` (symbolic ``N``) -> MatMul ``W`` [4, 128] -> Relu ->
    Add ``B`` [128] -> ``y`` float32 ``[N, 128]``. ``W`` is 2 KiB, so it lands in the .om weights
    section. Needs ``--input_shape="x:<n>,4"`` to build.
    ``tiny_static_model``: the same with ``x`` fixed to ``[2, 4]`` (builds without --input_shape).
    ``two_output_model``: ``x`` float32 ``[2, 4]`` -> MatMul (node ``mm``) -> ``h``; then
    Relu (node ``relu``) -> ``y_relu`` and Sigmoid (node ``sig``) -> ``y_sig``, both ``[2, 128]``.
    The ``make_*_model(path)`` functions behind them are plain helpers (``tiny_model_factory``
    hands out ``make_tiny_model`` for other shapes/names).
    ``text_encoder`` (session scope, shared: do not modify the file): the example encoder of
    ``examples/make_text_encoder.py``, ``input_ids`` int64 [batch, seq] -> float32 [batch, seq, 512].

Building and running
    ``compile_om``: ``compile_om(model, output=None, **flags) -> Path`` builds an .om through the
    Python API (``openatc.build``; framework 5 and soc_version cpu unless given), by default to
    ``tmp_path/"om"/<model stem>.om``.
    ``tiny_om``: ``tiny_static_model`` compiled for ``cpu`` (input ``x`` float32 [2, 4]).
    ``run_cli``: ``run_cli(*argv) -> CliResult``: ``openatc.cli.main(argv)`` in-process, with
    stdout/stderr captured through ``capsys`` (``Path`` arguments are converted to ``str``).
    ``run_cli_subprocess``: the same through a real process, ``sys.executable -m openatc``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

#: Feature size of the tiny models' input ``x`` and width of their outputs.
TINY_IN = 4
TINY_HIDDEN = 128


# -- environment -----------------------------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """HOME and XDG_CACHE_HOME in a session tmp dir; os.environ is restored afterwards."""
    home = tmp_path_factory.mktemp("home")
    cache = home / ".cache"
    cache.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("XDG_CACHE_HOME", str(cache))
        yield home


@pytest.fixture(autouse=True)
def _restore_openatc_logging() -> Iterator[None]:
    """Undoes the CLI's reconfiguration of the ``openatc`` logger after each test."""
    logger = logging.getLogger("openatc")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate


# -- models ----------------------------------------------------------------------------------------
def _weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((TINY_IN, TINY_HIDDEN)).astype(np.float32)
    b = rng.standard_normal((TINY_HIDDEN,)).astype(np.float32)
    return w, b


def make_tiny_model(
    path: Path, *, batch: int | str = "N", input_name: str = "x", output_name: str = "y", opset: int = 17
) -> Path:
    """``x[batch, 4] -> MatMul(W[4,128]) -> Relu -> Add(B[128]) -> y[batch, 128]``, saved to ``path``.

    Node names: ``mm``, ``relu``, ``add``. ``batch`` is a dim_param (str) or a fixed size (int).
    """
    w, b = _weights()
    nodes = [
        helper.make_node("MatMul", [input_name, "W"], ["h"], name="mm"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "B"], [output_name], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, TINY_IN])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, TINY_HIDDEN])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_two_output_model(path: Path, *, batch: int = 2) -> Path:
    """``x[batch, 4] -> MatMul (mm) -> h``; ``Relu(h) -> y_relu`` (relu), ``Sigmoid(h) -> y_sig`` (sig)."""
    w, _ = _weights()
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
        helper.make_node("Relu", ["h"], ["y_relu"], name="relu"),
        helper.make_node("Sigmoid", ["h"], ["y_sig"], name="sig"),
    ]
    graph = helper.make_graph(
        nodes,
        "two_outputs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, TINY_IN])],
        [
            helper.make_tensor_value_info("y_relu", TensorProto.FLOAT, [batch, TINY_HIDDEN]),
            helper.make_tensor_value_info("y_sig", TensorProto.FLOAT, [batch, TINY_HIDDEN]),
        ],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def tiny_model_factory() -> Callable[..., Path]:
    """:func:`make_tiny_model`, for tests that need other names or shapes."""
    return make_tiny_model


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """``tmp_path/tiny.onnx``: x float32 [N, 4] (symbolic N) -> y float32 [N, 128]."""
    return make_tiny_model(tmp_path / "tiny.onnx")


@pytest.fixture
def tiny_static_model(tmp_path: Path) -> Path:
    """``tmp_path/tiny_static.onnx``: x float32 [2, 4] -> y float32 [2, 128]."""
    return make_tiny_model(tmp_path / "tiny_static.onnx", batch=2)


@pytest.fixture
def two_output_model(tmp_path: Path) -> Path:
    """``tmp_path/two_outputs.onnx``: x float32 [2, 4] -> y_relu, y_sig float32 [2, 128]."""
    return make_two_output_model(tmp_path / "two_outputs.onnx")


# -- building --------------------------------------------------------------------------------------
@pytest.fixture
def compile_om(tmp_path: Path) -> Callable[..., Path]:
    """``compile_om(model, output=None, **flags) -> Path`` of the built .om (via ``openatc.build``).

    ``output`` is the ATC --output (no suffix); default ``tmp_path/"om"/<model stem>``. Flags default
    to ``framework=5`` and ``soc_version="cpu"``.
    """
    import openatc

    def _compile(model: Path, output: Path | None = None, **flags: object) -> Path:
        if output is None:
            (tmp_path / "om").mkdir(exist_ok=True)
            output = tmp_path / "om" / model.stem
        flags.setdefault("framework", 5)
        flags.setdefault("soc_version", "cpu")
        return openatc.build(model=str(model), output=str(output), **flags)

    return _compile


@pytest.fixture
def tiny_om(tiny_static_model: Path, compile_om: Callable[..., Path]) -> Path:
    """``tiny_static_model`` compiled for cpu: input x float32 [2, 4], output y float32 [2, 128]."""
    return compile_om(tiny_static_model)


# -- running the CLI -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CliResult:
    """Exit code and captured streams of one ``openatc`` invocation."""

    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        """stdout and stderr together (error reports go to stdout, usage errors to stderr)."""
        return self.out + self.err


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """``run_cli(*argv) -> CliResult``: ``openatc.cli.main(argv)`` in-process, output captured."""
    from openatc.cli import main

    def _run(*argv: str | os.PathLike[str]) -> CliResult:
        capsys.readouterr()  # drop anything printed before
        code = main([os.fspath(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return _run


@pytest.fixture
def run_cli_subprocess() -> Callable[..., CliResult]:
    """``run_cli_subprocess(*argv, cwd=None, timeout=300) -> CliResult``: ``python -m openatc``."""

    def _run(*argv: str | os.PathLike[str], cwd: Path | None = None, timeout: float = 300) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "openatc", *(os.fspath(a) for a in argv)],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return _run


@pytest.fixture(scope="session")
def text_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example encoder (``examples/make_text_encoder.py``), written once per session."""
    script = Path(__file__).resolve().parents[1] / "examples" / "make_text_encoder.py"
    spec = importlib.util.spec_from_file_location("make_text_encoder", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_model(tmp_path_factory.mktemp("encoder") / "text_encoder.onnx")
