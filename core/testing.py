"""A pytest plugin for authors of openatc plugins (opt-in).

Enable it in a ``conftest.py`` at the root of your tests (or in a test module)::

    pytest_plugins = ["openatc.testing"]

and write tests against a fresh plugin manager, never the process-wide one::

    import openatc
    from openatc.testing import assert_numerically_equal, make_inputs, make_tiny_onnx

    def test_my_backend_runs(plugin_manager, register_plugin, tmp_path):
        register_plugin(my_npu_plugin)
        model = make_tiny_onnx(tmp_path)
        om = openatc.build(model=str(model), framework=5, output=str(tmp_path / "tiny"),
                           soc_version="MyNPU100", plugin_manager=plugin_manager)
        feeds = make_inputs(model)
        with openatc.Session(om, plugin_manager=plugin_manager) as session:
            assert_numerically_equal(session.run(feeds), run_onnx_reference(model, feeds), atol=1e-5)

Fixtures:
    ``plugin_manager``: a fresh :class:`~openatc.manager.OpenATCPluginManager` with the built-in
        plugins only (no entry points), one per test.
    ``register_plugin``: registers a plugin (module or object) on that manager, checks its hook
        implementations, and unregisters it when the test ends.
    ``tiny_onnx``: the path of a model written by :func:`make_tiny_onnx` in the test's ``tmp_path``.

Helpers: :func:`make_tiny_model`, :func:`make_tiny_onnx`, :func:`make_inputs`,
:func:`run_onnx_reference`, :func:`read_manifest` and :func:`assert_numerically_equal`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import onnx
import onnx.helper
import onnx.numpy_helper
import pytest

if TYPE_CHECKING:
    from openatc.manager import OpenATCPluginManager

__all__ = [
    "TINY_OPSET",
    "PluginRegistrar",
    "assert_numerically_equal",
    "make_inputs",
    "make_tiny_model",
    "make_tiny_onnx",
    "plugin_manager",
    "read_manifest",
    "register_plugin",
    "run_onnx_reference",
    "tiny_onnx",
]

#: The opset of the models the factories build (the ONNX frontend's internal opset: no conversion).
TINY_OPSET = 21


class PluginRegistrar(Protocol):
    """The callable the ``register_plugin`` fixture provides."""

    def __call__(self, plugin: object, name: str | None = None, *, check: bool = True) -> str:
        """Registers ``plugin``; returns its name on the manager. See :func:`register_plugin`."""
        ...


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture
def plugin_manager() -> OpenATCPluginManager:
    """A fresh plugin manager with the built-in plugins and no entry points, one per test.

    Installed plugins (the ``openatc`` entry-point group) are left out so that a test sees the
    same plugins on every machine; register yours with the ``register_plugin`` fixture.
    """
    from openatc import get_plugin_manager

    return get_plugin_manager(load_entrypoints=False)


@pytest.fixture
def register_plugin(plugin_manager: OpenATCPluginManager) -> Iterator[PluginRegistrar]:
    """Registers plugins on the test's ``plugin_manager``; unregisters them at teardown.

    The callable takes ``(plugin, name=None, *, check=True)`` and returns the name the plugin is
    registered under (pluggy's canonical name when ``name`` is None). With ``check`` (the
    default) it also runs ``check_pending()``, so a hook implementation whose name matches no
    hook spec (a misspelling) fails at once with ``pluggy.PluginValidationError``; the plugin is
    then unregistered before the error propagates, leaving the manager as it was.
    """
    registered: list[str] = []

    def register(plugin: object, name: str | None = None, *, check: bool = True) -> str:
        plugin_name = plugin_manager.register(plugin, name=name)
        if plugin_name is None:  # pluggy returns None for blocked names
            raise ValueError(f"plugin name {name!r} is blocked on this plugin manager")
        if check:
            try:
                plugin_manager.check_pending()
            except Exception:
                plugin_manager.unregister(name=plugin_name)
                raise
        registered.append(plugin_name)
        return plugin_name

    yield register
    for plugin_name in reversed(registered):
        if plugin_manager.get_plugin(plugin_name) is not None:
            plugin_manager.unregister(name=plugin_name)


@pytest.fixture
def tiny_onnx(tmp_path: Path) -> Path:
    """A small MLP written by :func:`make_tiny_onnx` into the test's ``tmp_path``."""
    return make_tiny_onnx(tmp_path)


