"""One reward input for both engines: the same samples written as verl parquet (read back the way verl's dataset
reads it, scored through verl's own custom-reward loader) and as TRL rows (passed to the reward function the way
GRPOTrainer gathers its columns) give identical scores for every answer type and coordinate frame."""

import json
from pathlib import Path

import pytest
import yaml
from conftest import make_image

VERL_REWARD = Path(__file__).resolve().parent.parent / "rl" / "rewards" / "verl_reward.py"
THINK = "<think>looking at the picture</think>"
BUDGET = (4 * 28 * 28, 200 * 28 * 28)  # a non-default budget, so the abs_resized frame depends on it

# (answer_type, gold, choices, coord_frame, reward preset, completions)
CASES = [
    (
        "choice",
        "B",
        ["3", "4", "5"],
        None,
        "hfrrf",
        [
            f"{THINK}<answer>B</answer>",
            f"{THINK}<answer>(B)</answer>",
            "<answer>B</answer>",
            f"{THINK}<answer>A</answer>",
            f"{THINK}<answer>A or B</answer>",
        ],
    ),
    (
        "number",
        "12",
        None,
        None,
        "hfrrf",
        [f"{THINK}<answer>12</answer>", f"{THINK}<answer>12.0 cm</answer>", f"{THINK}<answer>13</answer>", "12"],
    ),
    (
        "expression",
        "\\frac{1}{2}",
        None,
        None,
        "hfrrf",
        [
            f"{THINK}<answer>0.5</answer>",
            f"{THINK}<answer>\\dfrac{{2}}{{4}}</answer>",
            f"{THINK}<answer>\\sqrt{{2}}</answer>",
        ],
    ),
    (
        "text",
        "red circle",
        None,
        None,
        "hfrrf",
        [f"{THINK}<answer>Red circle.</answer>", f"{THINK}<answer>blue square</answer>"],
    ),
    (
        "label",
        "cat",
        None,
        None,
        "visual_rft_cls",
        [f"{THINK}<answer>cat</answer>", f"{THINK}<answer>cat, dog</answer>", "<answer>cat</answer>"],
    ),
    *[
        (
            "bbox",
            json.dumps(box),
            None,
            frame,
            "vlm_r1_rec",
            [
                f"{THINK}<answer>{json.dumps(box)}</answer>",
                f"{THINK}<answer>{json.dumps([v * 1.2 for v in box])}</answer>",
                f"{THINK}<answer>[1, 2, 3]</answer>",
            ],
        )
        for frame, box in (
            ("abs_original", [64, 48, 320, 240]),
            ("abs_resized", [20, 20, 200, 150]),
            ("grid1000", [100, 100, 500, 500]),
            ("normalized", [0.1, 0.1, 0.5, 0.5]),
        )
    ],
    (
        "boxes",
        json.dumps(
            [{"bbox_2d": [10, 10, 100, 100], "label": "cat"}, {"bbox_2d": [200, 200, 300, 300], "label": "dog"}]
        ),
        None,
        "abs_original",
        "vlm_r1_ovd",
        [
            f'{THINK}<answer>[{{"bbox_2d": [10, 10, 100, 100], "label": "cat"}}, '
            f'{{"bbox_2d": [200, 200, 300, 300], "label": "dog"}}]</answer>',
            f'{THINK}<answer>[{{"bbox_2d": [12, 12, 100, 100], "label": "cat"}}]</answer>',
            f"{THINK}<answer>None</answer>",
        ],
    ),
    (
        "boxes",
        json.dumps([{"bbox_2d": [100, 100, 400, 400], "label": "dog"}]),
        None,
        "grid1000",
        "visual_rft_det",
        [
            f"{THINK}<answer>[{{'Position': [100, 100, 400, 400], 'Confidence': 0.9}}]</answer>",
            f"{THINK}<answer>[{{'Position': [100, 100, 400, 400], 'Confidence': 0.6}}, "
            f"{{'Position': [600, 600, 900, 900], 'Confidence': 0.3}}]</answer>",
            f"{THINK}<answer>[{{'Position': [600, 600, 900, 900], 'Confidence': 0.8}}]</answer>",
        ],
    ),
]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The cases as a vr1 data set, read and written by the product's own PTST data path."""
    from rl.ptst.config import RLData
    from rl.ptst.data import load_split, trl_rows, write_parquet

    root = tmp_path_factory.mktemp("reward_info")
    make_image(root / "img.png", size=(640, 480))
    rows = [
        {
            "id": f"case{i}",
            "source": "engines",
            "question": "<image>What is it?",
            "answer": gold,
            "answer_type": atype,
            "images": ["img.png"],
            "choices": choices,
            "meta": {"coord_frame": frame} if frame else {},
        }
        for i, (atype, gold, choices, frame, _, _) in enumerate(CASES)
    ]
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "manifest.yaml").write_text(yaml.safe_dump({"name": "engines", "format": "vr1", "path": "data.jsonl"}))
    items = load_split([str(root / "manifest.yaml")], None)
    assert len(items) == len(CASES)
    cfg = RLData(min_pixels=BUDGET[0], max_pixels=BUDGET[1])
    return write_parquet(items, root / "train.parquet", "train", cfg), trl_rows(items, cfg)


