"""COCO / LVIS instance annotations and RefCOCO refs read straight into OVD, detection and REC samples.

Fixtures: tests/fixtures/detection/ (layouts and the upstream loaders they were read from: make_fixtures.py).
Every expected box below is worked out by hand from the fixture's [x, y, w, h].
"""

import json
import pickle

import pytest
from conftest import make_image

from pipeline.data.detection_sources import DETECTION_TEMPLATE, OVD_TEMPLATE, REC_TEMPLATE, load_refs_pickle
from pipeline.data.manifest import Manifest, read_manifest
from pipeline.errors import ConfigError, DataError

COCO = {"path": "coco/annotations/instances_val2017.json", "image_root": "coco/val2017"}
LVIS = {"path": "lvis/lvis_v1_val.json", "image_root": "coco"}
REFCOCO = {"format": "refcoco", "path": "refcoco/refs(unc).p", "image_root": "coco/train2014"}
OVD_PREFIX = "Please carefully check the image and detect the following objects: "
COCO_NAMES = {1: "person", 2: "bicycle", 3: "car", 17: "cat", 18: "dog", 44: "bottle", 47: "cup", 52: "banana"}


@pytest.fixture
def det(fixtures):
    return fixtures / "detection"


def read(base, strict=True, **raw):
    return read_manifest(Manifest.from_dict({"name": "det", **raw}, base=base), strict=strict)


def by_id(result):
    return {s.id: s for s in result.samples}


def asked(sample):
    """The category names an OVD question lists."""
    return sample.question[len(OVD_PREFIX) :].split(". Output each")[0].split(", ")


def test_coco_ovd_converts_boxes_names_labels_and_leaves_crowds_out(det):
    r = read(det, format="coco_ovd", **COCO)
    s = by_id(r)
    assert set(s) == {"139", "285", "724"} and not r.rejects
    (skip,) = r.skipped
    assert skip.loc.index == 2 and "image 632" in skip.message and "crowd" in skip.message

    two_people_and_a_car = s["139"]
    assert two_people_and_a_car.answer_type == "boxes" and two_people_and_a_car.images == ["000000000139.jpg"]
    assert json.loads(two_people_and_a_car.answer) == [
        {"bbox_2d": [10.5, 4.25, 30.5, 34.75], "label": "person"},
        {"bbox_2d": [40, 10, 52, 30], "label": "person"},
        {"bbox_2d": [0, 30, 63.7, 48], "label": "car"},  # 30 + 18.9 overhangs the 48-pixel image: clipped
    ]
    meta = two_people_and_a_car.meta
    assert (meta["coord_frame"], meta["image_size"], meta["image_id"]) == ("abs_original", [64, 48], 139)
    assert meta["ann_ids"] == [2001, 2002, 2003]
    names = ", ".join(asked(two_people_and_a_car))
    assert two_people_and_a_car.question == OVD_TEMPLATE.replace("{categories}", names)
    negatives = meta["negative_category_ids"]
    assert len(negatives) == 3 and not {1, 3} & set(negatives)
    assert sorted(meta["category_ids"]) == sorted([1, 3, *negatives])
    assert sorted(asked(two_people_and_a_car)) == sorted(["person", "car"] + [COCO_NAMES[c] for c in negatives])

    crowd_and_dog = s["285"]
    assert json.loads(crowd_and_dog.answer) == [{"bbox_2d": [5, 5, 15, 15], "label": "dog"}]
    assert crowd_and_dog.meta["withheld_category_ids"] == [1] and crowd_and_dog.meta["ann_ids"] == [2005]
    assert "person" not in asked(crowd_and_dog) and 1 not in crowd_and_dog.meta["negative_category_ids"]

    nothing_there = s["724"]  # no annotations: a sample asking only about absent categories
    assert nothing_there.answer == "[]" and len(asked(nothing_there)) == 3


