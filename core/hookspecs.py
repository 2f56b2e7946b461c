"""The six hook families of openatc.

A plugin is a module (or object) with functions named after these specs and decorated with
:data:`openatc.hookimpl`. Built-in plugins are registered from one tuple in
:mod:`openatc.manager`; external plugins are found through the ``openatc`` entry-point group::

    # my_npu_plugin.py, with [project.entry-points.openatc] my_npu = "my_npu_plugin"
    import openatc

    @openatc.hookimpl
    def openatc_backends():
        yield openatc.Backend(
            name="my_npu", soc_versions=("MyNPU100",), capabilities=openatc.BackendCapabilities(),
            compile=my_compile, load=my_load,
        )

"Contribute" hooks (1-5) are called once per plugin manager; each plugin returns an iterable of
records (frozen dataclasses from :mod:`openatc.types`). Record names must be unique per kind: the
manager raises an error naming both plugins when two contribute the same name. None of the hooks
is ``firstresult`` or ``historic``: every plugin's contribution is collected.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer

    from openatc.types import AippFormat, Backend, Frontend, PassSpec, Quantizer

PROJECT = "openatc"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def openatc_frontends() -> Iterable[Frontend]:
    """Contribute model importers (hook family 1).

    Called when a build looks up the frontend for ``--framework``. Each
    :class:`~openatc.types.Frontend` names the ``--framework`` ids it serves and a ``load``
    callable that returns an ``onnx_ir.Model`` in standard ONNX ops at one opset. Two frontends
    may not serve the same framework id.

    Example::

        @hookimpl
        def openatc_frontends():
            yield Frontend(name="onnx", framework_ids=(5,), suffixes=(".onnx",), load=load_onnx)
    """


@hookspec
def openatc_passes() -> Iterable[PassSpec]:
    """Contribute graph passes (hook family 2).

    Called once per build. Each :class:`~openatc.types.PassSpec` gives a stage (``canonicalize``,
    ``fold``, ``fuse``, ``layout``, ``memory``), whether it is on by default, and a factory that
    returns an ``onnx_ir.passes`` pass. The pass manager orders passes by stage, honours
    ``--fusion_switch_file`` and records nodes before/after, rule hits and seconds per pass.
    Backends add target-specific passes through :attr:`Backend.passes` instead.
    """


@hookspec
def openatc_quantizers() -> Iterable[Quantizer]:
    """Contribute calibration algorithms (hook family 3), e.g. ``minmax`` or ``entropy``.

    Called when INT8 calibration starts. The host owns data loading, the choice of tensors to
    quantize and the accuracy check; a quantizer only turns streamed statistics into a range.
    """


@hookspec
def openatc_aipp_formats() -> Iterable[AippFormat]:
    """Contribute AIPP input formats (hook family 4), one record per ATC ``input_format``.

    Called when ``--insert_op_conf`` names an ``input_format``; the record builds the ONNX ops that
    turn raw bytes in that format into the model input.
    """


@hookspec
def openatc_backends() -> Iterable[Backend]:
    """Contribute targets (hook family 5), chosen by ``--soc_version``.

    Called when a build or a Session looks up a backend. Each :class:`~openatc.types.Backend`
    lists the ``--soc_version`` names it serves, its capabilities, its passes, and the
    ``compile``/``load`` pair. Two backends may not share a name or a soc version.
    """


@hookspec
def openatc_register_commands(app: typer.Typer) -> None:
    """Add subcommands to the ``openatc`` command line (hook family 6).

    Called once when the CLI starts, with the root typer app; implementations call
    ``app.command()(...)`` or ``app.add_typer(...)``. Return value is ignored.
    """
