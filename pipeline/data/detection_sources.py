"""Detection data as it is published: COCO and LVIS instance annotations and RefCOCO refs, read straight into OVD,
detection and REC samples, plus VLM-R1's REC JSON.

One record of these files is not one sample (a COCO file is one JSON object for a whole split; RefCOCO is a refs
pickle plus an `instances.json`), so `detection_records` expands a manifest into (location, Sample) pairs that
`pipeline.data.manifest.read_manifest` checks like any other layout's. A bad part comes back as a DataError naming
file, record index and field (`annotations[5].bbox`) and lenient reading goes on with everything it does not touch.

Layouts, as the projects' own loaders read them:
- COCO (cocodataset/cocoapi PythonAPI/pycocotools/coco.py, `createIndex`, `getAnnIds(iscrowd=…)`, `loadRes`):
  {images[{id, file_name, width, height}], annotations[{id, image_id, category_id, bbox [x, y, w, h], iscrowd,
  area}], categories[{id, name}]}; corners are x + w, y + h.
- LVIS v1 (lvis-dataset/lvis-api lvis/lvis.py): the same three lists, no `iscrowd`; images carry `coco_url`,
  `neg_category_ids` (checked absent) and `not_exhaustive_category_ids`; the image file is the `coco_url`'s last two
  parts, `val2017/000000000139.jpg` (detectron2 data/datasets/lvis.py `get_file_name`; Visual-RFT
  lvis_evaluation/Qwen2_VL_lvis_infere.py), so `image_root` is the COCO root.
- RefCOCO/+/g (lichengunc/refer refer.py): `refs(<splitBy>).p`, a pickle of [{ref_id, ann_id, image_id,
  category_id, split, file_name, sentences[{sent, raw, tokens, sent_id}]}], beside `instances.json` (COCO layout,
  train2014 file names); the box is the ref's annotation's; splits as `getRefIds(split=…)` selects them.
- VLM-R1's REC JSON (om-ai-lab/VLM-R1 src/eval/test_rec_r1.py): [{image, problem, normal_caption, solution
  [x1, y1, x2, y2] in original pixels, normalized_solution, width, height}], one record per sample.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.data.images import image_size, resolve_image
from pipeline.data.schema import Sample
from pipeline.errors import ConfigError, DataError, FieldError, Loc
from pipeline.grading.boxes import BoxParseError, check_box, dumps_boxes

if TYPE_CHECKING:
    from pipeline.data.formats import ConvertContext
    from pipeline.data.manifest import Manifest

# ---------------------------------------------------------------- question wording (our constants, their words)

# VLM-R1's OVD problem: the paper's "Problem Template of OVD" (arXiv:2504.07615 §5.1) and the OVD example in the
# VLM-R1 blog (om-ai-lab.github.io/2025_03_20.html); "None" is their no-object answer, which vr1 reads as [].
OVD_TEMPLATE = (
    "Please carefully check the image and detect the following objects: {categories}. Output each detected "
    "target's bbox coordinates in JSON format. The format of the bbox coordinates is:\n```json\n"
    '[{"bbox_2d": [x1, y1, x2, y2], "label": "target name"}, {"bbox_2d": [x1, y1, x2, y2], "label": "target name"}]'
    "\n```\nIf there are no such targets in the image, simply respond with None."
)
# Visual-RFT's per-category detection question (Liuziyu77/Visual-RFT coco_evaluation/Qwen2_VL_coco_infere.py and
# lvis_evaluation/Qwen2_VL_lvis_infere.py). It asks for the 0-1000 grid, so samples record pred_frame grid1000.
DETECTION_TEMPLATE = (
    "Detect all objects belonging to the category '{category}' in the image, and provide the bounding boxes "
    "(between 0 and 1000, integer) and confidence (between 0 and 1, with two decimal places).\n"
    "If no object belonging to the category '{category}' in the image, return 'No Objects'.\n"
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
    "The output answer format should be as follows:\n"
    "<think> ... </think> <answer>[{'Position': [x1, y1, x2, y2], 'Confidence': number}, ...]</answer>\n"
    "Please strictly follow the format."
)
# VLM-R1's REC `problem` as its rec_jsons_processed data writes it (read by src/eval/test_rec_r1.py and grpo_rec.py).
REC_TEMPLATE = "Please provide the bounding box coordinate of the region this sentence describes: {expression}."

# task -> (the slot a question template must keep, the published wording)
TASKS = {
    "ovd": ("{categories}", OVD_TEMPLATE),
    "detection": ("{category}", DETECTION_TEMPLATE),
    "rec": ("{expression}", REC_TEMPLATE),
}
# format name -> (annotation layout, task)
DETECTION_FORMATS = {
    "coco_ovd": ("coco", "ovd"),
    "coco_detection": ("coco", "detection"),
    "lvis_ovd": ("lvis", "ovd"),
    "lvis_detection": ("lvis", "detection"),
    "refcoco": ("refcoco", "rec"),
}
OPTION_KEYS = ("instances", "negatives", "seed", "question_template")
_DEFAULTS = {"instances": None, "negatives": 3, "seed": 0, "question_template": None}
REFCOCO_SPLITS = ("train", "val", "test", "testA", "testB", "testC", "testAB", "testBC", "testAC")


def check_options(manifest: Manifest) -> None:
    """Refuse options that would silently do nothing or break every sample (called when a manifest is built)."""
    origin = f"manifest '{manifest.name}'"
    if manifest.format not in DETECTION_FORMATS:
        given = [k for k in OPTION_KEYS if getattr(manifest, k) not in (None, _DEFAULTS[k])]
        if given:
            raise ConfigError(f"{origin}: {given} apply only to formats {sorted(DETECTION_FORMATS)}")
        return
    layout, task = DETECTION_FORMATS[manifest.format]
    for key in ("negatives", "seed"):
        value = getattr(manifest, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{origin}: {key} must be a non-negative integer, got {value!r}")
    if manifest.instances is not None and layout != "refcoco":
        raise ConfigError(f"{origin}: instances is for refcoco (the COCO file is `path` itself)")
    template = manifest.question_template
    if template is not None:
        slot = TASKS[task][0]
        if not isinstance(template, str) or slot not in template:
            raise ConfigError(f"{origin}: question_template must be a string containing {slot}")
    if layout == "refcoco" and manifest.split not in REFCOCO_SPLITS:
        raise ConfigError(f"{origin}: split '{manifest.split}' unknown for refcoco; use one of {REFCOCO_SPLITS}")


# ---------------------------------------------------------------- reading the files


class _DataOnlyUnpickler(pickle.Unpickler):
    """Refuses every global. Dicts, lists, tuples, strings, numbers, booleans and None have opcodes of their own in
    every protocol, so a refs file needs no global, while any class or function reference can run code on load."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: only dicts, lists, strings and numbers are read from refs pickles"
        )


