"""Every kind of bad input: strict mode names file, line (or record index) and field; lenient mode rejects just
that sample with the same reason while the rest proceeds."""

import json

import pytest
from conftest import make_image

from pipeline.data.manifest import Manifest, read_manifest
from pipeline.errors import DataError


def good(i, **kw):
    return {
        "id": f"s{i}",
        "source": "t",
        "question": f"How many? {i}",
        "answer": "3",
        "answer_type": "number",
        "images": ["img/ok.png"],
        **kw,
    }


def setup(tmp_path, rows, name="data.jsonl"):
    make_image(tmp_path / "img" / "ok.png")
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    (tmp_path / name).write_text("\n".join(lines) + "\n")
    return Manifest.from_dict({"name": "t", "format": "vr1", "path": name, "image_root": "."}, base=tmp_path)


def check(manifest, line, field, words):
    """Strict raises at `line`/`field`; lenient keeps the two good rows and rejects the bad one identically."""
    with pytest.raises(DataError) as err:
        read_manifest(manifest, strict=True)
    e = err.value
    assert e.loc.file.endswith("data.jsonl") and e.loc.line == line and e.field == field
    assert all(w in str(e) for w in words), str(e)
    assert f"data.jsonl:{line}" in str(e)
    lenient = read_manifest(manifest, strict=False)
    assert [s.id for s in lenient.samples] == ["s1", "s3"]
    assert len(lenient.rejects) == 1 and str(lenient.rejects[0]) == str(e)
    return e


def test_missing_image(tmp_path):
    m = setup(tmp_path, [good(1), good(2, images=["img/nope.png"]), good(3)])
    check(m, 2, "images[0]", ["image not found", "nope.png"])


def test_unreadable_image(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    m = setup(tmp_path, [good(1), good(2, images=["img/broken.png"]), good(3)])
    check(m, 2, "images[0]", ["unreadable image", "broken.png"])


def test_malformed_json_line(tmp_path):
    m = setup(tmp_path, [good(1), '{"id": "s2", "question": "unterminated', good(3)])
    check(m, 2, None, ["malformed JSON"])


def test_missing_field(tmp_path):
    row = good(2)
    del row["answer"]
    m = setup(tmp_path, [good(1), row, good(3)])
    check(m, 2, "answer", ["missing"])


def test_mistyped_field(tmp_path):
    m = setup(tmp_path, [good(1), good(2, images="img/ok.png", question=["not", "a", "string"]), good(3)])
    check(m, 2, "question", ["expected str", "list"])


def test_image_path_escaping_root(tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}-outside.png"
    make_image(outside)
    m = setup(tmp_path, [good(1), good(2, images=[f"../{outside.name}"]), good(3)])
    check(m, 2, "images[0]", ["escapes the image root"])


def test_absolute_image_path_outside_root(tmp_path):
    outside = make_image(tmp_path.parent / f"{tmp_path.name}-abs.png")
    m = setup(tmp_path, [good(1), good(2, images=[str(outside)]), good(3)])
    check(m, 2, "images[0]", ["escapes the image root"])


def test_duplicate_ids(tmp_path):
    m = setup(tmp_path, [good(1), good(3, question="another"), good(3)])
    with pytest.raises(DataError) as err:
        read_manifest(m, strict=True)
    assert err.value.loc.line == 3 and err.value.field == "id"
    assert "duplicate id 's3'" in str(err.value) and "data.jsonl:2" in str(err.value)
    lenient = read_manifest(m, strict=False)
    assert [s.id for s in lenient.samples] == ["s1", "s3"] and len(lenient.rejects) == 1


def test_empty_question(tmp_path):
    m = setup(tmp_path, [good(1), good(2, question="   "), good(3)])
    check(m, 2, "question", ["empty question"])


def test_empty_answer(tmp_path):
    m = setup(tmp_path, [good(1), good(2, answer=""), good(3)])
    check(m, 2, "answer", ["empty answer"])


def test_json_array_reports_record_index(tmp_path):
    make_image(tmp_path / "img" / "ok.png")
    rows = [
        {"image_path": "img/ok.png", "problem": "q1", "solution": "<answer>cat</answer>"},
        {"image_path": "img/ok.png", "problem": "q2"},
        {"image_path": "img/ok.png", "problem": "q3", "solution": "<answer>dog</answer>"},
    ]
    (tmp_path / "data.json").write_text(json.dumps(rows))
    m = Manifest.from_dict({"name": "t", "format": "visual_rft", "path": "data.json", "image_root": "."}, base=tmp_path)
    with pytest.raises(DataError) as err:
        read_manifest(m)
    assert err.value.loc.index == 1 and err.value.field == "solution" and "data.json record 1" in str(err.value)
    assert [s.answer for s in read_manifest(m, strict=False).samples] == ["cat", "dog"]


def test_broken_json_array_names_line(tmp_path):
    (tmp_path / "data.json").write_text('[\n {"image_path": "a.png",\n  "problem": oops}\n]')
    m = Manifest.from_dict({"name": "t", "format": "visual_rft", "path": "data.json"}, base=tmp_path)
    with pytest.raises(DataError) as err:
        read_manifest(m)
    assert err.value.loc.line == 3 and "malformed JSON" in str(err.value)
    result = read_manifest(m, strict=False)  # reported, never silent; the records around it are kept
    assert not result.samples and [e.loc.line for e in result.rejects] == [3]


def test_placeholder_count_mismatch(tmp_path):
    make_image(tmp_path / "img" / "ok.png")
    rows = [
        {
            "messages": [
                {"role": "user", "content": "<image><image>Which?"},
                {"role": "assistant", "content": "### The final answer is:\nA"},
            ],
            "images": "img/ok.png",
        }
    ]
    (tmp_path / "m.json").write_text(json.dumps(rows))
    m = Manifest.from_dict({"name": "t", "format": "mulberry", "path": "m.json", "image_root": "."}, base=tmp_path)
    with pytest.raises(DataError, match=r"m.json record 0: field 'messages\[0\].content': has 2 '<image>'"):
        read_manifest(m)


def test_choice_answer_outside_options(tmp_path):
    m = setup(tmp_path, [good(1), good(2, answer="E", answer_type="choice", choices=["x", "y"]), good(3)])
    check(m, 2, "answer", ["'E' is not among the options"])


def test_unknown_manifest_key_is_an_error(tmp_path):
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown key.*image_dir"):
        Manifest.from_dict({"name": "t", "format": "vr1", "path": "x.jsonl", "image_dir": "."}, base=tmp_path)
