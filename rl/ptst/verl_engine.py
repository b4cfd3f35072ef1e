"""One PTST stage on verl 0.9.1 (Ray, vLLM rollouts, FSDP, multi-node): the exact Hydra override list, the launch
as `python -m verl.trainer.main_ppo` with its output streamed into the run directory, and the merge of the stage's
final actor checkpoint into an HF folder that the next stage starts from.

What verl leaves undone and is done here: its merger writes the processor as `processor_config.json` only (the
processor half is rewritten from the stage's start so vr1, vLLM and verl all load the folder), and with LoRA it
writes the base weights plus `lora_adapter/` (the adapter is folded into the weights, or the next stage would
start from the base). Its V1 trainer logs no reward components: `verl_sampler.py` adds them."""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.errors import Vr1Error
from pipeline.io import write_jsonl
from pipeline.models.parts import VISION_MODULES
from rl.ptst.config import PTSTConfig, Stage
from rl.rewards.registry import TASK_METRICS
from rl.train_utils import MetricsMirror

VERL_REWARD = Path(__file__).resolve().parent.parent / "rewards" / "verl_reward.py"
VERL_SAMPLER = Path(__file__).resolve().parent / "verl_sampler.py"

# verl console metric names -> the names both engines write to metrics.jsonl
METRICS = {
    "critic/score/mean": "reward_mean",
    "vr1/format_rate": "format_rate",
    "vr1/accuracy": "accuracy",
    "response_length/mean": "response_length_mean",
    "response_length/max": "response_length_max",
    "vr1/response_clip_ratio": "response_clip_ratio",
    "actor/kl_loss": "kl",
    "actor/pg_clipfrac": "clip_ratio",
    "actor/entropy": "entropy",
    "actor/pg_loss": "loss",
    "actor/lr": "learning_rate",
    "actor/grad_norm": "grad_norm",
    "timing_s/step": "step_time_s",
}


def stage_overrides(
    cfg: PTSTConfig,
    index: int,
    stage: Stage,
    start: str,
    stage_dir: Path,
    train_file: str,
    val_file: str,
    name: str,
    metric_types: list[str] | None = None,
) -> list[str]:
    """verl Hydra overrides for one stage; `metric_types` are the answer types of the data whose task metrics
    (`rl.rewards.registry.TASK_METRICS`) every response reports."""
    g, c, m = cfg.grpo, cfg.cluster, cfg.model
    if m.freeze_vision_tower and not m.lora_rank:
        raise Vr1Error(
            "model.freeze_vision_tower=true with full fine-tuning cannot be honoured on verl 0.9.1: its FSDP actor "
            "reads actor.freeze_vision_tower nowhere, so the vision tower would silently train. Use LoRA "
            "(model.lora_rank>0: adapters go on the language model only, the vision tower stays frozen) or engine=trl."
        )
    ov = [
        "algorithm.adv_estimator=grpo",
        "algorithm.use_kl_in_reward=false",
        f"data.train_files={train_file}",
        f"data.val_files={val_file}",
        "data.image_key=images",
        "data.prompt_key=prompt",
        f"data.max_prompt_length={cfg.data.max_prompt_length}",
        f"data.max_response_length={stage.max_response_length}",
        f"data.train_batch_size={g.prompts_per_step}",
        "data.filter_overlong_prompts=true",
        "data.truncation=error",
        f"actor_rollout_ref.model.path={start}",
        "actor_rollout_ref.model.use_remove_padding=true",
        "actor_rollout_ref.model.enable_gradient_checkpointing=true",
        f"actor_rollout_ref.actor.optim.lr={g.learning_rate}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={g.mini_batch_prompts}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={g.micro_batch_per_gpu}",
        "actor_rollout_ref.actor.use_kl_loss=true",
        f"actor_rollout_ref.actor.kl_loss_coef={g.kl_coef}",
        f"actor_rollout_ref.actor.kl_loss_type={g.kl_loss_type}",
        f"actor_rollout_ref.actor.clip_ratio_low={g.clip_ratio_low}",
        f"actor_rollout_ref.actor.clip_ratio_high={g.clip_ratio_high}",
        f"actor_rollout_ref.actor.loss_agg_mode={g.loss_agg_mode}",
        f"actor_rollout_ref.actor.entropy_coeff={g.entropy_coeff}",
        f"actor_rollout_ref.rollout.name={c.rollout}",
        f"actor_rollout_ref.rollout.n={stage.n}",
        f"actor_rollout_ref.rollout.temperature={g.temperature}",
        f"actor_rollout_ref.rollout.top_p={g.top_p}",
        f"actor_rollout_ref.rollout.tensor_model_parallel_size={c.tensor_model_parallel_size}",
        f"actor_rollout_ref.rollout.gpu_memory_utilization={c.gpu_memory_utilization}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={g.micro_batch_per_gpu}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={g.micro_batch_per_gpu}",
        f"reward.custom_reward_function.path={VERL_REWARD}",
        "reward.custom_reward_function.name=compute_score",
        f"trainer.default_local_dir={stage_dir / 'checkpoints'}",
        f"trainer.nnodes={c.nnodes}",
        f"trainer.n_gpus_per_node={c.n_gpus_per_node}",
        f"trainer.total_training_steps={stage.steps}",
        f"trainer.save_freq={c.save_freq}",
        "trainer.test_freq=-1",
        "trainer.val_before_train=false",
        "trainer.resume_mode=auto",
        "trainer.project_name=vr1",
        f"trainer.experiment_name={name}-stage{index}",
        f"trainer.logger={hydra_value(verl_loggers(cfg.report_to))}",
        f"trainer.max_actor_ckpt_to_keep={c.max_ckpt_to_keep}",
        f"trainer.max_critic_ckpt_to_keep={c.max_ckpt_to_keep}",
        # format rate, accuracy and the clip ratio at the configured limit, per training step (see verl_sampler.py)
        f"trainer.v1.sampler.custom_sampler.path={VERL_SAMPLER}",
        "trainer.v1.sampler.custom_sampler.name=RewardComponentsReplayBuffer",
        f"+trainer.v1.sampler.sampler_kwargs.max_response_length={stage.max_response_length}",
    ]
    if c.dump_rollouts:
        ov.append(f"trainer.rollout_data_dir={stage_dir / 'rollouts'}")
    if isinstance(cfg.data.reward, dict):  # {answer type: reward}: a Hydra mapping
        pairs = ",".join(f"{t}:'{reward_reference(r)}'" for t, r in cfg.data.reward.items())
        ov.append(f"+reward.custom_reward_function.reward_kwargs.reward={{{pairs}}}")
    elif cfg.data.reward != "auto":
        ov.append(f"+reward.custom_reward_function.reward_kwargs.reward='{reward_reference(cfg.data.reward)}'")
    if metric_types:  # every response reports the same keys (verl collates them per key)
        ov.append(f"+reward.custom_reward_function.reward_kwargs.metric_types={hydra_value(sorted(metric_types))}")
    if m.lora_rank:
        ov += [
            f"actor_rollout_ref.model.lora_rank={m.lora_rank}",
            f"actor_rollout_ref.model.lora_alpha={m.lora_alpha}",
            f"actor_rollout_ref.model.target_modules={hydra_value(m.target_modules)}",
        ]
        if m.freeze_vision_tower:  # LoRA never touches excluded modules: the vision tower stays as it is
            ov.append(f"actor_rollout_ref.model.exclude_modules='{VISION_MODULES}'")
    return ov + list(c.extra_overrides)


