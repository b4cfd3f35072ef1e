"""Fail fast, with a fix, when the environment holds packages known to break the CPU install.

torchvision and torchcodec from the registry are CUDA builds; on a CPU-only torch they fail to import, and an
installed-but-broken torchvision makes `transformers` image processors fail in confusing ways far from the cause.
"""

from __future__ import annotations

import importlib
import importlib.util
import os

from pipeline.errors import Vr1Error

_CHECKED = False
BROKEN_HINT = (
    "{name} is installed but cannot be imported ({err}). It is a CUDA build that does not match this torch. "
    "Remove it with `.venv/bin/pip uninstall -y {name}` (vr1 does not need it), or install a build matching "
    "your torch."
)


def check_environment(force: bool = False) -> None:
    """Raise Vr1Error if torchvision or torchcodec is importable-broken. Cheap after the first call."""
    global _CHECKED
    if _CHECKED and not force:
        return
    if os.environ.get("VR1_SKIP_ENV_CHECK") != "1":
        for name in ("torchvision", "torchcodec"):
            if importlib.util.find_spec(name) is None:
                continue
            try:
                importlib.import_module(name)
            except Exception as e:  # any import failure of these is the CUDA-mismatch case
                raise Vr1Error(BROKEN_HINT.format(name=name, err=f"{type(e).__name__}: {str(e)[:200]}")) from None
    _CHECKED = True


def fix_environment() -> list[str]:
    """Uninstall torchvision/torchcodec when they are installed but cannot import; returns what was removed."""
    import subprocess
    import sys

    removed = []
    for name in ("torchvision", "torchcodec"):
        if importlib.util.find_spec(name) is None:
            continue
        probe = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True)
        if probe.returncode != 0:
            subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", name], check=True)
            removed.append(name)
    return removed


# What the verl path imports, in the order a launch needs them, with why and what installs it. Versions are the set
# `make install-gpu` resolves (constraints-gpu.txt); `vr1 doctor` prints this table for the machine it runs on.
VERL_NEEDS = (
    ("verl", "the trainer (python -m verl.trainer.main_ppo)", "0.9.1"),
    ("ray", "verl's workers, one or many nodes", None),
    ("vllm", "rollouts (actor_rollout_ref.rollout.name=vllm)", None),
    ("torchvision", "qwen_vl_utils imports it; without it verl's dataset drops every prompt", None),
    ("qwen_vl_utils", "verl's image loader (resizes each image to its pixel budget)", None),
    ("flash_attn", "actor_rollout_ref.model.use_remove_padding=true", None),
)
GPU_FIX = "run `make install-gpu` on the GPU node (see README, 'GPU clusters')"
_PROBE = """
import importlib, importlib.metadata as md, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        dist = {"qwen_vl_utils": "qwen-vl-utils", "flash_attn": "flash-attn"}.get(name, name)
        out[name] = {"ok": True, "version": md.version(dist)}
    except Exception as e:
        out[name] = {"ok": False, "error": f"{type(e).__name__}: {str(e)[:160]}"}
try:
    import torch
    out["cuda"] = {"ok": torch.cuda.is_available(), "devices": torch.cuda.device_count(), "torch": torch.__version__}
except Exception as e:
    out["cuda"] = {"ok": False, "error": str(e)[:160]}
print(json.dumps(out))
"""


class Readiness:
    """What the verl path finds on this machine: `rows` (name, status, detail) and `problems` (each with its fix)."""

    def __init__(self, found: dict, need_gpu: bool):
        self.rows, self.problems = [], []
        for name, why, version in VERL_NEEDS:
            got = found.get(name, {})
            if not got.get("ok"):
                error = got.get("error", "not importable")
                self.rows.append((name, "missing" if f"No module named '{name}'" in error else "broken", why))
                self.problems.append(f"{name}: {error} ({why}); {GPU_FIX}")
            elif version and got["version"] != version:
                self.rows.append((name, f"{got['version']} (want {version})", why))
                self.problems.append(f"{name} {got['version']} is installed; vr1 is tested with {version}; {GPU_FIX}")
            else:
                self.rows.append((name, got["version"], why))
        cuda = found.get("cuda", {})
        gpus = f"{cuda.get('devices', 0)} CUDA device(s), torch {cuda.get('torch', '?')}"
        self.rows.append(("cuda", gpus if cuda.get("ok") else "none", "GPUs for the actor and the rollout"))
        if need_gpu and not cuda.get("ok"):
            self.problems.append(f"no CUDA device visible ({gpus}): verl's GRPO needs GPUs; on CPU use engine=trl")

    def table(self) -> str:
        return "\n".join(f"  {name:<14} {status:<34} {why}" for name, status, why in self.rows)


def verl_readiness(need_gpu: bool = True) -> Readiness:
    """Probe, in a fresh interpreter (a broken CUDA build must not take this process down), every import the verl
    path needs and the GPUs."""
    import json
    import subprocess
    import sys

    names = [name for name, _, _ in VERL_NEEDS]
    out = subprocess.run([sys.executable, "-c", _PROBE, *names], capture_output=True, text=True, timeout=600)
    try:
        found = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        found = {n: {"ok": False, "error": f"probe failed: {out.stderr.strip()[-200:]}"} for n in names}
    return Readiness(found, need_gpu)


def doctor(args=None) -> int:
    """`vr1 doctor`: what the verl path needs on this machine; non-zero when something is missing."""
    ready = verl_readiness(need_gpu=True)
    print("verl path (PTST on GPU clusters):")  # noqa: T201
    print(ready.table())  # noqa: T201
    if ready.problems:
        print("not ready:\n  - " + "\n  - ".join(ready.problems))  # noqa: T201
        print("the CPU path (engine=trl, cold start, SFT, eval) does not need any of these.")  # noqa: T201
        return 1
    print("ready: `vr1 ptst --config ptst/vision_r1` will launch on verl")  # noqa: T201
    return 0


if __name__ == "__main__":
    import sys

    if "--fix" in sys.argv:
        gone = fix_environment()
        if gone:
            print(f"removed importable-broken CUDA-only packages: {', '.join(gone)}")  # noqa: T201
    check_environment(force=True)
    print("environment ok: torchvision/torchcodec absent or importable")  # noqa: T201
