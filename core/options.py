"""BuildOptions: every flag parsed and validated once, before any work.

The CLI and the Python API (:func:`openatc.build`) both call :meth:`BuildOptions.from_flags` with
the flags as strings, exactly as ATC receives them; nothing downstream reads raw flags. Checks run
in ATC's order (../spec section 1.5) and stop at the first failure.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from openatc.aipp.config import AippConfig, parse_aipp_config
from openatc.errors import OpenATCError
from openatc.flags import FLAGS_BY_NAME
from openatc.gears import Dynamic, InputShape, parse_dynamic, parse_input_shape
from openatc.precision import PrecisionOptions, parse_precision
from openatc.quantize import QuantizationOptions, parse_quantization

__all__ = ["FRAMEWORKS", "LOG_LEVELS", "OUTPUT_TYPES", "BuildOptions", "InputShape", "OutputTypeRule"]

logger = logging.getLogger(__name__)

FRAMEWORKS = {0: "Caffe", 1: "MindSpore", 3: "TensorFlow", 5: "ONNX"}
LOG_LEVELS = ("debug", "info", "warning", "error", "null")
#: ATC --output_type names and the numpy dtype each one means.
OUTPUT_TYPES = {
    "FP32": "float32",
    "FP16": "float16",
    "UINT8": "uint8",
    "INT8": "int8",
    "UINT16": "uint16",
    "INT16": "int16",
    "UINT32": "uint32",
    "INT32": "int32",
    "UINT64": "uint64",
    "INT64": "int64",
    "DOUBLE": "float64",
}
INPUT_FORMATS = {
    0: ("NCHW", "ND"),
    3: ("NCHW", "NHWC", "ND", "NCDHW", "NDHWC"),
    5: ("NCHW", "NCDHW", "ND"),
}
DEFAULT_INPUT_FORMAT = {0: "NCHW", 3: "NHWC", 5: "NCHW"}
IMPLEMENTED_MODES = (0, 1, 3, 6)
KNOWN_MODES = (0, 1, 3, 5, 6, 7, 30)


@dataclass(frozen=True)
class OutputTypeRule:
    """One entry of a per-output ``--output_type``: ``node:index:TYPE``."""

    node: str
    index: int
    dtype: str


@dataclass(frozen=True)
class BuildOptions:
    """The validated flags of one openatc run (immutable)."""

    mode: int = 0
    model: Path | None = None
    weight: Path | None = None
    framework: int | None = None
    om: Path | None = None
    json: Path | None = None
    check_report: Path | None = None
    output: Path | None = None
    soc_version: str = ""
    input_format: str = "ND"
    input_shape: tuple[InputShape, ...] = ()  # dims -1 where dynamic (gears or ranges)
    dynamic: Dynamic | None = None  # gears or a shape-range compile (openatc.gears)
    aipp: tuple[AippConfig, ...] = ()  # --insert_op_conf, parsed (openatc.aipp)
    out_nodes: tuple[str, ...] = ()
    fusion_switches: tuple[tuple[str, bool], ...] = ()  # --fusion_switch_file entries, in file order
    output_type: str | None = None  # numpy dtype name applied to every floating output
    output_type_rules: tuple[OutputTypeRule, ...] = ()
    precision: PrecisionOptions = field(default_factory=PrecisionOptions)  # --precision_mode, --keep_dtype, ...
    quantization: QuantizationOptions | None = None  # --calibration_config / --compression_optimize_conf
    accuracy_metric: Callable[..., float] | None = field(default=None, compare=False)  # openatc.build(...) only
    log: str = "null"
    flags: tuple[tuple[str, str], ...] = ()  # every flag given, sorted, as recorded in the manifest
    warnings: tuple[str, ...] = field(default=(), compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)  # logged at --log=info by the build

    @property
    def om_path(self) -> Path:
        assert self.output is not None
        return self.output.with_name(self.output.name + ".om")

    @classmethod
    def from_flags(cls, flags: Mapping[str, object]) -> BuildOptions:
        """Validates ATC flags (names with underscores, values as given) into BuildOptions."""
        given = {k: _text(v) for k, v in flags.items() if v is not None}
        for name in given:
            if name not in FLAGS_BY_NAME:
                raise OpenATCError("E10001", f"unknown flag '--{name}'", hint="See 'openatc --help'.")
        log = given.get("log", "null").lower()
        if log not in LOG_LEVELS:
            raise OpenATCError("E10010", f"--log={given['log']} is not a log level", hint=_one_of(LOG_LEVELS))
        mode = _parse_mode(given.get("mode", "0"))
        warnings = _check_statuses(given) + _weight_warnings(given)
        common = {"mode": mode, "log": log, "flags": tuple(sorted(given.items())), "warnings": warnings}
        if mode == 1:
            return cls(**common, **_mode1(given))
        if mode == 6:
            return cls(**common, om=_existing_file("om", _require(given, "om")))
        if mode == 3:
            return cls(**common, **_mode3(given))
        return cls(**common, **_mode0(given))


def _text(value: object) -> str:
    return str(value).strip() if not isinstance(value, Path) else str(value)


def _one_of(values: tuple[str, ...] | list[str]) -> str:
    return "Use one of: " + ", ".join(values) + "."


def _parse_mode(text: str) -> int:
    try:
        mode = int(text)
    except ValueError:
        mode = -1
    if mode not in KNOWN_MODES:
        raise OpenATCError(
            "E10001",
            f"--mode={text} is not a run mode",
            hint="Use 0 (build an .om), 1 (to JSON), 3 (pre-check) or 6 (show .om info).",
        )
    if mode not in IMPLEMENTED_MODES:
        raise OpenATCError(
            "E10055",
            f"--mode={mode} is not supported yet",
            hint="Use --mode 0 (build), 1 (JSON), 3 (pre-check) or 6 (.om info).",
        )
    return mode


def _check_statuses(given: Mapping[str, str]) -> tuple[str, ...]:
    """E10055 for recognised flags not built yet; warnings for flags without meaning here."""
    warnings: list[str] = []
    for name, value in given.items():
        flag = FLAGS_BY_NAME[name]
        if flag.status == "todo" and value.lower() not in {a.lower() for a in flag.accept}:
            raise OpenATCError(
                "E10055",
                f"--{name} is recognised but not supported yet by this version of openatc",
                hint=f"Remove --{name}={value} from the command line.",
            )
        if flag.status == "noop":
            warnings.append(f"--{name} tunes Ascend hardware and has no effect on openatc targets; ignored")
    return tuple(warnings)


def _require(given: Mapping[str, str], name: str) -> str:
    value = given.get(name, "")
    if not value:
        raise OpenATCError(
            "E10054",
            f"required parameter --{name} is empty or missing",
            hint=f"Give --{name}; quote values that contain ';' so the shell does not cut them.",
        )
    return value


def _existing_file(name: str, value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise OpenATCError("E10410", f"--{name}={value}: file does not exist", hint="Check the path.")
    if path.is_dir() or not os.access(path, os.R_OK):
        raise OpenATCError(
            "E10410", f"--{name}={value}: not a readable file", hint="Check the path and its permissions."
        )
    return path


def _writable_target(name: str, value: str) -> Path:
    path = Path(value)
    if not path.name or value.endswith(("/", os.sep)):
        raise OpenATCError("E10022", f"--{name}={value} has no file name", hint=f"e.g. --{name}=out/model")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OpenATCError(
            "E13002",
            f"--{name}={value}: directory '{parent}' does not exist",
            hint=f"Create it first (mkdir -p {parent}) or choose another --{name}.",
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OpenATCError(
            "E13002",
            f"--{name}={value}: directory '{parent}' is not writable",
            hint="Choose a writable directory or fix its permissions.",
        )
    return path


def _framework(given: Mapping[str, str]) -> int:
    text = given.get("framework", "")
    support = "0(Caffe) or 1(MindSpore) or 3(TensorFlow) or 5(Onnx)"
    if not text:
        raise OpenATCError("E10007", f"--framework is required; allowed: {support}")
    try:
        framework = int(text)
    except ValueError:
        framework = -1
    if framework not in FRAMEWORKS:
        raise OpenATCError("E10007", f"--framework={text} is not valid; allowed: {support}")
    return framework


def _mode1(given: Mapping[str, str]) -> dict[str, object]:
    om = _existing_file("om", _require(given, "om"))
    json_path = _writable_target("json", _require(given, "json"))
    framework = None
    if given.get("framework"):  # --om is an original model
        framework = _framework(given)
        if framework == 1:
            raise OpenATCError("E10001", "--mode=1 does not take MindSpore models (--framework=1)")
    weight = _existing_file("weight", given["weight"]) if framework == 0 and given.get("weight") else None
    return {"om": om, "json": json_path, "framework": framework, "weight": weight}


def _mode3(given: Mapping[str, str]) -> dict[str, object]:
    """Pre-check: the model, its framework and the target; the report path (ATC's default name)."""
    soc = _require(given, "soc_version")
    model = _existing_file("model", _require(given, "model"))
    framework = _framework(given)
    report = _writable_target("check_report", given.get("check_report") or "check_result.json")
    weight = _existing_file("weight", given["weight"]) if framework == 0 and given.get("weight") else None
    return {"model": model, "framework": framework, "soc_version": soc, "check_report": report, "weight": weight}


def _mode0(given: Mapping[str, str]) -> dict[str, object]:
    soc = _require(given, "soc_version")
    output = _writable_target("output", _require(given, "output"))
    model = _existing_file("model", _require(given, "model"))
    input_shape = parse_input_shape(given.get("input_shape", ""))
    fmt = given.get("input_format", "")
    framework_text = given.get("framework", "")
    default_fmt = DEFAULT_INPUT_FORMAT.get(int(framework_text) if framework_text.isdigit() else 5, "NCHW")
    input_shape, dynamic, notes = parse_dynamic(given, input_shape, fmt or default_fmt, soc)
    framework = _framework(given)
    weight = None
    if framework == 0:
        weight = _existing_file("weight", given.get("weight") or _missing_weight())
    fmt = fmt or DEFAULT_INPUT_FORMAT.get(framework, "ND")
    allowed = INPUT_FORMATS.get(framework, ("NCHW", "ND"))
    if fmt not in allowed:
        raise OpenATCError(
            "E10001", f"--input_format={fmt} is not valid for --framework={framework}", hint=_one_of(list(allowed))
        )
    out_nodes = tuple(n.strip() for n in given.get("out_nodes", "").split(";") if n.strip())
    output_type, rules = parse_output_type(given.get("output_type", ""), out_nodes)
    return {
        "model": model,
        "weight": weight,
        "framework": framework,
        "output": output,
        "soc_version": soc,
        "input_format": fmt,
        "input_shape": input_shape,
        "dynamic": dynamic,
        "aipp": parse_aipp_config(_existing_file("insert_op_conf", given["insert_op_conf"]))
        if given.get("insert_op_conf")
        else (),
        "notes": notes,
        "out_nodes": out_nodes,
        "fusion_switches": _fusion_switches(given),
        "output_type": output_type,
        "output_type_rules": rules,
        "precision": parse_precision(given),
        "quantization": parse_quantization(given),
    }


def _fusion_switches(given: Mapping[str, str]) -> tuple[tuple[str, bool], ...]:
    if not given.get("fusion_switch_file"):
        return ()
    from openatc.passmanager import parse_fusion_switch_file

    return parse_fusion_switch_file(_existing_file("fusion_switch_file", given["fusion_switch_file"]))


def _weight_warnings(given: Mapping[str, str]) -> tuple[str, ...]:
    """ATC ignores --weight for frameworks other than Caffe, with a warning (printed by the build)."""
    if given.get("weight") and given.get("framework", "").strip() not in ("", "0"):
        return ("--weight is only used with --framework=0 (Caffe); ignored",)
    return ()


def _missing_weight() -> str:
    raise OpenATCError("E10008", "--weight is required when --framework=0 (Caffe)", hint="Give the .caffemodel.")


def parse_output_type(text: str, out_nodes: tuple[str, ...]) -> tuple[str | None, tuple[OutputTypeRule, ...]]:
    """One type for all outputs (``FP16``) or per output (``node:idx:FP16;...``)."""
    if not text:
        return None, ()
    allowed = list(OUTPUT_TYPES)
    if ":" not in text:
        dtype = OUTPUT_TYPES.get(text.upper())
        if dtype is None:
            raise OpenATCError("E10001", f"--output_type={text} is not a supported type", hint=_one_of(allowed))
        return dtype, ()
    rules: list[OutputTypeRule] = []
    for item in (p.strip() for p in text.split(";") if p.strip()):
        parts = item.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            raise OpenATCError(
                "E10001", f"--output_type entry '{item}' is not node:index:TYPE", hint='e.g. "conv1:0:FP16"'
            )
        node, index, type_name = parts
        dtype = OUTPUT_TYPES.get(type_name.upper())
        if dtype is None:
            raise OpenATCError(
                "E10001", f"--output_type entry '{item}': '{type_name}' is not a type", hint=_one_of(allowed)
            )
        if f"{node}:{index}" not in out_nodes:
            raise OpenATCError(
                "E10001",
                f"--output_type entry '{item}' names output {node}:{index}, which --out_nodes does not list",
                hint=f'Add it to --out_nodes, e.g. --out_nodes="{node}:{index}".',
            )
        rules.append(OutputTypeRule(node, int(index), dtype))
    return None, tuple(rules)
