"""`vr1 eval` end to end against a real OpenAI-compatible server on loopback (tests/chat_server.py): predictions
appended as they arrive and reused on a rerun, results.json / results.md, failures that exit non-zero without moving
`latest`, score-only mode on a published layout, and the comparison table."""

import json
from pathlib import Path

import pytest
import yaml
from chat_server import ChatServer, ServerState
from conftest import make_image

from pipeline.cli import main

FIX = Path(__file__).parent / "fixtures" / "eval"


def _manifest(tmp: Path, answers: list[tuple[str, str]]) -> Path:
    """Items whose prompt tells the test server what to answer (`RESULT=X.`): (gold, what the server says)."""
    make_image(tmp / "images" / "a.png")
    rows = [
        {
            "id": f"q{i}",
            "source": "toy",
            "question": f"How many dots? RESULT={said}.\n",
            "answer": gold,
            "answer_type": "number",
            "images": ["images/a.png"],
        }
        for i, (gold, said) in enumerate(answers)
    ]
    (tmp / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp / "m.yaml").write_text(yaml.safe_dump({"name": "toy", "format": "vr1", "path": "data.jsonl"}))
    return tmp / "m.yaml"


def _config(tmp: Path, manifest: Path, base_url: str, **extra) -> Path:
    cfg = {
        "model": {
            "backend": "openai",
            "base_url": base_url,
            "model": "toy-model",
            "max_retries": 1,
            "backoff_base_s": 0.01,
            "timeout_s": 2,
            "max_pixels": 128 * 128,
        },
        "benchmarks": [{"name": "manifest", "path": str(manifest)}],
        **extra,
    }
    (tmp / "eval.yaml").write_text(yaml.safe_dump(cfg))
    return tmp / "eval.yaml"


def _eval(tmp, *args):
    return main(["eval", "--runs-root", str(tmp / "runs"), *args])


def test_generate_score_resume_and_results(tmp_path, capsys):
    manifest = _manifest(tmp_path, [("3", "3"), ("4", "5"), ("7", "7"), ("2", "2")])
    state = ServerState()
    with ChatServer(state) as server:
        cfg = _config(tmp_path, manifest, server.base_url)
        assert _eval(tmp_path, "--config", str(cfg), "--name", "a") == 0
        asked = state.served
        run = tmp_path / "runs" / "eval" / "a"
        rows = [json.loads(x) for x in (run / "predictions" / "manifest.jsonl").read_text().splitlines()]
        assert asked == 4 and [r["correct"] for r in rows if r["id"] in ("q0", "q1")] != []
        assert {r["id"]: r["correct"] for r in rows} == {"q0": 1.0, "q1": 0.0, "q2": 1.0, "q3": 1.0}
        assert all(r["response"].startswith("<think>\n") and r["source"] == "answer_block" for r in rows)
        results = json.loads((run / "results.json").read_text())["manifest"]
        assert results["accuracy"] == 0.75 and results["n"] == 4 and results["model"] == "toy-model"
        lengths = results["lengths"]
        # the server writes a sentence between </think> and <answer>: the hard format fails, the answer still counts
        assert lengths["format_failure_rate"] == 1.0 and lengths["reflective_per_response"]["wait"] == 1.0
        assert (run / "results.md").read_text().startswith("| run | manifest |")
        assert (tmp_path / "runs" / "eval" / "latest").resolve() == run.resolve()
        # a kill after two answers (the third line cut mid-write): the rerun asks only for what is missing
        pred = run / "predictions" / "manifest.jsonl"
        lines = pred.read_text().splitlines()
        pred.write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])
        assert _eval(tmp_path, "--config", str(cfg), "--name", "a") == 0
        assert state.served - asked == 2
        again = [json.loads(x) for x in pred.read_text().splitlines()]
        assert sorted(r["id"] for r in again) == ["q0", "q1", "q2", "q3"]
        # the same --name with another model: nothing on disk is reused
        before = state.served
        assert _eval(tmp_path, "--config", str(cfg), "--name", "a", "model.model=another-model") == 0
        assert state.served - before == 4
    assert "| a | 75.0 |" in capsys.readouterr().out


def test_failed_requests_exit_non_zero_and_keep_latest(tmp_path, capsys):
    manifest = _manifest(tmp_path, [("3", "3"), ("4", "4 ALWAYS_FAIL")])
    with ChatServer(ServerState()) as server:
        cfg = _config(tmp_path, manifest, server.base_url)
        assert _eval(tmp_path, "--config", str(cfg), "--name", "bad") != 0
    err = capsys.readouterr().err
    assert "1 request(s) failed" in err and "--name bad" in err
    assert not (tmp_path / "runs" / "eval" / "latest").exists()
    rows = (tmp_path / "runs" / "eval" / "bad" / "predictions" / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(r)["id"] for r in rows] == ["q0"]


