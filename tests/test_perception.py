"""Perception tasks end to end (issue 16): box frames against hand-computed boxes, IoU in pixels, the published
layouts (VLM-R1 multi-image and GUI, Visual-RFT's grounding set), rewards chosen per answer type, task metrics and a
user reward's components on both engines, the demo perception sets, and each demo config run by `vr1 ptst`."""

import json
import math
from pathlib import Path

import pytest
from coco_reference import pycocotools_map
from conftest import make_image

from pipeline.cli import main
from pipeline.data.formats import ConvertContext, convert_visual_rft_lisa
from pipeline.data.manifest import Manifest, read_manifest
from pipeline.grading.geometry import frame_size, iou, smart_resize, to_frame
from rl.rewards.detection import giou_reward, ovd_map, rec_iou_reward
from rl.rewards.registry import score

THINK = "<think>I look at the image.</think>"


def answer(text: str) -> str:
    return f"{THINK}<answer>{text}</answer>"


# ---------------------------------------------------------------- frames, by hand


def test_qwen25_resized_frame_maps_back_to_the_original_by_hand():
    info = {"image_sizes": [[640, 480]]}  # default budget: 640/28 = 22.86 -> 23*28 = 644; 480/28 = 17.1 -> 476
    assert smart_resize(640, 480) == (644, 476)
    assert frame_size("abs_resized", info) == (644.0, 476.0)
    assert to_frame([322, 238, 644, 476], "abs_resized", "abs_original", info) == [320.0, 240.0, 640.0, 480.0]
    assert to_frame([500, 500, 1000, 1000], "grid1000", "abs_original", info) == [320.0, 240.0, 640.0, 480.0]
    gold = {"ground_truth": "[320, 240, 640, 480]", "answer_type": "bbox", **info, "coord_frame": "abs_original"}
    assert rec_iou_reward(answer("[322, 238, 644, 476]"), {**gold, "pred_frame": "abs_resized"}) == 1.0
    assert rec_iou_reward(answer("[500, 500, 1000, 1000]"), {**gold, "pred_frame": "grid1000"}) == 1.0
    # a 1000x1000 image under max_pixels 50176 (224x224): the model's 112 is the original's 500
    small = {"image_sizes": [[1000, 1000]], "max_pixels": 50176, "coord_frame": "abs_original"}
    assert frame_size("abs_resized", small) == (224.0, 224.0)
    assert to_frame([112, 0, 224, 224], "abs_resized", "abs_original", small) == [500.0, 0.0, 1000.0, 1000.0]


def test_iou_of_exactly_half_keeps_its_coco_match_in_pixels():
    """On a 333-pixel-wide image, 9/333 and 18/333 in 0-1 coordinates give IoU 0.49999999999999994: the box would
    miss COCO's 0.5 threshold. Boxes in the same frame are compared in pixels: exactly 0.5, matched."""
    info = {"image_sizes": [[333, 777]], "coord_frame": "abs_original", "answer_type": "boxes"}
    gold = [{"bbox_2d": [0, 0, 18, 100], "label": "cat"}]
    pred = [{"bbox_2d": [0, 0, 9, 100], "label": "cat"}]
    assert iou(gold[0]["bbox_2d"], pred[0]["bbox_2d"]) == 0.5
    normalised = [[v / s for v, s in zip(b["bbox_2d"], (333, 777, 333, 777), strict=True)] for b in gold + pred]
    assert iou(*normalised) < 0.5  # what comparing in 0-1 coordinates did
    got = ovd_map(answer(json.dumps(pred)), {**info, "ground_truth": json.dumps(gold)})
    assert got == pytest.approx(pycocotools_map(gold, pred)) == pytest.approx(0.1)


def test_giou_by_hand_ranks_near_misses():
    info = {"ground_truth": "[0, 0, 10, 10]", "answer_type": "bbox", "image_sizes": [[100, 100]]}
    assert giou_reward(answer("[0, 0, 10, 10]"), info) == 1.0
    assert giou_reward(answer("[5, 0, 15, 10]"), info) == pytest.approx((1 / 3 + 1) / 2)  # IoU 1/3, hull = union
    assert giou_reward(answer("[20, 0, 30, 10]"), info) == pytest.approx((-1 / 3 + 1) / 2)  # hull 300, union 200
    assert giou_reward(answer("(0,0),(10,10)"), info) == 1.0  # Visual-RFT's grounding layout
    assert giou_reward(answer("[[0, 0, 10, 10], [1, 1, 2, 2]]"), info) == 0.0  # not one box


