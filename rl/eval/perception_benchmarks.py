"""Perception benchmarks of VLM-R1 and Visual-RFT: referring expressions (REC), open-vocabulary detection (OVD),
Visual-RFT's detection and fine-grained classification, each read from its published layout and scored by its own
rule. Sources (read, not copied): om-ai-lab/VLM-R1 at 90052f4 (`src/eval/test_rec_r1.py`, `test_rec_baseline.py`,
`src/open-r1-multimodal/src/open_r1/grpo_jsonl.py`), om-ai-lab/OVDEval at 2ba0aa9 (`eval.py`, NMS-AP) and
Liuziyu77/Visual-RFT at 9486633 (`coco_evaluation/`, `lvis_evaluation/`, `classification/`).

Frames are grading's (`pipeline.grading.geometry`): a predicted box is read in `pred_frame` (a `score` option) and
compared with the gold box in normalised coordinates, which is the same as mapping it to the original image (IoU is
unchanged by scaling each axis). mAP is pycocotools' COCOeval over all items of a run together, in original pixels.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.data.images import image_size
from pipeline.data.manifest import Manifest, iter_records, read_manifest
from pipeline.errors import DataError, Loc
from pipeline.grading.boxes import BoxParseError, check_box, parse_bbox
from pipeline.grading.geometry import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, FRAMES, iou, to_normalized
from rl.eval.benchmark import Benchmark, EvalItem, extract

# ---------------------------------------------------------------- shared helpers

_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_BOX = re.compile(r"\[" + ",".join([_NUM] * 4) + r"\]")
_FENCED_JSON = re.compile(r"```json(.*?)```", re.S)


def _frame_info(size: Sequence[float], options: dict) -> dict:
    """The `info` grading's frame functions read: the original size and the pixel budget of `abs_resized`."""
    return {
        "image_sizes": [list(size)],
        "min_pixels": options.get("min_pixels") or DEFAULT_MIN_PIXELS,
        "max_pixels": options.get("max_pixels") or DEFAULT_MAX_PIXELS,
    }


def _pred_frame(options: dict, default: str) -> str:
    frame = options.get("pred_frame") or default
    if frame not in FRAMES:
        raise ValueError(f"pred_frame '{frame}' unknown; use one of {FRAMES}")
    return frame


def _to_original(box: Sequence[float], frame: str, size: Sequence[float], info: dict) -> list[float]:
    """`box` in `frame` as pixels of the original image."""
    n = to_normalized(box, frame, info)
    w, h = size
    return [n[0] * w, n[1] * h, n[2] * w, n[3] * h]


def _first_box(text: str) -> list[float] | None:
    m = _BOX.search(text)
    return [float(v) for v in m.groups()] if m else None


