"""ONNX Runtime sessions through its C API, for what the Python API does not offer.

The Python package of ONNX Runtime ships ``libonnxruntime.so`` next to its extension module.
Its C API can create sessions that share a *prepacked weights container*
(``CreateSessionFromArrayWithPrepackedWeightsContainer``): kernels such as MatMul and Gemm
repack constant weights into the layout their GEMM routines want ("prepacking"); with a shared
container, sessions whose weights are shared initializers (``AddInitializer``) keep one packed
copy per distinct weight instead of one per session. openatc's gears are such sessions: all
gears of an .om get fast, prepacked MatMuls for the memory of one.

The function table is the C API's ``OrtApi`` struct; its layout is append-only (a function keeps
its index forever), and every function used here exists since API version 8.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TENSOR_TYPES", "CApiError", "CApiSession", "PrepackedWeights", "available", "release_free_memory"]

API_VERSION = 8
#: Index of each function used in the ``OrtApi`` struct (stable: the struct only grows).
_INDEX = {
    "GetErrorMessage": 2,
    "CreateEnv": 3,
    "Run": 9,
    "CreateSessionOptions": 10,
    "SetSessionLogSeverityLevel": 22,
    "SetSessionGraphOptimizationLevel": 23,
    "SetIntraOpNumThreads": 24,
    "CreateTensorWithDataAsOrtValue": 49,
    "GetTensorMutableData": 51,
    "GetTensorElementType": 60,
    "GetDimensionsCount": 61,
    "GetDimensions": 62,
    "GetTensorTypeAndShape": 65,
    "CreateCpuMemoryInfo": 69,
    "ReleaseStatus": 93,
    "ReleaseMemoryInfo": 94,
    "ReleaseSession": 95,
    "ReleaseValue": 96,
    "ReleaseTensorTypeAndShapeInfo": 99,
    "ReleaseSessionOptions": 100,
    "AddSessionConfigEntry": 130,
    "CreateAndRegisterAllocator": 144,
    "AddInitializer": 150,
    "CreateArenaCfg": 156,
    "ReleaseArenaCfg": 157,
    "CreatePrepackedWeightsContainer": 166,
    "ReleasePrepackedWeightsContainer": 167,
    "CreateSessionFromArrayWithPrepackedWeightsContainer": 169,
}

_P = ctypes.c_void_p
_PP = ctypes.POINTER(ctypes.c_void_p)
_STATUS = ctypes.c_void_p
_SIGNATURES: dict[str, tuple[Any, ...]] = {
    "GetErrorMessage": (ctypes.c_char_p, _P),
    "CreateEnv": (_STATUS, ctypes.c_int, ctypes.c_char_p, _PP),
    "Run": (
        _STATUS,
        _P,
        _P,
        ctypes.POINTER(ctypes.c_char_p),
        _PP,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_char_p),
        ctypes.c_size_t,
        _PP,
    ),
    "CreateSessionOptions": (_STATUS, _PP),
    "SetSessionLogSeverityLevel": (_STATUS, _P, ctypes.c_int),
    "SetSessionGraphOptimizationLevel": (_STATUS, _P, ctypes.c_int),
    "SetIntraOpNumThreads": (_STATUS, _P, ctypes.c_int),
    "CreateTensorWithDataAsOrtValue": (
        _STATUS,
        _P,
        _P,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_int64),
        ctypes.c_size_t,
        ctypes.c_int,
        _PP,
    ),
    "GetTensorMutableData": (_STATUS, _P, _PP),
    "GetTensorElementType": (_STATUS, _P, ctypes.POINTER(ctypes.c_int)),
    "GetDimensionsCount": (_STATUS, _P, ctypes.POINTER(ctypes.c_size_t)),
    "GetDimensions": (_STATUS, _P, ctypes.POINTER(ctypes.c_int64), ctypes.c_size_t),
    "GetTensorTypeAndShape": (_STATUS, _P, _PP),
    "CreateCpuMemoryInfo": (_STATUS, ctypes.c_int, ctypes.c_int, _PP),
    "ReleaseStatus": (None, _P),
    "ReleaseMemoryInfo": (None, _P),
    "ReleaseSession": (None, _P),
    "ReleaseValue": (None, _P),
    "ReleaseTensorTypeAndShapeInfo": (None, _P),
    "ReleaseSessionOptions": (None, _P),
    "AddSessionConfigEntry": (_STATUS, _P, ctypes.c_char_p, ctypes.c_char_p),
    "AddInitializer": (_STATUS, _P, ctypes.c_char_p, _P),
    "CreateAndRegisterAllocator": (_STATUS, _P, _P, _P),
    "CreateArenaCfg": (_STATUS, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, _PP),
    "ReleaseArenaCfg": (None, _P),
    "CreatePrepackedWeightsContainer": (_STATUS, _PP),
    "ReleasePrepackedWeightsContainer": (None, _P),
    "CreateSessionFromArrayWithPrepackedWeightsContainer": (_STATUS, _P, _P, ctypes.c_size_t, _P, _P, _PP),
}

#: ONNX TensorProto data types <-> numpy.
_ONNX_TO_NUMPY = {
    1: np.float32,
    2: np.uint8,
    3: np.int8,
    4: np.uint16,
    5: np.int16,
    6: np.int32,
    7: np.int64,
    9: np.bool_,
    10: np.float16,
    11: np.float64,
    12: np.uint32,
    13: np.uint64,
}
_NUMPY_TO_ONNX = {np.dtype(v): k for k, v in _ONNX_TO_NUMPY.items()}
#: ONNX tensor element types a CApiSession takes and returns.
TENSOR_TYPES = frozenset(_ONNX_TO_NUMPY)

_ORT_ENABLE_ALL = 99
_LOG_ERROR = 3
_ARENA_ALLOCATOR, _MEM_DEFAULT = 1, 0


class CApiError(RuntimeError):
    """A failed C API call; the message is ONNX Runtime's."""