# ---------------------------------------------------------------- published layouts


def test_visual_rft_lisa_layout(tmp_path):
    # lisa_evaluation/gen_sft.py (Liuziyu77/Visual-RFT 9486633) writes this record shape; boxes on the 0-1000 grid
    rec = {
        "id": "lisa_0",
        "conversations": [
            {
                "from": "user",
                "value": "<img>train/a.jpg</img>\n Output the bounding box in the image corresponding to the "
                "instruction: the thing used to cut the bread",
            },
            {"from": "assistant", "value": "(12,30),(400,512)"},
        ],
    }
    s = convert_visual_rft_lisa(rec, ConvertContext("lisa"))
    assert (s.question, s.answer, s.answer_type, s.images) == (
        "the thing used to cut the bread",
        "[12, 30, 400, 512]",
        "bbox",
        ["train/a.jpg"],
    )
    assert s.meta == {"coord_frame": "grid1000", "pred_frame": "grid1000"}


def _vlm_r1_manifest(tmp_path: Path, records: list[dict]) -> Manifest:
    for rec in records:
        for name in rec["image"] if isinstance(rec["image"], list) else [rec["image"]]:
            make_image(tmp_path / "images" / name, size=(64, 48))
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return Manifest.from_dict({"name": "v", "format": "vlm_r1", "path": "data.jsonl", "image_root": "images"}, tmp_path)


def test_vlm_r1_multi_image_mcq_and_gui_records_reach_the_rl_rows(tmp_path):
    """VLM-R1's multi-image records (data_jsonl/gui_multi-image.jsonl at om-ai-lab/VLM-R1 90052f4: `image` a list of
    two screenshots, the defect name as the gpt turn) and an `accu_reward_method: mcq` record (gold written as
    `<answer>B</answer>`): one image entry per image in the RL row, and each scored by its own rule."""
    from rl.ptst.config import RLData
    from rl.ptst.data import load_split, trl_rows

    gui_question = (
        "You are tasked with identifying any UI Interaction Defects using the user action and two screenshots "
        '(before and after the action). ... Only output the specific defect or "No Defect" if none are present.'
    )
    records = [
        {
            "id": 1,
            "image": ["GOOGLE_APPS-1_13.png", "GOOGLE_APPS-1_14.png"],
            "conversations": [
                {"from": "human", "value": "<image><image>" + gui_question},
                {"from": "gpt", "value": "Operation No Response"},
            ],
        },
        {
            "id": 2,
            "image": ["left.png", "right.png"],
            "conversations": [
                {"from": "human", "value": "<image><image>Which image is brighter?\nA. left\nB. right"},
                {"from": "gpt", "value": "<answer>B</answer>"},
            ],
            "accu_reward_method": "mcq",
        },
    ]
    manifest = _vlm_r1_manifest(tmp_path, records)
    samples = read_manifest(manifest).samples
    assert [(s.answer, s.answer_type, len(s.images)) for s in samples] == [
        ("Operation No Response", "text", 2),
        ("B", "choice", 2),
    ]
    (tmp_path / "m.yaml").write_text(
        "name: v\nformat: vlm_r1\npath: data.jsonl\nimage_root: images\n",
    )
    rows = trl_rows(load_split([str(tmp_path / "m.yaml")], None), RLData())
    assert [len(r["images"]) for r in rows] == [2, 2]
    assert [sum(p["type"] == "image" for p in r["prompt"][-1]["content"]) for r in rows] == [2, 2]
    infos = [{"ground_truth": s.answer, "answer_type": s.answer_type, "choices": s.choices} for s in samples]
    assert score(answer("Operation No Response"), infos[0])["accuracy"] == 1.0
    assert score(answer("No Defect"), infos[0])["accuracy"] == 0.0
    assert score(answer("B"), infos[1])["score"] == 1.0


