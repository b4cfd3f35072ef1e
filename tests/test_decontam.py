"""Decontamination (rl/eval/decontam.py): near-duplicate images by pHash, near-duplicate questions by rapidfuzz, the
indexes' exact recall against brute force, the cleaned manifest, and `vr1 decontam`."""

import argparse
import json
import random
from pathlib import Path

import pytest
import yaml

pytest.importorskip("imagehash")

from PIL import Image, ImageDraw  # noqa: E402

from pipeline.data.manifest import read_manifest  # noqa: E402
from pipeline.data.schema import Sample  # noqa: E402
from rl.eval import decontam  # noqa: E402
from rl.eval.decontam import EvalRecord  # noqa: E402

# Long, specific questions (text evidence needs >= 40 normalised characters and no template).
Q_CIRCLE = "In the figure, the circle with centre O has radius 7 and chord AB has length 10. What is the area of OAB?"
Q_BARS = "The bar chart shows monthly rainfall for five towns. Which town had the second highest rainfall in June?"
Q_TRIANGLE = (
    "In the figure, triangle ABC has AB = 5 and BC = 12 and angle B is a right angle. What is the length of AC?"
)
Q_TRIANGLE_REWORDED = (
    "In the figure, triangle ABC has AB = 5 and BC = 12 and angle B is a right angle. Find the length of AC."
)


def draw(kind: str, seed: int, size=(320, 240)) -> Image.Image:
    """A drawn picture: shapes and text, different enough per kind/seed to hash apart."""
    rng = random.Random(f"{kind}:{seed}")
    im = Image.new("RGB", size, (250, 250, 245))
    d = ImageDraw.Draw(im)
    w, h = size
    if kind == "circle":
        d.ellipse([40, 20, 260, 220], outline=(0, 0, 0), width=4)
        d.polygon([(150, 120), (60, 90), (230, 70)], fill=(200, 60, 60))
        d.text((150, 125), "O", fill=(0, 0, 200))
    elif kind == "bars":
        for i in range(5):
            top = rng.randint(30, 200)
            d.rectangle([20 + i * 60, top, 60 + i * 60, h - 10], fill=(40 + 40 * i, 90, 200 - 30 * i))
    elif kind == "triangle":
        d.polygon([(30, 220), (290, 220), (30, 30)], outline=(0, 0, 0), width=5)
        d.rectangle([30, 200, 50, 220], outline=(0, 0, 0), width=2)
        d.text((150, 225), "12", fill=(200, 0, 0))
    else:  # "scene": random blobs
        for _ in range(rng.randint(4, 7)):
            x, y, r = rng.randint(0, w), rng.randint(0, h), rng.randint(15, 60)
            colour = tuple(rng.randint(0, 255) for _ in range(3))
            (d.ellipse if rng.random() < 0.5 else d.rectangle)([x - r, y - r, x + r, y + r], fill=colour)
        d.text((10, 10), f"scene {seed}", fill=(0, 0, 0))
    return im


def sample(sid: str, question: str, images: list[str], answer="3") -> dict:
    return Sample(sid, "fixture", question, answer, "number", images, None, {}).to_dict()


