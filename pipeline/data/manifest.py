"""Data manifests: one YAML per source saying where the data lives, its layout and how to read it.

`read_manifest` turns a manifest into canonical Samples. Strict mode stops at the first bad record with an error
naming file, line (or record index) and field; lenient mode rejects that record with the same reason and goes on.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.data.detection_sources import DETECTION_FORMATS, check_options, detection_records
from pipeline.data.formats import CONVERTERS, ConvertContext, SkipRecord
from pipeline.data.images import (
    normalize_image_ref,
    relative_to_root,
    resolve_image,
    store_embedded_image,
    verify_image,
)
from pipeline.data.schema import ANSWER_TYPES, Sample
from pipeline.errors import ConfigError, DataError, FieldError, Loc

FORMATS = tuple(CONVERTERS)
MANIFEST_KEYS = {
    "name",
    "format",
    "path",
    "image_root",
    "answer_type",
    "fields",
    "coord_frame",
    "pred_frame",
    "split",
    "verify_images",
    "license",
    "description",
    "url",
    # COCO / LVIS / RefCOCO layouts (pipeline.data.detection_sources)
    "instances",
    "negatives",
    "seed",
    "question_template",
}


@dataclass
class Manifest:
    """Where a data source lives and how to read it. Relative paths are relative to the manifest file."""

    name: str
    format: str
    path: Path
    image_root: Path
    answer_type: str = "auto"
    fields: dict[str, str] = field(default_factory=dict)
    coord_frame: str | None = None
    # the frame the model writes boxes in for this data set (its prompt may ask for one: Visual-RFT's asks for the
    # 0-1000 grid); unset: the run's data.pred_frame, by default the policy family's own convention
    pred_frame: str | None = None
    split: str = "train"
    verify_images: bool = True
    license: str | None = None
    description: str | None = None
    url: str | None = None
    instances: Path | None = None  # refcoco: the COCO instances.json (default: beside the refs pickle)
    negatives: int = 3  # OVD/detection: absent categories asked about per image (LVIS: from neg_category_ids)
    seed: int = 0  # draws those negatives, keyed on the image id
    question_template: str | None = None  # replaces the published question; keeps {categories}/{category}/{expression}

    def __post_init__(self):
        if self.format not in CONVERTERS:
            raise ConfigError(f"manifest '{self.name}': format '{self.format}' unknown; choose one of {FORMATS}")
        if self.answer_type != "auto" and self.answer_type not in ANSWER_TYPES:
            raise ConfigError(
                f"manifest '{self.name}': answer_type '{self.answer_type}' unknown; use auto or one of {ANSWER_TYPES}"
            )
        check_options(self)
        from pipeline.grading.geometry import FRAMES

        for key in ("coord_frame", "pred_frame"):
            if getattr(self, key) is not None and getattr(self, key) not in FRAMES:
                raise ConfigError(f"manifest '{self.name}': {key} '{getattr(self, key)}' unknown; use one of {FRAMES}")

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"manifest not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        return cls.from_dict(raw, base=path.parent, origin=str(path))

    @classmethod
    def from_dict(cls, raw: dict, base: Path = Path("."), origin: str = "<manifest>") -> Manifest:
        unknown = set(raw) - MANIFEST_KEYS
        if unknown:
            raise ConfigError(f"{origin}: unknown key(s) {sorted(unknown)}; known: {sorted(MANIFEST_KEYS)}")
        for key in ("name", "format", "path"):
            if not raw.get(key):
                raise ConfigError(f"{origin}: missing required key '{key}'")
        data = (base / raw["path"]).resolve()
        default_root = data.parent if data.suffix else data.with_name(data.name + "_images")
        if data.suffix == ".parquet" or (data.is_dir() and not data.suffix):
            default_root = data.with_name(data.stem + "_images")  # embedded images are extracted here
        root = (base / raw["image_root"]).resolve() if raw.get("image_root") else default_root
        paths = {"name", "format", "path", "image_root", "instances"}  # taken as given or resolved below
        kwargs = {k: raw[k] for k in MANIFEST_KEYS - paths if k in raw}
        if raw.get("instances"):
            kwargs["instances"] = (base / raw["instances"]).resolve()
        return cls(name=raw["name"], format=raw["format"], path=data, image_root=root, **kwargs)


@dataclass
class ReadResult:
    samples: list[Sample]
    rejects: list[DataError]
    skipped: list[DataError]
    manifest: Manifest

    def summary(self) -> str:
        return (
            f"{self.manifest.name}: {len(self.samples)} samples, {len(self.rejects)} rejected, "
            f"{len(self.skipped)} skipped by the layout's own rules"
        )


# ---------------------------------------------------------------- record sources


def iter_records(path: Path, split: str = "train") -> Iterator[tuple[Loc, dict | DataError]]:
    """(location, record) pairs from JSONL, a JSON array, parquet, or an HF dataset saved to disk.

    A record that cannot be parsed comes back as a DataError in place of the dict, so lenient readers go on.
    """
    if path.is_dir():
        yield from _iter_hf_disk(path, split)
    elif not path.is_file():
        raise DataError(Loc(str(path)), None, "data file not found")
    elif path.suffix == ".parquet":
        yield from _iter_parquet(path)
    else:
        with open(path, encoding="utf-8") as f:
            head = f.read(4096).lstrip()
        if head.startswith("["):
            yield from _iter_json_array(path)
        else:
            yield from _iter_jsonl(path)


def _not_an_object(loc: Loc, rec) -> DataError:
    return DataError(loc, None, f"expected a JSON object, got {type(rec).__name__}")


def _iter_jsonl(path: Path):
    with open(path, encoding="utf-8", errors="strict") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            loc = Loc(str(path), line=lineno)
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                yield loc, DataError(loc, None, f"malformed JSON: {e.msg} at column {e.colno}")
                continue
            yield loc, rec if isinstance(rec, dict) else _not_an_object(loc, rec)


def _iter_json_array(path: Path):
    """Records of a JSON array, one at a time. A syntax error becomes one DataError (line and column) and
    reading goes on at the next record that starts where the array's records start (same indentation at the
    start of a line), so one damaged record loses only itself; with no such place the rest of the file is that
    one error."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    record_column = None
    index = 0
    while True:
        pos = _skip_separators(text, pos)
        if pos >= len(text) or text[pos] == "]":
            return
        loc = Loc(str(path), index=index)
        try:
            rec, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            where = Loc(str(path), line=e.lineno)
            yield where, DataError(where, None, f"malformed JSON in record {index}: {e.msg} at column {e.colno}")
            index += 1
            pos = _next_record_start(text, e.pos, record_column)
            if pos is None:
                return
            continue
        if record_column is None:
            record_column = pos - (text.rfind("\n", 0, pos) + 1)
        yield loc, rec if isinstance(rec, dict) else _not_an_object(loc, rec)
        index += 1
        pos = end


