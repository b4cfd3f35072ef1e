"""Synthetic demo data: drawn images whose answers are known exactly.

Five tasks: counting, colour/shape (multiple choice), bar-chart arithmetic, geometry (triangle angles, right-
triangle hypotenuse as an exact expression) and a two-image comparison. Each sample carries its scene annotation
(every object's class and box, per image, in absolute pixels) for the perception tasks, and a step-by-step
reference solution in `<think>…</think><answer>…</answer>` form. Sample i depends only on (seed, split, i).
"""

from __future__ import annotations

import colorsys
import math
import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from pipeline.data.schema import Sample
from pipeline.grading.blocks import format_response
from pipeline.grading.choices import format_choices
from pipeline.io import atomic_write_text, write_jsonl
from pipeline.progress import progress

SIZE = 224
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 30),
    "purple": (140, 60, 170),
    "orange": (240, 140, 20),
}
SHAPES = ("circle", "square", "triangle")
TASKS = ("counting", "colour_shape", "bar_chart", "geometry", "compare")
# The task of `make demo`'s reasoning run (see README, "the demo's design"): one shape whose colour is drawn from a
# hue family with jittered hue, saturation and brightness, six options in a fixed order. Colour is what a tiny
# vision tower can learn; the jitter makes the hue boundaries something learnt from many labelled images, not a
# handful, which is what separates a small cold-start set from a large answers-only RL set.
HUES = {"red": 0, "orange": 30, "yellow": 58, "green": 120, "blue": 220, "purple": 280}
HUE_JITTER = 14
COLOUR_SIZE = 56
COLOUR_SIDE = (24, 40)
REASONING_TASKS = ("colour",)
_FONT_CACHE: dict[int, ImageFont.ImageFont] = {}


def _font(size: int = 14):
    if size not in _FONT_CACHE:
        _FONT_CACHE[size] = ImageFont.load_default(size=size)
    return _FONT_CACHE[size]


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    im = Image.new("RGB", (SIZE, SIZE), (250, 250, 245))
    return im, ImageDraw.Draw(im)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, colour: str, box: list[int]) -> None:
    _draw_fill(draw, shape, COLOURS[colour], box)


