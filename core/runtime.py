"""Session: load an .om and run it.

>>> sess = openatc.Session("out/text_encoder_bs1_seq64.om")
>>> outputs = sess.run({"input_ids": ids})        # {"last_hidden_state": array}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
        backend_options: Passed to the backend's loader (e.g. ``{"intra_op_num_threads": 1}``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        plugin_manager: OpenATCPluginManager | None = None,
        verify: bool = True,
        share_weights: bool | None = None,
        backend_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
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
            self._executors = [self._load_gear(g, weights, share, backend_options or {}) for g in gears]
            self._gears = gears
        except BaseException:
            self._om.close()
            raise

    def _load_gear(
        self, gear: Mapping[str, Any], weights: Mapping[str, np.ndarray], share: bool, options: Mapping[str, Any]
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
        )
        try:
            return self.backend.load(ctx)
        except OpenATCError:
            raise
        except Exception as exc:
            raise OpenATCError("E40003", f"backend '{self.backend.name}' cannot load {gear['name']}: {exc}") from exc

    # -- running -------------------------------------------------------------------------------
    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Runs the model; returns outputs by name, in the model's output order."""
        index = self._check_feeds(feeds)
        names = list(output_names) if output_names is not None else [o.name for o in self.outputs]
        unknown = [n for n in names if n not in {o.name for o in self.outputs}]
        if unknown:
            raise OpenATCError("E40010", f"unknown output name(s) {unknown}; outputs: {[o.name for o in self.outputs]}")
        try:
            results = self._executors[index].run(feeds, names)
        except OpenATCError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OpenATCError("E40011", f"running {self.path.name} failed: {first}") from exc
        return dict(zip(names, results, strict=True))

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
        names = {s.name for s in tensors}
        for index, gear in enumerate(self._gears):
            if all(_fits(feeds[t["name"]].shape, t["shape"]) for t in gear["inputs"] if t["name"] in names):
                return index
        wrong = next((s.name, feeds[s.name].shape, s.shape) for s in tensors if not _fits(feeds[s.name].shape, s.shape))
        raise OpenATCError(
            "E40010",
            f"input '{wrong[0]}' has shape {tuple(wrong[1])}, the model expects {_shape_text(wrong[2])}",
        )

    def _describe_inputs(self) -> str:
        return ", ".join(f"{s.name}: {s.dtype}{_shape_text(s.shape)}" for s in self.inputs)

    def run_with_intermediates(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs the gear that fits ``feeds`` with every intermediate tensor exposed (for comparison).

        Loads a second executor of that gear whose graph lists every node output as a graph
        output, so the backend cannot fuse across them; the weights are the same mapped views.
        """
        from openatc.graph import expose_intermediates

        index = self._check_feeds(feeds)
        gear = dict(self._gears[index])
        graph = expose_intermediates(bytes(self._om.section(gear["graph_section"])))
        gear["graph_bytes"] = graph.SerializeToString()
        executor = self._load_gear(gear, self._om.weights(), True, {})
        names = [o.name for o in graph.graph.output]
        return dict(zip(names, executor.run(feeds, names), strict=True))

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


def _fits(shape: Sequence[int], spec: Sequence[int | str]) -> bool:
    return len(shape) == len(spec) and all(not isinstance(d, int) or d == s for s, d in zip(shape, spec, strict=True))


def _shape_text(shape: Sequence[int | str]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"
