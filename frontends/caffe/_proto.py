"""Caffe's protobuf messages (from our caffe.proto), parsing of prototxt and caffemodel files, V1 upgrade.

The message classes live in a private descriptor pool, so another ``caffe`` package loaded in the
same process (a real Caffe's ``caffe_pb2``) cannot clash with ours.
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from openatc.errors import OpenATCError

from ._caffe_descriptor import FILE_DESCRIPTOR_B64

__all__ = ["caffe_pb", "inference_layers", "parse_caffemodel", "parse_prototxt", "upgrade_v1"]

_MESSAGES = ("NetParameter", "LayerParameter", "V1LayerParameter", "BlobProto", "BlobShape", "NetStateRule")


@functools.cache
def caffe_pb() -> SimpleNamespace:
    """The message classes: ``caffe_pb().NetParameter`` and friends."""
    fdp = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(FILE_DESCRIPTOR_B64))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    classes = {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe.{n}")) for n in _MESSAGES}
    return SimpleNamespace(**classes, pool=pool)


def parse_prototxt(path: Path, *, upgrade: bool = True) -> Any:
    """A NetParameter from a text-format file; syntax errors name the line and column (E21001).

    ``upgrade=False`` keeps V1 ``layers`` as written (for ``--mode=1``).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise OpenATCError(
            "E21001",
            f"'{path}' is not a text file; a Caffe --model is the network definition (.prototxt)",
            hint="Give the .prototxt with --model and the .caffemodel with --weight.",
        ) from None
    net = caffe_pb().NetParameter()
    try:
        text_format.Parse(text, net, allow_unknown_extension=False)
    except text_format.ParseError as exc:
        line, column = exc.GetLine(), exc.GetColumn()
        where = f"line {line}, column {column}" if line else "unknown position"
        detail = str(exc).split(" : ", 1)[-1] if " : " in str(exc) else str(exc)
        raise OpenATCError(
            "E21001",
            f"'{path}' is not a valid Caffe prototxt: syntax error at {where}: {detail}",
            hint="Fix the prototxt at that position (field names follow Caffe's caffe.proto).",
        ) from None
    if not net.layer and not net.layers:
        raise OpenATCError("E21004", f"'{path}' defines no layers", hint="Give the network's deploy prototxt.")
    return upgrade_v1(net) if upgrade else net


def parse_caffemodel(path: Path, *, upgrade: bool = True) -> Any:
    """A NetParameter from a binary caffemodel (E21002 when it is not one); ``upgrade`` as for prototxts."""
    data = path.read_bytes()
    net = caffe_pb().NetParameter()
    try:
        net.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError or RuntimeWarning-like errors
        raise OpenATCError(
            "E21002",
            f"--weight '{path}' is not a Caffe caffemodel (binary NetParameter): {exc}",
            hint="Give the .caffemodel written by Caffe for this prototxt.",
        ) from None
    if not net.layer and not net.layers:
        kind = "text (perhaps a prototxt)" if _is_text(data) else "binary without Caffe layers"
        raise OpenATCError(
            "E21002",
            f"--weight '{path}' holds no Caffe layers: the file is {kind}",
            hint="Give the .caffemodel written by Caffe for this prototxt.",
        )
    return upgrade_v1(net) if upgrade else net


def _is_text(data: bytes) -> bool:
    try:
        head = data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in head)


# V1 enum name -> layer type string of the current format.
_V1_TYPES = {
    "ABSVAL": "AbsVal",
    "ACCURACY": "Accuracy",
    "ARGMAX": "ArgMax",
    "BNLL": "BNLL",
    "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "CONVOLUTION": "Convolution",
    "DATA": "Data",
    "DECONVOLUTION": "Deconvolution",
    "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise",
    "EXP": "Exp",
    "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss",
    "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN",
    "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN",
    "POOLING": "Pooling",
    "POWER": "Power",
    "RELU": "ReLU",
    "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence",
    "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split",
    "SLICE": "Slice",
    "TANH": "TanH",
    "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
}


def upgrade_v1(net: Any) -> Any:
    """Moves V1 ``layers`` into ``layer`` (type enum to type string, same parameters)."""
    if not net.layers:
        return net
    pb = caffe_pb()
    v1_type = pb.V1LayerParameter.DESCRIPTOR.enum_types_by_name["LayerType"]
    layer_fields = pb.LayerParameter.DESCRIPTOR.fields_by_name
    for old in net.layers:
        new = net.layer.add()
        new.name = old.name
        new.type = _V1_TYPES.get(v1_type.values_by_number[old.type].name, "NONE") if old.HasField("type") else ""
        new.bottom.extend(old.bottom)
        new.top.extend(old.top)
        new.include.extend(old.include)
        new.exclude.extend(old.exclude)
        new.blobs.extend(old.blobs)
        for field, value in old.ListFields():
            if field.name.endswith("_param") and field.name in layer_fields:
                getattr(new, field.name).CopyFrom(value)
    del net.layers[:]
    return net


def _rule_met(rule: Any) -> bool:
    """A NetStateRule against the deploy state: phase TEST, level 0, no stages."""
    if rule.HasField("phase") and rule.phase != 1:
        return False
    if rule.HasField("min_level") and rule.min_level > 0:
        return False
    if rule.HasField("max_level") and rule.max_level < 0:
        return False
    return not rule.stage


def inference_layers(net: Any) -> list[Any]:
    """The layers Caffe instantiates for inference (phase TEST), in order."""
    kept = []
    for layer in net.layer:
        if layer.include:
            if not any(_rule_met(r) for r in layer.include):
                continue
        elif layer.exclude and any(_rule_met(r) for r in layer.exclude):
            continue
        if layer.HasField("phase") and layer.phase != 1:
            continue
        kept.append(layer)
    return kept
