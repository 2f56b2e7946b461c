"""Whole builds: the compiled .om against ONNX Runtime on the original model."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from _models import mlp, ort_run

import openatc
from openatc import OpenATCError
from openatc.om import OmFile

BACKENDS = ["cpu", "reference"]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return mlp(tmp_path / "mlp.onnx")


def _x(batch: int = 4) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((batch, 16)).astype(np.float32)


@pytest.mark.parametrize("soc", BACKENDS)
def test_outputs_match_onnxruntime(model: Path, tmp_path: Path, soc: str) -> None:
    om = openatc.build(model=model, framework=5, output=tmp_path / "m", soc_version=soc, input_shape="x:4,16")
    with openatc.Session(om) as sess:
        got = sess.run({"x": _x()})
    (want,) = ort_run(model, {"x": _x()})
    assert list(got) == ["y"]
    np.testing.assert_allclose(got["y"], want, rtol=1e-5, atol=1e-5)


def test_passes_fold_and_clean_the_graph(model: Path, tmp_path: Path) -> None:
    om = openatc.build(model=model, framework=5, output=tmp_path / "m", soc_version="cpu", input_shape="x:4,16")
    with openatc.Session(om) as sess:
        gear = sess.manifest["gears"][0]
    # Identity removed; Shape folded once shapes are static; the Reshape to the same shape remains
    # (its removal belongs to the optimizer's no-op rules).
    assert "Identity" not in gear["ops"] and "Shape" not in gear["ops"]
    report = {p["name"]: p for p in gear["passes"]}
    assert report["constant_folding"]["modified"] is True
    assert report["identity_elimination"]["nodes_after"] < report["identity_elimination"]["nodes_before"]
    assert gear["nodes"] < 7


def test_weights_stored_once_and_viewed_without_copy(model: Path, tmp_path: Path) -> None:
    om = openatc.build(model=model, framework=5, output=tmp_path / "m", soc_version="cpu", input_shape="x:4,16")
    original = onnx.load(model)
    big = sum(np.prod(i.dims) * 4 for i in original.graph.initializer if np.prod(i.dims) * 4 >= 1024)
    f = OmFile(om)
    try:
        assert f.manifest["weights"]["bytes"] == big
        assert f.sections["weights"].size <= big + 64 * len(original.graph.initializer)
        graph = onnx.ModelProto.FromString(bytes(f.section("gear0/graph")))
        stubs = [i for i in graph.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL]
        assert {s.name for s in stubs} == set(f.manifest["gears"][0]["weights"])
        assert all(not s.raw_data for s in stubs)
    finally:
        f.close()


def test_same_inputs_and_flags_give_identical_bytes(model: Path, tmp_path: Path) -> None:
    flags = {"model": model, "framework": 5, "output": tmp_path / "m", "soc_version": "cpu", "input_shape": "x:2,16"}
    first = openatc.build(**flags).read_bytes()
    second = openatc.build(**flags).read_bytes()
    assert first == second


def test_out_nodes_cut_the_graph(model: Path, tmp_path: Path) -> None:
    om = openatc.build(
        model=model, framework=5, output=tmp_path / "m", soc_version="cpu", input_shape="x:4,16", out_nodes="relu1:0"
    )
    with openatc.Session(om) as sess:
        assert [o.name for o in sess.outputs] == ["h2"]
        got = sess.run({"x": _x()})["h2"]
        ops = sess.manifest["gears"][0]["ops"]  # fc1 stays, possibly fused (Gemm, FusedGemm...); fc2 is cut
        assert sum(n for op, n in ops.items() if "MatMul" in op or "Gemm" in op) == 1
    extended = onnx.load(model)
    extended.graph.output.append(onnx.helper.make_tensor_value_info("h2", onnx.TensorProto.FLOAT, None))
    onnx.save(extended, tmp_path / "ext.onnx")
    (want,) = ort_run(tmp_path / "ext.onnx", {"x": _x()}, ["h2"])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_out_nodes_by_tensor_name_and_several(model: Path, tmp_path: Path) -> None:
    om = openatc.build(
        model=model,
        framework=5,
        output=tmp_path / "m",
        soc_version="reference",
        input_shape="x:4,16",
        out_nodes="h1;y",
    )
    with openatc.Session(om) as sess:
        assert [o.name for o in sess.outputs] == ["h1", "y"]
        got = sess.run({"x": _x()})
    np.testing.assert_allclose(got["y"], ort_run(model, {"x": _x()})[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("soc", BACKENDS)
def test_output_type_fp16_keeps_names(model: Path, tmp_path: Path, soc: str) -> None:
    om = openatc.build(
        model=model, framework=5, output=tmp_path / "m", soc_version=soc, input_shape="x:4,16", output_type="FP16"
    )
    with openatc.Session(om) as sess:
        assert sess.outputs[0].name == "y" and sess.outputs[0].dtype == "float16"
        got = sess.run({"x": _x()})["y"]
    assert got.dtype == np.float16
    want = ort_run(model, {"x": _x()})[0]
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=2e-3, atol=2e-2)


def test_per_output_type(model: Path, tmp_path: Path) -> None:
    om = openatc.build(
        model=model,
        framework=5,
        output=tmp_path / "m",
        soc_version="cpu",
        input_shape="x:4,16",
        out_nodes="relu1:0;fc2:0",
        output_type="fc2:0:INT32",
    )
    with openatc.Session(om) as sess:
        assert [(o.name, o.dtype) for o in sess.outputs] == [("h2", "float32"), ("y", "int32")]
        got = sess.run({"x": _x()})
    want = ort_run(model, {"x": _x()})[0]
    np.testing.assert_array_equal(got["y"], want.astype(np.int32))


def test_manifest_records_build(model: Path, tmp_path: Path) -> None:
    om = openatc.build(model=model, framework=5, output=tmp_path / "m", soc_version="x86_64", input_shape="x:4,16")
    manifest = OmFile(om).manifest
    assert manifest["soc_version"] == "x86_64" and manifest["backend"]["name"] == "cpu"
    assert manifest["build_flags"]["input_shape"] == "x:4,16"
    assert manifest["inputs"] == [{"name": "x", "dtype": "float32", "shape": [4, 16], "format": "NCHW"}]
    assert manifest["producer"]["openatc"] == openatc.__version__ and "onnxruntime" in manifest["producer"]
    assert manifest["memory"]["weight_bytes"] > 0 and manifest["memory"]["activation_bytes_no_reuse"] > 0
    assert manifest["gears"][0]["opset"][""] == 21
    assert manifest["source"] == {"file": model.name, "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}
    json.dumps(manifest)


def test_failed_backend_load_leaves_no_file(model: Path, tmp_path: Path) -> None:
    pm = openatc.get_plugin_manager(load_entrypoints=False)

    def broken_load(ctx: openatc.LoadContext) -> openatc.Executor:
        raise OpenATCError("E40003", "this target cannot load anything")

    class Broken:
        @openatc.hookimpl
        def openatc_backends(self) -> Iterator[openatc.Backend]:
            yield openatc.Backend(
                "broken", ("BrokenNPU",), openatc.BackendCapabilities(), lambda m, c: b"payload", broken_load
            )

    pm.register(Broken(), name="broken")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OpenATCError) as err:
        openatc.build(
            model=model, framework=5, output=out / "m", soc_version="BrokenNPU", input_shape="x:4,16", plugin_manager=pm
        )
    assert err.value.code == "E40003"
    assert list(out.iterdir()) == []


def test_data_is_on_disk_before_the_om_gets_its_name(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    om = openatc.build(model=model, framework=5, output=tmp_path / "m", soc_version="cpu", input_shape="x:4,16")
    final = events.index(("replace", str(om)))
    synced = [i for i, (kind, name) in enumerate(events) if kind == "fsync" and name.endswith(".staging")]
    assert synced and synced[0] < final