def _literal(text: str):
    """JSON, or a Python literal (single-quoted dicts). Never evaluates code; None when neither parses."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        pass
    if len(text) > 100_000:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _xywh(box: Sequence[float]) -> list[float]:
    return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]


def _quiet():
    """pycocotools prints its progress and tables; a run's log keeps only vr1's own lines."""
    return contextlib.redirect_stdout(io.StringIO())


def coco_evaluate(gold: list[dict], dets: list[dict], cat_ids: Sequence[int] | None = None) -> dict:
    """pycocotools' COCOeval (bbox, area all, maxDets 100) over a whole run. `gold`: {"image_id", "category_id",
    "name", "bbox" (xywh), optional "area", "iscrowd"} (one per gold box; images with no gold box appear with
    bbox None so they count); `dets`: {"image_id", "category_id", "bbox" (xywh), "score"}. Returns map, map50 and
    the AP of each category that has gold boxes; None where COCOeval has nothing to average (no gold at all)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    image_ids = sorted({g["image_id"] for g in gold} | {d["image_id"] for d in dets})
    names = {g["category_id"]: g["name"] for g in gold if "name" in g}
    names.update({d["category_id"]: d["name"] for d in dets if "name" in d and d["category_id"] not in names})
    categories = [{"id": c, "name": names.get(c, str(c))} for c in sorted(names)]
    annotations = []
    for g in gold:
        if g.get("bbox") is None:
            continue
        ann = {
            "id": len(annotations) + 1,
            "image_id": g["image_id"],
            "category_id": g["category_id"],
            "bbox": [float(v) for v in g["bbox"]],
            "area": float(g["area"]) if g.get("area") is not None else float(g["bbox"][2] * g["bbox"][3]),
            "iscrowd": int(g.get("iscrowd", 0)),
        }
        annotations.append(ann)
    with _quiet():
        gt = COCO()
        gt.dataset = {"images": [{"id": i} for i in image_ids], "annotations": annotations, "categories": categories}
        gt.createIndex()
        results = [
            {"image_id": d["image_id"], "category_id": d["category_id"], "bbox": d["bbox"], "score": float(d["score"])}
            for d in dets
        ]
        if results:
            dt = gt.loadRes(results)
        else:  # loadRes refuses an empty list: an empty result set scores 0 on every category with gold boxes
            dt = COCO()
            dt.dataset = {"images": gt.dataset["images"], "annotations": [], "categories": categories}
            dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        if cat_ids is not None:
            ev.params.catIds = sorted(cat_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # [T, R, K, A, M]: area "all" is A=0, maxDets 100 is M=-1
    per_class, per_class50 = {}, {}
    for k, cat in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        if p.size:
            name = names.get(cat, str(cat))
            per_class[name] = float(p.mean())
            p50 = precision[0, :, k, 0, -1]
            per_class50[name] = float(p50[p50 > -1].mean())
    stats = [None if s < 0 else float(s) for s in ev.stats[:2]]
    return {"map": stats[0], "map50": stats[1], "per_class_ap": per_class, "per_class_ap50": per_class50}


def _set_hit(gold: list[dict], pred: list[dict]) -> float:
    """1.0 when the predictions match the gold boxes one to one (same label, IoU > 0.5), nothing missing and
    nothing extra: a per-item verdict for `correct`; the benchmark's figure is the mAP."""
    if len(gold) != len(pred):
        return 0.0
    used = [False] * len(gold)
    for p in sorted(pred, key=lambda b: -b["score"]):
        best, m = 0.5, -1
        for gi, g in enumerate(gold):
            v = iou(p["bbox_2d"], g["bbox_2d"])
            if not used[gi] and g["label"] == p["label"] and v > best:
                best, m = v, gi
        if m < 0:
            return 0.0
        used[m] = True
    return 1.0


def _manifest_samples(name: str, fmt: str, path: Path, image_root: Path | None, **kwargs):
    raw = {"name": name, "format": fmt, "path": str(Path(path).resolve()), "verify_images": False, **kwargs}
    if image_root is not None:
        raw["image_root"] = str(Path(image_root).resolve())
    manifest = Manifest.from_dict(raw, origin=str(path))
    return read_manifest(manifest, strict=True).samples, manifest.image_root


# ---------------------------------------------------------------- REC (VLM-R1)


# VLM-R1 test_rec_r1.py's QUESTION_TEMPLATE after "{Question} "
VLM_R1_INSTRUCTION = (
    "First output the thinking process in <think> </think> tags and then output the final answer in "
    "<answer> </answer> tags. Output the final answer in JSON format."
)


class REC(Benchmark):
    """RefCOCO / RefCOCO+ / RefCOCOg as VLM-R1 evaluates them.

    Layouts: VLM-R1's eval JSON (`rec_jsons_processed/<split>.json`: an array of {image, problem, solution
    [x1, y1, x2, y2] in original pixels, normal_caption, normalized_solution, width, height}) and its training
    JSONL ({id, image, conversations [human, gpt "[x1, y1, x2, y2]"]}, read by vr1's `vlm_r1` reader).

    Score: the box in the `<answer>` block (a JSON/literal box or the first `[x1, y1, x2, y2]` in it; else the
    first such box anywhere in the response, reported as "fallback"), read in `pred_frame` (default
    `abs_resized`: pixels of the image as Qwen2.5-VL's processor resized it under `min_pixels`/`max_pixels`),
    IoU with the gold box; a hit is IoU > `iou_threshold` (0.5), strictly, as `test_rec_r1.py` counts it."""

    name = "rec"
    instruction = VLM_R1_INSTRUCTION
    separator = " "  # "{Question} " + the template, as test_rec_r1.py builds it

    def load(self, path: Path, image_root: Path | None = None, limit: int | None = None) -> list[EvalItem]:
        path = Path(path)
        records = [rec for _, rec in iter_records(path)]
        bad = next((r for r in records if isinstance(r, DataError)), None)
        if bad is not None:
            raise bad
        if records and "conversations" not in records[0]:
            items = self._load_eval_json(path, records, image_root)
        else:
            items = self._load_jsonl(path, image_root)
        return items[:limit] if limit is not None else items

    def _load_eval_json(self, path: Path, records: list[dict], image_root: Path | None) -> list[EvalItem]:
        root = Path(image_root) if image_root is not None else path.parent
        items, seen = [], set()
        for i, rec in enumerate(records):
            loc = Loc(str(path), index=i)
            for key in ("image", "problem", "solution"):
                if key not in rec:
                    raise DataError(loc, key, "missing")
            try:
                box = check_box(rec["solution"])
            except BoxParseError as e:
                raise DataError(loc, "solution", str(e)) from None
            image = (root / rec["image"]).resolve()
            if image.is_file():
                size = image_size(image)  # the official script reads the image's own size
            elif rec.get("width") and rec.get("height"):
                size = (rec["width"], rec["height"])
            else:
                raise DataError(loc, "image", f"image not found: {image}")
            # VLM-R1's eval JSON has no ids: an item is its index in the file (what its scripts iterate over, and
            # what score-only predictions can name without knowing vr1)
            rid = str(rec["id"]) if rec.get("id") is not None else str(i)
            if rid in seen:
                rid = f"{rid}-{i}"
            seen.add(rid)
            items.append(
                EvalItem(
                    id=rid,
                    question=rec["problem"],
                    images=[str(image)],
                    gold={"box": box, "frame": "abs_original", "size": list(size)},
                    meta={"dataset": path.stem},
                )
            )
        return items

    def _load_jsonl(self, path: Path, image_root: Path | None) -> list[EvalItem]:
        samples, root = _manifest_samples(path.stem, "vlm_r1", path, image_root, coord_frame="abs_original")
        items = []
        for s in samples:
            if s.answer_type != "bbox":
                raise DataError(Loc(str(path)), "conversations", f"record {s.id}: not a REC box answer ({s.answer})")
            image = (root / s.images[0]).resolve()
            items.append(
                EvalItem(
                    id=s.id,
                    question=s.question,
                    images=[str(root / rel) for rel in s.images],
                    gold={
                        "box": parse_bbox(s.answer),
                        "frame": s.meta.get("coord_frame") or "abs_original",
                        "size": list(image_size(image)),
                    },
                    meta={"dataset": path.stem},
                )
            )
        return items

    def score(self, item: EvalItem, response: str, **options) -> dict:
        frame = _pred_frame(options, "abs_resized")
        threshold = float(options.get("iou_threshold", 0.5))
        text, source = extract(response)
        box = None
        if text is not None:
            try:
                box = parse_bbox(text)
            except BoxParseError:
                box = _first_box(text)
        if box is None:
            box = _first_box(response)
            source = "fallback" if box is not None else "none"
        if box is None:
            return {"correct": 0.0, "extracted": text, "source": source, "iou": 0.0, "box": None}
        gold = item.gold
        info = _frame_info(gold["size"], options)
        value = iou(to_normalized(box, frame, info), to_normalized(gold["box"], gold["frame"], info))
        return {
            "correct": float(value > threshold),
            "extracted": json.dumps(box),
            "source": source,
            "iou": value,
            "box": _to_original(box, frame, gold["size"], info),  # the prediction in original pixels
        }

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[dict]) -> dict:
        out = super().aggregate(items, scores)
        n = len(scores)
        out["acc@0.5"] = out["accuracy"]
        out["mean_iou"] = sum(s.get("iou", 0.0) for s in scores) / n if n else 0.0
        # what the official script counts: it reads the <answer> block only
        hits = sum(s["correct"] for s in scores if s.get("source") == "answer_block")
        out["accuracy_answer_block_only"] = hits / n if n else 0.0
        return out


