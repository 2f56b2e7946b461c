"""The ``openatc`` command: ATC's flags on the root command, tools as subcommands.

Options come from the flag table in :mod:`openatc.flags` (ATC spelling first, dashed form too);
commands only build BuildOptions and call the pipeline or the tools.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

try:  # typer >= 0.29 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer depends on click
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from openatc.errors import OpenATCError
from openatc.flags import FLAGS, FLAGS_BY_NAME

if TYPE_CHECKING:
    from openatc.bench import RunSummary
    from openatc.runtime import Session

__all__ = ["app", "main"]

logger = logging.getLogger("openatc")

START = "openatc start working now, please wait for a moment."
SUCCESS = "openatc run success, welcome to the next use."
FAILURE = "openatc run failed, Please check the detail log, Try 'openatc --help' for more information"
EXIT_FAILURE = 1


def _help_width() -> None:
    """Help honours TERMINAL_WIDTH; piped help (no terminal) is 160 columns so no flag name is cut off."""
    import typer.rich_utils

    width = os.environ.get("TERMINAL_WIDTH", "")
    if width.isdigit():
        typer.rich_utils.MAX_WIDTH = int(width)
    elif not sys.stdout.isatty():
        typer.rich_utils.MAX_WIDTH = 160


app = typer.Typer(
    name="openatc",
    help="openatc: compile ONNX, Caffe (prototxt + caffemodel) and TensorFlow (frozen .pb) models into an "
    "optimized offline model (.om) for a target chosen with --soc_version, with ATC's command line. "
    "Tools: run, compare, inspect, plugins.",
    context_settings={"help_option_names": ["-h", "--help", "--h"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _atc(ctx: typer.Context, **flags: str | None) -> None:
    if ctx.invoked_subcommand is not None:
        if any(v is not None for v in flags.values()):
            given = [f"--{k}" for k, v in flags.items() if v is not None]
            raise OpenATCError("E10001", f"ATC flags {given} go without a subcommand ('{ctx.invoked_subcommand}')")
        return
    from openatc.options import BuildOptions

    typer.echo(START)
    options = BuildOptions.from_flags(flags)
    _configure_logging(options.log)
    if options.mode == 1:
        from openatc.om_json import model_to_json, om_to_json, write_json

        assert options.om is not None and options.json is not None
        if options.framework is None:
            write_json(om_to_json(options.om), options.json)
        else:
            write_json(model_to_json(options.om, options.framework, options.weight), options.json)
    elif options.mode == 3:
        from openatc.om_json import write_json
        from openatc.precheck import precheck

        report = precheck(options)
        assert options.check_report is not None
        write_json(report, options.check_report)
        typer.echo(
            f"pre-check {report['result']}: {report['pass']} of {report['total']} operators pass; "
            f"report: {options.check_report}"
        )
        if report["fail"]:
            failed = sorted({op["type"] for op in report["op"] if op["result"] == "failed"})
            raise OpenATCError(
                "E40005",
                f"{report['fail']} operator(s) cannot run on --soc_version={options.soc_version}: "
                f"{', '.join(failed)}; details in {options.check_report}",
            )
    elif options.mode == 6:
        from openatc.inspect import model_info

        assert options.om is not None
        typer.echo(model_info(options.om))
    else:
        from openatc.pipeline import build_om

        build_om(options)
    typer.echo(SUCCESS)


def _flag_parameter(name: str) -> inspect.Parameter:
    flag = FLAGS_BY_NAME[name]
    decls = [f"--{name}"]
    if "_" in name:
        decls.append(f"--{name.replace('_', '-')}")
    option = typer.Option(
        *decls,
        help=flag.help + ("" if flag.status == "done" else f" ({_STATUS_NOTE[flag.status]})"),
        rich_help_panel=flag.panel,
        metavar=flag.metavar,
        show_default=False,
    )
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[str | None, option]
    )


_STATUS_NOTE = {"todo": "not supported yet", "noop": "accepted, no effect on openatc targets"}

_parameters = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
_parameters += [_flag_parameter(f.name) for f in FLAGS]
_atc.__signature__ = inspect.Signature(_parameters)  # type: ignore[attr-defined]
_atc.__annotations__ = {p.name: p.annotation for p in _parameters}
app.callback(invoke_without_command=True)(_atc)


@app.command("run")
def run_command(
    model: Annotated[Path, typer.Argument(help="The .om file.", show_default=False)],
    input: Annotated[
        str | None, typer.Option("--input", "-i", help="Comma-separated .npy/.bin files, one per input.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Directory for the outputs and summary.json.")
    ] = None,
    outfmt: Annotated[str, typer.Option("--outfmt", help="Output files: NPY, BIN (raw) or TXT.")] = "NPY",
    batchsize: Annotated[
        int | None, typer.Option("--batchsize", help="Batch size for the throughput (default: dim 0 of input 1).")
    ] = None,
    loop: Annotated[int, typer.Option("--loop", "-l", help="Timed runs.")] = 1,
    warmup_count: Annotated[int, typer.Option("--warmup_count", "--warmup-count", help="Untimed runs.")] = 1,
    pure_data_type: Annotated[
        str, typer.Option("--pure_data_type", "--pure-data-type", help="Generated inputs: random or zero.")
    ] = "random",
    seed: Annotated[int, typer.Option("--seed", help="Seed of generated inputs.")] = 0,
    dym_batch: Annotated[
        int | None, typer.Option("--dymBatch", help="Batch size, for models built with --dynamic_batch_size.")
    ] = None,
    dym_hw: Annotated[
        str | None, typer.Option("--dymHW", help='"height,width", for models built with --dynamic_image_size.')
    ] = None,
    dym_dims: Annotated[
        str | None, typer.Option("--dymDims", help='"name:1,128;name2:..." for models built with --dynamic_dims.')
    ] = None,
    dym_shape: Annotated[
        str | None, typer.Option("--dymShape", help='"name:1,100;..." for range-compiled (dynamic shape) models.')
    ] = None,
    dym_shape_range: Annotated[
        str | None,
        typer.Option(
            "--dymShape_range",
            "--dymShape-range",
            help='Run a range of shapes, one summary line each: "name:1,64~256" (~ every value, - a list).',
        ),
    ] = None,
    pad: Annotated[
        bool, typer.Option("--pad", help="Pad inputs that match no gear to the smallest fitting gear; trim outputs.")
    ] = False,
    pad_value: Annotated[
        str | None,
        typer.Option(
            "--pad_value", "--pad-value", help='Padding value per input for --pad, "name:0;name2:1" (default 0).'
        ),
    ] = None,
    all_gears: Annotated[
        bool, typer.Option("--all-gears", "--all_gears", help="Benchmark every gear with generated inputs.")
    ] = False,
    aipp: Annotated[
        str | None,
        typer.Option("--aipp", help='Dynamic AIPP parameters: "input:params.json;..." (AippParams fields).'),
    ] = None,
    log: Annotated[str, typer.Option("--log", help="debug, info, warning, error, null.")] = "warning",
) -> None:
    """Run an .om with given or generated inputs; print outputs' shapes and latency."""
    from openatc.aipp.dynamic import aipp_feeds, image_shapes, load_aipp_params
    from openatc.bench import generate_input, load_inputs, parse_pad_values, run_shapes, time_runs
    from openatc.runtime import Session

    _configure_logging(log)
    if pure_data_type not in ("random", "zero"):
        raise OpenATCError("E10001", f"--pure_data_type={pure_data_type} is not random or zero")
    dym = {"dym_batch": dym_batch, "dym_hw": dym_hw, "dym_dims": dym_dims, "dym_shape": dym_shape}
    if all_gears and (input or dym_shape_range or any(v is not None for v in dym.values())):
        raise OpenATCError("E10001", "--all-gears generates inputs for every gear; it takes no --input or --dym* flag")
    if dym_shape_range and (input or any(v is not None for v in dym.values())):
        given = ["--input" if input else ""] + [f"--{_DYM_FLAGS[k]}" for k, v in dym.items() if v is not None]
        raise OpenATCError(
            "E10001",
            f"--dymShape_range generates inputs for each shape; it takes no {' or '.join(g for g in given if g)}",
            hint="Give --dymShape_range alone, or one shape with --dymShape/--dymDims.",
        )
    rng = np.random.default_rng(seed)
    with Session(model, pad_to_gear=pad, pad_values=parse_pad_values(pad_value or "")) as session:
        if all_gears:
            _run_all_gears(session, loop, warmup_count, pure_data_type, rng)
            return
        if dym_shape_range:
            _run_shape_range(session, dym_shape_range, loop, warmup_count, pure_data_type, rng, output, outfmt)
            return
        shapes = run_shapes(session, **dym)
        aipp_params = load_aipp_params(aipp) if aipp else {}
        shapes.update(image_shapes(session.inputs, aipp_params))
        if input:  # files for every input but the dynamic-AIPP parameters that --aipp packs
            packed = {s.aipp.get("params_input") for s in session.inputs if s.aipp and s.name in aipp_params}
            specs = [s for s in session.inputs if s.name not in packed]
            feeds = load_inputs([Path(p.strip()) for p in input.split(",") if p.strip()], specs, shapes)
        else:
            feeds = {s.name: generate_input(s, pure_data_type, rng, shapes.get(s.name)) for s in session.inputs}
        feeds = dict(aipp_feeds(session.inputs, feeds, aipp_params))  # packs dynamic AIPP parameters
        gear = session.gear_for(feeds)
        with _progress(loop) as progress:
            outputs, summary = time_runs(session, feeds, loop, warmup_count, batch_size=batchsize, progress=progress)
    for name, array in feeds.items():
        typer.echo(f"[INFO] input  {name}: {array.dtype}{list(array.shape)}")
    if len(session.gears) > 1:
        typer.echo(f"[INFO] gear   gear{gear}: {_gear_text(session.gears[gear])}")
    for name, array in outputs.items():
        typer.echo(f"[INFO] output {name}: {array.dtype}{list(array.shape)}")
    _echo_summary(summary)
    if output is not None:
        from openatc.bench import summary_json, write_outputs
        from openatc.om_json import write_json

        files = write_outputs(outputs, output, outfmt)
        document = summary_json(
            summary,
            model=str(model),
            loop=loop,
            warmup_count=warmup_count,
            inputs={n: {"dtype": str(a.dtype), "shape": list(a.shape)} for n, a in feeds.items()},
            outputs={
                n: {"dtype": str(a.dtype), "shape": list(a.shape), "file": str(f)}
                for (n, a), f in zip(outputs.items(), files, strict=True)
            },
            gear=gear,
        )
        write_json(document, output / "summary.json")
        typer.echo(f"[INFO] outputs and summary.json written to {output}")


