"""Calibration: the FP32 graph runs sample by sample in ONNX Runtime with the activations to
quantize exposed as outputs; each activation feeds its observer, then the batch is dropped.

Peak memory is the model, one sample's activations and the observers' constant-size state,
whatever the number of samples.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ._data import Samples

__all__ = [
    "DISABLED_OPTIMIZERS",
    "EXTERNAL_WEIGHTS_BYTES",
    "Progress",
    "calibrate",
    "float_tensors",
    "ort_session",
    "weight_bytes",
]

#: As the cpu backend: ONNX Runtime must not quantize the layers an INT8 build keeps float.
DISABLED_OPTIMIZERS = ("WeightBiasQuantization",)

logger = logging.getLogger(__name__)


class Progress:
    """``calibration i/n`` on one terminal line (a terminal at --log=info or finer), and a log line every 25%."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, max(total, 1)
        self.tty = sys.stderr.isatty() and logger.isEnabledFor(logging.INFO)
        self.start = time.perf_counter()
        self.logged = -1

    def step(self, done: int) -> None:
        quarter = done * 4 // self.total
        if quarter > self.logged:
            self.logged = quarter
            logger.info("%s: %d/%d samples (%.1f s)", self.label, done, self.total, time.perf_counter() - self.start)
        if self.tty:
            sys.stderr.write(f"\r\x1b[K{self.label} {done}/{self.total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


#: Models with more weight bytes than this reach ONNX Runtime as a file with external data
#: (written tensor by tensor) rather than as serialized bytes: no whole-model copies in memory.
EXTERNAL_WEIGHTS_BYTES = 64 << 20
#: Tensors below this many bytes stay inside the graph of that file.
_SMALL_TENSOR = 4096


def _tensor_bytes(tensor: onnx.TensorProto) -> int:
    if tensor.HasField("raw_data"):
        return len(tensor.raw_data)
    return int(np.prod(tensor.dims, dtype=np.int64)) * 4 if tensor.dims else 0


def weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the model's initializers (raw data; other encodings counted as 4 bytes an element)."""
    return sum(_tensor_bytes(t) for t in model.graph.initializer)


def _write_external(model: onnx.ModelProto, outputs: Sequence[str], folder: Path) -> Path:
    """``model`` with ``outputs`` added, saved under ``folder`` with its weights as external data.

    The weights are copied one tensor at a time (the graph file holds nodes and small tensors
    only), so the peak is one tensor's bytes beyond ``model``, whatever the model's size.
    """
    graph = model.graph
    light = onnx.GraphProto(name=graph.name, doc_string=graph.doc_string)
    light.node.extend(graph.node)
    light.input.extend(graph.input)
    light.output.extend(graph.output)
    existing = {o.name for o in graph.output}
    light.output.extend(onnx.ValueInfoProto(name=n) for n in outputs if n not in existing)
    light.value_info.extend(graph.value_info)
    light.sparse_initializer.extend(graph.sparse_initializer)
    light.quantization_annotation.extend(graph.quantization_annotation)
    data_name = "weights.bin"
    offset = 0
    with open(folder / data_name, "wb") as data:
        for tensor in graph.initializer:
            if _tensor_bytes(tensor) < _SMALL_TENSOR or tensor.data_location == onnx.TensorProto.EXTERNAL:
                light.initializer.append(tensor)
                continue
            raw = tensor.raw_data if tensor.HasField("raw_data") else onnx.numpy_helper.to_array(tensor).tobytes()
            pad = -offset % 4096  # page-aligned: ONNX Runtime may map the file instead of reading it
            data.write(b"\0" * pad)
            offset += pad
            data.write(raw)
            entry = onnx.TensorProto(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
            entry.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", data_name), ("offset", str(offset)), ("length", str(len(raw)))):
                entry.external_data.add(key=key, value=value)
            offset += len(raw)
            light.initializer.append(entry)
            del raw
    shell = onnx.ModelProto()
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string"):
        setattr(shell, field, getattr(model, field))
    shell.opset_import.extend(model.opset_import)
    shell.functions.extend(model.functions)
    shell.graph.CopyFrom(light)
    path = folder / "model.onnx"
    path.write_bytes(shell.SerializeToString())
    return path


def ort_session(model: onnx.ModelProto, outputs: Iterable[str] = (), *, optimize: bool = True) -> Any:
    """An ONNX Runtime CPU session of ``model`` with ``outputs`` added as graph outputs.

    Large models (:data:`EXTERNAL_WEIGHTS_BYTES`) go through a temporary file with external
    data, and the session runs without ONNX Runtime's memory arena: calibration's peak memory is
    then the caller's model, the session's one copy of the weights and one sample's activations.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    )
    kwargs: dict[str, Any] = {
        "providers": ["CPUExecutionProvider"],
        "disabled_optimizers": list(DISABLED_OPTIMIZERS),
    }
    outputs = list(outputs)
    if weight_bytes(model) >= EXTERNAL_WEIGHTS_BYTES:
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
        with tempfile.TemporaryDirectory(prefix="openatc-quant-") as folder:
            path = _write_external(model, outputs, Path(folder))
            return ort.InferenceSession(str(path), options, **kwargs)
    count = len(model.graph.output)
    existing = {o.name for o in model.graph.output}
    for name in outputs:  # added in place and removed after serializing: no copy of the weights
        if name not in existing:
            existing.add(name)
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    try:
        data = model.SerializeToString()
    finally:
        del model.graph.output[count:]
    return ort.InferenceSession(data, options, **kwargs)


def float_tensors(model: onnx.ModelProto, op_types: Sequence[str], excluded: set[str]) -> list[str]:
    """Float activations read or written by the nodes that may be quantized (graph order, no weights)."""
    weights = {i.name for i in model.graph.initializer}
    types = {v.name: v.type.tensor_type.elem_type for v in (*model.graph.value_info, *model.graph.input)}
    types.update({v.name: v.type.tensor_type.elem_type for v in model.graph.output})
    found: dict[str, None] = {}
    for node in model.graph.node:
        if node.op_type not in op_types or node.name in excluded:
            continue
        for name in (*node.input, *node.output):
            if name and name not in weights and types.get(name, onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT:
                found[name] = None
    return list(found)


def calibrate(
    model: onnx.ModelProto,
    samples: Samples,
    tensors: Sequence[str],
    factory: Callable[[], Any],
    *,
    symmetric: bool,
    full_range: Callable[[], Any] | None = None,
) -> dict[str, tuple[float, float]]:
    """``{tensor: (low, high)}`` from one observer per tensor, fed one sample at a time.

    The model's outputs get ``full_range`` observers (minmax) when given: clipping an output is an
    error the user sees directly, and outputs are often too small for a histogram to mean much.
    """
    session = ort_session(model, tensors, optimize=False)
    available = {o.name for o in session.get_outputs()}
    names = [t for t in tensors if t in available]
    outputs = {o.name for o in model.graph.output}
    observers = {t: (full_range if full_range is not None and t in outputs else factory)() for t in names}
    seen = {t: [np.inf, -np.inf] for t in names}  # running min/max: a range never exceeds the data
    progress = Progress("calibration", len(samples))
    try:
        for index in range(len(samples)):
            results = session.run(names, samples[index])
            for name, array in zip(names, results, strict=True):
                if isinstance(array, np.ndarray) and array.dtype.kind == "f":
                    observers[name].observe(array)
                    finite = array[np.isfinite(array)] if array.size else array
                    if finite.size:
                        bounds = seen[name]
                        bounds[0], bounds[1] = min(bounds[0], float(finite.min())), max(bounds[1], float(finite.max()))
            del results
            progress.step(index + 1)
    finally:
        progress.close()
    ranges = {}
    for name, observer in observers.items():
        low, high = (float(v) for v in observer.range())
        lowest, highest = seen[name]
        if not symmetric and lowest <= highest:
            # Histogram observers return (-t, t) for signed data; with a zero point the side the data
            # never reaches is wasted levels (HardSwish: [-0.375, t]), so clip to what was seen.
            low, high = max(low, min(lowest, 0.0)), min(high, max(highest, 0.0))
        if symmetric:
            top = max(abs(low), abs(high))
            low, high = -top, top
        ranges[name] = (low, high)
    return ranges
