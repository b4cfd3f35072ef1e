"""One-off preparation of Vision-R1's RL sources where the published files cannot be read record by record.

- SceMQA publishes each part as ONE JSON object keyed by subject (`{"Math": [...], "Physics": [...]}`) whose
  `ImagePath` has no extension; `flatten_scemqa` writes a JSON array of the published records with `id`, `subject`,
  `format` and the resolved `image` added (read by the `scemqa` format).
- MathVision and PolyMATH publish a test set whose `testmini` is a subset of it; `drop_ids` (MathVision JSONL)
  and `polymath_split` write the test records that are not in testmini, so testmini can be the held-out set.
- PolyMATH is an HF imagefolder (`<split>/metadata.csv` + PNGs); `polymath_split` turns one split's metadata.csv
  into JSONL with every published column kept as the string it is in the CSV (loading it with pandas would turn
  the published "None" questions into missing values and labels like 2 into integers).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pipeline.errors import DataError, Loc
from pipeline.io import write_json, write_jsonl

SCEMQA_PARTS = {
    "multiple_choice": "Multiple_Choice/multiple_choice.json",
    "free_response": "Free_Response/free_response.json",
}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


def flatten_scemqa(root: Path | str, out: Path | str, subjects: tuple[str, ...] | None = None) -> int:
    """Flatten a SceMQA checkout (`root` holds Multiple_Choice/ and Free_Response/) into one JSON array at `out`;
    image paths become relative to `root`. `subjects` (e.g. ("Math",)) keeps only those. Returns the record count."""
    root = Path(root)
    rows = []
    for fmt, rel in SCEMQA_PARTS.items():
        path = root / rel
        if not path.is_file():
            continue
        sections = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(sections, dict):
            raise DataError(Loc(str(path)), None, "expected an object keyed by subject")
        for section, records in sections.items():
            subject = section.split("_", 1)[0]
            if subjects and subject not in subjects:
                continue
            for i, rec in enumerate(records):
                stem = path.parent / str(rec.get("ImagePath", ""))
                found = [
                    stem.with_name(stem.name + s) for s in _IMAGE_SUFFIXES if stem.with_name(stem.name + s).is_file()
                ]
                if not found:
                    raise DataError(Loc(str(path), index=i), "ImagePath", f"no image file for {stem} ({section})")
                image = found[0].relative_to(root).as_posix()
                rows.append({**rec, "id": f"{fmt}/{section}/{i}", "subject": subject, "format": fmt, "image": image})
    if not rows:
        raise DataError(
            Loc(str(root)), None, f"no SceMQA records under {root} (looked for {list(SCEMQA_PARTS.values())})"
        )
    write_json(out, rows)
    return len(rows)


def drop_ids(src: Path | str, holdout: Path | str, out: Path | str, key: str = "id") -> int:
    """Write the JSONL records of `src` whose `key` is not in the JSONL `holdout` to `out`; returns how many."""

    def ids(path: Path | str) -> list[tuple[str, dict]]:
        with open(path, encoding="utf-8") as f:
            return [(str(r[key]), r) for r in map(json.loads, filter(str.strip, f))]

    held = {i for i, _ in ids(holdout)}
    return write_jsonl(out, [r for i, r in ids(src) if i not in held])


def polymath_split(root: Path | str, split: str, out: Path | str, exclude: str | None = None) -> int:
    """PolyMATH `root/<split>/metadata.csv` as JSONL at `out`, `file_name` made relative to `root`; rows whose file
    name also appears in `root/<exclude>/metadata.csv` are left out. Returns the number of rows written."""
    root = Path(root)

    def rows(name: str) -> list[dict]:
        path = root / name / "metadata.csv"
        if not path.is_file():
            raise DataError(Loc(str(path)), None, "PolyMATH metadata.csv not found")
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))

    held = {r["file_name"] for r in rows(exclude)} if exclude else set()
    kept = [{**r, "file_name": f"{split}/{r['file_name']}"} for r in rows(split) if r["file_name"] not in held]
    return write_jsonl(out, kept)
