"""The Caffe frontend (``--framework=0``): a prototxt (``--model``) and its caffemodel (``--weight``).

No Caffe install is needed: the messages come from our own ``caffe.proto`` (see ``_regen.py``).
The net is converted layer by layer into standard ONNX ops (opset 21); see docs/frontends.md for
the supported layers.
"""

from __future__ import annotations

from collections.abc import Iterator

from openatc.hookspecs import hookimpl
from openatc.types import Frontend

from ._json import caffe_to_json
from ._loader import load_caffe
from .writer import write_caffemodel

__all__ = ["caffe_to_json", "load_caffe", "write_caffemodel"]


@hookimpl
def openatc_frontends() -> Iterator[Frontend]:
    yield Frontend(
        name="caffe",
        framework_ids=(0,),
        suffixes=(".prototxt", ".caffemodel"),
        load=load_caffe,
        description="Caffe prototxt + caffemodel (V1 and current layer formats), no Caffe install needed",
        to_json=caffe_to_json,
    )
