"""What every benchmark shares: its figures and scaling curves, written under runs/bench/<date>/.

Each bench process adds its own section to `runs/bench/<date>/results.json` (one file per day, so one `make bench`
collects every bench in one place) and draws one PNG per curve next to it. A curve is how a cost grows with the
input: a short list of (x, y) points, printed as a small table when recorded.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Curve:
    """How `y` (a cost: ms per sample, tokens/s, …) grows with `x` (an input size)."""

    name: str
    x_label: str
    y_label: str
    points: list[tuple[float, float]] = field(default_factory=list)
    note: str = ""

    def table(self) -> str:
        width = max(len(self.x_label), 10)
        lines = [f"{self.name}: {self.note}" if self.note else self.name]
        lines.append(f"  {self.x_label:>{width}}  {self.y_label}")
        lines += [f"  {x:>{width}g}  {y:.4g}" for x, y in self.points]
        return "\n".join(lines)


_CURVES: list[Curve] = []


def record_curve(name: str, x_label: str, y_label: str, points: list[tuple[float, float]], note: str = "") -> Curve:
    """Keep a scaling curve for this bench's `save_result` and print it as a table."""
    curve = Curve(name, x_label, y_label, [(float(x), float(y)) for x, y in points], note)
    _CURVES.append(curve)
    print(curve.table())  # noqa: T201 - a benchmark reports on stdout
    return curve


def bench_dir(out: str | Path) -> Path:
    return Path(out) / time.strftime("%Y-%m-%d")


def _plot(curve: Curve, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=110)
    xs, ys = zip(*curve.points, strict=True) if curve.points else ((), ())
    ax.plot(xs, ys, marker="o")
    ax.set_xlabel(curve.x_label)
    ax.set_ylabel(curve.y_label)
    ax.set_title(curve.name, fontsize=10)
    if xs and min(xs) > 0 and max(xs) / min(xs) >= 20:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_result(out: str | Path, name: str, payload) -> Path:
    """Merge `{name: {"figures": payload, "curves": [...]}}` into the day's results.json (atomically) and draw
    this bench's curves; returns the results file."""
    folder = bench_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    results = folder / "results.json"
    merged = json.loads(results.read_text()) if results.exists() else {}
    pngs = []
    for curve in _CURVES:
        png = folder / f"{name}-{curve.name.replace(' ', '_').replace('/', '_')}.png"
        _plot(curve, png)
        pngs.append(png.name)
    merged[name] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "figures": payload,
        "curves": [asdict(c) | {"png": p} for c, p in zip(_CURVES, pngs, strict=True)],
    }
    tmp = results.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(merged, indent=2))
    tmp.replace(results)
    _CURVES.clear()
    print(f"wrote {results} ({name}: {len(pngs)} curve PNGs beside it)")  # noqa: T201 - a benchmark's closing line
    return results
