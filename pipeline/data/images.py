"""Image paths and bytes: resolving under an image root, verifying, extracting embedded images."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pipeline.errors import FieldError
from pipeline.grading.geometry import budget_size
from pipeline.io import atomic_write_bytes


def normalize_image_ref(ref: str) -> str:
    """`file://` URIs become plain paths; everything else is returned as given."""
    if ref.startswith("file://"):
        return ref[len("file://") :]
    return ref


def resolve_image(root: Path, rel: str, field: str) -> Path:
    """Absolute path of `rel` under `root`; refuses paths that escape the root (`../`, absolute elsewhere)."""
    rel = normalize_image_ref(rel)
    if not rel:
        raise FieldError(field, "empty image path")
    root = root.resolve()
    path = (root / rel).resolve()
    if path != root and root not in path.parents:
        raise FieldError(field, f"image path '{rel}' escapes the image root {root}")
    return path


def relative_to_root(root: Path, path: Path, field: str) -> str:
    root, path = root.resolve(), path.resolve()
    if root not in path.parents:
        raise FieldError(field, f"image {path} is outside the image root {root}")
    return path.relative_to(root).as_posix()


def verify_image(path: Path, field: str) -> None:
    """Raise FieldError unless `path` is a readable image (header and structure checked by Pillow)."""
    if not path.is_file():
        raise FieldError(field, f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise FieldError(field, f"unreadable image {path}: {type(e).__name__}: {e}") from None


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def _extension_for(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = (im.format or "png").lower()
    except (UnidentifiedImageError, OSError):
        return "bin"
    return {"jpeg": "jpg"}.get(fmt, fmt)


def store_embedded_image(root: Path, data: bytes, name_hint: str | None, field: str) -> str:
    """Write embedded image bytes under `root` and return the path relative to it.

    A safe relative `name_hint` (the cell's original `path`) is kept, so a write-read round trip returns the
    same relative paths; otherwise the name is the content hash. Idempotent: identical bytes are not rewritten.
    """
    if not data:
        raise FieldError(field, "embedded image has no bytes")
    rel = None
    if name_hint:
        hint = normalize_image_ref(name_hint)
        if not os.path.isabs(hint) and ".." not in Path(hint).parts:
            rel = Path(hint).as_posix()
    if rel is None:
        rel = f"embedded/{hashlib.sha256(data).hexdigest()[:24]}.{_extension_for(data)}"
    target = resolve_image(root, rel, field)
    if target.exists():
        if target.read_bytes() == data:
            return rel
        # Same name, other content (two sources reuse `image.png`): fall back to the content hash.
        rel = f"embedded/{hashlib.sha256(data).hexdigest()[:24]}.{_extension_for(data)}"
        target = resolve_image(root, rel, field)
        if target.exists():
            return rel
    atomic_write_bytes(target, data)
    return rel


def fit_pixels(im: Image.Image, max_pixels: int) -> Image.Image:
    """The image shrunk (aspect kept) to at most `max_pixels`; smaller images are returned as they are."""
    w, h = im.size
    if w * h <= max_pixels:
        return im
    return im.resize(budget_size(w, h, max_pixels), Image.BICUBIC)
