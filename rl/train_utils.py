"""What the SFT and PTST trainers share: resumable metrics.jsonl, the checkpoint to resume from (trained on the same
inputs, its weights loaded as saved) and the metrics mirror to TensorBoard / W&B."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from pipeline.data.overlap import file_sha256
from pipeline.errors import Vr1Error
from pipeline.io import write_json
from pipeline.progress import LOG


def last_complete_checkpoint(out: Path) -> str | None:
    """The newest checkpoint that finished saving (a kill mid-save leaves one without trainer_state.json)."""
    if not out.is_dir():
        return None

    def complete(d: Path) -> bool:
        return d.name.split("-")[-1].isdigit() and (d / "trainer_state.json").is_file() and any(d.glob("*.safetensors"))

    done = [d for d in out.glob("checkpoint-*") if complete(d)]
    return str(max(done, key=lambda d: int(d.name.split("-")[-1]))) if done else None


# settings a resume may change (to train longer, save or log differently) without the checkpoints going stale
RESUMABLE_CHANGES = (
    "schedule.max_steps",
    "schedule.num_train_epochs",
    "schedule.save_steps",
    "schedule.save_total_limit",
    "schedule.logging_steps",
    "report_to",
    "launcher",
    "on_changed_inputs",
)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if any(key == r or key.startswith(r + ".") for r in RESUMABLE_CHANGES):
            continue
        out.update(_flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def training_inputs(config: dict, rows: list[dict]) -> dict:
    """What a run's checkpoints depend on: its settings (less RESUMABLE_CHANGES) and a content hash of every
    training row (text, and the bytes of its images)."""
    h, images = hashlib.sha256(), {}  # an image several rows share (one per cold-start step) is read once
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
        for image in row.get("images") or ():
            h.update(file_sha256(Path(image), images).encode())
    return {"config": _flat(config), "data": h.hexdigest(), "samples": len(rows)}


def guard_checkpoints(out: Path, inputs: dict, on_changed: str) -> None:
    """Before resuming from `out`'s checkpoints: were they trained on these inputs? If not, refuse (naming what
    changed) or, with on_changed="restart", remove them and train afresh. Then record the inputs."""
    if os.environ.get("RANK", "0") != "0":  # under accelerate the first process checks, restarts and records
        return
    record = out / "inputs.json"
    if record.is_file() and last_complete_checkpoint(out):
        old = json.loads(record.read_text())
        keys = sorted(
            k for k in set(old["config"]) | set(inputs["config"]) if old["config"].get(k) != inputs["config"].get(k)
        )
        changed = [f"{k}: {old['config'].get(k)!r} -> {inputs['config'].get(k)!r}" for k in keys]
        if old["data"] != inputs["data"]:
            changed.append(f"training data ({old['samples']} -> {inputs['samples']} samples, contents differ)")
        if changed:
            if on_changed != "restart":
                raise Vr1Error(
                    f"{out}: its checkpoints were trained on other inputs ({'; '.join(changed)}); resuming would "
                    "mix them. Use another --name, or on_changed_inputs=restart to train this run afresh"
                )
            LOG.warning("inputs changed (%s): removing %s and training afresh", "; ".join(changed), out)
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(record, inputs)


def load_checkpoints_with_key_mapping(trainer) -> None:
    """Make `trainer` load its checkpoints' weights as `from_pretrained` does. transformers 5.10 saves checkpoints
    in the hub's key layout (`visual.*`, `model.layers.*` for Qwen-VL) but its Trainer reads them back into the
    model's own layout (`model.visual.*`, …) without converting, non-strictly: every weight is "missing" and a
    resumed run silently continues from the weights it started with. PEFT adapters and sharded (ZeRO-3 / FSDP)
    checkpoints keep the Trainer's own loading."""
    original = trainer._load_from_checkpoint

    def load(checkpoint: str, model=None) -> None:
        target = model if model is not None else trainer.model
        target = getattr(target, "module", target)  # DDP's wrapper
        sharded = trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled
        if sharded or getattr(target, "peft_config", None) or not (Path(checkpoint) / "config.json").is_file():
            return original(checkpoint, model)
        saved = type(target).from_pretrained(checkpoint, dtype=next(target.parameters()).dtype)
        target.load_state_dict(saved.state_dict())  # strict: a key the mapping misses is an error, not a reset
        LOG.info("weights restored from %s", checkpoint)
        return None

    trainer._load_from_checkpoint = load


def jsonl_metrics(path: Path, resume_step: int, select: Callable[[dict, int], dict | None]):
    """A TrainerCallback writing `select(logs, step)` as one JSON line per logged step; on resume, lines past the
    checkpoint are dropped first, so a step never appears twice."""
    from transformers import TrainerCallback

    class JsonlMetrics(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero and path.exists():
                lines = [ln for ln in path.read_text().splitlines() if ln]
                path.write_text("".join(ln + "\n" for ln in lines if json.loads(ln).get("step", 0) <= resume_step))

        def on_log(self, args, state, control, logs=None, **kwargs):
            row = select(logs or {}, state.global_step) if state.is_world_process_zero else None
            if row:
                with open(path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                mirror.log(row, state.global_step, args.report_to or [])

        def on_train_end(self, args, state, control, **kwargs):
            mirror.close()  # after the trainer's own W&B callback (ours are added last)

    mirror = MetricsMirror(path.parent / "tensorboard" / "vr1")
    return JsonlMetrics()


class MetricsMirror:
    """metrics.jsonl's rows, under the names every engine writes there, as `vr1/<name>` in TensorBoard (its own
    event files under `tensorboard/vr1/`) and in the active W&B run: the trainers' own logs keep their engine's
    names (TRL's `rewards/format/mean`, verl's `critic/…`); these are the same on both."""

    def __init__(self, logdir: Path, wandb_run: str | None = None):
        """`wandb_run`: the W&B run to start when none is active (verl logs from its own Ray worker, so the
        driver that reads its metrics has no run); the TRL trainers' own W&B callback starts theirs."""
        self.logdir = logdir
        self.writer = None
        self.wandb_run = wandb_run
        self.wandb = None  # the module, once a row went to W&B

    def log(self, row: dict, step: int, report_to: list[str]) -> None:
        scalars = {f"vr1/{k}": v for k, v in row.items() if k != "step" and isinstance(v, int | float)}
        if "tensorboard" in report_to:
            if self.writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.logdir))
            for k, v in scalars.items():
                self.writer.add_scalar(k, v, step)
            self.writer.flush()
        if "wandb" in report_to:
            import wandb

            if wandb.run is None and self.wandb_run:
                wandb.init(project=os.environ.get("WANDB_PROJECT", "vr1"), name=self.wandb_run, dir=str(self.logdir))
            if wandb.run is not None:  # started by the trainer's own W&B callback, or above
                wandb.log({**scalars, "train/global_step": step})
                self.wandb = wandb

    def close(self) -> None:
        """End of a run (an SFT run, a PTST stage): the event file is closed and the W&B run finished, so the next
        stage in the same process starts a run of its own and nothing waits for the process to exit."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.wandb is not None and self.wandb.run is not None:
            self.wandb.finish()
