"""Perception benchmarks (rl/eval/perception_benchmarks.py) on fixtures written in each published layout:
VLM-R1's REC eval JSON and JSONL, its OVD JSONL, Visual-RFT's COCO/LVIS annotation files, its training layout,
its classification `.pth` + `.txt`. mAP is checked against pycocotools run directly on hand-built GT/DT JSON."""

import contextlib
import io
import json
from pathlib import Path

import pytest

from pipeline.grading.geometry import smart_resize
from rl.eval.perception_benchmarks import (
    OVD,
    PERCEPTION_BENCHMARKS,
    REC,
    Classification,
    Detection,
    ovdeval_nms,
    visual_rft_boxes,
)

FIX = Path(__file__).parent / "fixtures" / "eval"


def run(bench, items, responses, **options):
    scores = [bench.score(item, r, **options) for item, r in zip(items, responses, strict=True)]
    return scores, bench.aggregate(items, scores)


def pycocotools_stats(gt: dict, dt: list[dict], tmp_path: Path, cat_ids=None) -> tuple[float, float]:
    """COCO mAP and AP50 as pycocotools computes them from JSON files, the way the official scripts call it."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_file, dt_file = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_file.write_text(json.dumps(gt))
    dt_file.write_text(json.dumps(dt))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_file))
        ev = COCOeval(coco, coco.loadRes(str(dt_file)), "bbox")
        if cat_ids:
            ev.params.catIds = cat_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


def test_registry():
    assert set(PERCEPTION_BENCHMARKS) == {"rec", "ovd", "detection", "classification"}
    assert PERCEPTION_BENCHMARKS["rec"] is REC


# ---------------------------------------------------------------- REC


@pytest.fixture
def rec_items():
    return REC().load(FIX / "rec" / "refcoco_val.json", FIX / "rec")


def test_rec_loads_both_layouts(rec_items):
    assert smart_resize(2000, 1400) == (1176, 812)  # the abs_resized frame of the first image
    big, small = rec_items
    assert big.gold == {"box": [500, 350, 1000, 700], "frame": "abs_original", "size": [2000, 1400]}
    assert small.gold["size"] == [1000, 700] and Path(big.images[0]).is_file()
    assert REC().prompt(big).startswith("Please provide the bounding box") and REC().prompt(big).endswith(
        "Output the final answer in JSON format."
    )
    jsonl = REC().load(FIX / "rec" / "refcocog_val.jsonl", FIX / "rec")
    assert [i.id for i in jsonl] == ["101", "102"]
    assert [i.gold for i in jsonl] == [i.gold for i in rec_items]
    assert REC().load(FIX / "rec" / "refcoco_val.json", FIX / "rec", limit=1) == rec_items[:1]


def test_rec_resized_frame_maps_to_gold(rec_items):
    bench, big = REC(), rec_items[0]
    # gold [500, 350, 1000, 700] on 2000x1400 is [294, 203, 588, 406] on 1176x812 (x * 0.588, y * 0.58)
    s = bench.score(big, "<think>…</think><answer>[294, 203, 588, 406]</answer>")
    assert s["source"] == "answer_block" and s["correct"] == 1.0 and s["iou"] == pytest.approx(1.0)
    assert s["box"] == pytest.approx([500, 350, 1000, 700])
    # x2 = 470 / 1176 * 2000 = 799.32 px: IoU = (799.32 - 500) * 350 / (500 * 350) = 0.59864
    s = bench.score(big, '<answer>{"bbox_2d": [294, 203, 470, 406], "label": "red square"}</answer>')
    assert s["iou"] == pytest.approx((470 / 1176 * 2000 - 500) / 500) and s["iou"] == pytest.approx(0.598639, abs=1e-6)
    assert s["correct"] == 1.0
    # x2 = 441 -> 750 px: IoU exactly 0.5, not a hit (test_rec_r1.py counts IoU > 0.5)
    s = bench.score(big, "<answer>[294, 203, 441, 406]</answer>")
    assert s["iou"] == pytest.approx(0.5) and s["correct"] == 0.0


def test_rec_wrong_frame_fails(rec_items):
    bench, big = REC(), rec_items[0]
    original = "<answer>[500, 350, 1000, 700]</answer>"
    s = bench.score(big, original)  # read as resized pixels it lands at [850, 603, 1701, 1207]
    assert s["correct"] == 0.0 and s["iou"] < 0.05
    assert bench.score(big, original, pred_frame="abs_original")["iou"] == pytest.approx(1.0)
    assert bench.score(big, "<answer>[250, 250, 500, 500]</answer>", pred_frame="grid1000")["correct"] == 1.0
    assert bench.score(big, "<answer>[0.25, 0.25, 0.5, 0.5]</answer>", pred_frame="normalized")["correct"] == 1.0
    # another pixel budget is another frame: under 12845056 the image resizes to 2016x1400
    assert bench.score(big, "<answer>[294, 203, 588, 406]</answer>", max_pixels=12845056)["correct"] == 0.0
    with pytest.raises(ValueError):
        bench.score(big, original, pred_frame="pixels")


def test_rec_fallback_and_aggregate(rec_items):
    bench = REC()
    big, small = rec_items
    s = bench.score(big, "The red square is at [294, 203, 588, 406].")
    assert s["source"] == "fallback" and s["correct"] == 1.0
    none = bench.score(small, "<answer>the blue box</answer>")
    assert none["source"] == "none" and none["correct"] == 0.0 and none["box"] is None
    # small: 1000x700 -> 1008x700; [100.8, 100, 403.2, 300] resized is the gold exactly
    hit = bench.score(small, "<answer>[100.8, 100, 403.2, 300]</answer>")
    assert hit["correct"] == 1.0
    agg = bench.aggregate([big, small, small], [s, none, hit])
    assert agg["n"] == 3 and agg["accuracy"] == pytest.approx(2 / 3) and agg["acc@0.5"] == agg["accuracy"]
    assert agg["mean_iou"] == pytest.approx(2 / 3)
    assert agg["fallback_rate"] == pytest.approx(1 / 3) and agg["accuracy_answer_block_only"] == pytest.approx(1 / 3)


# ---------------------------------------------------------------- OVD


def _ovd_answer(boxes) -> str:
    return "<think>…</think><answer>```json\n" + json.dumps(boxes) + "\n```</answer>"


@pytest.fixture
def ovd_items():
    return OVD().load(FIX / "ovd" / "ovd_val.jsonl", FIX / "ovd")


def test_ovd_load(ovd_items):
    assert [i.id for i in ovd_items] == ["ovd-1", "ovd-2", "ovd-3"]
    assert ovd_items[0].gold["boxes"][2] == {"bbox_2d": [800, 400, 950, 650], "label": "pear"}
    assert ovd_items[2].gold["boxes"] == [] and ovd_items[0].gold["size"] == [1000, 700]


def test_ovd_perfect_and_one_missing(ovd_items):
    bench = OVD()
    perfect = [_ovd_answer(i.gold["boxes"]) for i in ovd_items[:2]] + ["<answer>None</answer>"]
    scores, agg = run(bench, ovd_items, perfect, pred_frame="abs_original")
    assert agg["map"] == pytest.approx(1.0) and agg["map50"] == pytest.approx(1.0) and agg["n"] == 3
    assert [s["correct"] for s in scores] == [1.0, 1.0, 1.0]
    # the same boxes in the resized frame (1000x700 -> 1008x700: x * 1.008) under the default pred_frame
    resized = [
        _ovd_answer(
            [
                {**b, "bbox_2d": [b["bbox_2d"][0] * 1.008, b["bbox_2d"][1], b["bbox_2d"][2] * 1.008, b["bbox_2d"][3]]}
                for b in i.gold["boxes"]
            ]
        )
        for i in ovd_items
    ]
    assert run(bench, ovd_items, resized)[1]["map"] == pytest.approx(1.0)
    # one apple of two missed: AP(apple) = 51/101 (precision 1 up to recall 0.5 of the 101 points), AP(pear) = 1
    missing = [_ovd_answer([b for k, b in enumerate(ovd_items[0].gold["boxes"]) if k != 1])] + perfect[1:]
    scores, agg = run(bench, ovd_items, missing, pred_frame="abs_original")
    assert agg["per_class_ap"] == pytest.approx({"apple": 51 / 101, "pear": 1.0})
    assert agg["map"] == pytest.approx((51 / 101 + 1) / 2) and agg["map50"] == pytest.approx((51 / 101 + 1) / 2)
    assert scores[0]["correct"] == 0.0


def test_ovd_map_equals_pycocotools(ovd_items, tmp_path):
    bench = OVD()
    responses = [
        _ovd_answer(
            [
                {"bbox_2d": [100, 100, 300, 300], "label": "apple", "score": 0.9},
                {"bbox_2d": [520, 230, 700, 520], "label": "Apple", "score": 0.8},  # shifted: IoU about 0.72
                {"bbox_2d": [800, 400, 950, 650], "label": "plum", "score": 0.7},  # a label with no gold box
                {"bbox_2d": [10, 10, 60, 60], "label": "pear", "score": 0.95},  # a false positive
            ]
        ),
        "```json\n" + json.dumps([{"bbox_2d": [210, 150, 600, 560], "label": "pear"}]) + "\n```",  # no tags
        _ovd_answer([{"bbox_2d": [1, 1, 50, 50], "label": "apple", "score": 0.3}]),  # on the image with no gold
    ]
    scores, agg = run(bench, ovd_items, responses, pred_frame="abs_original")
    assert [s["source"] for s in scores] == ["answer_block", "fallback", "answer_block"]
    # the same run written by hand as COCO JSON: image ids 1-3, apple=1, pear=2, plum=3, boxes xywh
    gt = {
        "images": [{"id": 1}, {"id": 2}, {"id": 3}],
        "categories": [{"id": 1, "name": "apple"}, {"id": 2, "name": "pear"}, {"id": 3, "name": "plum"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [100, 100, 200, 200], "area": 40000, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [500, 200, 200, 300], "area": 60000, "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 2, "bbox": [800, 400, 150, 250], "area": 37500, "iscrowd": 0},
            {"id": 4, "image_id": 2, "category_id": 2, "bbox": [200, 150, 400, 400], "area": 160000, "iscrowd": 0},
        ],
    }
    dt = [
        {"image_id": 1, "category_id": 1, "bbox": [100, 100, 200, 200], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [520, 230, 180, 290], "score": 0.8},
        {"image_id": 1, "category_id": 3, "bbox": [800, 400, 150, 250], "score": 0.7},
        {"image_id": 1, "category_id": 2, "bbox": [10, 10, 50, 50], "score": 0.95},
        {"image_id": 2, "category_id": 2, "bbox": [210, 150, 390, 410], "score": 1.0},
        {"image_id": 3, "category_id": 1, "bbox": [1, 1, 49, 49], "score": 0.3},
    ]
    m, m50 = pycocotools_stats(gt, dt, tmp_path)
    assert 0 < m < 1
    assert agg["map"] == pytest.approx(m, abs=1e-12) and agg["map50"] == pytest.approx(m50, abs=1e-12)
    assert agg["boxes_per_gold"] == pytest.approx(6 / 4)


def test_ovd_nms_ap(ovd_items):
    item = ovd_items[1]  # one pear at [200, 150, 600, 550]
    both = [
        {"bbox_2d": [200, 150, 600, 550], "label": "pear", "score": 0.9},
        {"bbox_2d": [205, 150, 600, 550], "label": "apple", "score": 0.5},  # a hard-negative label on the same box
    ]
    plain = OVD().score(item, _ovd_answer(both), pred_frame="abs_original")
    nms = OVD().score(item, _ovd_answer(both), pred_frame="abs_original", nms_ap=True)
    assert len(plain["pred"]) == 2 and [p["label"] for p in nms["pred"]] == ["pear"] and nms["n_pred_raw"] == 2
    gold = [{"bbox_2d": [0, 0, 10, 10]}, {"bbox_2d": [100, 100, 110, 110]}]
    pred = [{"bbox_2d": [0, 0, 10, 10], "score": 0.2}, {"bbox_2d": [0, 0, 10, 11], "score": 0.9}]
    assert ovdeval_nms(gold, pred) == [pred[1]]


# ---------------------------------------------------------------- Detection (Visual-RFT)


def _rft_answer(boxes) -> str:
    body = ", ".join(f"{{'Position': {list(b)}, 'Confidence': {c}}}" for b, c in boxes)
    return f"<think>…</think> <answer>[{body}]</answer>"


def _grid(box_xywh, w, h):
    x, y, bw, bh = box_xywh
    return [round(x / w * 1000), round(y / h * 1000), round((x + bw) / w * 1000), round((y + bh) / h * 1000)]


@pytest.fixture
def coco_items():
    return Detection().load(FIX / "detection" / "instances_val2017.json", FIX / "detection" / "val2017")


def test_detection_loads_coco_and_lvis(coco_items):
    assert [i.id for i in coco_items] == ["11:6", "11:17", "12:6"]
    assert "category 'bus'" in coco_items[0].question and "'Position': [x1, y1, x2, y2]" in coco_items[0].question
    assert all(Path(i.images[0]).is_file() for i in coco_items)
    assert len(coco_items[1].gold["boxes_xywh"]) == 2
    lvis = Detection().load(FIX / "detection" / "lvis_v1_val.json", FIX / "detection")
    assert [i.meta["category"] for i in lvis] == ["kitchen_table"] and Path(lvis[0].images[0]).is_file()
    only_bus = Detection(categories=["bus"]).load(
        FIX / "detection" / "instances_val2017.json", FIX / "detection" / "val2017"
    )
    assert [i.id for i in only_bus] == ["11:6", "12:6"]


def test_detection_perfect_and_one_missing(coco_items):
    bench = Detection()

    def answer(item, drop=None):
        w, h = item.gold["size"]
        boxes = [_grid(g["bbox"], w, h) for k, g in enumerate(item.gold["boxes_xywh"]) if k != drop]
        return _rft_answer([(b, 0.9) for b in boxes])

    scores, agg = run(bench, coco_items, [answer(i) for i in coco_items])
    assert agg["map"] == pytest.approx(1.0) and agg["map50"] == pytest.approx(1.0)
    assert [s["correct"] for s in scores] == [1.0, 1.0, 1.0]
    _, agg = run(bench, coco_items, [answer(coco_items[0]), answer(coco_items[1], drop=1), answer(coco_items[2])])
    assert agg["per_class_ap"] == pytest.approx({"bus": 1.0, "cat": 51 / 101})
    assert agg["map"] == pytest.approx((1 + 51 / 101) / 2)


def test_detection_map_equals_pycocotools(coco_items, tmp_path):
    bench = Detection()
    responses = [
        # bus on image 11 (1000x700), found, plus a duplicate Visual-RFT drops and a false positive
        _rft_answer([([600, 71, 900, 357], 0.8), ([600, 71, 900, 357], 0.8), ([0, 0, 100, 100], 0.6)]),
        # cats: one loose box, one good one, the list cut short (repaired at its last complete entry)
        "<answer>[{'Position': [110, 150, 320, 440], 'Confidence': 0.55}, {'Position': [500, 286, 700, 714], "
        "'Confidence': 0.9}, {'Position': [1, 2",
        # bus on image 12 (800x600) without tags: the whole response is read
        "[{'Position': [100, 100, 500, 700], 'Confidence': 0.7}]",
    ]
    scores, agg = run(bench, coco_items, responses)
    assert [len(s["pred"]) for s in scores] == [2, 2, 1] and scores[2]["source"] == "fallback"
    # Visual-RFT's trans_bbox by hand: x / 1000 * width, y / 1000 * height, then xywh
    dt = [
        {"image_id": 11, "category_id": 6, "bbox": [600.0, 49.7, 300.0, 200.2], "score": 0.8},
        {"image_id": 11, "category_id": 6, "bbox": [0.0, 0.0, 100.0, 70.0], "score": 0.6},
        {"image_id": 11, "category_id": 17, "bbox": [110.0, 105.0, 210.0, 203.0], "score": 0.55},
        {"image_id": 11, "category_id": 17, "bbox": [500.0, 200.2, 200.0, 299.6], "score": 0.9},
        {"image_id": 12, "category_id": 6, "bbox": [80.0, 60.0, 320.0, 360.0], "score": 0.7},
    ]
    gt = json.loads((FIX / "detection" / "instances_val2017.json").read_text())
    m, m50 = pycocotools_stats(gt, dt, tmp_path)
    assert 0 < m < 1
    assert agg["map"] == pytest.approx(m, abs=1e-9) and agg["map50"] == pytest.approx(m50, abs=1e-9)


def test_detection_training_layout_and_parsing():
    items = Detection().load(FIX / "detection" / "virft_detection.json", FIX / "detection")
    assert [i.meta["category"] for i in items] == ["cat", "dog"]
    assert items[0].gold["boxes_xywh"][0]["bbox"] == pytest.approx([100, 70, 400, 350])
    assert items[1].gold["boxes_xywh"] == []
    bench = Detection()
    s0 = bench.score(items[0], _rft_answer([([100, 100, 500, 600], 0.9)]))
    s1 = bench.score(items[1], "<answer>No Objects</answer>")
    assert s0["correct"] == 1.0 and s1["correct"] == 1.0 and s1["pred"] == []
    agg = bench.aggregate(items, [s0, s1])
    assert agg["map"] == pytest.approx(1.0) and set(agg["per_class_ap"]) == {"cat"}
    assert visual_rft_boxes("[[{'Position': [1, 2, 3, 4], 'Confidence': 0.5}, ...]]") == [
        {"bbox_2d": [1, 2, 3, 4], "score": 0.5}
    ]
    assert visual_rft_boxes("No Objects") == [] and visual_rft_boxes("['cat']") == []


# ---------------------------------------------------------------- Classification (Visual-RFT)


def test_classification_pth_layout_and_per_class():
    bench = Classification()
    items = bench.load(FIX / "classification" / "pets.pth", FIX / "classification")
    assert [i.gold for i in items] == ["abyssinian", "abyssinian", "american_bulldog", "american_pit_bull_terrier"]
    assert items[0].id == "oxford_pets/images/Abyssinian_201.jpg" and Path(items[0].images[0]).is_file()
    assert "identify the species of the pet" in bench.prompt(items[0])
    responses = [
        "<think>…</think><answer>Abyssinian</answer>",
        "<answer>bengal</answer>",
        "<answer>American Bulldog</answer>",  # spaces and case normalised away: a hit
        "<answer>pit bull</answer>",  # a fragment: a miss, though the official substring test counts it
    ]
    scores, agg = run(bench, items, responses)
    assert [s["correct"] for s in scores] == [1.0, 0.0, 1.0, 0.0]
    assert agg["accuracy"] == 0.5 and agg["n"] == 4
    assert agg["per_class"] == {"abyssinian": 0.5, "american_bulldog": 1.0, "american_pit_bull_terrier": 0.0}
    assert agg["per_class_n"]["abyssinian"] == 2 and agg["mean_class_accuracy"] == pytest.approx(0.5)
    official = [bench.score(i, r, match="substring")["correct"] for i, r in zip(items, responses, strict=True)]
    assert official == [1.0, 0.0, 1.0, 1.0]  # the official test: "pitbull" is in "americanpitbullterrier"
    assert bench.score(items[3], "<answer>Pit_Bull_Terrier</answer>", match="substring")["correct"] == 1.0
    assert bench.score(items[3], "no tags: american_pit_bull_terrier")["source"] == "none"


def test_classification_training_layout():
    bench = Classification()
    items = bench.load(FIX / "classification" / "virft_classification.json", FIX / "classification")
    assert [i.gold for i in items] == ["2012 Volkswagen Golf Hatchback", "737-800"]
    assert bench.score(items[0], "<answer>2012 volkswagen golf hatchback</answer>")["correct"] == 1.0
    assert bench.score(items[1], "<answer>737-800</answer>")["correct"] == 1.0
    assert bench.score(items[1], "<answer>737800</answer>")["correct"] == 0.0  # hyphens are kept