def write_set(root: Path, name: str, rows: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = root / f"manifest_{name}.yaml"
    manifest.write_text(yaml.safe_dump({"name": name, "format": "vr1", "path": f"{name}.jsonl", "image_root": "."}))
    return manifest


@pytest.fixture
def sets(tmp_path):
    """An eval set of 4 items and a training set with (a) a JPEG re-encode of an eval image, (b) a resized copy,
    (c) a lightly reworded question over a different image, (e) a re-encode with the same question, and unrelated
    items -- one of them asking the same short generic question as an eval item over another picture."""
    ev, tr = tmp_path / "eval", tmp_path / "train"
    (ev / "img").mkdir(parents=True)
    (tr / "img").mkdir(parents=True)
    draw("circle", 0).save(ev / "img/e1.png")
    draw("bars", 0).save(ev / "img/e2.png")
    draw("triangle", 0).save(ev / "img/e3.png")
    draw("scene", 100).save(ev / "img/e4.png")
    eval_manifest = write_set(
        ev,
        "bench",
        [
            sample("e1", Q_CIRCLE, ["img/e1.png"]),
            sample("e2", Q_BARS, ["img/e2.png"]),
            sample("e3", Q_TRIANGLE, ["img/e3.png"]),
            sample("e4", "Find x.", ["img/e4.png"]),
        ],
    )
    Image.open(ev / "img/e1.png").save(tr / "img/a_jpeg.jpg", quality=60)  # (a)
    Image.open(ev / "img/e2.png").resize((160, 120), Image.BICUBIC).save(tr / "img/b_small.png")  # (b)
    draw("scene", 1).save(tr / "img/c_other.png")  # (c)'s own picture
    Image.open(ev / "img/e1.png").resize((400, 300)).save(tr / "img/e_both.jpg", quality=85)  # (e)
    for k in range(2, 6):
        draw("scene", k).save(tr / f"img/u{k}.png")
    train_manifest = write_set(
        tr,
        "train",
        [
            sample(
                "a",
                "How many towns in the table have a population larger than ten thousand people?",
                ["img/a_jpeg.jpg"],
            ),
            sample(
                "b",
                "What is the sum of the two largest numbers written below the drawing on the left?",
                ["img/b_small.png"],
            ),
            sample("c", Q_TRIANGLE_REWORDED, ["img/c_other.png"]),
            sample("e", Q_CIRCLE, ["img/e_both.jpg"]),
            sample(
                "u2", "Count the blue objects that are standing to the left of the largest red cube.", ["img/u2.png"]
            ),
            sample("u3", "Find x.", ["img/u3.png"]),  # generic: too short to be evidence
            sample("u4", "Which shape in the picture has the largest area, measured in square units?", ["img/u4.png"]),
            sample(
                "u5",
                "What fraction of the circles in the image are shaded with a colour other than grey?",
                ["img/u5.png", "img/u4.png"],
            ),
        ],
    )
    return train_manifest, eval_manifest


EXPECTED = {("a", "e1"): "image", ("b", "e2"): "image", ("c", "e3"): "text", ("e", "e1"): "both"}


def test_find_overlaps_reports_exactly_the_near_duplicates(sets):
    train_manifest, eval_manifest = sets
    train = read_manifest(train_manifest)
    items = [(s, train.manifest.image_root) for s in train.samples]
    evals = decontam.records_from_manifest(eval_manifest)
    assert [(r.id, r.benchmark) for r in evals] == [("e1", "bench"), ("e2", "bench"), ("e3", "bench"), ("e4", "bench")]
    assert all(Path(p).is_absolute() and Path(p).is_file() for r in evals for p in r.images)

    pairs = decontam.find_overlaps(items, evals)
    assert {(p["train_id"], p["eval_id"]): p["why"] for p in pairs} == EXPECTED
    by = {p["train_id"]: p for p in pairs}
    for p in pairs:
        assert set(p) == {
            "train_id",
            "train_source",
            "train_index",
            "eval_id",
            "eval_benchmark",
            "image_distance",
            "text_score",
            "why",
        }
        assert p["eval_benchmark"] == "bench" and p["train_source"] == "fixture"
        assert items[p["train_index"]][0].id == p["train_id"]
    for tid in ("a", "b"):  # image only: re-encode, resize
        assert 0 <= by[tid]["image_distance"] <= 6 and by[tid]["text_score"] is None
    assert by["c"]["image_distance"] is None and 90 <= by["c"]["text_score"] < 100
    assert by["e"]["image_distance"] <= 6 and by["e"]["text_score"] == 100.0

    # thresholds are the knobs they say: distance 0 keeps only exact-hash pairs, a score above (c)'s drops it
    strict = decontam.find_overlaps(items, evals, image_distance=0, text_score=by["c"]["text_score"] + 1)
    assert {(p["train_id"], p["why"]) for p in strict} <= {("a", "image"), ("b", "image"), ("e", "both")}
    assert ("c", "text") not in {(p["train_id"], p["why"]) for p in strict}


def test_generic_and_templated_questions_are_not_text_evidence(tmp_path):
    imgs = []
    for k in range(6):
        draw("scene", 200 + k).save(tmp_path / f"{k}.png")
        imgs.append([str(tmp_path / f"{k}.png")])
    template = (
        "According to the question shown in the image, please directly answer the question and provide the option."
    )
    evals = [EvalRecord(f"e{k}", template, imgs[k], "mv") for k in range(3)]  # a template on the eval side
    evals.append(EvalRecord("e3", "What is the value of x?", imgs[3], "mv"))  # too short
    train = [
        EvalRecord("t0", template, imgs[4], "train"),
        EvalRecord("t1", "What is the value of y?", imgs[5], "train"),
    ]
    assert decontam.find_overlaps(train, evals) == []
    loose = decontam.find_overlaps(train, evals, min_text_chars=0, template_count=0)
    assert {(p["train_id"], p["eval_id"], p["why"]) for p in loose} == {
        ("t0", "e0", "text"),
        ("t0", "e1", "text"),
        ("t0", "e2", "text"),
        ("t1", "e3", "text"),
    }


def test_image_index_finds_every_pair_brute_force_finds():
    import numpy as np

    rng = np.random.default_rng(0)
    evals = rng.integers(0, 2**63, size=3000, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    evals[:40] = 0  # a crowded bucket (blank images hash alike)
    # train: perturbed copies of eval hashes (1..16 bits flipped) and random ones
    base = evals[rng.integers(0, len(evals), size=1500)]
    flips = np.zeros(len(base), dtype=np.uint64)
    for i, k in enumerate(rng.integers(0, 17, size=len(base))):
        for b in rng.choice(64, size=k, replace=False):
            flips[i] |= np.uint64(1) << np.uint64(b)
    train = np.concatenate([base ^ flips, rng.integers(0, 2**63, size=1500, dtype=np.int64).astype(np.uint64)])
    dist = decontam._popcount((train[:, None] ^ evals[None, :]).ravel()).reshape(len(train), len(evals))
    for d in (0, 3, 6, 9, 12):
        ti, ei, dd = decontam.image_pairs(train, evals, d, block=700, max_candidates=5000)
        want = set(zip(*np.nonzero(dist <= d), strict=True))
        assert set(zip(ti.tolist(), ei.tolist(), strict=True)) == {(int(a), int(b)) for a, b in want}
        assert (dd == dist[ti, ei]).all()


def test_text_index_finds_every_pair_brute_force_finds():
    from rapidfuzz import fuzz, process

    rng = random.Random(0)
    words = "the triangle circle angle length area value find what is of in a and figure side radius x y".split()
    evals = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 25))) for _ in range(300)]
    train = []
    for _ in range(300):
        s = list(rng.choice(evals))
        for _ in range(rng.randint(0, 12)):  # character edits
            pos = rng.randrange(len(s) + 1)
            op = rng.random()
            if op < 0.4 and pos < len(s):
                del s[pos]
            elif op < 0.8:
                s.insert(pos, rng.choice("abcdefxyz "))
            elif pos < len(s):
                s[pos] = rng.choice("abcdefxyz ")
        train.append("".join(s))
    for score in (80.0, 90.0, 95.0):
        got = {(i, j) for i, j, _ in decontam.text_pairs(train, evals, score, block=37)}
        m = process.cdist(train, evals, scorer=fuzz.ratio, score_cutoff=score)
        want = {(i, j) for i in range(len(train)) for j in range(len(evals)) if m[i, j] >= score}
        assert got == want and len(want) > 100