# ---------------------------------------------------------------- OVD (VLM-R1)


def _norm_label(label) -> str:
    return " ".join(str(label).split()).lower()


def _ovd_predictions(text: str) -> list[dict] | None:
    """A JSON list of {"bbox_2d", "label", optional "score"/"confidence"} (fenced or not); None when it does not
    parse; entries without a valid box are dropped one by one."""
    m = _FENCED_JSON.findall(text) or re.findall(r"```(.*?)```", text, re.S)
    body = (m[-1] if m else text).strip()
    if body.strip().strip(".").lower() in ("none", "no objects", "[]"):
        return []
    value = _literal(body)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return None
    out = []
    for entry in value:
        if not isinstance(entry, dict):
            continue
        try:
            box = check_box(entry.get("bbox_2d", entry.get("bbox")))
        except BoxParseError:
            continue
        score = entry.get("score", entry.get("confidence", entry.get("Confidence", 1.0)))
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            score = 1.0
        out.append({"bbox_2d": box, "label": _norm_label(entry.get("label", "")), "score": float(score)})
    return out


def ovdeval_nms(gold: list[dict], pred: list[dict], iou_threshold: float = 0.5) -> list[dict]:
    """OVDEval's NMS-AP filter (om-ai-lab/OVDEval eval.py `nms_threaded`): for each gold box, of the predictions
    of ANY label overlapping it at IoU > threshold only the highest-scoring one stays; a prediction removed for one
    gold box but kept for another stays. Ties break as that script's `np.argsort(scores)[::-1]` does."""
    scores = np.array([p["score"] for p in pred])
    keep, remove = [], []
    for g in gold:
        indices = [i for i, p in enumerate(pred) if iou(g["bbox_2d"], p["bbox_2d"]) > iou_threshold]
        if indices:
            order = np.argsort(scores[indices])[::-1]
            ranked = [indices[k] for k in order.tolist()]
            keep.append(ranked[0])
            remove += ranked[1:]
    dropped = {i for i in remove if i not in keep}
    return [p for i, p in enumerate(pred) if i not in dropped]


