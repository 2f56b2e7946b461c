"""ATC's validation of the gear flags, each with its E-code, through the command line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from openatc.errors import CATALOGUE

Cli = Callable[..., object]


def _build(run_cli: Callable[..., object], model: Path, out: Path, *flags: str) -> object:
    return run_cli(f"--model={model}", "--framework=5", f"--output={out / 'm'}", "--soc_version=cpu", *flags)


CASES = [
    # (flags, code, words the message must contain)
    (("--input_shape=x:-1,3,32,32", "--dynamic_batch_size=1,2", "--dynamic_dims=1;2"), "E10009", ("mutually",)),
    (("--input_shape=x:-1,3,32,32", "--dynamic_batch_size=1,2", "--input_shape_range=x:[1~2,3,32,32]"), "E10009", ()),
    (("--input_shape=x:1,3,-1,32", "--dynamic_batch_size=1,2"), "E10018", ("dim 2", "x:1,3,-1,32")),
    (("--input_shape=x:-1,-1,32,32", "--dynamic_batch_size=1,2"), "E10018", ("dim 1",)),
    (("--input_shape=x:1,3,32,32", "--dynamic_batch_size=1,2"), "E10031", ("-1",)),
    (("--input_shape=x:-1,3,32,32", "--dynamic_batch_size=4"), "E10035", ("1 gear", "minimum 2")),
    (("--input_shape=x:-1,3,32,32", f"--dynamic_batch_size={','.join(map(str, range(1, 102)))}"), "E10036", ("101",)),
    (("--input_shape=x:-1,3,32,32", "--dynamic_batch_size=0,2"), "E10038", ("0",)),
    (("--input_shape=x:-1,3,32,32", "--dynamic_batch_size=1,2,2"), "E10039", ("duplicate",)),
    (("--input_shape=x:-1,3,32,32", "--dynamic_batch_size=1;2"), "E10001", ("--dynamic_batch_size",)),
    (("--input_shape=x:1~4,3,32,32", "--dynamic_batch_size=1,2"), "E10040", ("range",)),
    (("--input_shape=x:1,3,-1,-1", "--dynamic_image_size=32,32;64"), "E10020", ("'64'",)),
    (("--input_shape=x:1,3,-1,-1", "--dynamic_image_size=32,32;a,b"), "E10020", ("--dynamic_image_size",)),
    (("--input_shape=x:-1,3,-1,-1", "--dynamic_image_size=32,32;64,64"), "E10019", ("height and width",)),
    (("--input_shape=x:1,3,-1,-1", "--dynamic_image_size=32,32;32,32"), "E10039", ()),
    (("--input_shape=x:1,3,-1,-1", "--dynamic_image_size=32,32;64,64", "--input_format=ND"), "E10001", ("NCHW",)),
    (("--input_shape=x:1,3,32,32", "--dynamic_image_size=32,32;64,64"), "E10040", ("-1",)),
    (("--input_shape=x:1,3,-1,-1", "--dynamic_dims=32,32;64,64"), "E10001", ("--input_format=ND",)),
    (("--input_shape=x:1,3,-1,-1", "--dynamic_dims=32,32;64", "--input_format=ND"), "E10037", ("1 and 2",)),
    (("--input_shape=x:1,3,-1,-1", "--dynamic_dims=32;64", "--input_format=ND"), "E10045", ("2 -1",)),
    (("--input_shape=x:1,3,32,-1", "--dynamic_dims=32,1;64,1", "--input_format=ND"), "E10046", ("1 -1",)),
    (("--input_shape=x:1,3,32,-1", "--dynamic_dims=32", "--input_format=ND"), "E10035", ()),
    (("--input_shape=x:1,3,32,32", "--dynamic_dims=32;64", "--input_format=ND"), "E10040", ()),
    (("--input_shape=x:1,3,32,-1", "--dynamic_dims=32;-64", "--input_format=ND"), "E10038", ("-64",)),
    # --dynamic_dims: every input in --input_shape has 1 to 4 dims (ATC's "Dim num must within [1, 4]")
    (("--input_shape=x:1,3,32,-1,1", "--dynamic_dims=32;64", "--input_format=ND"), "E10001", ("'x' has 5", "1 to 4")),
    # the model's side: -1 shapes checked against its inputs like static ones
    (("--input_shape=x:-1,3,32", "--dynamic_batch_size=1,2"), "E10049", ("'x' 3 dims", "rank 4")),
    (("--input_shape=y:-1,3,32,32", "--dynamic_batch_size=1,2"), "E10016", ("'y'",)),
    (("--input_shape_range=x:1~4,3,32,32",), "E10048", ("name:[dims]",)),
    (("--input_shape=x:1,3,32,32", "--input_shape_range=x:[1~4,3,32,32]"), "E10056", ("'x'",)),
]


@pytest.mark.parametrize(("flags", "code", "words"), CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_gear_flag_errors(
    run_cli: Cli, conv_onnx: Path, tmp_path: Path, flags: tuple[str, ...], code: str, words: tuple[str, ...]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = _build(run_cli, conv_onnx, out, *flags)
    assert result.code == 1, result.output
    assert f"{code}:" in result.out, result.out
    for word in words:
        assert word in result.out, (word, result.out)
    assert list(out.iterdir()) == []
    assert code in CATALOGUE


def test_gears_on_a_model_without_dynamic_dims(run_cli: Cli, tiny_static_model: Path, tmp_path: Path) -> None:
    result = _build(run_cli, tiny_static_model, tmp_path, "--input_shape=x:-1,4", "--dynamic_batch_size=1,2")
    assert result.code == 1
    assert "E10002:" in result.out and "dim 0 of input 'x'" in result.out and "fixes it to 2" in result.out


def test_shape_inference_failing_at_one_gear_names_gear_and_node(
    run_cli: Cli, fixed_matmul_onnx: Path, tmp_path: Path
) -> None:
    result = _build(
        run_cli, fixed_matmul_onnx, tmp_path, "--input_shape=x:1,-1", "--dynamic_dims=64;128", "--input_format=ND"
    )
    assert result.code == 1, result.output
    assert "E30002:" in result.out
    assert "gear1 (x:1,128)" in result.out
    assert "fixed_matmul" in result.out
    assert not (tmp_path / "m.om").exists()


def test_range_compile_needs_a_dynamic_backend(tiny_model: Path, tmp_path: Path) -> None:
    import dataclasses

    import openatc
    from openatc.errors import OpenATCError

    plugin_manager = openatc.get_plugin_manager(load_entrypoints=False)
    cpu = plugin_manager.backends()["cpu"]
    static = dataclasses.replace(
        cpu,
        name="static_npu",
        soc_versions=("StaticNPU",),
        capabilities=dataclasses.replace(cpu.capabilities, dynamic_shapes=False),
    )

    class Plugin:
        @openatc.hookimpl
        def openatc_backends(self) -> list[object]:
            return [static]

    plugin_manager.register(Plugin())
    with pytest.raises(OpenATCError) as info:
        openatc.build(
            model=tiny_model,
            framework=5,
            output=tmp_path / "m",
            soc_version="StaticNPU",
            input_shape="x:-1,4",
            plugin_manager=plugin_manager,
        )
    assert info.value.code == "E10055"
    assert "static_npu" in info.value.message and "x:-1,4" in info.value.message
    om = openatc.build(
        model=tiny_model,
        framework=5,
        output=tmp_path / "g",
        soc_version="StaticNPU",
        input_shape="x:-1,4",
        dynamic_batch_size="1,2",
        plugin_manager=plugin_manager,
    )
    assert om.is_file()