@contextlib.contextmanager
def _progress(loop: int) -> Iterator[Callable[[int], None] | None]:
    """A progress bar for long loops on a terminal; nothing when piped."""
    if loop < 20 or not sys.stdout.isatty():
        yield None
        return
    with typer.progressbar(length=loop, label="running") as bar:
        yield bar.update


def _gear_text(shapes: dict[str, tuple[int | str, ...]]) -> str:
    return ", ".join(f"{n}[{','.join(map(str, s))}]" for n, s in shapes.items())


def _echo_summary(summary: RunSummary) -> None:
    stats = summary.stats()
    typer.echo("[INFO] -----------------Performance Summary------------------")
    typer.echo(
        "[INFO] compute_time (ms): min = {min:.4f}, max = {max:.4f}, mean = {mean:.4f}, median = {median:.4f}, "
        "percentile(99%) = {p99:.4f}".format(p99=stats["percentile(99%)"], **stats)
    )
    typer.echo(
        f"[INFO] throughput 1000*batchsize.mean({summary.batch_size})/compute_time.mean({stats['mean']:.4f}): "
        f"{stats['throughput']:.4f}"
    )
    typer.echo("[INFO] ------------------------------------------------------")


def _run_all_gears(session: Session, loop: int, warmup: int, kind: str, rng: np.random.Generator) -> None:
    """``openatc run --all-gears``: generated inputs at every gear's shapes, one summary line per gear."""
    from openatc.bench import generate_input, time_runs

    typer.echo("[INFO] gear    median ms     mean ms      p99 ms   throughput  inputs")
    for index, shapes in enumerate(session.gears):
        feeds = {s.name: generate_input(s, kind, rng, shapes.get(s.name)) for s in session.inputs}
        _, summary = time_runs(session, feeds, loop, warmup)
        st = summary.stats()
        typer.echo(
            f"[INFO] gear{index:<3} {st['median']:10.4f}  {st['mean']:10.4f}  {st['percentile(99%)']:10.4f}  "
            f"{st['throughput']:11.4f}  {_gear_text(shapes)}"
        )


