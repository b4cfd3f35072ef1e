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


if __name__ == "__main__":
    import sys

    if "--fix" in sys.argv:
        gone = fix_environment()
        if gone:
            print(f"removed importable-broken CUDA-only packages: {', '.join(gone)}")  # noqa: T201
    check_environment(force=True)
    print("environment ok: torchvision/torchcodec absent or importable")  # noqa: T201