def test_coco_ovd_without_negatives_asks_only_what_is_there(det):
    r = read(det, format="coco_ovd", negatives=0, **COCO)
    s = by_id(r)
    assert set(s) == {"139", "285"}
    assert sorted(asked(s["139"])) == ["car", "person"] and asked(s["285"]) == ["dog"]
    assert sorted(e.loc.index for e in r.skipped) == [2, 3]
    assert any("no absent categories" in e.message for e in r.skipped)


def test_negatives_are_deterministic_per_seed(det):
    def draw(seed):
        return {s.id: s.meta["negative_category_ids"] for s in read(det, format="coco_ovd", seed=seed, **COCO).samples}

    assert draw(0) == draw(0)
    assert len({tuple(draw(seed)["139"]) for seed in range(6)}) > 1
    first = read(det, format="coco_ovd", **COCO).samples
    again = read(det, format="coco_ovd", **COCO).samples
    assert [x.to_json() for x in first] == [x.to_json() for x in again]  # question order too


def test_coco_detection_one_sample_per_category_with_no_objects_negatives(det):
    r = read(det, format="coco_detection", negatives=1, **COCO)
    s = by_id(r)
    positives = {k for k, v in s.items() if not v.meta["negative"]}
    assert positives == {"139_1", "139_3", "285_18"} and "285_1" not in s  # the crowd's category is not asked
    assert len(s) == 3 + 3  # one negative for each of 139, 285, 724
    people = s["139_1"]
    assert people.answer_type == "boxes" and json.loads(people.answer) == [
        {"bbox_2d": [10.5, 4.25, 30.5, 34.75], "label": "person"},
        {"bbox_2d": [40, 10, 52, 30], "label": "person"},
    ]
    assert people.question == DETECTION_TEMPLATE.replace("{category}", "person")
    assert (people.meta["category_id"], people.meta["ann_ids"]) == (1, [2001, 2002])
    assert people.meta["pred_frame"] == "grid1000"  # the frame Visual-RFT's question asks for
    boxed = {139: {1, 3}, 285: {1, 18}, 724: set()}
    for negative in (v for v in s.values() if v.meta["negative"]):
        assert negative.answer == "[]" and negative.answer_type == "boxes"
        assert f"'{negative.meta['category']}'" in negative.question
        assert negative.meta["category_id"] not in boxed[negative.meta["image_id"]]


def test_lvis_ovd_names_files_from_coco_url_and_asks_only_verified_negatives(det):
    r = read(det, format="lvis_ovd", **LVIS)
    s = by_id(r)
    assert set(s) == {"139", "9"} and not r.rejects and not r.skipped
    val = s["139"]
    assert val.images == ["val2017/000000000139.jpg"] and s["9"].images == ["train2017/000000000009.jpg"]
    assert json.loads(val.answer) == [
        {"bbox_2d": [10, 4, 30, 34], "label": "person"},
        {"bbox_2d": [50.5, 20, 55.5, 25], "label": "apple"},
    ]
    assert val.meta["negative_category_ids"] == [1, 95]  # exactly the image's neg_category_ids
    assert sorted(asked(val)) == ["aerosol_can", "apple", "bow_(weapon)", "person"]
    assert val.meta["withheld_category_ids"] == [34]  # banana: not exhaustively annotated, so never asked
    assert s["9"].meta["negative_category_ids"] == [] and asked(s["9"]) == ["apple"]
    assert json.loads(s["9"].answer) == [{"bbox_2d": [1, 2, 4, 6], "label": "apple"}]

    detection = by_id(read(det, format="lvis_detection", **LVIS))
    assert set(detection) == {"139_793", "139_12", "139_1", "139_95", "9_12"}


@pytest.mark.parametrize(
    "split,ids",
    [
        ("train", {"0_0", "0_1"}),
        ("val", {"3_30"}),
        ("testA", {"1_10"}),
        ("testB", {"2_20"}),
        ("test", {"1_10", "2_20"}),
    ],
)
def test_refcoco_one_sample_per_sentence_of_the_split(det, split, ids):
    r = read(det, split=split, **REFCOCO)
    assert set(by_id(r)) == ids and not r.rejects


