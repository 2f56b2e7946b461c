"""The README's scenario: the example encoder converted exactly as the README says, then run."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import openatc
from openatc.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = importlib.util.spec_from_file_location("make_text_encoder", ROOT / "examples" / "make_text_encoder.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = tmp_path_factory.mktemp("encoder") / "text_encoder.onnx"
    module.write_model(path, 0)
    return path


def _readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.DOTALL)
    assert block, "README lost its first bash block"
    commands = []
    for part in block.group(1).replace("\\\n", " ").split("&&"):
        words = shlex.split(part)
        if words and words[0] == "openatc":
            commands.append(words[1:])
    return commands


def test_readme_commands_build_and_run(encoder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commands = _readme_commands()
    assert len(commands) == 2, commands
    build, run = commands
    build = [a.replace("examples/text_encoder.onnx", str(encoder)).replace("out/", f"{tmp_path}/") for a in build]
    assert main(build) == 0
    om = tmp_path / "text_encoder_bs1_seq64.om"
    assert om.is_file()
    run = [a.replace("out/", f"{tmp_path}/") for a in run]
    assert main(run) == 0
    out = capsys.readouterr().out
    assert "openatc run success" in out
    assert "last_hidden_state: float16[1, 64, 512]" in out
    assert "median" in out

    ids = np.random.default_rng(0).integers(0, 4096, (1, 64)).astype(np.int64)
    import onnxruntime as ort

    (want,) = ort.InferenceSession(str(encoder), providers=["CPUExecutionProvider"]).run(None, {"input_ids": ids})
    with openatc.Session(om) as sess:
        got = sess.run({"input_ids": ids})["last_hidden_state"]
    assert got.dtype == np.float16 and got.shape == (1, 64, 512)
    # FP16 output: one rounding of values of magnitude <= ~5 (ulp 2**-8 there)
    np.testing.assert_allclose(got.astype(np.float32), want, rtol=0, atol=4e-3)


@pytest.mark.parametrize("soc", ["cpu", "reference"])
def test_fp32_encoder_matches_onnxruntime(encoder: Path, tmp_path: Path, soc: str) -> None:
    om = openatc.build(
        model=encoder,
        framework=5,
        output=tmp_path / "enc",
        soc_version=soc,
        input_format="ND",
        input_shape="input_ids:2,32",
    )
    ids = np.random.default_rng(1).integers(0, 4096, (2, 32)).astype(np.int64)
    import onnxruntime as ort

    (want,) = ort.InferenceSession(str(encoder), providers=["CPUExecutionProvider"]).run(None, {"input_ids": ids})
    with openatc.Session(om) as sess:
        got = sess.run({"input_ids": ids})["last_hidden_state"]
        gear = sess.manifest["gears"][0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    # with static shapes the Shape->Gather->Concat subgraph is folded away
    assert "Shape" not in gear["ops"] and "Concat" not in gear["ops"]
    assert om.stat().st_size <= 1.01 * encoder.stat().st_size
