"""Running an .om from files or generated data, with a latency summary (``openatc run``)."""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openatc.errors import OpenATCError
from openatc.types import TensorSpec

__all__ = [
    "OUTPUT_FORMATS",
    "RunSummary",
    "generate_input",
    "load_inputs",
    "parse_pad_values",
    "parse_shape_range",
    "run_shapes",
    "summary_json",
    "time_runs",
    "write_outputs",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """Latency statistics of timed runs, in milliseconds."""

    times_ms: tuple[float, ...]
    batch_size: int

    def stats(self) -> dict[str, float]:
        t = np.asarray(self.times_ms)
        mean = float(t.mean())
        return {
            "min": float(t.min()),
            "max": float(t.max()),
            "mean": mean,
            "median": float(np.median(t)),
            "percentile(99%)": float(np.percentile(t, 99)),
            "count": len(t),
            "throughput": 1000.0 * self.batch_size / mean if mean > 0 else 0.0,
        }


def _concrete_shape(spec: TensorSpec, shape: Sequence[int] | None = None) -> tuple[int, ...]:
    if shape is not None:
        return tuple(int(d) for d in shape)
    if any(not isinstance(d, int) for d in spec.shape):
        raise OpenATCError(
            "E40010",
            f"input '{spec.name}' has dynamic dims {list(spec.shape)}; give its data with --input, or its shape "
            f'with --dymShape="{spec.name}:..." (--dymBatch, --dymHW, --dymDims for gear models)',
        )
    return tuple(int(d) for d in spec.shape)


def _parse_named_shapes(flag: str, text: str, specs: Sequence[TensorSpec]) -> dict[str, tuple[int, ...]]:
    """``"name:1,600;name2:1,600"`` (ais_bench --dymDims / --dymShape)."""
    names = {s.name for s in specs}
    shapes: dict[str, tuple[int, ...]] = {}
    for item in (p.strip() for p in text.split(";") if p.strip()):
        name, sep, dims = item.rpartition(":")
        values = [d.strip() for d in dims.split(",")] if dims.strip() else []
        if not sep or name not in names or any(not v.isdigit() for v in values):
            raise OpenATCError(
                "E10001",
                f"--{flag} entry '{item}' is not input_name:d0,d1,... with an input of the model "
                f"({', '.join(sorted(names))}) and positive dims",
                hint=f'e.g. --{flag}="{specs[0].name}:{",".join("1" for _ in specs[0].shape)}"',
            )
        shapes[name] = tuple(int(v) for v in values)
    return shapes


def run_shapes(
    session: Any,
    *,
    dym_batch: int | None = None,
    dym_hw: str | None = None,
    dym_dims: str | None = None,
    dym_shape: str | None = None,
) -> dict[str, tuple[int, ...]]:
    """Input shapes for ``openatc run`` from ais_bench's overrides; none given: the largest gear.

    ``--dymBatch N`` sets dim 0 of the inputs whose batch varies across gears, ``--dymHW h,w`` their
    H and W, ``--dymDims``/``--dymShape`` whole shapes per input. A shape that matches no gear is
    padded by the Session when ``--pad`` is given, and rejected (listing the gears) otherwise.
    """
    given = [
        f for f, v in (("dymBatch", dym_batch), ("dymHW", dym_hw), ("dymDims", dym_dims), ("dymShape", dym_shape)) if v
    ]
    if len(given) > 1:
        raise OpenATCError("E10001", f"--{' and --'.join(given)} are mutually exclusive", hint="Give one of them.")
    gears: list[dict[str, tuple[Any, ...]]] = session.gears
    kind = (session.dynamic or {}).get("kind")
    largest = max(range(len(gears)), key=lambda i: sum(math.prod(_ints(s)) for s in gears[i].values()))
    base = {n: tuple(s) for n, s in gears[largest].items()}
    varying = {
        n: [a for a in range(len(s)) if len({g[n][a] for g in gears}) > 1 or not isinstance(s[a], int)]
        for n, s in base.items()
    }
    if not given:
        return {n: s for n, s in base.items() if all(isinstance(d, int) for d in s)}
    flag = given[0]
    wanted = {"dymBatch": "dynamic_batch_size", "dymHW": "dynamic_image_size"}.get(flag)
    if wanted is not None and kind != wanted:
        raise OpenATCError(
            "E10001",
            f"--{flag} is for models built with --{wanted}; {session.path.name} has "
            f"{'--' + kind if kind else 'no gears'}",
            hint="Use --dymDims for --dynamic_dims models, --dymShape for range models.",
        )
    if flag == "dymBatch":
        assert dym_batch is not None
        if dym_batch <= 0:
            raise OpenATCError("E10001", f"--dymBatch={dym_batch} must be positive")
        return {
            n: tuple(dym_batch if a == 0 and 0 in varying[n] else d for a, d in enumerate(s)) for n, s in base.items()
        }
    if flag == "dymHW":
        assert dym_hw is not None
        hw = [v.strip() for v in dym_hw.split(",")]
        if len(hw) != 2 or not all(v.isdigit() and int(v) > 0 for v in hw):
            raise OpenATCError("E10001", f"--dymHW={dym_hw} is not 'height,width'", hint='e.g. --dymHW="224,224"')
        out = {}
        for n, s in base.items():
            dims = list(s)
            for value, axis in zip(hw, varying[n], strict=False):
                dims[axis] = int(value)
            out[n] = tuple(dims)
        return out
    named = _parse_named_shapes(flag, dym_dims or dym_shape or "", session.inputs)
    return {**{n: s for n, s in base.items() if all(isinstance(d, int) for d in s)}, **named}


#: Most shapes one ``--dymShape_range`` may expand to.
MAX_RANGE_SHAPES = 1000


def _range_values(item: str, part: str) -> list[int]:
    """One dim of ``--dymShape_range``: ``7``, ``64~256`` (every value, both ends included) or ``1-4-8`` (a list)."""
    sample = 'e.g. --dymShape_range="input_ids:1,64~256" or "x:1-4-8,3,224,224"'
    text = part.strip()
    if "~" in text:
        low, _, high = text.partition("~")
        if not (low.strip().isdigit() and high.strip().isdigit()) or int(low) > int(high) or int(low) <= 0:
            raise OpenATCError(
                "E10001",
                f"--dymShape_range entry '{item}': range '{text}' is not 'low~high' with 0 < low <= high",
                hint=sample,
            )
        return list(range(int(low), int(high) + 1))
    values = [v.strip() for v in text.split("-")]
    if not values or any(not v.isdigit() or int(v) <= 0 for v in values):
        raise OpenATCError(
            "E10001",
            f"--dymShape_range entry '{item}': '{text}' is not a positive dim, 'low~high' or 'a-b-c'",
            hint=sample,
        )
    return [int(v) for v in values]


def parse_shape_range(text: str, specs: Sequence[TensorSpec]) -> list[dict[str, tuple[int, ...]]]:
    """ais_bench's ``--dymShape_range="name:1,64~256;mask:1,64-128"``: every shape it spans.

    Per dim: a number, ``low~high`` (every value from low to high) or ``a-b-c`` (those values);
    the shapes are all combinations, across dims and then across inputs, in the order written
    (the last dim varies fastest). Inputs not named keep the model's (static) shape.
    """
    names = {s.name: s for s in specs}
    per_input: list[tuple[str, list[tuple[int, ...]]]] = []
    for item in (p.strip() for p in text.split(";") if p.strip()):
        name, sep, dims = item.rpartition(":")
        if not sep or name not in names:
            raise OpenATCError(
                "E10001",
                f"--dymShape_range entry '{item}' does not name an input of the model "
                f"({', '.join(sorted(names))}) as name:dims",
                hint='e.g. --dymShape_range="input_ids:1,64~256"',
            )
        if any(n == name for n, _ in per_input):
            raise OpenATCError("E10001", f"--dymShape_range names input '{name}' twice")
        axes = [_range_values(item, d) for d in dims.split(",")] if dims.strip() else []
        if len(axes) != len(names[name].shape):
            raise OpenATCError(
                "E10001",
                f"--dymShape_range entry '{item}' has {len(axes)} dims; input '{name}' has rank "
                f"{len(names[name].shape)} {list(names[name].shape)}",
            )
        shapes = [()]
        for values in axes:
            shapes = [(*s, v) for s in shapes for v in values]
        per_input.append((name, shapes))
    if not per_input:
        raise OpenATCError("E10001", "--dymShape_range is empty", hint='e.g. --dymShape_range="input_ids:1,64~256"')
    total = math.prod(len(shapes) for _, shapes in per_input)
    if total > MAX_RANGE_SHAPES:
        raise OpenATCError(
            "E10001",
            f"--dymShape_range={text} spans {total} shapes, more than {MAX_RANGE_SHAPES}",
            hint="Narrow the ranges, or list the sizes you need with '-' (e.g. 64-128-256).",
        )
    combos: list[dict[str, tuple[int, ...]]] = [{}]
    for name, shapes in per_input:
        combos = [{**c, name: s} for c in combos for s in shapes]
    return combos


def parse_pad_values(text: str) -> dict[str, float]:
    """``openatc run --pad_value "input_ids:0;mask:0"``: the padding value of each named input."""
    values: dict[str, float] = {}
    for item in (p.strip() for p in text.split(";") if p.strip()):
        name, sep, value = item.rpartition(":")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or not name or number is None:
            raise OpenATCError(
                "E10001", f"--pad_value entry '{item}' is not input_name:number", hint='e.g. "input_ids:0"'
            )
        values[name] = int(number) if number.is_integer() else number
    return values


def _ints(shape: Sequence[Any]) -> list[int]:
    return [d if isinstance(d, int) else 1 for d in shape]


def generate_input(
    spec: TensorSpec, kind: str, rng: np.random.Generator, shape: Sequence[int] | None = None
) -> np.ndarray:
    """Zeros, or random data: floats in [0, 1), integers in [0, 16), booleans; ``shape`` overrides the spec's."""
    shape = _concrete_shape(spec, shape)
    dtype = np.dtype(spec.dtype)
    if kind == "zero":
        return np.zeros(shape, dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 16, shape).astype(dtype)
    return rng.random(shape).astype(dtype)


def load_inputs(
    paths: Sequence[Path], specs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]] | None = None
) -> dict[str, np.ndarray]:
    """One file per input, in input order: ``.npy``, or raw ``.bin`` in the input's dtype and shape.

    ``shapes`` gives the shape of raw files of dynamic inputs (``openatc run --dymDims`` etc.).
    """
    if len(paths) != len(specs):
        raise OpenATCError(
            "E10001",
            f"--input gives {len(paths)} file(s) but the model has {len(specs)} input(s): {[s.name for s in specs]}",
            hint="Give one file per input, comma-separated, in input order.",
        )
    feeds: dict[str, np.ndarray] = {}
    for path, spec in zip(paths, specs, strict=True):
        if not path.is_file():
            raise OpenATCError("E10410", f"--input file '{path}' does not exist")
        if path.suffix.lower() == ".npy":
            try:
                feeds[spec.name] = np.load(path, allow_pickle=False)
            except ValueError as exc:
                raise OpenATCError("E10001", f"--input file '{path}' is not a valid .npy file: {exc}") from None
            continue
        shape = _concrete_shape(spec, (shapes or {}).get(spec.name))
        dtype = np.dtype(spec.dtype)
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        size = path.stat().st_size
        if size != expected:
            raise OpenATCError(
                "E10001",
                f"--input file '{path}' has {size} B; input '{spec.name}' ({spec.dtype}{list(shape)}) "
                f"needs {expected} B",
            )
        feeds[spec.name] = np.fromfile(path, dtype=dtype).reshape(shape)
    return feeds


