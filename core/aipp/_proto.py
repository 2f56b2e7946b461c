"""The ``domi.InsertNewOps`` message of ATC's AIPP files, described in Python.

The field table below is the single source: :func:`file_descriptor` turns it into a protobuf
``FileDescriptorProto`` (no ``protoc`` is needed at build or run time, and the message works with
every protobuf runtime openatc supports), and :func:`proto_text` writes ``insert_op.proto`` beside
this module. Regenerate that file after editing the table with::

    python -m openatc.aipp._proto > core/aipp/insert_op.proto

(``tests/aipp/test_config.py`` fails when the two disagree). Field names, numbers and enum values
follow ATC's ``insert_op.proto`` (../spec section 2.2); the file is parsed with protobuf's
``text_format``.
"""

from __future__ import annotations

import functools
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["FIELDS", "INPUT_FORMATS", "insert_new_ops_class", "proto_text"]

PACKAGE = "domi"

#: ``AippOpParams.InputFormat``: name -> enum number.
INPUT_FORMATS: dict[str, int] = {
    "UNDEFINED": 0,
    "YUV420SP_U8": 1,
    "XRGB8888_U8": 2,
    "RGB888_U8": 3,
    "YUV400_U8": 4,
    "NC1HWC0DI_FP16": 5,
    "NC1HWC0DI_S8": 6,
    "ARGB8888_U8": 7,
    "YUYV_U8": 8,
    "YUV422SP_U8": 9,
    "AYUV444_U8": 10,
    "RAW10": 11,
    "RAW12": 12,
    "RAW16": 13,
    "RAW24": 14,
    "RGB16": 15,
    "RGB20": 16,
    "RGB24": 17,
    "RGB8_IR": 18,
    "RGB16_IR": 19,
    "RGB24_IR": 20,
}
AIPP_MODES: dict[str, int] = {"undefined": 0, "static": 1, "dynamic": 2}

# (name, number, type, repeated); type is a scalar name or "InputFormat"/"AippMode".
FIELDS: tuple[tuple[str, int, str, bool], ...] = (
    ("aipp_mode", 1, "AippMode", False),
    ("related_input_rank", 2, "uint32", False),
    ("input_edge_idx", 3, "uint32", True),
    ("max_src_image_size", 4, "uint32", False),
    ("support_rotation", 5, "bool", False),
    ("related_input_name", 6, "string", False),
    ("mean_chn_0", 10, "int32", False),
    ("mean_chn_1", 11, "int32", False),
    ("mean_chn_2", 12, "int32", False),
    ("min_chn_0", 13, "float", False),
    ("min_chn_1", 14, "float", False),
    ("min_chn_2", 15, "float", False),
    ("var_reci_chn_0", 16, "float", True),
    ("var_reci_chn_1", 17, "float", True),
    ("var_reci_chn_2", 18, "float", True),
    ("mean_chn_3", 19, "int32", False),
    ("min_chn_3", 20, "float", False),
    ("var_reci_chn_3", 21, "float", True),
    *((f"matrix_r{i // 3}c{i % 3}", 30 + i, "int32", True) for i in range(9)),
    *((f"output_bias_{i}", 39 + i, "int32", True) for i in range(3)),
    *((f"input_bias_{i}", 42 + i, "int32", True) for i in range(3)),
    ("raw_rgbir_to_f16_n", 45, "uint32", False),
    ("input_format", 51, "InputFormat", False),
    ("csc_switch", 52, "bool", False),
    ("cpadding_value", 53, "float", False),
    ("rbuv_swap_switch", 54, "bool", False),
    ("ax_swap_switch", 55, "bool", False),
    ("single_line_mode", 56, "bool", False),
    ("src_image_size_w", 57, "int32", False),
    ("src_image_size_h", 58, "int32", False),
    ("crop", 59, "bool", False),
    ("load_start_pos_w", 60, "int32", False),
    ("load_start_pos_h", 61, "int32", False),
    ("crop_size_w", 62, "int32", False),
    ("crop_size_h", 63, "int32", False),
    ("resize", 64, "bool", False),
    ("resize_output_w", 65, "int32", False),
    ("resize_output_h", 66, "int32", False),
    ("padding", 67, "bool", False),
    ("left_padding_size", 68, "int32", False),
    ("right_padding_size", 69, "int32", False),
    ("top_padding_size", 70, "int32", False),
    ("bottom_padding_size", 71, "int32", False),
    ("padding_value", 72, "float", False),
)

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "uint32": _F.TYPE_UINT32,
    "int32": _F.TYPE_INT32,
    "float": _F.TYPE_FLOAT,
    "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING,
}


def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """``insert_op.proto`` as a FileDescriptorProto (proto3, package ``domi``)."""
    fd = descriptor_pb2.FileDescriptorProto(name="openatc/insert_op.proto", package=PACKAGE, syntax="proto3")
    top = fd.message_type.add(name="InsertNewOps")
    top.field.add(
        name="aipp_op", number=1, label=_F.LABEL_REPEATED, type=_F.TYPE_MESSAGE, type_name=f".{PACKAGE}.AippOpParams"
    )
    top.field.add(
        name="multi_shape_op",
        number=2,
        label=_F.LABEL_REPEATED,
        type=_F.TYPE_MESSAGE,
        type_name=f".{PACKAGE}.MultiShapeOpParams",
    )
    aipp = fd.message_type.add(name="AippOpParams")
    for enum_name, values in (("InputFormat", INPUT_FORMATS), ("AippMode", AIPP_MODES)):
        enum = aipp.enum_type.add(name=enum_name)
        for value_name, number in values.items():
            enum.value.add(name=value_name, number=number)
    for name, number, kind, repeated in FIELDS:
        label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
        if kind in _SCALARS:
            aipp.field.add(name=name, number=number, label=label, type=_SCALARS[kind])
        else:
            aipp.field.add(
                name=name, number=number, label=label, type=_F.TYPE_ENUM, type_name=f".{PACKAGE}.AippOpParams.{kind}"
            )
    fd.message_type.add(name="MultiShapeOpParams")  # legacy in ATC; accepted empty and ignored
    return fd


@functools.cache
def insert_new_ops_class() -> Any:
    """The generated message class for ``domi.InsertNewOps`` (in a private descriptor pool)."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_descriptor())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.InsertNewOps"))


def proto_text() -> str:
    """The .proto source equivalent to :func:`file_descriptor` (written to ``insert_op.proto``)."""
    lines = [
        "// Generated by `python -m openatc.aipp._proto`; edit core/aipp/_proto.py, not this file.",
        "// openatc's own description of the AIPP configuration message (ATC's --insert_op_conf).",
        'syntax = "proto3";',
        "",
        f"package {PACKAGE};",
        "",
        "message InsertNewOps {",
        "  repeated AippOpParams aipp_op = 1;",
        "  repeated MultiShapeOpParams multi_shape_op = 2;  // legacy: accepted and ignored",
        "}",
        "",
        "message AippOpParams {",
    ]
    for enum_name, values in (("InputFormat", INPUT_FORMATS), ("AippMode", AIPP_MODES)):
        lines.append(f"  enum {enum_name} {{")
        lines.extend(f"    {value_name} = {number};" for value_name, number in values.items())
        lines.append("  }")
    for name, number, kind, repeated in FIELDS:
        lines.append(f"  {'repeated ' if repeated else ''}{kind} {name} = {number};")
    lines += ["}", "", "message MultiShapeOpParams {}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(proto_text(), end="")
