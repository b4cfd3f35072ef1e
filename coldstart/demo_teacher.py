"""The demo's teacher: training data for a tiny VLM that answers the cold start's three requests on the demo task.

Vision-R1's teachers (a 72B VLM, DeepSeek-R1) can do the task; a random-init tiny model cannot, so the demo's cold
start would keep nothing. `make demo` therefore first trains a tiny VLM on a split of its own (`teacher`, never the
cold-start, RL or test split) and then serves it through the same generation backend a real teacher uses. This
module writes that teacher's training set: for every teacher-split sample, the exact requests the cold start sends
(rendered by `coldstart.steps` from the same prompt files: image(s) + question + answer for the pseudo-CoT, image(s)
+ question + pseudo-CoT for the description, description + question for the text-only reasoner), each with a target
written from the sample's scene annotation (`meta.attributes`). Each sentence of a target is drawn from a few
phrasings, so the teacher learns a distribution of wordings rather than one string; what the cold start keeps is
what the trained teacher generates, graded by the cold start's own filters.

    python -m coldstart.demo_teacher --manifest data/demo_r1/manifest_teacher.yaml --out data/demo_r1/teacher_sft
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from coldstart.config import PromptsConfig
from coldstart.steps import load_steps
from pipeline.data.manifest import read_manifest
from pipeline.data.schema import Sample
from pipeline.grading.blocks import format_response
from pipeline.io import atomic_write_text, write_jsonl

PSEUDO_COT = (
    ("Caption: a {size} {shade} {colour} {shape} in {where} on a grey background.",),
    (
        "Reasoning: the {shape} is filled with {colour}, and {colour} is option {letter}.",
        "Reasoning: the colour of the {shape} is {colour}, which is option {letter}.",
    ),
)
DESCRIPTION = (
    ("The picture shows one {size} {shape} in {where}.", "There is a single {size} {shape} in {where}."),
    ("It is filled with a {shade} {colour}.", "Its colour is a {shade} {colour}."),
    ("The background is plain light grey.",),
)
THINKING = (
    ("The description says there is a {size} {shape} in {where}.", "There is one {size} {shape} in {where}."),
    ("Its colour is {shade} {colour}.", "Wait, let me check the colour: it is {shade} {colour}."),
    ("{colour} is option {letter}.",),
    ("So the answer is {letter}.",),
)


def _text(parts: tuple[tuple[str, ...], ...], values: dict, rng: random.Random, sep: str) -> str:
    return sep.join(rng.choice(options).format(**values) for options in parts)


def targets(sample: Sample, rng: random.Random) -> dict[str, str]:
    """What the teacher is trained to write for each step of this sample, from its scene annotation."""
    values = {**sample.meta["attributes"], "letter": sample.answer}
    thinking = _text(THINKING, values, rng, "\n")
    return {
        "pseudo_cot": _text(PSEUDO_COT, values, rng, "\n"),
        "description": _text(DESCRIPTION, values, rng, " "),
        "reasoning": format_response(thinking, sample.answer),
    }


def teacher_set(manifest: str | Path, out: str | Path, seed: int = 0, prompts: PromptsConfig | None = None) -> Path:
    """Write `out/teacher.jsonl` (one record per sample and step: the request's text and images, the target as
    `meta.reference_solution`) and `out/manifest.yaml`; returns the manifest path."""
    import yaml

    result = read_manifest(manifest)
    root = result.manifest.image_root.resolve()
    p = prompts or PromptsConfig()
    steps = load_steps({"pseudo_cot": p.pseudo_cot, "description": p.description, "reasoning": p.reasoning})
    rng = random.Random(seed)
    records = []
    for s in result.samples:
        if "attributes" not in s.meta:
            continue  # only the demo's reasoning task carries the annotation the targets are written from
        want = targets(s, rng)
        prior = {"pseudo_cot": {"text": want["pseudo_cot"]}, "description": {"text": want["description"]}}
        for step in steps:
            request = step.build(s, prior, root)
            records.append(
                Sample(
                    id=f"{s.id}:{step.name}",
                    source="demo_teacher",
                    question=request.text,
                    answer=s.answer,
                    answer_type=s.answer_type,
                    images=[str(path.resolve().relative_to(root)) for path in request.images],
                    choices=s.choices,
                    meta={"reference_solution": want[step.name], "step": step.name},
                ).to_dict()
            )
    if not records:
        raise SystemExit(f"{manifest}: no sample carries meta.attributes (make it with `vr1 demo-data --tasks colour`)")
    out = Path(out)
    write_jsonl(out / "teacher.jsonl", records)
    manifest_out = out / "manifest.yaml"
    spec = {
        "name": "demo_teacher",
        "format": "vr1",
        "path": "teacher.jsonl",
        "image_root": str(root),
        "answer_type": "auto",
        "description": f"the demo teacher's training set: the cold start's three requests for {manifest}",
    }
    atomic_write_text(manifest_out, yaml.safe_dump(spec, sort_keys=False))
    return manifest_out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True, help="the teacher split (never the student's data)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    path = teacher_set(args.manifest, args.out, args.seed)
    n = sum(1 for _ in open(Path(args.out) / "teacher.jsonl"))
    print(f"demo teacher set: {n} requests with targets -> {Path(args.out) / 'teacher.jsonl'} (manifest {path})")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
