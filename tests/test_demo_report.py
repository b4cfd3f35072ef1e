"""The demo's closing report: the results table from eval runs, PTST curves with all stages on one step axis, and
the bench's statistics."""

import json

import pytest

from benchmarks.bench_ptst import interval, report
from rl.report import build_report, ptst_steps


def _eval(path, accuracy, failure, thinking):
    path.mkdir(parents=True)
    results = {
        "manifest": {
            "n": 50,
            "accuracy": accuracy,
            "model": str(path),
            "lengths": {"format_failure_rate": failure, "thinking_tokens": {"mean": thinking}},
        }
    }
    (path / "results.json").write_text(json.dumps(results))


def test_report_table_and_curves(tmp_path):
    _eval(tmp_path / "base", 0.0, 1.0, 0.0)
    _eval(tmp_path / "sft", 0.4, 0.25, 21.5)
    ptst = tmp_path / "ptst"
    for k, n in ((1, 3), (2, 2)):
        rows = [
            {"step": i, "reward_mean": 0.1 * i * k, "format_rate": 0.5, "accuracy": 0.1 * i} for i in range(1, n + 1)
        ]
        (ptst / f"stage_{k}").mkdir(parents=True)
        (ptst / f"stage_{k}" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cold = tmp_path / "cold"
    cold.mkdir()
    (cold / "summary.json").write_text(json.dumps({"samples": 64, "kept": 40, "dropped_by_rule": {"answer_match": 20}}))
    steps, starts = ptst_steps(ptst)
    assert [r["global_step"] for r in steps] == [1, 2, 3, 4, 5] and starts == [4]
    assert [r["stage"] for r in steps] == [1, 1, 1, 2, 2]
    out = build_report(
        {"base": tmp_path / "base", "sft": tmp_path / "sft", "ptst": tmp_path / "missing"},
        ptst,
        cold,
        tmp_path / "no-sft",
        tmp_path / "report",
    )
    text = out.read_text()
    assert "| sft | 0.400 | 0.750 | 21.5 | 50 |" in text and "| base | 0.000 | 0.000 | 0.0 | 50 |" in text
    assert "| ptst | missing" in text and "40 of 64 samples kept" in text and "answer_match 20" in text
    png = tmp_path / "report" / "ptst_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "ptst_curves.png" in text


def test_bench_statistics_and_the_seeds_ptst_did_not_win():
    mean, half = interval([0.5, 0.6, 0.7])
    assert abs(mean - 0.6) < 1e-9 and abs(half - 4.303 * 0.1 / 3**0.5) < 1e-6
    assert interval([0.3]) == (0.3, 0.0)

    def arm(acc):
        return {"accuracy": acc, "format_rate": 1.0, "thinking_tokens": 20.0}

    rows = [
        {"seed": s, "arms": {"base": arm(0), "sft": arm(0.3), "sft_longer": arm(long), "ptst": arm(p)}}
        for s, long, p in ((0, 0.4, 0.8), (1, 0.5, 0.5), (2, 0.4, 0.9))
    ]
    summary = report(rows)
    assert summary["ptst_minus_sft_longer"]["seeds_not_won"] == [1]
    assert summary["ptst_minus_sft"]["seeds_not_won"] == [] and summary["arms"]["ptst"]["accuracy"]["mean"] == 0.7333


def test_metrics_rows_are_mirrored_to_tensorboard_under_shared_names(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rl.train_utils import MetricsMirror

    mirror = MetricsMirror(tmp_path / "tensorboard" / "vr1")
    mirror.log({"step": 1, "reward_mean": 0.25, "format_rate": 0.5, "note": "x"}, 1, [])
    assert not (tmp_path / "tensorboard").exists()  # nothing asked for, nothing written
    for step, reward in ((1, 0.25), (2, 0.75)):
        mirror.log({"step": step, "reward_mean": reward, "format_rate": 0.5}, step, ["tensorboard"])
    events = EventAccumulator(str(tmp_path / "tensorboard" / "vr1"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"vr1/reward_mean", "vr1/format_rate"}
    assert [(e.step, e.value) for e in events.Scalars("vr1/reward_mean")] == [(1, 0.25), (2, 0.75)]


def wandb_history(run_dir) -> list[dict]:
    """The history rows of an offline W&B run, read from its .wandb file with W&B's own protobuf schema. The file
    is a LevelDB-style log (a 7-byte `:W&B` header, 32 KiB blocks, records of crc32 + length + type + payload)."""
    import json
    import struct

    from wandb.proto import wandb_internal_pb2

    (path,) = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    data, rows, pos, pending = path.read_bytes(), [], 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        room = 32768 - pos % 32768
        if room < 7:  # a block's tail too short for a record header is padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
        elif kind == 0:
            break
    return rows


def test_wandb_gets_the_shared_names_from_sft_and_from_verls_driver(tiny_models, demo_dir, tmp_path, monkeypatch):
    """W&B offline (no network): SFT through TRL's trainer, whose own W&B callback starts the run, and the verl
    driver's mirror, which starts its own; both runs carry vr1/<name> beside the trainer's names."""
    pytest.importorskip("wandb")
    from test_sft import sft_args

    from pipeline.cli import main
    from rl.train_utils import MetricsMirror

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "sft_wandb"))
    (tmp_path / "sft_wandb").mkdir()
    args = sft_args(tmp_path, tiny_models["qwen2_5_vl"], "qwen2_5_vl", "schedule.max_steps=2", demo_dir=demo_dir)
    assert main([*args, "report_to=[wandb]"]) == 0
    sft_rows = [r for r in wandb_history(tmp_path / "sft_wandb") if "vr1/loss" in r]
    assert any("train/loss" in r for r in wandb_history(tmp_path / "sft_wandb"))  # the trainer's own name
    assert [r["train/global_step"] for r in sft_rows] == [1, 2]
    assert all(isinstance(r["vr1/loss"], float) for r in sft_rows)

    mirror = MetricsMirror(tmp_path / "verl_stage" / "tensorboard" / "vr1", wandb_run="demo-stage1")
    for step in (1, 2):
        mirror.log({"step": step, "reward_mean": 0.25 * step, "format_rate": 1.0}, step, ["wandb"])
    mirror.close()
    verl_rows = wandb_history(tmp_path / "verl_stage" / "tensorboard" / "vr1")
    assert [(r["train/global_step"], r["vr1/reward_mean"]) for r in verl_rows] == [(1, 0.25), (2, 0.5)]
