"""The ONNX frontend (``--framework=5``)."""

from __future__ import annotations

from collections.abc import Iterator

from openatc.hookspecs import hookimpl
from openatc.types import Frontend

from ._loader import INTERNAL_OPSET, load_onnx, onnx_to_json

__all__ = ["INTERNAL_OPSET", "load_onnx"]


@hookimpl
def openatc_frontends() -> Iterator[Frontend]:
    yield Frontend(
        name="onnx",
        framework_ids=(5,),
        suffixes=(".onnx",),
        load=load_onnx,
        description=f"ONNX models, converted to opset {INTERNAL_OPSET} when older",
        to_json=onnx_to_json,
    )
