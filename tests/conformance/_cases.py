"""ONNX backend *node* test cases, generated in memory, plus onnx's comparison.

The cases are the ones ``onnx.backend.test.runner.Runner`` registers as
``OnnxBackendNodeModelTest``: ``onnx.backend.test.loader.load_node_model_tests()``
imports every module of ``onnx.backend.test.case.node``; each ``export*``
function calls ``expect(...)``, which builds the model proto and records the
input / expected-output arrays in memory (numpy is re-seeded with 0 before each
export, so the data is deterministic).  Nothing is read from disk or downloaded.

``assert_similar_outputs`` is onnx's own comparison
(``Runner.assert_similar_outputs``: output count, recursion into sequences,
shape, dtype, exact equality for strings, ``np.testing.assert_allclose`` with
the case's rtol/atol (1e-3 / 1e-7 for every node case) otherwise, bfloat16
relaxed to two ulps) plus a sequence-length check the runner lacks.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

__all__ = [
    "BACKENDS",
    "NodeCase",
    "assert_similar_outputs",
    "engine_results_path",
    "load_cases",
    "load_engine_results",
    "load_xfails",
    "normalize_value",
    "short_reason",
    "xfail_path",
]

HERE = Path(__file__).resolve().parent

# openatc --soc_version values exercised by the suite (engine alone: see measure_engines.py).
BACKENDS: tuple[str, ...] = ("cpu", "reference")


def normalize_value(value: Any) -> Any:
    """Turn a value recorded by ``expect`` into what a runtime is fed / returns.

    ``TensorProto`` -> ndarray (as the runner's ``_normalize_tensor``), numpy
    scalars -> 0-d arrays (as ``onnxruntime.backend`` does), lists (sequences)
    element-wise, ``None`` (empty optional) unchanged.
    """
    if value is None:
        return None
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, (list, tuple)):
        return [normalize_value(v) for v in value]
    if isinstance(value, np.generic):
        return np.asarray(value)
    return value


@dataclass(frozen=True)
class NodeCase:
    """One backend node test: a single-node (or expanded-function) model."""

    name: str
    model: onnx.ModelProto
    # [(inputs, expected outputs)], inputs in graph-input order, outputs in
    # graph-output order, already normalized (see ``normalize_value``).
    data_sets: tuple[tuple[list[Any], list[Any]], ...]
    rtol: float
    atol: float

    @property
    def input_names(self) -> list[str]:
        inits = {t.name for t in self.model.graph.initializer}
        return [i.name for i in self.model.graph.input if i.name not in inits]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.model.graph.output]

    def feeds(self, inputs: Sequence[Any]) -> dict[str, Any]:
        """Map positional inputs onto graph-input names."""
        names = self.input_names
        if len(names) != len(inputs):
            raise ValueError(f"{self.name}: {len(inputs)} inputs for {len(names)} graph inputs")
        return dict(zip(names, inputs, strict=True))


@functools.cache
def load_cases() -> dict[str, NodeCase]:
    """All backend node test cases, by name (1,884 with onnx 1.23.2)."""
    from onnx.backend.test.loader import load_node_model_tests

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        raw = load_node_model_tests()
    cases: dict[str, NodeCase] = {}
    for tc in raw:
        if tc.model is None or tc.data_sets is None:  # pragma: no cover
            continue
        if tc.name in cases:  # pragma: no cover - onnx forbids duplicates
            raise ValueError(f"duplicate node test case {tc.name!r}")
        data_sets = tuple(
            (
                [normalize_value(x) for x in inputs],
                [normalize_value(y) for y in outputs],
            )
            for inputs, outputs in tc.data_sets
        )
        cases[tc.name] = NodeCase(
            name=tc.name,
            model=tc.model,
            data_sets=data_sets,
            rtol=tc.rtol,
            atol=tc.atol,
        )
    return cases


def _check_sequence_lengths(ref: Any, out: Any, where: str) -> None:
    """Extra structural check: produced sequences have the expected length.

    The runner only iterates over the *produced* sequence, so a runtime that
    returns a too-short (e.g. empty) sequence would pass it.  This check does
    not change any engine-alone result with onnx 1.23.2 / onnxruntime 1.32.
    """
    if isinstance(ref, (list, tuple)) and isinstance(out, (list, tuple)):
        if len(out) != len(ref):
            raise AssertionError(f"{where}: sequence of length {len(out)}, expected {len(ref)}")
        for j, (r, o) in enumerate(zip(ref, out, strict=True)):
            _check_sequence_lengths(r, o, f"{where}[{j}]")


def assert_similar_outputs(
    ref_outputs: Sequence[Any],
    outputs: Sequence[Any],
    rtol: float,
    atol: float,
) -> None:
    """Compare like ``onnx.backend.test.runner.Runner.assert_similar_outputs``.

    The comparison itself is onnx's own (``Runner.assert_similar_outputs``:
    output count, recursion into sequences, shape, dtype, exact equality for
    strings, ``np.testing.assert_allclose(rtol, atol)`` otherwise, bfloat16
    relaxed to two ulps), so results match onnx's backend test runner,
    including its quirks: inside a sequence it recurses element-wise *without*
    wrapping, so a tensor inside a sequence is compared row by row and a 0-d
    tensor inside a sequence cannot be compared at all (``TypeError``; this
    makes ``test_loop16_seq_none`` fail for every runtime).  On top of it,
    sequence lengths must match (see ``_check_sequence_lengths``).
    """
    from onnx.backend.test.runner import Runner

    if len(outputs) == len(ref_outputs):
        for i, (ref, out) in enumerate(zip(ref_outputs, outputs, strict=True)):
            _check_sequence_lengths(ref, out, f"output {i}")
    Runner.assert_similar_outputs(list(ref_outputs), list(outputs), rtol, atol)


def short_reason(exc: BaseException, limit: int = 200) -> str:
    """A one-line, bounded description of an exception (for JSON / xfail files).

    Long messages keep their head and tail (ONNX Runtime puts the source path
    first and the actual cause last).
    """
    text = " ".join(str(exc).split()) or "(no message)"
    text = _ORT_SRC.sub("", text)
    if isinstance(exc, AssertionError):
        # numpy's tolerance report: keep the headline and the mismatch count
        text = _NUMPY_DETAIL.split(text, maxsplit=1)[0].rstrip()
    text = f"{type(exc).__name__}: {text}"
    if len(text) > limit:
        head = (limit - 5) * 3 // 5
        tail = limit - 5 - head
        text = f"{text[:head]} ... {text[-tail:]}"
    return text


_ORT_SRC = re.compile(r"/onnxruntime_src/\S+:\d+ ")
_NUMPY_DETAIL = re.compile(r" (?:Mismatch at ind(?:ex|ices)|First \d+ mismatches are at indices):")


def xfail_path(backend: str) -> Path:
    return HERE / f"xfail_{backend}.txt"


def engine_results_path(backend: str) -> Path:
    return HERE / f"engine_{backend}.json"


def load_xfails(backend: str) -> dict[str, str]:
    """``{case_name: reason}`` from ``xfail_<backend>.txt`` (``name  # reason`` lines)."""
    path = xfail_path(backend)
    if not path.exists():
        return {}
    xfails: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition("#")
        xfails[name.strip()] = reason.strip() or "fails on the engine alone"
    return xfails


def load_engine_results(backend: str) -> dict[str, str]:
    """``{case_name: "pass" | "fail: ..."}`` from ``engine_<backend>.json``."""
    path = engine_results_path(backend)
    if not path.exists():
        return {}
    data: dict[str, str] = json.loads(path.read_text())
    return data