def test_cli_writes_overlaps_summary_and_a_clean_manifest(sets, tmp_path, capsys):
    train_manifest, eval_manifest = sets
    parser = argparse.ArgumentParser(prog="vr1")
    decontam.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "decontam",
            "--train",
            str(train_manifest),
            "--eval",
            str(eval_manifest),
            "--name",
            "t",
            "--write-clean",
            "--runs-root",
            str(tmp_path / "runs"),
        ]
    )
    assert args.func(args) == 0
    run = tmp_path / "runs/decontam/t"
    rows = [json.loads(line) for line in (run / "overlaps.jsonl").read_text().splitlines()]
    assert {(r["train_id"], r["eval_id"]): r["why"] for r in rows} == EXPECTED
    assert {r["train_manifest"] for r in rows} == {"train"}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_pairs"] == 4 and summary["pairs_by_why"] == {"image": 2, "text": 1, "both": 1}
    assert summary["train"][0]["n_overlapping"] == 4 and summary["eval"] == [{"name": "bench", "n": 4, "n_hit": 3}]
    assert (tmp_path / "runs/decontam/latest").resolve() == run.resolve()

    clean = Path(summary["train"][0]["clean_manifest"])
    assert clean.parent == run / "clean"
    back = read_manifest(clean)
    assert [s.id for s in back.samples] == ["u2", "u3", "u4", "u5"]
    original = {s.id: s for s in read_manifest(train_manifest).samples}
    assert all(s.to_dict() == original[s.id].to_dict() for s in back.samples)  # the same Samples, images included
    assert back.manifest.image_root == train_manifest.parent.resolve()

    out = capsys.readouterr().out
    assert "4 overlapping pair(s)" in out and "4 of 8 training items overlap" in out and str(clean) in out


