"""`vr1 ptst` refuses early, in plain words, before any Ray start: rewards that cannot score the data, user rewards
that do not load or cannot score a sample, start models that are neither folders nor hub ids, a verl environment
that is missing pieces; `--dry-run` of any stage on its own; the memory estimate."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.data.schema import Sample
from pipeline.errors import Vr1Error
from rl.ptst.config import RLData
from rl.ptst.preflight import check_reward, describe_plan, start_reference

BOX = '[{"bbox_2d": [1, 2, 30, 40], "label": "cat"}]'


def _items(tmp_path, *kinds):
    from conftest import make_image

    make_image(tmp_path / "images" / "a.png")
    out = []
    for i, kind in enumerate(kinds):
        answer, choices = {"number": ("42", None), "boxes": (BOX, None), "choice": ("B", ["x", "y"])}[kind]
        out.append((Sample(f"{kind}{i}", "src", "q?", answer, kind, ["images/a.png"], choices), tmp_path))
    return out


def test_unknown_reward_names_the_closest_known_one(tmp_path):
    with pytest.raises(Vr1Error, match=r"unknown reward 'hfrf' \(did you mean 'hfrrf'\?\)"):
        check_reward(RLData(reward="hfrf"), _items(tmp_path, "number"))


def test_a_preset_that_scores_boxes_zero_is_refused_and_auto_chooses_per_type(tmp_path):
    items = _items(tmp_path, "number", "boxes", "boxes")
    with pytest.raises(Vr1Error) as e:
        check_reward(RLData(reward="hfrrf"), items)
    msg = str(e.value)
    assert "cannot score the 2 'boxes' item(s)" in msg and "src/boxes1" in msg
    assert "data.reward=auto (it picks vlm_r1_ovd for boxes)" in msg and "'vlm_r1_ovd'" in msg
    plan = check_reward(RLData(reward="auto"), items)
    assert plan == {"boxes": {"box_format": 0.5, "ovd": 0.5}, "number": {"hfrrf": 1.0}}
    assert describe_plan(plan) == "boxes: 0.5*box_format + 0.5*ovd; number: 1*hfrrf"
    with pytest.raises(Vr1Error, match="'number' item"):
        check_reward(RLData(reward="vlm_r1_ovd"), items)


USER_REWARDS = {
    "good": "def score(response, info):\n    return float(info['ground_truth'] in response)\n",
    "raises": "def score(response, info):\n    return info['no_such_key']\n",
    "text": "def score(response, info):\n    return 'yes'\n",
    "broken": "def score(response, info)\n    return 1\n",
}


@pytest.mark.parametrize(
    "kind, message",
    [
        ("raises", "failed on src/number0 \\(number\\) before training: KeyError: 'no_such_key'"),
        ("text", "returned 'yes' for src/number0; a reward returns a finite number"),
        ("broken", "SyntaxError|invalid syntax|expected ':'"),
        ("missing", "user reward file not found"),
    ],
)
def test_a_user_reward_that_cannot_score_a_sample_is_refused(kind, message, tmp_path):
    path = tmp_path / f"{kind}.py"
    if kind != "missing":
        path.write_text(USER_REWARDS[kind])
    with pytest.raises(Vr1Error, match=message):
        check_reward(RLData(reward=f"{path}:score"), _items(tmp_path, "number"))


def test_a_user_reward_scores_the_same_on_both_engines(tmp_path):
    from rl.rewards.trl_rewards import make_trl_reward
    from rl.rewards.verl_reward import compute_score

    path = tmp_path / "good.py"
    path.write_text(USER_REWARDS["good"])
    ref = f"{path}:score"
    assert check_reward(RLData(reward=ref), _items(tmp_path, "number")) == {"number": {ref: 1.0}}
    responses = ["<think>x</think><answer>42</answer>", "no answer here", "7"]
    trl = make_trl_reward(ref, "reward")(completions=responses, answer=["42"] * 3, answer_type=["number"] * 3)
    verl = [compute_score("src", r, "42", {"answer_type": "number"}, reward=ref)["score"] for r in responses]
    assert trl == verl == [1.0, 0.0, 0.0]


def test_start_model_is_a_folder_or_a_hub_id(tiny_models, tmp_path, monkeypatch):
    folder = tiny_models["qwen2_5_vl"]
    assert start_reference(str(folder)) == (str(folder.resolve()), folder.resolve())
    (tmp_path / "empty").mkdir()
    with pytest.raises(Vr1Error, match="local path without a config.json"):
        start_reference(str(tmp_path / "empty"))
    with pytest.raises(Vr1Error, match="neither a local model folder .* nor a hub id"):
        start_reference(str(tmp_path / "no" / "sft" / "final"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no hub here: the refusal must say how to get the model
    with pytest.raises(Vr1Error, match="looks like a hub id but could not be fetched.*huggingface-cli download"):
        start_reference("Qwen/Qwen2.5-VL-7B-Instruct")


def _vr1(args, cwd, **env):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "VR1_NO_PROGRESS": "1", "PYTHONPATH": str(Path(__file__).parent.parent), **env},
        timeout=600,
    )


def _config(tmp_path, demo_dir, tiny_models, **data) -> Path:
    cfg = {
        "engine": "verl",
        "stages": [{"max_response_length": 64, "n": 4, "steps": 2}, {"max_response_length": 128, "n": 2, "steps": 2}],
        "model": {"start": str(tiny_models["qwen2_5_vl"])},
        "data": {
            "manifests": [str(demo_dir / "manifest_train.yaml")],
            "val_manifests": [str(demo_dir / "manifest_test.yaml")],
            "limit": 6,
            "val_limit": 2,
            "max_prompt_length": 512,
            "max_pixels": 50176,
            **data,
        },
        "grpo": {"prompts_per_step": 4, "mini_batch_prompts": 4},
        "cluster": {"n_gpus_per_node": 1, "gpu_memory_gib": 80},
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.slow
def test_dry_run_of_stage_2_alone_plans_from_where_stage_1_will_leave_its_output(tiny_models, demo_dir, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    config = _config(tmp_path, demo_dir, tiny_models)
    before = _tree(work)
    out = _vr1(["ptst", "--config", str(config), "--name", "plan", "--dry-run", "stage=2"], work)
    assert out.returncode == 0, out.stderr[-2000:]
    run = work / "runs" / "ptst" / "plan"
    assert f"actor_rollout_ref.model.path={run.resolve()}/stage_1/final" in out.stdout
    assert "stage 2 (verl):" in out.stdout and "stage 1 (verl):" not in out.stdout
    assert "memory estimate, 128 tokens x 2" in out.stdout
    assert "not ready for a real launch" in out.stderr  # no vLLM or GPU here: said, not fatal for a plan
    assert all(p.startswith("runs/ptst/plan") for p in _tree(work) - before if p not in ("runs", "runs/ptst"))
    assert not (work / "runs" / "ptst" / "latest").exists()
    assert (run / "data" / "train.parquet").is_file() and not (run / "stage_1").exists()


def test_a_real_verl_launch_without_its_environment_is_refused_before_anything_starts(tiny_models, demo_dir, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    out = _vr1(["ptst", "--config", str(_config(tmp_path, demo_dir, tiny_models)), "--name", "go"], work)
    assert out.returncode != 0
    assert "the verl path cannot start here" in out.stderr and "vllm" in out.stderr
    assert "make install-gpu" in out.stderr and "no CUDA device visible" in out.stderr
    assert not (work / "runs").exists()  # nothing created, no Ray started


def test_doctor_lists_what_the_verl_path_needs(tmp_path):
    out = _vr1(["doctor"], tmp_path)
    assert out.returncode == 1  # this machine has no vLLM and no GPU
    for name in ("verl", "ray", "vllm", "torchvision", "qwen_vl_utils", "flash_attn", "cuda"):
        assert f"\n  {name} " in out.stdout
    assert "0.9.1" in out.stdout and "make install-gpu" in out.stdout


def test_memory_estimate_grows_with_the_stage_and_warns_past_the_gpu(
    tiny_models, tmp_path, caplog, capsys, monkeypatch
):
    from pipeline.progress import LOG

    monkeypatch.setattr(LOG, "propagate", True)  # vr1's logger writes to its run log; let caplog see it too
    from pipeline.config import build
    from rl.ptst.config import PTSTConfig, Stage
    from rl.ptst.memory import Shape, check_memory, estimate

    cfg = build(PTSTConfig, {"cluster": {"gpu_memory_gib": 80}})
    shape = Shape(parameters=8_290_000_000, layers=28, hidden=3584, kv_width=512, vocab=152064)  # Qwen2.5-VL-7B
    est = [estimate(cfg, s, shape) for s in cfg.stages]
    assert est[0]["of_which_weights_optimizer_gib"] == pytest.approx(8.29e9 * 16 / 8 / 2**30, rel=1e-3)
    assert est[0]["training_gib"] < est[1]["training_gib"] < est[2]["training_gib"]
    lora = estimate(build(PTSTConfig, {"model": {"lora_rank": 64}}), cfg.stages[0], shape)
    assert lora["of_which_weights_optimizer_gib"] < est[0]["of_which_weights_optimizer_gib"] / 4
    one_gpu = build(PTSTConfig, {"cluster": {"n_gpus_per_node": 1, "gpu_memory_gib": 24}})
    check_memory(one_gpu, Stage(16384, 4, 1), tiny_models["qwen2_5_vl"], tmp_path)
    assert "memory estimate, 16384 tokens x 4" in capsys.readouterr().out
    tiny = check_memory(one_gpu, Stage(64, 2, 1), tiny_models["qwen2_5_vl"], tmp_path)
    assert tiny["parameters_b"] < 0.01 and not any("GiB per GPU" in r.message for r in caplog.records)
    # a hub model whose processor files alone were fetched: its size comes from the weight index
    hub = tmp_path / "qwen7b"
    hub.mkdir()
    text = {"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4}
    (hub / "config.json").write_text(json.dumps({"text_config": {**text, "vocab_size": 152064}, "dtype": "bfloat16"}))
    (hub / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 16_581_959_680}}))
    big = check_memory(one_gpu, Stage(16384, 4, 1), hub, tmp_path)
    assert big["parameters_b"] == pytest.approx(8.29, abs=0.01)
    assert any("more than cluster.gpu_memory_gib=24" in r.message for r in caplog.records)


def test_validation_sharing_items_with_training_is_refused(tiny_models, demo_dir, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    same = [str(demo_dir / "manifest_train.yaml")]
    config = _config(tmp_path, demo_dir, tiny_models, val_manifests=same, limit=None, val_limit=None)
    out = _vr1(["ptst", "--config", str(config), "--name", "leak", "--dry-run"], work)
    assert out.returncode != 0
    assert "validation item(s) also appear in training" in out.stderr and "demo/" in out.stderr


def test_a_mix_draws_a_seeded_sample_of_a_manifest(demo_dir):
    from rl.ptst.data import load_split

    ref = str(demo_dir / "manifest_train.yaml")
    whole = [s.id for s, _ in load_split([ref], None)]
    drawn = [s.id for s, _ in load_split([ref], None, {ref: 10}, seed=0)]
    assert len(drawn) == 10 and drawn == [i for i in whole if i in drawn]  # file order kept
    assert drawn != whole[:10] and drawn == [s.id for s, _ in load_split([ref], None, {ref: 10}, seed=0)]
    assert drawn != [s.id for s, _ in load_split([ref], None, {ref: 10}, seed=1)]
    with pytest.raises(ValueError, match="mix names"):
        RLData(manifests=[ref], mix={"other.yaml": 3})


def test_internvl_on_verl_is_refused_with_the_engine_that_trains_it(tiny_models):
    from rl.ptst.preflight import check_verl_family

    check_verl_family(tiny_models["qwen2_5_vl"])
    with pytest.raises(Vr1Error, match="internvl: verl 0.9.1 has no multimodal processor.*engine=trl"):
        check_verl_family(tiny_models["internvl"])
