"""Vision-R1's RL sources: each manifest in data_manifests/ reads a fixture written in its source's published layout
(tests/fixtures/rl_sources/<source>/), the preparation steps the manifests document, and the train/val overlap check.
"""

import io
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES, make_image

from pipeline.data.manifest import Manifest, read_manifest
from pipeline.data.overlap import overlap
from pipeline.data.rl_prep import drop_ids, flatten_scemqa, polymath_split
from pipeline.data.schema import Sample

MANIFESTS = Path(__file__).parent.parent / "data_manifests"


@pytest.fixture
def rl(tmp_path) -> Path:
    """A private copy of tests/fixtures/rl_sources (readers may extract images, prep steps write files)."""
    dst = tmp_path / "rl_sources"
    shutil.copytree(FIXTURES / "rl_sources", dst)
    return dst


def read(manifest: str, base: Path, path: str, image_root: str = "."):
    """Read through the real manifest `manifest` (its format, answer type, split) with its data pointed at `base`."""
    raw = yaml.safe_load((MANIFESTS / manifest).read_text())
    raw.update(path=path, image_root=image_root)
    result = read_manifest(Manifest.from_dict(raw, base=base), strict=True)
    assert not result.rejects and not result.skipped
    return {s.id: s for s in result.samples}


def test_mathvision_train_is_test_minus_testmini(rl):
    root = rl / "mathvision"
    assert drop_ids(root / "data/test.jsonl", root / "data/testmini.jsonl", root / "train.jsonl") == 3
    train = read("mathvision.yaml", root, "train.jsonl")
    val = read("mathvision_val.yaml", root, "data/testmini.jsonl")
    assert set(train) == {"1", "15", "21"} and set(val) == {"2"}
    free = train["1"]
    assert (free.answer, free.answer_type, free.choices) == ("60", "number", None)
    assert free.question == "Which number should be written in place of the question mark?"  # <image1> removed
    assert free.images == ["images/1.jpg"] and free.meta == {"level": 2, "subject": "arithmetic"}
    text = train["15"]
    assert (text.answer, text.answer_type) == ("A", "choice")
    assert text.choices == ["Wednesday", "Thursday", "Friday", "Tuesday", "Sunday"]
    drawn = train["21"]
    assert (drawn.answer, drawn.choices) == ("E", ["A", "B", "C", "D", "E"])
    assert "<image" not in drawn.question and drawn.images == ["images/21.jpg"]
    assert (val["2"].answer, val["2"].answer_type, val["2"].images) == ("A", "choice", ["images/2.jpg"])