def test_drop_overlapping_for_training_stages(sets):
    train_manifest, eval_manifest = sets
    train = read_manifest(train_manifest)
    items = [(s, train.manifest.image_root) for s in train.samples]
    kept, report = decontam.drop_overlapping(items, [eval_manifest])
    assert [s.id for s, _ in kept] == ["u2", "u3", "u4", "u5"]
    assert report["n_dropped"] == 4 and [r["train_id"] for r in report["dropped"]] == ["a", "b", "c", "e"]

    class Example:  # the SFT stage's examples: uid, question, absolute images
        def __init__(self, s, root):
            self.uid, self.question, self.images = f"m/{s.id}", s.question, [str(root / p) for p in s.images]

    examples = [Example(s, root) for s, root in items]
    kept, report = decontam.drop_overlapping(examples, [eval_manifest])
    assert [e.uid for e in kept] == ["m/u2", "m/u3", "m/u4", "m/u5"]
    assert decontam.drop_overlapping(items, [])[0] == items


def test_bad_thresholds_are_refused():
    from pipeline.errors import Vr1Error

    with pytest.raises(Vr1Error, match="image distance"):
        decontam.find_overlaps([], [], image_distance=40)
    with pytest.raises(Vr1Error, match="text score"):
        decontam.find_overlaps([], [], text_score=0)


def test_sft_and_ptst_leave_out_training_items_that_duplicate_eval_items(demo_dir, tmp_path):
    """`decontam_against` on both stages: training items that duplicate an eval item are left out and counted."""
    import json as _json

    import yaml as _yaml

    from pipeline.data.manifest import Manifest, read_manifest
    from rl.ptst.data import load_split
    from rl.sft.config import SFTData
    from rl.sft.data import drop_eval_duplicates, load_examples

    train = demo_dir / "manifest_train.yaml"
    rows = [_json.loads(x) for x in (demo_dir / "train.jsonl").read_text().splitlines()[:2]]
    (tmp_path / "eval.jsonl").write_text("".join(_json.dumps({**r, "id": f"eval-{r['id']}"}) + "\n" for r in rows))
    spec = {"name": "held_out", "format": "vr1", "path": "eval.jsonl", "image_root": str(demo_dir)}
    (tmp_path / "eval.yaml").write_text(_yaml.safe_dump(spec))
    against = [str(tmp_path / "eval.yaml")]
    assert len(read_manifest(Manifest.load(against[0])).samples) == 2

    examples, _ = load_examples(SFTData(manifests=[str(train)], target="reference_solution", limit=30))
    kept, report = drop_eval_duplicates(examples, against)
    dropped = {d["train_id"] for d in report["dropped"]}
    assert {e.uid for e in examples} - {e.uid for e in kept} == dropped
    assert all(any(d.endswith(f"/{r['id']}") for d in dropped) for r in rows)  # the copies are among them
    assert report["n_dropped"] == len(dropped) >= 2

    from rl.eval.decontam import drop_overlapping

    items = load_split([str(train)], 30)
    kept_items, report = drop_overlapping(items, against)
    assert {s.id for s, _ in items} - {s.id for s, _ in kept_items} >= {r["id"] for r in rows}