def reward_reference(reward: str) -> str:
    """A user reward (`path/to/file.py:function`) as an absolute path: Ray workers do not share our directory."""
    path, sep, name = reward.rpartition(":")
    if sep and path.endswith(".py"):
        return f"{Path(path).resolve()}:{name}"
    return reward


def hydra_value(value: str | list[str]) -> str:
    """A string or a list of names as a Hydra override value (`[q_proj,v_proj]`)."""
    return f"[{','.join(value)}]" if isinstance(value, list) else value


def launch_command(overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "verl.trainer.main_ppo", *overrides]


def merge_command(actor_dir: Path, target: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "verl.model_merger",
        "merge",
        "--backend",
        "fsdp",
        "--local_dir",
        str(actor_dir),
        "--target_dir",
        str(target),
    ]


# Ray re-prints an actor's stdout as `\x1b[36m(TaskRunnerV1 pid=…[, ip=…])\x1b[0m <line>`, colour even into a pipe
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAY_PREFIX = re.compile(r"^\([^)]*pid=\d+[^)]*\)\s*")
# verl prints values with repr(): 0.25, 1e-06, nan, 52340, np.float64(2.0), np.int32(2)
_METRIC = re.compile(r"(?P<key>[\w/@.\-]+):(?:np\.\w+\()?(?P<val>[-+]?(?:\d+(?:\.\d*)?(?:e[-+]?\d+)?|nan|inf))\)?")


def parse_metrics_line(line: str) -> dict | None:
    """One step's row from verl's console logger line (`step:N - key:value - …`, as Ray relays it), with our
    metric names; None for any other line. NaN and infinities are left out (JSON has no spelling for them)."""
    line = _RAY_PREFIX.sub("", _ANSI.sub("", line).strip())
    if not line.startswith("step:"):
        return None
    values = {m["key"]: float(m["val"]) for m in _METRIC.finditer(line)}
    if "step" not in values:
        return None
    row = {"step": int(values["step"])}
    row.update((ours, values[k]) for k, ours in METRICS.items() if k in values and math.isfinite(values[k]))
    # the task metrics and user reward components verl_sampler reports, under the names the TRL engine writes
    row.update(
        (k.removeprefix("vr1/"), v)
        for k, v in values.items()
        if k.startswith("vr1/") and k not in METRICS and math.isfinite(v)
    )
    return row


