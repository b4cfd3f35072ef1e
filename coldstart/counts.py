"""Verdict counts of a cold-start run: per verdict, per drop rule and per source, kept one record at a time so the
filter report and the inspector (which streams 200K records) count the same way."""

from __future__ import annotations

from collections import Counter

VERDICTS = ("kept", "dropped", "failed")


def _bucket() -> dict:
    return {"total": 0, "kept": 0, "dropped": 0, "failed": 0, "by_rule": Counter()}


class VerdictCounts:
    """A sample dropped by two rules counts under both rules (and once under `dropped`)."""

    def __init__(self) -> None:
        self.total = _bucket()
        self.by_source: dict[str, dict] = {}
        self.edits: Counter = Counter()

    def add(self, rec: dict) -> None:
        for bucket in (self.total, self.by_source.setdefault(rec.get("source", "?"), _bucket())):
            bucket["total"] += 1
            bucket[rec["verdict"]] += 1
            if rec["verdict"] == "dropped":  # a failed sample was never filtered: its cause is not a drop rule
                for r in rec.get("reasons") or []:
                    bucket["by_rule"][r["rule"]] += 1
        for e in rec.get("edits") or []:
            self.edits[e["rule"]] += e["count"]

    @staticmethod
    def _finish(bucket: dict) -> dict:
        keep_rate = round(bucket["kept"] / bucket["total"], 4) if bucket["total"] else 0.0
        return {**bucket, "by_rule": dict(bucket["by_rule"].most_common()), "keep_rate": keep_rate}

    def as_dict(self) -> dict:
        return {
            **self._finish(self.total),
            "edits": dict(self.edits),
            "by_source": {s: self._finish(b) for s, b in self.by_source.items()},
        }
