"""ONNX backend node test suite (1,884 cases) through the whole openatc path.

For every case and backend (``--soc_version`` ``cpu`` = ONNX Runtime CPU EP,
``reference`` = ``onnx.reference.ReferenceEvaluator``) the case's model is
written to disk, compiled with ``openatc.build(..., framework=5)`` into a
``.om`` file, loaded with ``openatc.Session`` and run; its outputs are compared
with the case's expected outputs exactly as onnx's backend test runner does
(``_cases.assert_similar_outputs``).

Cases that the engine alone fails (``xfail_<backend>.txt``, generated with
``measure_engines.py``) are marked ``xfail(strict=False)``, so an XPASS shows
where openatc does better than the bare engine.  Every other failure is a real
openatc failure.

Run::

    cd /work/main && /work/venv/bin/python -m pytest tests/conformance -q -p no:cacheprovider
    # one backend / some ops:  -k "cpu-"  or  -k "reference-test_conv"
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from _cases import BACKENDS, NodeCase, assert_similar_outputs, load_cases, load_xfails

ONNX_FRAMEWORK = 5  # ATC's --framework value for ONNX


def _params() -> list[Any]:
    cases = load_cases()
    params: list[Any] = []
    for backend in BACKENDS:
        xfails = load_xfails(backend)
        for name in sorted(cases):
            marks = []
            if name in xfails:
                marks.append(pytest.mark.xfail(reason=f"engine alone: {xfails[name]}", strict=False))
            params.append(pytest.param(backend, name, marks=marks, id=f"{backend}-{name}"))
    return params


def _outputs_in_graph_order(case: NodeCase, outs: dict[str, Any]) -> list[Any]:
    missing = [n for n in case.output_names if n not in outs]
    if missing:
        raise AssertionError(
            f"openatc.Session.run returned outputs {sorted(outs)}; missing {missing} "
            f"(graph outputs: {case.output_names})"
        )
    return [outs[n] for n in case.output_names]


def _input_shape(case: NodeCase) -> str:
    """--input_shape for tensor inputs with dynamic dims, from the case's data (as a user would give)."""
    inputs, _ = case.data_sets[0]
    feeds = case.feeds(inputs)
    entries = []
    for value in case.model.graph.input:
        if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
            continue
        dims = value.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims) or value.name not in feeds:
            continue
        data = np.asarray(feeds[value.name])
        if data.ndim == len(dims) and data.ndim > 0 and all(n > 0 for n in data.shape):
            entries.append(f"{value.name}:{','.join(str(n) for n in data.shape)}")
    return ";".join(entries)


@pytest.mark.parametrize(("backend", "case_name"), _params())
def test_node(backend: str, case_name: str, tmp_path: Path) -> None:
    import openatc

    case = load_cases()[case_name]
    model_path = tmp_path / "model.onnx"
    onnx.save_model(case.model, str(model_path))

    om = openatc.build(
        model=str(model_path),
        framework=ONNX_FRAMEWORK,
        output=str(tmp_path / "m"),
        soc_version=backend,
        log="null",
        input_shape=_input_shape(case),
    )
    sess = openatc.Session(om)
    for inputs, expected in case.data_sets:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            # copies: the cases are shared by both backends, a runtime must not alter them
            outs = sess.run(case.feeds(copy.deepcopy(inputs)))
        outputs = _outputs_in_graph_order(case, outs)
        assert_similar_outputs(expected, outputs, case.rtol, case.atol)