def test_manifest_pred_frame_reaches_the_reward_and_wins_over_the_run(tmp_path):
    from pipeline.data.reward_info import info_from_columns, reward_columns, reward_info

    make_image(tmp_path / "images" / "a.png", size=(200, 100))
    row = {"id": "a", "image": "a.png", "conversations": [{"from": "human", "value": "<image>the cat"}]}
    row["conversations"].append({"from": "gpt", "value": "[0, 0, 100, 50]"})
    (tmp_path / "data.jsonl").write_text(json.dumps(row) + "\n")
    spec = {"name": "v", "format": "vlm_r1", "path": "data.jsonl", "image_root": "images", "pred_frame": "grid1000"}
    s = read_manifest(Manifest.from_dict(spec, tmp_path)).samples[0]
    info = info_from_columns(
        s.answer, reward_columns(reward_info(s, lambda r: tmp_path / "images" / r, pred_frame="abs_resized"))
    )
    assert info["pred_frame"] == "grid1000" and info["image_paths"] == [str(tmp_path / "images" / "a.png")]
    assert score(answer("[0, 0, 500, 500]"), info)["iou"] == 1.0  # grid 500 = half of 200 x 100
    with pytest.raises(Exception, match="pred_frame 'pixels' unknown"):
        Manifest.from_dict({**spec, "pred_frame": "pixels"}, tmp_path)


# ---------------------------------------------------------------- rewards per type, metrics, user rewards


def test_a_mixed_set_gets_each_answer_types_reward():
    per_type = {"boxes": "visual_rft_det", "label": "visual_rft_cls"}
    boxes = {"ground_truth": '[{"bbox_2d": [0, 0, 10, 10], "label": "cat"}]', "answer_type": "boxes"}
    boxes["image_sizes"] = [[100, 100]]
    label = {"ground_truth": "american_bulldog", "answer_type": "label"}
    got = score(answer("[{'Position': [0, 0, 10, 10], 'Confidence': 0.9}]"), boxes, per_type)
    assert set(got) >= {"det_iou", "det_confidence", "map", "redundancy", "boxes_per_answer"}
    assert got["score"] == pytest.approx((1 + 1 + 0.9) / 3)
    got = score(answer("American Bulldog"), label, per_type)
    assert got["score"] == 1.0 and "det_iou" not in got
    # types left out get their default preset
    number = score(answer("7"), {"ground_truth": "7", "answer_type": "number"}, per_type)
    assert number["hfrrf"] == 1.0


def test_task_metrics_of_rec_and_ovd():
    rec = {"ground_truth": "[0, 0, 10, 20]", "answer_type": "bbox", "image_sizes": [[100, 100]]}
    got = score(answer("[0, 0, 10, 10]"), rec, "vlm_r1_rec")
    assert (got["iou"], got["acc_at_50"], got["boxes_per_answer"], got["score"]) == (0.5, 0.0, 1.0, 0.75)
    ovd = {
        "ground_truth": '[{"bbox_2d": [0, 0, 10, 10], "label": "cat"}]',
        "answer_type": "boxes",
        "image_sizes": [[100, 100]],
    }
    twice = answer(
        json.dumps([{"bbox_2d": [0, 0, 10, 10], "label": "cat"}, {"bbox_2d": [50, 50, 60, 60], "label": "cat"}])
    )
    got = score(twice, ovd, "vlm_r1_ovd")
    assert got["redundancy"] == 0.5 and got["boxes_per_answer"] == 2.0
    assert got["ovd"] == pytest.approx(0.5 * got["map"]) and got["accuracy"] == got["ovd"]


USER_REWARD = '''
def score(response, info):
    """Documented signature: the response and the sample's metadata."""
    assert info["image_paths"] and info["image_sizes"] and info["answer_type"]
    longer = min(1.0, len(response) / 400)
    return {"score": longer, "length": longer, "images": float(len(info["image_paths"]))}
'''


