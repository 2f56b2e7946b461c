"""The plugin manager: every hook family, duplicate detection, validation, built-ins, lazy imports.

Every test works on a fresh manager (the ``plugin_manager`` fixture of :mod:`openatc.testing`);
the process-wide one is never touched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import pluggy
import pytest
import typer
from typer.testing import CliRunner

import openatc
from openatc.manager import BUILTIN_PLUGINS, OpenATCPluginManager, get_plugin_manager
from openatc.testing import (
    PluginRegistrar,
    assert_numerically_equal,
    make_inputs,
    make_tiny_onnx,
    read_manifest,
    run_onnx_reference,
)

pytest_plugins = ["openatc.testing"]

TOY_SOC = "ToyNPU100"
TOY_FRAMEWORK = 1  # an ATC framework id (MindSpore) that no built-in frontend serves


# -- a plugin contributing to every hook family ---------------------------------------------------
def _load_toy_model(model: Path, weight: Path | None, options: openatc.BuildOptions) -> ir.Model:
    """The toy frontend: its ``.toy`` files are ONNX files under another name."""
    del weight, options
    return ir.load(str(model))


class ReluToMaxPass(ir.passes.InPlacePass):
    """Rewrites ``Relu(x)`` as ``Max(x, 0)``; ``hits`` counts the rewrites for the pass report."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, int] = {}

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        count = 0
        for node in list(graph):
            if node.op_type != "Relu" or node.domain not in ("", "ai.onnx"):
                continue
            x, out = node.inputs[0], node.outputs[0]
            assert x is not None and x.dtype is not None
            zero = ir.Value(
                name=f"{node.name}_zero",
                type=ir.TensorType(x.dtype),
                shape=ir.Shape([]),
                const_value=ir.tensor(np.array(0, dtype=x.dtype.numpy())),
            )
            graph.register_initializer(zero)
            new = ir.Node("", "Max", [x, zero], name=f"{node.name}_max", num_outputs=1)
            new.outputs[0].name = f"{out.name}_max"
            new.outputs[0].type, new.outputs[0].shape = out.type, out.shape
            graph.insert_before(node, new)
            out.replace_all_uses_with(new.outputs[0], replace_graph_outputs=True)
            graph.remove(node, safe=True)
            count += 1
        self.hits = {"Relu->Max": count} if count else {}
        return ir.passes.PassResult(model, modified=bool(count))


class ReferenceExecutor:
    """Runs a gear with onnx's ReferenceEvaluator, feeding the stubbed weights as inputs."""

    def __init__(self, ctx: openatc.LoadContext) -> None:
        from onnx.reference import ReferenceEvaluator

        model = onnx.ModelProto.FromString(ctx.graph)
        stubbed = [i for i in model.graph.initializer if i.name in ctx.weights]
        kept = [i for i in model.graph.initializer if i.name not in ctx.weights]
        for init in stubbed:
            model.graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, init.dims))
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
        self.evaluator = ReferenceEvaluator(model)
        self.weights = {i.name: ctx.weights[i.name] for i in stubbed}

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str]) -> list[np.ndarray]:
        return [np.asarray(r) for r in self.evaluator.run(list(output_names), {**feeds, **self.weights})]


class ToyNpu:
    """A backend that records its calls; ``compile`` returns a payload that ``load`` checks."""

    name = "toy"

    def __init__(self, backend_passes: tuple[openatc.PassSpec, ...] = ()) -> None:
        self.compiled: list[openatc.CompileContext] = []
        self.loaded: list[openatc.LoadContext] = []
        self.backend_passes = backend_passes

    def compile(self, model: ir.Model, ctx: openatc.CompileContext) -> bytes:
        self.compiled.append(ctx)
        return b"toy:" + ctx.gear.encode()

    def load(self, ctx: openatc.LoadContext) -> ReferenceExecutor:
        assert ctx.payload == b"toy:" + ctx.gear.encode()
        self.loaded.append(ctx)
        return ReferenceExecutor(ctx)

    def record(self) -> openatc.Backend:
        return openatc.Backend(
            name=self.name,
            soc_versions=(TOY_SOC, "ToyNPU200"),
            capabilities=openatc.BackendCapabilities(native_precision="fp16"),
            compile=self.compile,
            load=self.load,
            passes=self.backend_passes,
            versions={"toy-sdk": "9.9"},
            description="a toy NPU",
        )