def latest_checkpoint(checkpoints: Path) -> int | None:
    """The step of verl's latest complete checkpoint (its own tracker file, written after the save finished)."""
    tracker = checkpoints / "latest_checkpointed_iteration.txt"
    try:
        step = int(tracker.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return step if (checkpoints / f"global_step_{step}" / "actor").is_dir() else None


def complete_final(final: Path, start_files: Path, lora_alpha: int | None) -> dict:
    """Make verl's merged folder a start folder: the processor half written from the stage's start, the LoRA
    adapter folded into the weights."""
    from pipeline.models.merge import complete_model_folder, fold_lora

    done = {"processor_files_added": complete_model_folder(final, start_files)}
    if (final / "lora_adapter" / "adapter_config.json").is_file():
        done["lora_weights_merged"] = fold_lora(final, final / "lora_adapter", lora_alpha)
    return done


def keep_last_row_per_step(metrics_path: Path) -> None:
    """A resumed stage re-runs the steps after its last checkpoint and logs them again: the rerun's rows win."""
    if not metrics_path.is_file():
        return
    rows = {}
    for line in metrics_path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["step"]] = row
    write_jsonl(metrics_path, (rows[k] for k in sorted(rows)))


def run_stage(
    cfg: PTSTConfig,
    index: int,
    stage: Stage,
    start: str,
    stage_dir: Path,
    files: dict,
    name: str,
    dry_run: bool = False,
    start_files: Path | None = None,
) -> dict:
    """Launch (or resume) the stage, stream its metrics, merge its last checkpoint into `final/` and complete it.
    `start` is what verl loads (a folder or a hub id); `start_files` a local folder with its processor files."""
    metric_types = [t for t in files.get("answer_types", ()) if t in TASK_METRICS]
    overrides = stage_overrides(
        cfg, index, stage, str(start), stage_dir, files["train"], files["val"], name, metric_types
    )
    cmd = launch_command(overrides)
    print(f"stage {index} (verl): {shlex.join(cmd)}", flush=True)  # noqa: T201 - the command is the point
    if dry_run:
        return {"stage": index, "engine": "verl", "command": cmd}
    checkpoints = stage_dir / "checkpoints"
    done = latest_checkpoint(checkpoints)
    if done is not None and done >= stage.steps:
        print(f"stage {index}: verl's checkpoint at step {done} completes it; merging only", flush=True)  # noqa: T201
    else:
        if done is not None:
            print(f"stage {index}: resuming from verl's checkpoint at step {done}", flush=True)  # noqa: T201
        rc = stream(cmd, stage_dir, cfg.report_to, f"{name}-stage{index}")
        keep_last_row_per_step(stage_dir / "metrics.jsonl")
        if rc != 0:
            raise Vr1Error(f"verl exited with {rc} in stage {index}; see {stage_dir}/verl.log (rerun to resume)")
        done = latest_checkpoint(checkpoints)
    if done is None:
        raise Vr1Error(
            f"stage {index}: verl wrote no checkpoint under {checkpoints} (trainer.save_freq must be > 0); "
            f"see {stage_dir}/verl.log"
        )
    actor = checkpoints / f"global_step_{done}" / "actor"
    final, tmp = stage_dir / "final", stage_dir / ".final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    merge = merge_command(actor, tmp)
    print("merging:", shlex.join(merge), flush=True)  # noqa: T201
    if subprocess.call(merge) != 0:
        raise Vr1Error(f"stage {index}: verl.model_merger failed on {actor}")
    completed = complete_final(tmp, start_files or Path(start), cfg.model.lora_alpha if cfg.model.lora_rank else None)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return {"stage": index, "engine": "verl", "steps": done, "final": str(final), **completed}


def verl_loggers(report_to: list[str]) -> list[str]:
    """verl's trackers for vr1's `report_to`: its console line is what vr1 reads, so it is always on."""
    return ["console"] + [t for t in ("tensorboard", "wandb") if t in report_to]


def stream(cmd: list[str], stage_dir: Path, report_to: list[str] = (), run_name: str | None = None) -> int:
    """Run verl, echoing its output, keeping all of it in verl.log and each step's metrics in metrics.jsonl, and
    mirroring those rows as `vr1/<name>` to TensorBoard / W&B under the names the TRL engine uses."""
    mirror = MetricsMirror(stage_dir / "tensorboard" / "vr1", wandb_run=run_name)
    try:
        with open(stage_dir / "verl.log", "a") as log, open(stage_dir / "metrics.jsonl", "a") as metrics:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
                row = parse_metrics_line(line)
                if row:
                    metrics.write(json.dumps(row) + "\n")
                    metrics.flush()
                    mirror.log(row, row["step"], list(report_to))
            return proc.wait()
    finally:
        mirror.close()
