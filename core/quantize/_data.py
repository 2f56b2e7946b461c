"""Calibration samples: .npy/.bin files per model input, read lazily one sample at a time.

Layouts of a ``data_dir`` (see docs/precision.md):

* one subfolder per input name (``calib/x/0.npy``, ``calib/mask/0.npy``);
* files ``<input>_<i>.npy`` / ``.bin`` side by side (multi-input);
* any .npy/.bin files (single-input models).

With an ``image`` section in the config, image files (.jpg/.jpeg/.png/.bmp) count as samples
too: each is decoded (Pillow), resized to the input's spatial size and normalized as the section
says (:class:`~._config.ImagePreprocess`), one image per batch item.

A ``.npy`` holds one sample (the input's shape, or that shape without a leading batch of 1); a
``.bin`` holds raw samples of the input's dtype and shape, one or several back to back. For a
gear (or shape) of batch B > 1, files of batch-1 samples are stacked B at a time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openatc.errors import OpenATCError

from ._config import ImagePreprocess, QuantizationOptions

__all__ = ["InputSpec", "Samples", "find_samples"]

_SUFFIXES = (".npy", ".bin")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def _natural(path: Path) -> tuple[object, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def _files(folder: Path) -> list[Path]:
    suffixes = (*_SUFFIXES, *_IMAGE_SUFFIXES)
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes), key=_natural)


class Samples:
    """``len(samples)`` samples; ``samples[i]`` reads sample ``i`` of every input from disk.

    With ``batch`` > 1 the files hold batch-1 samples and each sample stacks ``batch`` of them
    (a gear of batch 4 calibrates on the same files as the gear of batch 1).
    """

    def __init__(
        self,
        entries: Mapping[str, Sequence[tuple[Path, int]]],
        specs: Sequence[InputSpec],
        batch: int = 1,
        image: ImagePreprocess | None = None,
    ) -> None:
        self.entries = {k: list(v) for k, v in entries.items()}
        self.specs = {s.name: s for s in specs}
        self.batch = batch
        self.image = image
        self.count = min(len(v) for v in self.entries.values()) // batch

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        feeds = {}
        for name, items in self.entries.items():
            parts = [_read(*items[index * self.batch + k], self.specs[name], self.image) for k in range(self.batch)]
            feeds[name] = parts[0] if self.batch == 1 else np.concatenate(parts)
        return feeds

    def subset(self, indices: Sequence[int]) -> Samples:
        units = [i * self.batch + k for i in indices for k in range(self.batch)]
        return Samples(
            {k: [v[i] for i in units] for k, v in self.entries.items()},
            list(self.specs.values()),
            self.batch,
            self.image,
        )


def _read(path: Path, part: int, spec: InputSpec, image: ImagePreprocess | None = None) -> np.ndarray:
    if path.suffix.lower() in _IMAGE_SUFFIXES and image is not None:
        return load_image(path, spec, image)
    if path.suffix == ".bin":
        data = np.fromfile(path, dtype=spec.dtype, count=spec.nbytes // spec.dtype.itemsize, offset=part * spec.nbytes)
        return data.reshape(spec.shape)
    array = np.load(path, allow_pickle=False)
    return array.reshape(spec.shape)


def image_layout(spec: InputSpec, image: ImagePreprocess) -> tuple[str, int, int, int]:
    """(layout, height, width, channels) an image sample of ``spec`` takes (batch-1 shape, rank 4)."""
    shape = spec.shape
    if len(shape) != 4 or shape[0] != 1:
        raise OpenATCError(
            "E10061",
            f"input '{spec.name}' {list(shape)} cannot take images: an image sample needs a rank-4 input "
            "(N, C, H, W or N, H, W, C)",
            hint="Give that input .npy/.bin samples instead.",
        )
    layout = image.layout or ("NCHW" if shape[1] in (1, 3, 4) else "NHWC")
    _, height, width, channels = (0, shape[2], shape[3], shape[1]) if layout == "NCHW" else shape
    return layout, height, width, channels


def load_image(path: Path, spec: InputSpec, image: ImagePreprocess) -> np.ndarray:
    """One preprocessed image sample of ``spec``'s (batch-1) shape and dtype."""
    try:
        from PIL import Image
    except ImportError:
        raise OpenATCError(
            "E10061",
            f"calibration image {path}: decoding images needs Pillow, which is not installed",
            hint="pip install 'openatc[images]' (or convert the images to .npy samples).",
        ) from None
    layout, height, width, channels = image_layout(spec, image)
    try:
        with Image.open(path) as opened:
            picture = opened.convert("L" if image.color == "GRAY" else "RGB")
    except (OSError, ValueError) as exc:
        raise OpenATCError("E10061", f"calibration image {path}: cannot decode it: {exc}") from None
    if image.fit == "center_crop":
        scale = max(height / picture.height, width / picture.width)
        size = (max(width, round(picture.width * scale)), max(height, round(picture.height * scale)))
        if size != picture.size:
            picture = picture.resize(size, Image.Resampling.BILINEAR)
        left, top = (picture.width - width) // 2, (picture.height - height) // 2
        picture = picture.crop((left, top, left + width, top + height))
    elif picture.size != (width, height):
        picture = picture.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(picture, dtype=np.float32)
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
    if image.color == "BGR":
        pixels = pixels[:, :, ::-1]
    if pixels.shape[2] != channels:
        raise OpenATCError(
            "E10061",
            f"calibration image {path}: color {image.color} gives {pixels.shape[2]} channel(s), input "
            f"'{spec.name}' {list(spec.shape)} ({layout}) takes {channels}",
            hint='Set "color" (RGB, BGR or GRAY) or "layout" in the config\'s image section.',
        )
    for key, values in (("mean", image.mean), ("std", image.std)):
        if len(values) not in (1, channels):
            raise OpenATCError(
                "E10061",
                f"image '{key}' has {len(values)} values; input '{spec.name}' has {channels} channel(s)",
                hint="Give one value, or one per channel.",
            )
    pixels = (pixels - np.asarray(image.mean, np.float32)) / np.asarray(image.std, np.float32)
    if layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    if spec.dtype.kind in "iu":
        pixels = np.clip(np.rint(pixels), np.iinfo(spec.dtype).min, np.iinfo(spec.dtype).max)
    return np.ascontiguousarray(pixels[None]).astype(spec.dtype)


