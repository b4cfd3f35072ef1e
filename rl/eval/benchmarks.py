"""The benchmark registry (name -> class, imported on first use) and `manifest`, which scores any vr1 manifest
(the demo test split, a held-out split of one's own data) by vr1's own answer rules."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

from pipeline.data.images import resolve_image
from pipeline.data.manifest import Manifest, read_manifest
from pipeline.data.prompts import render_prompt
from pipeline.data.reward_info import reward_info
from pipeline.errors import Vr1Error
from pipeline.grading.answers import grade_answer
from pipeline.grading.choices import with_choices
from rl.eval.benchmark import Benchmark, EvalItem, extract

REGISTRY = {
    "mathvista": "rl.eval.math_benchmarks:MathVista",
    "mathverse": "rl.eval.math_benchmarks:MathVerse",
    "mm_math": "rl.eval.math_benchmarks:MMMath",
    "dynamath": "rl.eval.math_benchmarks:DynaMath",
    "rec": "rl.eval.perception_benchmarks:REC",
    "ovd": "rl.eval.perception_benchmarks:OVD",
    "detection": "rl.eval.perception_benchmarks:Detection",
    "classification": "rl.eval.perception_benchmarks:Classification",
    "manifest": "rl.eval.benchmarks:ManifestBenchmark",
}


def get_benchmark(name: str) -> Benchmark:
    if name not in REGISTRY:
        raise Vr1Error(f"benchmark '{name}' unknown; known: {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)()


class ManifestBenchmark(Benchmark):
    """Any vr1 manifest: the question with its options (in the run's prompt template, option `prompt_template`), the
    gold by its answer type's rule (pipeline/grading); box answers by the perception metrics: REC a hit at IoU > 0.5
    (VLM-R1's test_rec_r1.py), OVD and detection their COCO mAP, the box frames as in training (option
    `pred_frame`, else the data set's own)."""

    name = "manifest"
    instruction = ""  # the prompt as vr1's SFT and PTST pose it: the question with its options, nothing added
    prompt_template = "plain"

    def prompt(self, item: EvalItem) -> str:
        return render_prompt(self.prompt_template, item.question)

    def load(self, path: Path, image_root: Path | None = None, limit: int | None = None) -> list[EvalItem]:
        manifest = Manifest.load(path)
        samples = read_manifest(manifest, strict=False).samples
        items = []
        for s in samples[:limit] if limit else samples:
            images = [str(resolve_image(manifest.image_root, rel, "images")) for rel in s.images]
            if s.answer_type in ("bbox", "boxes"):  # frames and image sizes, as the reward sees them
                gold = reward_info(s, lambda rel, root=manifest.image_root: resolve_image(root, rel, "images"))
            else:
                gold = {"ground_truth": s.answer, "answer_type": s.answer_type, "choices": s.choices}
            items.append(EvalItem(s.id, with_choices(s.question, s.choices), images, gold, meta={"source": s.source}))
        return items

    def score(self, item: EvalItem, response: str, **options) -> dict:
        text, source = extract(response)
        if item.gold["answer_type"] in ("bbox", "boxes"):
            from rl.rewards.registry import TASK_METRICS, score

            info = {**item.gold, "max_pixels": options.get("max_pixels") or item.gold.get("max_pixels")}
            if options.get("pred_frame"):
                info["pred_frame"] = options["pred_frame"]
            metrics = score(response, info, {"format": 1.0})
            task = {k: metrics[k] for k in TASK_METRICS[info["answer_type"]]}
            hit = task["acc_at_50"] if info["answer_type"] == "bbox" else task["map"]
            return {"correct": hit, "extracted": text, "source": source, "rule": info["answer_type"], **task}
        if text is None:
            return {"correct": 0.0, "extracted": None, "source": source, "rule": "no <answer> block"}
        verdict = grade_answer(text, item.gold, explain=True)
        return {"correct": float(verdict.accuracy), "extracted": text, "source": source, "rule": verdict.rule}

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[dict]) -> dict:
        out = super().aggregate(items, scores)
        by_source: dict[str, list[float]] = {}
        for item, s in zip(items, scores, strict=True):
            by_source.setdefault(item.meta.get("source", ""), []).append(s["correct"])
        out["by_source"] = {k: round(sum(v) / len(v), 4) for k, v in sorted(by_source.items())}
        for metric in ("iou", "map", "redundancy", "boxes_per_answer"):  # box answers: the task metrics' means
            values = [s[metric] for s in scores if metric in s]
            if values:
                out[f"mean_{metric}"] = round(sum(values) / len(values), 4)
        return out
