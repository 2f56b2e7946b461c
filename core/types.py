"""Record types that plugins contribute through the hooks in :mod:`openatc.hookspecs`.

Every record is a frozen dataclass with a unique ``name`` within its kind; the plugin manager
rejects two records of the same kind and name, naming both plugins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import onnx_ir as ir
    import onnx_ir.passes

    from openatc.options import BuildOptions

__all__ = [
    "STAGES",
    "AippFormat",
    "Backend",
    "BackendCapabilities",
    "CompileContext",
    "Executor",
    "Frontend",
    "LoadContext",
    "PassContext",
    "PassSpec",
    "Quantizer",
    "Stage",
    "TensorSpec",
]

Stage = Literal["canonicalize", "fold", "fuse", "layout", "memory"]
#: Pass stages in the order the pass manager runs them.
STAGES: tuple[Stage, ...] = ("canonicalize", "fold", "fuse", "layout", "memory")


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the .om and the Session describe it.

    ``shape`` holds ints for static dims and strings for named dynamic dims.
    """

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    format: str = "ND"
    #: For an input fed through AIPP: mode, resolved configuration and the model input it feeds.
    aipp: Mapping[str, Any] | None = field(default=None, compare=False)

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def is_tensor(self) -> bool:
        """False for sequence, optional and map values (and tensors of unknown type)."""
        try:
            np.dtype(self.dtype)
        except TypeError:
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        data = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "format": self.format}
        if self.aipp is not None:
            data["aipp"] = dict(self.aipp)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(data["name"], data["dtype"], tuple(data["shape"]), data.get("format", "ND"), data.get("aipp"))


@dataclass(frozen=True)
class Frontend:
    """A model importer (hook family 1).

    Attributes:
        name: Short name, e.g. ``"onnx"``.
        framework_ids: The ``--framework`` values it serves (ATC: 0 Caffe, 3 TensorFlow, 5 ONNX).
        suffixes: File suffixes of its model files, e.g. ``(".onnx",)``.
        load: ``load(model, weight, options) -> onnx_ir.Model``; raises :class:`OpenATCError`
            (``E2xxxx``) for files it cannot read and lists every unsupported operator at once.
        description: One line for ``openatc plugins``.
        to_json: Optional ``to_json(model, weight) -> dict``: the original model in its own schema,
            without tensor data (``--mode=1 --framework=N --om=model``).
    """

    name: str
    framework_ids: tuple[int, ...]
    suffixes: tuple[str, ...]
    load: Callable[[Path, Path | None, BuildOptions], ir.Model]
    description: str = ""
    to_json: Callable[[Path, Path | None], dict[str, Any]] | None = None


@dataclass(frozen=True)
class PassContext:
    """What a pass factory may consult: the build options and the target's capabilities."""

    options: BuildOptions
    capabilities: BackendCapabilities
    #: The build's plugin manager (AIPP looks up input formats in it); None in hand-made contexts.
    plugin_manager: Any = None


@dataclass(frozen=True)
class PassSpec:
    """A graph pass (hook family 2).

    Attributes:
        name: Name used in ``--fusion_switch_file`` and the pass report.
        stage: One of :data:`STAGES`.
        factory: Returns a fresh ``onnx_ir.passes`` pass for one build.
        default_on: Whether the pass runs when no switch file mentions it.
        switchable: Whether ``--fusion_switch_file`` (including ``ALL:off``) may turn it off.
        order: Position within the stage (lower runs first); ties break by name.
        description: One line for listings.
    """

    name: str
    stage: Stage
    factory: Callable[[PassContext], onnx_ir.passes.PassBase]
    default_on: bool = True
    switchable: bool = True
    order: int = 100
    description: str = ""


@dataclass(frozen=True)
class Quantizer:
    """A calibration algorithm (hook family 3): turns streamed statistics into a range.

    ``factory()`` returns an object with ``observe(array)`` (called once per calibration batch
    for one tensor) and ``range() -> (low, high)``.
    """

    name: str
    factory: Callable[[], Any]
    description: str = ""


def _rows_cols(h: int, w: int) -> tuple[int, int, int]:
    return (h, w, 3)


@dataclass(frozen=True)
class AippFormat:
    """An AIPP ``input_format`` (hook family 4); the host does swaps, crop, CSC, normalization, padding.

    Attributes:
        name: ATC's ``input_format`` name, e.g. ``"YUV420SP_U8"``.
        build: ``build(b, image) -> ir.Value``: adds through the builder ``b`` (``b.op(op_type,
            *inputs, **attrs)``, ``b.const(array)``, ``b.batch``, ``b.height``, ``b.width``; see
            :class:`openatc.aipp.AippBuilder`) the ONNX ops that turn ``image`` (uint8, shape
            ``(N, *raw_shape(h, w))``) into uint8 pixels ``[N, H, W, channels]`` in the order the
            bytes hold them (before ``rbuv_swap``/``ax_swap``).
        channels: Channels per pixel after ``build``: 1 (gray), 3, or 4 (three colours and A/X).
        description: One line for listings.
        code: The enum number in ATC's ``insert_op.proto`` (recorded in the .om).
        color: ``"yuv"`` or ``"rgb"``: CSC subtracts ``input_bias`` first (yuv) or adds
            ``output_bias`` after (rgb); ``rbuv_swap`` exchanges channels 1,2 (yuv) or 0,2 (rgb).
        raw_shape: ``(h, w) -> (rows, cols, c)``: the NHWC dims of one raw image of h x w pixels.
        align_w, align_h: ``src_image_size`` and ``load_start_pos`` must be multiples of these.
        plane_rows: The raw image as stacked planes of full width: each plane's rows are the image
            height divided by this (YUV420SP ``(1, 2)``, packed formats ``(1,)``). The host then
            crops the raw bytes before decoding; ``()`` (unknown layout) crops after decoding.
        semi_planar: ``(rows, cols)`` of the pixel block one chroma sample covers, for the layout
            "Y plane, then interleaved U,V rows" (YUV420SP ``(2, 2)``, YUV422SP ``(1, 2)``): the host
            then decodes, upsamples and converts colours in one ConvTranspose instead of calling
            ``build``; ``None`` for other layouts.
    """

    name: str
    build: Callable[..., Any]
    channels: int = 3
    description: str = ""
    code: int = 0
    color: Literal["yuv", "rgb"] = "rgb"
    raw_shape: Callable[[int, int], tuple[int, int, int]] = _rows_cols
    align_w: int = 1
    align_h: int = 1
    plane_rows: tuple[int, ...] = ()
    semi_planar: tuple[int, int] | None = None


