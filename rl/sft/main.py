"""`vr1 sft`: one run directory; training in this process or through `accelerate launch`."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from pipeline.config import load_config, require_paths, to_dict
from pipeline.errors import Vr1Error
from pipeline.rundir import create_run_dir
from rl.sft.config import Launcher, SFTConfig


def accelerate_command(launcher: Launcher, run_dir: str, runs_root: str) -> list[str]:
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if launcher.accelerate_config:
        cmd += ["--config_file", launcher.accelerate_config]
    for flag, value in (
        ("--num_processes", launcher.num_processes),
        ("--num_machines", launcher.num_machines),
        ("--machine_rank", launcher.machine_rank),
        ("--main_process_ip", launcher.main_process_ip),
        ("--main_process_port", launcher.main_process_port),
    ):
        if value is not None:
            cmd += [flag, str(value)]
    return cmd + ["-m", "rl.sft.train", "--run-dir", run_dir, "--runs-root", runs_root]


def run(args) -> int:
    cfg = load_config(SFTConfig, args.config, args.overrides)
    require_paths("model folder", {"model": cfg.model}, resolve=Path)
    require_paths("manifest", {f"data.manifests[{i}]": ref for i, ref in enumerate(cfg.data.manifests)}, resolve=Path)
    run_dir = create_run_dir("sft", to_dict(cfg), name=args.name, root=args.runs_root)
    if cfg.launcher.kind == "inprocess":
        from rl.sft.train import train

        summary = train(cfg, run_dir.path, args.runs_root)
    else:
        cmd = accelerate_command(cfg.launcher, str(run_dir.path), args.runs_root)
        print("launching:", shlex.join(cmd), flush=True)  # noqa: T201
        rc = subprocess.call(cmd)
        if rc != 0:
            raise Vr1Error(
                f"training exited with code {rc}; see {run_dir.path}/train.log (rerun the same command "
                "with the same --name to resume from the last checkpoint)"
            )
        import json

        summary = json.loads((run_dir.path / "summary.json").read_text())
    print(  # noqa: T201
        f"sft: {summary['samples']} samples ({summary['offenders']} skipped by preflight), "
        f"{summary['global_step']} steps, train loss {summary['train_loss']:.4f}"
        + (f", resumed from {summary['resumed_from']}" if summary["resumed_from"] else "")
    )
    print(  # noqa: T201
        f"  wrote {run_dir.path}/: final/ (HF model folder), checkpoints/, metrics.jsonl, tensorboard/, "
        "preflight.json, summary.json"
    )
    run_dir.mark_latest()
    return 0