_DYM_FLAGS = {"dym_batch": "dymBatch", "dym_hw": "dymHW", "dym_dims": "dymDims", "dym_shape": "dymShape"}


def _run_shape_range(
    session: Session,
    text: str,
    loop: int,
    warmup: int,
    kind: str,
    rng: np.random.Generator,
    output: Path | None,
    outfmt: str,
) -> None:
    """``openatc run --dymShape_range``: every shape of the range in turn, one summary line each.

    With ``--output``, each shape's outputs go to a sub-folder named after the shapes
    (``input_ids-1_64``) and ``summary.json`` lists every shape's timings.
    """
    from openatc.bench import generate_input, parse_shape_range, summary_json, time_runs, write_outputs
    from openatc.om_json import write_json

    combos = parse_shape_range(text, session.inputs)
    typer.echo(f"[INFO] {len(combos)} shape(s) from --dymShape_range={text}")
    typer.echo("[INFO] median ms     mean ms      p99 ms   throughput  gear    inputs")
    results = []
    for shapes in combos:
        feeds = {s.name: generate_input(s, kind, rng, shapes.get(s.name)) for s in session.inputs}
        gear = session.gear_for(feeds)
        outputs, summary = time_runs(session, feeds, loop, warmup)
        st = summary.stats()
        given = {n: tuple(a.shape) for n, a in feeds.items()}
        typer.echo(
            f"[INFO] {st['median']:10.4f}  {st['mean']:10.4f}  {st['percentile(99%)']:10.4f}  "
            f"{st['throughput']:11.4f}  gear{gear:<3} {_gear_text(given)}"
        )
        entry = summary_json(summary, inputs={n: list(s) for n, s in given.items()}, gear=gear)
        if output is not None:
            tag = "__".join(f"{n}-{'_'.join(map(str, s))}" for n, s in given.items())
            files = write_outputs(outputs, output / tag, outfmt)
            entry["outputs"] = {
                n: {"dtype": str(a.dtype), "shape": list(a.shape), "file": str(f)}
                for (n, a), f in zip(outputs.items(), files, strict=True)
            }
        results.append(entry)
    if output is not None:
        document = {"model": str(session.path), "dymShape_range": text, "loop": loop, "warmup_count": warmup}
        write_json({**document, "shapes": results}, output / "summary.json")
        typer.echo(f"[INFO] outputs and summary.json written to {output}")


