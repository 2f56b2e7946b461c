"""Regenerates ``_caffe_descriptor.py`` from ``caffe.proto``: ``python -m openatc.frontends.caffe._regen``.

Needs ``grpcio-tools`` (for its bundled ``protoc``) at development time only: the committed module
holds the compiled FileDescriptorProto as base64 text, which the protobuf runtime loads into a
private descriptor pool (see ``_proto.py``), so no generated ``*_pb2`` code and no protoc version
pin ships with openatc.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE / "_caffe_descriptor.py"


def compile_descriptor() -> bytes:
    """The FileDescriptorSet's only file, serialized (deterministic for the same caffe.proto)."""
    from google.protobuf import descriptor_pb2

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "caffe.desc"
        cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{HERE}", f"--descriptor_set_out={out}", "caffe.proto"]
        subprocess.run(cmd, check=True)
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    [file] = fds.file
    return file.SerializeToString(deterministic=True)


def render(data: bytes) -> str:
    text = base64.b64encode(data).decode()
    lines = "\n".join(f'    "{chunk}"' for chunk in textwrap.wrap(text, 100))
    return (
        '"""Generated from caffe.proto by ``python -m openatc.frontends.caffe._regen``; do not edit."""\n\n'
        f"FILE_DESCRIPTOR_B64 = (\n{lines}\n)\n"
    )


def main() -> None:
    TARGET.write_text(render(compile_descriptor()), encoding="utf-8")
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