class EveryHook:
    """One plugin object implementing all six hook families."""

    def __init__(self) -> None:
        self.npu = ToyNpu()

    @openatc.hookimpl
    def openatc_frontends(self) -> Iterator[openatc.Frontend]:
        yield openatc.Frontend("toy", (TOY_FRAMEWORK,), (".toy",), _load_toy_model, description="toy files")

    @openatc.hookimpl
    def openatc_passes(self) -> Iterator[openatc.PassSpec]:
        yield openatc.PassSpec("relu_to_max", "fuse", lambda ctx: ReluToMaxPass(), description="Relu as Max")
        yield openatc.PassSpec("never_runs", "fuse", lambda ctx: pytest.fail("off by default"), default_on=False)

    @openatc.hookimpl
    def openatc_quantizers(self) -> Iterator[openatc.Quantizer]:
        yield openatc.Quantizer("toy_minmax", factory=lambda: None)

    @openatc.hookimpl
    def openatc_aipp_formats(self) -> Iterator[openatc.AippFormat]:
        yield openatc.AippFormat("TOY_U8", build=lambda config, model_input: [], channels=1)

    @openatc.hookimpl
    def openatc_backends(self) -> Iterator[openatc.Backend]:
        yield self.npu.record()

    @openatc.hookimpl
    def openatc_register_commands(self, app: typer.Typer) -> None:
        @app.command("toy-hello")
        def toy_hello(name: str = "world") -> None:
            typer.echo(f"hello {name} from toy")


class Records:
    """A plugin object contributing the given records (for duplicate tests)."""

    def __init__(self, **records: Sequence[Any]) -> None:
        self.records = records

    @openatc.hookimpl
    def openatc_frontends(self) -> Sequence[openatc.Frontend]:
        return self.records.get("frontends", ())

    @openatc.hookimpl
    def openatc_passes(self) -> Sequence[openatc.PassSpec]:
        return self.records.get("passes", ())

    @openatc.hookimpl
    def openatc_quantizers(self) -> Sequence[openatc.Quantizer]:
        return self.records.get("quantizers", ())

    @openatc.hookimpl
    def openatc_aipp_formats(self) -> Sequence[openatc.AippFormat]:
        return self.records.get("aipp_formats", ())

    @openatc.hookimpl
    def openatc_backends(self) -> Sequence[openatc.Backend]:
        return self.records.get("backends", ())


def _backend(name: str, *socs: str) -> openatc.Backend:
    npu = ToyNpu()
    return openatc.Backend(name, socs, openatc.BackendCapabilities(), npu.compile, npu.load)


def _build(pm: OpenATCPluginManager, model: Path, out: Path, **flags: Any) -> Path:
    flags.setdefault("framework", 5)
    flags.setdefault("soc_version", "cpu")
    return openatc.build(model=str(model), output=str(out), plugin_manager=pm, **flags)


# -- the manager itself ---------------------------------------------------------------------------
def test_fixture_gives_a_fresh_manager_with_builtins_only(plugin_manager: OpenATCPluginManager) -> None:
    assert isinstance(plugin_manager, OpenATCPluginManager)
    assert {name for name, _ in plugin_manager.list_name_plugin()} == set(BUILTIN_PLUGINS)
    other = get_plugin_manager(load_entrypoints=False)
    assert other is not plugin_manager
    plugin_manager.register(EveryHook(), name="only_here")
    assert other.get_plugin("only_here") is None
    assert "toy" not in other.backends()