# -- model factories ------------------------------------------------------------------------------
def make_tiny_model(
    *,
    in_features: int = 16,
    hidden: int = 32,
    out_features: int = 8,
    batch: int | str = 1,
    seed: int = 0,
    opset: int = TINY_OPSET,
    with_identity: bool = False,
) -> onnx.ModelProto:
    """A two-layer MLP ``y = Relu(x @ W1 + b1) @ W2 + b2`` in float32, built with onnx.helper.

    Input ``x`` is ``[batch, in_features]``, output ``y`` is ``[batch, out_features]``; ``batch``
    may be a string for a symbolic dimension. With the defaults both weight matrices are at least
    1 KiB, so an .om stores them in its weights section and backends receive them as stubs plus
    arrays (see :class:`openatc.LoadContext`). ``with_identity`` adds an Identity node before the
    output (something for identity elimination to remove). Deterministic for a given ``seed``.
    """
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((in_features, hidden)) / np.sqrt(in_features)).astype(np.float32)
    b1 = (rng.standard_normal(hidden) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((hidden, out_features)) / np.sqrt(hidden)).astype(np.float32)
    b2 = (rng.standard_normal(out_features) * 0.1).astype(np.float32)
    last = "y_pre" if with_identity else "y"
    nodes = [
        onnx.helper.make_node("MatMul", ["x", "W1"], ["h_mm"], name="fc1"),
        onnx.helper.make_node("Add", ["h_mm", "B1"], ["h_pre"], name="fc1_bias"),
        onnx.helper.make_node("Relu", ["h_pre"], ["h"], name="act"),
        onnx.helper.make_node("MatMul", ["h", "W2"], ["y_mm"], name="fc2"),
        onnx.helper.make_node("Add", ["y_mm", "B2"], [last], name="fc2_bias"),
    ]
    if with_identity:
        nodes.append(onnx.helper.make_node("Identity", ["y_pre"], ["y"], name="out_identity"))
    graph = onnx.helper.make_graph(
        nodes,
        "tiny_mlp",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [batch, in_features])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [batch, out_features])],
        initializer=[
            onnx.numpy_helper.from_array(w1, "W1"),
            onnx.numpy_helper.from_array(b1, "B1"),
            onnx.numpy_helper.from_array(w2, "W2"),
            onnx.numpy_helper.from_array(b2, "B2"),
        ],
    )
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", opset)], producer_name="openatc.testing"
    )
    # make_model stamps the newest IR version this onnx knows; older runtimes reject that.
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model, full_check=True)
    return model


def make_tiny_onnx(directory: str | os.PathLike[str], name: str = "tiny.onnx", **kwargs: Any) -> Path:
    """Writes :func:`make_tiny_model` (``kwargs`` passed on) to ``directory/name``; returns the path."""
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(make_tiny_model(**kwargs), str(path))
    return path


def _load(model: onnx.ModelProto | str | os.PathLike[str]) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else onnx.load_model(str(model))


def make_inputs(
    model: onnx.ModelProto | str | os.PathLike[str], *, seed: int = 0, dims: Mapping[str, int] | None = None
) -> dict[str, np.ndarray]:
    """Random feeds for every graph input that is not an initializer.

    Floating inputs are standard-normal, integer inputs lie in ``[0, 10)``, booleans are random.
    Symbolic dimensions take their value from ``dims`` (by dimension name), else 1.
    """
    proto = _load(model)
    rng = np.random.default_rng(seed)
    initializers = {init.name for init in proto.graph.initializer}
    feeds: dict[str, np.ndarray] = {}
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        shape = tuple(
            d.dim_value if d.HasField("dim_value") else (dims or {}).get(d.dim_param, 1) for d in tensor_type.shape.dim
        )
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[value.name] = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            feeds[value.name] = rng.integers(0, 10, shape).astype(dtype)
    return feeds


