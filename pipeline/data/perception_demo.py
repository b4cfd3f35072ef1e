"""The perception tasks on the demo data (`vr1 perception-data`): every demo image carries each object's class and
box (`meta.objects`, absolute pixels), so the same images serve REC, OVD, detection, classification and reasoning
grounding, each asked the way its published project asks it. Deterministic per seed; train and test come from the
demo's own train and test splits, so no test image is ever trained on.

- rec: the box of one object whose class appears once in the image ("the red square"), VLM-R1's REC question;
- ovd: every box of the classes present plus up to two absent ones, VLM-R1's OVD question;
- detection: the boxes of one class (absent about a third of the time: "No Objects"), Visual-RFT's question, which
  asks for the 0-1000 grid (so the samples' pred_frame is grid1000);
- classification: the class of the largest object, a fine-grained label ("green triangle");
- grounding: "the largest red shape": one box that needs a comparison to find (Visual-RFT's LISA setting).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from pipeline.data.detection_sources import DETECTION_TEMPLATE, OVD_TEMPLATE, REC_TEMPLATE

# (the templates hold literal JSON braces: slots are filled with str.replace, as detection_sources fills them)
from pipeline.data.manifest import Manifest, read_manifest
from pipeline.data.schema import Sample
from pipeline.errors import Vr1Error
from pipeline.grading.boxes import dumps_boxes
from pipeline.io import atomic_write_text, write_jsonl

TASKS = ("rec", "ovd", "detection", "classification", "grounding")
CLASSIFY_QUESTION = "This is an image containing several shapes. What are the colour and the shape of the largest one?"


def _area(box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _rec(s: Sample, objects: list[dict], rng: random.Random) -> Sample | None:
    counts: dict[str, int] = {}
    for o in objects:
        counts[o["label"]] = counts.get(o["label"], 0) + 1
    unique = [o for o in objects if counts[o["label"]] == 1]
    if not unique:
        return None
    o = rng.choice(unique)
    question = REC_TEMPLATE.replace("{expression}", f"the {o['label']}")
    return _sample(s, "rec", question, dumps_boxes(o["bbox_2d"]), "bbox")


def _ovd(s: Sample, objects: list[dict], vocabulary: list[str], rng: random.Random) -> Sample:
    present = sorted({o["label"] for o in objects})
    absent = [c for c in vocabulary if c not in present]
    asked = present + rng.sample(absent, min(2, len(absent)))
    rng.shuffle(asked)  # the order must not give away which classes are there
    boxes = [{"bbox_2d": o["bbox_2d"], "label": o["label"]} for o in objects]
    question = OVD_TEMPLATE.replace("{categories}", ", ".join(asked))
    return _sample(s, "ovd", question, dumps_boxes(boxes), "boxes")


def _detection(s: Sample, objects: list[dict], vocabulary: list[str], rng: random.Random) -> Sample:
    present = sorted({o["label"] for o in objects})
    absent = [c for c in vocabulary if c not in present]
    category = rng.choice(absent) if absent and rng.random() < 1 / 3 else rng.choice(present)
    boxes = [{"bbox_2d": o["bbox_2d"], "label": category} for o in objects if o["label"] == category]
    question = DETECTION_TEMPLATE.replace("{category}", category)
    return _sample(s, "detection", question, dumps_boxes(boxes), "boxes", pred_frame="grid1000")


def _classification(s: Sample, objects: list[dict]) -> Sample | None:
    ranked = sorted(objects, key=lambda o: -_area(o["bbox_2d"]))
    if len(ranked) > 1 and _area(ranked[0]["bbox_2d"]) == _area(ranked[1]["bbox_2d"]):
        return None  # no single largest object: no right answer
    return _sample(s, "classification", CLASSIFY_QUESTION, ranked[0]["label"], "label")


def _grounding(s: Sample, objects: list[dict], rng: random.Random) -> Sample | None:
    by_colour: dict[str, list[dict]] = {}
    for o in objects:
        by_colour.setdefault(o["label"].split()[0], []).append(o)
    # a colour with several shapes, so finding the box takes a comparison, and one clearly largest among them
    candidates = []
    for colour, group in sorted(by_colour.items()):
        ranked = sorted(group, key=lambda o: -_area(o["bbox_2d"]))
        if len(ranked) > 1 and _area(ranked[0]["bbox_2d"]) > _area(ranked[1]["bbox_2d"]):
            candidates.append((colour, ranked[0]))
    if not candidates:
        return None
    colour, o = rng.choice(candidates)
    return _sample(s, "grounding", f"the largest {colour} shape", dumps_boxes(o["bbox_2d"]), "bbox")


def _sample(s: Sample, task: str, question: str, answer: str, atype: str, pred_frame: str | None = None) -> Sample:
    meta = {"task": task, "from": s.id, "coord_frame": "abs_original", "image_sizes": s.meta.get("image_sizes")}
    if pred_frame:
        meta["pred_frame"] = pred_frame
    return Sample(
        id=f"{task}-{s.id}",
        source=f"demo_{task}",
        question=question,
        answer=answer,
        answer_type=atype,
        images=list(s.images[:1]),
        meta=meta,
    )


def perception_samples(samples: list[Sample], seed: int) -> dict[str, list[Sample]]:
    """Each task's samples from demo samples with one image and its objects."""
    usable = [s for s in samples if len(s.images) == 1 and (s.meta.get("objects") or [None])[0]]
    vocabulary = sorted({o["label"] for s in usable for o in s.meta["objects"][0]})
    out: dict[str, list[Sample]] = {t: [] for t in TASKS}
    for s in usable:
        objects = s.meta["objects"][0]
        rng = random.Random(f"{seed}:{s.id}")
        made = {
            "rec": _rec(s, objects, rng),
            "ovd": _ovd(s, objects, vocabulary, rng),
            "detection": _detection(s, objects, vocabulary, rng),
            "classification": _classification(s, objects),
            "grounding": _grounding(s, objects, rng),
        }
        for task, sample in made.items():
            if sample is not None:
                out[task].append(sample)
    return out


def write_perception_demo(demo_dir: str | Path, out: str | Path, seed: int = 0) -> dict[str, dict[str, int]]:
    """`out/<task>_<split>.jsonl` and `out/manifest_<task>_<split>.yaml` for every task, from the demo set's train
    and test manifests in `demo_dir`; returns the sample counts."""
    import yaml

    demo_dir, out = Path(demo_dir), Path(out)
    counts: dict[str, dict[str, int]] = {t: {} for t in TASKS}
    for split in ("train", "test"):
        manifest_path = demo_dir / f"manifest_{split}.yaml"
        if not manifest_path.is_file():
            raise Vr1Error(f"{manifest_path} not found: run `make demo-data` first")
        manifest = Manifest.load(manifest_path)
        by_task = perception_samples(read_manifest(manifest).samples, seed)
        for task, samples in by_task.items():
            write_jsonl(out / f"{task}_{split}.jsonl", (s.to_dict() for s in samples))
            spec = {
                "name": f"demo_{task}_{split}",
                "format": "vr1",
                "path": f"{task}_{split}.jsonl",
                "image_root": os.path.relpath(manifest.image_root, out.resolve()),
                "answer_type": samples[0].answer_type if samples else "auto",
                "description": f"vr1 demo perception task '{task}' ({split}), from {manifest.name}, seed {seed}",
            }
            atomic_write_text(out / f"manifest_{task}_{split}.yaml", yaml.safe_dump(spec, sort_keys=False))
            counts[task][split] = len(samples)
    return counts
