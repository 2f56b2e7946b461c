"""The ``openatc`` command line: ATC's argv forms, the flag table, help, console lines, log levels,
``--mode``, and the ``run`` and ``plugins`` tools.

Fixtures (``run_cli``, ``tiny_model``, ``tiny_om``...) come from ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import pytest

from openatc.cli import FAILURE, START, SUCCESS
from openatc.flags import FLAGS, PANELS, Flag
from openatc.runtime import Session


class Result(Protocol):
    """What ``run_cli`` / ``run_cli_subprocess`` (tests/conftest.py) return."""

    code: int
    out: str
    err: str

    @property
    def output(self) -> str: ...


Cli = Callable[..., Result]

NOOP_FLAGS = [f for f in FLAGS if f.status == "noop"]
TODO_FLAGS = [f for f in FLAGS if f.status == "todo"]
BAD_VALUE = "not_an_accepted_value"


def _build_args(model: Path, out_dir: Path, *extra: str) -> list[str]:
    return [
        f"--model={model}",
        "--framework=5",
        f"--output={out_dir / 'm'}",
        "--soc_version=cpu",
        *extra,
    ]


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


# -- argv forms ------------------------------------------------------------------------------------
def test_equals_form_builds(run_cli: Cli, tiny_model: Path, out_dir: Path) -> None:
    result = run_cli(*_build_args(tiny_model, out_dir, "--input_shape=x:2,4"))
    assert result.code == 0, result.output
    assert (out_dir / "m.om").is_file()
    with Session(out_dir / "m.om") as session:
        assert [list(s.shape) for s in session.inputs] == [[2, 4]]


def test_space_separated_form_builds(run_cli: Cli, tiny_model: Path, out_dir: Path) -> None:
    result = run_cli(
        "--model",
        str(tiny_model),
        "--framework",
        "5",
        "--output",
        str(out_dir / "m"),
        "--soc_version",
        "cpu",
        "--input_shape",
        "x:3,4",
    )
    assert result.code == 0, result.output
    with Session(out_dir / "m.om") as session:
        assert [list(s.shape) for s in session.inputs] == [[3, 4]]


@pytest.mark.parametrize("spelling", ["--input-shape=x:5,4", "-input_shape=x:5,4", "-input-shape=x:5,4"])
def test_dashed_and_single_dash_input_shape(run_cli: Cli, tiny_model: Path, out_dir: Path, spelling: str) -> None:
    result = run_cli(*_build_args(tiny_model, out_dir, spelling))
    assert result.code == 0, result.output
    with Session(out_dir / "m.om") as session:
        assert [list(s.shape) for s in session.inputs] == [[5, 4]]


def test_dashed_input_shape_space_separated(run_cli: Cli, tiny_model: Path, out_dir: Path) -> None:
    result = run_cli(*_build_args(tiny_model, out_dir, "--input-shape", "x:6,4"))
    assert result.code == 0, result.output
    with Session(out_dir / "m.om") as session:
        assert [list(s.shape) for s in session.inputs] == [[6, 4]]


def test_single_dash_atc_spelling(run_cli: Cli, tiny_model: Path, out_dir: Path) -> None:
    result = run_cli(
        f"-model={tiny_model}",
        "-framework=5",
        f"-output={out_dir / 'm'}",
        "-soc_version=cpu",
        "-input_shape=x:1,4",
        "-log=error",
    )
    assert result.code == 0, result.output
    assert (out_dir / "m.om").is_file()


@pytest.mark.parametrize("flag", FLAGS, ids=lambda f: f.name)
def test_every_flag_is_listed_in_help(run_cli: Cli, flag: Flag, monkeypatch: pytest.MonkeyPatch) -> None:
    # wide enough that a rich-formatted help would not truncate long flag names
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.setenv("TERMINAL_WIDTH", "300")
    result = run_cli("--help")
    assert result.code == 0
    name = flag.name
    assert re.search(rf"--{name}\b", result.out), name
    if "_" in name:
        assert f"--{name.replace('_', '-')}" in result.out


@pytest.mark.parametrize("flag", FLAGS, ids=lambda f: f.name)
@pytest.mark.parametrize("form", ["underscore", "dashed", "single_dash"])
def test_every_flag_is_recognised(run_cli: Cli, flag: Flag, form: str) -> None:
    """Any spelling of any flag reaches BuildOptions (exit 1 with an E-code, never a usage error)."""
    name = flag.name
    spelled = {"underscore": f"--{name}", "dashed": f"--{name.replace('_', '-')}", "single_dash": f"-{name}"}[form]
    result = run_cli(f"{spelled}={BAD_VALUE}")
    assert "unknown command line flag" not in result.output
    assert result.code == 1, result.output
    assert FAILURE in result.out
    assert re.search(r"\bE\d{5}:", result.out), result.output


@pytest.mark.parametrize("flag", NOOP_FLAGS, ids=lambda f: f.name)
def test_noop_flag_builds_with_a_warning(run_cli: Cli, tiny_model: Path, out_dir: Path, flag: Flag) -> None:
    name = flag.name
    result = run_cli(*_build_args(tiny_model, out_dir, "--input_shape=x:1,4", "--log=warning", f"--{name}=1"))
    assert result.code == 0, result.output
    assert (out_dir / "m.om").is_file()
    warnings = [line for line in result.err.splitlines() if line.startswith("[WARNING]")]
    assert any(f"--{name} " in line and "no effect" in line for line in warnings), result.err


@pytest.mark.parametrize("flag", TODO_FLAGS, ids=lambda f: f.name)
def test_todo_flag_with_other_value_fails_e10055(run_cli: Cli, tiny_model: Path, out_dir: Path, flag: Flag) -> None:
    name = flag.name
    result = run_cli(*_build_args(tiny_model, out_dir, "--input_shape=x:1,4", f"--{name}={BAD_VALUE}"))
    assert result.code != 0
    assert "E10055" in result.out
    assert f"--{name}" in result.out
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [(f.name, v) for f in TODO_FLAGS for v in f.accept],
    ids=lambda x: str(x),
)
def test_todo_flag_with_accepted_value_builds(
    run_cli: Cli, tiny_model: Path, out_dir: Path, name: str, value: str
) -> None:
    result = run_cli(*_build_args(tiny_model, out_dir, "--input_shape=x:1,4", f"--{name}={value}"))
    assert result.code == 0, result.output
    assert (out_dir / "m.om").is_file()


def test_unknown_flag(run_cli: Cli) -> None:
    result = run_cli("--no_such_flag=1")
    assert result.code != 0
    assert "unknown command line flag" in result.err
    assert "no_such_flag" in result.err


def test_unknown_single_dash_flag(run_cli: Cli) -> None:
    result = run_cli("-no_such_flag=1")
    assert result.code != 0
    assert "unknown command line flag" in result.err


def test_positional_junk(run_cli: Cli) -> None:
    result = run_cli("junk_word")
    assert result.code != 0
    assert "Non-option parameter" in result.err
    assert "junk_word" in result.err


def test_flag_missing_its_value(run_cli: Cli) -> None:
    result = run_cli("--model")
    assert result.code != 0
    assert "model" in result.err
    assert "missing its argument" in result.err


def test_atc_flags_before_a_subcommand(run_cli: Cli, tiny_om: Path) -> None:
    result = run_cli("--soc_version=cpu", "run", str(tiny_om))
    assert result.code != 0
    assert "E10001" in result.out
    assert "--soc_version" in result.out


def test_unexpected_exception_is_reported_as_e19999(
    run_cli: Cli, tiny_model: Path, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openatc.pipeline

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom in the pipeline")

    monkeypatch.setattr(openatc.pipeline, "build_om", boom)
    result = run_cli(*_build_args(tiny_model, out_dir, "--input_shape=x:1,4"))
    assert result.code == 1
    assert FAILURE in result.out
    assert "E19999" in result.out
    assert "boom in the pipeline" in result.out


# -- help ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("option", ["--help", "-h", "--h"])
def test_help_exits_zero(run_cli: Cli, option: str) -> None:
    result = run_cli(option)
    assert result.code == 0
    assert "Usage: openatc" in result.out
    for name in ("--model", "--framework", "--output", "--soc_version", "--input_shape", "--mode"):
        assert name in result.out
    assert "run" in result.out and "plugins" in result.out


@pytest.mark.parametrize("option", ["--help", "-h", "--h"])
def test_help_lists_panels(run_cli: Cli, option: str) -> None:
    result = run_cli(option)
    assert result.code == 0
    for panel in PANELS:
        # a section heading: "Input:" (plain) or "╭─ Input ───╮" (rich), alone on its line
        assert re.search(rf"^[\s╭─]*{re.escape(panel)}(:\s*$|\s+─)", result.out, re.MULTILINE), panel


def test_run_help(run_cli: Cli) -> None:
    result = run_cli("run", "--help")
    assert result.code == 0
    for option in ("--input", "--output", "--loop", "--warmup_count"):
        assert option in result.out


# -- console lines ---------------------------------------------------------------------------------
def test_success_lines(run_cli: Cli, tiny_model: Path, out_dir: Path) -> None:
    result = run_cli(*_build_args(tiny_model, out_dir, "--input_shape=x:1,4"))
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == START
    assert lines[-1] == SUCCESS
    assert START.startswith("openatc start working now")
    assert SUCCESS.startswith("openatc run success")
    assert FAILURE not in result.out


def test_failure_lines(run_cli: Cli, tmp_path: Path, out_dir: Path) -> None:
    result = run_cli(*_build_args(tmp_path / "missing.onnx", out_dir))
    assert result.code != 0
    lines = result.out.splitlines()
    assert lines[0] == START
    assert FAILURE in lines
    assert FAILURE.startswith("openatc run failed")
    assert lines.index(FAILURE) > 0
    assert SUCCESS not in result.out


# -- log levels ------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", ["debug", "info", "warning", "error", "null", "INFO"])
def test_log_levels_accepted(run_cli: Cli, tiny_model: Path, out_dir: Path, level: str) -> None:
    # --enable_small_channel is a noop flag: it logs one warning.
    result = run_cli(
        *_build_args(tiny_model, out_dir, "--input_shape=x:1,4", f"--log={level}", "--enable_small_channel=1")
    )
    assert result.code == 0, result.output
    has_info = "[INFO]" in result.err
    has_warning = "[WARNING]" in result.err
    expected = {
        "debug": (True, True),
        "info": (True, True),
        "warning": (False, True),
        "error": (False, False),
        "null": (False, False),
    }[level.lower()]
    assert (has_info, has_warning) == expected, result.err
    if level == "null":
        assert result.err == ""


def test_default_log_level_is_silent(run_cli: Cli, tiny_model: Path, out_dir: Path) -> None:
    result = run_cli(*_build_args(tiny_model, out_dir, "--input_shape=x:1,4", "--enable_small_channel=1"))
    assert result.code == 0
    assert result.err == ""


@pytest.mark.parametrize("level", ["loud", "verbose", "3"])
def test_invalid_log_level(run_cli: Cli, tiny_model: Path, out_dir: Path, level: str) -> None:
    result = run_cli(*_build_args(tiny_model, out_dir, "--input_shape=x:1,4", f"--log={level}"))
    assert result.code != 0
    assert "E10010" in result.out
    assert level in result.out
    assert list(out_dir.iterdir()) == []


# -- modes -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["5", "7", "30"])
def test_known_but_unimplemented_modes(run_cli: Cli, mode: str) -> None:
    result = run_cli(f"--mode={mode}")
    assert result.code != 0
    assert "E10055" in result.out
    assert f"--mode={mode}" in result.out


@pytest.mark.parametrize("mode", ["9", "2", "-1", "x"])
def test_unknown_modes(run_cli: Cli, mode: str) -> None:
    result = run_cli(f"--mode={mode}")
    assert result.code != 0
    assert "E10001" in result.out
    assert f"--mode={mode}" in result.out


def test_mode1_writes_json(run_cli: Cli, tiny_om: Path, tmp_path: Path) -> None:
    json_path = tmp_path / "dump" / "m.json"
    json_path.parent.mkdir()
    result = run_cli("--mode=1", f"--om={tiny_om}", f"--json={json_path}")
    assert result.code == 0, result.output
    assert result.out.splitlines()[-1] == SUCCESS
    data = json.loads(json_path.read_text())
    assert {"name", "version", "attr", "graph", "manifest"} <= set(data)
    assert data["version"] == 1
    attrs = {a["key"]: a["value"]["s"] for a in data["attr"]}
    assert attrs["soc_version"] == "cpu"
    assert attrs["backend"] == "cpu"
    assert attrs["framework_type"] == "5"
    assert len(data["graph"]) == 1
    graph = data["graph"][0]
    assert graph["input"] == ["x"]
    assert graph["output"] == ["y"]
    types = [op["type"] for op in graph["op"]]
    assert {"MatMul", "Relu", "Add"} <= set(types)
    assert "Const" in types  # weights as Const ops, without data
    matmul = next(op for op in graph["op"] if op["type"] == "MatMul")
    assert matmul["input_desc"][0]["shape"]["dim"] == [2, 4]
    manifest = data["manifest"]
    assert manifest["inputs"][0]["name"] == "x"
    assert manifest["weights"]["count"] >= 1  # W (2 KiB) is in the weights section
    # only the JSON and no temporary file in the directory
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["m.json"]


def test_mode1_space_separated(run_cli: Cli, tiny_om: Path, tmp_path: Path) -> None:
    json_path = tmp_path / "m.json"
    result = run_cli("--mode", "1", "--om", str(tiny_om), "--json", str(json_path))
    assert result.code == 0, result.output
    assert json.loads(json_path.read_text())["graph"]


def test_mode1_with_framework_rejects_an_om(run_cli: Cli, tiny_om: Path, tmp_path: Path) -> None:
    # with --framework, --om names an original model: an .om given there is the wrong kind of file
    result = run_cli("--mode=1", f"--om={tiny_om}", f"--json={tmp_path / 'm.json'}", "--framework=5")
    assert result.code != 0
    assert "E20002" in result.out
    assert not (tmp_path / "m.json").exists()


def test_mode1_missing_json_flag(run_cli: Cli, tiny_om: Path) -> None:
    result = run_cli("--mode=1", f"--om={tiny_om}")
    assert result.code != 0
    assert "E10054" in result.out
    assert "--json" in result.out


# -- run -------------------------------------------------------------------------------------------
def test_run_generated_inputs(run_cli: Cli, tiny_om: Path) -> None:
    result = run_cli("run", str(tiny_om), "--loop", "3", "--warmup_count", "1")
    assert result.code == 0, result.output
    assert "[INFO] input  x: float32[2, 4]" in result.out
    assert "[INFO] output y: float32[2, 128]" in result.out
    assert "Performance Summary" in result.out
    assert re.search(r"compute_time \(ms\): min = [\d.]+, max = [\d.]+, mean = [\d.]+, median = [\d.]+", result.out)
    assert "percentile(99%)" in result.out
    assert "throughput" in result.out
    assert START not in result.out


@pytest.mark.parametrize("kind", ["random", "zero"])
def test_run_writes_npy(run_cli: Cli, tiny_om: Path, tmp_path: Path, kind: str) -> None:
    dest = tmp_path / "results" / "nested"
    result = run_cli("run", str(tiny_om), "--output", str(dest), "--pure_data_type", kind)
    assert result.code == 0, result.output
    assert str(dest) in result.out
    assert sorted(p.name for p in dest.iterdir()) == ["summary.json", "y.npy"]
    y = np.load(dest / "y.npy")
    assert y.shape == (2, 128)
    assert y.dtype == np.float32
    if kind == "zero":
        with Session(tiny_om) as session:
            expected = session.run({"x": np.zeros((2, 4), np.float32)})["y"]
        np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


def test_run_short_options(run_cli: Cli, tiny_om: Path, tmp_path: Path) -> None:
    result = run_cli("run", str(tiny_om), "-o", str(tmp_path / "r"), "-l", "2")
    assert result.code == 0, result.output
    assert (tmp_path / "r" / "y.npy").is_file()


def test_run_invalid_pure_data_type(run_cli: Cli, tiny_om: Path) -> None:
    result = run_cli("run", str(tiny_om), "--pure_data_type", "ones")
    assert result.code != 0
    assert "E10001" in result.out
    assert "--pure_data_type" in result.out


@pytest.mark.parametrize("suffix", [".npy", ".bin"])
def test_run_with_input_file_matches_session(run_cli: Cli, tiny_om: Path, tmp_path: Path, suffix: str) -> None:
    x = np.random.default_rng(7).standard_normal((2, 4)).astype(np.float32)
    path = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        np.save(path, x)
    else:
        x.tofile(path)
    dest = tmp_path / "res"
    result = run_cli("run", str(tiny_om), "--input", str(path), "--output", str(dest))
    assert result.code == 0, result.output
    with Session(tiny_om) as session:
        expected = session.run({"x": x})
    got = np.load(dest / "y.npy")
    np.testing.assert_allclose(got, expected["y"], rtol=1e-6, atol=1e-6)
    assert not np.allclose(got, 0)


def test_run_two_outputs_with_input_files(
    run_cli: Cli, two_output_model: Path, compile_om: Callable[..., Path], tmp_path: Path
) -> None:
    om_path = compile_om(two_output_model)
    x = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    dest = tmp_path / "res"
    result = run_cli("run", str(om_path), "-i", str(tmp_path / "x.npy"), "-o", str(dest))
    assert result.code == 0, result.output
    assert "[INFO] output y_relu: float32[2, 128]" in result.out
    assert "[INFO] output y_sig: float32[2, 128]" in result.out
    assert sorted(p.name for p in dest.iterdir()) == ["summary.json", "y_relu.npy", "y_sig.npy"]
    with Session(om_path) as session:
        expected = session.run({"x": x})
    for name in ("y_relu", "y_sig"):
        np.testing.assert_allclose(np.load(dest / f"{name}.npy"), expected[name], rtol=1e-6, atol=1e-6)


def test_run_bin_of_wrong_size(run_cli: Cli, tiny_om: Path, tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    np.zeros(5, np.float32).tofile(path)
    result = run_cli("run", str(tiny_om), "--input", str(path))
    assert result.code != 0
    assert "E10001" in result.out
    assert "x.bin" in result.out


def test_run_wrong_number_of_input_files(run_cli: Cli, tiny_om: Path, tmp_path: Path) -> None:
    x = np.zeros((2, 4), np.float32)
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x)
    result = run_cli("run", str(tiny_om), "--input", f"{tmp_path / 'a.npy'},{tmp_path / 'b.npy'}")
    assert result.code != 0
    assert "E10001" in result.out


def test_run_missing_input_file(run_cli: Cli, tiny_om: Path, tmp_path: Path) -> None:
    result = run_cli("run", str(tiny_om), "--input", str(tmp_path / "nothing.npy"))
    assert result.code != 0
    assert "E10410" in result.out
    assert "nothing.npy" in result.out


def test_run_npy_with_wrong_dtype(run_cli: Cli, tiny_om: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 4), np.float64))
    result = run_cli("run", str(tiny_om), "--input", str(tmp_path / "x.npy"))
    assert result.code != 0
    assert "E40010" in result.out
    assert "'x'" in result.out and "float32" in result.out


# -- plugins ---------------------------------------------------------------------------------------
def test_plugins_lists_everything(run_cli: Cli) -> None:
    from openatc.manager import default_plugin_manager

    result = run_cli("plugins")
    assert result.code == 0, result.output
    out = result.out
    for heading in ("Plugins:", "Frontends (--framework):", "Backends (--soc_version):", "Passes (stage, default):"):
        assert heading in out
    backends = out.split("Backends (--soc_version):")[1].split("Passes")[0]
    assert re.search(r"^\s+cpu\s", backends, re.MULTILINE)
    assert re.search(r"^\s+reference\s", backends, re.MULTILINE)
    frontends = out.split("Frontends (--framework):")[1].split("Backends")[0]
    assert re.search(r"^\s+5\s+onnx\s", frontends, re.MULTILINE)
    passes = out.split("Passes (stage, default):")[1]
    for name in ("constant_folding", "dead_code_elimination", "shape_inference", "topological_sort"):
        assert re.search(rf"^\s+{name}\s", passes, re.MULTILINE), name
    for name in default_plugin_manager().passes():
        assert name in passes


def test_plugins_rejects_atc_flags(run_cli: Cli) -> None:
    result = run_cli("--framework=5", "plugins")
    assert result.code != 0
    assert "E10001" in result.out


# -- the real console script -----------------------------------------------------------------------
def test_subprocess_build_and_run(run_cli_subprocess: Cli, tiny_model: Path, out_dir: Path) -> None:
    result = run_cli_subprocess(*_build_args(tiny_model, out_dir, "--input-shape", "x:2,4"))
    assert result.code == 0, result.output
    assert result.out.splitlines()[0] == START
    assert result.out.splitlines()[-1] == SUCCESS
    om_path = out_dir / "m.om"
    assert om_path.is_file()
    ran = run_cli_subprocess("run", str(om_path))
    assert ran.code == 0, ran.output
    assert "[INFO] output y: float32[2, 128]" in ran.out


def test_subprocess_exit_codes(run_cli_subprocess: Cli, tmp_path: Path, out_dir: Path) -> None:
    assert run_cli_subprocess("--help").code == 0
    failed = run_cli_subprocess(*_build_args(tmp_path / "missing.onnx", out_dir))
    assert failed.code == 1
    assert "E10410" in failed.out and FAILURE in failed.out
    unknown = run_cli_subprocess("--no_such_flag=1")
    assert unknown.code == 2
    assert "unknown command line flag" in unknown.err
    assert "Traceback" not in unknown.output + failed.output


def test_console_script_entry_point(tmp_path: Path) -> None:
    import subprocess

    script = Path(sys.executable).parent / "openatc"
    if not script.is_file():
        pytest.skip("no openatc console script next to the interpreter")
    proc = subprocess.run([str(script), "-h"], capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0
    assert "Usage: openatc" in proc.stdout