def run_onnx_reference(
    model: onnx.ModelProto | str | os.PathLike[str], feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Runs ``model`` with ``onnx.reference.ReferenceEvaluator``; returns outputs by name.

    The expected values for a backend under test, computed from the ONNX specification alone.
    """
    from onnx.reference import ReferenceEvaluator

    proto = _load(model)
    names = [o.name for o in proto.graph.output]
    results = ReferenceEvaluator(proto).run(names, dict(feeds))
    return dict(zip(names, (np.asarray(r) for r in results), strict=True))


def read_manifest(om_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of an .om as a dict (no backend needed: the file is only parsed)."""
    from openatc.om import OmFile

    om = OmFile(om_path)
    try:
        return om.manifest
    finally:
        om.close()


# -- numeric comparison ---------------------------------------------------------------------------
def assert_numerically_equal(
    actual: np.ndarray | Sequence[Any] | Mapping[str, Any],
    expected: np.ndarray | Sequence[Any] | Mapping[str, Any],
    rtol: float = 1e-5,
    atol: float = 1e-6,
    *,
    name: str = "",
    equal_nan: bool = True,
) -> None:
    """Asserts ``|actual - expected| <= atol + rtol * |expected|`` elementwise, like ``np.isclose``.

    Both sides may be arrays (or array-likes) or mappings of name to array (e.g. the outputs of
    ``Session.run``), which must have the same keys. Shapes must match exactly (no broadcasting).
    On failure the ``AssertionError`` says how many elements differ, the largest absolute and
    relative errors, and the index and both values of the worst element.
    """
    __tracebackhide__ = True
    if isinstance(actual, Mapping) or isinstance(expected, Mapping):
        if not (isinstance(actual, Mapping) and isinstance(expected, Mapping)):
            raise AssertionError(f"{name or 'value'}: cannot compare a mapping with a non-mapping")
        if set(actual) != set(expected):
            raise AssertionError(
                f"{name or 'outputs'}: names differ: actual {sorted(actual)}, expected {sorted(expected)}"
            )
        for key in expected:
            label = f"{name}[{key!r}]" if name else repr(key)
            assert_numerically_equal(actual[key], expected[key], rtol, atol, name=label, equal_nan=equal_nan)
        return
    message = _compare(np.asarray(actual), np.asarray(expected), rtol, atol, equal_nan)
    if message:
        raise AssertionError(f"{name or 'array'}: {message}")


def _compare(a: np.ndarray, e: np.ndarray, rtol: float, atol: float, equal_nan: bool) -> str:
    """The failure message for ``a`` against ``e``, or an empty string when they agree."""
    if a.shape != e.shape:
        return f"shape {a.shape} != expected shape {e.shape} (dtypes {a.dtype}, {e.dtype})"
    if a.size == 0:
        return ""
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or not (
        np.issubdtype(e.dtype, np.number) or e.dtype == np.bool_
    ):
        if np.array_equal(a, e):
            return ""
        bad = np.argwhere(a != e)
        return f"{len(bad)} of {a.size} elements differ; first at index {tuple(int(i) for i in bad[0])}"
    a64 = a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)
    e64 = e.astype(np.complex128 if np.iscomplexobj(e) else np.float64)
    close = np.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if close.all():
        return ""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        abs_err = np.abs(a64 - e64)
        rel_err = abs_err / np.abs(e64)
    # NaN/inf mismatches are the worst kind of error: rank them first.
    abs_rank = np.where(close, -1.0, np.nan_to_num(abs_err, nan=np.inf, posinf=np.inf))
    worst = np.unravel_index(int(np.argmax(abs_rank)), a.shape)
    finite = ~close & np.isfinite(abs_err)
    max_abs = float(abs_err[finite].max()) if finite.any() else float("nan")
    finite_rel = ~close & np.isfinite(rel_err)
    max_rel = float(rel_err[finite_rel].max()) if finite_rel.any() else float("inf")
    index = tuple(int(i) for i in worst)
    nonfinite = int((~close & ~np.isfinite(abs_err)).sum())
    return (
        f"{int((~close).sum())} of {a.size} elements differ beyond atol={atol:g}, rtol={rtol:g}"
        + (f" ({nonfinite} of them NaN/inf mismatches)" if nonfinite else "")
        + "; "
        f"max abs error {max_abs:.6g}, max rel error {max_rel:.6g}; "
        f"worst at index {index}: actual {a[worst].item()!r}, expected {e[worst].item()!r} "
        f"(dtypes {a.dtype}, {e.dtype})"
    )
