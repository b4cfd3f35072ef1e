"""Every stage's verl overrides compose against the installed verl's own Hydra config and pass verl's own
validation; a misspelt key or an inconsistent batch fails; frozen vision is honoured or refused, never silent."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from pipeline.config import build, load_config
from pipeline.errors import Vr1Error
from rl.ptst.config import PTSTConfig
from rl.ptst.verl_engine import VISION_MODULES, launch_command, parse_metrics_line, stage_overrides


def compose(overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from verl.trainer import config as verl_config_pkg

    with initialize_config_dir(config_dir=str(Path(verl_config_pkg.__file__).parent), version_base=None):
        return hydra_compose(config_name="ppo_trainer", overrides=overrides)


def validate(cfg):
    from verl.trainer.main_ppo import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))


def overrides_for(cfg: PTSTConfig, k: int, tmp_path) -> list[str]:
    return stage_overrides(
        cfg,
        k,
        cfg.stages[k - 1],
        "/models/sft-final",
        tmp_path / f"stage_{k}",
        "/data/train.parquet",
        "/data/val.parquet",
        "vr1",
    )


@pytest.mark.parametrize("k", [1, 2, 3])
def test_paper_stages_compose_and_validate(k, tmp_path):
    cfg = load_config(PTSTConfig, "ptst/vision_r1")
    composed = compose(overrides_for(cfg, k, tmp_path))
    validate(composed)
    stage = cfg.stages[k - 1]
    a = composed.actor_rollout_ref
    assert composed.algorithm.adv_estimator == "grpo"
    assert composed.data.max_response_length == stage.max_response_length and a.rollout.n == stage.n
    assert composed.trainer.total_training_steps == stage.steps
    assert (a.actor.clip_ratio_low, a.actor.clip_ratio_high, a.actor.kl_loss_coef) == (0.2, 0.2, 0.01)
    assert a.actor.use_kl_loss and a.actor.kl_loss_type == "low_var_kl" and a.actor.loss_agg_mode == "token-mean"
    assert composed.reward.custom_reward_function.path.endswith("rl/rewards/verl_reward.py")
    assert composed.reward.custom_reward_function.name == "compute_score"
    assert composed.trainer.default_local_dir == str(tmp_path / f"stage_{k}" / "checkpoints")
    assert (composed.trainer.nnodes, composed.trainer.n_gpus_per_node) == (1, 8)
    assert a.model.path == "/models/sft-final" and a.rollout.name == "vllm"


def test_schedule_is_the_papers():
    cfg = load_config(PTSTConfig, "ptst/vision_r1")
    assert [(s.max_response_length, s.n, s.steps) for s in cfg.stages] == [
        (4096, 16, 100),
        (8192, 8, 100),
        (16384, 4, 100),
    ]
    assert cfg.grpo.system_prompt is None and cfg.model.start == "runs/sft/latest/final"


def test_misspelt_key_fails(tmp_path):
    cfg = build(PTSTConfig, {"cluster": {"extra_overrides": ["actor_rollout_ref.actor.clip_ration_low=0.3"]}})
    with pytest.raises(ConfigCompositionException, match="clip_ration_low"):
        compose(overrides_for(cfg, 1, tmp_path))


def test_inconsistent_batch_fails_validation(tmp_path):
    # 5 prompts x 16 samples = 80 responses cannot be split over 3 nodes x 8 GPUs
    cfg = build(PTSTConfig, {"grpo": {"prompts_per_step": 5, "mini_batch_prompts": 5}, "cluster": {"nnodes": 3}})
    with pytest.raises((AssertionError, ValueError)):
        validate(compose(overrides_for(cfg, 1, tmp_path)))


def test_frozen_vision_tower_is_honoured_through_lora_or_refused(tmp_path):
    lora = build(PTSTConfig, {"model": {"lora_rank": 64, "freeze_vision_tower": True}})
    composed = compose(overrides_for(lora, 1, tmp_path))  # (validation would import vllm for LoRA; compose only)
    assert composed.actor_rollout_ref.model.lora_rank == 64
    assert composed.actor_rollout_ref.model.exclude_modules == VISION_MODULES
    full = build(PTSTConfig, {"model": {"freeze_vision_tower": True}})
    with pytest.raises(Vr1Error, match="read.*nowhere|would silently train"):
        overrides_for(full, 1, tmp_path)


def test_launch_command_and_metrics_parsing(tmp_path):
    cfg = load_config(PTSTConfig, "ptst/vision_r1")
    cmd = launch_command(overrides_for(cfg, 2, tmp_path))
    assert cmd[1:3] == ["-m", "verl.trainer.main_ppo"] and "actor_rollout_ref.rollout.n=8" in cmd
    row = parse_metrics_line(
        "step:3 - critic/score/mean:0.412 - reward_extra_info/format/mean:0.9 - "
        "response_length/mean:812.5 - response_length/max:4096.0 - actor/kl_loss:0.0012 - "
        "actor/pg_clipfrac:0.003 - timing_s/step:41.2"
    )
    assert row == {
        "step": 3,
        "reward_mean": 0.412,
        "format_rate": 0.9,
        "response_length_mean": 812.5,
        "response_length_max": 4096.0,
        "kl": 0.0012,
        "clip_ratio": 0.003,
    }
    assert parse_metrics_line("INFO something else") is None
    assert OmegaConf.select(compose(overrides_for(cfg, 1, tmp_path)), "data.image_key") == "images"


def test_format_rate_and_accuracy_come_from_verls_rollout_dump(tmp_path):
    import json

    from rl.ptst.verl_engine import add_rollout_rates

    rollouts = tmp_path / "rollouts"
    rollouts.mkdir()
    # the layout verl's _write_generations writes: one line per response with the reward extra info fields
    rows = [
        {"input": "q", "output": "o", "gts": "1", "score": s, "step": 1, "format": f, "accuracy": a}
        for s, f, a in ((1.0, 1.0, 1.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, 0.0))
    ]
    (rollouts / "1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(json.dumps({"step": 1, "reward_mean": 0.25}) + "\n" + json.dumps({"step": 2}) + "\n")
    add_rollout_rates(metrics, rollouts)
    got = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert got[0] == {"step": 1, "reward_mean": 0.25, "format_rate": 0.5, "accuracy": 0.5} and got[1] == {"step": 2}