class OVD(Benchmark):
    """Open-vocabulary detection in VLM-R1's JSONL layout ({id, image, conversations: gpt = a ```json list of
    {bbox_2d, label} in original pixels, or `None`}), read by vr1's `vlm_r1` reader.

    Score: the predicted list in the `<answer>` block (the last ```json fence in it, or the block as JSON/literal;
    without a block, the last ```json fence of the response, reported as "fallback"), boxes read in `pred_frame`
    (default `abs_resized`; VLM-R1's OVD reward maps nothing, i.e. `abs_original`), labels compared after
    lower-casing and collapsing spaces, `score`/`confidence` used when given (else 1.0, as VLM-R1's reward).
    Option `nms_ap=True` applies OVDEval's NMS-AP filter first. The figure is COCOeval's mAP over all items
    together (each item one COCO image); VLM-R1's min(1, n_gt/n_pred) redundancy factor is its training reward's,
    not an evaluation rule, and is not applied (`boxes_per_gold` reports the flooding it guards against)."""

    name = "ovd"
    # the answer layout of VLM-R1's OVD data (the gold's fenced JSON); UNCONFIRMED as their eval prompt
    instruction = VLM_R1_INSTRUCTION
    separator = " "

    def load(self, path: Path, image_root: Path | None = None, limit: int | None = None) -> list[EvalItem]:
        path = Path(path)
        samples, root = _manifest_samples(path.stem, "vlm_r1", path, image_root, answer_type="boxes")
        items = []
        for s in samples[:limit] if limit is not None else samples:
            if s.answer_type != "boxes":
                raise DataError(Loc(str(path)), "conversations", f"record {s.id}: not a detection answer")
            boxes = [{"bbox_2d": b["bbox_2d"], "label": _norm_label(b.get("label", ""))} for b in json.loads(s.answer)]
            image = (root / s.images[0]).resolve()
            items.append(
                EvalItem(
                    id=s.id,
                    question=s.question,
                    images=[str(root / rel) for rel in s.images],
                    gold={"boxes": boxes, "frame": "abs_original", "size": list(image_size(image))},
                    meta={"dataset": path.stem},
                )
            )
        return items

    def score(self, item: EvalItem, response: str, **options) -> dict:
        frame = _pred_frame(options, "abs_resized")
        text, source = extract(response)
        pred = _ovd_predictions(text) if text is not None else None
        if text is None:
            fences = _FENCED_JSON.findall(response)
            if fences:
                pred, source = _ovd_predictions(f"```json{fences[-1]}```"), "fallback"
        parsed = pred is not None
        gold = item.gold
        info = _frame_info(gold["size"], options)
        pred = [{**p, "bbox_2d": _to_original(p["bbox_2d"], frame, gold["size"], info)} for p in pred or []]
        gold_boxes = [
            {**g, "bbox_2d": _to_original(g["bbox_2d"], gold["frame"], gold["size"], info)} for g in gold["boxes"]
        ]
        n_raw = len(pred)
        if options.get("nms_ap"):
            pred = ovdeval_nms(gold_boxes, pred, float(options.get("nms_iou", 0.5)))
        return {
            "correct": _set_hit(gold_boxes, pred),
            "extracted": text,
            "source": source,
            "pred": pred,
            "parsed": parsed,  # False: an answer that is not a box list, scored as no boxes
            "n_pred_raw": n_raw,
        }

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[dict]) -> dict:
        out = super().aggregate(items, scores)
        labels: dict[str, int] = {}
        gold, dets = [], []
        for idx, (item, s) in enumerate(zip(items, scores, strict=True)):
            boxes = item.gold["boxes"]
            info = _frame_info(item.gold["size"], {})
            if not boxes:
                gold.append({"image_id": idx, "bbox": None})
            for b in boxes:
                cat = labels.setdefault(b["label"], len(labels) + 1)
                box = _to_original(b["bbox_2d"], item.gold["frame"], item.gold["size"], info)
                gold.append({"image_id": idx, "category_id": cat, "name": b["label"], "bbox": _xywh(box)})
            for p in s.get("pred") or []:
                cat = labels.setdefault(p["label"], len(labels) + 1)
                dets.append(
                    {
                        "image_id": idx,
                        "category_id": cat,
                        "name": p["label"],
                        "bbox": _xywh(p["bbox_2d"]),
                        "score": p["score"],
                    }
                )
        out.update(coco_evaluate(gold, dets))
        n_gold = sum(len(i.gold["boxes"]) for i in items)
        out["boxes_per_gold"] = len(dets) / n_gold if n_gold else None
        return out


