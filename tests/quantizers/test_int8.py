"""INT8 builds: each algorithm, per-channel and per-tensor, skip lists, integer kernels, the
accuracy fallback, the per-layer report, ATC's config syntax, Ctrl-C.

Accuracy is measured against ONNX Runtime on the original FP32 model (an independent reference)
on samples the calibration did not see. Tolerances: INT8 with 8-bit activations keeps a cosine
of at least 0.99 on these small models (measured 0.9995 .. 0.99999).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest

import openatc
from openatc.hookspecs import hookimpl

from ._models import conv_net, cosine, hostile_chain, hostile_mlp, write_samples

ort = pytest.importorskip("onnxruntime")

MIN_COSINE = 0.99


@pytest.fixture(scope="module")
def conv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("conv")
    return conv_net(root / "conv.onnx"), write_samples(root / "calib", {"x": (1, 3, 32, 32)}, 24)


def _config(path: Path, **settings: object) -> Path:
    path.write_text(json.dumps(settings))
    return path


def _fp32(model: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def _om_out(om: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    with openatc.Session(om) as sess:
        return next(iter(sess.run(feeds).values()))


def _manifest(om: Path) -> dict:
    with openatc.Session(om) as sess:
        return sess.manifest


def _optimized_ops(om: Path, tmp_path: Path) -> set[str]:
    """Op types of ONNX Runtime's optimized session of gear 0 (what it really runs)."""
    from openatc.inspect import export_onnx

    graph = export_onnx(om, tmp_path / "gear0.onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    from openatc.plugins.backends.cpu import DISABLED_ORT_OPTIMIZERS

    ort.InferenceSession(
        str(graph), options, providers=["CPUExecutionProvider"], disabled_optimizers=list(DISABLED_ORT_OPTIMIZERS)
    )
    return {n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node}


def _conv_weight_scale_sizes(om: Path, tmp_path: Path) -> list[int]:
    """Sizes of the scales of the INT8 4-d weights: the output channels per-channel, else 1."""
    from openatc.inspect import export_onnx

    graph = onnx.load(str(export_onnx(om, tmp_path / "scales.onnx"))).graph
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    return [
        int(inits[n.input[1]].size)
        for n in graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[0] in inits
        and inits[n.input[0]].ndim == 4
        and inits[n.input[0]].dtype == np.int8
    ]


def _held_out(seed: int = 99, shape: tuple[int, ...] = (1, 3, 32, 32)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(4)]


@pytest.mark.parametrize("algorithm", ["minmax", "percentile", "entropy", "mse"])
@pytest.mark.parametrize("per_channel", [True, False])
def test_conv_net_each_algorithm(
    conv: tuple[Path, Path], compile_om: Callable[..., Path], tmp_path: Path, algorithm: str, per_channel: bool
) -> None:
    model, data = conv
    cfg = _config(  # conv1 (27 terms a dot product) in INT8 too: skip_slow_layers off
        tmp_path / "c.json", data_dir=str(data), algorithm=algorithm, per_channel=per_channel, skip_slow_layers=False
    )
    om = compile_om(model, calibration_config=str(cfg))
    for x in _held_out():
        assert cosine(_om_out(om, {"x": x}), _fp32(model, {"x": x})) >= MIN_COSINE
    gear = _manifest(om)["gears"][0]
    assert gear["quantization"]["algorithm"] == algorithm
    assert gear["quantization"]["per_channel"] is per_channel
    assert gear["quantization"]["int8_layers"] >= 3
    assert _conv_weight_scale_sizes(om, tmp_path) == ([16, 32] if per_channel else [1, 1])


def test_integer_kernels_and_size(conv: tuple[Path, Path], compile_om: Callable[..., Path], tmp_path: Path) -> None:
    model, data = conv
    cfg = _config(tmp_path / "c.json", data_dir=str(data), skip_slow_layers=False)
    om = compile_om(model, calibration_config=str(cfg))
    ops = _optimized_ops(om, tmp_path)
    assert "QLinearConv" in ops, ops
    assert "Conv" not in ops  # no dequantize-compute-quantize in float left
    fp32 = compile_om(model, output=tmp_path / "fp32")
    assert _manifest(om)["weights"]["bytes"] < 0.4 * _manifest(fp32)["weights"]["bytes"]


def test_per_layer_report_files(conv: tuple[Path, Path], compile_om: Callable[..., Path], tmp_path: Path) -> None:
    model, data = conv
    cfg = _config(tmp_path / "c.json", data_dir=str(data), skip_slow_layers=False)
    om = compile_om(model, output=tmp_path / "q", calibration_config=str(cfg))
    assert om == tmp_path / "q.om"
    report = json.loads((tmp_path / "q_quant_report.json").read_text())["gears"]["gear0"]
    header = (tmp_path / "q_quant_report.csv").read_text().splitlines()[0]
    assert header == "gear,tensor,node,op_type,cosine,max_abs_error,relative_error"
    tensors = {r["tensor"]: r for r in report}
    assert {"x", "r1", "r2"} <= set(tensors)
    assert all(0.99 <= r["cosine"] <= 1.0 and r["max_abs_error"] > 0 for r in report)


def test_skip_lists_keep_layers_float(conv: tuple[Path, Path], compile_om: Callable[..., Path], tmp_path: Path) -> None:
    model, data = conv
    cfg = _config(
        tmp_path / "c.json",
        data_dir=str(data),
        skip_layers=["conv2"],
        skip_op_types=["Gemm"],
        holdout_fraction=0,
        skip_slow_layers=False,
    )
    om = compile_om(model, calibration_config=str(cfg))
    quant = _manifest(om)["gears"][0]["quantization"]
    assert quant["skipped"] == ["conv2", "fc"]
    assert quant["samples"] == {"calibration": 24, "held_out": 0}
    ops = _optimized_ops(om, tmp_path)
    assert "QLinearConv" in ops and ops & {"Conv", "FusedConv"}, " ".join(sorted(ops))  # conv1 integer, conv2 float
    assert "QGemm" not in ops
    x = _held_out()[0]
    assert cosine(_om_out(om, {"x": x}), _fp32(model, {"x": x})) >= MIN_COSINE


def test_layers_slower_in_int8_stay_float(
    conv: tuple[Path, Path], compile_om: Callable[..., Path], tmp_path: Path
) -> None:
    """By default conv1 (3 channels x 3x3 = 27 terms a dot product, under MIN_INT8_CONV_TERMS)
    stays float; conv2 (16 x 3x3) and the Gemm are INT8; the numerics stay close to FP32."""
    from openatc.quantize import MIN_INT8_CONV_TERMS

    assert 27 < MIN_INT8_CONV_TERMS <= 16 * 9
    model, data = conv
    om = compile_om(model, calibration_config=str(_config(tmp_path / "c.json", data_dir=str(data))))
    quant = _manifest(om)["gears"][0]["quantization"]
    assert len(quant["skipped"]) == 1  # conv1, renamed by the Conv+BatchNormalization fusion
    assert _conv_weight_scale_sizes(om, tmp_path) == [32]  # only conv2's weights are quantized
    ops = _optimized_ops(om, tmp_path)
    assert "QLinearConv" in ops and ops & {"Conv", "FusedConv"}, " ".join(sorted(ops))
    for x in _held_out():
        assert cosine(_om_out(om, {"x": x}), _fp32(model, {"x": x})) >= MIN_COSINE


def test_transformer_int8_meets_target(text_encoder: Path, compile_om: Callable[..., Path], tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = tmp_path / "ids"
    data.mkdir()
    for i in range(20):
        np.save(data / f"{i}.npy", rng.integers(0, 4096, (1, 32)).astype(np.int64))
    cfg = _config(tmp_path / "c.json", data_dir=str(data), accuracy_target=0.99, holdout_fraction=0.25)
    om = compile_om(text_encoder, calibration_config=str(cfg), input_shape="input_ids:1,32")
    quant = _manifest(om)["gears"][0]["quantization"]
    assert quant["target_met"] and quant["accuracy"] >= 0.99
    ids = rng.integers(0, 4096, (1, 32)).astype(np.int64)
    assert cosine(_om_out(om, {"input_ids": ids}), _fp32(text_encoder, {"input_ids": ids})) >= MIN_COSINE
    ops = _optimized_ops(om, tmp_path)
    assert ops & {"QLinearMatMul", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}, ops


def test_fallback_restores_hostile_layer(compile_om: Callable[..., Path], tmp_path: Path) -> None:
    model = hostile_mlp(tmp_path / "hostile.onnx")
    data = write_samples(tmp_path / "calib", {"x": (1, 64)}, 40)
    plain = compile_om(
        model, output=tmp_path / "plain", calibration_config=str(_config(tmp_path / "a.json", data_dir=str(data)))
    )
    cfg = _config(tmp_path / "b.json", data_dir=str(data), accuracy_target=0.99)
    guarded = compile_om(model, output=tmp_path / "guarded", calibration_config=str(cfg))
    x = np.random.default_rng(5).standard_normal((1, 64)).astype(np.float32)
    reference = _fp32(model, {"x": x})
    assert cosine(_om_out(plain, {"x": x}), reference) < 0.9  # the outlier channel crushes the others
    assert cosine(_om_out(guarded, {"x": x}), reference) >= MIN_COSINE
    quant = _manifest(guarded)["gears"][0]["quantization"]
    assert quant["accuracy_before"] < 0.99 <= quant["accuracy"]
    assert quant["target_met"] and set(quant["fallback_layers"]) & {"fc2", "fc3"}
    assert quant["int8_layers"] >= 1  # fc1 stays INT8


def test_fallback_finds_error_spread_over_blocks(compile_om: Callable[..., Path], tmp_path: Path) -> None:
    """Three hostile blocks: the target needs each block's outlier tensor in float, the plain layers stay INT8."""
    model = hostile_chain(tmp_path / "chain.onnx", blocks=3)
    data = write_samples(tmp_path / "calib", {"x": (1, 64)}, 40)
    cfg = _config(tmp_path / "c.json", data_dir=str(data), accuracy_target=0.99)
    om = compile_om(model, calibration_config=str(cfg))
    quant = _manifest(om)["gears"][0]["quantization"]
    assert quant["accuracy_before"] < 0.99 <= quant["accuracy"] and quant["target_met"]
    floated = set(quant["fallback_layers"])
    for i in range(3):
        assert floated & {f"fc{i}b", f"fc{i}c"}, (i, floated)
    assert not floated & {"fc0a", "fc1a", "fc2a"} and quant["int8_layers"] >= 3, quant  # the plain ones stay INT8
    kept = {"float_layers": len(floated), "accuracy": quant["accuracy"]}
    assert kept in quant["search"] and max(t["float_layers"] for t in quant["search"]) > len(floated)  # pruned
    x = np.random.default_rng(5).standard_normal((1, 64)).astype(np.float32)
    assert cosine(_om_out(om, {"x": x}), _fp32(model, {"x": x})) >= MIN_COSINE


def test_fallback_budget_is_respected(compile_om: Callable[..., Path], tmp_path: Path, caplog) -> None:
    model = hostile_chain(tmp_path / "chain.onnx", blocks=3)
    data = write_samples(tmp_path / "calib", {"x": (1, 64)}, 40)
    cfg = _config(tmp_path / "c.json", data_dir=str(data), accuracy_target=0.99, max_fallback_layers=1)
    with caplog.at_level("WARNING"):
        om = compile_om(model, calibration_config=str(cfg))
    quant = _manifest(om)["gears"][0]["quantization"]
    assert not quant["target_met"] and len(quant["fallback_layers"]) <= 1
    assert "still misses the target" in caplog.text


def test_python_metric(compile_om: Callable[..., Path], tmp_path: Path) -> None:
    model = hostile_mlp(tmp_path / "hostile.onnx")
    data = write_samples(tmp_path / "calib", {"x": (1, 64)}, 20)
    calls: list[int] = []

    def max_error(fp32: list[dict[str, np.ndarray]], int8: list[dict[str, np.ndarray]]) -> float:
        calls.append(len(fp32))
        return -max(float(np.abs(a["y"] - b["y"]).max()) for a, b in zip(fp32, int8, strict=True))

    cfg = _config(tmp_path / "c.json", data_dir=str(data), accuracy_target=-0.05)
    om = compile_om(model, calibration_config=str(cfg), accuracy_metric=max_error)
    quant = _manifest(om)["gears"][0]["quantization"]
    assert calls and calls[0] == 16  # 20 samples: the 4 held out, topped up to check_samples (16)
    assert quant["accuracy"] >= -0.05 and quant["fallback_layers"]


def test_atc_compression_optimize_conf_with_bin(
    conv: tuple[Path, Path], compile_om: Callable[..., Path], tmp_path: Path
) -> None:
    model, _ = conv
    rng = np.random.default_rng(3)
    rng.standard_normal((6, 1, 3, 32, 32)).astype(np.float32).tofile(tmp_path / "data.bin")  # 6 samples
    settings = {"algorithm": "percentile", "algorithm_options": {"percentile": 99.999}}
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    conf = tmp_path / "quant.cfg"
    conf.write_text(
        "calibration:\n{\n    input_data_dir: data.bin\n    input_shape: x:1,3,32,32\n"
        "    config_file: settings.json\n    infer_soc: cpu\n}\n"
    )
    om = compile_om(model, compression_optimize_conf=str(conf))
    quant = _manifest(om)["gears"][0]["quantization"]
    assert quant["algorithm"] == "percentile"
    assert sum(quant["samples"].values()) == 6


def test_reference_backend_runs_int8(conv: tuple[Path, Path], compile_om: Callable[..., Path], tmp_path: Path) -> None:
    model, data = conv
    cfg = _config(tmp_path / "c.json", data_dir=str(data))
    om = compile_om(model, calibration_config=str(cfg), soc_version="reference")
    x = _held_out()[0]
    assert cosine(_om_out(om, {"x": x}), _fp32(model, {"x": x})) >= MIN_COSINE


class _Interrupting:
    """A quantizer plugin whose observer raises KeyboardInterrupt on the third batch (Ctrl-C)."""

    class Observer:
        seen = 0

        def observe(self, array: np.ndarray) -> None:
            type(self).seen += 1
            if type(self).seen > 2:
                raise KeyboardInterrupt

        def range(self) -> tuple[float, float]:
            return (0.0, 1.0)

    @hookimpl
    def openatc_quantizers(self) -> Iterator[openatc.Quantizer]:
        yield openatc.Quantizer("interrupting", self.Observer)


def test_ctrl_c_leaves_no_om(conv: tuple[Path, Path], tmp_path: Path) -> None:
    model, data = conv
    pm = openatc.get_plugin_manager(load_entrypoints=False)
    pm.register(_Interrupting(), "interrupting")
    cfg = _config(tmp_path / "c.json", data_dir=str(data), algorithm="interrupting")
    with pytest.raises(KeyboardInterrupt):
        openatc.build(
            model=str(model), framework=5, soc_version="cpu", output=str(tmp_path / "m"),
            calibration_config=str(cfg), plugin_manager=pm,
        )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]


def test_gears_calibrate_on_batch_one_samples(
    text_encoder: Path, compile_om: Callable[..., Path], tmp_path: Path
) -> None:
    rng = np.random.default_rng(2)
    data = tmp_path / "ids"
    data.mkdir()
    for i in range(16):  # batch-1 samples: 16 for the gear of batch 1, 8 for the gear of batch 2
        np.save(data / f"{i}.npy", rng.integers(0, 4096, (1, 16)).astype(np.int64))
    cfg = _config(tmp_path / "c.json", data_dir=str(data), holdout_fraction=0.25)
    om = compile_om(
        text_encoder, output=tmp_path / "enc", calibration_config=str(cfg),
        input_shape="input_ids:-1,16", dynamic_batch_size="1,2",
    )  # fmt: skip
    gears = _manifest(om)["gears"]
    assert [g["quantization"]["samples"] for g in gears] == [
        {"calibration": 12, "held_out": 4},
        {"calibration": 6, "held_out": 2},
    ]
    ids = rng.integers(0, 4096, (2, 16)).astype(np.int64)
    assert cosine(_om_out(om, {"input_ids": ids}), _fp32(text_encoder, {"input_ids": ids})) >= MIN_COSINE
    report = json.loads((tmp_path / "enc_quant_report.json").read_text())["gears"]
    assert set(report) == {"gear0", "gear1"}


def test_calibrated_ranges_never_pass_the_data(tmp_path: Path) -> None:
    """A skewed activation (values in [-0.5, 8]) keeps its short side under UINT8 activations."""
    from onnx import TensorProto, helper

    from openatc.plugins.quantizers import PercentileObserver
    from openatc.quantize._calibrate import calibrate
    from openatc.quantize._data import InputSpec, Samples

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Sub", ["r", "half"], ["y"], name="s")],
        "skewed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4096])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4096])],
        [onnx.numpy_helper.from_array(np.array(0.5, np.float32), "half")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    folder = tmp_path / "d"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        np.save(folder / f"{i}.npy", (rng.random((1, 4096)) * 8.5 - 0.5).astype(np.float32))
    spec = InputSpec("x", np.dtype(np.float32), (1, 4096))
    samples = Samples({"x": [(p, 0) for p in sorted(folder.iterdir())]}, [spec])
    asymmetric = calibrate(model, samples, ["x", "y"], PercentileObserver, symmetric=False)
    low, high = asymmetric["x"]
    assert -0.5 <= low < -0.49 and 7.9 < high <= 8.0  # not (-8, 8)
    symmetric = calibrate(model, samples, ["x", "y"], PercentileObserver, symmetric=True)
    assert symmetric["x"][0] == -symmetric["x"][1] and symmetric["x"][1] > 7.9