class _Api:
    """The C API function table of the ``libonnxruntime`` shipped with the Python package."""

    def __init__(self, library: Path) -> None:
        self.lib = ctypes.CDLL(str(library))
        get_base = self.lib.OrtGetApiBase
        get_base.restype = ctypes.POINTER(ctypes.c_void_p * 2)
        base = get_base().contents
        get_api = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint32)(base[0])
        table_address = get_api(API_VERSION)
        if not table_address:
            raise CApiError(f"{library.name} does not offer C API version {API_VERSION}")
        size = max(_INDEX.values()) + 1
        table = ctypes.cast(table_address, ctypes.POINTER(ctypes.c_void_p * size)).contents
        for name, index in _INDEX.items():
            restype, *argtypes = _SIGNATURES[name]
            setattr(self, name, ctypes.CFUNCTYPE(restype, *argtypes)(table[index]))
        env = ctypes.c_void_p()
        self.check(self.CreateEnv(_LOG_ERROR, b"openatc", ctypes.byref(env)))
        self.env = env
        info = ctypes.c_void_p()
        self.check(self.CreateCpuMemoryInfo(_ARENA_ALLOCATOR, _MEM_DEFAULT, ctypes.byref(info)))
        self.cpu_info = info
        # One CPU arena in this environment, grown by what is requested (kSameAsRequested): sessions
        # created with "session.use_env_allocators" take their activations from it, so gears loaded
        # together do not each keep their own peak.
        arena = ctypes.c_void_p()
        self.check(self.CreateArenaCfg(0, 1, -1, -1, ctypes.byref(arena)))
        try:
            self.check(self.CreateAndRegisterAllocator(env, info, arena))
        finally:
            self.ReleaseArenaCfg(arena)

    def check(self, status: int | None) -> None:
        if status:
            message = self.GetErrorMessage(status).decode("utf-8", "replace")
            self.ReleaseStatus(status)
            raise CApiError(message)


def _library() -> Path | None:
    import onnxruntime

    folder = Path(onnxruntime.__file__).resolve().parent / "capi"
    found = sorted(folder.glob("libonnxruntime.so*")) + sorted(folder.glob("libonnxruntime*.dylib"))
    found += sorted(folder.glob("onnxruntime.dll"))
    return found[0] if found else None


@functools.cache
def _api() -> _Api | None:
    library = _library()
    if library is None:
        return None
    try:
        return _Api(library)
    except (OSError, AttributeError, CApiError):
        return None


@functools.cache
def _malloc_trim() -> Any:
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):  # no glibc (musl, macOS, Windows)
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> None:
    """Hands freed heap memory back to the OS (glibc's ``malloc_trim``; nothing elsewhere).

    A session sharing a prepacked container still packs each weight itself and then frees its
    copy when the container already holds an identical one; glibc keeps such freed blocks in the
    process unless asked to return them.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def available() -> bool:
    """True when ONNX Runtime's C library can be loaded next to its Python package."""
    return _api() is not None


class PrepackedWeights:
    """One ``OrtPrepackedWeightsContainer``; every session created with it shares packed weights."""

    def __init__(self) -> None:
        api = _api()
        assert api is not None
        self._api = api
        handle = ctypes.c_void_p()
        api.check(api.CreatePrepackedWeightsContainer(ctypes.byref(handle)))
        self.handle = handle

    def __del__(self) -> None:
        if getattr(self, "handle", None):
            self._api.ReleasePrepackedWeightsContainer(self.handle)
            self.handle = None


def _wrap(api: _Api, array: np.ndarray) -> int:
    """A new OrtValue viewing ``array`` (C-contiguous; it must outlive the value); release it."""
    shape = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
    handle = ctypes.c_void_p()
    api.check(
        api.CreateTensorWithDataAsOrtValue(
            api.cpu_info,
            array.ctypes.data,
            array.nbytes,
            shape,
            array.ndim,
            _NUMPY_TO_ONNX[array.dtype],
            ctypes.byref(handle),
        )
    )
    return int(handle.value or 0)


class _Value:
    """An OrtValue viewing a numpy array (the array must outlive it)."""

    def __init__(self, api: _Api, array: np.ndarray) -> None:
        self._api = api
        self.array = array
        self.handle = _wrap(api, array)

    def __del__(self) -> None:
        if getattr(self, "handle", None):
            self._api.ReleaseValue(self.handle)
            self.handle = None