def _check_npy(path: Path, spec: InputSpec) -> None:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise OpenATCError("E10061", f"calibration file {path}: not a readable .npy: {exc}") from None
    shapes = {spec.shape, spec.shape[1:] if spec.shape[:1] == (1,) else spec.shape}
    if array.dtype != spec.dtype or tuple(array.shape) not in shapes:
        raise OpenATCError(
            "E10061",
            f"calibration file {path} does not fit input '{spec.name}': expected {spec.dtype} "
            f"{list(spec.shape)}, got {array.dtype} {list(array.shape)}",
            hint="Save each sample with the input's dtype and shape (np.save(path, x.astype(...))).",
        )


def _bin_parts(path: Path, spec: InputSpec) -> int:
    size = path.stat().st_size
    if size == 0 or size % spec.nbytes:
        raise OpenATCError(
            "E10061",
            f"calibration file {path} does not fit input '{spec.name}': {size} bytes is not a multiple of "
            f"{spec.nbytes} bytes ({spec.dtype} {list(spec.shape)})",
            hint="A .bin holds raw samples of the input's dtype and shape, back to back.",
        )
    return size // spec.nbytes


def _per_input_files(options: QuantizationOptions, specs: Sequence[InputSpec]) -> dict[str, list[Path]]:
    names = [s.name for s in specs]
    if options.data_files:
        given = dict(options.data_files)
        return {n: list(given.get(n, ())) for n in names}
    if len(options.data_dirs) > 1 or options.data_dirs[0][0]:
        given = dict(options.data_dirs)
        missing = [n for n in names if n not in given]
        if missing:
            raise OpenATCError(
                "E10061",
                f"{options.source}: data_dir has no folder for input(s) {', '.join(missing)}",
                hint="Map every model input to a folder: {" + ", ".join(f'"{n}": "..."' for n in names) + "}.",
            )
        for name, folder in given.items():
            if not folder.is_dir():
                raise OpenATCError("E10061", f"{options.source}: data_dir of '{name}' ({folder}) is not a folder")
        return {n: _files(given[n]) for n in names}
    folder = options.data_dirs[0][1]
    if not folder.is_dir():
        raise OpenATCError("E10061", f"{options.source}: data_dir {folder} is not a folder", hint="Check the path.")
    if all((folder / n).is_dir() for n in names):
        return {n: _files(folder / n) for n in names}
    files = _files(folder)
    if len(names) == 1 and not any(f.stem.startswith(f"{names[0]}_") for f in files):
        return {names[0]: files}
    found = {n: [f for f in files if re.fullmatch(re.escape(n) + r"_\d+", f.stem)] for n in names}
    return found


