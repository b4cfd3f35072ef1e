"""Errors that point at the exact place in the user's data or config that caused them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loc:
    """Where a record came from: a file plus a 1-based line (JSONL) or a 0-based record index."""

    file: str
    line: int | None = None
    index: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.file}:{self.line}"
        if self.index is not None:
            return f"{self.file} record {self.index}"
        return self.file


class Vr1Error(Exception):
    """Base for errors vr1 reports to the user as one clear line (no traceback needed)."""


class ConfigError(Vr1Error):
    """A config file or override is wrong; the message says which key and how to fix it."""


class DataError(Vr1Error):
    """A data record is wrong. Carries the location and the field so a person can go and fix it."""

    def __init__(self, loc: Loc | str, field: str | None, message: str):
        self.loc = loc if isinstance(loc, Loc) else Loc(str(loc))
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.loc}: field '{self.field}'" if self.field else f"{self.loc}"
        return f"{where}: {self.message}"

    def as_record(self) -> dict:
        """The rejection as a JSON-able record (what lenient mode writes to rejects.jsonl)."""
        return {
            "file": self.loc.file,
            "line": self.loc.line,
            "index": self.loc.index,
            "field": self.field,
            "reason": self.message,
        }


class FieldError(Exception):
    """Raised by format converters; the reader wraps it into a DataError with the record's location."""

    def __init__(self, field: str | None, message: str):
        self.field = field
        self.message = message
        super().__init__(message)