def _skip_separators(text: str, pos: int) -> int:
    while pos < len(text) and (text[pos].isspace() or text[pos] == ","):
        pos += 1
    return pos


def _next_record_start(text: str, after: int, column: int | None) -> int | None:
    """The first `{` past `after` that opens a line at the records' indentation (None when there is none)."""
    pos = text.find("\n", after)
    while pos >= 0:
        start = pos + 1
        stripped = len(text[start:]) - len(text[start:].lstrip(" \t"))
        brace = start + stripped
        if brace < len(text) and text[brace] == "{" and (column is None or stripped == column):
            return brace
        pos = text.find("\n", start)
    return None


def _iter_parquet(path: Path):
    import pyarrow.parquet as pq

    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
        for rec in batch.to_pylist():
            yield Loc(str(path), index=index), rec
            index += 1


def _iter_hf_disk(path: Path, split: str):
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError as e:
        raise DataError(Loc(str(path)), None, f"not an HF dataset saved with save_to_disk: {e}") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataError(Loc(str(path)), "split", f"split '{split}' not in the dataset; it has {list(ds)}")
        ds = ds[split]
    # Images as {bytes, path} cells: no decoding here, the manifest layer stores and verifies them.
    for name, feat in ds.features.items():
        if isinstance(feat, datasets.Image):
            ds = ds.cast_column(name, datasets.Image(decode=False))
        elif isinstance(feat, (datasets.Sequence, datasets.List)) and isinstance(feat.feature, datasets.Image):
            ds = ds.cast_column(name, datasets.List(datasets.Image(decode=False)))
    for i, rec in enumerate(ds):
        yield Loc(f"{path}[{split}]" if split else str(path), index=i), rec