def _unit_batch(per_input: Mapping[str, list[Path]], specs: Sequence[InputSpec]) -> int:
    """The gear's batch when the files hold batch-1 samples of a batch > 1 gear, else 1."""
    batches = {s.shape[0] if s.shape else 1 for s in specs}
    if len(batches) != 1 or (batch := batches.pop()) <= 1 or not per_input.get(specs[0].name):
        return 1
    spec, first = specs[0], per_input[specs[0].name][0]
    unit = (1, *spec.shape[1:])
    if first.suffix.lower() in _IMAGE_SUFFIXES:
        return batch
    if first.suffix == ".bin" and first.is_file():
        size = first.stat().st_size
        unit_bytes = spec.nbytes // batch
        return batch if size % spec.nbytes and size and not size % unit_bytes else 1
    try:
        shape = tuple(np.load(first, mmap_mode="r", allow_pickle=False).shape)
    except (OSError, ValueError):
        return 1
    return batch if shape in (unit, unit[1:]) else 1


def find_samples(options: QuantizationOptions, specs: Sequence[InputSpec]) -> Samples:
    """The calibration samples for ``specs`` (checked: counts, dtypes and shapes of every file)."""
    per_input = _per_input_files(options, specs)
    batch = _unit_batch(per_input, specs)
    if batch > 1:
        specs = [InputSpec(s.name, s.dtype, (1, *s.shape[1:])) for s in specs]
    entries: dict[str, list[tuple[Path, int]]] = {}
    for spec in specs:
        files = per_input[spec.name]
        if not files:
            where = ", ".join(str(p) for _, p in options.data_dirs) or "input_data_dir"
            raise OpenATCError(
                "E10061",
                f"{options.source}: no .npy/.bin/image calibration files for input '{spec.name}' in {where}",
                hint=f"Put samples there (one subfolder per input, or files named {spec.name}_0.npy, ...).",
            )
        items: list[tuple[Path, int]] = []
        for path in files:
            if path.is_file() and path.suffix.lower() in _IMAGE_SUFFIXES:
                if options.image is None:
                    raise OpenATCError(
                        "E10061",
                        f"calibration file {path} is an image, but the config has no 'image' section",
                        hint='Add "image": {"mean": [...], "std": [...]} (docs/precision.md), or use .npy samples.',
                    )
                image_layout(spec, options.image)
                items.append((path, 0))
                continue
            if not path.is_file() or path.suffix not in _SUFFIXES:
                raise OpenATCError("E10061", f"calibration file {path}: not a .npy, .bin or image file")
            if path.suffix == ".npy":
                _check_npy(path, spec)
                items.append((path, 0))
            else:
                items.extend((path, part) for part in range(_bin_parts(path, spec)))
        entries[spec.name] = items
    counts = {n: len(v) for n, v in entries.items()}
    if len(set(counts.values())) > 1:
        raise OpenATCError(
            "E10061",
            f"{options.source}: the inputs have different numbers of samples: "
            + ", ".join(f"{n}: {c}" for n, c in counts.items()),
            hint="Give every input the same number of samples.",
        )
    available = next(iter(counts.values())) // batch
    wanted = options.num_samples
    if wanted is not None and available < wanted:
        raise OpenATCError(
            "E10061",
            f"{options.source}: num_samples is {wanted} but only {available} sample(s) were found",
            hint="Add samples, or lower num_samples.",
        )
    samples = Samples(entries, specs, batch, options.image)
    return samples.subset(range(wanted)) if wanted is not None else samples
