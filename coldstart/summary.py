"""The summary of a cold-start run: cumulative over every invocation of the same run (a resume adds to it, never
replaces it), with the history of invocations, the final verdicts, failures by cause and drops by rule."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

ROLE_TOTALS = ("requests", "failed", "retries", "prompt_tokens", "completion_tokens", "generating_s", "waiting_s")


def failure_causes(records: list[dict]) -> dict[str, int]:
    """Why samples failed (the step and the last error), most frequent first."""
    causes = Counter(r["reasons"][0]["reason"] for r in records if r["verdict"] == "failed" and r["reasons"])
    return dict(causes.most_common())


def invocation(started: float, wall_s: float, samples: int, roles: dict[str, dict]) -> dict:
    """What one run of the command did: its own requests, reuses, failures and times per role."""
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "wall_s": round(wall_s, 2),
        "samples_per_s": round(samples / wall_s, 3) if wall_s > 0 else 0.0,
        "roles": {
            role: {k: round(v, 3) if isinstance(v, float) else v for k, v in s.items()} for role, s in roles.items()
        },
    }


def run_summary(previous: dict | None, this: dict, records: list[dict], report: dict, extra: dict) -> dict:
    """The run's summary after `this` invocation: the verdicts of the records as they stand now, and work and time
    summed over every invocation so far (`previous` is the summary the last invocation wrote, if any)."""
    history = [*((previous or {}).get("invocations") or []), this]
    roles: dict[str, dict] = {}
    for inv in history:
        for role, stats in inv["roles"].items():
            totals = roles.setdefault(role, dict.fromkeys(ROLE_TOTALS, 0))
            for key in ROLE_TOTALS:
                totals[key] = round(totals[key] + stats.get(key, 0), 3)
    return {
        "samples": len(records),
        "kept": report["kept"],
        "dropped": report["dropped"],
        "failed": report["failed"],
        "dropped_by_rule": report["by_rule"],
        "failed_by_cause": failure_causes(records),
        **extra,
        "requests_answered": sum(r["requests"] for r in roles.values()),
        "requests_failed": sum(r["failed"] for r in roles.values()),
        "generating_s": round(sum(r["generating_s"] for r in roles.values()), 2),
        "waiting_s": round(sum(r["waiting_s"] for r in roles.values()), 2),
        "wall_s": round(sum(inv["wall_s"] for inv in history), 2),
        "roles": roles,
        "invocations": history,
    }


def read_previous(path: Path) -> dict | None:
    try:
        previous = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return previous if isinstance(previous, dict) else None


def summary_lines(summary: dict, path: Path) -> list[str]:
    this = summary["invocations"][-1]
    runs = len(summary["invocations"])
    lines = [
        f"cold start: {summary['samples']} samples -> kept {summary['kept']}, dropped {summary['dropped']}, "
        f"failed {summary['failed']} in {this['wall_s']:.1f}s ({this['samples_per_s']:.2f} samples/s)"
        + (f"; invocation {runs} of this run" if runs > 1 else "")
    ]
    for role, s in this["roles"].items():
        lines.append(
            f"  {role:<8} requests {s['requests']} (reused {s['reused']}, failed {s['failed']}, retries "
            f"{s['retries']}), tokens in {s['prompt_tokens']} / out {s['completion_tokens']}"
        )
    if summary["dropped_by_rule"]:
        lines.append("  drops by rule: " + json.dumps(summary["dropped_by_rule"]))
    for cause, n in list(summary["failed_by_cause"].items())[:3]:
        lines.append(f"  failed {n}x: {cause}")
    outputs = summary.get("outputs") or {}
    lines.append(
        f"  wrote {path}/: coldstart.jsonl, dropped.jsonl, filter_report.json, summary.json, steps/"
        + (", cold_start.json" if "sharegpt" in outputs else "")
        + (", cold_start_hf/" if "hf" in outputs else "")
    )
    return lines
