"""The calibration config: openatc's JSON form (``--calibration_config``) and ATC's
``--compression_optimize_conf`` (a ``calibration { ... }`` block), both parsed into one record.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from openatc.errors import OpenATCError

__all__ = ["DEFAULT_OP_TYPES", "ImagePreprocess", "QuantizationOptions", "parse_quantization"]

#: Op types quantized unless the config lists its own: the matrix ops, the ops ONNX Runtime fuses
#: with them into integer kernels (pools, Relu/Clip, Concat, Resize, ...), the reshaping ops and
#: Gather (INT8 embedding tables). Element-wise Add and Mul stay float: quantizing the residual
#: adds and scalings of PP-OCR's det/rec nets cost 0.02-0.1 of output cosine and saved no time
#: (benchmarks/bench_int8.py --op-types); normalizations and Softmax stay float too.
DEFAULT_OP_TYPES = (
    "Conv", "ConvTranspose", "MatMul", "Gemm", "Relu", "Clip", "LeakyRelu", "MaxPool", "AveragePool",
    "GlobalAveragePool", "Concat", "Resize", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten",
    "Split", "Pad", "Gather",
)  # fmt: skip

_KEYS = {
    "data_dir": "folder of samples (str), or {input name: folder}",
    "num_samples": "how many samples to read (int; default all)",
    "algorithm": "quantizer plugin name (minmax, percentile, entropy, mse, ...)",
    "algorithm_options": 'keyword arguments of the algorithm\'s observer (e.g. {"percentile": 99.999})',
    "per_channel": "per-channel weight scales (bool, default true)",
    "activation_symmetric": "signed symmetric INT8 activations (bool, default false: asymmetric UINT8)",
    "skip_layers": "node names kept in float (list)",
    "skip_op_types": "op types kept in float (list)",
    "op_types": "op types to quantize (list; default: matrix ops and their neighbours)",
    "accuracy_target": "lowest output cosine vs FP32 on the check samples, less its standard error (in (0, 1]), "
    "or the least score of the Python accuracy_metric",
    "holdout_fraction": "fraction of the samples held out for the accuracy check (default 0.2)",
    "check_samples": "the accuracy check runs on at least this many samples: the held-out ones, topped up with "
    "calibration samples (int; default 16)",
    "max_fallback_layers": "at most this many layers returned to float by the fallback (int; default no limit; 0: "
    "no fallback)",
    "image": "read image files (.jpg/.jpeg/.png/.bmp) as samples with this preprocessing: "
    '{"color": "RGB"|"BGR"|"GRAY", "fit": "stretch"|"center_crop", "mean": [..], "std": [..], "layout": "NCHW"|"NHWC"}',
    "report": "write the per-layer report next to the .om (bool, default true)",
    "skip_slow_layers": "keep float the layers slower in INT8 than in float (bool, default true)",
}


@dataclass(frozen=True)
class ImagePreprocess:
    """How an image file becomes one sample: decode, colour order, resize, (pixel - mean) / std, layout.

    Pixels are 0-255 values in ``color`` order; the size is the input's spatial size (``stretch``:
    resized to it, bilinear; ``center_crop``: the shorter side scaled to fit, then the centre cut
    out). ``mean``/``std`` hold one value or one per channel; ``layout`` defaults to what the
    input's shape says (NCHW when dim 1 is 1, 3 or 4, else NHWC).
    """

    color: str = "RGB"
    fit: str = "stretch"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    layout: str | None = None


def _image(source: str, value: Any) -> ImagePreprocess:
    if not isinstance(value, dict):
        raise _error(source, f"'image' must be an object of preprocessing settings, got {value!r}")
    known = {"color", "fit", "mean", "std", "layout"}
    unknown = sorted(set(value) - known)
    if unknown:
        raise _error(
            source, f"unknown key(s) {', '.join(unknown)} in 'image'", hint="Known: " + ", ".join(sorted(known))
        )
    choices = {"color": ("RGB", "BGR", "GRAY"), "fit": ("stretch", "center_crop"), "layout": ("NCHW", "NHWC")}
    for key, allowed in choices.items():
        if key in value and value[key] not in allowed:
            raise _error(source, f"image '{key}' must be one of {', '.join(allowed)}, got {value[key]!r}")

    def numbers(key: str, default: float) -> tuple[float, ...]:
        raw = value.get(key, [default])
        raw = raw if isinstance(raw, list) else [raw]
        if not raw or len(raw) > 4 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw):
            raise _error(source, f"image '{key}' must be a number or a list of 1-4 numbers, got {value.get(key)!r}")
        return tuple(float(v) for v in raw)

    std = numbers("std", 1.0)
    if any(v == 0 for v in std):
        raise _error(source, f"image 'std' must not hold 0, got {list(std)}")
    return ImagePreprocess(
        color=value.get("color", "RGB"),
        fit=value.get("fit", "stretch"),
        mean=numbers("mean", 0.0),
        std=std,
        layout=value.get("layout"),
    )


@dataclass(frozen=True)
class QuantizationOptions:
    """A validated calibration config (the algorithm is checked against the plugins at build time)."""

    source: str  # the flag and file, e.g. "--calibration_config=calib.json"
    data_dirs: tuple[tuple[str, Path], ...]  # ("", dir) for one folder; (input, dir) per input
    data_files: tuple[tuple[str, tuple[Path, ...]], ...] = ()  # ATC: files per input, in input order
    shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # ATC's input_shape inside calibration
    num_samples: int | None = None
    algorithm: str = "minmax"
    algorithm_options: tuple[tuple[str, Any], ...] = ()
    per_channel: bool = True
    activation_symmetric: bool = False
    skip_layers: tuple[str, ...] = ()
    skip_op_types: tuple[str, ...] = ()
    op_types: tuple[str, ...] = DEFAULT_OP_TYPES
    accuracy_target: float | None = None
    holdout_fraction: float = 0.2
    check_samples: int = 16
    max_fallback_layers: int | None = None
    report: bool = True
    skip_slow_layers: bool = True
    image: ImagePreprocess | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def _error(source: str, message: str, hint: str = "") -> OpenATCError:
    return OpenATCError("E10060", f"{source}: {message}", hint=hint or "See docs/precision.md (INT8).")


def _read_text(flag: str, value: str) -> tuple[Path, str]:
    path = Path(value)
    if not path.is_file():
        raise OpenATCError("E10410", f"--{flag}={value}: file does not exist", hint="Check the path.")
    try:
        return path, path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OpenATCError("E10410", f"--{flag}={value}: cannot read the file: {exc}") from None


def _names(source: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in re.split(r"[;,]", value) if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _error(source, f"'{key}' must be a list of strings, got {value!r}")
    return tuple(v.strip() for v in value)


def _bool(source: str, key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise _error(source, f"'{key}' must be true or false, got {value!r}")


def _number(source: str, key: str, value: Any, low: float, high: float, integer: bool = False) -> Any:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool) or not low <= number <= high or (integer and number != value):
        kind = "an integer" if integer else "a number"
        raise _error(source, f"'{key}' must be {kind} in [{low:g}, {high:g}], got {value!r}")
    return number


def options_from_dict(data: dict[str, Any], source: str, base: Path) -> QuantizationOptions:
    """Validates openatc's calibration settings (paths relative to the config's folder)."""
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        known = "; ".join(f"{k}: {v}" for k, v in _KEYS.items())
        raise _error(source, f"unknown key(s) {', '.join(unknown)}", hint=f"Known keys: {known}.")
    dirs: tuple[tuple[str, Path], ...] = ()
    raw = data.get("data_dir")
    if isinstance(raw, str) and raw:
        dirs = (("", base / raw),)
    elif isinstance(raw, dict) and raw and all(isinstance(v, str) for v in raw.values()):
        dirs = tuple((str(k), base / v) for k, v in raw.items())
    elif raw is not None:
        raise _error(source, f"'data_dir' must be a folder or {{input name: folder}}, got {raw!r}")
    target = data.get("accuracy_target")
    algo_options = data.get("algorithm_options", {})
    if not isinstance(algo_options, dict):
        raise _error(source, f"'algorithm_options' must be an object of keyword arguments, got {algo_options!r}")
    return QuantizationOptions(
        source=source,
        data_dirs=dirs,
        num_samples=_number(source, "num_samples", data["num_samples"], 1, 1e9, True)
        if "num_samples" in data
        else None,
        algorithm=str(data.get("algorithm", "minmax")),
        algorithm_options=tuple(sorted(algo_options.items())),
        per_channel=_bool(source, "per_channel", data.get("per_channel", True)),
        activation_symmetric=_bool(source, "activation_symmetric", data.get("activation_symmetric", False)),
        skip_layers=_names(source, "skip_layers", data.get("skip_layers", [])),
        skip_op_types=_names(source, "skip_op_types", data.get("skip_op_types", [])),
        op_types=_names(source, "op_types", data["op_types"]) if "op_types" in data else DEFAULT_OP_TYPES,
        accuracy_target=None if target is None else _number(source, "accuracy_target", target, -1e30, 1e30),
        holdout_fraction=_number(source, "holdout_fraction", data.get("holdout_fraction", 0.2), 0.0, 0.9),
        check_samples=_number(source, "check_samples", data.get("check_samples", 16), 1, 1e6, True),
        max_fallback_layers=_number(source, "max_fallback_layers", data["max_fallback_layers"], 0, 1e6, True)
        if data.get("max_fallback_layers") is not None
        else None,
        report=_bool(source, "report", data.get("report", True)),
        skip_slow_layers=_bool(source, "skip_slow_layers", data.get("skip_slow_layers", True)),
        image=_image(source, data["image"]) if "image" in data else None,
    )


def _json_config(value: str, flag: str = "calibration_config") -> QuantizationOptions:
    path, text = _read_text(flag, value)
    source = f"--{flag}={value}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _error(source, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _error(source, "the top level must be a JSON object")
    options = options_from_dict(data, source, path.parent)
    if not options.data_dirs:
        raise _error(source, "'data_dir' is missing", hint='Add "data_dir": "calib/" (one folder of samples).')
    return options


# -- ATC's --compression_optimize_conf ----------------------------------------------------------------
_ATC_KEYS = (
    "input_data_dir", "input_shape", "config_file", "infer_soc", "infer_aicore_num", "infer_device_id",
    "infer_ip", "infer_port", "log",
)  # fmt: skip


def _atc_blocks(text: str, source: str) -> tuple[dict[str, str], dict[str, str] | None]:
    """Top-level ``key: value`` lines and the ``calibration { key: value ... }`` block."""
    top: dict[str, str] = {}
    block: dict[str, str] | None = None
    inside = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if re.fullmatch(r"calibration\s*:?\s*\{?", line):
            block, inside = {}, True
            continue
        if inside and line == "{":
            continue
        if inside and line == "}":
            inside = False
            continue
        key, sep, rest = line.partition(":")
        if not sep:
            raise _error(source, f"line {number}: expected 'key: value', got '{raw.strip()}'")
        (block if inside and block is not None else top)[key.strip()] = rest.strip().strip('"')
    if inside:
        raise _error(source, "the calibration block has no closing '}'")
    return top, block


def _atc_config(value: str) -> QuantizationOptions:
    path, text = _read_text("compression_optimize_conf", value)
    source = f"--compression_optimize_conf={value}"
    top, block = _atc_blocks(text, source)
    unknown_top = sorted(set(top) - {"enable_first_layer_quantization"})
    if unknown_top:
        raise _error(source, f"unknown entry {', '.join(unknown_top)}", hint="Use a calibration { ... } block.")
    if block is None:
        raise _error(source, "no calibration { ... } block", hint="See ATC's compression_optimize_conf syntax.")
    unknown = sorted(set(block) - set(_ATC_KEYS))
    if unknown:
        raise _error(
            source, f"unknown key(s) {', '.join(unknown)} in calibration", hint="Known: " + ", ".join(_ATC_KEYS)
        )
    missing = [k for k in ("input_data_dir", "input_shape", "infer_soc") if not block.get(k)]
    if missing:
        raise _error(source, f"calibration lacks {', '.join(missing)} (ATC requires them)")
    from openatc.gears import parse_input_shape

    shapes = parse_input_shape(block["input_shape"])
    paths = [path.parent / p.strip() for p in block["input_data_dir"].split(",") if p.strip()]
    if len(paths) != len(shapes):
        raise _error(
            source,
            f"input_data_dir names {len(paths)} path(s) for {len(shapes)} input(s) of input_shape",
            hint="Give one file or folder per input, in the order of input_shape.",
        )
    base = QuantizationOptions(source=source, data_dirs=())
    if block.get("config_file"):  # openatc settings (algorithm, skip lists, ...) as JSON
        cfg_path, cfg_text = _read_text("compression_optimize_conf", str(path.parent / block["config_file"]))
        try:
            data = json.loads(cfg_text)
        except json.JSONDecodeError as exc:
            raise _error(source, f"config_file {cfg_path}: not valid JSON: {exc}") from None
        if not isinstance(data, dict) or "data_dir" in data:
            raise _error(source, f"config_file {cfg_path}: a JSON object of settings without data_dir")
        base = options_from_dict(data, source, cfg_path.parent)
    files = tuple(
        (s.name, tuple(sorted(p.iterdir())) if p.is_dir() else (p,)) for s, p in zip(shapes, paths, strict=True)
    )
    missing_paths = [str(p) for p in paths if not p.exists()]
    if missing_paths:
        raise OpenATCError("E10061", f"{source}: input_data_dir {', '.join(missing_paths)} does not exist")
    dims = tuple((s.name, tuple(int(d) for d in s.dims)) for s in shapes)
    return replace(base, data_files=files, shapes=dims, extra={"infer_soc": block["infer_soc"]})


def parse_quantization(given: dict[str, str]) -> QuantizationOptions | None:
    """The INT8 settings from ``--calibration_config`` or ``--compression_optimize_conf`` (None if neither)."""
    json_value, atc_value = given.get("calibration_config", ""), given.get("compression_optimize_conf", "")
    if json_value and atc_value:
        raise OpenATCError(
            "E10001",
            f"--calibration_config={json_value} and --compression_optimize_conf={atc_value} cannot be given together",
            hint="Keep one of them.",
        )
    if not (json_value or atc_value):
        return None
    options = _json_config(json_value) if json_value else _atc_config(atc_value)
    mode = given.get("precision_mode", "") or given.get("precision_mode_v2", "")
    if mode in ("force_fp32", "must_keep_origin_dtype", "cube_fp16in_fp32out", "origin"):
        raise OpenATCError(
            "E10001",
            f"{options.source} quantizes to INT8, which --precision_mode{'_v2' if 'precision_mode_v2' in given else ''}"
            f"={mode} excludes (a high-precision mode)",
            hint="Remove the precision flag (the float layers of an INT8 build stay FP32), or the calibration config.",
        )
    return options
