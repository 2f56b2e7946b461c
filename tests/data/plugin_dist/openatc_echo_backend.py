"""openatc-echo-backend: the ``echo`` backend (``--soc_version=EchoNPU``) and ``openatc echo-info``.

A minimal third-party plugin, using openatc's public API only:

* ``compile`` returns a small payload (a magic prefix and a JSON summary of the gear), which the
  host stores in the .om next to the optimized graph;
* ``load`` checks that payload and returns an executor that really computes the graph with
  ``onnx.reference.ReferenceEvaluator``. The graph it gets has its large initializers replaced by
  stubs; their data comes as read-only arrays in ``LoadContext.weights``, so the executor turns
  those initializers into graph inputs and feeds the arrays on every run (no copies).
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

import openatc

if TYPE_CHECKING:
    import onnx_ir as ir
    import typer

DISTRIBUTION = "openatc-echo-backend"
BACKEND_NAME = "echo"
SOC_VERSIONS = ("EchoNPU",)
#: First bytes of every payload this backend writes; ``load`` refuses anything else.
PAYLOAD_MAGIC = b"ECHO\x01"


def _version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:  # imported from a source tree
        return "0+unknown"


def _compile(model: ir.Model, ctx: openatc.CompileContext) -> bytes:
    """The payload: magic bytes, then a JSON summary of the gear (deterministic)."""
    summary = {
        "gear": ctx.gear,
        "soc_version": ctx.options.soc_version,
        "nodes": sum(1 for _ in model.graph),
        "ops": sorted({node.op_type for node in model.graph}),
    }
    return PAYLOAD_MAGIC + json.dumps(summary, sort_keys=True).encode()


class EchoExecutor:
    """Runs one gear with onnx's ReferenceEvaluator; the weights are fed as inputs."""

    def __init__(self, evaluator: Any, weights: Mapping[str, np.ndarray], summary: Mapping[str, Any]) -> None:
        self.evaluator = evaluator
        self.weights = dict(weights)
        self.summary = dict(summary)

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str]) -> list[np.ndarray]:
        return [np.asarray(r) for r in self.evaluator.run(list(output_names), {**feeds, **self.weights})]


def _load(ctx: openatc.LoadContext) -> EchoExecutor:
    from onnx.reference import ReferenceEvaluator

    payload = ctx.payload or b""
    if not payload.startswith(PAYLOAD_MAGIC):
        raise openatc.OpenATCError(
            "E40003", f"gear '{ctx.gear}' has no echo payload (was it compiled for another backend?)"
        )
    summary = json.loads(payload[len(PAYLOAD_MAGIC) :])
    model = onnx.ModelProto.FromString(ctx.graph)
    stubbed = [init for init in model.graph.initializer if init.name in ctx.weights]
    kept = [init for init in model.graph.initializer if init.name not in ctx.weights]
    for init in stubbed:
        model.graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, init.dims))
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return EchoExecutor(ReferenceEvaluator(model), {i.name: ctx.weights[i.name] for i in stubbed}, summary)


@openatc.hookimpl
def openatc_backends() -> Iterator[openatc.Backend]:
    yield openatc.Backend(
        name=BACKEND_NAME,
        soc_versions=SOC_VERSIONS,
        capabilities=openatc.BackendCapabilities(op_types=None, native_precision="fp32"),
        compile=_compile,
        load=_load,
        versions={DISTRIBUTION: _version()},
        description="Echo NPU: onnx's ReferenceEvaluator behind a payload (test plugin)",
    )


@openatc.hookimpl
def openatc_register_commands(app: typer.Typer) -> None:
    import typer

    @app.command("echo-info")
    def echo_info(
        fail: bool = typer.Option(False, "--fail", help="Raise an unexpected error (tests the host's report)."),
    ) -> None:
        """Show what the echo backend serves."""
        if fail:
            raise RuntimeError("echo-info was asked to fail")
        typer.echo(
            f"{DISTRIBUTION} {_version()}: backend '{BACKEND_NAME}' serves --soc_version=" + ",".join(SOC_VERSIONS)
        )