class CApiSession:
    """An ONNX Runtime CPU session created through the C API.

    ``initializers`` are added with ``AddInitializer`` (shared, never copied); ``config`` entries
    go to ``AddSessionConfigEntry``; ``prepacked`` shares packed weights with other sessions.
    ``static_outputs``: every output has the same shape on every run (a gear), so outputs are
    pre-allocated after the first run.
    """

    def __init__(
        self,
        model: bytes,
        *,
        initializers: Mapping[str, np.ndarray],
        config: Mapping[str, str],
        intra_op_num_threads: int = 0,
        prepacked: PrepackedWeights | None = None,
        static_outputs: bool = False,
    ) -> None:
        api = _api()
        if api is None:
            raise CApiError("ONNX Runtime's C library is not available")
        self._api = api
        self._names: dict[tuple[str, ...], Any] = {}
        self._output_specs: dict[tuple[str, ...], list[tuple[tuple[int, ...], np.dtype]]] = {}
        self._static_outputs = static_outputs
        options = ctypes.c_void_p()
        api.check(api.CreateSessionOptions(ctypes.byref(options)))
        try:
            api.check(api.SetSessionGraphOptimizationLevel(options, _ORT_ENABLE_ALL))
            api.check(api.SetSessionLogSeverityLevel(options, _LOG_ERROR))
            if intra_op_num_threads:
                api.check(api.SetIntraOpNumThreads(options, int(intra_op_num_threads)))
            for key, value in config.items():
                api.check(api.AddSessionConfigEntry(options, key.encode(), value.encode()))
            self._initializers = [_Value(api, array) for array in initializers.values()]
            for name, value in zip(initializers, self._initializers, strict=True):
                api.check(api.AddInitializer(options, name.encode(), value.handle))
            self._model = model
            session = ctypes.c_void_p()
            api.check(
                api.CreateSessionFromArrayWithPrepackedWeightsContainer(
                    api.env,
                    ctypes.c_char_p(model),
                    len(model),
                    options,
                    prepacked.handle if prepacked is not None else None,
                    ctypes.byref(session),
                )
            )
            self.handle = session
            self._prepacked = prepacked
        finally:
            api.ReleaseSessionOptions(options)

    def run(self, output_names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Runs the session. Outputs whose shape was the same on every earlier call are written
        straight into fresh numpy arrays (pre-allocated OrtValues); others are copied out."""
        api = self._api
        in_key, out_key = tuple(feeds), tuple(output_names)
        in_names = self._names.get(in_key)
        if in_names is None:
            in_names = self._names[in_key] = (ctypes.c_char_p * len(in_key))(*[n.encode() for n in in_key])
        out_names = self._names.get(out_key)
        if out_names is None:
            out_names = self._names[out_key] = (ctypes.c_char_p * len(out_key))(*[n.encode() for n in out_key])
        arrays = [np.ascontiguousarray(a) for a in feeds.values()]
        known = self._output_specs.get(out_key)
        results = [np.empty(shape, dtype) for shape, dtype in known] if known is not None else []
        inputs = (ctypes.c_void_p * len(arrays))()
        outputs = (ctypes.c_void_p * len(out_key))()
        try:
            for i, array in enumerate(arrays):
                inputs[i] = _wrap(api, array)
            for i, array in enumerate(results):
                outputs[i] = _wrap(api, array)
            api.check(api.Run(self.handle, None, in_names, inputs, len(arrays), out_names, len(out_key), outputs))
            if known is None:
                results = [self._to_numpy(outputs[i]) for i in range(len(out_key))]
                if self._static_outputs:
                    self._output_specs[out_key] = [(r.shape, r.dtype) for r in results]
        finally:
            for handle in (*inputs, *outputs):
                if handle:
                    api.ReleaseValue(handle)
        return results

    def _to_numpy(self, value: int) -> np.ndarray:
        api = self._api
        info = ctypes.c_void_p()
        api.check(api.GetTensorTypeAndShape(value, ctypes.byref(info)))
        try:
            elem = ctypes.c_int()
            api.check(api.GetTensorElementType(info, ctypes.byref(elem)))
            rank = ctypes.c_size_t()
            api.check(api.GetDimensionsCount(info, ctypes.byref(rank)))
            dims = (ctypes.c_int64 * max(rank.value, 1))()
            api.check(api.GetDimensions(info, dims, rank.value))
        finally:
            api.ReleaseTensorTypeAndShapeInfo(info)
        shape = tuple(dims[i] for i in range(rank.value))
        dtype = np.dtype(_ONNX_TO_NUMPY[elem.value])
        data = ctypes.c_void_p()
        api.check(api.GetTensorMutableData(value, ctypes.byref(data)))
        out = np.empty(shape, dtype)
        if out.nbytes:
            ctypes.memmove(out.ctypes.data, data, out.nbytes)
        return out

    def __del__(self) -> None:
        if getattr(self, "handle", None):
            self._api.ReleaseSession(self.handle)
            self.handle = None