@app.command("compare")
def compare_command(
    golden: Annotated[Path, typer.Option("--golden", "-gm", help="The source model (.onnx, or .pb/.prototxt).")],
    om: Annotated[Path, typer.Option("--om", help="The .om built from it.")],
    framework: Annotated[int, typer.Option("--framework", help="Framework of --golden (ATC ids).")] = 5,
    weight: Annotated[Path | None, typer.Option("--weight", "-w", help="Caffe weights of --golden.")] = None,
    input: Annotated[
        str | None, typer.Option("--input", "-i", help="Comma-separated .npy/.bin files, one per input.")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for compare.csv/.json.")] = Path(
        "compare_result"
    ),
    threshold: Annotated[float, typer.Option("--threshold", help="Cosine similarity counted as a match.")] = 0.99,
    locate: Annotated[bool, typer.Option("--locate", help="Print the first tensor below --threshold.")] = True,
    seed: Annotated[int, typer.Option("--seed", help="Seed of generated inputs.")] = 0,
    log: Annotated[str, typer.Option("--log", help="debug, info, warning, error, null.")] = "warning",
) -> None:
    """Compare every tensor of an .om with the source model's (cosine, errors); find the first divergence."""
    from openatc.bench import generate_input, load_inputs
    from openatc.compare import compare_tensors, first_divergence, golden_intermediates, load_golden, write_report
    from openatc.runtime import Session

    _configure_logging(log)
    with Session(om) as session:
        if input:
            feeds = load_inputs([Path(p.strip()) for p in input.split(",") if p.strip()], session.inputs)
        else:
            rng = np.random.default_rng(seed)
            feeds = {s.name: generate_input(s, "random", rng) for s in session.inputs}
        om_tensors = session.run_with_intermediates(feeds)
    golden_model = load_golden(golden, framework, weight, None)
    golden_tensors, order = golden_intermediates(golden_model, feeds)
    rows = compare_tensors(golden_tensors, order, om_tensors)
    compared = [r for r in rows if r.cosine_similarity is not None]
    bad = first_divergence(rows, threshold)
    summary = {
        "golden": str(golden),
        "om": str(om),
        "threshold": threshold,
        "tensors": len(rows),
        "compared": len(compared),
        "below_threshold": sum(r.cosine_similarity < threshold for r in compared),
        "first_divergence": None
        if bad is None
        else {
            "node": bad.node,
            "op_type": bad.op_type,
            "tensor": bad.tensor,
            "cosine_similarity": bad.cosine_similarity,
        },
    }
    csv_path, json_path = write_report(rows, output, summary)
    typer.echo(f"[INFO] compared {len(compared)} of {len(rows)} tensors; results: {csv_path}, {json_path}")
    if locate:
        if bad is None:
            typer.echo(f"[INFO] every compared tensor has cosine similarity >= {threshold}")
        else:
            typer.echo(
                f"[WARNING] first divergence: node '{bad.node}' ({bad.op_type}), tensor '{bad.tensor}': cosine "
                f"{bad.cosine_similarity:.6f}, max abs error {bad.max_abs_error:.6g}"
            )