def load_refs_pickle(path: Path) -> Any:
    """A RefCOCO refs pickle through `_DataOnlyUnpickler`. Byte strings (what a Python 2 `str` becomes) are decoded
    as UTF-8, a superset of the ASCII that pickle assumes by default."""
    try:
        with open(path, "rb") as f:
            return _DataOnlyUnpickler(f, encoding="utf-8").load()
    except FileNotFoundError:
        raise DataError(Loc(str(path)), None, "refs pickle not found") from None
    except (pickle.UnpicklingError, EOFError, UnicodeDecodeError, ValueError, TypeError) as e:
        raise DataError(Loc(str(path)), None, f"not a readable refs pickle: {e}") from None


def _load_json_object(path: Path) -> dict:
    if not path.is_file():
        raise DataError(Loc(str(path)), None, "annotation file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(Loc(str(path), line=e.lineno), None, f"malformed JSON: {e.msg} at column {e.colno}") from None
    if not isinstance(data, dict):
        raise DataError(Loc(str(path)), None, f"expected a COCO-style JSON object, got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(Loc(str(path)), key, "missing or not a list (COCO/LVIS instance annotations need it)")
    return data


def _int_id(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(field, f"expected an integer id, got {value!r:.40}")
    return value


def _corners(bbox: Any, width: int, height: int, field: str) -> list[float]:
    """COCO [x, y, w, h] as [x1, y1, x2, y2] in pixels of the original image, clipped to it (a few published boxes
    overhang the border by a fraction of a pixel); two decimals, as the files store them."""
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise FieldError(field, f"expected 4 numbers [x, y, width, height], got {bbox!r:.80}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in bbox):
        raise FieldError(field, f"expected finite numbers, got {bbox!r:.80}")
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        raise FieldError(field, f"width and height must be positive, got {bbox!r:.80}")
    x1, y1 = min(max(x, 0), width), min(max(y, 0), height)
    x2, y2 = min(x + w, width), min(y + h, height)
    if x2 <= x1 or y2 <= y1:
        raise FieldError(field, f"box {bbox!r:.80} lies outside the {width}x{height} image")
    return check_box([round(v, 2) for v in (x1, y1, x2, y2)])


class _Index:
    """A COCO/LVIS file indexed by id; every broken entry is kept as an error against what it would spoil."""

    def __init__(self, data: dict, path: Path, layout: str):
        self.path, self.layout = path, layout
        self.errors: list[DataError] = []  # entries that spoil nothing else (reported once)
        self.cats: dict[int, str] = {}
        for i, cat in enumerate(data["categories"]):
            try:
                cid = _int_id(cat.get("id") if isinstance(cat, dict) else None, f"categories[{i}].id")
                name = cat.get("name")
                if not isinstance(name, str) or not name.strip():
                    raise FieldError(f"categories[{i}].name", "missing or empty category name")
                self.cats[cid] = name.strip()
            except FieldError as e:
                self.errors.append(self.error(i, e, "its annotations are rejected as unknown categories"))
        self.images: list[tuple[int, dict]] = []
        self.image_index: dict[int, int] = {}
        for i, img in enumerate(data["images"]):
            iid = img.get("id") if isinstance(img, dict) else None
            if isinstance(iid, int) and not isinstance(iid, bool) and iid not in self.image_index:
                self.image_index[iid] = len(self.images)
                self.images.append((i, img))
            else:
                why = "duplicate image id" if isinstance(iid, int) else f"expected an integer id, got {iid!r:.40}"
                self.errors.append(self.error(i, FieldError(f"images[{i}].id", why)))
        self.anns: dict[int, list[tuple[int, dict]]] = {}
        self.ann_by_id: dict[int, tuple[int, dict]] = {}
        for i, ann in enumerate(data["annotations"]):
            if not isinstance(ann, dict):
                self.errors.append(self.error(i, FieldError(f"annotations[{i}]", "expected an object")))
                continue
            iid = ann.get("image_id")
            if iid not in self.image_index:
                self.errors.append(self.error(i, FieldError(f"annotations[{i}].image_id", f"no image with id {iid}")))
                continue
            self.anns.setdefault(iid, []).append((i, ann))
            if isinstance(ann.get("id"), int):
                self.ann_by_id[ann["id"]] = (i, ann)

    def error(self, index: int, e: FieldError, consequence: str = "") -> DataError:
        message = f"{e.message}; {consequence}" if consequence else e.message
        return DataError(Loc(str(self.path), index=index), e.field, message)

    def image_file(self, i: int, img: dict) -> tuple[str, int, int]:
        """(path under the image root, width, height) of images[i]."""
        if self.layout == "lvis":
            url = img.get("coco_url")
            if not isinstance(url, str) or url.count("/") < 2:
                raise FieldError(f"images[{i}].coco_url", f"expected an images.cocodataset.org URL, got {url!r:.60}")
            rel = "/".join(url.rstrip("/").split("/")[-2:])
        else:
            rel = img.get("file_name")
            if not isinstance(rel, str) or not rel:
                raise FieldError(f"images[{i}].file_name", "missing or empty")
        dims = []
        for key in ("width", "height"):
            v = img.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise FieldError(f"images[{i}].{key}", f"expected a positive integer, got {v!r:.40}")
            dims.append(v)
        return rel, dims[0], dims[1]


def _check_image_file(manifest: Manifest, rel: str, size: tuple[int, int], field: str) -> None:
    """Once per image: the file exists and has the size the boxes were drawn on (a resized copy would shift every
    box). Decoding is checked per sample by the manifest layer."""
    path = resolve_image(manifest.image_root, rel, field)
    if not path.is_file():
        raise FieldError(field, f"image not found: {path}")
    if manifest.verify_images:
        try:
            actual = image_size(path)
        except OSError as e:
            raise FieldError(field, f"unreadable image {path}: {type(e).__name__}: {e}") from None
        if tuple(actual) != size:
            raise FieldError(field, f"image {path} is {actual[0]}x{actual[1]}, the annotations say {size[0]}x{size[1]}")


def _template(manifest: Manifest, task: str) -> str:
    return manifest.question_template or TASKS[task][1]


def _rng(manifest: Manifest, key: Any) -> random.Random:
    # a string seed hashes the same in every process (unlike hash()), so draws depend only on seed and image id
    return random.Random(f"{manifest.seed}:{key}")


# ---------------------------------------------------------------- COCO / LVIS -> OVD / detection samples


def _image_samples(manifest: Manifest, index: _Index, task: str) -> Iterator[tuple[Loc, Sample | DataError | dict]]:
    path = str(index.path)
    for i, img in index.images:
        iid = img["id"]
        loc = Loc(path, index=i)
        try:
            rel, width, height = index.image_file(i, img)
        except FieldError as e:
            yield loc, index.error(i, e)
            continue
        boxes: list[tuple[Any, int, list[float]]] = []  # (annotation id, category id, corners) in file order
        withheld: set[int] = set()  # categories present but not fully boxed: crowd regions, LVIS not-exhaustive
        bad = []
        for a, ann in index.anns.get(iid, []):
            try:
                cid = ann.get("category_id")
                if cid not in index.cats:
                    raise FieldError(f"annotations[{a}].category_id", f"unknown category id {cid!r:.40}")
                crowd = ann.get("iscrowd", 0)
                if crowd not in (0, 1) or isinstance(crowd, bool):
                    raise FieldError(f"annotations[{a}].iscrowd", f"expected 0 or 1, got {crowd!r:.20}")
                box = _corners(ann.get("bbox"), width, height, f"annotations[{a}].bbox")
            except FieldError as e:
                bad.append(index.error(a, e, f"image {iid} ({rel}) left out"))
                continue
            if crowd:
                withheld.add(cid)
            else:
                boxes.append((ann.get("id"), cid, box))
        if bad:
            for err in bad:
                yield err.loc, err
            continue
        exhaustive_gaps, negatives = [], []
        if index.layout == "lvis":
            try:
                exhaustive_gaps = _id_list(img, "not_exhaustive_category_ids", i, index.cats)
                negatives = _id_list(img, "neg_category_ids", i, index.cats)
            except FieldError as e:
                yield loc, index.error(i, e)
                continue
        withheld |= set(exhaustive_gaps)
        boxed = {c for _, c, _ in boxes}
        present = sorted(boxed - withheld)
        if index.layout == "lvis":
            pool = sorted(set(negatives) - boxed - withheld)
        else:
            pool = sorted(set(index.cats) - boxed - withheld)
        rng = _rng(manifest, iid)
        drawn = sorted(rng.sample(pool, min(manifest.negatives, len(pool))))
        # An image whose every box is withheld is skipped even with negatives to ask about: whatever fills a crowd
        # region (or a category LVIS did not box exhaustively) may hide objects of other categories too.
        if not present and (withheld or not drawn):
            why = (
                "every annotated category is a crowd region or not exhaustively boxed"
                if withheld
                else "no boxes, and no absent categories to ask about (manifest negatives, LVIS neg_category_ids)"
            )
            yield loc, {"skip": f"image {iid} ({rel}): {why}"}
            continue
        try:
            _check_image_file(manifest, rel, (width, height), f"images[{i}].file_name")
        except FieldError as e:
            yield loc, index.error(i, e)
            continue
        meta = {
            "coord_frame": "abs_original",
            "image_size": [width, height],
            "image_id": iid,
            "layout": manifest.format,
        }
        if withheld:
            meta["withheld_category_ids"] = sorted(withheld)
        if task == "ovd":
            asked = present + drawn
            rng.shuffle(asked)  # where a category sits in the list must not tell whether it is there
            kept = [(aid, c, b) for aid, c, b in boxes if c in present]
            answer = [{"bbox_2d": b, "label": index.cats[c]} for _, c, b in kept]
            question = _template(manifest, task).replace("{categories}", ", ".join(index.cats[c] for c in asked))
            sample_meta = {
                **meta,
                "category_ids": asked,
                "negative_category_ids": drawn,
                "ann_ids": [aid for aid, _, _ in kept],
            }
            yield loc, _sample(manifest, str(iid), question, answer, rel, sample_meta)
        else:
            for c in present + drawn:
                name = index.cats[c]
                mine = [(aid, b) for aid, cat, b in boxes if cat == c]
                answer = [{"bbox_2d": b, "label": name} for _, b in mine]
                question = _template(manifest, task).replace("{category}", name)
                sample_meta = {
                    **meta,
                    "category_id": c,
                    "category": name,
                    "negative": c in drawn,
                    "ann_ids": [aid for aid, _ in mine],
                }
                if manifest.question_template is None:
                    sample_meta["pred_frame"] = "grid1000"  # what Visual-RFT's question asks the model for
                yield loc, _sample(manifest, f"{iid}_{c}", question, answer, rel, sample_meta)


def _id_list(img: dict, key: str, i: int, cats: dict[int, str]) -> list[int]:
    value = img.get(key, [])
    if not isinstance(value, list):
        raise FieldError(f"images[{i}].{key}", f"expected a list of category ids, got {type(value).__name__}")
    for j, cid in enumerate(value):
        if cid not in cats:
            raise FieldError(f"images[{i}].{key}[{j}]", f"unknown category id {cid!r:.40}")
    return list(value)


def _sample(manifest: Manifest, sid: str, question: str, answer: list, image: str, meta: dict, atype="boxes") -> Sample:
    return Sample(
        id=sid,
        source=manifest.name,
        question=question,
        answer=dumps_boxes(answer),
        answer_type=atype,
        images=[image],
        meta=meta,
    )


# ---------------------------------------------------------------- RefCOCO -> REC samples


def _in_split(ref_split: Any, wanted: str) -> bool:
    """refer.py `getRefIds(split=…)`: testA/B/C match any test split holding that letter, `test` every test split."""
    if not isinstance(ref_split, str):
        return False
    if wanted in ("testA", "testB", "testC"):
        return wanted[-1] in ref_split
    if wanted == "test":
        return "test" in ref_split
    return ref_split == wanted


def _refcoco_samples(manifest: Manifest) -> Iterator[tuple[Loc, Sample | DataError | dict]]:
    refs_path = manifest.path
    refs = load_refs_pickle(refs_path)
    if not isinstance(refs, list):
        raise DataError(Loc(str(refs_path)), None, f"expected a list of refs, got {type(refs).__name__}")
    instances = manifest.instances or refs_path.with_name("instances.json")
    index = _Index(_load_json_object(instances), instances, "coco")
    for err in index.errors:
        yield err.loc, err
    template = _template(manifest, "rec")
    checked: dict[int, FieldError | None] = {}
    for r, ref in enumerate(refs):
        loc = Loc(str(refs_path), index=r)
        if not isinstance(ref, dict):
            yield loc, DataError(loc, None, f"expected a ref object, got {type(ref).__name__}")
            continue
        if not _in_split(ref.get("split"), manifest.split):
            continue
        try:
            ann_at = index.ann_by_id.get(ref.get("ann_id"))
            if ann_at is None:
                raise FieldError("ann_id", f"annotation {ref.get('ann_id')!r:.40} not in {instances.name}")
            a, ann = ann_at
            iid = ann["image_id"]
            if ref.get("image_id") != iid:
                raise FieldError("image_id", f"ref says image {ref.get('image_id')!r:.40}, its annotation {iid}")
            i, img = index.images[index.image_index[iid]]
            rel, width, height = index.image_file(i, img)
            box = _corners(ann.get("bbox"), width, height, f"annotations[{a}].bbox")
            if iid not in checked:
                try:
                    _check_image_file(manifest, rel, (width, height), f"images[{i}].file_name")
                    checked[iid] = None
                except FieldError as e:
                    checked[iid] = e
            if checked[iid] is not None:
                raise checked[iid]
            sentences = ref.get("sentences")
            if not isinstance(sentences, list) or not sentences:
                raise FieldError("sentences", "expected a non-empty list of sentences")
        except FieldError as e:
            # a field of instances.json is reported where it lives; the ref's own fields against the ref
            if e.field.startswith("annotations"):
                where = Loc(str(instances), index=a)
            elif e.field.startswith("images"):
                where = Loc(str(instances), index=i)
            else:
                where = loc
            yield where, DataError(where, e.field, f"{e.message}; ref {ref.get('ref_id')!r:.40} left out")
            continue
        cid = ann.get("category_id")
        meta = {
            "coord_frame": "abs_original",
            "image_size": [width, height],
            "image_id": iid,
            "ref_id": ref.get("ref_id"),
            "ann_id": ann.get("id"),
            "category_id": cid,
            "category": index.cats.get(cid),
            "split": ref.get("split"),
            "layout": manifest.format,
        }
        for s, sent in enumerate(sentences):
            text = sent.get("sent") if isinstance(sent, dict) else None
            if not isinstance(text, str) or not text.strip():
                yield loc, DataError(loc, f"sentences[{s}].sent", "missing or empty referring expression")
                continue
            sid = sent.get("sent_id", s)
            question = template.replace("{expression}", text.strip())
            meta_s = {**meta, "sent_id": sid}
            yield loc, _sample(manifest, f"{ref.get('ref_id')}_{sid}", question, box, rel, meta_s, atype="bbox")


# ---------------------------------------------------------------- entry points


def detection_records(manifest: Manifest) -> Iterator[tuple[Loc, Sample | DataError | dict]]:
    """(location, Sample | DataError | {"skip": reason}) for a manifest in one of DETECTION_FORMATS."""
    layout, task = DETECTION_FORMATS[manifest.format]
    if layout == "refcoco":
        yield from _refcoco_samples(manifest)
        return
    index = _Index(_load_json_object(manifest.path), manifest.path, layout)
    for err in index.errors:
        yield err.loc, err
    yield from _image_samples(manifest, index, task)


def convert_expanded(rec: Sample | dict, ctx: ConvertContext) -> Sample:
    """The converter of DETECTION_FORMATS: `detection_records` has built the Sample already."""
    if isinstance(rec, dict):
        # formats imports this module to register it, so the exception is looked up when first needed
        from pipeline.data.formats import SkipRecord

        raise SkipRecord(rec["skip"])
    return rec


def convert_vlm_r1_rec(rec: dict, ctx: ConvertContext) -> Sample:
    """VLM-R1's REC JSON: `problem` is the question, `solution` the box in pixels of the original image."""
    image = rec.get("image")
    if not isinstance(image, str) or not image:
        raise FieldError("image", "missing or not a path")
    problem = rec.get("problem")
    if not isinstance(problem, str):
        raise FieldError("problem", "missing or not a string")
    try:
        box = check_box(rec.get("solution"))
    except BoxParseError as e:
        raise FieldError("solution", str(e)) from None
    meta: dict[str, Any] = {"coord_frame": ctx.coord_frame or "abs_original"}
    if isinstance(rec.get("width"), int) and isinstance(rec.get("height"), int):
        meta["image_size"] = [rec["width"], rec["height"]]
    if isinstance(rec.get("normal_caption"), str):
        meta["normal_caption"] = rec["normal_caption"]
    # no ids in the published file: the record's content names it, so reordering the file keeps every id
    sid = rec.get("id")
    if sid is None:
        blob = json.dumps(rec, sort_keys=True, ensure_ascii=False).encode()
        sid = f"{ctx.source}-{hashlib.sha1(blob).hexdigest()[:16]}"
    return Sample(
        id=str(sid),
        source=ctx.source,
        question=problem.strip(),
        answer=dumps_boxes(box),
        answer_type="bbox",
        images=[image],
        meta=meta,
    )


DETECTION_CONVERTERS = {name: convert_expanded for name in DETECTION_FORMATS}
DETECTION_CONVERTERS["vlm_r1_rec"] = convert_vlm_r1_rec
