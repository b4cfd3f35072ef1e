"""What the SFT and PTST trainers share: resumable metrics.jsonl and finding the checkpoint to resume from."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path


def last_complete_checkpoint(out: Path) -> str | None:
    """The newest checkpoint that finished saving (a kill mid-save leaves one without trainer_state.json)."""
    if not out.is_dir():
        return None

    def complete(d: Path) -> bool:
        return d.name.split("-")[-1].isdigit() and (d / "trainer_state.json").is_file() and any(d.glob("*.safetensors"))

    done = [d for d in out.glob("checkpoint-*") if complete(d)]
    return str(max(done, key=lambda d: int(d.name.split("-")[-1]))) if done else None


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

    mirror = MetricsMirror(path.parent / "tensorboard" / "vr1")
    return JsonlMetrics()


class MetricsMirror:
    """metrics.jsonl's rows, under the names every engine writes there, as `vr1/<name>` in TensorBoard (its own
    event files under `tensorboard/vr1/`) and in the active W&B run: the trainers' own logs keep their engine's
    names (TRL's `rewards/format/mean`, verl's `critic/…`); these are the same on both."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.writer = None

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

            if wandb.run is not None:  # started by the trainer's own W&B callback
                wandb.log({**scalars, "train/global_step": step})
