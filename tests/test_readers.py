"""Each reader on fixture files in the exact published layout, and write-read round trips through every writer."""

import io
import json

import pytest
from conftest import make_image

from pipeline.data.manifest import Manifest, read_manifest
from pipeline.data.writers import write_hf_dataset, write_sharegpt, write_verl_parquet


def read(base, **raw):
    return read_manifest(Manifest.from_dict({"name": raw.pop("name", "src"), **raw}, base=base))


def by_id(result):
    return {s.id: s for s in result.samples}


def test_llava_cot(fixtures):
    r = read(fixtures / "llava_cot", format="llava_cot", path="train.jsonl", image_root="images")
    s = by_id(r)
    assert set(s) == {"000000000009", "sqa_12"}
    assert [e.loc.line for e in r.skipped] == [3] and "no image" in r.skipped[0].message
    mc = s["000000000009"]
    assert (mc.answer, mc.answer_type, mc.choices) == ("B", "choice", ["blue", "red", "green"])
    assert mc.images == ["coco/train2017/000000000009.jpg"]
    assert "<CAPTION>" in mc.meta["reference_response"]
    free = s["sqa_12"]
    assert (free.answer, free.answer_type) == ("1", "number")
    assert free.meta["extra_turns"][0] == ["user", "And what colour is it?"]


def test_mulberry_takes_last_final_answer(fixtures):
    r = read(fixtures / "mulberry", format="mulberry", path="mulberry_sft.json", image_root="mulberry_images")
    first, reflection = r.samples
    assert (first.answer, first.answer_type, first.choices) == ("C", "choice", ["30", "45", "60", "90"])
    assert first.images == ["geoqa/1.png"] and "<image>" not in first.question
    assert reflection.answer == "12"  # not the earlier wrong "11"
    assert reflection.images == ["chart/7.png"]
    assert first.id != reflection.id and first.id.startswith("src-")


@pytest.mark.parametrize(
    "file,expected",
    [
        ("vision_r1_llava_cot_full.json", [("B", "choice")]),
        ("vision_r1_mulberry_sft_full.json", [("12", "number"), ("B", "choice")]),
    ],
)
def test_vision_r1_cold_sharegpt_layouts(fixtures, file, expected):
    r = read(fixtures / "vision_r1_cold", format="sharegpt", path=file)
    assert [(s.answer, s.answer_type) for s in r.samples] == expected
    assert all(s.images and "<think>" in s.meta["reference_response"] for s in r.samples)


def test_vlm_r1_rec_multi_image_and_ovd(fixtures):
    rec = by_id(read(fixtures / "vlm_r1", format="vlm_r1", path="rec_refcoco_train.jsonl", image_root="."))
    box = rec["77"]
    assert (box.answer_type, json.loads(box.answer), box.meta["coord_frame"]) == (
        "bbox",
        [8, 8, 30, 30],
        "abs_original",
    )
    multi = rec["multi-1"]
    assert len(multi.images) == 2 and (multi.answer, multi.answer_type) == ("B", "choice")
    ovd = by_id(read(fixtures / "vlm_r1", format="vlm_r1", path="ovd_train.jsonl", image_root="."))
    assert json.loads(ovd["ovd-1"].answer) == [{"bbox_2d": [8, 8, 30, 30], "label": "ball"}]
    assert json.loads(ovd["ovd-2"].answer) == [] and ovd["ovd-2"].answer_type == "boxes"


def test_visual_rft_json(fixtures):
    det = read(fixtures / "visual_rft", format="visual_rft", path="detection.json").samples
    assert json.loads(det[0].answer) == [{"bbox_2d": [160, 160, 600, 600], "confidence": 1}]
    assert det[0].meta["coord_frame"] == "grid1000" and json.loads(det[1].answer) == []
    cls = read(fixtures / "visual_rft", format="visual_rft", path="classification.json").samples[0]
    assert (cls.answer, cls.answer_type) == ("2012 Volkswagen Golf Hatchback", "label")


def test_visual_rft_hf_datasetdict(tmp_path):
    import datasets
    from PIL import Image

    img = Image.new("RGB", (30, 20), "blue")
    ds = datasets.Dataset.from_dict(
        {
            "image": [img, img],
            "problem": ["What car is this?", "Which model?"],
            "solution": ["<answer>Audi A4</answer>", "<answer>BMW X5</answer>"],
        },
        features=datasets.Features(
            {"image": datasets.Image(), "problem": datasets.Value("string"), "solution": datasets.Value("string")}
        ),
    )
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "cars"))
    r = read(tmp_path, format="visual_rft", path="cars", answer_type="label")
    assert [s.answer for s in r.samples] == ["Audi A4", "BMW X5"]
    extracted = tmp_path / "cars_images" / r.samples[0].images[0]
    assert Image.open(extracted).size == (30, 20)
    assert r.samples[0].images == r.samples[1].images  # same bytes stored once


