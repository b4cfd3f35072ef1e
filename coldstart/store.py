"""Append-only JSONL per generation step: what makes a killed run resumable without re-asking or duplicating.

Each record is one line written with a single `write()` on an O_APPEND descriptor and fsync'd. A kill -9 can at
worst leave a torn last line; loading cuts it off (the request it held is simply asked again). A record is keyed
by (sample id, step, prompt hash, model, request hash): change a prompt, a model, a request setting (pixel
budget, sampling) or an upstream output and the affected requests are asked anew, everything else is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pipeline.progress import LOG


def record_key(sample_id: str, step: str, prompt_hash: str, model: str, request_hash: str) -> str:
    return "\x1f".join((sample_id, step, prompt_hash, model, request_hash))


def content_hash(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass") + b"\x00")
    return h.hexdigest()[:16]


class StepStore:
    def __init__(self, path: Path, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.ok: dict[str, dict] = {}
        self.failed: dict[str, dict] = {}
        self.repaired_bytes = 0
        self._load()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a torn last line from a kill: drop it, its request is asked again
            self.repaired_bytes = len(data) - end
            with open(self.path, "r+b") as f:
                f.truncate(end)
            LOG.warning(
                "%s: cut a torn last line (%d bytes) left by an interrupted run", self.path, self.repaired_bytes
            )
        for lineno, line in enumerate(data[:end].splitlines(), 1):
            try:
                rec = json.loads(line)
                key = rec["key"]
            except (json.JSONDecodeError, KeyError, TypeError):
                LOG.warning("%s:%d: unreadable record skipped", self.path, lineno)
                continue
            if rec.get("status") == "ok":
                self.ok.setdefault(key, rec)  # first answer wins: a duplicate never changes the result
                self.failed.pop(key, None)
            elif key not in self.ok:
                self.failed[key] = rec

    def get_ok(self, key: str) -> dict | None:
        return self.ok.get(key)

    def append(self, record: dict) -> None:
        key = record["key"]
        if record.get("status") == "ok" and key in self.ok:
            return
        line = memoryview((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        while line:
            line = line[os.write(self._fd, line) :]
        if self.fsync:
            os.fsync(self._fd)
        if record.get("status") == "ok":
            self.ok[key] = record
            self.failed.pop(key, None)
        else:
            self.failed[key] = record

    def close(self) -> None:
        os.close(self._fd)
