"""openatc: an open, plugin-based offline model compiler with an ATC-compatible command line.

>>> import openatc
>>> om = openatc.build(model="model.onnx", framework=5, output="out/model", soc_version="cpu",
...                    input_shape="input_ids:1,64")
>>> openatc.Session(om).run({"input_ids": ids})
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openatc.errors import OpenATCError
from openatc.hookspecs import hookimpl
from openatc.options import BuildOptions
from openatc.types import (
    AippFormat,
    Backend,
    BackendCapabilities,
    CompileContext,
    Executor,
    Frontend,
    LoadContext,
    PassContext,
    PassSpec,
    Quantizer,
    TensorSpec,
)

if TYPE_CHECKING:
    from openatc.aipp.dynamic import AippImageParams, AippParams
    from openatc.manager import OpenATCPluginManager
    from openatc.runtime import Session

logging.getLogger("openatc").addHandler(logging.NullHandler())  # a library logs; applications configure

try:
    __version__ = version("openatc")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "AippFormat",
    "AippImageParams",
    "AippParams",
    "Backend",
    "BackendCapabilities",
    "BuildOptions",
    "CompileContext",
    "Executor",
    "Frontend",
    "LoadContext",
    "OpenATCError",
    "PassContext",
    "PassSpec",
    "Quantizer",
    "Session",
    "TensorSpec",
    "__version__",
    "build",
    "get_plugin_manager",
    "hookimpl",
]


def build(*, plugin_manager: OpenATCPluginManager | None = None, **flags: Any) -> Path:
    """Builds an .om from ATC flags given as keyword arguments; returns the .om path.

    Flags take the same values as on the command line (``framework=5``,
    ``input_shape="x:1,3,224,224"``); ``mode`` must be 0. Raises :class:`OpenATCError`.
    ``accuracy_metric`` (Python only): for INT8 builds, a callable scoring the held-out outputs,
    ``fn(fp32_outputs, int8_outputs) -> float`` (lists of ``{output name: array}``, one per
    sample; higher is better), compared with the config's ``accuracy_target``.
    """
    import dataclasses

    from openatc.pipeline import build_om

    metric = flags.pop("accuracy_metric", None)
    options = BuildOptions.from_flags(flags)
    if metric is not None:
        if not callable(metric):
            raise OpenATCError("E10001", "accuracy_metric must be a callable (fp32_outputs, int8_outputs) -> float")
        options = dataclasses.replace(options, accuracy_metric=metric)
    if options.mode != 0:
        raise OpenATCError("E10001", f"openatc.build() builds an .om (mode 0), not --mode={options.mode}")
    return build_om(options, plugin_manager).path


def get_plugin_manager(*, load_entrypoints: bool | None = None) -> OpenATCPluginManager:
    """A fresh plugin manager (built-ins, then the ``openatc`` entry points)."""
    from openatc.manager import get_plugin_manager as factory

    return factory(load_entrypoints=load_entrypoints)


def __getattr__(name: str) -> Any:
    if name == "Session":  # imported lazily: keeps `import openatc` light
        from openatc.runtime import Session

        return Session
    if name in ("AippParams", "AippImageParams"):
        from openatc.aipp import dynamic

        return getattr(dynamic, name)
    raise AttributeError(f"module 'openatc' has no attribute {name!r}")