def test_easyr1_jsonl_and_parquet_with_bytes(fixtures, tmp_path):
    r = read(fixtures / "easyr1", format="easyr1", path="geometry3k_train.jsonl", image_root=".")
    assert [(s.id, s.answer, s.answer_type) for s in r.samples] == [
        ("0", "3\\sqrt{2}", "expression"),
        ("1", "12", "number"),
    ]
    import pyarrow as pa
    import pyarrow.parquet as pq

    png = io.BytesIO()
    make_image(tmp_path / "x.png")
    png.write((tmp_path / "x.png").read_bytes())
    table = pa.table(
        {
            "problem": ["<image><image>Compare the two."],
            "answer": ["A"],
            "images": [[{"bytes": png.getvalue(), "path": None}, {"bytes": png.getvalue(), "path": None}]],
        }
    )
    pq.write_table(table, tmp_path / "train.parquet")
    s = read(tmp_path, format="easyr1", path="train.parquet", answer_type="text").samples[0]
    assert len(s.images) == 2 and (tmp_path / "train_images" / s.images[0]).is_file()


def test_foreign_verl_parquet(tmp_path):
    """A parquet in the exact layout of verl's geo3k preprocessing (no vr1 fields)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    make_image(tmp_path / "g.png")
    row = {
        "data_source": "hiyouga/geometry3k",
        "prompt": [{"role": "user", "content": "<image>Find x. You FIRST think about the reasoning process..."}],
        "images": [{"bytes": (tmp_path / "g.png").read_bytes(), "path": None}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": "24"},
        "extra_info": {"split": "train", "index": 0, "answer": "24", "question": "Find x."},
    }
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "geo3k_train.parquet")
    s = read(tmp_path, format="verl_parquet", path="geo3k_train.parquet").samples[0]
    assert (s.source, s.question, s.answer, s.answer_type) == ("hiyouga/geometry3k", "Find x.", "24", "number")


def test_demo_set_reader(demo_dir):
    r = read_manifest(Manifest.load(demo_dir / "manifest_train.yaml"))
    assert len(r.samples) == 40 and not r.rejects
    assert {s.meta["task"] for s in r.samples} == {"counting", "colour_shape", "bar_chart", "geometry", "compare"}
    assert any(len(s.images) == 2 for s in r.samples)


# ---------------------------------------------------------------- round trips


def _samples_and_root(demo_dir, fixtures):
    """Demo samples (choices, expressions, two images, nested meta) plus REC/OVD boxes."""
    demo = read_manifest(Manifest.load(demo_dir / "manifest_train.yaml")).samples[:12]
    rec = read(fixtures / "vlm_r1", format="vlm_r1", path="rec_refcoco_train.jsonl", image_root=".").samples
    return demo, demo_dir, rec, fixtures / "vlm_r1"


def _image_bytes(samples, root):
    return [[(root / rel).read_bytes() for rel in s.images] for s in samples]


@pytest.mark.parametrize("writer", ["sharegpt", "hf", "verl"])
def test_round_trip_loses_nothing(writer, demo_dir, fixtures, tmp_path):
    demo, demo_root, rec, rec_root = _samples_and_root(demo_dir, fixtures)
    for samples, root, tag in ((demo, demo_root, "demo"), (rec, rec_root, "rec")):
        out_dir = tmp_path / tag
        if writer == "sharegpt":
            write_sharegpt(samples, out_dir / "cold.json", root)
            back = read(out_dir, format="sharegpt", path="cold.json", name=tag)
            back_root = out_dir
        elif writer == "hf":
            write_hf_dataset(samples, out_dir / "hf", root)
            back = read(out_dir, format="columns", path="hf", name=tag)
            back_root = out_dir / "hf_images"
        else:
            write_verl_parquet(samples, out_dir / "train.parquet", root)
            back = read(out_dir, format="verl_parquet", path="train.parquet", name=tag)
            back_root = out_dir / "train_images"
        assert not back.rejects
        assert [s.to_dict() for s in back.samples] == [s.to_dict() for s in samples]
        assert _image_bytes(back.samples, back_root) == _image_bytes(samples, root)


def test_sharegpt_output_is_llamafactory_shaped(demo_dir, tmp_path):
    samples = read_manifest(Manifest.load(demo_dir / "manifest_train.yaml")).samples[:5]
    write_sharegpt(samples, tmp_path / "cold.json", demo_dir, response_key="reference_solution")
    rows = json.loads((tmp_path / "cold.json").read_text())
    info = json.loads((tmp_path / "dataset_info.json").read_text())["cold"]
    assert info["formatting"] == "sharegpt" and info["columns"] == {"messages": "conversations", "images": "images"}
    for row, s in zip(rows, samples, strict=True):
        human, gpt = row["conversations"]
        assert human["from"] == "human" and human["value"].count("<image>") == len(row["images"])
        assert gpt["value"] == s.meta["reference_solution"]
        assert all((tmp_path / p).is_file() for p in row["images"])


def test_vlm_r1_gold_inside_answer_tags(fixtures):
    # VLM-R1's multi-image mcq data writes the gold as <answer>A</answer>
    multi = by_id(read(fixtures / "vlm_r1", format="vlm_r1", path="rec_refcoco_train.jsonl", image_root="."))["multi-2"]
    assert (multi.answer, multi.answer_type, len(multi.images)) == ("A", "choice", 2)
    assert multi.choices == ["the first image", "the second image"]


def test_lmm_r1_messages_as_a_json_string(tmp_path):
    """LMM-R1 / MM-EUREKA JSONL: `message` holds a JSON-encoded OpenAI message list with file:// image URLs
    (layout: ../shared/reference/formats.md, "LMM-R1 / MM-EUREKA (OpenRLHF style)")."""
    one, two = make_image(tmp_path / "imgs" / "a.png"), make_image(tmp_path / "imgs" / "b.png", "blue")

    def line(i, images, text, answer):
        content = [{"type": "image", "image": f"file://{p}"} for p in images] + [{"type": "text", "text": text}]
        return json.dumps({"id": i, "message": json.dumps([{"role": "user", "content": content}]), "answer": answer})

    rows = [
        line("m1", [one], "How many red shapes are there?", "$\\boxed{3}$"),
        line("m2", [one, two], "Which is blue?\nA. the first\nB. the second", "B"),
        json.dumps({"id": "m3", "message": '[{"role": "user", "content": [', "answer": "1"}),
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n")
    result = read_manifest(
        Manifest.from_dict({"name": "mm", "format": "lmm_r1", "path": "train.jsonl", "image_root": "/"}, base=tmp_path),
        strict=False,
    )
    got = by_id(result)
    assert (got["m1"].answer, got["m1"].answer_type, got["m1"].question) == (
        "3",
        "number",
        "How many red shapes are there?",
    )
    assert got["m1"].images == [str(one.resolve()).lstrip("/")] and len(got["m2"].images) == 2
    assert (got["m2"].answer, got["m2"].answer_type) == ("B", "choice")
    (bad,) = result.rejects
    assert bad.field == "message" and "not a JSON message list" in bad.message and str(bad.loc).endswith(":3")


def test_a_json_array_with_a_syntax_error_keeps_every_other_record(tmp_path):
    rows = [{"id": f"r{i}", "problem": f"<image>Count {i}", "answer": str(i), "images": ["a.png"]} for i in range(5)]
    make_image(tmp_path / "a.png")
    text = json.dumps(rows, indent=2).replace('Count 2",', 'Count 2" oops,', 1)
    (tmp_path / "data.json").write_text(text)
    lenient = read_manifest(
        Manifest.from_dict({"name": "arr", "format": "easyr1", "path": "data.json", "image_root": "."}, base=tmp_path),
        strict=False,
    )
    assert [s.id for s in lenient.samples] == ["r0", "r1", "r3", "r4"]
    (error,) = lenient.rejects
    line = text.splitlines().index(next(x for x in text.splitlines() if "oops" in x)) + 1
    assert str(error.loc) == f"{tmp_path / 'data.json'}:{line}" and "malformed JSON in record 2" in error.message
    with pytest.raises(Exception, match="malformed JSON in record 2"):
        read_manifest(Manifest.from_dict({"name": "arr", "format": "easyr1", "path": "data.json"}, base=tmp_path))


def test_check_data_reports_a_damaged_json_array_and_reads_the_rest(tmp_path, capsys):
    from pipeline.cli import main

    make_image(tmp_path / "a.png")
    rows = [{"id": f"r{i}", "problem": f"<image>Count {i}", "answer": str(i), "images": ["a.png"]} for i in range(4)]
    (tmp_path / "data.json").write_text(json.dumps(rows, indent=2).replace('Count 1",', 'Count 1" oops,', 1))
    (tmp_path / "m.yaml").write_text("name: arr\nformat: easyr1\npath: data.json\nimage_root: .\n")
    assert main(["check-data", str(tmp_path / "m.yaml"), "--runs-root", str(tmp_path / "runs")]) == 1
    out = capsys.readouterr().out
    assert "3 ok, 1 problems" in out and "malformed JSON in record 1" in out and "data.json:" in out
