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


def test_launch_command_and_new_overrides_compose(tmp_path):
    from rl.ptst.verl_engine import VERL_SAMPLER

    cfg = load_config(PTSTConfig, "ptst/vision_r1")
    cmd = launch_command(overrides_for(cfg, 2, tmp_path))
    assert cmd[1:3] == ["-m", "verl.trainer.main_ppo"] and "actor_rollout_ref.rollout.n=8" in cmd
    composed = compose(overrides_for(cfg, 2, tmp_path))
    t = composed.trainer
    assert (t.max_actor_ckpt_to_keep, t.max_critic_ckpt_to_keep, t.save_freq) == (2, 2, 25)
    assert t.v1.sampler.custom_sampler.path == str(VERL_SAMPLER)
    assert t.v1.sampler.custom_sampler.name == "RewardComponentsReplayBuffer"
    assert t.v1.sampler.sampler_kwargs.max_response_length == 8192
    assert OmegaConf.select(composed, "trainer.rollout_data_dir") is None  # rollout dumps only on request
    assert OmegaConf.select(composed, "data.image_key") == "images"


def test_a_user_reward_reaches_ray_workers_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = build(PTSTConfig, {"data": {"reward": "rewards/mine.py:score"}})
    composed = compose(overrides_for(cfg, 1, tmp_path))
    assert composed.reward.custom_reward_function.reward_kwargs.reward == f"{tmp_path}/rewards/mine.py:score"
    preset = compose(overrides_for(build(PTSTConfig, {"data": {"reward": "vlm_r1_ovd"}}), 1, tmp_path))
    assert preset.reward.custom_reward_function.reward_kwargs.reward == "vlm_r1_ovd"


def test_verls_trainer_builds_our_sampler_from_the_composed_config(tmp_path):
    """verl's own `_build_replay_buffer` (the V1 trainer's, which main_ppo runs) loads and constructs the sampler
    from exactly what we compose."""
    from types import SimpleNamespace

    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    composed = compose(overrides_for(load_config(PTSTConfig, "ptst/vision_r1"), 1, tmp_path))
    trainer = SimpleNamespace(config=composed, trainer_mode="sync", _add_prompts_to_generate=lambda n: None)
    buffer = PPOTrainer._build_replay_buffer(trainer)
    assert type(buffer).__name__ == "RewardComponentsReplayBuffer" and type(buffer).__module__ != __name__
    assert buffer.sampler_kwargs["max_response_length"] == 4096


def _relayed_by_ray(line: str, ip: str) -> str:
    """The line as the driver prints it when the TaskRunnerV1 actor prints it (Ray's own relay code)."""
    import io

    from ray._private.worker import print_worker_logs

    buf = io.StringIO()
    data = {"pid": 4242, "actor_name": "TaskRunnerV1", "ip": ip, "localhost": "10.0.0.5", "lines": [line]}
    print_worker_logs({**data, "is_err": False}, buf)
    return buf.getvalue()


