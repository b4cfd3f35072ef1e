"""The eval config: one model (any generation backend) and the benchmarks to run it on."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.config import check_ranges
from pipeline.generation import BackendConfig


@dataclass
class BenchmarkSpec:
    name: str  # mathvista | mathverse | mm_math | dynamath | rec | ovd | detection | classification | manifest
    path: str  # the benchmark's data as published (a file or folder), or a vr1 manifest for `manifest`
    image_root: str | None = None  # where the images are, when the layout names them relatively
    limit: int | None = None
    options: dict = field(default_factory=dict)  # passed to the scorer (e.g. pred_frame for rec/ovd/detection)

    def __post_init__(self):
        check_ranges(self, limit=(1, None))


@dataclass
class EvalConfig:
    model: BackendConfig = field(default_factory=BackendConfig)
    benchmarks: list[BenchmarkSpec] = field(default_factory=list)
    n_samples: int = 1  # responses per item; accuracy is their mean (pass@1)
    # counts thinking and answer tokens for the length statistics; default: the model's own folder when local
    tokenizer: str | None = None

    def __post_init__(self):
        check_ranges(self, n_samples=(1, None))
        if not self.benchmarks:
            raise ValueError("benchmarks: give at least one {name, path}")
        names = [b.name for b in self.benchmarks]
        if len(set(names)) != len(names):
            raise ValueError(f"benchmarks: each name once ({names})")