def test_mathvision_hf_parquet_with_decoded_image(tmp_path):
    """The HF layout: the same columns plus `decoded_image`, an image cell with the bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    png = make_image(tmp_path / "x.png").read_bytes()
    row = {
        "id": "7",
        "question": "How many bricks are missing in the wall?\n<image1>",
        "options": [],
        "image": "images/7.jpg",
        "decoded_image": {"bytes": png, "path": "7.jpg"},
        "answer": "6",
        "solution": None,
        "level": 1,
        "subject": "counting",
    }
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "test.parquet")
    s = read("mathvision.yaml", tmp_path, "test.parquet", "imgs")["7"]
    assert (s.answer, s.answer_type, s.images) == ("6", "number", ["7.jpg"])
    assert (tmp_path / "imgs/7.jpg").read_bytes() == png


def test_we_math_options_string(rl):
    samples = read("we_math.yaml", rl / "we_math/data", "testmini.json")
    assert list(samples) == ["2steps_1", "2steps_7", "2steps_9"]
    a = samples["2steps_1"]
    assert (a.answer, a.answer_type) == ("C", "choice")
    assert a.choices == ["300, 400", "400, 300", "3000, 4000", "4000, 3000", "No correct answer"]
    assert a.question.startswith("According to the diagram") and a.images == ["2steps/image/1-1.png"]
    assert a.meta["knowledge concept"] == "Conversion Rates and Calculations Between Length Units"
    assert samples["2steps_7"].choices == ["15\u03c0", "10\u03c0", "5\u03c0", "No correct answer"]
    assert samples["2steps_7"].answer == "B"
    assert (samples["2steps_9"].choices, samples["2steps_9"].answer) == (["F", "D", "B", "I", "No correct answer"], "D")


def test_polymath_test_minus_testmini(rl):
    root = rl / "polymath"
    assert polymath_split(root, "test", root / "train.jsonl", exclude="testmini") == 2
    assert polymath_split(root, "testmini", root / "val.jsonl") == 2
    train = read("polymath.yaml", root, "train.jsonl")
    val = read("polymath_val.yaml", root, "val.jsonl")
    assert set(train) == {"670176af-41ee-5049-9acc-f250ad2e943a_q4.png", "97275c30-ba04-5f2c-b482-0035c70d6f83_q53.png"}
    assert set(val) == {"f4951250-3f5c-557a-8efb-a51b94ef0eea_q14.png", "118f4fc9-cac3-588f-910a-d00e5a32a8ef_q48.png"}
    digits = val["f4951250-3f5c-557a-8efb-a51b94ef0eea_q14.png"]
    assert (digits.answer, digits.answer_type, digits.choices) == ("B", "choice", ["6", "8", "12", "14"])
    assert digits.images == ["testmini/f4951250-3f5c-557a-8efb-a51b94ef0eea_q14.png"]
    assert digits.question.endswith("441 : 7 :: 576 : ?")
    letters = val["118f4fc9-cac3-588f-910a-d00e5a32a8ef_q48.png"]
    assert (letters.answer, letters.choices[1]) == ("B", "FWEBSRDHS")
    drawn = train["670176af-41ee-5049-9acc-f250ad2e943a_q4.png"]
    assert (drawn.answer, drawn.choices) == ("A", ["(1)", "(2)", "(3)", "(4)"])  # options only in the image
    assert drawn.meta["contains_diagram"] == "TRUE"
    hidden = train["97275c30-ba04-5f2c-b482-0035c70d6f83_q53.png"]  # question_text "None", (a)-(d) labels, gold "2"
    assert (hidden.answer, hidden.choices) == ("B", ["11", "3", "4", "9"])
    assert hidden.meta["question_in_image"] and hidden.question == "Solve the problem shown in the image."


def test_polymath_loaded_with_datasets(rl, tmp_path):
    """The HF imagefolder as `datasets` loads it (image cells; pandas turns "None" into a missing value)."""
    import datasets

    root = rl / "polymath"
    ds = datasets.load_dataset("imagefolder", data_files={"test": str(root / "test/*")}, split="test")
    ds.save_to_disk(str(tmp_path / "hf"))
    raw = yaml.safe_load((MANIFESTS / "polymath.yaml").read_text())
    raw.update(path="hf", image_root="hf_images", split="train")
    r = read_manifest(Manifest.from_dict(raw, base=tmp_path))
    by_id = {s.id: s for s in r.samples}
    assert len(by_id) == 4 and not r.rejects
    assert by_id["97275c30-ba04-5f2c-b482-0035c70d6f83_q53.png"].meta["question_in_image"]
    assert by_id["f4951250-3f5c-557a-8efb-a51b94ef0eea_q14.png"].answer == "B"


def test_scemqa_flattened(rl):
    root = rl / "scemqa"
    assert flatten_scemqa(root, root / "scemqa.json") == 6
    samples = read("scemqa.yaml", root, "scemqa.json")
    mc = samples["multiple_choice/Math/0"]
    assert (mc.answer, mc.answer_type, mc.choices) == ("D", "choice", ["a", "b", "c", "d", "e"])
    assert mc.images == ["Multiple_Choice/Math/1.png"] and mc.meta == {"subject": "Math", "format": "multiple_choice"}
    spaced = samples["multiple_choice/Math/1"]  # "(A)  text " options, a .jpg image
    assert spaced.answer == "C" and spaced.choices[2] == "The median price is not greater than $750,000."
    assert spaced.images == ["Multiple_Choice/Math/21.jpg"]
    assert samples["multiple_choice/Physics/0"].meta["subject"] == "Physics"
    value = samples["free_response/Math_Free_Response/0"]
    assert (value.answer, value.answer_type, value.choices) == ("3.397", "number", None)
    assert value.meta["alternatives"] == ["3", "4"] and value.images == ["Free_Response/Math_Free_Response/5.jpg"]
    frac = samples["free_response/Math_Free_Response/1"]
    assert (frac.answer, frac.answer_type) == ("\\frac{1}{2}", "expression")
    yes = samples["free_response/Math_Free_Response/2"]
    assert (yes.answer, yes.answer_type) == ("Yes", "text")
    assert flatten_scemqa(root, root / "math.json", subjects=("Math",)) == 5


def test_geometry3k_train_and_validation(tmp_path):
    """hiyouga/geometry3k parquet columns (card): images list<image>, problem, answer, id, choices, ground_truth."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def split(name, rows):
        table = []
        for i, (problem, answer, colour) in enumerate(rows):
            buf = io.BytesIO()
            make_image(tmp_path / f"{name}{i}.png", colour)
            buf.write((tmp_path / f"{name}{i}.png").read_bytes())
            table.append(
                {
                    "images": [{"bytes": buf.getvalue(), "path": None}],
                    "problem": problem,
                    "answer": answer,
                    "id": i if name == "train" else 2101 + i,
                    "choices": ["3", "3\\sqrt{2}", "6", "9"],
                    "ground_truth": "B",
                }
            )
        pq.write_table(pa.Table.from_pylist(table), tmp_path / f"{name}.parquet")

    split("train", [("<image>Find x.", "3\\sqrt{2}", "red"), ("<image>Find y.", "12", "green")])
    split("validation", [("<image>Find z.", "6", "blue")])
    train = read("geometry3k.yaml", tmp_path, "train.parquet", "images")
    val = read("geometry3k_val.yaml", tmp_path, "validation.parquet", "images_validation")
    assert (train["0"].question, train["0"].answer, train["0"].answer_type) == ("Find x.", "3\\sqrt{2}", "expression")
    assert train["1"].answer_type == "number" and train["1"].choices == ["3", "3\\sqrt{2}", "6", "9"]
    assert list(val) == ["2101"] and val["2101"].answer == "6"
    pairs = lambda samples, root: [(s, tmp_path / root) for s in samples.values()]  # noqa: E731
    assert overlap(pairs(train, "images"), pairs(val, "images_validation")) == []


