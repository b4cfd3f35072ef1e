"""pycocotools' own COCOeval on one image, as the reference for the OVD mAP."""

import contextlib
import io


def pycocotools_map(gold: list[dict], pred: list[dict]) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    labels = sorted({b["label"] for b in gold} | {b["label"] for b in pred})
    cat = {lab: i + 1 for i, lab in enumerate(labels)}

    def xywh(b):
        x1, y1, x2, y2 = b
        return [x1, y1, x2 - x1, y2 - y1]

    anns = [
        {
            "id": i + 1,
            "image_id": 1,
            "category_id": cat[b["label"]],
            "bbox": xywh(b["bbox_2d"]),
            "area": xywh(b["bbox_2d"])[2] * xywh(b["bbox_2d"])[3],
            "iscrowd": 0,
        }
        for i, b in enumerate(gold)
    ]
    gt = COCO()
    gt.dataset = {
        "images": [{"id": 1}],
        "annotations": anns,
        "categories": [{"id": v, "name": k} for k, v in cat.items()],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dets = [
            {
                "image_id": 1,
                "category_id": cat[b["label"]],
                "bbox": xywh(b["bbox_2d"]),
                "score": float(b.get("confidence", 1.0)),
            }
            for b in pred
        ]
        dt = gt.loadRes(dets) if dets else COCO()
        if not dets:
            dt.dataset = {"images": [{"id": 1}], "annotations": [], "categories": gt.dataset["categories"]}
            dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])
