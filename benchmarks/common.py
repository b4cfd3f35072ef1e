"""What every benchmark shares: its result written as JSON under runs/bench/<time>/."""

from __future__ import annotations

import json
import time
from pathlib import Path


def save_result(out: str | Path, name: str, payload) -> Path:
    path = Path(out) / time.strftime("%Y%m%d-%H%M%S") / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")  # noqa: T201 - a benchmark's closing line
    return path
