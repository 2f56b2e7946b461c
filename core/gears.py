"""Dynamic shapes: ATC gears (``--dynamic_batch_size``, ``--dynamic_image_size``, ``--dynamic_dims``)
and shape ranges (``-1`` / ``a~b`` in ``--input_shape``, ``--input_shape_range``).

Parsing and ATC's validation (spec section 1.4.2, checks in the order of section 1.5 step 8-9),
each failure with ATC's error code. :func:`parse_dynamic` turns the raw flags into a
:class:`Dynamic`; :func:`gear_shapes` expands it into one concrete ``--input_shape`` per gear.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from openatc.errors import OpenATCError

__all__ = [
    "GEAR_FLAGS",
    "MAX_DYNAMIC_DIMS_RANK",
    "MAX_GEARS",
    "MAX_GEARS_950",
    "MIN_GEARS",
    "Dynamic",
    "InputShape",
    "gear_shapes",
    "max_gears",
    "parse_dynamic",
    "parse_input_shape",
    "parse_input_shape_range",
    "shape_text",
]

GEAR_FLAGS = ("dynamic_batch_size", "dynamic_image_size", "dynamic_dims")
MIN_GEARS, MAX_GEARS = 2, 100
#: ATC allows up to 256 gears on the Ascend 950 chips (--soc_version Ascend950*), 100 elsewhere.
MAX_GEARS_950 = 256
#: With --dynamic_dims every input in --input_shape has at most 4 dims (ATC: "Dim num must within [1, 4]").
MAX_DYNAMIC_DIMS_RANK = 4
#: Axes of H and W per --input_format, for --dynamic_image_size.
HW_AXES = {"NCHW": (2, 3), "NHWC": (1, 2)}
UNBOUNDED = -1


@dataclass(frozen=True)
class InputShape:
    """One entry of ``--input_shape``: an input name and its dims.

    ``dims`` holds positive ints for fixed dims and ``-1`` for dynamic ones. ``ranges`` is empty,
    or holds one ``(low, high)`` per dim for a range (dynamic-shape) compile: ``(d, d)`` for a fixed
    dim, ``high == -1`` for no upper bound.
    """

    name: str
    dims: tuple[int, ...]
    ranges: tuple[tuple[int, int], ...] = ()

    @property
    def dynamic_axes(self) -> tuple[int, ...]:
        return tuple(i for i, d in enumerate(self.dims) if d < 0)

    def text(self) -> str:
        return f"{self.name}:{shape_text(self.dims, self.ranges)}"


@dataclass(frozen=True)
class Dynamic:
    """What the dynamic-shape flags asked for.

    ``kind`` is one of :data:`GEAR_FLAGS` (then ``gears`` holds the values of each gear, as many
    per gear as ``--input_shape`` has -1 dims, in order; one value for dynamic batch, two (h, w)
    for image size), or ``"shape_range"`` (a single dynamically shaped graph; the ranges are in
    the InputShape entries).
    """

    kind: str
    gears: tuple[tuple[int, ...], ...] = ()


def shape_text(dims: Sequence[int], ranges: Sequence[tuple[int, int]] = ()) -> str:
    parts = []
    for i, d in enumerate(dims):
        if ranges and d < 0 and ranges[i] != (0, UNBOUNDED):
            low, high = ranges[i]
            parts.append(f"{low}~{high}")
        else:
            parts.append(str(d))
    return ",".join(parts)


_INT = re.compile(r"^-?\d+$")
_SAMPLE = 'e.g. "input_ids:1,64;attention_mask:1,64", "x:-1,3,224,224" or "x:1~8,3,224,224"'


def _range(text: str, name: str, code: str, flag: str) -> tuple[int, int]:
    low_text, _, high_text = text.partition("~")
    low_text, high_text = low_text.strip(), high_text.strip()
    if not _INT.match(low_text) or not _INT.match(high_text):
        raise OpenATCError(code, f"--{flag} range '{text}' of input '{name}' is not 'low~high' with integers")
    low, high = int(low_text), int(high_text)
    if low < 0 or (high != UNBOUNDED and (high < 1 or high < low)):
        raise OpenATCError(
            code,
            f"--{flag} range '{text}' of input '{name}' is invalid: low must be >= 0 and high >= low (or -1)",
            hint='e.g. "1~8"; "-1" as the high end means unbounded.',
        )
    return low, high


def _dims(name: str, dims_text: str, code: str, flag: str) -> InputShape:
    dims: list[int] = []
    ranges: list[tuple[int, int]] = []
    has_range = False
    for d in (d.strip() for d in dims_text.split(",")) if dims_text.strip() else ():
        if "~" in d:
            ranges.append(_range(d, name, code, flag))
            dims.append(-1)
            has_range = True
            continue
        if not _INT.match(d):
            raise OpenATCError(code, f"--{flag} dimension '{d}' of input '{name}' is not an integer", hint=_SAMPLE)
        value = int(d)
        if value == -1:
            ranges.append((0, UNBOUNDED))
        elif value <= 0:
            raise OpenATCError("E10011", f"--{flag} dimension {value} of input '{name}' is not positive", hint=_SAMPLE)
        else:
            ranges.append((value, value))
        dims.append(value)
    return InputShape(name, tuple(dims), tuple(ranges) if (has_range or -1 in dims) else ())


def parse_input_shape(text: str) -> tuple[InputShape, ...]:
    """Parses ``"name1:d0,d1;name2:d0"``; names split from dims at the last ':'.

    A dim is a positive int, ``-1`` (dynamic) or ``low~high`` (a range; ``high`` -1 = unbounded).
    """
    shapes: list[InputShape] = []
    seen: set[str] = set()
    for item in (part.strip() for part in text.split(";")):
        if not item:
            continue
        name, sep, dims_text = item.rpartition(":")
        if not sep or not name:
            raise OpenATCError("E10002", f"--input_shape entry '{item}' has no 'name:' part", hint=_SAMPLE)
        if name in seen:
            raise OpenATCError("E10002", f"--input_shape names input '{name}' twice", hint=_SAMPLE)
        seen.add(name)
        shapes.append(_dims(name, dims_text, "E10002", "input_shape"))
    return tuple(shapes)


def parse_input_shape_range(text: str) -> tuple[InputShape, ...]:
    """Parses the deprecated ``"name1:[1~8,3,224,224];name2:[-1,10]"``."""
    sample = '"name1:[n1~n2,c,h,w];name2:[-1,10]"'
    shapes: list[InputShape] = []
    seen: set[str] = set()
    for item in (part.strip() for part in text.split(";")):
        if not item:
            continue
        name, sep, dims_text = item.rpartition(":")
        dims_text = dims_text.strip()
        if not sep or not name or not (dims_text.startswith("[") and dims_text.endswith("]")):
            raise OpenATCError(
                "E10048", f"--input_shape_range entry '{item}' is not name:[dims]", hint=f"Write it as {sample}."
            )
        if name in seen:
            raise OpenATCError("E10048", f"--input_shape_range names input '{name}' twice", hint=f"e.g. {sample}")
        seen.add(name)
        shape = _dims(name, dims_text[1:-1], "E10048", "input_shape_range")
        ranges = shape.ranges or tuple((d, d) for d in shape.dims)
        shapes.append(InputShape(name, shape.dims, ranges))
    return tuple(shapes)


def _gear_values(flag: str, text: str) -> list[tuple[int, ...]]:
    """Splits a gear flag into gears (``;`` between gears, ``,`` between values; batch: ``,``)."""
    bad = "E10020" if flag == "dynamic_image_size" else "E10001"
    allowed = r"[\d,\s-]" if flag == "dynamic_batch_size" else r"[\d,;\s-]"
    if not text.strip() or re.sub(allowed, "", text):
        raise OpenATCError(
            bad,
            f"--{flag}={text} is invalid: only digits, ',' and ';' are allowed",
            hint=_GEAR_HINT[flag],
        )
    if flag == "dynamic_batch_size":
        groups = [[v] for v in text.strip().rstrip(",").split(",")]
    else:
        groups = [g.split(",") for g in text.strip().rstrip(";").split(";")]
    gears: list[tuple[int, ...]] = []
    for group in groups:
        values = [v.strip() for v in group]
        if any(not _INT.match(v) for v in values):
            raise OpenATCError(
                bad, f"--{flag}={text}: '{','.join(values)}' is not a list of integers", hint=_GEAR_HINT[flag]
            )
        gears.append(tuple(int(v) for v in values))
    return gears


_GEAR_HINT = {
    "dynamic_batch_size": 'Give batch sizes separated by ",", e.g. --dynamic_batch_size="1,2,4,8".',
    "dynamic_image_size": 'Give "h,w" pairs separated by ";", e.g. --dynamic_image_size="224,224;448,448".',
    "dynamic_dims": 'Give one gear per ";" with one value per -1 of --input_shape, e.g. --dynamic_dims="64;128;256".',
}


def max_gears(soc_version: str) -> int:
    """ATC's largest gear count for ``soc_version``: 256 on the Ascend 950 chips, 100 elsewhere."""
    return MAX_GEARS_950 if soc_version.strip().lower().startswith("ascend950") else MAX_GEARS


