"""`vr1 check-data`: read manifests leniently and report every record that would break a later stage."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import DataError, Loc
from pipeline.manifest import Manifest, read_manifest
from pipeline.schema import Sample

_NUMBER = re.compile(r"^[-+]?(\d+(,\d{3})*(\.\d*)?|\.\d+)([eE][-+]?\d+)?%?$")


def gold_problem(sample: Sample) -> str | None:
    """Why the gold answer cannot be scored for its answer_type, or None when it can.

    Readers already refuse unparseable choice letters and boxes; this adds the checks that only matter for
    scoring. Expression answers are checked by balanced braces here (full parsing is the rewards module's).
    """
    a = sample.answer.strip()
    if sample.answer_type == "number" and not _NUMBER.match(a.replace(" ", "")):
        return f"number answer '{a[:40]}' is not a number"
    if sample.answer_type == "choice" and not (len(a) == 1 and a.isalpha() and a.isupper()):
        return f"choice answer '{a[:40]}' is not a single option letter"
    if sample.answer_type == "expression":
        depth = 0
        for ch in a:
            depth += {"{": 1, "}": -1}.get(ch, 0)
            if depth < 0:
                break
        if depth != 0:
            return f"expression answer '{a[:40]}' has unbalanced braces"
    return None


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
        why = gold_problem(s)
        if why:
            origin = Loc(str(manifest.path))
            report.problems.append(DataError(origin, "answer", f"sample '{s.id}': gold answer unusable: {why}"))
            continue
        report.n_samples += 1
        report.answer_types[s.answer_type] += 1
        report.images_per_sample[len(s.images)] += 1
    return report
