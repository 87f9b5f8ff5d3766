"""Which files are images: the one list every reader of image folders uses."""

from __future__ import annotations

from pathlib import Path

# Lower-case suffixes Pillow reads, in the order a lookup by stem tries them.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: Path) -> bool:
    """Whether `path` names an image by its suffix (any case) and is a file."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
