"""Run directories: `runs/<stage>/<name>/` with the resolved config, a log, the outputs, and `latest` per stage.

A run directory is locked before anything is written into it (a second command on the same run is refused and
changes nothing), and `latest` moves only when the stage says its run produced something: a run that failed
leaves `latest` on the last one that worked."""

from __future__ import annotations

import fcntl
import os
import shutil
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
    lock: object = None  # the open lock file: held until the process ends

    def mark_latest(self) -> None:
        """Point `runs/<stage>/latest` at this run (atomically): call once the run has produced its outputs."""
        stage_dir = self.path.parent
        tmp = stage_dir / f".latest.{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(self.name, tmp)
        os.replace(tmp, stage_dir / "latest")

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
    """Create (or reopen, to resume) a run directory, lock it, write its resolved config and start logging into
    it. `latest` is not moved here: the stage calls `mark_latest` when the run has produced something."""
    name = _safe_name(name or time.strftime("%Y%m%d-%H%M%S"))
    path = Path(root) / stage / name
    path.mkdir(parents=True, exist_ok=True)
    lock = open(path / ".lock", "w")  # noqa: SIM115 - held for the whole run, released on exit or kill
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise Vr1Error(f"another vr1 {stage} is running in {path}; wait for it, or choose another --name") from None
    _sweep_temporaries(path)
    atomic_write_text(path / "config.yaml", dump_yaml(config))
    run = RunDir(stage, name, path, lock)
    setup_logging(run.log_file, secret_env_names=secret_env_names)
    return run


def _sweep_temporaries(path: Path) -> None:
    """Remove what an interrupted command left behind (atomic writes' temporaries): with the lock held, nobody
    else is writing here."""
    for leftover in [*path.glob(".*.tmp"), *path.glob(".*.old-*")]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def latest_run(stage: str, root: str | Path = "runs") -> Path:
    link = Path(root) / stage / "latest"
    if not link.exists():
        raise Vr1Error(f"no {stage} run yet under {Path(root) / stage} (run `vr1 {stage}` first)")
    return link.resolve()
