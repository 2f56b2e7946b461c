"""Reading ``--insert_op_conf``: protobuf text format, ATC's defaults, checks that need only the file.

:func:`parse_aipp_config` returns one :class:`AippConfig` per ``aipp_op`` block with every default
ATC fills in (../spec sections 2.2 and 2.8). Checks that need the model (sizes against the model
input, the input's rank and layout, the format's alignment) run when the pipeline inserts the ops
(:mod:`openatc.aipp.insert`). Every error is ``E13018`` (the text does not parse) or ``E10052``
(it parses but is not a valid AIPP configuration) and names the file, the block, the field and
its line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import text_format

from openatc.aipp._proto import FIELDS, insert_new_ops_class
from openatc.errors import OpenATCError

__all__ = ["DEFAULT_RGB_MATRIX", "DEFAULT_YUV_MATRIX", "AippConfig", "parse_aipp_config", "parse_aipp_text"]

#: ATC's default matrices when ``csc_switch`` is on and no matrix is given (spec 2.8).
DEFAULT_YUV_MATRIX = ((298, 516, 0), (298, -100, -208), (298, 0, 409))  # YUV420SP -> BGR, BT.601 narrow
DEFAULT_RGB_MATRIX = ((66, 129, 25), (-38, -74, 112), (112, -94, -18))  # RGB -> YUV, BT.601 narrow
_REPEATED = tuple(name for name, _, _, repeated in FIELDS if repeated and name != "input_edge_idx")
_HINT = "Fix the field in the AIPP configuration file (see docs/aipp.md for every field and its range)."


@dataclass(frozen=True)
class AippConfig:
    """One ``aipp_op`` block with ATC's defaults filled in.

    Sizes of 0 mean "take it from the model input" (resolved when the ops are inserted). Matrix
    rows produce output channels in order; ``mean``/``min``/``var_reci`` hold channels 0..3.
    ``lines`` maps each field given in the file to its line number (for error messages).
    """

    mode: str  # "static" or "dynamic"
    index: int  # position of the block in the file (0-based)
    line: int
    source: str = "<text>"
    related_input_rank: int = 0
    related_input_name: str = ""
    input_edge_idx: int | None = None  # None: every consumer of the input
    max_src_image_size: int = 0
    input_format: str = ""
    src_image_size_w: int = 0
    src_image_size_h: int = 0
    crop: bool = False
    load_start_pos_w: int = 0
    load_start_pos_h: int = 0
    crop_size_w: int = 0
    crop_size_h: int = 0
    padding: bool = False
    left_padding_size: int = 0
    right_padding_size: int = 0
    top_padding_size: int = 0
    bottom_padding_size: int = 0
    padding_value: float = 0.0
    csc_switch: bool = False
    matrix: tuple[tuple[int, int, int], ...] = DEFAULT_YUV_MATRIX
    input_bias: tuple[int, int, int] = (16, 128, 128)
    output_bias: tuple[int, int, int] = (16, 128, 128)
    rbuv_swap_switch: bool = False
    ax_swap_switch: bool = False
    mean_chn: tuple[int, int, int, int] = (0, 0, 0, 0)
    min_chn: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    var_reci_chn: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def where(self) -> str:
        """``file, aipp_op #n (line l)`` for messages."""
        return f"{self.source}, aipp_op #{self.index + 1} (line {self.line})"

    def at(self, name: str) -> str:
        """``file, aipp_op #n, field 'name' (line l)`` for messages about one field."""
        line = self.lines.get(name, self.line)
        return f"{self.source}, aipp_op #{self.index + 1}, {name} (line {line})"

    def to_json(self) -> dict[str, Any]:
        """The resolved configuration as recorded in the .om manifest."""
        data = {k: v for k, v in self.__dict__.items() if k not in ("lines", "source", "line", "index")}
        data["matrix"] = [list(r) for r in self.matrix]
        for key in ("input_bias", "output_bias", "mean_chn", "min_chn", "var_reci_chn"):
            data[key] = list(data[key])
        return data


