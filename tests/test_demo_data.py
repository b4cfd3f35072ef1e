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


def test_colour_task_answer_is_the_shapes_hue_family_and_splits_are_disjoint(tmp_path):
    import colorsys

    from PIL import Image

    from pipeline.data.demo_data import HUE_JITTER, HUES

    generate_demo_data(tmp_path, seed=5, tasks=("colour",), splits={"teacher": 20, "cold": 10, "rl": 20, "test": 20})
    seen_ids, seen_images, letters = set(), set(), set()
    for split in ("teacher", "cold", "rl", "test"):
        samples = read_manifest(Manifest.load(tmp_path / f"manifest_{split}.yaml")).samples
        assert len(samples) == {"teacher": 20, "cold": 10, "rl": 20, "test": 20}[split]
        for s in samples:
            assert s.id not in seen_ids and (tmp_path / s.images[0]).read_bytes() not in seen_images
            seen_ids.add(s.id)
            seen_images.add((tmp_path / s.images[0]).read_bytes())
            m = SOLUTION.match(s.meta["reference_solution"])
            assert m and m.group(1) == s.answer and s.choices == list(HUES)
            colour = s.choices[ord(s.answer) - ord("A")]
            assert s.meta["attributes"]["colour"] == colour and s.meta["image_sizes"] == [[56, 56]]
            x1, y1, x2, y2 = s.meta["objects"][0][0]["bbox_2d"]
            # the pixel at the centre of the square's box (inside every shape) has the hue of the gold answer
            r, g, b = Image.open(tmp_path / s.images[0]).convert("RGB").getpixel(((x1 + x2) // 2, (y1 + y2) // 2 + 2))
            hue = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)[0] * 360
            off = min(abs(hue - HUES[colour]), 360 - abs(hue - HUES[colour]))
            assert off <= HUE_JITTER + 3, (s.id, colour, hue)
            letters.add(s.answer)
    assert letters == set("ABCDEF")