@app.command("inspect")
def inspect_command(
    om: Annotated[Path, typer.Argument(help="The .om file.", show_default=False)],
    export_onnx: Annotated[
        Path | None, typer.Option("--export-onnx", help="Write a gear as a standalone .onnx (open it in Netron).")
    ] = None,
    gear: Annotated[int, typer.Option("--gear", help="Gear index for --export-onnx.")] = 0,
) -> None:
    """Show an .om: inputs, outputs, gears, target, sizes, the passes that changed it."""
    from openatc.inspect import export_onnx as export
    from openatc.inspect import summary

    typer.echo(summary(om))
    if export_onnx is not None:
        typer.echo(f"wrote {export(om, export_onnx, gear)}")


@app.command("plugins")
def plugins_command() -> None:
    """List installed plugins and what they contribute (frontends, passes, backends...)."""
    from openatc.manager import default_plugin_manager

    pm = default_plugin_manager()
    typer.echo("Plugins:")
    for info in pm.plugin_infos():
        typer.echo(f"  {info.name:<40} {info.origin:<12} {info.version}")
    typer.echo("Frontends (--framework):")
    for fid, fe in sorted(pm.frontends().items()):
        typer.echo(f"  {fid:<4} {fe.name:<12} {fe.description}  [{pm.origin_of('openatc_frontends', fid)}]")
    typer.echo("Backends (--soc_version):")
    for name, be in sorted(pm.backends().items()):
        typer.echo(
            f"  {name:<12} {', '.join(be.soc_versions):<24} {be.description}  "
            f"[{pm.origin_of('openatc_backends', name)}]"
        )
    typer.echo("Passes (stage, default):")
    from openatc.types import STAGES

    backend_passes = [(spec, f" [backend {be.name}]") for be in pm.backends().values() for spec in be.passes]
    listed = [(spec, "") for spec in pm.passes().values()] + backend_passes
    for spec, owner in sorted(listed, key=lambda item: (STAGES.index(item[0].stage), item[0].order, item[0].name)):
        state = "on" if spec.default_on else "off"
        typer.echo(f"  {spec.name:<36} {spec.stage:<12} {state:<4} {spec.description}{owner}")
    for kind, records in (("Quantizers", pm.quantizers()), ("AIPP input formats", pm.aipp_formats())):
        typer.echo(f"{kind}: {', '.join(sorted(records)) or 'none'}")