@dataclass(frozen=True)
class BackendCapabilities:
    """What a backend runs.

    Attributes:
        op_types: ``(domain, op_type)`` pairs it executes; ``None`` means every standard ONNX op.
        dtypes: Tensor element types it executes, as numpy dtype names.
        fused_ops: Fused (non-standard) ops it offers, e.g. ``("com.microsoft", "FusedMatMul")``.
        native_precision: The precision it computes in by default (``"fp32"``, ``"fp16"``...).
        dynamic_shapes: Whether it runs graphs with symbolic dimensions.
        fp16_ops: ``(domain, op_type)`` pairs it has FP16 kernels for; other layers the precision
            step puts in FP16 keep FP16 storage and compute in FP32 between Casts. ``None``: all.
        default_precision_mode: The ``--precision_mode`` used when none is given (docs/precision.md).
        slow_ops: ``(domain, op_type)`` pairs it runs but slowly: passes that know an equal form
            in other ops write that instead (``cpu``: ``("", "PRelu")``, lowered exactly to
            standard ops, and ``("com.microsoft", "Attention")``: attention_fusion writes
            ``MultiHeadAttention``).
    """

    op_types: frozenset[tuple[str, str]] | None = None
    dtypes: frozenset[str] = frozenset()
    fused_ops: tuple[tuple[str, str], ...] = ()
    native_precision: str = "fp32"
    dynamic_shapes: bool = False
    fp16_ops: frozenset[tuple[str, str]] | None = None
    default_precision_mode: str = "must_keep_origin_dtype"
    slow_ops: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class CompileContext:
    """What a backend's ``compile`` gets besides the graph."""

    options: BuildOptions
    gear: str


@dataclass(frozen=True)
class LoadContext:
    """What a backend's ``load`` gets besides the graph and the weights.

    ``graph`` is a serialized ONNX ModelProto whose large initializers are stubs (see
    docs/om-format.md); ``weights`` maps those initializers' names to read-only arrays that view
    the memory-mapped .om; ``payload`` is what ``compile`` returned (``None`` when it returned
    nothing). Arrays must not be copied: several gears share them. ``om_path`` and
    ``weight_offsets`` (absolute byte offset of each stubbed initializer in the file) serve engines
    that read weights from the file themselves. ``share_weights`` is False when a single gear may
    trade memory for speed (e.g. ONNX Runtime's weight prepacking). ``check_only`` is True when the
    caller only proves that the gear loads (the build's load of the .om it wrote) and closes the
    executor without running it: a backend may then skip what only makes runs faster, as long as
    it still builds everything a run needs from the graph (the ``cpu`` backend: kernels and weights
    for every node, without ONNX Runtime's graph optimizations or a prepacked-weights container).
    """

    graph: bytes
    payload: bytes | None
    weights: Mapping[str, np.ndarray]
    gear: str
    om_path: Path | None = None
    weight_offsets: Mapping[str, int] = field(default_factory=dict)
    share_weights: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)
    check_only: bool = False


@runtime_checkable
class Executor(Protocol):
    """A loaded gear, ready to run."""

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str]) -> list[np.ndarray]:
        """Runs the graph; ``feeds`` are validated by the Session before the call."""
        ...


@dataclass(frozen=True)
class Backend:
    """A target (hook family 5), chosen by ``--soc_version``.

    Attributes:
        name: Backend name recorded in the .om (e.g. ``"cpu"``).
        soc_versions: ``--soc_version`` values it serves (case-insensitive match).
        capabilities: What it runs (see :class:`BackendCapabilities`).
        compile: ``compile(model, ctx) -> bytes | None``: the backend payload stored per gear
            next to the optimized graph; ``None`` when it runs the graph as is.
        load: ``load(ctx: LoadContext) -> Executor``.
        passes: Backend-specific passes, merged into the pipeline by stage.
        versions: Library versions recorded in the manifest (e.g. onnxruntime's).
        description: One line for listings.
        supports: Optional ``supports(node, opset_version) -> reason | None`` for the pre-check
            (``--mode=3``): ``None`` when the backend runs the node, else why not. Without it every
            node counts as supported.
    """

    name: str
    soc_versions: tuple[str, ...]
    capabilities: BackendCapabilities
    compile: Callable[[ir.Model, CompileContext], bytes | None]
    load: Callable[[LoadContext], Executor]
    passes: tuple[PassSpec, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    supports: Callable[[ir.Node, int], str | None] | None = None