# ---------------------------------------------------------------- Detection (Visual-RFT)

# Visual-RFT coco_evaluation/Qwen2_VL_coco_infere.py (and lvis_evaluation/): the question asked per image and category
_RFT_DET_QUESTION = (
    "Detect all objects belonging to the category '{category}' in the image, and provide the bounding boxes "
    "(between 0 and 1000, integer) and confidence (between 0 and 1, with two decimal places).\n"
    "If no object belonging to the category '{category}' in the image, return 'No Objects'.\n"
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
    "The output answer format should be as follows:\n"
    "<think> ... </think> <answer>[{{'Position': [x1, y1, x2, y2], 'Confidence': number}}, ...]</answer>\n"
    "Please strictly follow the format."
)
_CATEGORY_IN_PROBLEM = re.compile(r"category '([^']+)'")


def visual_rft_boxes(text: str) -> list[dict]:
    """Visual-RFT's reading of a detection answer (Qwen2_VL_coco_infere.py): `[[`/`]]` made single, newlines and
    `, ...` removed, a list cut short repaired at its last complete `},`, single quotes made double, JSON; not a list
    of objects (e.g. `No Objects`) is no boxes; exact duplicate positions are dropped. Entries without a valid
    Position are skipped (the script loses the rest of that answer instead); a missing Confidence counts as 1."""
    s = text.replace("[[", "[").replace("]]", "]").replace("\n", "").replace(", ...", "").strip()
    if not s.endswith("]"):
        s = s.rsplit("},", 1)[0] + "}]"
    try:
        value = json.loads(s.replace("'", '"'))
    except (json.JSONDecodeError, RecursionError):
        return []
    if not isinstance(value, list) or not value or isinstance(value[0], str):
        return []
    out, seen = [], set()
    for entry in value:
        if not isinstance(entry, dict):
            continue
        try:
            box = check_box(entry.get("Position"))
        except BoxParseError:
            continue
        if tuple(box) in seen:
            continue
        seen.add(tuple(box))
        conf = entry.get("Confidence", 1.0)
        if isinstance(conf, bool) or not isinstance(conf, (int, float)):
            conf = 1.0
        out.append({"bbox_2d": box, "score": float(conf)})
    return out