def test_format_and_accuracy_come_from_the_rewards_own_components(tmp_path):
    """The whole route on verl's own code: verl's reward manager runs our compute_score on decoded responses and
    keeps its dict as `reward_extra_info`; our sampler averages those per step (the shape V1 keeps them in, in
    TransferQueue's extra_fields); verl's metrics aggregator and console logger print the step; Ray relays the
    line; our parser reads it back."""

    import numpy as np
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.trainer.ppo.v1.utils import MetricsAggregator
    from verl.utils.logger.aggregate_logger import concat_dict_to_str

    from rl.ptst.verl_sampler import reward_components, step_metrics
    from rl.rewards.verl_reward import compute_score

    responses = [
        "<think>12+30=42</think><answer>42</answer>",  # right, well formed
        "<think>a guess</think><answer>41</answer>",  # wrong, well formed
        "the answer is 42",  # no tags
        "<think>so</think><answer>42</answer>",  # right
    ]
    chars = sorted(set("".join(responses)))  # a character-level tokenizer: decode gives back the exact text
    vocab = {"[PAD]": 0, **{c: i + 1 for i, c in enumerate(chars)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[PAD]"))
    backend.pre_tokenizer, backend.decoder = pre_tokenizers.Split("", "isolated"), decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]")
    manager = NaiveRewardManager(OmegaConf.create({}), tok, compute_score)
    infos, scores = [], []
    for text in responses:
        ids = torch.tensor([tok.convert_tokens_to_ids(c) for c in text])
        item = DataProto.from_dict(
            tensors={"responses": ids[None], "attention_mask": torch.ones(1, len(ids), dtype=torch.long)},
            non_tensors={
                "data_source": np.array(["geo"], dtype=object),
                "reward_model": np.array([{"ground_truth": "42"}], dtype=object),
                "extra_info": np.array([{"answer_type": "number"}], dtype=object),
            },
        )
        out = manager.loop.run_until_complete(manager.run_single(item))  # the loop verl gave the manager
        scores.append(out["reward_score"])
        infos.append({"reward_extra_info": out["reward_extra_info"]})  # AgentLoopOutput.extra_fields
    assert scores == [1.0, 0.0, 0.0, 1.0]
    ours = step_metrics(reward_components(infos), response_lengths=[40, 64, 12, 64], max_response_length=64)
    assert ours == {"vr1/format_rate": 0.75, "vr1/accuracy": 0.5, "vr1/response_clip_ratio": 0.5}

    step = MetricsAggregator()
    step.add_step_metrics(
        {
            **ours,
            "critic/score/mean": float(np.mean(scores)),
            "response_length/mean": 45.0,
            "actor/kl_loss": 0.0012,
            "actor/entropy": 0.61,
            "actor/grad_norm": 0.23,
            "actor/lr": 1e-06,
            "timing_s/step": 41.5,
            "training/num_turns/mean": np.float64(2.0),
        },
        sample_count=4,
    )
    logged = concat_dict_to_str(step.get_aggregated_metrics(), step=7)
    for ip in ("10.0.0.5", "10.0.0.6"):  # the actor on the driver's node, and on another one
        row = parse_metrics_line(_relayed_by_ray(logged, ip))
        assert row == {
            "step": 7,
            "reward_mean": 0.5,
            "format_rate": 0.75,
            "accuracy": 0.5,
            "response_length_mean": 45.0,
            "response_clip_ratio": 0.5,
            "kl": 0.0012,
            "entropy": 0.61,
            "learning_rate": 1e-06,
            "grad_norm": 0.23,
            "step_time_s": 41.5,
        }


def test_metrics_parser_reads_numpy_reprs_and_skips_other_lines():
    row = parse_metrics_line("step:3 - critic/score/mean:np.float64(0.412) - actor/lr:np.float32(1e-06) - x:nan")
    assert row == {"step": 3, "reward_mean": 0.412, "learning_rate": 1e-06}
    assert parse_metrics_line("\x1b[36m(TaskRunnerV1 pid=1)\x1b[0m Dumped generations to /x") is None
    assert parse_metrics_line("INFO something else") is None


PERCEPTION_CONFIGS = [
    "ptst/rec_vlm_r1",
    "ptst/ovd_vlm_r1",
    "ptst/detection_visual_rft",
    "ptst/classification_visual_rft",
    "ptst/reasoning_grounding",
]


@pytest.mark.parametrize("name", PERCEPTION_CONFIGS)
def test_perception_recipes_compose_on_verl_with_their_reward(name, tmp_path):
    """Each published perception recipe composes and validates on verl's own config; the reward verl's loader will
    call carries the recipe's preset (or its per-type mapping) and the task metrics of the data's answer types."""
    from rl.rewards.registry import PRESETS

    cfg = load_config(PTSTConfig, name)
    types = ["bbox"] if name in ("ptst/rec_vlm_r1", "ptst/reasoning_grounding") else ["boxes"]
    if name == "ptst/classification_visual_rft":
        types = []
    overrides = stage_overrides(
        cfg, 1, cfg.stages[0], "/m", tmp_path / "s", "/d/train.parquet", "/d/val.parquet", "vr1", types
    )
    composed = compose(overrides)
    validate(composed)
    kwargs = composed.reward.custom_reward_function.reward_kwargs
    reward = OmegaConf.to_container(kwargs.reward) if not isinstance(kwargs.reward, str) else kwargs.reward
    assert reward == cfg.data.reward
    for preset in reward.values() if isinstance(reward, dict) else [reward]:
        assert preset in PRESETS
    assert list(kwargs.get("metric_types", [])) == types
    assert composed.actor_rollout_ref.rollout.n == cfg.stages[0].n == 8


def test_verl_steps_reach_tensorboard_under_the_names_the_trl_engine_uses(tmp_path):
    """`stream` reads verl's console line (printed by verl's own logger, relayed by Ray) from the running process
    and mirrors each row as vr1/<name>: the same names a TRL run writes for the same quantities."""
    import sys

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from verl.utils.logger.aggregate_logger import concat_dict_to_str

    from rl.ptst import trl_engine
    from rl.ptst.verl_engine import METRICS, stream, verl_loggers

    lines = [
        _relayed_by_ray(
            concat_dict_to_str(
                {
                    "critic/score/mean": 0.25 * s,
                    "actor/entropy": 0.5,
                    "vr1/format_rate": 1.0,
                    "response_length/mean": 30.0 + s,
                },
                step=s,
            ),
            "10.0.0.5",
        )
        for s in (1, 2)
    ]
    script = "import sys\n" + "".join(f"sys.stdout.write({line!r})\n" for line in ["booting\n", *lines])
    assert stream([sys.executable, "-c", script], tmp_path, ["tensorboard"], "demo-stage1") == 0
    events = EventAccumulator(str(tmp_path / "tensorboard" / "vr1"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert tags == {"vr1/reward_mean", "vr1/entropy", "vr1/format_rate", "vr1/response_length_mean"}
    assert [(e.step, e.value) for e in events.Scalars("vr1/reward_mean")] == [(1, 0.25), (2, 0.5)]
    shared = set(trl_engine.METRICS.values()) & set(METRICS.values())
    assert {t.removeprefix("vr1/") for t in tags} <= shared  # a name TRL writes for the same quantity
    assert verl_loggers(["tensorboard", "wandb"]) == ["console", "tensorboard", "wandb"]
    assert verl_loggers([]) == ["console"]  # vr1 reads verl's console line, so it is always on
