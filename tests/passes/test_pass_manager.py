"""The pass manager: --fusion_switch_file (line and JSON forms, ALL:off, errors), the fixed-point
rounds, the missed-fusion report and the per-gear memory plan in the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

import openatc
from openatc.errors import OpenATCError
from openatc.passmanager import enabled_passes, order_passes, parse_fusion_switch_file
from openatc.testing import read_manifest
from openatc.types import PassSpec

from ._helpers import model, ort_run, rand
from .test_fuse_attention import _attention

SPECS = [
    PassSpec("a_fusion", "fuse", lambda ctx: None),
    PassSpec("b_fusion", "fuse", lambda ctx: None, default_on=False),
    PassSpec("fixed", "canonicalize", lambda ctx: None, switchable=False),
]


def test_line_form(tmp_path: Path) -> None:
    path = tmp_path / "switch.cfg"
    path.write_text("# comment\nattention_fusion:off\n\nGeluFusion : on  # trailing\n")
    assert parse_fusion_switch_file(path) == (("attention_fusion", False), ("GeluFusion", True))


def test_json_form(tmp_path: Path) -> None:
    path = tmp_path / "switch.json"
    data = {"Switch": {"GraphFusion": {"ALL": "off", "a_fusion": "on"}, "UBFusion": {"b_fusion": "on"}}}
    path.write_text(json.dumps(data))
    switches = parse_fusion_switch_file(path)
    assert switches == (("ALL", False), ("a_fusion", True), ("b_fusion", True))
    assert enabled_passes(SPECS, switches) == {"a_fusion": True, "b_fusion": True, "fixed": True}


def test_all_off_leaves_unswitchable_passes() -> None:
    assert [s.name for s in order_passes(SPECS, switches=(("ALL", False),))] == ["fixed"]
    assert [s.name for s in order_passes(SPECS)] == ["fixed", "a_fusion"]


@pytest.mark.parametrize("text", ["attention_fusion=off\n", "attention_fusion:maybe\n", '{"Switch": 3}', "{bad json"])
def test_malformed_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "switch.cfg"
    path.write_text(text)
    with pytest.raises(OpenATCError) as err:
        parse_fusion_switch_file(path)
    assert err.value.code == "E10001" and str(path) in err.value.message


def test_unknown_or_fixed_pass_lists_the_switchable_ones() -> None:
    with pytest.raises(OpenATCError) as err:
        enabled_passes(SPECS, (("NoSuchPass", False),))
    assert err.value.code == "E10001" and "a_fusion, b_fusion" in (err.value.hint or "")
    with pytest.raises(OpenATCError, match="always runs"):
        enabled_passes(SPECS, (("fixed", False),))


def _save(proto, path: Path) -> Path:
    import onnx

    onnx.save(proto, path)
    return path


def test_build_honours_the_switch_file_and_reports(tmp_path: Path, compile_om) -> None:
    proto, feeds = _attention("legacy")
    src = _save(proto, tmp_path / "attn.onnx")
    switch = tmp_path / "fusion.cfg"
    switch.write_text("attention_fusion:off\n")
    off = compile_om(src, tmp_path / "off", fusion_switch_file=str(switch))
    gear = read_manifest(off)["gears"][0]
    assert "attention_fusion" not in [p["name"] for p in gear["passes"]]
    assert [m["fusion"] for m in gear["missed_fusions"]] == ["attention_fusion"]
    on = compile_om(src, tmp_path / "on")
    gear = read_manifest(on)["gears"][0]
    entry = next(p for p in gear["passes"] if p["name"] == "attention_fusion")
    # cpu lists Attention in its slow_ops: MultiHeadAttention after the projections
    assert entry["hits"] == {"Attention": 0, "MultiHeadAttention": 1} and gear["missed_fusions"] == []
    assert gear["ops"]["com.microsoft::MultiHeadAttention"] == 1 and "Softmax" not in gear["ops"]
    with openatc.Session(on) as session:
        got = session.run(feeds)["y"]
    np.testing.assert_allclose(got, ort_run(proto, feeds)[0], rtol=1e-4, atol=1e-4)


def test_default_off_pass_can_be_turned_on(tmp_path: Path, compile_om) -> None:
    nodes = [
        helper.make_node("Add", ["x", "s"], ["a"]),
        helper.make_node("LayerNormalization", ["a", "g", "b"], ["y"], axis=-1),
    ]
    proto = model(nodes, [("x", [2, 4, 16]), ("s", [2, 4, 16])], [("y", [2, 4, 16])], {"g": rand(16), "b": rand(16)})
    src = _save(proto, tmp_path / "skip.onnx")
    switch = tmp_path / "fusion.json"
    switch.write_text('{"Switch": {"GraphFusion": {"skip_layer_norm_fusion": "on"}}}')
    gear = read_manifest(compile_om(src, tmp_path / "skip", fusion_switch_file=str(switch)))["gears"][0]
    assert gear["ops"] == {"com.microsoft::SkipLayerNormalization": 1}
    gear = read_manifest(compile_om(src, tmp_path / "plain"))["gears"][0]
    assert gear["ops"] == {"Add": 1, "LayerNormalization": 1}


def test_cli_accepts_the_flag_and_rejects_unknown_passes(tmp_path: Path, run_cli) -> None:
    proto, _ = _attention("legacy")
    src = _save(proto, tmp_path / "attn.onnx")
    switch = tmp_path / "fusion.cfg"
    switch.write_text("NoSuchFusionPass:off\n")
    common = ["--model", src, "--framework=5", "--soc_version=cpu", "--output", tmp_path / "m"]
    result = run_cli(*common, f"--fusion_switch_file={switch}")
    assert result.code != 0 and "E10001" in result.output and "attention_fusion" in result.output
    switch.write_text("ALL:off\n")
    assert run_cli(*common, f"--fusion_switch_file={switch}").code == 0


def test_memory_plan_in_manifest_and_reference_run_stays_within_it(tmp_path: Path, compile_om) -> None:
    proto, feeds = _attention("dynamo", mask=True)
    src = _save(proto, tmp_path / "attn.onnx")
    om = compile_om(src, tmp_path / "ref", soc_version="reference")
    memory = read_manifest(om)["gears"][0]["memory"]
    assert memory["lower_bound_bytes"] <= memory["arena_bytes"] <= memory["intermediate_bytes"]
    assert memory["arena_bytes"] <= 1.05 * memory["lower_bound_bytes"]
    with openatc.Session(om) as session:
        got = session.run(feeds)["y"]
        executor = session._executors[0]
    np.testing.assert_allclose(got, ort_run(proto, feeds)[0], rtol=1e-4, atol=1e-4)
    assert executor.stepwise and 0 < executor.peak_bytes <= memory["lower_bound_bytes"]


def test_failing_pass_names_itself_and_the_node() -> None:
    import onnx_ir as ir

    from openatc.passmanager import run_passes
    from openatc.types import BackendCapabilities, PassContext

    class Broken(ir.passes.InPlacePass):
        def call(self, model: ir.Model) -> ir.passes.PassResult:
            for node in model.graph:
                if node.op_type == "Sigmoid":
                    raise ValueError("cannot handle this")
            return ir.passes.PassResult(model, modified=False)

    proto = model([helper.make_node("Sigmoid", ["x"], ["y"], name="sig0")], [("x", [2])], [("y", [2])])
    spec = PassSpec("broken_fusion", "fuse", lambda ctx: Broken())
    ctx = PassContext(options=None, capabilities=BackendCapabilities())  # type: ignore[arg-type]
    with pytest.raises(OpenATCError) as err:
        run_passes(ir.serde.deserialize_model(proto), [spec], ctx)
    assert err.value.code == "E30001"
    assert "broken_fusion" in err.value.message and "'sig0' (Sigmoid)" in err.value.message


def test_settled_passes_are_skipped_in_later_rounds() -> None:
    """A pass that changed nothing is not run again until another pass changes the graph."""
    import onnx_ir as ir

    from openatc.passmanager import run_passes

    calls: list[str] = []

    class Counting(ir.passes.InPlacePass):
        def __init__(self, name: str, changes: int) -> None:
            super().__init__()
            self.name, self.changes = name, changes

        def call(self, m: ir.Model) -> ir.passes.PassResult:
            calls.append(self.name)
            done = calls.count(self.name) <= self.changes
            if done:  # one Identity removed per change
                node = next(n for n in m.graph if n.op_type == "Identity")
                node.outputs[0].replace_all_uses_with(node.inputs[0])
                m.graph.remove(node, safe=True)
            self.hits = {"x": int(done)}
            return ir.passes.PassResult(m, modified=done)

    nodes = [helper.make_node("Identity", ["x" if i == 0 else f"t{i}"], [f"t{i + 1}"]) for i in range(3)]
    nodes.append(helper.make_node("Relu", ["t3"], ["y"]))
    m = ir.serde.deserialize_model(model(nodes, [("x", [2])], [("y", [2])]))
    specs = [
        PassSpec("early", "canonicalize", lambda ctx: Counting("early", 0)),
        PassSpec("changer", "fold", lambda ctx: Counting("changer", 2)),
        PassSpec("late", "fuse", lambda ctx: Counting("late", 0)),
    ]
    report = run_passes(m, order_passes(specs), None)  # type: ignore[arg-type]
    # round 1: all three (changer changes); round 2: all three (changer changes again);
    # round 3: early (changed since), changer (no change now); late is settled and skipped
    assert calls == ["early", "changer", "late", "early", "changer", "late", "early", "changer"]
    assert {r.name: r.rounds for r in report} == {"early": 3, "changer": 3, "late": 2}