def test_a_user_reward_with_components_on_verl(tmp_path):
    """verl's own loader (get_custom_reward_fn) with the kwargs our launcher writes: the user's components come back
    in the reward dict, and our sampler averages every component, NaN (not this response's task) left out."""
    from test_reward_engines import VERL_REWARD, verl_config
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from rl.ptst.verl_sampler import step_metrics

    user = tmp_path / "my_reward.py"
    user.write_text(USER_REWARD)
    fn = get_custom_reward_fn(
        verl_config(
            [
                f"reward.custom_reward_function.path={VERL_REWARD}",
                "reward.custom_reward_function.name=compute_score",
                f"+reward.custom_reward_function.reward_kwargs.reward='{user}:score'",
                "+reward.custom_reward_function.reward_kwargs.metric_types=[bbox]",
            ]
        )
    )
    extra = {"answer_type": "bbox", "image_sizes": "[[100, 100]]", "image_paths": '["/data/a.png"]'}
    out = fn(data_source="d", solution_str=answer("[0, 0, 10, 10]"), ground_truth="[0, 0, 10, 10]", extra_info=extra)
    assert out["score/length"] == pytest.approx(min(1.0, len(answer("[0, 0, 10, 10]")) / 400))  # <function>/<key>
    assert out["score/images"] == 1.0 and out["iou"] == 1.0 and out["acc_at_50"] == 1.0
    choice = fn(
        data_source="d",
        solution_str=answer("B"),
        ground_truth="B",
        extra_info={"answer_type": "choice", "image_paths": '["/d/b.png"]', "image_sizes": "[[8, 8]]"},
    )
    assert set(choice) == set(out) and math.isnan(choice["iou"])  # the same keys for every response
    metrics = step_metrics([out, choice], [10, 10], 64)
    assert metrics["vr1/iou"] == 1.0 and metrics["vr1/score/images"] == 1.0


# ---------------------------------------------------------------- the demo perception sets and configs


def test_perception_demo_sets(demo_dir, tmp_path):
    from pipeline.data.perception_demo import TASKS, write_perception_demo

    counts = write_perception_demo(demo_dir, tmp_path / "p", seed=0)
    again = write_perception_demo(demo_dir, tmp_path / "q", seed=0)
    assert counts == again and all(counts[t]["train"] > 0 and counts[t]["test"] > 0 for t in TASKS)
    for task in TASKS:
        assert (tmp_path / "p" / f"{task}_train.jsonl").read_bytes() == (
            tmp_path / "q" / f"{task}_train.jsonl"
        ).read_bytes()
    read = {
        (t, split): read_manifest(Manifest.load(tmp_path / "p" / f"manifest_{t}_{split}.yaml")).samples
        for t in TASKS
        for split in ("train", "test")
    }
    types = {t: {s.answer_type for s in read[(t, "train")]} for t in TASKS}
    assert types == {
        "rec": {"bbox"},
        "ovd": {"boxes"},
        "detection": {"boxes"},
        "classification": {"label"},
        "grounding": {"bbox"},
    }
    train_images = {img for t in TASKS for s in read[(t, "train")] for img in s.images}
    test_images = {img for t in TASKS for s in read[(t, "test")] for img in s.images}
    assert not train_images & test_images
    det = read[("detection", "train")]
    assert all(s.meta["pred_frame"] == "grid1000" for s in det) and any(s.answer == "[]" for s in det)
    demo = {s.id: s for s in read_manifest(Manifest.load(demo_dir / "manifest_train.yaml")).samples}
    for s in read[("rec", "train")]:  # the REC box is the named object's own box
        objects = demo[s.meta["from"]].meta["objects"][0]
        named = s.question.rsplit("the ", 1)[1].rstrip(".")
        assert [o["bbox_2d"] for o in objects if o["label"] == named] == [json.loads(s.answer)]