def parse_dynamic(
    given: Mapping[str, str], shapes: tuple[InputShape, ...], input_format: str, soc_version: str = ""
) -> tuple[tuple[InputShape, ...], Dynamic | None, tuple[str, ...]]:
    """Validates the dynamic-shape flags against ``--input_shape``; returns shapes, Dynamic, notes.

    ``notes`` are messages for ``--log=info`` (e.g. how the comma form of --dynamic_dims was read).
    ``soc_version`` sets the largest gear count (:func:`max_gears`).
    """
    chosen = [f for f in (*GEAR_FLAGS, "input_shape_range") if given.get(f, "")]
    if len(chosen) > 1:
        raise OpenATCError(
            "E10009",
            f"{', '.join('--' + f for f in chosen)} are given together; --dynamic_batch_size, "
            "--dynamic_image_size, --dynamic_dims and --input_shape_range are mutually exclusive",
            hint="Keep one of them.",
        )
    if "input_shape_range" in chosen:
        shapes = _merge_ranges(shapes, parse_input_shape_range(given["input_shape_range"]))
    dynamic_inputs = [s for s in shapes if s.dynamic_axes]
    gear_flag = next((f for f in chosen if f in GEAR_FLAGS), None)
    if gear_flag is None:
        if not dynamic_inputs:
            return shapes, None, ()
        return shapes, Dynamic("shape_range"), ()
    text = given[gear_flag]
    if any(_has_range(s) for s in shapes):
        raise OpenATCError(
            "E10040",
            f"--{gear_flag} is given and --input_shape contains a range ('~'); gears need -1 dims and no ranges",
            hint='Write the dims that vary as -1, e.g. --input_shape="x:-1,3,224,224".',
        )
    notes: list[str] = []
    if gear_flag == "dynamic_batch_size":
        _check_batch_dims(shapes)
    elif gear_flag == "dynamic_image_size":
        _check_image_dims(shapes, input_format)
    else:
        if input_format != "ND":
            raise OpenATCError(
                "E10001",
                f"--dynamic_dims needs --input_format=ND, got --input_format={input_format}",
                hint="Add --input_format=ND.",
            )
        too_long = next((s for s in shapes if len(s.dims) > MAX_DYNAMIC_DIMS_RANK), None)
        if too_long is not None:
            raise OpenATCError(
                "E10001",
                f"--input_shape {too_long.text()}: input '{too_long.name}' has {len(too_long.dims)} dims; with "
                f"--dynamic_dims every input in --input_shape must have 1 to {MAX_DYNAMIC_DIMS_RANK} dims",
                hint="Reshape the input to at most 4 dims in the model, or use --input_shape_range / a -1 "
                "range compile for this input.",
            )
        if not dynamic_inputs:
            raise OpenATCError(
                "E10040",
                "--dynamic_dims is given but --input_shape has no -1 dimension",
                hint='Mark the dims that vary with -1, e.g. --input_shape="input_ids:1,-1".',
            )
    minus_ones = sum(len(s.dynamic_axes) for s in shapes)
    gears = _gear_values(gear_flag, text)
    if gear_flag == "dynamic_dims" and minus_ones == 1 and len(gears) == 1 and len(gears[0]) > 1:
        gears = [(v,) for v in gears[0]]
        notes.append(
            f"--dynamic_dims={text}: --input_shape has one -1 dimension, so each number is one gear "
            f"({len(gears)} gears: {';'.join(str(g[0]) for g in gears)})"
        )
    _check_gears(gear_flag, text, gears, minus_ones, max_gears(soc_version), soc_version)
    clean = tuple(InputShape(s.name, s.dims) for s in shapes)
    return clean, Dynamic(gear_flag, tuple(gears)), tuple(notes)


