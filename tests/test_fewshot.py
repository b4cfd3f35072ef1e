"""`vr1 split`: k-shot splits for classification (k per class) and detection (every category at least k
instances), deterministic per seed, both manifests readable back."""

import json

import pytest
import yaml
from conftest import make_image

from pipeline.cli import main
from pipeline.data.fewshot import per_class_counts
from pipeline.data.manifest import Manifest, read_manifest


def _manifest(tmp_path, rows):
    make_image(tmp_path / "images" / "a.png")
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"name": "toy", "format": "vr1", "path": "data.jsonl"}))
    return tmp_path / "m.yaml"


def _sample(i, answer, answer_type):
    return {
        "id": f"s{i}",
        "source": "toy",
        "question": "What is it?",
        "answer": answer,
        "answer_type": answer_type,
        "images": ["images/a.png"],
    }


def _read(path):
    return read_manifest(Manifest.load(path)).samples


@pytest.mark.parametrize("shots", [1, 4])
def test_classification_gets_k_per_class_and_the_rest_is_test(tmp_path, shots):
    labels = ["american_bulldog", "American Bulldog", "boxer", "pug"] * 5 + ["sphynx"] * 2
    manifest = _manifest(tmp_path, [_sample(i, lab, "label") for i, lab in enumerate(labels)])
    out = tmp_path / f"k{shots}"
    assert main(["split", str(manifest), "--shots", str(shots), "--seed", "3", "--out", str(out)]) == 0
    train, test = _read(out / "train.yaml"), _read(out / "test.yaml")
    counts = per_class_counts(train)
    assert counts["american bulldog"] == shots and counts["boxer"] == shots and counts["pug"] == shots
    assert counts["sphynx"] == min(shots, 2)  # only two exist
    assert {s.id for s in train} | {s.id for s in test} == {f"s{i}" for i in range(len(labels))}
    assert not {s.id for s in train} & {s.id for s in test}
    report = json.loads((out / "split.json").read_text())
    assert report["short_classes"] == ({"sphynx": 2} if shots > 2 else {})
    again = tmp_path / "again"
    assert main(["split", str(manifest), "--shots", str(shots), "--seed", "3", "--out", str(again)]) == 0
    assert (again / "train.jsonl").read_text() == (out / "train.jsonl").read_text()  # deterministic per seed
    other = tmp_path / "other"
    assert main(["split", str(manifest), "--shots", str(shots), "--seed", "4", "--out", str(other)]) == 0
    assert (other / "train.jsonl").read_text() != (out / "train.jsonl").read_text()


def test_detection_takes_images_until_every_category_has_k_instances(tmp_path):
    def boxes(*labels):
        return json.dumps([{"bbox_2d": [1, 2, 10, 12], "label": lab} for lab in labels])

    rows = [
        _sample(i, boxes(*labs), "boxes")
        for i, labs in enumerate(
            [("cat",), ("cat", "dog"), ("dog",), ("dog", "dog"), ("bird",), ("cat", "bird"), ("dog",), ("cat",)]
        )
    ]
    manifest = _manifest(tmp_path, rows)
    assert main(["split", str(manifest), "--shots", "2", "--seed", "0", "--out", str(tmp_path / "d")]) == 0
    train = _read(tmp_path / "d" / "train.yaml")
    counts = per_class_counts(train)
    assert all(counts[c] >= 2 for c in ("cat", "dog", "bird"))
    # every image taken brought a category that was still short when it was taken
    assert len(train) <= 5 and len(_read(tmp_path / "d" / "test.yaml")) == len(rows) - len(train)


def test_a_mixed_or_unsupported_set_is_refused(tmp_path, capsys):
    manifest = _manifest(tmp_path, [_sample(0, "3", "number")])
    assert main(["split", str(manifest), "--shots", "1", "--out", str(tmp_path / "x")]) != 0
    assert "one answer type, label or boxes" in capsys.readouterr().err
