"""ONNX files over 1 MiB are read without copying their large initializers: each becomes a read-only
view of the memory-mapped file. The views equal what onnx.load reads, the .om equals the one built
from a whole parse, and anything the scan does not expect falls back to the whole parse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import openatc
from openatc.errors import OpenATCError
from openatc.frontends.onnx import _loader, _mapped
from openatc.om import OmFile


def _model(path: Path, *, opset: int = 17) -> Path:
    """Gemm weights of 1.2 MB (float32), a float16 and an int64 initializer, small ones, a bool mask."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((64, 4096)).astype(np.float32)
    b1 = rng.standard_normal(4096).astype(np.float32)
    w2 = rng.standard_normal((4096, 8)).astype(np.float16)
    gather = rng.integers(0, 8, size=400).astype(np.int64)
    mask = rng.integers(0, 2, size=(2000,)).astype(bool)
    small = np.float32(0.5)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Cast", ["r"], ["r16"], to=TensorProto.FLOAT16, name="cast16"),
        helper.make_node("MatMul", ["r16", "w2"], ["m16"], name="fc2"),
        helper.make_node("Cast", ["m16"], ["m"], to=TensorProto.FLOAT, name="cast32"),
        helper.make_node("Mul", ["m", "small"], ["s"], name="scale"),
        helper.make_node("Gather", ["s", "gather"], ["g"], axis=1, name="gather"),
        helper.make_node("Cast", ["mask"], ["mf"], to=TensorProto.FLOAT, name="castmask"),
        helper.make_node("ReduceSum", ["mf"], ["count"], keepdims=0, name="count"),
        helper.make_node("Add", ["g", "count"], ["y"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "mapped",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 400])],
        [
            numpy_helper.from_array(small, "small"),
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(b1, "b1"),
            numpy_helper.from_array(w2, "w2"),
            numpy_helper.from_array(gather, "gather"),
            numpy_helper.from_array(mask, "mask"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path.write_bytes(model.SerializeToString())
    return path


def test_views_equal_what_onnx_reads(tmp_path: Path) -> None:
    path = _model(tmp_path / "m.onnx")
    loaded = _mapped.load_mapped(path, 1024, _loader._HIDE_TYPES)
    assert loaded is not None
    proto, weights = loaded
    expected = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    # the large ones are mapped (in file order), the small ones stay in the parsed model
    assert [w.name for w in weights] == ["w1", "b1", "w2", "gather", "mask"]
    assert [t.name for t in proto.graph.initializer] == ["small"]
    for weight in weights:
        assert not weight.array.flags.writeable and not weight.array.flags.owndata
        np.testing.assert_array_equal(weight.array, expected[weight.name])
        assert weight.array.dtype == expected[weight.name].dtype
        assert onnx.numpy_helper.to_array(weight.to_proto()).tobytes() == expected[weight.name].tobytes()


def test_om_equals_whole_parse_and_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _model(tmp_path / "m.onnx", opset=11)  # the opset converter runs on the stripped model too
    x = np.random.default_rng(1).standard_normal((2, 64)).astype(np.float32)
    mapped = openatc.build(model=str(path), framework=5, output=str(tmp_path / "a"), soc_version="cpu", log="error")
    monkeypatch.setattr(_loader, "load_mapped", lambda *args: None)
    whole = openatc.build(model=str(path), framework=5, output=str(tmp_path / "b"), soc_version="cpu", log="error")
    a, b = OmFile(mapped), OmFile(whole)
    for name in ("weights", "gear0/graph"):
        assert bytes(a.section(name)) == bytes(b.section(name)), name
    a.close()
    b.close()
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with openatc.Session(mapped) as session:
        np.testing.assert_allclose(session.run({"x": x})["y"], reference, rtol=1e-3, atol=1e-2)  # fp16 MatMul


def test_packed_dims_and_unexpected_fields(tmp_path: Path) -> None:
    """Dims may be written packed (proto3 writers); a tensor with a field the scan does not know
    stays in the parsed model."""
    array = np.arange(1024, dtype=np.float32).reshape(32, 32)
    name = _mapped._encode_varint(8 << 3 | 2) + _mapped._encode_varint(1) + b"w"
    dtype = _mapped._encode_varint(2 << 3) + _mapped._encode_varint(TensorProto.FLOAT)
    packed = b"".join(_mapped._encode_varint(d) for d in array.shape)
    dims = _mapped._encode_varint(1 << 3 | 2) + _mapped._encode_varint(len(packed)) + packed
    raw = _mapped._encode_varint(9 << 3 | 2) + _mapped._encode_varint(array.nbytes) + array.tobytes()
    tensor = dims + dtype + name + raw
    buf = memoryview(bytearray(tensor))
    weight = _mapped._mapped_tensor(buf, 0, len(tensor), 1024, _loader._HIDE_TYPES)
    assert weight is not None and weight.dims == (32, 32)
    np.testing.assert_array_equal(weight.array, array)
    parsed = TensorProto.FromString(tensor)
    assert list(parsed.dims) == [32, 32] and numpy_helper.to_array(parsed).tobytes() == array.tobytes()
    odd = tensor + _mapped._encode_varint(99 << 3) + _mapped._encode_varint(1)  # an unknown field
    assert _mapped._mapped_tensor(memoryview(bytearray(odd)), 0, len(odd), 1024, _loader._HIDE_TYPES) is None
    assert _mapped._mapped_tensor(buf, 0, len(tensor), len(tensor), _loader._HIDE_TYPES) is None  # not large


def test_truncated_file_gets_the_usual_error(tmp_path: Path) -> None:
    path = _model(tmp_path / "m.onnx")
    data = path.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) - 5000])  # inside a weight: the scan gives up
    assert _mapped.load_mapped(cut, 1024, _loader._HIDE_TYPES) is None
    with pytest.raises(OpenATCError) as info:
        openatc.build(model=str(cut), framework=5, output=str(tmp_path / "o"), soc_version="cpu", log="error")
    assert info.value.code == "E20001"
    assert not (tmp_path / "o.om").exists()


def test_small_files_are_parsed_whole(tmp_path: Path) -> None:
    path = tmp_path / "small.onnx"
    w = numpy_helper.from_array(np.ones((16, 16), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        [w],
    )
    path.write_bytes(helper.make_model(graph).SerializeToString())
    assert _mapped.load_mapped(path, 1024, _loader._HIDE_TYPES) is None