# ---------------------------------------------------------------- validation shared by every layout


def _settle_images(sample: Sample, manifest: Manifest) -> None:
    """Turn every image reference into a path relative to the image root, checked to exist and decode."""
    settled = []
    for i, ref in enumerate(sample.images):
        name = f"images[{i}]"
        if hasattr(ref, "save"):  # a PIL image (HF datasets decoded it)
            buf = io.BytesIO()
            ref.save(buf, format="PNG")
            ref = {"bytes": buf.getvalue(), "path": None}
        if isinstance(ref, dict):
            # verl's by-path cells name the file in `image` (absolute: give the manifest image_root: / or above)
            data, hint = ref.get("bytes"), ref.get("image") or ref.get("path")
            if data:
                rel = store_embedded_image(manifest.image_root, data, hint, name)
            elif hint:
                rel = normalize_image_ref(hint)
            else:
                raise FieldError(name, "image cell has neither bytes nor path")
        else:
            rel = ref
        path = resolve_image(manifest.image_root, rel, name)
        if manifest.verify_images:
            verify_image(path, name)
        settled.append(relative_to_root(manifest.image_root, path, name))
    sample.images = settled


def _check_sample(sample: Sample) -> None:
    if not sample.id:
        raise FieldError("id", "empty id")
    if not sample.question.strip():
        raise FieldError("question", "empty question")
    if not sample.answer.strip():
        raise FieldError("answer", "empty answer")
    if sample.answer_type == "choice" and sample.choices:
        letters = [chr(ord("A") + i) for i in range(len(sample.choices))]
        if sample.answer not in letters:
            raise FieldError("answer", f"choice '{sample.answer}' is not among the options {letters}")


def read_manifest(manifest: Manifest | str | Path, strict: bool = True) -> ReadResult:
    """Read every record of a manifest into Samples; see the module docstring for strict vs lenient."""
    if not isinstance(manifest, Manifest):
        manifest = Manifest.load(manifest)
    convert = CONVERTERS[manifest.format]
    ctx = ConvertContext(manifest.name, manifest.answer_type, manifest.fields, manifest.coord_frame)
    samples: list[Sample] = []
    rejects: list[DataError] = []
    skipped: list[DataError] = []
    first_seen: dict[str, Loc] = {}
    if manifest.format in DETECTION_FORMATS:  # one file expands into many samples
        records = detection_records(manifest)
    else:
        records = iter_records(manifest.path, manifest.split)
    for loc, rec in records:
        try:
            if isinstance(rec, DataError):
                raise rec
            try:
                sample = convert(rec, ctx)
                _check_sample(sample)
                _settle_images(sample, manifest)
            except FieldError as e:
                raise DataError(loc, e.field, e.message) from None
            if manifest.pred_frame:
                sample.meta["pred_frame"] = manifest.pred_frame
            if sample.id in first_seen:
                raise DataError(loc, "id", f"duplicate id '{sample.id}' (first seen at {first_seen[sample.id]})")
            first_seen[sample.id] = loc
            samples.append(sample)
        except SkipRecord as e:
            skipped.append(DataError(loc, None, f"skipped: {e}"))
        except DataError as e:
            if strict:
                raise
            rejects.append(e)
    return ReadResult(samples, rejects, skipped, manifest)
