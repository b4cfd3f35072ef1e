"""k-shot splits (`vr1 split`), as Visual-RFT trains its few-shot classification and detection: a class-balanced
training manifest and a test manifest with everything else, deterministic per seed.

- classification (answer type `label`): k samples of each class (the label as the grader reads it: case,
  spacing and `_` ignored);
- detection (`boxes`): images drawn in seeded order and taken while they bring a category that has fewer than k
  instances, until every category has at least k (an image brings all its boxes, so some categories get more).
Both manifests are vr1 JSONL beside a YAML manifest that points at the source's image root.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from pathlib import Path

from pipeline.data.manifest import Manifest, read_manifest
from pipeline.data.schema import Sample
from pipeline.errors import Vr1Error
from pipeline.io import atomic_write_text, write_jsonl


def label_key(label: str) -> str:
    return " ".join(label.replace("_", " ").lower().split())


def box_categories(sample: Sample) -> list[str]:
    """The category of every gold box of a detection sample."""
    try:
        boxes = json.loads(sample.answer)
    except json.JSONDecodeError:
        return []
    return [label_key(str(b.get("label", ""))) for b in boxes if isinstance(b, dict)]


def split_kshot(samples: list[Sample], shots: int, seed: int) -> tuple[list[Sample], list[Sample], dict]:
    """(train, test, report): see the module docstring. The report names classes with fewer than k examples."""
    kinds = {s.answer_type for s in samples}
    if not kinds <= {"label", "boxes"} or len(kinds) != 1:
        raise Vr1Error(f"k-shot splits need one answer type, label or boxes; this set has {sorted(kinds)}")
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    chosen: set[int] = set()
    counts: Counter = Counter()
    if kinds == {"label"}:
        for i in order:
            key = label_key(samples[i].answer)
            if counts[key] < shots:
                counts[key] += 1
                chosen.add(i)
        available = Counter(label_key(s.answer) for s in samples)
    else:
        for i in order:
            cats = box_categories(samples[i])
            if any(counts[c] < shots for c in cats):
                counts.update(cats)
                chosen.add(i)
        available = Counter(c for s in samples for c in box_categories(s))
    short = {c: n for c, n in sorted(available.items()) if counts[c] < shots}
    train = [samples[i] for i in sorted(chosen)]
    test = [s for i, s in enumerate(samples) if i not in chosen]
    report = {
        "shots": shots,
        "seed": seed,
        "classes": len(available),
        "train": len(train),
        "test": len(test),
        "per_class_train": dict(sorted(counts.items())),
        "short_classes": short,
    }
    return train, test, report


def write_split(manifest_path: str | Path, shots: int, seed: int, out: str | Path) -> dict:
    """Write DIR/train.{jsonl,yaml} and DIR/test.{jsonl,yaml} from one manifest; returns the report."""
    import yaml

    manifest = Manifest.load(manifest_path)
    samples = read_manifest(manifest).samples
    train, test, report = split_kshot(samples, shots, seed)
    out = Path(out)
    for part, rows in (("train", train), ("test", test)):
        write_jsonl(out / f"{part}.jsonl", (s.to_dict() for s in rows))
        spec = {
            "name": f"{manifest.name}_{shots}shot_seed{seed}_{part}",
            "format": "vr1",
            "path": f"{part}.jsonl",
            "image_root": str(manifest.image_root.resolve()),
            "description": f"{part} of a {shots}-shot split of {manifest.name} (seed {seed}), by vr1 split",
        }
        atomic_write_text(out / f"{part}.yaml", yaml.safe_dump(spec, sort_keys=False))
    atomic_write_text(out / "split.json", json.dumps(report, indent=2) + "\n")
    return report


def per_class_counts(samples: list[Sample]) -> dict[str, int]:
    """Examples (label) or instances (boxes) per class, for reports and tests."""
    counts: dict[str, int] = defaultdict(int)
    for s in samples:
        for c in box_categories(s) if s.answer_type == "boxes" else [label_key(s.answer)]:
            counts[c] += 1
    return dict(counts)
