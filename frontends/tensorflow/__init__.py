"""The TensorFlow frontend (``--framework=3``): frozen GraphDefs (.pb, binary or text) and SavedModels.

Conversion goes through tf2onnx (the TensorFlow project's own exporter, covering several hundred
TensorFlow ops, including the control-flow and Keras patterns we would otherwise re-implement);
see docs/frontends.md for why. TensorFlow and tf2onnx are imported only when a build runs:
install them with ``pip install 'openatc[tensorflow]'``.
"""

from __future__ import annotations

from collections.abc import Iterator

from openatc.hookspecs import hookimpl
from openatc.types import Frontend

from ._json import tensorflow_to_json
from ._loader import load_tensorflow

__all__ = ["load_tensorflow", "tensorflow_to_json"]


@hookimpl
def openatc_frontends() -> Iterator[Frontend]:
    yield Frontend(
        name="tensorflow",
        framework_ids=(3,),
        suffixes=(".pb", ".pbtxt"),
        load=load_tensorflow,
        description="TensorFlow frozen graphs (.pb) and SavedModels (saved_model.pb), converted with tf2onnx",
        to_json=tensorflow_to_json,
    )
