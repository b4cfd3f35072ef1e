"""Leakage check between two splits: which validation (or benchmark) items also occur in the training data.

An item is the (Sample, image_root) pair that `rl/ptst` loads per manifest. Two items are the same when they share
an id within a source (`source` + `id`) or any image's content (sha256 of the file's bytes), whatever its name.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.data.schema import Sample

Item = tuple[Sample, Path]


def file_sha256(path: Path, cache: dict[Path, str]) -> str:
    """The content hash of a file, read once per resolved path (`cache` keeps them)."""
    path = path.resolve()
    if path not in cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        cache[path] = h.hexdigest()
    return cache[path]


def _keys(item: Item, cache: dict[Path, str]) -> tuple[tuple[str, str], set[str]]:
    sample, root = item
    return (sample.source, sample.id), {file_sha256(Path(root) / rel, cache) for rel in sample.images}


def overlap(train: list[Item], val: list[Item]) -> list[Item]:
    """The items of `val` (in order) that share an id (source + id) or an image content hash with `train`."""
    cache: dict[Path, str] = {}
    train_ids: set[tuple[str, str]] = set()
    train_images: set[str] = set()
    for item in train:
        key, hashes = _keys(item, cache)
        train_ids.add(key)
        train_images |= hashes
    out = []
    for item in val:
        key, hashes = _keys(item, cache)
        if key in train_ids or hashes & train_images:
            out.append(item)
    return out
