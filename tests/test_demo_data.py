"""The synthetic demo set: deterministic, answers verifiable from the scene, solutions in the exact format."""

import json
import re

from pipeline.data.demo_data import TASKS, generate_demo_data
from pipeline.data.manifest import Manifest, read_manifest
from pipeline.models.tiny import folder_digest

SOLUTION = re.compile(r"^<think>\n.+\n</think>\n<answer>([^<]+)</answer>$", re.S)


def test_deterministic_per_seed(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 7), (b, 7), (c, 8)):
        generate_demo_data(out, n_train=15, n_test=5, seed=seed)
    assert folder_digest(a) == folder_digest(b)
    assert (a / "train.jsonl").read_bytes() != (c / "train.jsonl").read_bytes()


def test_answers_follow_from_the_scene(demo_dir):
    samples = read_manifest(Manifest.load(demo_dir / "manifest_train.yaml")).samples
    seen = set()
    for s in samples:
        task = s.meta["task"]
        seen.add(task)
        m = SOLUTION.match(s.meta["reference_solution"])
        assert m and m.group(1) == s.answer, s.id
        objects = s.meta["objects"]
        assert len(objects) == len(s.images) == len(s.meta["image_sizes"])
        for scene in objects:
            for o in scene:
                x1, y1, x2, y2 = o["bbox_2d"]
                assert 0 <= x1 < x2 <= 224 and 0 <= y1 < y2 <= 224
        if task == "counting":
            target = re.search(r"How many (\w+ \w+)s are", s.question).group(1)
            assert int(s.answer) == sum(o["label"] == target for o in objects[0])
        elif task == "compare":
            target = re.search(r"more (\w+ \w+)s\?", s.question).group(1)
            n1, n2 = (sum(o["label"] == target for o in scene) for scene in objects)
            assert n1 != n2 and s.answer == ("A" if n1 > n2 else "B")
        elif task == "colour_shape":
            shape = re.search(r"What colour is the (\w+)\?", s.question).group(1)
            colour = next(o["label"].split()[0] for o in objects[0] if o["label"].endswith(shape))
            assert s.choices[ord(s.answer) - ord("A")] == colour
        elif task == "bar_chart":
            values = {}
            for label, value in re.findall(r"Bar (\w) is labelled (\d+)", s.meta["reference_solution"]):
                values[label] = int(value)
            a, b = re.findall(r"bar ([A-E])\b", s.question)
            expected = values[a] + values[b] if "sum" in s.question else values[a] - values[b]
            assert int(s.answer) == expected
        elif task == "geometry" and s.answer_type == "number":
            a1, a2 = map(int, re.findall(r"(\d+)°", s.meta["reference_solution"])[:2])
            assert int(s.answer) == 180 - a1 - a2
    assert seen == set(TASKS)


def test_files_are_valid_jsonl_and_manifests(demo_dir):
    lines = (demo_dir / "test.jsonl").read_text().splitlines()
    assert len(lines) == 10 and all(json.loads(x)["source"] == "demo" for x in lines)
    assert read_manifest(Manifest.load(demo_dir / "manifest_test.yaml")).summary().startswith("demo_test: 10 samples")