def _has_range(shape: InputShape) -> bool:
    return any(shape.dims[i] < 0 and r != (0, UNBOUNDED) for i, r in enumerate(shape.ranges))


def _merge_ranges(shapes: tuple[InputShape, ...], ranged: tuple[InputShape, ...]) -> tuple[InputShape, ...]:
    names = {s.name for s in shapes}
    both = [r.name for r in ranged if r.name in names]
    if both:
        raise OpenATCError(
            "E10056",
            f"--input_shape and --input_shape_range both give input '{both[0]}'",
            hint="Give each input in one of them; ranges can be written in --input_shape as low~high.",
        )
    return (*shapes, *ranged)


def _check_batch_dims(shapes: tuple[InputShape, ...]) -> None:
    for s in shapes:
        if s.dynamic_axes and not s.dims:
            raise OpenATCError("E10012", f"--dynamic_batch_size: input '{s.name}' has no dimensions")
        wrong = [a for a in s.dynamic_axes if a != 0]
        if wrong:
            raise OpenATCError(
                "E10018",
                f"--input_shape {s.text()}: dim {wrong[0]} is -1, but with --dynamic_batch_size only the batch "
                "size N (dim 0) may be -1",
                hint="Fix the other dims, or use --dynamic_dims (ND) for other dynamic axes.",
            )
    if not any(s.dims and s.dims[0] == -1 for s in shapes):
        raise OpenATCError(
            "E10031",
            "--dynamic_batch_size is given, but no input in --input_shape has -1 as its batch size (dim 0)",
            hint='Write the batch dim as -1, e.g. --input_shape="x:-1,3,224,224".',
        )