def test_refcoco_boxes_questions_and_trace(det):
    s = by_id(read(det, **REFCOCO))
    left = s["0_0"]
    assert (left.answer_type, json.loads(left.answer)) == ("bbox", [2.5, 3, 12.5, 23])
    assert left.question == REC_TEMPLATE.replace("{expression}", "man on left")
    assert s["0_1"].question.endswith("describes: left guy.")
    assert left.images == ["COCO_train2014_000000000077.jpg"]
    assert {k: left.meta[k] for k in ("coord_frame", "image_size", "ref_id", "ann_id", "sent_id", "category")} == {
        "coord_frame": "abs_original",
        "image_size": [40, 30],
        "ref_id": 0,
        "ann_id": 1001,
        "sent_id": 0,
        "category": "person",
    }


def test_vlm_r1_rec_json(fixtures):
    r = read(fixtures / "eval" / "rec", format="vlm_r1_rec", path="refcoco_val.json", image_root=".")
    first, second = r.samples
    assert (first.answer_type, json.loads(first.answer)) == ("bbox", [500, 350, 1000, 700])
    assert first.question.startswith("Please provide the bounding box coordinate") and first.meta["image_size"] == [
        2000,
        1400,
    ]
    assert first.meta["coord_frame"] == "abs_original" and first.id != second.id


def test_check_data_passes_on_manifests_of_every_layout(det, tmp_path, capsys):
    from pipeline.cli import main

    manifests = {
        "coco_ovd": {"format": "coco_ovd", **COCO},
        "coco_detection": {"format": "coco_detection", **COCO},
        "lvis_ovd": {"format": "lvis_ovd", **LVIS},
        "lvis_detection": {"format": "lvis_detection", **LVIS},
        "refcoco": {**REFCOCO, "split": "testA"},
    }
    paths = []
    for name, raw in manifests.items():
        path = det / f"{name}.yaml"
        path.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in {"name": name, **raw}.items()) + "\n")
        paths.append(str(path))
    assert main(["check-data", *paths, "--runs-root", str(tmp_path / "runs")]) == 0, capsys.readouterr().out


def test_bad_records_are_named_and_the_rest_is_kept(det):
    path = det / COCO["path"]
    data = json.loads(path.read_text())
    data["annotations"][1]["bbox"] = [40, 10, 12]  # image 139
    data["annotations"][4]["category_id"] = 999  # image 285
    (det / "coco/val2017/000000000724.jpg").unlink()
    make_image(det / "coco/val2017/000000001000.jpg", size=(40, 30))
    data["images"].append({"id": 1000, "file_name": "000000001000.jpg", "width": 40, "height": 30})
    data["annotations"].append({"id": 3000, "image_id": 1000, "category_id": 17, "bbox": [1, 1, 2, 2], "iscrowd": 0})
    make_image(det / "coco/val2017/000000001001.jpg", size=(40, 30))  # a resized copy: its boxes would be off
    data["images"].append({"id": 1001, "file_name": "000000001001.jpg", "width": 80, "height": 60})
    data["annotations"].append({"id": 3001, "image_id": 1001, "category_id": 17, "bbox": [2, 2, 4, 4], "iscrowd": 0})
    path.write_text(json.dumps(data))

    lenient = read(det, strict=False, format="coco_ovd", **COCO)
    assert [s.id for s in lenient.samples] == ["1000"]
    assert json.loads(lenient.samples[0].answer) == [{"bbox_2d": [1, 1, 3, 3], "label": "cat"}]
    got = {(e.loc.file.endswith("instances_val2017.json"), e.loc.index, e.field): e.message for e in lenient.rejects}
    assert set(got) == {
        (True, 1, "annotations[1].bbox"),
        (True, 4, "annotations[4].category_id"),
        (True, 3, "images[3].file_name"),
        (True, 5, "images[5].file_name"),
    }
    assert "4 numbers" in got[(True, 1, "annotations[1].bbox")] and "image 139" in got[(True, 1, "annotations[1].bbox")]
    assert "unknown category id 999" in got[(True, 4, "annotations[4].category_id")]
    assert "image not found" in got[(True, 3, "images[3].file_name")]
    assert "is 40x30, the annotations say 80x60" in got[(True, 5, "images[5].file_name")]
    assert "instances_val2017.json record 1: field 'annotations[1].bbox'" in str(lenient.rejects[0])
    with pytest.raises(DataError, match=r"annotations\[1\]\.bbox"):
        read(det, format="coco_ovd", **COCO)


