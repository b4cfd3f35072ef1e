"""`vr1 check-data`: read manifests leniently and report every record that would break a later stage."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.data.manifest import Manifest, read_manifest
from pipeline.errors import DataError, Loc
from pipeline.grading.answers import gold_answer_problem


@dataclass
class CheckReport:
    manifest: str
    n_samples: int = 0
    answer_types: Counter = field(default_factory=Counter)
    images_per_sample: Counter = field(default_factory=Counter)
    problems: list[DataError] = field(default_factory=list)
    skipped: list[DataError] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "manifest": self.manifest,
            "samples_ok": self.n_samples,
            "problems": len(self.problems),
            "skipped": len(self.skipped),
            "answer_types": dict(self.answer_types),
            "images_per_sample": {str(k): v for k, v in sorted(self.images_per_sample.items())},
        }


def check_manifest(path: str | Path) -> CheckReport:
    manifest = Manifest.load(path)
    result = read_manifest(manifest, strict=False)
    report = CheckReport(str(path), problems=list(result.rejects), skipped=list(result.skipped))
    for s in result.samples:
        why = gold_answer_problem(s.answer, s.answer_type, s.choices)
        if why:
            origin = Loc(str(manifest.path))
            report.problems.append(DataError(origin, "answer", f"sample '{s.id}': gold answer unusable: {why}"))
            continue
        report.n_samples += 1
        report.answer_types[s.answer_type] += 1
        report.images_per_sample[len(s.images)] += 1
    return report
