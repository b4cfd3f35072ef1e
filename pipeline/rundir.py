"""Run directories: `runs/<stage>/<name>/` with the resolved config, a log, the outputs, and `latest` per stage."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import dump_yaml
from pipeline.errors import Vr1Error
from pipeline.io import atomic_write_text
from pipeline.progress import setup_logging


@dataclass
class RunDir:
    stage: str
    name: str
    path: Path

    @property
    def log_file(self) -> Path:
        return self.path / "run.log"

    def file(self, name: str) -> Path:
        return self.path / name


def _safe_name(name: str) -> str:
    if not name or "/" in name or name in (".", "..", "latest") or name.startswith("."):
        raise Vr1Error(f"run name '{name}' is not allowed (no '/', not 'latest', not hidden)")
    return name


def create_run_dir(
    stage: str,
    config: dict[str, Any],
    name: str | None = None,
    root: str | Path = "runs",
    secret_env_names: list[str] | tuple[str, ...] = (),
) -> RunDir:
    """Create (or reopen, to resume) a run directory, write its resolved config, point `latest` at it, and
    start logging into it."""
    name = _safe_name(name or time.strftime("%Y%m%d-%H%M%S"))
    stage_dir = Path(root) / stage
    path = stage_dir / name
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path / "config.yaml", dump_yaml(config))
    link = stage_dir / "latest"
    tmp = stage_dir / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(name, tmp)
    os.replace(tmp, link)
    run = RunDir(stage, name, path)
    setup_logging(run.log_file, secret_env_names=secret_env_names)
    return run


def latest_run(stage: str, root: str | Path = "runs") -> Path:
    link = Path(root) / stage / "latest"
    if not link.exists():
        raise Vr1Error(f"no {stage} run yet under {Path(root) / stage} (run `vr1 {stage}` first)")
    return link.resolve()