class Detection(Benchmark):
    """Visual-RFT's COCO / LVIS detection (open-vocabulary and few-shot).

    Layouts: the official evaluation's COCO/LVIS annotation file (`instances_val2017.json`, `lvis_v1_val.json`:
    {images, annotations, categories}; image files at `file_name`, or for LVIS the last two parts of `coco_url`,
    under image_root), one item per image and category present in its annotations; or Visual-RFT's training layout
    (JSON array / HF dataset of {image_path|image, problem, solution `<answer>[{'Position': …, 'Confidence': …}]`
    on the 0-1000 grid or `No Objects`}), one item per record, category read from the problem's quotes.

    `categories` restricts the evaluation to those names (Visual-RFT's few-shot / open-vocabulary selections).
    Score: the answer block (else the whole response, as the script does, reported as "fallback") read by
    `visual_rft_boxes`, boxes in `pred_frame` (default `grid1000`, Qwen2-VL's), confidence as COCO score. The figure
    is COCOeval's mAP over all items (per-class AP as their notebook reports; `map` is the mean over the evaluated
    categories that have gold boxes, their "mAP for selected categories")."""

    name = "detection"
    instruction = ""

    def __init__(self, categories: Sequence[str] | None = None):
        self.categories = set(categories) if categories else None

    def load(self, path: Path, image_root: Path | None = None, limit: int | None = None) -> list[EvalItem]:
        path = Path(path)
        if path.is_file() and path.suffix == ".json":
            with open(path, encoding="utf-8") as f:
                head = f.read(4096).lstrip()
            if head.startswith("{"):
                items = self._load_coco(path, image_root, limit)
                return items
        items = self._load_rft(path, image_root)
        return items[:limit] if limit is not None else items

    def _load_coco(self, path: Path, image_root: Path | None, limit: int | None) -> list[EvalItem]:
        data = json.loads(path.read_text(encoding="utf-8"))
        for key in ("images", "annotations", "categories"):
            if key not in data:
                raise DataError(Loc(str(path)), key, "missing: not a COCO/LVIS annotation file")
        root = Path(image_root) if image_root is not None else path.parent
        names = {c["id"]: c["name"] for c in data["categories"]}
        by_image: dict[int, dict[int, list]] = defaultdict(lambda: defaultdict(list))
        for ann in data["annotations"]:
            by_image[ann["image_id"]][ann["category_id"]].append(ann)
        items = []
        for img in data["images"]:
            if img.get("file_name"):
                rel = img["file_name"]
            elif img.get("coco_url"):
                rel = "/".join(img["coco_url"].split("/")[-2:])  # as lvis_evaluation/Qwen2_VL_lvis_infere.py
            else:
                raise DataError(Loc(str(path)), "images", f"image {img.get('id')}: no file_name or coco_url")
            size = [img["width"], img["height"]]
            for cat_id in sorted(by_image.get(img["id"], {})):
                name = names[cat_id]
                if self.categories is not None and name not in self.categories:
                    continue
                anns = by_image[img["id"]][cat_id]
                gold = [{"bbox": a["bbox"], "area": a.get("area"), "iscrowd": a.get("iscrowd", 0)} for a in anns]
                items.append(
                    EvalItem(
                        id=f"{img['id']}:{cat_id}",
                        question=_RFT_DET_QUESTION.format(category=name),
                        images=[str((root / rel).resolve())],
                        gold={
                            "image_id": img["id"],
                            "category_id": cat_id,
                            "category": name,
                            "size": size,
                            "boxes_xywh": gold,
                        },
                        meta={"category": name},
                    )
                )
                if limit is not None and len(items) >= limit:
                    return items
        return items

    def _load_rft(self, path: Path, image_root: Path | None) -> list[EvalItem]:
        samples, root = _manifest_samples(path.stem, "visual_rft", path, image_root, answer_type="boxes")
        items = []
        for s in samples:
            image = (root / s.images[0]).resolve()
            size = list(image_size(image))
            m = _CATEGORY_IN_PROBLEM.search(s.question)
            name = m.group(1) if m else "object"
            if self.categories is not None and name not in self.categories:
                continue
            frame = s.meta.get("coord_frame") or "grid1000"
            info = _frame_info(size, {})
            gold = [
                {"bbox": _xywh(_to_original(b["bbox_2d"], frame, size, info)), "area": None, "iscrowd": 0}
                for b in json.loads(s.answer)
            ]
            items.append(
                EvalItem(
                    id=s.id,
                    question=s.question,
                    images=[str(image)],
                    gold={"image_id": s.id, "category_id": None, "category": name, "size": size, "boxes_xywh": gold},
                    meta={"category": name},
                )
            )
        return items

    def score(self, item: EvalItem, response: str, **options) -> dict:
        frame = _pred_frame(options, "grid1000")
        text, source = extract(response)
        if text is None:  # the script scores the whole response when there is no answer block; an answer cut
            # short (no `</answer>`) is read from its `<answer>` on, which is what its repair of cut lists is for
            text, source = response.rsplit("<answer>", 1)[-1].strip(), "fallback"
        boxes = visual_rft_boxes(text)
        size = item.gold["size"]
        info = _frame_info(size, options)
        pred = [{"bbox_2d": _to_original(b["bbox_2d"], frame, size, info), "score": b["score"]} for b in boxes]
        gold = [
            {
                "bbox_2d": [g["bbox"][0], g["bbox"][1], g["bbox"][0] + g["bbox"][2], g["bbox"][1] + g["bbox"][3]],
                "label": "",
            }
            for g in item.gold["boxes_xywh"]
            if not g.get("iscrowd")
        ]
        hit = _set_hit(gold, [{**p, "label": ""} for p in pred])
        if source == "fallback" and not boxes:
            source = "none"
        return {"correct": hit, "extracted": text, "source": source, "pred": pred}

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[dict]) -> dict:
        out = super().aggregate(items, scores)
        image_ids: dict = {}
        cat_ids: dict[str, int] = {}
        gold, dets = [], []
        for item, s in zip(items, scores, strict=True):
            g = item.gold
            img = image_ids.setdefault(g["image_id"], len(image_ids) + 1)
            cat = (
                g["category_id"]
                if g["category_id"] is not None
                else cat_ids.setdefault(g["category"], len(cat_ids) + 1)
            )
            if not g["boxes_xywh"]:
                gold.append({"image_id": img, "bbox": None})
            for b in g["boxes_xywh"]:
                gold.append({"image_id": img, "category_id": cat, "name": g["category"], **b})
            for p in s.get("pred") or []:
                dets.append(
                    {
                        "image_id": img,
                        "category_id": cat,
                        "name": g["category"],
                        "bbox": _xywh(p["bbox_2d"]),
                        "score": p["score"],
                    }
                )
        out.update(coco_evaluate(gold, dets))
        return out