@pytest.mark.slow
@pytest.mark.parametrize("task,family", [("rec", "qwen2_5_vl"), ("detection", "qwen2_vl")])
def test_demo_config_trains_logs_task_metrics_and_evaluates(task, family, tiny_models, demo_dir, tmp_path, capsys):
    from pipeline.data.perception_demo import write_perception_demo

    data = tmp_path / "perception"
    write_perception_demo(demo_dir, data, seed=0)
    code = main(
        [
            "ptst",
            "--config",
            f"ptst/demo_{task}",
            "--name",
            task,
            "--runs-root",
            str(tmp_path / "runs"),
            f"model.start={tiny_models[family]}",
            f"data.manifests=[{data / f'manifest_{task}_train.yaml'}]",
            f"data.val_manifests=[{data / f'manifest_{task}_test.yaml'}]",
            "data.limit=4",
            "stages=[{max_response_length: 16, n: 2, steps: 1}]",
            "report_to=[]",
            "eval=null",
        ]
    )
    assert code == 0
    row = json.loads((tmp_path / "runs" / "ptst" / task / "stage_1" / "metrics.jsonl").read_text().splitlines()[0])
    wanted = {"rec": {"iou", "acc_at_50", "boxes_per_answer"}, "detection": {"map", "redundancy", "boxes_per_answer"}}
    assert wanted[task] <= set(row) and {"format_rate", "accuracy"} <= set(row)
    validation = json.loads((tmp_path / "runs" / "ptst" / task / "data" / "validation.json").read_text())
    assert validation["train"] == 4 and not validation["excluded"]
    from rl.ptst.main import evaluate_final

    eval_cfg = tmp_path / "eval.yaml"
    eval_cfg.write_text(
        f"model: {{backend: transformers, model: x, device: cpu, max_pixels: 50176, max_tokens: 8, batch_size: 4}}\n"
        f"benchmarks:\n  - {{name: manifest, path: {data / f'manifest_{task}_test.yaml'}, limit: 2}}\n"
    )
    evaluate_final(
        str(eval_cfg), str(tmp_path / "runs" / "ptst" / task / "stage_1" / "final"), task, str(tmp_path / "runs")
    )
    results = json.loads((tmp_path / "runs" / "eval" / task / "results.json").read_text())
    assert results["manifest"]["n"] == 2
    wanted_mean = {"rec": "mean_iou", "detection": "mean_map"}[task]
    assert 0 <= results["manifest"][wanted_mean] <= 1 and "mean_boxes_per_answer" in results["manifest"]


@pytest.mark.slow
def test_internvl_trains_on_trl_with_a_user_reward_and_logs_its_components(tiny_models, demo_dir, tmp_path):
    """InternVL (the -hf layout) on the TRL engine; a user reward that varies by response gives the group an
    advantage, so the step has a gradient, and its components land in metrics.jsonl under the same names verl uses."""
    from pipeline.data.perception_demo import write_perception_demo

    data = tmp_path / "perception"
    write_perception_demo(demo_dir, data, seed=0)
    user = tmp_path / "my_reward.py"
    user.write_text(USER_REWARD)
    code = main(
        [
            "ptst",
            "--config",
            "ptst/demo_classification",
            "--name",
            "ivl",
            "--runs-root",
            str(tmp_path / "runs"),
            f"model.start={tiny_models['internvl']}",
            f"data.manifests=[{data / 'manifest_classification_train.yaml'}]",
            f"data.val_manifests=[{data / 'manifest_classification_test.yaml'}]",
            f"data.reward={user}:score",
            "data.limit=2",
            "stages=[{max_response_length: 24, n: 4, steps: 1}]",
            "grpo.temperature=1.5",
            "report_to=[]",
            "eval=null",
        ]
    )
    assert code == 0
    row = json.loads((tmp_path / "runs" / "ptst" / "ivl" / "stage_1" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["score/images"] == 1.0 and 0 < row["score/length"] <= 1
    assert row["grad_norm"] > 0


def test_a_user_reward_returning_junk_components_is_refused_before_training(tmp_path, demo_dir):
    from pipeline.errors import Vr1Error
    from rl.ptst.config import RLData
    from rl.ptst.data import load_split
    from rl.ptst.preflight import check_reward

    user = tmp_path / "bad.py"
    user.write_text("def score(response, info):\n    return {'score': 1.0, 'note': 'fine'}\n")
    items = load_split([str(demo_dir / "manifest_train.yaml")], 2)
    with pytest.raises(Vr1Error, match=r"non-numeric component\(s\) \['note'\]"):
        check_reward(RLData(reward=f"{user}:score"), items)
