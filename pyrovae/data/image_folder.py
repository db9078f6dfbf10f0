"""The image-folder source: a folder of PNG/JPEG images, flat or one subfolder per class.

``data.path`` holds either the images themselves (no labels) or one subfolder per class,
the images of each directly inside it; labels are the sorted subfolder names numbered
0 .. C - 1 (:attr:`~pyrovae.data.source.Source.class_names`). Files whose names end in
:data:`SUFFIXES` (any case) are read, in sorted order; other files, and names starting
with a dot, are ignored.

Every image is converted with Pillow to one channel (mode ``L``) or three (``RGB``,
alpha dropped): ``data.color = "auto"`` picks RGB when any image is stored in a colour
mode and grey otherwise. Images are turned upright first, as viewers show them, by their
EXIF orientation (a phone's photo is stored sideways with a tag). With
``data.image_size = [H, W]`` each image is then resized to
it with Pillow's LANCZOS filter; without, every image must have the same size. Images are
decoded one at a time into one preallocated float32 array (pixels / 255), with a progress
bar on stderr past :data:`PROGRESS_FROM` files. The split is a permutation seeded with
``data.seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from pyrovae.data.source import Source, one_line
from pyrovae.errors import DataError
from pyrovae.spec import DataSpec

__all__ = ["GREY_MODES", "PROGRESS_FROM", "SUFFIXES", "WIDE_MODES", "load_image_folder"]

SUFFIXES = (".png", ".jpg", ".jpeg")
"""The file name endings read as images."""
GREY_MODES = frozenset({"1", "L", "LA", "La"})
"""Pillow's 8-bit (or 1-bit) modes without colour; any other mode read (RGB, RGBA, P, CMYK,
...) counts as colour."""
WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
"""Pillow modes of 16-bit, 32-bit and float pixels, refused: converting them to 8 bits
clips every value above 255."""
PROGRESS_FROM = 1000
"""A progress bar is shown when a folder holds more images than this."""
_ORIENTATION = 0x0112
"""The EXIF tag of how a camera held the picture (phones store photos sideways)."""
_TURNED = frozenset({5, 6, 7, 8})
"""Orientations that swap height and width."""
_ERRORS = (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError)
"""What Pillow raises for a damaged, truncated or hostile file."""


@dataclass(frozen=True)
class _Header:
    """What opening an image tells without decoding it."""

    path: Path
    label: int
    size: tuple[int, int]
    """(height, width)"""
    mode: str


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES and not path.name.startswith(".") and path.is_file()


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if _is_image(p))


def _listing(folder: Path) -> tuple[list[tuple[Path, int]], tuple[str, ...] | None]:
    """Every image with its label (-1 when flat), and the class names (None when flat)."""
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise DataError(f"data: {folder} {what}; data.path must be a folder of images")
    flat = _images_in(folder)
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if flat and any(_images_in(c) for c in classes):
        raise DataError(
            f"data: {folder} holds both images ({flat[0].name}, ...) and class folders "
            f"({classes[0].name}, ...); put every image in a class folder, or none"
        )
    if flat or not classes:
        if not flat:
            raise DataError(
                f"data: {folder} holds no images (read: {', '.join(SUFFIXES)}, directly in "
                "it or in one subfolder per class); check data.path"
            )
        return [(p, -1) for p in flat], None
    files = []
    for label, sub in enumerate(classes):
        images = _images_in(sub)
        if not images:
            raise DataError(
                f"data: class folder {sub} holds no images (read: {', '.join(SUFFIXES)}); "
                "add images or remove the folder"
            )
        files += [(p, label) for p in images]
    return files, tuple(c.name for c in classes)


def _unreadable(path: Path, err: BaseException) -> DataError:
    return DataError(
        f"data: cannot read image {path}: {one_line(err)}; replace the file or delete it"
    )


def _header(path: Path, label: int) -> _Header:
    """Size (as shown: after the EXIF orientation) and mode from the file's header (Pillow
    decodes lazily)."""
    try:
        with Image.open(path) as image:
            size = (image.height, image.width)
            if image.getexif().get(_ORIENTATION) in _TURNED:
                size = size[::-1]
            header = _Header(path, label, size, image.mode)
    except _ERRORS as err:
        raise _unreadable(path, err) from None
    if header.mode in WIDE_MODES:
        raise DataError(
            f"data: image {path} has mode {header.mode} (16-bit, 32-bit or float pixels); "
            "pyrovae reads 8-bit images: save it with 8 bits per channel"
        )
    return header


def _target_size(headers: list[_Header], image_size: tuple[int, ...]) -> tuple[int, int]:
    """``data.image_size``, or the size every image shares."""
    if image_size:
        return image_size[0], image_size[1]
    first = headers[0]
    for h in headers[1:]:
        if h.size != first.size:
            (h1, w1), (h2, w2) = first.size, h.size
            raise DataError(
                f"data: images differ in size: {first.path} is {h1}x{w1} but {h.path} is "
                f"{h2}x{w2} (height x width); set data.image_size = [height, width] to "
                "resize every image"
            )
    return first.size


def _decode(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """The image turned upright (its EXIF orientation), converted to ``mode`` and resized:
    uint8 (H, W) or (H, W, 3)."""
    try:
        with Image.open(path) as image:
            converted = ImageOps.exif_transpose(image).convert(mode)
        if (converted.height, converted.width) != size:
            converted = converted.resize((size[1], size[0]), Image.Resampling.LANCZOS)
        return np.asarray(converted, dtype=np.uint8)
    except _ERRORS as err:
        raise _unreadable(path, err) from None


def load_image_folder(spec: DataSpec) -> Source:
    """Images ``(N, C, H, W)`` in [0, 1], C = 1 (grey) or 3 (RGB); labels from the class
    folders, or None for a flat folder."""
    folder = Path(spec.path)
    try:
        files, class_names = _listing(folder)
    except OSError as err:  # a folder that cannot be listed
        raise DataError(f"data: cannot list {folder}: {one_line(err)}") from None
    headers = [_header(path, label) for path, label in files]
    height, width = _target_size(headers, spec.image_size)
    color = spec.color
    if color == "auto":
        color = "rgb" if any(h.mode not in GREY_MODES for h in headers) else "grayscale"
    mode, channels = ("RGB", 3) if color == "rgb" else ("L", 1)
    x = np.empty((len(headers), channels, height, width), dtype=np.float32)
    bar = tqdm(headers, desc="read images", unit="image", disable=len(headers) <= PROGRESS_FROM)
    for i, h in enumerate(bar):
        pixels = _decode(h.path, mode, (height, width))
        x[i] = (pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)) / np.float32(255)
    y = None if class_names is None else np.array([h.label for h in headers], dtype=np.int64)
    return Source(x, y, origin=str(folder), levels=256, class_names=class_names)