def test_builtins_come_from_the_tuple_and_are_listed_as_built_in(
    plugin_manager: OpenATCPluginManager, register_plugin: PluginRegistrar
) -> None:
    assert isinstance(BUILTIN_PLUGINS, tuple) and len(set(BUILTIN_PLUGINS)) == len(BUILTIN_PLUGINS)
    assert all(m.startswith(("openatc.frontends.", "openatc.plugins.")) for m in BUILTIN_PLUGINS)
    register_plugin(EveryHook(), "toy_plugin")
    infos = {info.name: info for info in plugin_manager.plugin_infos()}
    for module in BUILTIN_PLUGINS:
        assert infos[module].origin == "built-in"
        assert infos[module].version == openatc.__version__
        assert infos[module].module == module
        assert plugin_manager.get_plugin(module) is sys.modules[module]
    assert infos["toy_plugin"].origin == "registered"
    assert [i.origin for i in plugin_manager.plugin_infos()][-1] == "registered"  # built-ins first
    assert plugin_manager.frontends()["5"].name == "onnx"
    assert {"cpu", "reference"} <= set(plugin_manager.backends())
    assert {"constant_folding", "dead_code_elimination"} <= set(plugin_manager.passes())


def test_every_hook_family_is_seen_through_the_typed_accessors(
    plugin_manager: OpenATCPluginManager, register_plugin: PluginRegistrar
) -> None:
    plugin = EveryHook()
    name = register_plugin(plugin, "toy_plugin")

    frontend = plugin_manager.frontends()[str(TOY_FRAMEWORK)]
    assert (frontend.name, frontend.suffixes) == ("toy", (".toy",))
    assert plugin_manager.passes()["relu_to_max"].stage == "fuse"
    assert plugin_manager.passes()["never_runs"].default_on is False
    assert plugin_manager.quantizers()["toy_minmax"].name == "toy_minmax"
    assert plugin_manager.aipp_formats()["TOY_U8"].channels == 1
    backend = plugin_manager.backends()["toy"]
    assert plugin_manager.backends_by_soc()["toynpu100"] == backend
    assert plugin_manager.backends_by_soc()["toynpu200"] == backend
    assert plugin_manager.backend_for_soc("TOYNPU100") == backend  # case-insensitive
    assert plugin_manager.backend_for_soc("cpu").name == "cpu"  # the built-ins are still there

    for hook, key in [
        ("openatc_frontends", str(TOY_FRAMEWORK)),
        ("openatc_passes", "relu_to_max"),
        ("openatc_quantizers", "toy_minmax"),
        ("openatc_aipp_formats", "TOY_U8"),
        ("openatc_backends", "toy"),
    ]:
        assert plugin_manager.origin_of(hook, key) == name, hook


