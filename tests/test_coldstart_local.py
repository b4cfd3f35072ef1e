"""The demo path: both roles on an in-process tiny model (transformers backend), records complete with
provenance, every drop explained, a rerun reuses every answer."""

import json

import pytest

from pipeline.cli import main


@pytest.mark.slow
def test_demo_config_on_tiny_model_and_resume(demo_dir, tiny_models, tmp_path, capsys):
    model = tiny_models["qwen2_5_vl"]
    args = [
        "coldstart",
        "--config",
        "coldstart/demo",
        "--name",
        "demo",
        "--runs-root",
        str(tmp_path),
        f"data.manifests=[{demo_dir / 'manifest_train.yaml'}]",
        "data.limit=5",
        f"vlm.model={model}",
        f"reasoner.model={model}",
        "vlm.max_tokens=16",
        "reasoner.max_tokens=24",
    ]
    assert main(args) == 0
    run = tmp_path / "coldstart" / "demo"
    records = [json.loads(x) for x in (run / "coldstart.jsonl").read_text().splitlines()]
    assert len(records) == 5
    for r in records:
        assert r["pseudo_cot"] is not None and r["description"] is not None and r["reasoning"] is not None
        assert r["verdict"] in ("kept", "dropped") and (r["verdict"] == "kept") == (not r["reasons"])
        prov = r["provenance"]["pseudo_cot"]
        assert prov["prompt_hash"] and prov["model"] == str(model) and prov["completion_tokens"] > 0
    steps = [json.loads(x) for x in (run / "steps" / "reasoning.jsonl").read_text().splitlines()]
    assert {s["prompt_hash"] for s in steps} == {records[0]["provenance"]["reasoning"]["prompt_hash"]}
    out = capsys.readouterr().out
    assert "cold start: 5 samples" in out and "vlm      requests 10" in out

    assert main(args) == 0  # resume: everything is reused
    assert "requests 0 (reused 10" in capsys.readouterr().out
    again = [json.loads(x) for x in (run / "coldstart.jsonl").read_text().splitlines()]
    assert [(r["uid"], r["verdict"], r["response"]) for r in again] == [
        (r["uid"], r["verdict"], r["response"]) for r in records
    ]
