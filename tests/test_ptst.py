"""PTST on the TRL engine (CPU, tiny model): stages chain, metrics per step, refusal, resume; the RL data."""

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.data.manifest import Manifest

METRIC_KEYS = {
    "reward_mean",
    "format_rate",
    "accuracy",
    "response_length_mean",
    "response_length_max",
    "kl",
    "clip_ratio",
}


def ptst_args(tmp_path, demo_dir, start, name, *extra):
    return [
        "ptst",
        "--config",
        "ptst/demo",
        "--name",
        name,
        "--runs-root",
        str(tmp_path),
        f"model.start={start}",
        f"data.manifests=[{demo_dir / 'manifest_train.yaml'}]",
        f"data.val_manifests=[{demo_dir / 'manifest_test.yaml'}]",
        "data.limit=12",
        "grpo.prompts_per_step=2",  # the counts below assume the demo's two prompts per step, whatever it says now
        "grpo.mini_batch_prompts=2",
        "report_to=[]",
        *extra,
    ]


@pytest.mark.slow
def test_two_stages_chain_with_metrics(tiny_models, demo_dir, tmp_path, capsys, monkeypatch):
    from rl.rewards import registry

    scored = []
    real_score = registry.score
    monkeypatch.setattr(
        registry, "score", lambda response, *a, **k: scored.append(response) or real_score(response, *a, **k)
    )
    args = ptst_args(
        tmp_path,
        demo_dir,
        tiny_models["qwen2_5_vl"],
        "chain",
        "stages=[{max_response_length: 16, n: 2, steps: 2}, {max_response_length: 24, n: 2, steps: 1}]",
    )
    assert main(args) == 0
    # each completion scored once (steps x prompts_per_step x n), its format and accuracy logged from that scoring
    assert len(scored) == 2 * 2 * 2 + 1 * 2 * 2
    run = tmp_path / "ptst" / "chain"
    s1 = json.loads((run / "stage_1" / "summary.json").read_text())
    s2 = json.loads((run / "stage_2" / "summary.json").read_text())
    assert s1["steps"] == 2 and s2["steps"] == 1
    assert s2["start"] == str((run / "stage_1" / "final").resolve())  # stage 2 starts where stage 1 ended
    assert s2["schedule"] == {"max_response_length": 24, "n": 2, "steps": 1}
    rows = [json.loads(x) for x in (run / "stage_1" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(METRIC_KEYS <= set(r) for r in rows)
    assert all(r["response_length_max"] <= 16 for r in rows)
    assert (run / "stage_2" / "final" / "model.safetensors").is_file()
    capsys.readouterr()
    assert main(args) == 0  # everything done: both stages are skipped, nothing retrained
    again = capsys.readouterr()
    assert "ptst stage" not in again.out and "stage 2 is complete" in again.err


def test_stage_two_refuses_without_stage_one(tiny_models, demo_dir, tmp_path, capsys):
    assert main(ptst_args(tmp_path, demo_dir, tiny_models["qwen2_5_vl"], "lonely", "stage=2")) == 2
    err = capsys.readouterr().err
    assert "stage 2 starts from" in err and "stage_1/final, which is not there" in err and "make ptst STAGE=1" in err
    assert main(ptst_args(tmp_path, demo_dir, tmp_path / "no-sft", "nosft", "stage=1")) == 2
    assert "run `make sft`" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_interrupted_stage_resumes(tiny_models, demo_dir, tmp_path):
    args = ptst_args(
        tmp_path,
        demo_dir,
        tiny_models["qwen2_5_vl"],
        "resume",
        "stage=1",
        "save_steps=2",
        "stages=[{max_response_length: 16, n: 2, steps: 6}]",
    )
    env = {**os.environ, "VR1_NO_PROGRESS": "1"}
    ckpt = tmp_path / "ptst" / "resume" / "stage_1" / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and not ckpt.exists():
        assert proc.poll() is None, "the stage finished before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "ptst" / "resume" / "stage_1" / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["resumed_from"].split("-")[-1] in ("2", "4")
    # the policy continues from the checkpoint's weights, not the stage's start (see load_checkpoints_with_key_mapping)
    assert f"weights restored from {summary['resumed_from']}" in (tmp_path / "ptst" / "resume" / "run.log").read_text()
    steps = [
        json.loads(x)["step"]
        for x in (tmp_path / "ptst" / "resume" / "stage_1" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(1, 7))


def test_rl_data_parquet_and_validation(tiny_models, demo_dir, tmp_path):
    from pipeline.models.load import load_processor
    from rl.ptst.config import RLData
    from rl.ptst.data import load_split, validate, write_parquet

    items = load_split([str(demo_dir / "manifest_train.yaml")], 10)
    bad_gold = (
        items[0][0].__class__(**{**items[0][0].to_dict(), "id": "bad", "answer": "twelve", "answer_type": "number"}),
        items[0][1],
    )
    processor = load_processor(tiny_models["qwen2_5_vl"])
    keep, problems = validate(items + [bad_gold], processor, RLData(max_prompt_length=2048))
    assert len(keep) == 10 and [p["id"] for p in problems] == ["bad"]
    _, too_long = validate(items[:2], processor, RLData(max_prompt_length=20))
    assert len(too_long) == 2 and "max_prompt_length 20" in too_long[0]["reason"]
    table = pq.read_table(write_parquet(keep, tmp_path / "train.parquet", "train", RLData())).to_pylist()
    for row, (s, _) in zip(table, keep, strict=True):
        assert row["prompt"][0]["content"].count("<image>") == len(row["images"]) == len(s.images)
        assert row["reward_model"] == {"style": "rule", "ground_truth": s.answer}
        extra = row["extra_info"]
        assert extra["answer_type"] == s.answer_type and json.loads(extra["choices"]) == s.choices
        assert json.loads(extra["image_sizes"]) == [[224, 224]] * len(s.images)
    back = Manifest.from_dict({"name": "rt", "format": "verl_parquet", "path": "train.parquet"}, base=tmp_path)
    from pipeline.data.manifest import read_manifest

    assert [s.id for s in read_manifest(back).samples] == [s.id for s, _ in keep]


@pytest.mark.parametrize(
    "lora",
    [
        {"lora_rank": 2, "target_modules": ["q_proj"]},
        {"lora_rank": 2, "target_modules": "all-linear", "freeze_vision_tower": True},
        {"lora_rank": 2, "target_modules": "all-linear"},
    ],
)
def test_trl_policy_honours_target_modules(tiny_models, lora):
    from pipeline.models.load import load_model_and_processor
    from rl.ptst.config import PolicyModel
    from rl.ptst.trl_engine import trainable_policy

    model, _ = load_model_and_processor(tiny_models["qwen2_5_vl"])
    adapted = {
        n.split(".lora_A")[0]
        for n, _ in trainable_policy(model, PolicyModel(**lora)).named_parameters()
        if ".lora_A" in n
    }
    assert adapted
    if lora["target_modules"] == ["q_proj"]:
        assert all(n.endswith("q_proj") for n in adapted)
    elif lora.get("freeze_vision_tower"):
        assert not any(".visual." in n for n in adapted) and any(n.endswith("down_proj") for n in adapted)
    else:  # all-linear means every linear layer, the vision tower included, as on verl
        assert any(".visual." in n for n in adapted)