def test_samples_per_item_and_the_comparison_table(tmp_path, capsys):
    manifest = _manifest(tmp_path, [("3", "3"), ("4", "5")])
    with ChatServer(ServerState()) as server:
        cfg = _config(tmp_path, manifest, server.base_url, n_samples=2)
        assert _eval(tmp_path, "--config", str(cfg), "--name", "two") == 0
        good = _manifest(tmp_path / "g", [("3", "3"), ("4", "4")])
        assert _eval(tmp_path, "--config", str(_config(tmp_path / "g", good, server.base_url)), "--name", "b") == 0
    rows = (tmp_path / "runs" / "eval" / "two" / "predictions" / "manifest.jsonl").read_text().splitlines()
    assert sorted((json.loads(r)["id"], json.loads(r)["sample"]) for r in rows) == [
        ("q0", 0),
        ("q0", 1),
        ("q1", 0),
        ("q1", 1),
    ]
    capsys.readouterr()
    assert _eval(tmp_path, "--compare", "two", "b") == 0
    out = capsys.readouterr().out
    assert "| two | 50.0 |" in out and "| b | 100.0 (+50.0) |" in out


def test_score_only_on_a_published_layout(tmp_path, capsys):
    """MathVista testmini as published, predictions made elsewhere: ids are `pid`s; an unknown id is refused with
    its file and line; an item without a prediction counts as wrong."""
    data = json.loads((FIX / "mathvista" / "testmini.json").read_text())
    pids = list(data)
    first = data[pids[0]]
    preds = tmp_path / "preds.jsonl"
    preds.write_text(
        json.dumps({"id": pids[0], "response": f"<answer> Final Answer:{first['answer']} </answer>"}) + "\n"
    )
    args = ["--benchmark", "mathvista", "--data", str(FIX / "mathvista" / "testmini.json")]
    args += ["--image-root", str(FIX / "mathvista"), "--predictions", str(preds), "--name", "so"]
    assert _eval(tmp_path, *args) == 0
    results = json.loads((tmp_path / "runs" / "eval" / "so" / "results.json").read_text())["mathvista"]
    assert results["n"] == len(pids) and results["missing"] == len(pids) - 1
    assert results["accuracy"] == pytest.approx(1 / len(pids))
    preds.write_text(preds.read_text() + json.dumps({"id": "no-such-pid", "response": "x"}) + "\n")
    assert _eval(tmp_path, *args[:-1], "so2") != 0
    assert f"{preds}, line 2: id 'no-such-pid' is not an item of mathvista" in capsys.readouterr().err


@pytest.mark.slow
def test_transformers_backend_batches_and_matches_one_at_a_time(tiny_models, demo_dir, tmp_path):
    """In-process generation in batches (left-padded, images and no images mixed): greedy answers are the ones
    the one-at-a-time path gives."""
    texts = {}
    for batch in (1, 4):
        cfg = {
            "model": {
                "backend": "transformers",
                "model": str(tiny_models["qwen2_5_vl"]),
                "temperature": 0.0,
                "max_tokens": 12,
                "max_pixels": 50176,
                "batch_size": batch,
            },
            "benchmarks": [{"name": "manifest", "path": str(demo_dir / "manifest_test.yaml"), "limit": 6}],
        }
        path = tmp_path / f"b{batch}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        assert _eval(tmp_path, "--config", str(path), "--name", f"b{batch}") == 0
        rows = (tmp_path / "runs" / "eval" / f"b{batch}" / "predictions" / "manifest.jsonl").read_text().splitlines()
        texts[batch] = {json.loads(r)["id"]: json.loads(r)["response"] for r in rows}
    assert len(texts[4]) == 6 and texts[4] == texts[1]


def test_score_only_reads_boxes_in_the_frame_it_is_told(tmp_path, capsys):
    """VLM-R1's REC eval JSON (no ids: an item is its index): the gold box written in the original image's pixels
    is a hit with pred_frame=abs_original and a miss in the default frame (pixels of the resized image)."""
    data = FIX / "rec" / "refcoco_val.json"
    gold = json.loads(data.read_text())[0]["solution"]
    preds = tmp_path / "rec.jsonl"
    preds.write_text(json.dumps({"id": "0", "response": f"<answer>{json.dumps(gold)}</answer>"}) + "\n")
    base = ["--benchmark", "rec", "--data", str(data), "--image-root", str(FIX / "rec"), "--predictions", str(preds)]
    assert _eval(tmp_path, *base, "--name", "orig", "pred_frame=abs_original") == 0
    assert _eval(tmp_path, *base, "--name", "resized") == 0
    scored = {
        name: json.loads((tmp_path / "runs" / "eval" / name / "predictions" / "rec.jsonl").read_text().splitlines()[0])
        for name in ("orig", "resized")
    }
    assert scored["orig"]["correct"] == 1.0 and scored["resized"]["correct"] == 0.0
