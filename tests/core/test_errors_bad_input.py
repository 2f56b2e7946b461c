"""Bad input, each with a test: the E-code, a message naming the culprit (file, flag or input name),
a non-zero exit code through the CLI, and no partial output (no .om, no temporary or staging file)
left in the output directory.

Fixtures (``run_cli``, ``tiny_model``, ``tiny_om``, ``compile_om``...) come from tests/conftest.py.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import pytest

import openatc
from openatc import OpenATCError
from openatc.cli import FAILURE
from openatc.om import FORMAT_VERSION, HEADER, HEADER_SIZE
from openatc.runtime import Session

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
root_can_read_anything = pytest.mark.skipif(IS_ROOT, reason="root bypasses file permissions")


class Result(Protocol):
    """What ``run_cli`` (tests/conftest.py) returns."""

    code: int
    out: str
    err: str

    @property
    def output(self) -> str: ...


Cli = Callable[..., Result]


# -- helpers ---------------------------------------------------------------------------------------
@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """An empty output directory; models live next to it, never inside."""
    d = tmp_path / "out"
    d.mkdir()
    return d


def build_args(model: Path, out_dir: Path, *extra: str, framework: str = "5", soc: str = "cpu") -> list[str]:
    return [f"--model={model}", f"--framework={framework}", f"--output={out_dir / 'm'}", f"--soc_version={soc}", *extra]


def assert_failed(result: Result, code: str, *culprits: str) -> None:
    """Non-zero exit, ATC's failure line, the E-code report, and every culprit named."""
    assert result.code != 0, result.output
    assert FAILURE in result.out, result.output
    assert f"{code}: " in result.out, result.output
    report = result.out[result.out.index(f"{code}: ") :]
    for culprit in culprits:
        assert culprit in report, f"{culprit!r} not named in:\n{report}"
    assert "Traceback" not in result.output


def assert_empty(directory: Path) -> None:
    """Nothing at all in ``directory``: no .om, no hidden staging/temporary file."""
    assert sorted(p.name for p in directory.iterdir()) == []


def assert_no_om_anywhere(root: Path) -> None:
    leftovers = [p for p in root.rglob("*") if p.suffix in (".om", ".tmp") or "staging" in p.name]
    assert leftovers == []


def raised(func: Callable[[], object]) -> OpenATCError:
    with pytest.raises(OpenATCError) as info:
        func()
    return info.value


# -- the model file --------------------------------------------------------------------------------
def test_missing_model_file(run_cli: Cli, tmp_path: Path, out_dir: Path) -> None:
    missing = tmp_path / "does_not_exist.onnx"
    result = run_cli(*build_args(missing, out_dir, "--input_shape=x:1,4"))
    assert_failed(result, "E10410", "does_not_exist.onnx", "--model")
    assert_empty(out_dir)


def test_model_is_a_directory(run_cli: Cli, tmp_path: Path, out_dir: Path) -> None:
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    result = run_cli(*build_args(folder, out_dir))
    assert_failed(result, "E10410", "folder.onnx", "--model")
    assert_empty(out_dir)


@root_can_read_anything
def test_unreadable_model_file(run_cli: Cli, tiny_model: Path, out_dir: Path) -> None:
    tiny_model.chmod(0)
    try:
        result = run_cli(*build_args(tiny_model, out_dir, "--input_shape=x:1,4"))
    finally:
        tiny_model.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert_failed(result, "E10410", tiny_model.name, "--model")
    assert_empty(out_dir)