def verl_scores(parquet: Path, index: int, completions: list[str], preset: str) -> list[dict]:
    import datasets
    from test_reward_engines import verl_config
    from verl.trainer.ppo.reward import get_custom_reward_fn

    # verl's RLHFDataset reads its parquet files with datasets' parquet loader; the reward manager passes the
    # row's data_source, reward_model.ground_truth and extra_info to the loaded compute_score
    row = datasets.load_dataset("parquet", data_files=str(parquet), split="train")[index]
    fn = get_custom_reward_fn(
        verl_config(
            [
                f"reward.custom_reward_function.path={VERL_REWARD}",
                "reward.custom_reward_function.name=compute_score",
                f"+reward.custom_reward_function.reward_kwargs.reward={preset}",
            ]
        )
    )
    return [
        fn(
            data_source=row["data_source"],
            solution_str=c,
            ground_truth=row["reward_model"]["ground_truth"],
            extra_info=row["extra_info"],
        )
        for c in completions
    ]


def trl_scores(rows: list[dict], index: int, completions: list[str], preset: str) -> tuple[list[float], dict]:
    import datasets

    from rl.rewards.trl_rewards import make_trl_reward

    ds = datasets.Dataset.from_list(rows).cast_column("images", datasets.List(datasets.Image()))
    inputs = [ds[index]] * len(completions)  # one prompt's group, as GRPOTrainer repeats it
    keys = [k for k in inputs[0] if k not in ("prompt", "completion", "completion_ids")]
    columns = {k: [example[k] for example in inputs] for k in keys}  # GRPOTrainer._calculate_rewards' gathering
    logged = {}
    fn = make_trl_reward(preset, "reward", log_components=True)
    scores = fn(
        prompts=[x["prompt"] for x in inputs], completions=completions, log_metric=logged.__setitem__, **columns
    )
    return scores, logged


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{c[0]}-{c[3] or c[4]}" for c in CASES])
def test_both_engines_score_alike(written, index):
    parquet, rows = written
    atype, _, _, _, preset, completions = CASES[index]
    verl = verl_scores(parquet, index, completions, preset)
    trl, logged = trl_scores(rows, index, completions, preset)
    assert [v["score"] for v in verl] == trl
    for component in ("format", "accuracy"):
        assert logged[f"rewards/{component}/mean"] == pytest.approx(sum(v[component] for v in verl) / len(verl))
    assert trl[0] == max(trl) > min(trl)  # the cases tell right from wrong, so agreement means something


def test_the_reward_input_carries_frame_and_budget(written):
    import datasets

    from pipeline.data.reward_info import info_from_columns
    from pipeline.grading.geometry import frame_size

    parquet, rows = written
    resized = next(i for i, c in enumerate(CASES) if c[3] == "abs_resized")
    extra = datasets.load_dataset("parquet", data_files=str(parquet), split="train")[resized]["extra_info"]
    from_verl = info_from_columns(CASES[resized][1], extra)
    from_trl = info_from_columns(rows[resized]["answer"], rows[resized])
    for info in (from_verl, from_trl):
        assert info["coord_frame"] == "abs_resized" and info["image_sizes"] == [[640, 480]]
        assert (info["min_pixels"], info["max_pixels"]) == BUDGET
    # the resized frame is the processor's image under this budget, not under the default one
    assert frame_size("abs_resized", from_verl) == (448.0, 336.0)  # 192 patches of 28 x 28 <= 200 in the budget
    assert frame_size("abs_resized", {"image_sizes": [[640, 480]]}) == (644.0, 476.0)