def test_register_commands_adds_a_subcommand(
    plugin_manager: OpenATCPluginManager, register_plugin: PluginRegistrar
) -> None:
    register_plugin(EveryHook())
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """A fresh root app: the real CLI's app is module-global and must not be changed."""

    plugin_manager.hook.openatc_register_commands(app=app)
    result = CliRunner().invoke(app, ["toy-hello", "--name", "openatc"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "hello openatc from toy"


def test_records_follow_register_and_unregister(plugin_manager: OpenATCPluginManager) -> None:
    assert "toy" not in plugin_manager.backends()  # collected (and cached) before registration
    plugin = EveryHook()
    plugin_manager.register(plugin, name="late")
    assert "toy" in plugin_manager.backends()
    assert plugin_manager.backend_for_soc(TOY_SOC).name == "toy"
    plugin_manager.unregister(plugin)
    assert "toy" not in plugin_manager.backends()
    assert "relu_to_max" not in plugin_manager.passes()
    with pytest.raises(openatc.OpenATCError) as info:
        plugin_manager.backend_for_soc(TOY_SOC)
    assert info.value.code == "E40001"


# -- duplicates ------------------------------------------------------------------------------------
def _toy_pass(name: str) -> openatc.PassSpec:
    return openatc.PassSpec(name, "fold", lambda ctx: ReluToMaxPass())


@pytest.mark.parametrize(
    ("records", "accessor", "builtin", "key"),
    [
        ({"passes": [_toy_pass("constant_folding")]}, "passes", "openatc.plugins.passes", "constant_folding"),
        ({"backends": [_backend("cpu", "MyChip")]}, "backends", "openatc.plugins.backends.cpu", "'cpu'"),
        ({"backends": [_backend("mine", "CPU")]}, "backends_by_soc", "openatc.plugins.backends.cpu", "'cpu'"),
        (
            {"frontends": [openatc.Frontend("onnx2", (5,), (".onnx",), _load_toy_model)]},
            "frontends",
            "openatc.frontends.onnx",
            "'5'",
        ),
    ],
    ids=["pass", "backend-name", "soc-version", "framework-id"],
)
def test_duplicate_of_a_builtin_names_both_plugins(
    plugin_manager: OpenATCPluginManager,
    register_plugin: PluginRegistrar,
    records: dict[str, Sequence[Any]],
    accessor: str,
    builtin: str,
    key: str,
) -> None:
    register_plugin(Records(**records), "intruder")
    with pytest.raises(openatc.OpenATCError) as info:
        getattr(plugin_manager, accessor)()
    message = str(info.value)
    assert builtin in message and "intruder" in message and key in message


def test_duplicate_soc_version_fails_the_lookup_too(
    plugin_manager: OpenATCPluginManager, register_plugin: PluginRegistrar
) -> None:
    register_plugin(Records(backends=[_backend("a", "SameChip")]), "vendor_a")
    register_plugin(Records(backends=[_backend("b", "samechip")]), "vendor_b")
    assert set(plugin_manager.backends()) >= {"a", "b"}  # distinct names are fine...
    with pytest.raises(openatc.OpenATCError) as info:  # ...one soc version served twice is not
        plugin_manager.backend_for_soc("cpu")
    assert "vendor_a" in str(info.value) and "vendor_b" in str(info.value)
    assert "samechip" in str(info.value).lower()


@pytest.mark.parametrize(
    ("kind", "record", "accessor"),
    [
        ("quantizers", openatc.Quantizer("toy_range", factory=lambda: None), "quantizers"),
        ("aipp_formats", openatc.AippFormat("TOY420SP_U8", build=lambda *a: []), "aipp_formats"),
        ("backends", _backend("npu", "Chip1"), "backends"),
        ("passes", _toy_pass("fuse_everything"), "passes"),
    ],
)
def test_duplicate_between_two_plugins_names_both(
    plugin_manager: OpenATCPluginManager,
    register_plugin: PluginRegistrar,
    kind: str,
    record: Any,
    accessor: str,
) -> None:
    register_plugin(Records(**{kind: [record]}), "first_vendor")
    register_plugin(Records(**{kind: [record]}), "second_vendor")
    with pytest.raises(openatc.OpenATCError) as info:
        getattr(plugin_manager, accessor)()
    assert "'first_vendor'" in str(info.value) and "'second_vendor'" in str(info.value)
    assert record.name in str(info.value)


# -- validation ------------------------------------------------------------------------------------
class Misspelled:
    @openatc.hookimpl
    def openatc_backend(self) -> Iterator[openatc.Backend]:  # the spec is openatc_backends
        yield _backend("never", "Never")


class WrongArgument:
    @openatc.hookimpl
    def openatc_register_commands(self, application: typer.Typer) -> None:  # the spec says app
        del application


def test_check_pending_rejects_a_misspelled_hook(plugin_manager: OpenATCPluginManager) -> None:
    plugin_manager.register(Misspelled(), name="typo")  # pluggy accepts it until check_pending()
    with pytest.raises(pluggy.PluginValidationError, match="openatc_backend"):
        plugin_manager.check_pending()


def test_register_plugin_fixture_checks_and_leaves_the_manager_clean(
    plugin_manager: OpenATCPluginManager, register_plugin: PluginRegistrar
) -> None:
    with pytest.raises(pluggy.PluginValidationError, match="openatc_backend"):
        register_plugin(Misspelled(), "typo")
    assert plugin_manager.get_plugin("typo") is None
    plugin_manager.check_pending()  # nothing unknown is left behind


def test_a_hook_with_wrong_arguments_is_rejected_at_registration(plugin_manager: OpenATCPluginManager) -> None:
    with pytest.raises(pluggy.PluginValidationError, match="application"):
        plugin_manager.register(WrongArgument(), name="wrong_args")


def test_unknown_soc_version_lists_known_targets_and_plugins(
    plugin_manager: OpenATCPluginManager, register_plugin: PluginRegistrar
) -> None:
    register_plugin(EveryHook(), "toy_plugin")
    with pytest.raises(openatc.OpenATCError) as info:
        plugin_manager.backend_for_soc("Ascend310P3")
    error = info.value
    assert error.code == "E40001"
    assert "--soc_version=Ascend310P3" in error.message
    for backend in plugin_manager.backends().values():
        for soc in backend.soc_versions:
            assert soc in error.message
    assert "openatc.plugins.backends.cpu" in error.message and "toy_plugin" in error.message


def test_unknown_soc_version_fails_a_build_before_any_work(
    plugin_manager: OpenATCPluginManager, tmp_path: Path
) -> None:
    with pytest.raises(openatc.OpenATCError) as info:
        _build(plugin_manager, make_tiny_onnx(tmp_path), tmp_path / "out", soc_version=TOY_SOC)
    assert info.value.code == "E40001"
    assert not (tmp_path / "out.om").exists()


def test_import_openatc_loads_no_plugin_and_no_runtime() -> None:
    script = textwrap.dedent(
        """
        import json, sys
        import openatc
        openatc.BuildOptions, openatc.Backend, openatc.hookimpl
        print(json.dumps(sorted(sys.modules)))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    loaded = set(json.loads(proc.stdout))
    heavy = {
        "onnxruntime",
        "openatc.plugins",
        "openatc.frontends",
        "openatc.runtime",
        "openatc.testing",
        "tensorflow",
        "torch",
        "caffe",
        "pytest",
    }
    assert not loaded & (heavy | set(BUILTIN_PLUGINS))
    assert not [m for m in loaded if m.startswith(("openatc.plugins.", "openatc.frontends.", "onnxruntime."))]


# -- contributions used in a build -----------------------------------------------------------------
def test_a_plugin_pass_runs_in_the_build_and_is_reported(
    plugin_manager: OpenATCPluginManager, register_plugin: PluginRegistrar, tmp_path: Path
) -> None:
    register_plugin(EveryHook(), "toy_plugin")
    model = make_tiny_onnx(tmp_path)
    om = _build(plugin_manager, model, tmp_path / "tiny")

    gear = read_manifest(om)["gears"][0]
    by_name = {entry["name"]: entry for entry in gear["passes"]}
    entry = by_name["relu_to_max"]
    assert entry["stage"] == "fuse" and entry["modified"] is True
    assert entry["hits"] == {"Relu->Max": 1}
    assert entry["nodes_after"] == entry["nodes_before"]  # one node replaced by one
    assert "never_runs" not in by_name  # default_on=False
    assert gear["ops"].get("Max") == 1 and "Relu" not in gear["ops"]
    order = [e["name"] for e in gear["passes"]]
    assert order.index("constant_folding") < order.index("relu_to_max")  # fold runs before fuse

    feeds = make_inputs(model, seed=3)
    with openatc.Session(om, plugin_manager=plugin_manager) as session:
        assert_numerically_equal(session.run(feeds), run_onnx_reference(model, feeds), rtol=1e-5, atol=1e-5)


def test_a_plugin_backend_serves_its_soc_version(
    plugin_manager: OpenATCPluginManager, register_plugin: PluginRegistrar, tmp_path: Path
) -> None:
    plugin = EveryHook()
    register_plugin(plugin, "toy_plugin")
    model = make_tiny_onnx(tmp_path)
    om = _build(plugin_manager, model, tmp_path / "tiny_toy", soc_version=TOY_SOC)

    manifest = read_manifest(om)
    assert manifest["backend"]["name"] == "toy"
    assert manifest["backend"]["native_precision"] == "fp16"
    assert manifest["producer"]["toy-sdk"] == "9.9"
    assert manifest["gears"][0]["payload_section"] == "gear0/payload"
    [compiled] = plugin.npu.compiled
    assert compiled.gear == "gear0" and compiled.options.soc_version == TOY_SOC
    assert len(plugin.npu.loaded) == 1  # the build loads the .om back once before renaming it

    feeds = make_inputs(model, seed=5)
    with openatc.Session(om, plugin_manager=plugin_manager) as session:
        assert session.backend.name == "toy"
        outputs = session.run(feeds)
    loaded = plugin.npu.loaded[-1]
    assert loaded.payload == b"toy:gear0" and set(loaded.weights) == {"W1", "W2"}
    assert all(not array.flags.writeable for array in loaded.weights.values())  # views of the .om
    assert_numerically_equal(outputs, run_onnx_reference(model, feeds), rtol=1e-5, atol=1e-5)

    with pytest.raises(openatc.OpenATCError) as info:  # a manager without the plugin cannot load it
        openatc.Session(om, plugin_manager=get_plugin_manager(load_entrypoints=False))
    assert info.value.code == "E40003" and "'toy'" in info.value.message


def test_manifest_names_the_plugin_of_the_backend(
    plugin_manager: OpenATCPluginManager, register_plugin: PluginRegistrar, tmp_path: Path
) -> None:
    register_plugin(EveryHook(), "toy_plugin")
    om = _build(plugin_manager, make_tiny_onnx(tmp_path), tmp_path / "tiny_toy", soc_version=TOY_SOC)
    assert read_manifest(om)["backend"]["plugin"] == "toy_plugin"


def test_backend_passes_run_only_for_that_backend(
    plugin_manager: OpenATCPluginManager, register_plugin: PluginRegistrar, tmp_path: Path
) -> None:
    plugin = EveryHook()
    plugin.npu.backend_passes = (
        openatc.PassSpec("toy_relu_to_max", "layout", lambda ctx: ReluToMaxPass(), description="toy only"),
    )
    register_plugin(plugin, "toy_plugin")
    model = make_tiny_onnx(tmp_path)
    assert "toy_relu_to_max" not in plugin_manager.passes()  # not a global pass

    toy = read_manifest(_build(plugin_manager, model, tmp_path / "toy", soc_version=TOY_SOC))
    cpu = read_manifest(_build(plugin_manager, model, tmp_path / "cpu", soc_version="cpu"))
    toy_passes = {e["name"]: e for e in toy["gears"][0]["passes"]}
    assert toy_passes["toy_relu_to_max"]["stage"] == "layout"
    assert toy_passes["toy_relu_to_max"]["modified"] is False  # the global relu_to_max ran first
    assert "toy_relu_to_max" not in {e["name"] for e in cpu["gears"][0]["passes"]}


def test_a_plugin_frontend_serves_its_framework_id(
    plugin_manager: OpenATCPluginManager, register_plugin: PluginRegistrar, tmp_path: Path
) -> None:
    register_plugin(EveryHook(), "toy_plugin")
    onnx_path = make_tiny_onnx(tmp_path)
    toy_path = onnx_path.rename(tmp_path / "tiny.toy")
    om = _build(plugin_manager, toy_path, tmp_path / "from_toy", framework=TOY_FRAMEWORK)
    framework = read_manifest(om)["framework"]
    assert framework["id"] == TOY_FRAMEWORK and framework["frontend"] == "toy"

    with pytest.raises(openatc.OpenATCError) as info:  # without the plugin, nobody serves that id
        _build(get_plugin_manager(load_entrypoints=False), toy_path, tmp_path / "nobody", framework=TOY_FRAMEWORK)
    assert info.value.code == "E10055" and "5 (onnx)" in info.value.message