# ---------------------------------------------------------------- Classification (Visual-RFT)

# classification/Qwen2_VL_classification_infere.py asks this of FGVC-Aircraft (the only question published); the
# others follow its pattern (UNCONFIRMED wording)
_RFT_CLS_SUBJECT = {
    "fgvc_aircraft": ("an aircraft", "the model of the aircraft"),
    "oxford_flowers": ("a flower", "the species of the flower"),
    "pets": ("a pet", "the species of the pet"),
    "stanford_cars": ("a car", "the model of the car"),
}
_RFT_CLS_QUESTION = (
    "This is an image containing {thing}. Please identify {what} based on the image.\n"
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
    "The output answer format should be as follows:\n"
    "<think> ... </think> <answer>species name</answer>\n"
    "Please strictly follow the format."
)


def visual_rft_label(text: str) -> str:
    """The normalisation of Visual-RFT's classification eval: spaces and underscores removed, lower case."""
    return text.replace(" ", "").replace("_", "").lower()


class Classification(Benchmark):
    """Visual-RFT's few-shot fine-grained classification (Flower102, Pets37, Stanford Cars, FGVC-Aircraft).

    Layouts: the official validation files `classification/val_data/<set>.pth` (a torch list of
    {image path: {"label": tensor, …}}) with `<set>.txt` beside it (class names, line i = label i); image paths are
    the authors' absolute paths and are found under image_root by their longest existing tail. Or Visual-RFT's
    training layout (JSON array / HF dataset of {image_path|image, problem, solution `<answer>label</answer>`}).

    Score: the answer block's text and the gold label after Visual-RFT's normalisation, compared exactly; option
    `match="substring"` counts what the official script counts (either contains the other, so an empty or partial
    answer can hit). No fallback: the script counts an answer without `<answer>` tags as wrong."""

    name = "classification"
    instruction = ""

    def load(self, path: Path, image_root: Path | None = None, limit: int | None = None) -> list[EvalItem]:
        path = Path(path)
        items = self._load_pth(path, image_root) if path.suffix == ".pth" else self._load_rft(path, image_root)
        return items[:limit] if limit is not None else items

    def _load_pth(self, path: Path, image_root: Path | None) -> list[EvalItem]:
        import torch

        names_file = path.with_suffix(".txt")
        if not names_file.is_file():
            raise DataError(Loc(str(path)), None, f"class names not found: {names_file} (line i = label i)")
        classes = [line.strip() for line in names_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        records = torch.load(path, map_location="cpu", weights_only=True)
        root = Path(image_root) if image_root is not None else path.parent
        thing, what = _RFT_CLS_SUBJECT.get(path.stem, ("an object", "the category of the object"))
        question = _RFT_CLS_QUESTION.format(thing=thing, what=what)
        items = []
        for i, rec in enumerate(records):
            for key, value in rec.items():
                loc = Loc(str(path), index=i)
                label = int(value["label"])
                if not 0 <= label < len(classes):
                    raise DataError(loc, "label", f"label {label} not among the {len(classes)} classes of {names_file}")
                image = _find_tail(root, key)
                if image is None:
                    raise DataError(loc, "image", f"no tail of {key} exists under {root}")
                rel = image.relative_to(root.resolve()) if root.resolve() in image.parents else key
                items.append(
                    EvalItem(
                        id=str(rel),
                        question=question,
                        images=[str(image)],
                        gold=classes[label],
                        meta={"label": classes[label], "dataset": path.stem},
                    )
                )
        return items

    def _load_rft(self, path: Path, image_root: Path | None) -> list[EvalItem]:
        samples, root = _manifest_samples(path.stem, "visual_rft", path, image_root, answer_type="label")
        return [
            EvalItem(
                id=s.id,
                question=s.question,
                images=[str((root / rel).resolve()) for rel in s.images],
                gold=s.answer,
                meta={"label": s.answer, "dataset": path.stem},
            )
            for s in samples
        ]

    def score(self, item: EvalItem, response: str, **options) -> dict:
        text, source = extract(response)
        if text is None:
            return {"correct": 0.0, "extracted": None, "source": source}
        pred, gold = visual_rft_label(text), visual_rft_label(str(item.gold))
        if options.get("match", "exact") == "substring":
            hit = gold in pred or pred in gold
        else:
            hit = pred == gold
        return {"correct": float(hit), "extracted": text, "source": source}

    def aggregate(self, items: Sequence[EvalItem], scores: Sequence[dict]) -> dict:
        out = super().aggregate(items, scores)
        per: dict[str, list[float]] = defaultdict(list)
        for item, s in zip(items, scores, strict=True):
            per[item.meta.get("label", str(item.gold))].append(s["correct"])
        out["per_class"] = {label: sum(v) / len(v) for label, v in sorted(per.items())}
        out["per_class_n"] = {label: len(v) for label, v in sorted(per.items())}
        out["mean_class_accuracy"] = float(np.mean(list(out["per_class"].values()))) if per else 0.0
        return out


def _find_tail(root: Path, key: str) -> Path | None:
    """The image `key` names (an absolute path on the authors' machines): itself if it exists, else the longest
    tail of it that exists under `root`."""
    p = Path(key)
    if p.is_absolute() and p.is_file():
        return p
    parts = [x for x in p.parts if x not in ("/", "")]
    root = root.resolve()
    for k in range(len(parts)):
        candidate = root.joinpath(*parts[k:])
        if candidate.is_file():
            return candidate
    return None


PERCEPTION_BENCHMARKS: dict[str, type[Benchmark]] = {cls.name: cls for cls in (REC, OVD, Detection, Classification)}