def _draw_fill(draw: ImageDraw.ImageDraw, shape: str, fill: tuple[int, int, int], box: list[int]) -> None:
    if shape == "circle":
        draw.ellipse(box, fill=fill, outline=(0, 0, 0))
    elif shape == "square":
        draw.rectangle(box, fill=fill, outline=(0, 0, 0))
    else:
        x1, y1, x2, y2 = box
        draw.polygon([((x1 + x2) // 2, y1), (x2, y2), (x1, y2)], fill=fill, outline=(0, 0, 0))


def _scatter(rng: random.Random, specs: list[tuple[str, str]]) -> list[dict]:
    """Place non-overlapping objects; returns [{label, bbox_2d}] in drawing order."""
    placed: list[list[int]] = []
    objects = []
    for colour, shape in specs:
        for _ in range(200):
            s = rng.randint(20, 32)
            x, y = rng.randint(4, SIZE - s - 4), rng.randint(4, SIZE - s - 4)
            box = [x, y, x + s, y + s]
            if all(box[2] + 3 < b[0] or b[2] + 3 < box[0] or box[3] + 3 < b[1] or b[3] + 3 < box[1] for b in placed):
                placed.append(box)
                objects.append({"label": f"{colour} {shape}", "bbox_2d": box})
                break
    return objects


def _scene_image(objects: list[dict]) -> Image.Image:
    im, draw = _canvas()
    for obj in objects:
        colour, shape = obj["label"].split()
        _draw_shape(draw, shape, colour, obj["bbox_2d"])
    return im


def _solution(steps: list[str], answer: str) -> str:
    return format_response("\n".join(steps), answer)


# ---------------------------------------------------------------- tasks: each returns (images, fields)


def task_counting(rng: random.Random):
    colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
    n = rng.randint(1, 7)
    others = [(c, s) for c in COLOURS for s in SHAPES if (c, s) != (colour, shape)]
    specs = [(colour, shape)] * n + [rng.choice(others) for _ in range(rng.randint(1, 6))]
    rng.shuffle(specs)
    objects = _scatter(rng, specs)
    n = sum(o["label"] == f"{colour} {shape}" for o in objects)
    target = [o for o in objects if o["label"] == f"{colour} {shape}"]
    steps = [f"I need to count the {colour} {shape}s in the image."]
    for i, o in enumerate(target, 1):
        x1, y1, x2, y2 = o["bbox_2d"]
        steps.append(f"There is a {colour} {shape} at about ({(x1 + x2) // 2}, {(y1 + y2) // 2}); that makes {i}.")
    steps.append(f"The other {len(objects) - n} objects have a different colour or shape, so the count is {n}.")
    q = f"How many {colour} {shape}s are in the image? Answer with a number."
    return [_scene_image(objects)], dict(
        question=q, answer=str(n), answer_type="number", solution=_solution(steps, str(n)), objects=[objects]
    )


def task_colour_shape(rng: random.Random):
    colours = rng.sample(list(COLOURS), 3)
    shapes = rng.sample(SHAPES, 3)
    objects = _scatter(rng, list(zip(colours, shapes, strict=True)))
    target = rng.choice(objects)
    colour, shape = target["label"].split()
    options = rng.sample([c for c in COLOURS if c != colour], 3) + [colour]
    rng.shuffle(options)
    letter = chr(ord("A") + options.index(colour))
    q = f"What colour is the {shape}?\n{format_choices(options)}\nAnswer with the option's letter."
    steps = [
        f"The image shows {len(objects)} shapes: " + ", ".join(o["label"] for o in objects) + ".",
        f"The {shape} is {colour}.",
        f"Option {letter} is {colour}.",
    ]
    return [_scene_image(objects)], dict(
        question=q,
        answer=letter,
        answer_type="choice",
        choices=options,
        solution=_solution(steps, letter),
        objects=[objects],
    )


def task_bar_chart(rng: random.Random):
    labels = list("ABCDE")[: rng.randint(3, 5)]
    values = [rng.randint(1, 9) for _ in labels]
    im, draw = _canvas()
    width = (SIZE - 20) // len(labels)
    unit = (SIZE - 60) / 10
    objects = []
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        x1, x2 = 10 + i * width + 6, 10 + (i + 1) * width - 6
        y2, y1 = SIZE - 24, SIZE - 24 - int(v * unit)
        draw.rectangle([x1, y1, x2, y2], fill=(70, 110, 200), outline=(0, 0, 0))
        draw.text(((x1 + x2) // 2, y1 - 3), str(v), fill=(0, 0, 0), anchor="mb", font=_font())
        draw.text(((x1 + x2) // 2, SIZE - 20), lab, fill=(0, 0, 0), anchor="mt", font=_font())
        objects.append({"label": f"bar {lab}", "bbox_2d": [x1, y1, x2, y2]})
    a, b = rng.sample(range(len(labels)), 2)
    if rng.random() < 0.5:
        ans = values[a] + values[b]
        q = f"In the bar chart, what is the sum of the values of bar {labels[a]} and bar {labels[b]}?"
        last = f"{values[a]} + {values[b]} = {ans}."
    else:
        ans = values[a] - values[b]
        q = f"In the bar chart, what is the value of bar {labels[a]} minus the value of bar {labels[b]}?"
        last = f"{values[a]} - {values[b]} = {ans}."
    steps = [f"Bar {labels[a]} is labelled {values[a]}.", f"Bar {labels[b]} is labelled {values[b]}.", last]
    return [im], dict(
        question=q, answer=str(ans), answer_type="number", solution=_solution(steps, str(ans)), objects=[objects]
    )


def task_geometry(rng: random.Random):
    im, draw = _canvas()
    if rng.random() < 0.5:  # third angle of a triangle
        a1, a2 = rng.randint(30, 80), rng.randint(30, 80)
        pts = [(30, 190), (194, 190), (rng.randint(70, 154), 40)]
        draw.polygon(pts, outline=(0, 0, 0), width=2)
        draw.text((38, 172), f"{a1}°", fill=(200, 0, 0), font=_font())
        draw.text((158, 172), f"{a2}°", fill=(200, 0, 0), font=_font())
        draw.text((pts[2][0] - 4, 50), "x", fill=(0, 0, 200), font=_font())
        ans = 180 - a1 - a2
        q = "The triangle's two marked angles are given in degrees. What is the angle x in degrees?"
        steps = [
            f"The two marked angles are {a1}° and {a2}°.",
            "The angles of a triangle add up to 180°.",
            f"x = 180 - {a1} - {a2} = {ans}.",
        ]
        return [im], dict(
            question=q,
            answer=str(ans),
            answer_type="number",
            solution=_solution(steps, str(ans)),
            objects=[[{"label": "triangle", "bbox_2d": [30, 40, 194, 190]}]],
        )
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    x0, y0 = 40, 190
    draw.line([(x0, y0), (x0 + 140, y0)], fill=(0, 0, 0), width=2)
    draw.line([(x0, y0), (x0, y0 - 140)], fill=(0, 0, 0), width=2)
    draw.line([(x0 + 140, y0), (x0, y0 - 140)], fill=(0, 0, 0), width=2)
    draw.rectangle([x0, y0 - 12, x0 + 12, y0], outline=(0, 0, 0))
    draw.text((x0 + 70, y0 + 4), str(a), fill=(200, 0, 0), anchor="mt", font=_font())
    draw.text((x0 - 6, y0 - 70), str(b), fill=(200, 0, 0), anchor="rm", font=_font())
    sq = a * a + b * b
    root = math.isqrt(sq)
    ans = str(root) if root * root == sq else f"\\sqrt{{{sq}}}"
    q = "The two legs of the right triangle are labelled with their lengths. What is the length of the hypotenuse?"
    steps = [
        f"The legs are {a} and {b}.",
        f"By Pythagoras the hypotenuse is sqrt({a}^2 + {b}^2) = sqrt({sq}).",
        f"So the length is {ans}.",
    ]
    return [im], dict(
        question=q,
        answer=ans,
        answer_type="expression",
        solution=_solution(steps, ans),
        objects=[[{"label": "triangle", "bbox_2d": [x0, y0 - 140, x0 + 140, y0]}]],
    )


def task_compare(rng: random.Random):
    shape = rng.choice(SHAPES)
    colour = rng.choice(list(COLOURS))
    n1, n2 = rng.sample(range(1, 8), 2)
    scenes = []
    for n in (n1, n2):
        specs = [(colour, shape)] * n + [
            (rng.choice(list(COLOURS)), rng.choice([s for s in SHAPES if s != shape])) for _ in range(rng.randint(0, 3))
        ]
        rng.shuffle(specs)
        scenes.append(_scatter(rng, specs))
    c1, c2 = (sum(o["label"] == f"{colour} {shape}" for o in s) for s in scenes)
    if c1 == c2:  # placement failed for one object; keep the question answerable
        scenes[1] = scenes[1] + _scatter(rng, [(colour, shape)])
        c2 = sum(o["label"] == f"{colour} {shape}" for o in scenes[1])
    letter = "A" if c1 > c2 else "B"
    options = ["the first image", "the second image"]
    q = f"Which image contains more {colour} {shape}s?\n{format_choices(options)}\nAnswer with the option's letter."
    steps = [
        f"The first image has {c1} {colour} {shape}s.",
        f"The second image has {c2} {colour} {shape}s.",
        f"{max(c1, c2)} > {min(c1, c2)}, so it is {options[0 if letter == 'A' else 1]}.",
    ]
    return [_scene_image(s) for s in scenes], dict(
        question=q,
        answer=letter,
        answer_type="choice",
        choices=options,
        solution=_solution(steps, letter),
        objects=scenes,
    )


def _where(cx: int, cy: int, size: int) -> str:
    col = ("left", "centre", "right")[min(2, 3 * cx // size)]
    row = ("top", "middle", "bottom")[min(2, 3 * cy // size)]
    return "the centre" if (row, col) == ("middle", "centre") else f"the {row} {col}"


def task_colour(rng: random.Random):
    colour = rng.choice(list(HUES))
    hue = (HUES[colour] + rng.uniform(-HUE_JITTER, HUE_JITTER)) % 360
    sat, val = rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0)
    fill = tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue / 360, sat, val))
    grey = rng.randint(215, 250)
    im = Image.new("RGB", (COLOUR_SIZE, COLOUR_SIZE), (grey, grey, grey))
    draw = ImageDraw.Draw(im)
    shape = rng.choice(SHAPES)
    side = rng.randint(COLOUR_SIDE[0], COLOUR_SIDE[1])
    x, y = rng.randint(2, COLOUR_SIZE - side - 2), rng.randint(2, COLOUR_SIZE - side - 2)
    box = [x, y, x + side, y + side]
    _draw_fill(draw, shape, fill, box)
    options = list(HUES)
    letter = chr(ord("A") + options.index(colour))
    size_word = "small" if side < 29 else "medium" if side < 35 else "large"
    shade = "pale" if sat < 0.7 else "deep" if val < 0.7 else "bright"
    q = f"What colour is the {shape}?\n{format_choices(options)}\nAnswer with the option's letter."
    where = _where(x + side // 2, y + side // 2, COLOUR_SIZE)
    steps = [
        f"A {size_word} {shape} in {where}.",
        f"It is {shade} {colour}, option {letter}.",
        f"So the answer is {letter}.",
    ]
    return [im], dict(
        question=q,
        answer=letter,
        answer_type="choice",
        choices=options,
        solution=_solution(steps, letter),
        objects=[[{"label": f"{colour} {shape}", "bbox_2d": box}]],
        attributes={"colour": colour, "shape": shape, "size": size_word, "shade": shade, "where": where},
    )


TASK_FUNCS: dict[str, Callable] = {
    "counting": task_counting,
    "colour_shape": task_colour_shape,
    "bar_chart": task_bar_chart,
    "geometry": task_geometry,
    "compare": task_compare,
    "colour": task_colour,
}


def make_sample(seed: int, split: str, index: int, out_dir: Path, tasks: tuple[str, ...] = TASKS) -> Sample:
    rng = random.Random(f"{seed}:{split}:{index}")
    task = tasks[index % len(tasks)]
    images, f = TASK_FUNCS[task](rng)
    sid = f"demo-{split}-{index:06d}"
    rels = []
    for k, im in enumerate(images):
        rel = f"images/{split}/{sid}-{k}.png"
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, format="PNG", optimize=False)
        rels.append(rel)
    meta = {
        "task": task,
        "split": split,
        "reference_solution": f["solution"],
        "coord_frame": "abs_original",
        "image_sizes": [list(im.size) for im in images],
        "objects": f["objects"],
    }
    if "attributes" in f:  # what the picture shows, in words (the demo teacher's training targets are built from it)
        meta["attributes"] = f["attributes"]
    return Sample(
        id=sid,
        source="demo",
        question=f["question"],
        answer=f["answer"],
        answer_type=f["answer_type"],
        images=rels,
        choices=f.get("choices"),
        meta=meta,
    )


def generate_demo_data(
    out_dir: str | Path,
    n_train: int = 2000,
    n_test: int = 200,
    seed: int = 0,
    tasks: tuple[str, ...] = TASKS,
    splits: dict[str, int] | None = None,
) -> dict[str, Path]:
    """Write `<out>/{split}.jsonl`, the PNGs under `<out>/images/` and a manifest per split: train and test, or
    the named `splits` ({name: size}). Splits never share an item: each draws from its own (seed, split) stream."""
    import yaml

    out_dir = Path(out_dir)
    written = {}
    for split, n in (splits or {"train": n_train, "test": n_test}).items():
        samples = [make_sample(seed, split, i, out_dir, tasks) for i in progress(range(n), desc=f"demo {split}")]
        written[split] = out_dir / f"{split}.jsonl"
        write_jsonl(written[split], (s.to_dict() for s in samples))
        manifest = {
            "name": f"demo_{split}",
            "format": "vr1",
            "path": f"{split}.jsonl",
            "image_root": ".",
            "answer_type": "auto",
            "license": "CC0-1.0 (generated by vr1)",
            "description": f"vr1 synthetic demo set, split {split}, seed {seed}, tasks {list(tasks)}",
        }
        atomic_write_text(out_dir / f"manifest_{split}.yaml", yaml.safe_dump(manifest, sort_keys=False))
    return written
