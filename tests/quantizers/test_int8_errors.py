"""Bad calibration input: each a clear E-code naming the culprit, and no .om left behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import openatc

from ._models import conv_net, write_samples


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return conv_net(tmp_path_factory.mktemp("conv") / "conv.onnx")


def _fails(build: Callable[..., Path], model: Path, tmp_path: Path, code: str, *needles: str, **flags: object) -> None:
    with pytest.raises(openatc.OpenATCError) as info:
        build(model, output=tmp_path / "out", **flags)
    assert info.value.code == code, str(info.value)
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    assert not list(tmp_path.glob("out*"))


def _cfg(tmp_path: Path, **settings: object) -> str:
    path = tmp_path / "calib.json"
    path.write_text(json.dumps(settings))
    return str(path)


def test_empty_folder(model: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    cfg = _cfg(tmp_path, data_dir=str(tmp_path / "empty"))
    _fails(
        compile_om,
        model,
        tmp_path,
        "E10061",
        "no .npy/.bin/image calibration files for input 'x'",
        calibration_config=cfg,
    )


def test_wrong_shape_names_file(model: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    data = write_samples(tmp_path / "d", {"x": (1, 3, 32, 32)}, 3)
    np.save(data / "1.npy", np.zeros((1, 3, 16, 16), np.float32))
    cfg = _cfg(tmp_path, data_dir=str(data))
    _fails(
        compile_om,
        model,
        tmp_path,
        "E10061",
        "1.npy",
        "float32 [1, 3, 32, 32]",
        "[1, 3, 16, 16]",
        calibration_config=cfg,
    )


def test_wrong_dtype_names_file(model: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    data = write_samples(tmp_path / "d", {"x": (1, 3, 32, 32)}, 2)
    np.save(data / "0.npy", np.zeros((1, 3, 32, 32), np.float64))
    cfg = _cfg(tmp_path, data_dir=str(data))
    _fails(compile_om, model, tmp_path, "E10061", "0.npy", "expected float32", "got float64", calibration_config=cfg)


def test_bin_of_wrong_size(model: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    np.zeros(100, np.float32).tofile(tmp_path / "d" / "a.bin")
    cfg = _cfg(tmp_path, data_dir=str(tmp_path / "d"))
    _fails(compile_om, model, tmp_path, "E10061", "a.bin", "400 bytes", "12288 bytes", calibration_config=cfg)


def test_fewer_samples_than_asked(model: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    data = write_samples(tmp_path / "d", {"x": (1, 3, 32, 32)}, 3)
    cfg = _cfg(tmp_path, data_dir=str(data), num_samples=10)
    _fails(compile_om, model, tmp_path, "E10061", "num_samples is 10", "only 3", calibration_config=cfg)


def test_unknown_algorithm_lists_known(model: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    data = write_samples(tmp_path / "d", {"x": (1, 3, 32, 32)}, 3)
    cfg = _cfg(tmp_path, data_dir=str(data), algorithm="kl")
    _fails(compile_om, model, tmp_path, "E10062", "'kl'", "entropy, minmax, mse, percentile", calibration_config=cfg)


@pytest.mark.parametrize("flag", ["precision_mode=force_fp32", "precision_mode=must_keep_origin_dtype"])
def test_high_precision_mode_excludes_calibration(
    model: Path, compile_om: Callable[..., Path], tmp_path: Path, flag: str
) -> None:
    data = write_samples(tmp_path / "d", {"x": (1, 3, 32, 32)}, 3)
    name, value = flag.split("=")
    cfg = _cfg(tmp_path, data_dir=str(data))
    _fails(compile_om, model, tmp_path, "E10001", value, "excludes", calibration_config=cfg, **{name: value})


def test_unknown_key_and_bad_values(model: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    data = str(write_samples(tmp_path / "d", {"x": (1, 3, 32, 32)}, 3))
    _fails(
        compile_om,
        model,
        tmp_path,
        "E10060",
        "unknown key(s) algo",
        calibration_config=_cfg(tmp_path, data_dir=data, algo="x"),
    )
    _fails(
        compile_om,
        model,
        tmp_path,
        "E10060",
        "'per_channel'",
        calibration_config=_cfg(tmp_path, data_dir=data, per_channel="yes"),
    )
    _fails(compile_om, model, tmp_path, "E10060", "'data_dir' is missing", calibration_config=_cfg(tmp_path))
    _fails(
        compile_om, model, tmp_path, "E10060", "not a cosine",
        calibration_config=_cfg(tmp_path, data_dir=data, accuracy_target=2),
    )  # fmt: skip
    _fails(
        compile_om, model, tmp_path, "E10060", "do not fit algorithm 'minmax'",
        calibration_config=_cfg(tmp_path, data_dir=data, algorithm_options={"percentile": 99.9}),
    )  # fmt: skip
    (tmp_path / "bad.json").write_text("{")
    _fails(compile_om, model, tmp_path, "E10060", "not valid JSON", calibration_config=str(tmp_path / "bad.json"))


def test_multi_input_needs_every_input(compile_om: Callable[..., Path], tmp_path: Path) -> None:
    from onnx import TensorProto, helper, save

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")],
        "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4, 4]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "two.onnx"))
    data = write_samples(tmp_path / "d", {"a": (4, 4), "b": (4, 4)}, 5)
    om = compile_om(
        tmp_path / "two.onnx", calibration_config=_cfg(tmp_path, data_dir=str(data))
    )  # one folder per input
    assert om.is_file()
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        np.save(flat / f"a_{i}.npy", np.ones((4, 4), np.float32))
    _fails(
        compile_om, tmp_path / "two.onnx", tmp_path, "E10061", "input 'b'",
        calibration_config=_cfg(tmp_path, data_dir=str(flat)),
    )  # fmt: skip


def test_atc_conf_errors(model: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    conf = tmp_path / "q.cfg"
    conf.write_text("calibration:\n{\n    input_data_dir: data.bin\n}\n")
    _fails(compile_om, model, tmp_path, "E10060", "input_shape, infer_soc", compression_optimize_conf=str(conf))
    conf.write_text(
        "calibration:\n{\n    input_data_dir: nothere\n    input_shape: x:1,3,32,32\n    infer_soc: cpu\n}\n"
    )
    _fails(compile_om, model, tmp_path, "E10061", "nothere", compression_optimize_conf=str(conf))
    conf.write_text("calibration:\n{\n    input_data_dir: a,b\n    input_shape: x:1,3,32,32\n    infer_soc: cpu\n}\n")
    _fails(compile_om, model, tmp_path, "E10060", "2 path(s) for 1 input(s)", compression_optimize_conf=str(conf))