def test_refcoco_bad_refs_are_named_and_the_rest_is_kept(det):
    refs = load_refs_pickle(det / REFCOCO["path"])
    refs[0]["sentences"][1]["sent"] = ""
    refs[3]["split"] = "train"
    refs[3]["ann_id"] = 4242
    instances = json.loads((det / "refcoco/instances.json").read_text())
    refs.append({**refs[1], "ref_id": 9, "ann_id": 1003, "image_id": 78, "split": "train"})
    (det / REFCOCO["path"]).write_bytes(pickle.dumps(refs, protocol=2))
    instances["annotations"][2]["bbox"] = [0, 0, -1, 5]
    (det / "refcoco/instances.json").write_text(json.dumps(instances))

    r = read(det, strict=False, **REFCOCO)
    assert set(by_id(r)) == {"0_0"}
    got = {(e.loc.file.rsplit("/", 1)[-1], e.loc.index, e.field) for e in r.rejects}
    assert got == {
        ("refs(unc).p", 0, "sentences[1].sent"),
        ("refs(unc).p", 3, "ann_id"),
        ("instances.json", 2, "annotations[2].bbox"),
    }
    assert any("ref 9 left out" in e.message and "positive" in e.message for e in r.rejects)


class _Gadget:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


def test_the_refs_unpickler_refuses_anything_that_names_a_class(tmp_path):
    plain = [{"ref_id": 1, "split": "train", "sentences": [{"sent": "a b", "sent_id": 3}], "ann_id": 2}]
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        (tmp_path / "ok.p").write_bytes(pickle.dumps(plain, protocol=protocol))
        assert load_refs_pickle(tmp_path / "ok.p") == plain
    (tmp_path / "evil.p").write_bytes(pickle.dumps([{"ref_id": 1, "x": _Gadget()}], protocol=2))
    with pytest.raises(DataError, match=r"refusing to load posix\.getcwd|refusing to load os\.getcwd"):
        load_refs_pickle(tmp_path / "evil.p")
    from collections import OrderedDict

    (tmp_path / "ordered.p").write_bytes(pickle.dumps(OrderedDict(a=1)))
    with pytest.raises(DataError, match="refusing to load collections.OrderedDict"):
        load_refs_pickle(tmp_path / "ordered.p")


def test_manifest_options_are_checked_and_the_question_can_be_replaced(det):
    s = read(det, format="coco_ovd", negatives=0, question_template="Find: {categories}", **COCO).samples[0]
    assert s.question == "Find: person, car" or s.question == "Find: car, person"
    with pytest.raises(ConfigError, match=r"\{category\}"):
        read(det, format="coco_detection", question_template="Find: {categories}", **COCO)
    with pytest.raises(ConfigError, match="non-negative integer"):
        read(det, format="coco_ovd", negatives=-1, **COCO)
    with pytest.raises(ConfigError, match="split 'trainval' unknown"):
        read(det, split="trainval", **REFCOCO)
    with pytest.raises(ConfigError, match="apply only to formats"):
        read(det, format="vr1", path="x.jsonl", negatives=2)
