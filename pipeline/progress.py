"""Progress bars and logging shared by every stage. Secrets never reach a log line."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

LOG = logging.getLogger("vr1")
SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.I)


def progress(it: Iterable | None = None, desc: str = "", total: int | None = None, unit: str = "sample", **kw):
    """A tqdm bar with rate and ETA on stderr; quiet when VR1_NO_PROGRESS=1 (CI logs stay readable)."""
    disable = os.environ.get("VR1_NO_PROGRESS") == "1"
    return tqdm(
        it,
        desc=desc,
        total=total,
        unit=unit,
        dynamic_ncols=True,
        disable=disable,
        file=sys.stderr,
        mininterval=0.5,
        **kw,
    )


def secret_values(extra_env_names: Iterable[str] = ()) -> list[str]:
    """Values of environment variables that hold secrets (by name pattern, plus names a config points at)."""
    names = {n for n in os.environ if SECRET_ENV.search(n)} | set(extra_env_names)
    return sorted(
        {os.environ[n] for n in names if os.environ.get(n) and len(os.environ[n]) >= 6}, key=len, reverse=True
    )


def scrub(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text


class ScrubFilter(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        cleaned = scrub(msg, self.secrets)
        if cleaned != msg:
            record.msg, record.args = cleaned, None
        return True


def setup_logging(log_file: Path | None = None, level: int = logging.INFO, secret_env_names: Iterable[str] = ()):
    """Console + optional file logging for the `vr1` logger, with every secret value scrubbed."""
    LOG.setLevel(level)
    for h in list(LOG.handlers):
        LOG.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    flt = ScrubFilter(secret_values(secret_env_names))
    for h in handlers:
        h.setFormatter(fmt)
        h.addFilter(flt)
        LOG.addHandler(h)
    LOG.propagate = False
    return LOG