def _truncated(tiny_model: Path) -> bytes:
    data = tiny_model.read_bytes()
    return data[: len(data) // 2]


NOT_ONNX: dict[str, tuple[str, Callable[[Path], bytes], str]] = {
    # id: (file name, content from the tiny model, a phrase of the message)
    "truncated": ("truncated.onnx", _truncated, "truncated"),
    "random_bytes": ("random.onnx", lambda _: np.random.default_rng(1).bytes(300), "not ONNX"),
    "text": ("notes.onnx", lambda _: b"this is a text file,\nnot a model\n", "text file"),
    "empty": ("empty.onnx", lambda _: b"", "empty"),
}


@pytest.mark.parametrize("case", list(NOT_ONNX))
def test_not_onnx(run_cli: Cli, tiny_model: Path, tmp_path: Path, out_dir: Path, case: str) -> None:
    name, content, phrase = NOT_ONNX[case]
    path = tmp_path / name
    path.write_bytes(content(tiny_model))
    result = run_cli(*build_args(path, out_dir, "--input_shape=x:1,4"))
    assert_failed(result, "E20001", name, phrase)
    assert_empty(out_dir)


# A TensorFlow GraphDef (field 1: NodeDef{name="x", op="Placeholder"}), encoded by hand.
_NODE = b"\x0a\x01x\x12\x0bPlaceholder"
TF_GRAPHDEF = b"\x0a" + bytes([len(_NODE)]) + _NODE


@pytest.mark.parametrize(
    ("name", "content", "hint"),
    [
        ("model.pb", TF_GRAPHDEF, "--framework=3"),
        ("model.pb", b"\xff\xfe garbage \x00\x01", "--framework=3"),
        ("weights.caffemodel", b"\x0a\x03net\x8a\x01\x00", "--weight"),
    ],
    ids=["pb_graphdef", "pb_garbage", "caffemodel"],
)
def test_framework_does_not_match_file(
    run_cli: Cli, tmp_path: Path, out_dir: Path, name: str, content: bytes, hint: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = run_cli(*build_args(path, out_dir))
    assert_failed(result, "E20002", name, hint)
    assert_empty(out_dir)


CAFFE_PROTOTXT = b'name: "net"\nlayer {\n  name: "data"\n  type: "Input"\n}\n'


def test_caffe_prototxt_named_txt(run_cli: Cli, tmp_path: Path, out_dir: Path) -> None:
    path = tmp_path / "deploy.txt"
    path.write_bytes(CAFFE_PROTOTXT)
    result = run_cli(*build_args(path, out_dir))
    assert_failed(result, "E20001", "deploy.txt", "--framework=0")
    assert_empty(out_dir)


@pytest.mark.parametrize(
    ("name", "code", "hint"),
    [
        ("deploy.prototxt", "E20002", "--framework=0"),
        ("graph.pbtxt", "E20002", "--framework=3"),
        ("model.textproto", "E20001", "text file"),
        ("model.json", "E20001", "text file"),
    ],
)
def test_text_file_with_text_format_suffix(
    run_cli: Cli, tmp_path: Path, out_dir: Path, name: str, code: str, hint: str
) -> None:
    path = tmp_path / name
    path.write_bytes(CAFFE_PROTOTXT)
    result = run_cli(*build_args(path, out_dir))
    assert_failed(result, code, name, hint)
    assert_empty(out_dir)


def test_framework_without_frontend(run_cli: Cli, tiny_model: Path, out_dir: Path) -> None:
    result = run_cli(*build_args(tiny_model, out_dir, "--input_shape=x:1,4", framework="1"))
    assert_failed(result, "E10055", "--framework=1", "MindSpore")
    assert_empty(out_dir)


@pytest.mark.parametrize("framework", ["7", "2", "onnx", "-5"])
def test_invalid_framework(run_cli: Cli, tiny_model: Path, out_dir: Path, framework: str) -> None:
    result = run_cli(*build_args(tiny_model, out_dir, "--input_shape=x:1,4", framework=framework))
    assert_failed(result, "E10007", f"--framework={framework}")
    assert_empty(out_dir)


def test_missing_framework(run_cli: Cli, tiny_model: Path, out_dir: Path) -> None:
    result = run_cli(f"--model={tiny_model}", f"--output={out_dir / 'm'}", "--soc_version=cpu")
    assert_failed(result, "E10007", "--framework")
    assert_empty(out_dir)


# -- --input_shape ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "code", "culprits"),
    [
        ("zz:1,4", "E10016", ("'zz'", "inputs: x")),
        ("x:1,4,5", "E10049", ("'x'", "rank 2")),
        ("x:1", "E10049", ("'x'",)),
        ("x:1,a", "E10002", ("'a'", "'x'")),
        ("x:1.5,4", "E10002", ("'1.5'", "'x'")),
        ("x:0,4", "E10011", ("'x'", "0")),
        ("x:-3,4", "E10011", ("'x'", "-3")),
        ("x:4~1,4", "E10002", ("'x'", "4~1")),
        ("x:a~4,4", "E10002", ("'x'", "a~4")),
        ("x:1,4;x:2,4", "E10002", ("'x'", "twice")),
        ("1,4", "E10002", ("'1,4'",)),
        ("x:2,5", "E10002", ("'x'", "dim 1")),  # the model fixes dim 1 to 4
    ],
    ids=[
        "unknown_input",
        "rank_high",
        "rank_low",
        "non_number",
        "float",
        "zero",
        "negative",
        "range_reversed",
        "range_not_numbers",
        "twice",
        "no_name",
        "static_dim_changed",
    ],
)
def test_bad_input_shape(
    run_cli: Cli, tiny_model: Path, out_dir: Path, shape: str, code: str, culprits: tuple[str, ...]
) -> None:
    result = run_cli(*build_args(tiny_model, out_dir, f"--input_shape={shape}"))
    assert_failed(result, code, "--input_shape", *culprits)
    assert_empty(out_dir)


def test_dynamic_input_without_input_shape(run_cli: Cli, tiny_model: Path, out_dir: Path) -> None:
    result = run_cli(*build_args(tiny_model, out_dir))
    assert_failed(result, "E10054", "'x'", "--input_shape")
    assert_empty(out_dir)


# -- --out_nodes / --output_type -------------------------------------------------------------------
@pytest.mark.parametrize("out_nodes", ["nothing", "mm:5", "nosuchnode:0", "y;nothing"])
def test_out_nodes_naming_nothing(run_cli: Cli, tiny_model: Path, out_dir: Path, out_nodes: str) -> None:
    result = run_cli(*build_args(tiny_model, out_dir, "--input_shape=x:1,4", f"--out_nodes={out_nodes}"))
    bad = out_nodes.split(";")[-1]
    assert_failed(result, "E10016", "--out_nodes", bad)
    assert_empty(out_dir)


@pytest.mark.parametrize("value", ["FP99", "float", "FP16:0"])
def test_invalid_output_type(run_cli: Cli, tiny_model: Path, out_dir: Path, value: str) -> None:
    result = run_cli(*build_args(tiny_model, out_dir, "--input_shape=x:1,4", f"--output_type={value}"))
    assert_failed(result, "E10001", "--output_type")
    assert_empty(out_dir)


def test_per_output_type_without_matching_out_nodes(run_cli: Cli, two_output_model: Path, out_dir: Path) -> None:
    result = run_cli(*build_args(two_output_model, out_dir, "--output_type=relu:0:FP16"))
    assert_failed(result, "E10001", "--output_type", "relu:0", "--out_nodes")
    assert_empty(out_dir)
    result = run_cli(*build_args(two_output_model, out_dir, "--out_nodes=sig:0", "--output_type=relu:0:FP16"))
    assert_failed(result, "E10001", "--output_type", "relu:0", "--out_nodes")
    assert_empty(out_dir)


def test_per_output_type_with_bad_type(run_cli: Cli, two_output_model: Path, out_dir: Path) -> None:
    result = run_cli(*build_args(two_output_model, out_dir, "--out_nodes=relu:0", "--output_type=relu:0:FP99"))
    assert_failed(result, "E10001", "--output_type", "FP99")
    assert_empty(out_dir)


# -- --output --------------------------------------------------------------------------------------
def test_output_in_missing_directory(run_cli: Cli, tiny_model: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli(
        f"--model={tiny_model}",
        "--framework=5",
        f"--output={tmp_path / 'no_such_dir' / 'm'}",
        "--soc_version=cpu",
        "--input_shape=x:1,4",
    )
    assert_failed(result, "E13002", "--output", "no_such_dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert_no_om_anywhere(tmp_path)


@root_can_read_anything
def test_output_in_read_only_directory(run_cli: Cli, tiny_model: Path, out_dir: Path) -> None:
    out_dir.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        result = run_cli(*build_args(tiny_model, out_dir, "--input_shape=x:1,4"))
    finally:
        out_dir.chmod(stat.S_IRWXU)
    assert_failed(result, "E13002", "--output", str(out_dir))
    assert_empty(out_dir)


def test_output_without_file_name(run_cli: Cli, tiny_model: Path, out_dir: Path) -> None:
    result = run_cli(
        f"--model={tiny_model}", "--framework=5", f"--output={out_dir}/", "--soc_version=cpu", "--input_shape=x:1,4"
    )
    assert_failed(result, "E10022", "--output")
    assert_empty(out_dir)


# -- --soc_version ---------------------------------------------------------------------------------
@pytest.mark.parametrize("soc", ["Ascend310P3", "gpu"])
def test_unknown_soc_version(run_cli: Cli, tiny_model: Path, out_dir: Path, soc: str) -> None:
    result = run_cli(*build_args(tiny_model, out_dir, "--input_shape=x:1,4", soc=soc))
    assert_failed(result, "E40001", f"--soc_version={soc}", "cpu", "reference")
    assert_empty(out_dir)


# -- a failure after the graph was built leaves nothing either -------------------------------------
def test_backend_load_failure_leaves_nothing(run_cli: Cli, tmp_path: Path, out_dir: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("NoSuchKernel", ["x"], ["y"], name="weird", domain="com.microsoft")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    )
    path = tmp_path / "ms.onnx"
    onnx.save(model, str(path))
    result = run_cli(*build_args(path, out_dir))
    assert_failed(result, "E40003", "NoSuchKernel")
    assert_empty(out_dir)


def test_failed_rebuild_keeps_previous_om(run_cli: Cli, tiny_model: Path, tmp_path: Path, out_dir: Path) -> None:
    assert run_cli(*build_args(tiny_model, out_dir, "--input_shape=x:1,4")).code == 0
    previous = (out_dir / "m.om").read_bytes()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(tiny_model.read_bytes()[:100])
    result = run_cli(*build_args(broken, out_dir, "--input_shape=x:1,4"))
    assert_failed(result, "E20001", "broken.onnx")
    assert sorted(p.name for p in out_dir.iterdir()) == ["m.om"]
    assert (out_dir / "m.om").read_bytes() == previous


# -- damaged .om files -----------------------------------------------------------------------------
@pytest.fixture
def om_copy(tmp_path: Path) -> Callable[[str, bytes], Path]:
    """``om_copy(name, data)``: writes a variant of ``tiny_om`` into ``tmp_path/bad/``."""
    folder = tmp_path / "bad"
    folder.mkdir()

    def _write(name: str, data: bytes) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return _write


def _flip_middle(data: bytes) -> bytes:
    buf = bytearray(data)
    buf[len(buf) // 2] ^= 0xFF
    return bytes(buf)


def _with_version(data: bytes, major: int, minor: int) -> bytes:
    fields = list(HEADER.unpack_from(data, 0))
    fields[1], fields[2] = major, minor
    return HEADER.pack(*fields) + data[HEADER.size :]


def test_om_header_layout_assumption(tiny_om: Path) -> None:
    """The patching below relies on: major/minor right after the 8-byte magic, header of 128 B."""
    data = tiny_om.read_bytes()
    magic, major, minor, header_size, file_size, *_ = HEADER.unpack_from(data, 0)
    assert magic.startswith(b"OPENATC")
    assert (major, minor) == FORMAT_VERSION
    assert header_size == HEADER_SIZE == 128
    assert file_size == len(data)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("flipped_byte", "E50002"),
        ("truncated_half", "E50002"),
        ("truncated_to_100_bytes", "E50002"),
        ("extended", "E50002"),
        ("onnx_file", "E50001"),
        ("random_bytes", "E50001"),
        ("newer_major", "E50003"),
    ],
)
def test_damaged_om(
    run_cli: Cli, tiny_om: Path, tiny_static_model: Path, om_copy: Callable[[str, bytes], Path], case: str, code: str
) -> None:
    data = tiny_om.read_bytes()
    content = {
        "flipped_byte": lambda: _flip_middle(data),
        "truncated_half": lambda: data[: len(data) // 2],
        "truncated_to_100_bytes": lambda: data[:100],
        "extended": lambda: data + b"\x00" * 64,
        "onnx_file": lambda: tiny_static_model.read_bytes(),
        "random_bytes": lambda: np.random.default_rng(2).bytes(4096),
        "newer_major": lambda: _with_version(data, FORMAT_VERSION[0] + 1, 0),
    }[case]()
    path = om_copy(f"{case}.om", content)
    # Python API
    error = raised(lambda: Session(path))
    assert error.code == code
    assert path.name in error.message
    if case == "newer_major":
        assert f"{FORMAT_VERSION[0] + 1}.0" in error.message
    # openatc run
    result = run_cli("run", str(path))
    assert_failed(result, code, path.name)
    # --mode=1 writes no JSON
    json_dir = path.parent / "json"
    json_dir.mkdir()
    result = run_cli("--mode=1", f"--om={path}", f"--json={json_dir / 'm.json'}")
    assert_failed(result, code, path.name)
    assert_empty(json_dir)


def test_newer_minor_version_still_loads(tiny_om: Path, om_copy: Callable[[str, bytes], Path]) -> None:
    path = om_copy("minor.om", _with_version(tiny_om.read_bytes(), FORMAT_VERSION[0], FORMAT_VERSION[1] + 7))
    with Session(path) as session:
        y = session.run({"x": np.ones((2, 4), np.float32)})["y"]
    assert y.shape == (2, 128)


def test_short_text_file_is_not_an_om(om_copy: Callable[[str, bytes], Path]) -> None:
    path = om_copy("notes.om", b"hello, this is not an om file\n")
    assert raised(lambda: Session(path)).code == "E50001"


def test_tiny_file_is_not_an_om(run_cli: Cli, om_copy: Callable[[str, bytes], Path]) -> None:
    path = om_copy("tiny.om", b"hi\n")
    error = raised(lambda: Session(path))
    assert error.code == "E50001"
    assert "tiny.om" in error.message
    assert_failed(run_cli("run", str(path)), "E50001", "tiny.om")


def test_missing_om_file(run_cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "absent.om"
    assert raised(lambda: Session(path)).code == "E10410"
    assert_failed(run_cli("run", str(path)), "E10410", "absent.om")
    result = run_cli("--mode=1", f"--om={path}", f"--json={tmp_path / 'm.json'}")
    assert_failed(result, "E10410", "absent.om", "--om")
    assert not (tmp_path / "m.json").exists()


# -- run-time input errors (Session.run) -----------------------------------------------------------
@pytest.fixture
def session(tiny_om: Path) -> Iterator[Session]:
    with Session(tiny_om) as s:
        yield s


def test_run_unknown_input_name(session: Session) -> None:
    x = np.zeros((2, 4), np.float32)
    error = raised(lambda: session.run({"x": x, "bogus": x}))
    assert error.code == "E40010"
    assert "'bogus'" in error.message
    assert "x: float32[2,4]" in error.message  # the expected input, dtype and shape


def test_run_renamed_input(session: Session) -> None:
    error = raised(lambda: session.run({"X": np.zeros((2, 4), np.float32)}))
    assert error.code == "E40010"
    assert "'X'" in error.message
    assert "missing input(s) ['x']" in error.message
    assert "x: float32[2,4]" in error.message


def test_run_missing_input(session: Session) -> None:
    error = raised(lambda: session.run({}))
    assert error.code == "E40010"
    assert "'x'" in error.message
    assert "float32[2,4]" in error.message


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.bool_])
def test_run_wrong_dtype(session: Session, dtype: type) -> None:
    error = raised(lambda: session.run({"x": np.zeros((2, 4), dtype)}))
    assert error.code == "E40010"
    assert "'x'" in error.message
    assert "float32" in error.message
    assert np.dtype(dtype).name in error.message


@pytest.mark.parametrize("shape", [(3, 4), (2, 5), (8,), (1, 2, 4), ()])
def test_run_wrong_shape(session: Session, shape: tuple[int, ...]) -> None:
    error = raised(lambda: session.run({"x": np.zeros(shape, np.float32)}))
    assert error.code == "E40010"
    assert "'x'" in error.message
    assert str(shape) in error.message
    assert "[2,4]" in error.message


def test_run_not_an_array(session: Session) -> None:
    error = raised(lambda: session.run({"x": [[0.0] * 4] * 2}))  # type: ignore[dict-item]
    assert error.code == "E40010"
    assert "'x'" in error.message
    assert "numpy array" in error.message


def test_run_unknown_output_name(session: Session) -> None:
    error = raised(lambda: session.run({"x": np.zeros((2, 4), np.float32)}, output_names=["nope"]))
    assert error.code == "E40010"
    assert "'nope'" in error.message
    assert "'y'" in error.message


def test_run_errors_through_the_cli(run_cli: Cli, tiny_om: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 4), np.float32))
    dest = tmp_path / "res"
    result = run_cli("run", str(tiny_om), "--input", str(tmp_path / "x.npy"), "--output", str(dest))
    assert_failed(result, "E40010", "'x'", "(3, 4)", "[2,4]")
    assert not dest.exists()


# -- the Python API raises the same codes ----------------------------------------------------------
def test_api_raises_same_codes(tiny_model: Path, out_dir: Path) -> None:
    common = {"framework": 5, "output": str(out_dir / "m"), "soc_version": "cpu"}
    cases = [
        ({"model": str(tiny_model), "input_shape": "zz:1,4"}, "E10016", "'zz'"),
        ({"model": str(tiny_model), "input_shape": "x:0,4"}, "E10011", "'x'"),
        ({"model": str(tiny_model) + ".missing", "input_shape": "x:1,4"}, "E10410", "--model"),
        ({"model": str(tiny_model), "input_shape": "x:1,4", "out_nodes": "nothing"}, "E10016", "nothing"),
    ]
    for flags, code, culprit in cases:
        error = raised(lambda flags=flags: openatc.build(**common, **flags))
        assert error.code == code, flags
        assert culprit in error.message
    assert_empty(out_dir)