def time_runs(
    session: Any,
    feeds: dict[str, np.ndarray],
    loop: int,
    warmup: int,
    *,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict, RunSummary]:
    """Runs ``warmup`` untimed and ``loop`` timed iterations; returns the last outputs and timings.

    ``batch_size`` (for the throughput) defaults to dim 0 of the first input; ``progress`` is called
    with 1 after every timed run (a progress bar on a terminal).
    """
    outputs: dict[str, np.ndarray] = {}
    for _ in range(max(warmup, 0)):
        outputs = session.run(feeds)
    times = []
    for _ in range(max(loop, 1)):
        start = time.perf_counter()
        outputs = session.run(feeds)
        times.append((time.perf_counter() - start) * 1e3)
        if progress is not None:
            progress(1)
    batch = 1
    first = next(iter(feeds.values()), None)
    if first is not None and first.ndim > 0:
        batch = int(first.shape[0])
    return outputs, RunSummary(tuple(times), batch_size or batch)


#: File formats of ``openatc run --outfmt``.
OUTPUT_FORMATS = ("NPY", "BIN", "TXT")


def write_outputs(outputs: Mapping[str, np.ndarray], directory: Path, fmt: str) -> list[Path]:
    """Writes each output as ``<name>.npy``, raw ``<name>.bin`` or ``<name>.txt`` (E13002 if unwritable)."""
    fmt = fmt.upper()
    if fmt not in OUTPUT_FORMATS:
        raise OpenATCError("E10001", f"--outfmt={fmt} is not one of {', '.join(OUTPUT_FORMATS)}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, (name, array) in enumerate(outputs.items()):
            base = directory / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) or f"output_{i}")
            if fmt == "NPY":
                path = base.with_name(base.name + ".npy")
                np.save(path, array)
            elif fmt == "BIN":
                path = base.with_name(base.name + ".bin")
                np.ascontiguousarray(array).tofile(path)
            else:
                path = base.with_name(base.name + ".txt")
                np.savetxt(path, np.asarray(array, dtype=np.float64).reshape(-1, array.shape[-1] if array.ndim else 1))
            paths.append(path)
    except OSError as exc:
        raise OpenATCError(
            "E13002",
            f"cannot write outputs into '{directory}': {exc.strerror or exc}",
            hint="Choose a writable --output.",
        ) from None
    return paths


def summary_json(summary: RunSummary, **extra: Any) -> dict[str, Any]:
    """The run summary document (keys documented in docs/tools.md)."""
    stats = summary.stats()
    timing = {k: stats[k] for k in ("min", "max", "mean", "median", "percentile(99%)", "count")}
    return {
        "compute_time": timing,
        "throughput": stats["throughput"],
        "batchsize": summary.batch_size,
        "compute_time_list": list(summary.times_ms),
        "pid": os.getpid(),
        **extra,
    }