def parse_aipp_config(path: Path) -> tuple[AippConfig, ...]:
    """Reads and checks an ``--insert_op_conf`` file (E10410 unreadable, E13018 syntax, E10052 content)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OpenATCError("E10410", f"--insert_op_conf={path}: cannot read the file: {exc}") from None
    return parse_aipp_text(text, str(path))


def parse_aipp_text(text: str, source: str = "<text>") -> tuple[AippConfig, ...]:
    """Parses configuration text; ``source`` names it in error messages."""
    message = insert_new_ops_class()()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise OpenATCError(
            "E13018",
            f"failed to parse AIPP configuration '{source}' through TextFormat: {exc}",
            hint="Write 'aipp_op { key : value ... }' with the field names of docs/aipp.md; '#' starts a comment.",
        ) from None
    blocks, counts = _scan(text)
    if not message.aipp_op:
        raise OpenATCError("E10052", f"AIPP configuration '{source}' has no aipp_op block", hint=_HINT)
    configs = tuple(
        _config(op, i, source, blocks[i] if i < len(blocks) else {}, counts[i] if i < len(counts) else {})
        for i, op in enumerate(message.aipp_op)
    )
    _check_blocks(configs)
    return configs


_KEY = re.compile(r"([A-Za-z_]\w*)\s*(?=[:{])")


def _scan(text: str) -> tuple[list[dict[str, int]], list[dict[str, int]]]:
    """Per aipp_op block: the line of each field (``""`` = the block itself) and how often it occurs."""
    lines: list[dict[str, int]] = []
    counts: list[dict[str, int]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        code = raw.split("#", 1)[0]
        for match in _KEY.finditer(code):
            key = match.group(1)
            if key == "aipp_op":
                lines.append({"": number})
                counts.append({})
            elif lines:
                lines[-1].setdefault(key, number)
                counts[-1][key] = counts[-1].get(key, 0) + 1
    return lines, counts


def _error(config_where: str, reason: str, hint: str = _HINT) -> OpenATCError:
    return OpenATCError("E10052", f"AIPP configuration is invalid: {config_where}: {reason}", hint=hint)


def _config(op: Any, index: int, source: str, lines: dict[str, int], counts: dict[str, int]) -> AippConfig:
    """One block: repeated-field check, defaults (spec 2.8), ranges."""
    block_line = lines.get("", 0)
    where = f"{source}, aipp_op #{index + 1} (line {block_line})"

    def at(name: str) -> str:
        return f"{source}, aipp_op #{index + 1}, {name} (line {lines.get(name, block_line)})"

    for name in _REPEATED:
        if len(getattr(op, name)) > 1 or counts.get(name, 0) > 1:
            raise _error(at(name), f"{name} cannot be configured repeatedly")
    if len(op.input_edge_idx) > 1 or counts.get("input_edge_idx", 0) > 1:
        raise _error(at("input_edge_idx"), "input_edge_idx cannot be configured repeatedly")
    mode = {1: "static", 2: "dynamic"}.get(op.aipp_mode)
    if mode is None:
        raise _error(
            where, "aipp_mode is missing or undefined", hint="Add 'aipp_mode : static' or 'aipp_mode : dynamic'."
        )
    values: dict[str, Any] = {
        "mode": mode,
        "index": index,
        "line": block_line,
        "source": source,
        "related_input_rank": op.related_input_rank,
        "related_input_name": op.related_input_name,
        "input_edge_idx": int(op.input_edge_idx[0]) if op.input_edge_idx else None,
        "lines": {k: v for k, v in lines.items() if k},
    }
    if mode == "dynamic":
        if op.max_src_image_size <= 0:
            raise _error(
                at("max_src_image_size"),
                "max_src_image_size must be > 0 for dynamic AIPP",
                hint="Give the byte size of the largest image times the batch, e.g. W*H*1.5*N for YUV420SP_U8.",
            )
        values["max_src_image_size"] = op.max_src_image_size
        return AippConfig(**values)
    return AippConfig(**values, **_static_fields(op, at))


def _first(op: Any, name: str, default: Any) -> Any:
    items = getattr(op, name)
    return items[0] if items else default


def _static_fields(op: Any, at: Any) -> dict[str, Any]:
    from openatc.aipp._proto import INPUT_FORMATS

    formats = {v: k for k, v in INPUT_FORMATS.items()}
    fmt = formats.get(op.input_format, "UNDEFINED")
    if fmt == "UNDEFINED":
        raise _error(
            at("input_format"), "input_format is required for static AIPP", hint="e.g. 'input_format : YUV420SP_U8'."
        )
    for name, reason in (
        ("resize", "resize is reserved in static AIPP and not supported"),
        ("single_line_mode", "single_line_mode is reserved and not supported"),
    ):
        if getattr(op, name):
            raise _error(at(name), reason, hint=f"Remove '{name} : true'.")
    _check_range(op, at, "src_image_size_w", 2, 4096, zero_ok=True)
    _check_range(op, at, "src_image_size_h", 1, 4096, zero_ok=True)
    values: dict[str, Any] = {
        "input_format": fmt,
        "src_image_size_w": op.src_image_size_w,
        "src_image_size_h": op.src_image_size_h,
        "csc_switch": op.csc_switch,
        "rbuv_swap_switch": op.rbuv_swap_switch,
        "ax_swap_switch": op.ax_swap_switch,
        "crop": op.crop,
        "padding": op.padding,
    }
    if op.crop:  # crop off: ATC forces the start and size to 0
        for name in ("load_start_pos_w", "load_start_pos_h"):
            _check_range(op, at, name, 0, 4095)
        for name in ("crop_size_w", "crop_size_h"):
            _check_range(op, at, name, 0, 4096)
        values.update(
            {n: getattr(op, n) for n in ("load_start_pos_w", "load_start_pos_h", "crop_size_w", "crop_size_h")}
        )
    if op.padding:  # padding off: ATC forces the sizes to 0
        for side in ("left", "right", "top", "bottom"):
            _check_range(op, at, f"{side}_padding_size", 0, 32)
            values[f"{side}_padding_size"] = getattr(op, f"{side}_padding_size")
        values["padding_value"] = op.padding_value
    if (op.src_image_size_w == 0 or op.src_image_size_h == 0) and (op.crop or op.padding):
        name = "src_image_size_w" if op.src_image_size_w == 0 else "src_image_size_h"
        raise _error(at(name), f"{name} may be 0 (taken from the model input) only when crop and padding are off")
    if op.crop:
        for axis in ("w", "h"):
            start, size, src = (getattr(op, f"{p}_{axis}") for p in ("load_start_pos", "crop_size", "src_image_size"))
            if start >= src:
                raise _error(
                    at(f"load_start_pos_{axis}"), f"load_start_pos_{axis}={start} must be < src_image_size_{axis}={src}"
                )
            if start + size > src:
                raise _error(
                    at(f"crop_size_{axis}"),
                    f"load_start_pos_{axis} + crop_size_{axis} = {start} + {size} exceeds src_image_size_{axis}={src}",
                )
        if op.padding and (op.crop_size_w == 0 or op.crop_size_h == 0):
            name = "crop_size_w" if op.crop_size_w == 0 else "crop_size_h"
            raise _error(at(name), f"{name} may be 0 (taken from the model input) only when padding is off")
    for i in range(9):
        _check_range(op, at, f"matrix_r{i // 3}c{i % 3}", -32677, 32676)
    for i in range(3):
        _check_range(op, at, f"input_bias_{i}", 0, 255)
        _check_range(op, at, f"output_bias_{i}", 0, 255)
    for i in range(4):
        _check_range(op, at, f"mean_chn_{i}", 0, 255)
        _check_range(op, at, f"min_chn_{i}", 0, 255)
        _check_range(op, at, f"var_reci_chn_{i}", -65504, 65504)
    default = DEFAULT_YUV_MATRIX if fmt == "YUV420SP_U8" else DEFAULT_RGB_MATRIX
    values["matrix"] = tuple(
        tuple(int(_first(op, f"matrix_r{r}c{c}", default[r][c])) for c in range(3)) for r in range(3)
    )
    values["input_bias"] = tuple(int(_first(op, f"input_bias_{i}", (16, 128, 128)[i])) for i in range(3))
    values["output_bias"] = tuple(int(_first(op, f"output_bias_{i}", (16, 128, 128)[i])) for i in range(3))
    values["mean_chn"] = tuple(int(getattr(op, f"mean_chn_{i}")) for i in range(4))
    values["min_chn"] = tuple(float(getattr(op, f"min_chn_{i}")) for i in range(4))
    values["var_reci_chn"] = tuple(float(_first(op, f"var_reci_chn_{i}", 1.0)) for i in range(4))
    return values


def _check_range(op: Any, at: Any, name: str, low: float, high: float, *, zero_ok: bool = False) -> None:
    value = getattr(op, name)
    values = list(value) if not isinstance(value, (int, float)) else [value]
    for v in values:
        if zero_ok and v == 0:
            continue
        if not low <= v <= high:
            allowed = f"[{low}, {high}]" + (" or 0" if zero_ok else "")
            raise _error(at(name), f"{name}={v:g} is out of range {allowed}")


def _check_blocks(configs: tuple[AippConfig, ...]) -> None:
    """Across blocks: one mode, names or ranks consistently, one block per input."""
    modes = {c.mode for c in configs}
    if len(modes) > 1:
        second = next(c for c in configs if c.mode != configs[0].mode)
        raise _error(second.at("aipp_mode"), "static and dynamic AIPP cannot be mixed in one model")
    by_name = {bool(c.related_input_name) for c in configs}
    if len(by_name) > 1:
        other = next(c for c in configs if bool(c.related_input_name) != bool(configs[0].related_input_name))
        raise _error(
            other.where, "all aipp_op blocks must use either related_input_name or related_input_rank, not a mix"
        )
    seen: dict[object, AippConfig] = {}
    for c in configs:
        key = c.related_input_name or c.related_input_rank
        if key in seen:
            first = seen[key]
            field_name = "related_input_name" if c.related_input_name else "related_input_rank"
            if c.input_edge_idx is None or first.input_edge_idx is None:
                raise _error(
                    c.at(field_name),
                    f"{field_name}={key!s} is already used by aipp_op #{first.index + 1}; each input takes one "
                    "block (several blocks for one input need input_edge_idx in every one of them)",
                )
            _check_same_source(first, c, field_name, key)
        seen[key] = c
    edges: dict[tuple[object, int], AippConfig] = {}
    for c in configs:
        if c.input_edge_idx is None:
            continue
        key = (c.related_input_name or c.related_input_rank, c.input_edge_idx)
        if key in edges:
            raise _error(
                c.at("input_edge_idx"),
                f"input_edge_idx={c.input_edge_idx} of this input is already used by aipp_op #{edges[key].index + 1}",
            )
        edges[key] = c


def _check_same_source(first: AippConfig, other: AippConfig, field_name: str, key: object) -> None:
    """All AIPP blocks behind one input read the same image (spec 2.2, input_edge_idx)."""
    names = ("max_src_image_size",) if first.mode == "dynamic" else ("input_format", "src_image_size_w")
    names += () if first.mode == "dynamic" else ("src_image_size_h",)
    for name in names:
        if getattr(first, name) != getattr(other, name):
            raise _error(
                other.at(name),
                f"{name}={getattr(other, name)} differs from aipp_op #{first.index + 1} "
                f"({getattr(first, name)}); the blocks of {field_name}={key!s} share one image",
                hint="AIPP blocks on the edges of one input must agree on input_format and src_image_size_w/h "
                "(static) or max_src_image_size (dynamic).",
            )
