"""The cold-start config: data, the two roles, prompts, filter, run settings, outputs."""

from __future__ import annotations

from dataclasses import dataclass, field

from coldstart.filters import FilterConfig
from pipeline.config import check_ranges
from pipeline.generation import BackendConfig
from pipeline.grading.blocks import ANSWER_LAYOUTS


@dataclass
class DataConfig:
    manifests: list[str] = field(default_factory=lambda: ["data/demo/manifest_train.yaml"])
    limit: int | None = None  # first N samples of each manifest
    strict: bool = False  # lenient: bad records are listed in rejects.jsonl and the rest proceeds

    def __post_init__(self):
        if not self.manifests:
            raise ValueError("data.manifests: give at least one manifest")
        check_ranges(self, limit=(1, None))


@dataclass
class PromptsConfig:
    """Prompt files (relative paths resolve against the project root)."""

    pseudo_cot: str = "prompts/pseudo_cot.txt"
    description: str = "prompts/describe_image.txt"
    reasoning: str = "prompts/reason.txt"


@dataclass
class RunSettings:
    mode: str = "stream"  # stream: a sample enters the next step as soon as it can; staged: step by step
    max_in_flight: int = 0  # samples in the pipeline at once; 0 = 2 x (vlm + reasoner concurrency)
    fsync: bool = True  # fsync every record (crash safety); off only for benchmarks on throwaway data
    retry_failed: bool = True  # a rerun asks again what failed last time

    def __post_init__(self):
        if self.mode not in ("stream", "staged"):
            raise ValueError(f"run.mode '{self.mode}' unknown; use stream or staged")
        check_ranges(self, max_in_flight=(0, None))


@dataclass
class OutputConfig:
    sharegpt: bool = True  # LLaMA-Factory ShareGPT JSON (Vision-R1-cold layout) + dataset_info.json
    hf: bool = True  # HF dataset (messages + images)
    # inside <answer>: vr1 (the bare answer) | vision_r1 (" Final Answer:X ", the published Vision-R1-cold layout,
    # which Vision-R1's own evaluation extracts): an SFT on either set then evaluates the same way
    answer_layout: str = "vr1"

    def __post_init__(self):
        if self.answer_layout not in ANSWER_LAYOUTS:
            raise ValueError(f"output.answer_layout '{self.answer_layout}' unknown; use one of {list(ANSWER_LAYOUTS)}")


@dataclass
class ColdStartConfig:
    data: DataConfig = field(default_factory=DataConfig)
    vlm: BackendConfig = field(default_factory=BackendConfig)
    reasoner: BackendConfig = field(default_factory=BackendConfig)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    run: RunSettings = field(default_factory=RunSettings)
    output: OutputConfig = field(default_factory=OutputConfig)
