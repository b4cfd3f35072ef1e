"""From generation results to the cold-start set: candidates, filter verdicts, records, report, written files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from coldstart.counts import VerdictCounts
from coldstart.filters import Candidate, FilterConfig, apply_filters
from coldstart.runner import SampleResult, uid
from pipeline.data.images import resolve_image
from pipeline.data.schema import Sample
from pipeline.data.writers import write_hf_dataset, write_sharegpt
from pipeline.io import write_json, write_jsonl


def candidate(sample: Sample, res: SampleResult) -> Candidate:
    reasoning = res.outputs["reasoning"]
    return Candidate(
        id=uid(sample),
        source=sample.source,
        answer_type=sample.answer_type,
        gold=sample.answer,
        choices=sample.choices,
        question=sample.question,
        thinking=reasoning.get("thinking") or "",
        answer_text=reasoning["text"],
        final_answer=reasoning.get("final_answer"),
        finish_reasons={step: out.get("finish_reason", "stop") for step, out in res.outputs.items()},
    )


def build_records(
    samples: list[Sample], results: dict[str, SampleResult], cfg: FilterConfig, answer_layout: str = "vr1"
) -> list[dict]:
    """One record per sample, in input order: Sample + every intermediate text + verdict + provenance."""
    cands = {}
    for s in samples:
        res = results[uid(s)]
        if res.failed is None:
            cands[uid(s)] = candidate(s, res)
    apply_filters(list(cands.values()), cfg)
    records = []
    for s in samples:
        res = results[uid(s)]
        rec = {
            **s.to_dict(),
            "uid": uid(s),
            "pseudo_cot": res.outputs.get("pseudo_cot", {}).get("text"),
            "description": res.outputs.get("description", {}).get("text"),
            "reasoning": res.outputs.get("reasoning"),
            "provenance": res.provenance,
        }
        c = cands.get(uid(s))
        if c is None:
            rec.update(
                verdict="failed",
                reasons=[{"rule": "generation", "reason": f"{res.failed['step']}: {res.failed['reason']}"}],
                edits=[],
                response=None,
            )
        else:
            rec.update(
                verdict="dropped" if c.reasons else "kept",
                reasons=c.reasons,
                edits=c.edits,
                final_answer=c.final_answer,
                response=c.response(answer_layout),
            )
        records.append(rec)
    return records


def filter_report(records: list[dict]) -> dict:
    """Counts per verdict, per rule and per source (a sample dropped by two rules counts under both)."""
    counts = VerdictCounts()
    for rec in records:
        counts.add(rec)
    return counts.as_dict()


def write_outputs(
    out_dir: Path, samples: list[Sample], records: list[dict], image_roots: dict[str, Path], sharegpt: bool, hf: bool
) -> dict[str, Path]:
    """coldstart.jsonl (every sample), dropped.jsonl, filter_report.json, and the kept set as ShareGPT / HF.
    Kept images are linked under `<source>/<relative path>` so sources never collide."""
    written = {
        "records": out_dir / "coldstart.jsonl",
        "dropped": out_dir / "dropped.jsonl",
        "report": out_dir / "filter_report.json",
    }
    write_jsonl(written["records"], records)
    write_jsonl(written["dropped"], (r for r in records if r["verdict"] != "kept"))
    write_json(written["report"], filter_report(records))
    by_uid = {uid(s): s for s in samples}
    kept = []
    for rec in records:
        if rec["verdict"] == "kept":
            s = by_uid[rec["uid"]]
            meta = {**s.meta, "response": rec["response"], "cold_start": {"uid": rec["uid"], "edits": rec["edits"]}}
            kept.append(replace(s, images=[f"{s.source}/{rel}" for rel in s.images], meta=meta))

    def locate(sample: Sample, rel: str) -> Path:
        source, inner = rel.split("/", 1)
        return resolve_image(image_roots[source], inner, "images")

    if sharegpt:
        written["sharegpt"] = write_sharegpt(kept, out_dir / "cold_start.json", locate, dataset_name="vr1_cold_start")
    if hf:
        written["hf"] = write_hf_dataset(kept, out_dir / "cold_start_hf", locate)
    return written