# ---------------------------------------------------------------- overlap(train, val)


def _item(root: Path, sid: str, image: str, colour: str, source: str = "src") -> tuple[Sample, Path]:
    make_image(root / image, colour)
    return Sample(id=sid, source=source, question="q", answer="1", answer_type="number", images=[image]), root


def test_overlap_by_id(tmp_path):
    train = [_item(tmp_path / "a", "7", "x.png", "red")]
    val = [_item(tmp_path / "b", "7", "y.png", "blue"), _item(tmp_path / "b", "7", "z.png", "green", source="other")]
    assert overlap(train, val) == [val[0]]  # same source and id; the same id in another source is not a match


def test_overlap_by_image_content_under_another_name(tmp_path):
    train = [_item(tmp_path / "a", "1", "images/1.png", "red"), _item(tmp_path / "a", "2", "images/2.png", "green")]
    val = [_item(tmp_path / "b", "v1", "testmini/q14.png", "green"), _item(tmp_path / "b", "v2", "q15.png", "blue")]
    assert overlap(train, val) == [val[0]]


def test_overlap_clean(tmp_path):
    train = [_item(tmp_path / "a", str(i), f"{i}.png", c) for i, c in enumerate(["red", "green"])]
    val = [_item(tmp_path / "b", "v", "v.png", "blue")]
    assert overlap(train, val) == []
