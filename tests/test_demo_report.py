"""The demo's closing report: the results table from eval runs, PTST curves with all stages on one step axis, and
the bench's statistics."""

import json

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