def _check_image_dims(shapes: tuple[InputShape, ...], input_format: str) -> None:
    axes = HW_AXES.get(input_format)
    if axes is None:
        raise OpenATCError(
            "E10001",
            f"--dynamic_image_size needs --input_format NCHW or NHWC, got --input_format={input_format}",
            hint="Use --input_format=NCHW (or NHWC for TensorFlow models).",
        )
    dynamic = [s for s in shapes if s.dynamic_axes]
    for s in dynamic:
        if len(s.dims) != 4 or s.dynamic_axes != axes:
            raise OpenATCError(
                "E10019",
                f"--input_shape {s.text()}: with --dynamic_image_size only height and width may be -1 "
                f"(a 4-D {input_format} input with dims {axes[0]} and {axes[1]} set to -1)",
                hint='e.g. --input_shape="x:1,3,-1,-1" --dynamic_image_size="224,224;448,448".',
            )
    if not dynamic:
        raise OpenATCError(
            "E10040",
            "--dynamic_image_size is given but --input_shape has no -1 dimension",
            hint='Write H and W as -1, e.g. --input_shape="x:1,3,-1,-1".',
        )


def _check_gears(
    flag: str, text: str, gears: list[tuple[int, ...]], minus_ones: int, most: int = MAX_GEARS, soc: str = ""
) -> None:
    for gear in gears:
        for value in gear:
            if value <= 0:
                raise OpenATCError(
                    "E10038", f"--{flag}={text}: dimension size {value} is invalid; gear values must be > 0"
                )
    if flag == "dynamic_image_size":
        for gear in gears:
            if len(gear) != 2:
                raise OpenATCError(
                    "E10020",
                    f"--dynamic_image_size={text}: gear '{','.join(map(str, gear))}' has {len(gear)} value(s), "
                    "each gear needs exactly 2 (height,width)",
                    hint=_GEAR_HINT[flag],
                )
    counts = sorted({len(g) for g in gears})
    if len(counts) > 1:
        raise OpenATCError(
            "E10037",
            f"--{flag}={text}: gears have inconsistent dimension counts ({counts[0]} and {counts[-1]})",
            hint=_GEAR_HINT[flag],
        )
    if not MIN_GEARS <= len(gears) <= most:
        on = f" for --soc_version={soc}" if soc else ""
        code, bound = (
            ("E10035", f"less than the minimum {MIN_GEARS}")
            if len(gears) < MIN_GEARS
            else ("E10036", f"greater than the maximum {most}{on}")
        )
        raise OpenATCError(code, f"--{flag}={text} has {len(gears)} gear(s), which is {bound}", hint=_GEAR_HINT[flag])
    seen: set[tuple[int, ...]] = set()
    for gear in gears:
        if gear in seen:
            raise OpenATCError("E10039", f"--{flag}={text} has duplicate gears ({','.join(map(str, gear))} twice)")
        seen.add(gear)
    if flag == "dynamic_dims" and counts[0] != minus_ones:
        code = "E10045" if minus_ones > counts[0] else "E10046"
        raise OpenATCError(
            code,
            f"--input_shape has {minus_ones} -1 dimension(s) but each --dynamic_dims gear gives {counts[0]} value(s)",
            hint="Give one value per -1 dimension, across all inputs in --input_shape order.",
        )


def gear_shapes(
    shapes: Sequence[InputShape], dynamic: Dynamic | None, input_format: str
) -> list[tuple[InputShape, ...]]:
    """The concrete ``--input_shape`` of every gear (one entry, ``shapes`` itself, without gears)."""
    if dynamic is None or dynamic.kind not in GEAR_FLAGS:
        return [tuple(shapes)]
    result = []
    for gear in dynamic.gears:
        values = iter(gear)
        out = []
        for s in shapes:
            dims = list(s.dims)
            for axis in s.dynamic_axes:
                if dynamic.kind == "dynamic_batch_size":
                    dims[axis] = gear[0]
                elif dynamic.kind == "dynamic_image_size":
                    dims[axis] = gear[HW_AXES[input_format].index(axis)]
                else:
                    dims[axis] = next(values)
            out.append(InputShape(s.name, tuple(dims)))
        result.append(tuple(out))
    return result
