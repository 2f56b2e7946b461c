"""Session: load an .om and run it.

>>> sess = openatc.Session("out/text_encoder_bs1_seq64.om")
>>> outputs = sess.run({"input_ids": ids})        # {"last_hidden_state": array}

A model with gears (``--dynamic_batch_size/_image_size/_dims``) holds one graph per gear; the
Session picks the gear whose input shapes equal the feeds' shapes. With ``pad_to_gear=True``,
inputs that match no gear are padded (at the end of each axis, with the input's padding value,
0 by default) to the smallest gear that fits, and the outputs are trimmed back: an output axis
is trimmed when its size follows one input axis across the gears (equal to it, or an exact
linear function of it; rounded up). A range-compiled model (``a~b`` or -1 without gears) runs
any shape inside its recorded ranges.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openatc.aipp.dynamic import AippParams, aipp_feeds
from openatc.errors import OpenATCError
from openatc.manager import OpenATCPluginManager, default_plugin_manager
from openatc.om import OmFile
from openatc.types import Executor, LoadContext, TensorSpec

__all__ = ["Session"]

logger = logging.getLogger(__name__)


class Session:
    """A loaded .om, ready to run.

    Args:
        path: The .om file.
        plugin_manager: Where to find the backend (the process-wide one by default).
        verify: Check the file's SHA-256 before use (reads the whole file once).
        share_weights: Keep weights zero-copy in every gear. ``None`` (default) shares them when the
            model has several gears and lets a single-gear model trade memory for speed (ONNX
            Runtime's weight prepacking).
        backend_options: Passed to the backend's loader (e.g. ``{"intra_op_num_threads": 1}``; the
            ``cpu`` backend's ``"prepack"``: ``"auto"``, ``"shared"`` or ``"off"``, see
            docs/om-format.md).
        pad_to_gear: Pad inputs whose shapes match no gear to the smallest gear that fits, and
            trim the outputs back (see the module docstring). Off by default: such inputs are an
            error that lists the gears.
        pad_values: Padding value per input name (default 0 for every input: 0.0, 0, False).
        check_only: Only prove that every gear loads (the build's check of the file it wrote): the
            backend may leave out what only speeds up runs (``LoadContext.check_only``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        plugin_manager: OpenATCPluginManager | None = None,
        verify: bool = True,
        share_weights: bool | None = None,
        backend_options: Mapping[str, Any] | None = None,
        pad_to_gear: bool = False,
        pad_values: Mapping[str, float | int | bool] | None = None,
        check_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.pad_to_gear = pad_to_gear
        self.pad_values = dict(pad_values or {})
        self._om = OmFile(self.path, verify=verify)
        try:
            self.manifest = self._om.manifest
            pm = plugin_manager or default_plugin_manager()
            self.backend = pm.backend_named(self.manifest["backend"]["name"])
            self.inputs = [TensorSpec.from_json(t) for t in self.manifest["inputs"]]
            self.outputs = [TensorSpec.from_json(t) for t in self.manifest["outputs"]]
            gears = self.manifest["gears"]
            share = len(gears) > 1 if share_weights is None else share_weights
            weights = self._om.weights()  # one set of views, shared by every gear
            options = backend_options or {}
            self._executors = [self._load_gear(g, weights, share, options, check_only) for g in gears]
            self._gears = gears
            self.dynamic: dict[str, Any] | None = self.manifest.get("dynamic")
            self._trim = _trim_rules(gears) if len(gears) > 1 else {}
            self._output_names = [o.name for o in self.outputs]
            self._fast = self._fast_path()
        except BaseException:
            self._om.close()
            raise

    def _fast_path(self) -> tuple[tuple[str, ...], tuple[np.dtype, ...], dict[tuple[tuple[int, ...], ...], int]] | None:
        """(input names, dtypes, {input shapes: gear index}) for feeds that :meth:`run` may pass
        straight to the backend after comparing names, dtypes and shapes; None when the model
        needs the full checks on every call (dynamic AIPP, non-tensor inputs, ranges, -1 dims)."""
        if any(s.aipp or not s.is_tensor for s in self.inputs) or (self.dynamic or {}).get("ranges"):
            return None
        names = tuple(s.name for s in self.inputs)
        gears: dict[tuple[tuple[int, ...], ...], int] = {}
        for index, gear in enumerate(self._gears):
            shapes = {t["name"]: t["shape"] for t in gear["inputs"]}
            if set(shapes) != set(names) or not all(isinstance(d, int) for n in names for d in shapes[n]):
                return None
            gears.setdefault(tuple(tuple(shapes[n]) for n in names), index)
        return names, tuple(np.dtype(s.dtype) for s in self.inputs), gears

    def _load_gear(
        self,
        gear: Mapping[str, Any],
        weights: Mapping[str, np.ndarray],
        share: bool,
        options: Mapping[str, Any],
        check_only: bool = False,
    ) -> Executor:
        entries = {e["id"]: e for e in self.manifest["weights"]["entries"]}
        base = self._om.sections["weights"].offset if entries else 0
        names = gear.get("weights", {})
        payload_name = gear.get("payload_section")
        ctx = LoadContext(
            graph=gear.get("graph_bytes") or bytes(self._om.section(gear["graph_section"])),
            payload=bytes(self._om.section(payload_name)) if payload_name else None,
            weights={name: weights[wid] for name, wid in names.items()},
            gear=gear["name"],
            om_path=self.path,
            weight_offsets={name: base + entries[wid]["offset"] for name, wid in names.items()},
            share_weights=share,
            options=options,
            check_only=check_only,
        )
        try:
            return self.backend.load(ctx)
        except OpenATCError:
            raise
        except Exception as exc:
            raise OpenATCError("E40003", f"backend '{self.backend.name}' cannot load {gear['name']}: {exc}") from exc

    # -- running -------------------------------------------------------------------------------
    @property
    def gears(self) -> list[dict[str, tuple[int | str, ...]]]:
        """Input shapes of each gear, in gear order: ``[{"input_ids": (1, 64)}, ...]``."""
        return [{t["name"]: tuple(t["shape"]) for t in g["inputs"]} for g in self._gears]

    def gear_for(self, feeds: Mapping[str, np.ndarray]) -> int:
        """The index of the gear that runs ``feeds`` (validates them as :meth:`run` does)."""
        return self._check_feeds(feeds)

    def run(
        self,
        feeds: Mapping[str, np.ndarray],
        output_names: Sequence[str] | None = None,
        *,
        aipp: Mapping[str, AippParams] | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs the model; returns outputs by name, in the model's output order.

        ``aipp`` gives the parameters of each dynamic-AIPP input (``--insert_op_conf`` with
        ``aipp_mode: dynamic``) by input name; they are validated and packed for the graph.
        """
        if self._fast is not None and output_names is None and aipp is None and len(feeds) == len(self._fast[0]):
            index = self._fast_gear(feeds)
            if index is not None:  # names, dtypes and shapes are exactly a gear's: no other check applies
                return dict(zip(self._output_names, self._run_gear(index, feeds, self._output_names), strict=True))
        feeds = aipp_feeds(self.inputs, feeds, aipp)
        index = self._check_feeds(feeds)
        names = list(output_names) if output_names is not None else [o.name for o in self.outputs]
        unknown = [n for n in names if n not in {o.name for o in self.outputs}]
        if unknown:
            raise OpenATCError("E40010", f"unknown output name(s) {unknown}; outputs: {[o.name for o in self.outputs]}")
        gear_inputs = {t["name"]: t["shape"] for t in self._gears[index]["inputs"]}
        padded = {
            n: v
            for n, v in feeds.items()
            if isinstance(v, np.ndarray) and n in gear_inputs and not _fits(v.shape, gear_inputs[n])
        }
        if padded:
            feeds = {n: (self._pad(n, v, gear_inputs[n]) if n in padded else v) for n, v in feeds.items()}
        results = self._run_gear(index, feeds, names)
        if padded:
            actual = {n: v.shape for n, v in padded.items()}
            results = [self._trim_output(n, r, actual) for n, r in zip(names, results, strict=True)]
        return dict(zip(names, results, strict=True))

    def _fast_gear(self, feeds: Mapping[str, Any]) -> int | None:
        """The gear whose input names, dtypes and shapes ``feeds`` match exactly, or None."""
        assert self._fast is not None
        names, dtypes, gears = self._fast
        shapes = []
        for name, dtype in zip(names, dtypes, strict=True):
            value = feeds.get(name)
            if type(value) is not np.ndarray or value.dtype != dtype:
                return None
            shapes.append(value.shape)
        return gears.get(tuple(shapes))

    def _run_gear(self, index: int, feeds: Mapping[str, Any], names: list[str]) -> list[Any]:
        try:
            return self._executors[index].run(feeds, names)
        except OpenATCError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OpenATCError("E40011", f"running {self.path.name} failed: {first}") from exc

    def _pad(self, name: str, value: np.ndarray, shape: Sequence[int | str]) -> np.ndarray:
        widths = [(0, int(t) - s if isinstance(t, int) else 0) for s, t in zip(value.shape, shape, strict=True)]
        return np.pad(value, widths, mode="constant", constant_values=self.pad_values.get(name, 0))

    def _trim_output(self, name: str, value: np.ndarray, actual: Mapping[str, tuple[int, ...]]) -> np.ndarray:
        rules = self._trim.get(name, {})
        index: list[slice] = []
        for axis in range(value.ndim):
            rule = rules.get(axis)
            if rule is None or rule[0] not in actual:
                index.append(slice(None))
                continue
            source, source_axis, scale, offset = rule
            size = math.ceil(scale * actual[source][source_axis] + offset)
            index.append(slice(0, max(0, min(size, value.shape[axis]))))
        return value[tuple(index)]

    def _check_feeds(self, feeds: Mapping[str, Any]) -> int:
        """Validates names, dtypes and shapes; returns the index of the gear to run."""
        expected = {s.name: s for s in self.inputs}
        unknown = sorted(set(feeds) - set(expected))
        missing = [n for n in expected if n not in feeds]
        if unknown or missing:
            parts = []
            if unknown:
                parts.append(f"unknown input(s) {unknown}")
            if missing:
                parts.append(f"missing input(s) {missing}")
            raise OpenATCError("E40010", "; ".join(parts) + f"; the model's inputs: {self._describe_inputs()}")
        tensors = [s for s in self.inputs if s.is_tensor]  # sequences/optionals go to the backend as given
        for spec in tensors:
            value = feeds[spec.name]
            if not isinstance(value, np.ndarray):
                raise OpenATCError("E40010", f"input '{spec.name}' must be a numpy array, got {type(value).__name__}")
            if value.dtype != np.dtype(spec.dtype):
                raise OpenATCError(
                    "E40010",
                    f"input '{spec.name}' expects dtype {spec.dtype}, got {value.dtype}",
                    hint=f"Convert it first, e.g. array.astype(np.{spec.dtype}).",
                )
        for spec in tensors:
            value = feeds[spec.name]
            if value.ndim != len(spec.shape):
                raise OpenATCError(
                    "E40010",
                    f"input '{spec.name}' has rank {value.ndim} (shape {tuple(value.shape)}), the model expects "
                    f"rank {len(spec.shape)} {_shape_text(spec.shape)}",
                )
        names = {s.name for s in tensors}
        shapes = {n: tuple(feeds[n].shape) for n in names}
        for index, gear in enumerate(self._gears):
            if all(_fits(shapes[t["name"]], t["shape"]) for t in gear["inputs"] if t["name"] in names):
                self._check_ranges(shapes)
                return index
        if len(self._gears) == 1:
            wrong = next((s.name, shapes[s.name], s.shape) for s in tensors if not _fits(shapes[s.name], s.shape))
            raise OpenATCError(
                "E40010",
                f"input '{wrong[0]}' has shape {wrong[1]}, the model expects {_shape_text(wrong[2])}",
            )
        given = ", ".join(f"{n}{list(shapes[n])}" for n in sorted(names))
        if self.pad_to_gear:
            index = self._smallest_fitting_gear(shapes)
            if index is not None:
                logger.debug("inputs %s padded to %s", given, self._gears[index]["name"])
                return index
            raise OpenATCError(
                "E40010",
                f"inputs {given} are larger than every gear of {self.path.name}, so they cannot be padded; "
                f"gears: {self._describe_gears()}",
                hint="Feed smaller inputs (split them), or rebuild the model with a larger gear.",
            )
        raise OpenATCError(
            "E40010",
            f"inputs {given} match no gear of {self.path.name}; gears: {self._describe_gears()}",
            hint="Feed one of the gears' shapes, or pad to the smallest gear that fits: "
            "Session(..., pad_to_gear=True) / openatc run --pad.",
        )

    def _smallest_fitting_gear(self, shapes: Mapping[str, tuple[int, ...]]) -> int | None:
        best: tuple[int, int] | None = None
        for index, gear in enumerate(self._gears):
            size = 0
            for t in gear["inputs"]:
                if t["name"] not in shapes:
                    continue
                have = shapes[t["name"]]
                if len(have) != len(t["shape"]) or any(
                    isinstance(d, int) and s > d for s, d in zip(have, t["shape"], strict=True)
                ):
                    break
                size += math.prod(d if isinstance(d, int) else s for s, d in zip(have, t["shape"], strict=True))
            else:
                if best is None or size < best[0]:
                    best = (size, index)
        return None if best is None else best[1]

    def _check_ranges(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        ranges = (self.dynamic or {}).get("ranges") or {}
        for name, axes in ranges.items():
            if name not in shapes:
                continue
            for axis, (low, high) in enumerate(axes):
                size = shapes[name][axis]
                if size < low or (high >= 0 and size > high):
                    bound = f"{low}~{high}" if high >= 0 else f">= {low}"
                    raise OpenATCError(
                        "E40010",
                        f"dim {axis} of input '{name}' is {size}, outside the range {bound} the model was built "
                        f"for ({self.dynamic.get('input_shape', '') if self.dynamic else ''})",
                        hint="Feed a shape inside the range, or rebuild with a wider range in --input_shape.",
                    )

    def _describe_gears(self) -> str:
        return "; ".join(
            f"{g['name']} " + ", ".join(f"{t['name']}{_shape_text(t['shape'])}" for t in g["inputs"])
            for g in self._gears
        )

    def _describe_inputs(self) -> str:
        return ", ".join(f"{s.name}: {s.dtype}{_shape_text(s.shape)}" for s in self.inputs)

    def run_with_intermediates(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs the gear that fits ``feeds`` with every intermediate tensor exposed (for comparison).

        Loads a second executor of that gear whose graph lists every node output as a graph
        output, so the backend cannot fuse across them; the weights are the same mapped views.
        In an INT8 (QDQ) graph, a tensor quantized by a QuantizeLinear -> DequantizeLinear pair is
        reported under its own name with the DequantizeLinear output: the value its consumers see.
        """
        from openatc.graph import expose_intermediates
        from openatc.quantize import dequantized_names

        index = self._check_feeds(feeds)
        gear = dict(self._gears[index])
        graph = expose_intermediates(bytes(self._om.section(gear["graph_section"])))
        gear["graph_bytes"] = graph.SerializeToString()
        executor = self._load_gear(gear, self._om.weights(), True, {})
        names = [o.name for o in graph.graph.output]
        results = dict(zip(names, executor.run(feeds, names), strict=True))
        for original, dequantized in dequantized_names(graph).items():  # INT8: what the consumers see
            if dequantized in results:
                results[original] = results[dequantized]
        return results

    # -- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        """Releases the executors and the file mapping."""
        self._executors = []
        self._om.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Session({str(self.path)!r}, backend={self.backend.name!r}, inputs=[{self._describe_inputs()}])"


def _trim_rules(gears: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, tuple[str, int, float, float]]]:
    """Per output and axis: ``(input, input axis, scale, offset)`` with output size = scale * input size +
    offset in every gear. Output axes whose size varies with no such input axis are not trimmed.
    """
    candidates: list[tuple[str, int, list[int], int]] = []  # input, axis, sizes per gear, rank
    for pos, t in enumerate(gears[0]["inputs"]):
        for axis in range(len(t["shape"])):
            sizes = [g["inputs"][pos]["shape"][axis] for g in gears]
            if all(isinstance(d, int) for d in sizes) and len(set(sizes)) > 1:
                candidates.append((t["name"], axis, sizes, len(t["shape"])))
    rules: dict[str, dict[int, tuple[str, int, float, float]]] = {}
    for pos, out in enumerate(gears[0]["outputs"]):
        for axis in range(len(out["shape"])):
            sizes = [
                g["outputs"][pos]["shape"][axis] if axis < len(g["outputs"][pos]["shape"]) else None for g in gears
            ]
            if not all(isinstance(d, int) for d in sizes) or len(set(sizes)) == 1:
                continue
            # ties (H and W gears alike): prefer the input axis at the same position, then from the end
            ranked = sorted(
                candidates,
                key=lambda c: (c[1] != axis, c[1] - c[3] != axis - len(out["shape"])),
            )
            rule = _linear_rule(sizes, [c[:3] for c in ranked])
            if rule is None:
                logger.info(
                    "output '%s' axis %d varies across gears with no input axis; not trimmed", out["name"], axis
                )
                continue
            rules.setdefault(out["name"], {})[axis] = rule
    return rules


def _linear_rule(
    sizes: list[int], candidates: list[tuple[str, int, list[int]]]
) -> tuple[str, int, float, float] | None:
    for name, axis, source in candidates:  # identity first: the common case (batch, sequence)
        if source == sizes:
            return name, axis, 1.0, 0.0
    for name, axis, source in candidates:
        pairs = sorted(set(zip(source, sizes, strict=True)))
        if len({s for s, _ in pairs}) != len(pairs):
            continue  # one input size, two output sizes: not a function of this axis
        (x0, y0), (x1, y1) = pairs[0], pairs[-1]
        scale = (y1 - y0) / (x1 - x0)
        offset = y0 - scale * x0
        if scale > 0 and all(abs(scale * x + offset - y) < 1e-9 for x, y in pairs):
            return name, axis, scale, offset
    return None


def _fits(shape: Sequence[int], spec: Sequence[int | str]) -> bool:
    return len(shape) == len(spec) and all(not isinstance(d, int) or d == s for s, d in zip(shape, spec, strict=True))


def _shape_text(shape: Sequence[int | str]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"