# -- logging and entry point ---------------------------------------------------------------------
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _configure_logging(level: str) -> None:
    root = logging.getLogger("openatc")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.propagate = False
    name = level.lower()
    if name == "null":
        root.addHandler(logging.NullHandler())
        root.setLevel(logging.CRITICAL + 1)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s] OPENATC(%(process)d,openatc):%(asctime)s.%(msecs)03d [%(module)s] %(message)s",
            datefmt="%Y-%m-%d-%H:%M:%S",
        )
    )
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(name, logging.WARNING))


def normalize_argv(argv: list[str]) -> list[str]:
    """ATC's spellings: ``-model=x`` (one dash) and ``--input-shape`` mean ``--model``/``--input_shape``."""
    out = []
    for token in argv:
        match = re.match(r"^(--?)([A-Za-z][A-Za-z0-9_-]+)(=.*)?$", token, re.DOTALL)
        if match:
            name = match.group(2).replace("-", "_")
            if name in FLAGS_BY_NAME:
                token = f"--{name}{match.group(3) or ''}"
        out.append(token)
    return out


def _debug(argv: list[str]) -> bool:
    return any(
        re.match(r"^--?log(=|$)", a) and (a.endswith("=debug") or argv[i + 1 : i + 2] == ["debug"])
        for i, a in enumerate(argv)
    )


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns (and exits with) the process status."""
    args = normalize_argv(list(sys.argv[1:] if argv is None else argv))
    try:
        _help_width()
        _register_plugin_commands()
        app(args=args, prog_name="openatc", standalone_mode=False)
    except OpenATCError as exc:
        typer.echo(FAILURE)
        typer.echo(exc.report())
        if _debug(args):
            logger.exception("traceback")
        return _exit(EXIT_FAILURE, argv)
    except click_exceptions.NoSuchOption as exc:
        typer.echo(f"ERROR: unknown command line flag '{exc.option_name.lstrip('-')}'", err=True)
        return _exit(2, argv)
    except click_exceptions.BadOptionUsage as exc:
        typer.echo(f"ERROR: flag '{exc.option_name}' is missing its argument", err=True)
        return _exit(2, argv)
    except click_exceptions.UsageError as exc:
        message = exc.format_message()
        if "No such command" in message:
            message = "Non-option parameter: " + message.split("'")[1] if "'" in message else message
        typer.echo(f"ERROR: {message}", err=True)
        return _exit(2, argv)
    except typer.Exit as exc:
        return _exit(exc.exit_code, argv)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        return _exit(130, argv)
    except Exception as exc:
        typer.echo(FAILURE)
        typer.echo(OpenATCError("E19999", f"inner error: {type(exc).__name__}: {exc}").report())
        if _debug(args):
            logger.exception("traceback")
        return _exit(EXIT_FAILURE, argv)
    return _exit(0, argv)


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:  # called as the console script
        sys.exit(code)
    return code


_registered = False


def _register_plugin_commands() -> None:
    """Hook family 6: plugins add subcommands (when the CLI starts, never at import)."""
    global _registered
    if _registered:
        return
    _registered = True
    from openatc.manager import default_plugin_manager

    default_plugin_manager().hook.openatc_register_commands(app=app)
